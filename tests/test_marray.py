"""marray, masked arrays over NumPy: a backend that is one registry entry.

The package has nothing for marray but its entry in ``s2nn_xp._backends``:
the array-API math serves it. What is special about it is the mask, so this
module checks that every public function keeps it (a result is masked where
an input is) and that the values on the unmasked entries are NumPy's. The
``xp``-parametrised tests of the other modules run on it too.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests._support import SPECIAL_X, grid, require

mxp = require("marray")

import s2nn_xp  # noqa: E402

X = np.concatenate([SPECIAL_X, grid(n=20)])
MASK = np.arange(X.size) % 3 == 1  # every third entry, specials included
PARAMS = {"alpha": 2.0, "beta": 1.5, "epsilon": 1e-3}
CALLS = {  # public function -> its call with parameters
    "forward": lambda x: s2nn_xp.forward(x),
    "origin": lambda x: s2nn_xp.origin(x, **PARAMS),
    "gradient": lambda x: s2nn_xp.gradient(x, PARAMS["alpha"], PARAMS["beta"]),
    "s2nn": lambda x: s2nn_xp.s2nn(x, **PARAMS),
    "s2nn origin": lambda x: s2nn_xp.s2nn(x, **PARAMS, origin=True),
}


def assert_masked_like_numpy(result, want: np.ndarray, mask: np.ndarray) -> None:
    """`result` is a masked array with `mask`, holding `want` where unmasked."""
    assert type(result).__name__ == "MArray", type(result)
    assert result.dtype == mxp.asarray(want).dtype
    np.testing.assert_array_equal(np.asarray(result.mask), mask)
    np.testing.assert_array_equal(np.asarray(result.data)[~mask], want[~mask])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CALLS)
def test_every_function_keeps_the_mask_and_numpys_values(name, dtype):
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32 is intended
        values = X.astype(dtype)
    result = CALLS[name](mxp.asarray(values, mask=MASK))
    assert_masked_like_numpy(result, CALLS[name](values), MASK)


def test_vjp_masks_where_x_or_the_cotangent_is_masked():
    cotangent = np.linspace(-2.0, 2.0, X.size)
    cotangent_mask = np.arange(X.size) % 5 == 0
    for origin in (False, True):
        y, pullback = s2nn_xp.vjp(mxp.asarray(X, mask=MASK), 2.0, origin=origin)
        want_y, want_pullback = s2nn_xp.vjp(X, 2.0, origin=origin)
        assert_masked_like_numpy(y, want_y, MASK)
        grad = pullback(mxp.asarray(cotangent, mask=cotangent_mask))
        want = want_pullback(cotangent)
        assert_masked_like_numpy(grad, want, MASK | cotangent_mask)


def test_masked_entries_do_not_touch_the_others():
    """What the data holds under the mask (NaN, inf, huge) changes nothing else."""
    poisoned = np.where(MASK, np.nan, X)
    for name, call in CALLS.items():
        clean = call(mxp.asarray(X, mask=MASK))
        dirty = call(mxp.asarray(poisoned, mask=MASK))
        np.testing.assert_array_equal(
            np.asarray(dirty.data)[~MASK], np.asarray(clean.data)[~MASK], name
        )


def test_an_unmasked_array_is_numpy_all_over():
    x = mxp.asarray(X)
    for name, call in CALLS.items():
        assert_masked_like_numpy(call(x), call(X), np.zeros(X.size, dtype=bool))
        assert not np.asarray(call(x).mask).any(), name


def test_parameters_are_checked_and_a_masked_one_refused():
    """marray's data is NumPy's: values checked as NumPy arrays are, masks refused.

    A masked alpha changed the result's mask; a negative one gave a negative
    gradient.
    """
    x = mxp.asarray(np.array([-1.0, 0.0, 2.0]))
    masked = mxp.asarray(np.array([4.0, -1.0, 4.0]), mask=np.array([0, 1, 0], bool))
    with pytest.raises(TypeError, match="alpha must not be a masked array"):
        s2nn_xp.gradient(x, masked)
    with pytest.raises(ValueError, match="alpha must be finite"):
        s2nn_xp.gradient(x, mxp.asarray(np.array([-4.0, 4.0, 4.0])))
    with pytest.raises(ValueError, match="beta has values that overflow float32"):
        s2nn_xp.origin(mxp.asarray(np.ones(3, np.float32)), beta=mxp.asarray([1e300]))
    alpha = mxp.asarray(np.array([4.0, 2.0, 1.0]))
    result = s2nn_xp.gradient(x, alpha)
    np.testing.assert_array_equal(np.asarray(result.mask), [False] * 3)
    np.testing.assert_array_equal(
        np.asarray(result.data),
        s2nn_xp.gradient(np.asarray(x.data), np.asarray(alpha.data)),
    )
