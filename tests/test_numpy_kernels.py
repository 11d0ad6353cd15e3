"""The NumPy kernels of the block path against ``_math``: bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ._support import (
    ANY_ALPHA,
    ANY_EPSILON,
    KERNEL_X,
    POSITIVE,
    assert_same_bits,
    count_calls,
    require,
)

require("numpy")

import array_api_compat.numpy as xp  # noqa: E402

import s2nn_xp  # noqa: E402
from s2nn_xp import _evaluation, _math, _numpy_kernels  # noqa: E402

PARAMETERS = [
    (4.0, 1.0, 1e-8),
    (2.5, 0.75, 0.0),
    (1e-37, 3.0, 0.5),
    (1e4, 3.4e38, 1e-8),
    (3.4e38, 1.0, 1e-3),
]


def _run(kernel, *arrays, dtype, out_dtype=None, **params):
    """The kernel into a fresh output, its workspace full of leftovers (NaN)."""
    scratch = _numpy_kernels.workspace(arrays[0].size + 5, dtype)
    for buffer in scratch:
        buffer.fill(np.nan)
    out = np.empty(arrays[0].shape, dtype=out_dtype or dtype)
    with np.errstate(all="ignore"):
        kernel(*arrays, **params, out=out, scratch=scratch)
    return out


def _math_of(function, *arrays, **params):
    """``_math``'s in-place path, which the kernels restate, on copies.

    In place, as the block path ran it: on NumPy 1.x a Python-number
    parameter beyond float32's ``finfo.max / 1.0001`` or so promotes an
    out-of-place product to float64 (value-based casting), an in-place one
    stays in the array's dtype.
    """
    with np.errstate(all="ignore"):
        copies = (a.copy() if isinstance(a, np.ndarray) else a for a in arrays)
        return function(xp, *copies, **params, in_place=True)


def _check_every_kernel(x, cotangent, dtype, alpha, beta, epsilon):
    """Each kernel of ``x`` (and ``cotangent``) is ``_math``'s result, bit for bit."""
    assert_same_bits(
        _run(_numpy_kernels.forward, x, dtype=dtype), _math_of(_math.forward, x)
    )
    assert_same_bits(
        _run(_numpy_kernels.gradient, x, dtype=dtype, alpha=alpha, beta=beta),
        _math_of(_math.gradient, x, alpha, beta),
    )
    assert_same_bits(
        _run(
            _numpy_kernels.origin,
            x,
            dtype=dtype,
            alpha=alpha,
            beta=beta,
            epsilon=epsilon,
        ),
        _math_of(_math.origin, x, alpha, beta, epsilon),
    )
    with np.errstate(all="ignore"):  # beta near the largest float, times g
        want = _math_of(_math.gradient, x, alpha, beta) * cotangent
    assert_same_bits(
        _run(
            _numpy_kernels.pullback, x, cotangent, dtype=dtype, alpha=alpha, beta=beta
        ),
        want,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("alpha", "beta", "epsilon"), PARAMETERS)
def test_kernels_are_the_math_bit_for_bit(dtype, alpha, beta, epsilon):
    with np.errstate(over="ignore"):
        x = KERNEL_X.astype(dtype)
    cotangent = np.linspace(-3.0, 3.0, x.size, dtype=dtype)
    _check_every_kernel(x, cotangent, dtype, alpha, beta, epsilon)


def test_a_narrower_output_is_the_math_rounded_once():
    with np.errstate(over="ignore"):
        x = KERNEL_X.astype(np.float32)
    got = _run(
        _numpy_kernels.gradient,
        x,
        dtype=np.float32,
        out_dtype=np.float16,
        alpha=2.5,
        beta=0.75,
    )
    with np.errstate(over="ignore"):  # the largest float32 is inf in float16
        want = _math_of(_math.gradient, x, 2.5, 0.75).astype(np.float16)
    assert_same_bits(got, want)
    # The spike is compared in x's dtype, not in the narrower output's: a
    # tiny negative x rounds to -0 in float16 (a spike of 1, not 0).
    got = _run(_numpy_kernels.forward, x, dtype=np.float32, out_dtype=np.float16)
    assert_same_bits(got, _math_of(_math.forward, x).astype(np.float16))
    for kernel, params in (
        (_numpy_kernels.origin, {"alpha": 2.5, "beta": 0.75, "epsilon": 1e-8}),
        (_numpy_kernels.gradient, {"alpha": 2.5, "beta": 0.75}),
    ):
        got = _run(kernel, x, dtype=np.float32, out_dtype=np.float16, **params)
        function = getattr(_math, kernel.__name__)
        with np.errstate(over="ignore"):
            want = _math_of(function, x, *params.values()).astype(np.float16)
        assert_same_bits(got, want)


def test_the_block_path_runs_the_kernels(monkeypatch):
    names = ("forward", "origin", "gradient", "pullback")
    calls = count_calls(monkeypatch, _numpy_kernels, names)
    x = np.linspace(-3.0, 3.0, 4 * _evaluation._BLOCK_BYTES // 8)
    s2nn_xp.forward(x)
    s2nn_xp.origin(x)
    s2nn_xp.gradient(x)
    s2nn_xp.vjp(x)[1](np.ones_like(x))
    # One call per block; vjp's spikes and the pullback's gradient count too.
    assert calls == {"forward": 8, "origin": 4, "gradient": 8, "pullback": 4}


# Any value of x, every parameter from the smallest positive number to the
# largest of the dtype: the kernels' shorter forms (branch inputs from |x|, a
# blend weighted by a comparison, the spike as one comparison) must give
# _math's bits for all of them, not only for the special values above.
@settings(max_examples=150, deadline=None)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    data=st.data(),
    alpha=ANY_ALPHA,
    beta=POSITIVE,
    epsilon=ANY_EPSILON,
)
def test_kernels_are_the_math_bit_for_bit_for_any_values(
    dtype, data, alpha, beta, epsilon
):
    x = data.draw(
        hnp.arrays(dtype, st.integers(1, 64), elements=st.floats(width=32)),
        label="x",
    )
    cotangent = data.draw(
        hnp.arrays(dtype, x.shape, elements=st.floats(-1e3, 1e3, width=32)),
        label="cotangent",
    )
    _check_every_kernel(x, cotangent, dtype, alpha, beta, epsilon)
