"""The validation layer: one rule, one message, the same on every backend.

Each test here is a defect found by trying the package as a hostile user
would (issue 12); the rules are those of the docs' Definition page.
"""

from __future__ import annotations

import array
import collections
import collections.abc
import decimal
import functools
import importlib
import math
import re
import sys
import types
import warnings
from fractions import Fraction

import array_api_compat
import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _compat, _validation
from s2nn_xp._backends import Capability

from ._support import (
    Quantity,
    Unit,
    backend_of,
    selected_backends,
    to_numpy,
    xp_assert_close,
)

X = np.array([-3.0, -1.0, -0.0, 0.5, 2.0])
PUBLIC = {
    "forward": lambda x, **p: s2nn_xp.forward(x),
    "origin": s2nn_xp.origin,
    "gradient": lambda x, epsilon=1e-8, **p: s2nn_xp.gradient(x, **p),
    "s2nn": s2nn_xp.s2nn,
    "vjp": lambda x, **p: s2nn_xp.vjp(x, **p)[1](1.0),
}
PARAMETRISED = ("origin", "gradient", "s2nn", "vjp")


def _on(xp, values, dtype="float32"):
    return xp.asarray(np.asarray(values, dtype=dtype))


# --- item 1: concrete array parameters that overflow the compute dtype --------


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
@pytest.mark.parametrize("form", ["list", "numpy", "numpy-subclass"])
@pytest.mark.parametrize("function", PARAMETRISED)
def test_array_parameter_overflowing_the_compute_dtype_is_a_value_error(
    xp, name, form, function
):
    if function == "gradient" and name == "epsilon":
        pytest.skip("gradient has no epsilon")
    value = {"list": [1e39], "numpy": np.array([1e39])}.get(form)
    if value is None:
        value = np.array([1e39]).view(np.recarray)
    with pytest.raises(ValueError, match=rf"{name}.*overflows? float32"):
        PUBLIC[function](_on(xp, X), **{name: value})


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
@pytest.mark.parametrize("form", ["number", "list", "numpy"])
@pytest.mark.parametrize("function", PARAMETRISED)
def test_a_parameter_that_is_0_in_the_compute_dtype_is_a_value_error(
    xp, name, form, function
):
    """alpha=1e-300 with float32 x ran with alpha = 0 (not > 0), silently.

    epsilon may be 0; float64 x keeps the value.
    """
    if function == "gradient" and name == "epsilon":
        pytest.skip("gradient has no epsilon")
    tiny = 1e-300
    value = {"number": tiny, "list": [tiny], "numpy": np.array([tiny])}[form]
    call = functools.partial(PUBLIC[function], **{name: value})
    if name == "epsilon":
        call(_on(xp, X, "float32"))
    else:
        with pytest.raises(ValueError, match=rf"{name}.* 0 in float32, the dtype x"):
            call(_on(xp, X, "float32"))
    call(_on(xp, X, "float64"))


def test_numbers_found_valid_are_checked_again_in_another_dtype(xp):
    """Python-number parameters are checked once for each value and compute
    dtype (a call's cost): one found valid with float64 x, twice, still
    overflows float32 or is 0 there, on every backend."""
    for huge, tiny in [(1e39, 1e-46), (3e38 * 1.5, 7e-46)]:
        for _ in range(2):
            s2nn_xp.origin(_on(xp, X, "float64"), huge, tiny)
        with pytest.raises(ValueError, match=r"alpha=.* overflows float32"):
            s2nn_xp.origin(_on(xp, X, "float32"), huge)
        with pytest.raises(ValueError, match=r"beta=.* is 0 in float32"):
            s2nn_xp.gradient(_on(xp, X, "float32"), 4.0, tiny)


@pytest.mark.parametrize("x_dtype", ["float32", "float64"])
@pytest.mark.parametrize("parameter_dtype", ["float16", "float32"])
@pytest.mark.parametrize("function", PARAMETRISED)
def test_narrower_parameter_arrays_are_checked_without_overflow(
    xp, function, x_dtype, parameter_dtype
):
    """A float16 or float32 parameter array is no overflow of a wider compute dtype.

    Its check compared it with the compute dtype's largest value cast to the
    array's own dtype (NumPy 2's rule for a Python float), which overflowed:
    a warning (an error under the tests' filters), and FloatingPointError
    under the caller's np.errstate.
    """
    alpha = np.full(X.shape, 2.0, dtype=parameter_dtype)
    with np.errstate(all="raise"):
        got = PUBLIC[function](_on(xp, X, x_dtype), alpha=alpha)
    want = PUBLIC[function](_on(xp, X, x_dtype), alpha=2.0)
    xp_assert_close(got, want, xp=xp, rtol=0)


def test_array_api_strict_parameter_overflowing_is_a_value_error():
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match=r"beta.*overflows? float32"):
        s2nn_xp.gradient(
            strict.asarray(X, dtype=strict.float32), beta=strict.asarray([1e39])
        )


def test_float16_input_checks_parameters_against_float32(xp):
    if Capability.FLOAT16 not in backend_of(xp).capabilities:
        pytest.skip("no float16 in this library")
    x = _on(xp, X, "float16")
    with pytest.raises(ValueError, match=r"alpha.*overflows? float32"):
        s2nn_xp.gradient(x, np.array([1e39]))
    # 1e5 overflows float16 but not float32, where the math runs: accepted.
    assert np.isfinite(to_numpy(s2nn_xp.gradient(x, np.array([1e5])))).all()


# --- item 2: NumPy subclasses as parameters are checked -----------------------


@pytest.mark.parametrize(
    "value",
    [
        np.array([-3.0]).view(np.recarray),
        np.array([0.0]).view(type("Custom", (np.ndarray,), {})),
    ],
    ids=["recarray", "user-subclass"],
)
def test_numpy_subclass_parameters_are_checked(value):
    with pytest.raises(ValueError, match=r"alpha must be finite and > 0"):
        s2nn_xp.gradient(X, value)


@pytest.mark.parametrize(
    ("value", "tail"),
    [
        ([4.0, -1.0, np.nan], "2 of its 3 values (shape (3,)) are not"),
        (np.full((2, 3), -0.5), "6 of its 6 values (shape (2, 3)) are not"),
    ],
)
def test_an_array_parameter_out_of_range_says_how_many_values_are(value, tail):
    """An array given where a number was meant (a membrane potential, where a
    class was given for an instance and called with it) read as a number's
    error; how many of which shape point at it."""
    with pytest.raises(ValueError, match="alpha must be finite and > 0") as info:
        s2nn_xp.S2NN(alpha=value)
    assert str(info.value).endswith(tail)


@pytest.mark.parametrize("function", PARAMETRISED)
def test_a_parameters_shape_is_checked_before_its_values(xp, function):
    """Host values out of range in a shape that does not fit x were refused
    for their values, which the shape makes no sense of; and a broadcast
    view of a few bytes in a huge shape had every value compared (48 GiB: a
    MemoryError)."""
    x = _on(xp, X, "float32")
    call = functools.partial(getattr(s2nn_xp, function), x)
    names = (
        ["alpha", "beta"] if function == "gradient" else ["alpha", "beta", "epsilon"]
    )
    for name in names:
        for value in (
            [-1.0, -1.0],
            np.broadcast_to(-1.0, (1000, 5)),
            np.broadcast_to(1.0, (2**34, 5)),
        ):
            with pytest.raises(ValueError, match=rf"{name} of shape .* does not"):
                call(**{name: value})


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_numpy_subclass_cotangents_are_accepted():
    """np.matrix or any subclass, accepted as x and as a parameter, is a cotangent."""
    _, pullback = s2nn_xp.vjp(np.matrix([X]))
    got = pullback(np.matrix([np.full(X.shape, 2.0)]))
    np.testing.assert_array_equal(np.asarray(got), [2 * s2nn_xp.gradient(X)])
    _, pullback = s2nn_xp.vjp(X)
    custom = np.full(X.shape, 2.0).view(type("Custom", (np.ndarray,), {}))
    np.testing.assert_array_equal(pullback(custom), 2 * s2nn_xp.gradient(X))


class _OwnArithmetic(np.ndarray):
    """A subclass whose arithmetic is its own (here: none)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return NotImplemented


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("alpha", [2.0, np.array([2.0, 4.0, 2.0, 4.0, 2.0])])
@pytest.mark.parametrize("kind", [np.matrix, _OwnArithmetic])
def test_a_subclass_cotangent_is_taken_by_its_values(kind, alpha):
    """With array parameters a subclass cotangent met the math as itself:
    NumPy's 'operand type(s) all returned NotImplemented', not naming it (the
    NumPy kernels of number parameters read its values)."""
    x = np.array([X])  # 2-d, as np.matrix always is
    _, pullback = s2nn_xp.vjp(x, alpha)
    got = pullback(np.full(x.shape, 2.0).view(kind))
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, 2 * s2nn_xp.gradient(x, alpha))


def test_python_int_cotangents_beyond_int64(xp):
    """A real number, as an int parameter is: not an object array."""
    _, pullback = s2nn_xp.vjp(_on(xp, X, "float64"))
    np.testing.assert_allclose(
        to_numpy(pullback(2**70)), 2.0**70 * s2nn_xp.gradient(X), rtol=1e-15
    )
    with pytest.raises(ValueError, match=r"cotangent is a number of 401 digits"):
        pullback(10**400)
    np.testing.assert_allclose(  # a Fraction is a real number too
        to_numpy(pullback(Fraction(1, 3))), s2nn_xp.gradient(X) / 3, rtol=1e-15
    )


def test_masked_parameter_is_a_type_error():
    with pytest.raises(TypeError, match=r"beta must not be a masked array"):
        s2nn_xp.gradient(X, beta=np.ma.array([1.0, 2.0, 3.0, 4.0, 5.0]))


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max,
    reason="longdouble is float64 here",
)
@pytest.mark.parametrize(
    ("text", "match"), [("1e400", "overflow"), ("1e-400", "are 0")]
)
@pytest.mark.parametrize("form", ["array", "scalar", "list"])
def test_longdouble_parameters_beyond_float64_are_named_quietly(text, match, form):
    """Whatever the caller's floating-point state; the object refuses them too."""
    value = np.longdouble(text)
    if form == "array":
        value = np.array([value])
    if form == "list":
        value = [value]
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in (
            lambda: s2nn_xp.gradient(X, alpha=value),
            lambda: s2nn_xp.S2NN(beta=value),
        ):
            with pytest.raises(ValueError, match=rf"{match} .*float64, the widest"):
                call()
        s2nn_xp.origin(X, epsilon=value if match == "are 0" else 1e-8)


@pytest.mark.parametrize("form", ["number", "array"])
def test_a_value_that_rounds_to_float32s_largest_does_not_overflow(form):
    """Up to half an ulp beyond the largest float32 rounds to it, not to inf."""
    largest = float(np.finfo(np.float32).max)
    x = np.float32([-1.0, 0.5])
    for value, fits in ((largest + 2.0**102, True), (largest + 2.0**103, False)):
        beta = value if form == "number" else np.array([value])
        if fits:
            assert np.isfinite(s2nn_xp.gradient(x, beta=beta)).all()
        else:
            with pytest.raises(ValueError, match=r"overflow.* float32"):
                s2nn_xp.gradient(x, beta=beta)


def test_negative_epsilon_in_a_subclass_is_rejected():
    with pytest.raises(ValueError, match=r"epsilon must be finite and >= 0"):
        s2nn_xp.origin(X, epsilon=np.array([-1.0]).view(np.recarray))


# --- item 3: masked x keeps its mask ------------------------------------------


@pytest.mark.parametrize("function", list(PUBLIC))
def test_masked_x_keeps_its_mask(function):
    mask = [False, True, False, True, False]
    x = np.ma.array(X, mask=mask)
    result = PUBLIC[function](x)
    assert isinstance(result, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(result), mask)
    plain = PUBLIC[function](X)
    np.testing.assert_array_equal(result.compressed(), plain[~np.array(mask)])
    assert x.mask.tolist() == mask  # the input is unchanged


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("function", list(PUBLIC))
def test_a_masked_x_s_fill_value_and_hard_mask_are_the_results(function, dtype):
    """As NumPy's ufuncs keep them (they were dropped: 1e20 and a soft mask)."""
    mask = [False, True, False, True, False]
    x = np.ma.array(X.astype(dtype), mask=mask, fill_value=-1.0, hard_mask=True)
    results = [PUBLIC[function](x)]
    y, pullback = s2nn_xp.vjp(x)
    results += [y, pullback(1.0)]
    for result in results:
        assert result.fill_value == -1.0 and result.hardmask
        assert result.filled().tolist()[1::2] == [-1.0, -1.0]
    plain = PUBLIC[function](np.ma.array(X, mask=mask))  # NumPy's defaults
    assert plain.fill_value == 1e20 and not plain.hardmask
    assert x.fill_value == -1.0 and x.hardmask  # the input is unchanged


@pytest.mark.parametrize("function", list(PUBLIC))
def test_a_float16_masked_results_fill_value_reads_quietly(function):
    """NumPy's default fill value, 1e20, overflowed float16 when first read:
    under np.errstate(all="raise") an error (Dask read it joining chunks)."""
    x = np.ma.array(X.astype(np.float16), mask=[False, True, False, True, False])
    result = PUBLIC[function](x)
    with np.errstate(all="raise"):
        assert result.fill_value == np.inf
        np.ma.concatenate([result, result])
    # ml_dtypes' floats, whose default fill value NumPy gives as bytes (setting
    # it raised TypeError: every function failed on masked input of them)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.ma.array(X.astype(ml_dtypes.bfloat16), mask=[False, True] * 2 + [False])
    result = PUBLIC[function](x)
    assert result.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(np.ma.getmaskarray(result), x.mask)


@pytest.mark.parametrize("function", list(PUBLIC))
def test_a_results_mask_is_its_own(function):
    """Changing a result's mask changes neither x's nor another result's."""
    mask = [False, True, False, True, False]
    x = np.ma.array(X, mask=mask)
    result = PUBLIC[function](x)
    result[0] = np.ma.masked
    assert x.mask.tolist() == mask
    y, pullback = s2nn_xp.vjp(x)
    grad = pullback(1.0)
    grad[2] = np.ma.masked
    assert x.mask.tolist() == mask
    assert np.ma.getmaskarray(y).tolist() == mask


@pytest.mark.parametrize("x_mask", [None, [True, False, False, False, False]])
@pytest.mark.parametrize("shape", ["same", "broadcast"])
def test_a_masked_cotangent_masks_the_gradient(x_mask, shape):
    """The data under a masked cotangent element is no value: it was used."""
    x = X if x_mask is None else np.ma.array(X, mask=x_mask)
    _, pullback = s2nn_xp.vjp(x)
    data = np.full(X.shape, 5.0)
    mask = np.zeros(X.shape, bool)
    mask[2] = True
    if shape == "broadcast":  # a (1,)-shaped masked cotangent masks every value
        data, mask = data[:1], np.array([True])
    cotangent = np.ma.array(data, mask=mask)
    got = pullback(cotangent)
    want_mask = np.broadcast_to(mask, X.shape) | np.ma.getmaskarray(np.ma.array(x))
    np.testing.assert_array_equal(np.ma.getmaskarray(got), want_mask)
    plain = pullback(np.full(X.shape, 5.0))
    np.testing.assert_array_equal(got.compressed(), np.asarray(plain)[~want_mask])
    assert cotangent.mask.tolist() == mask.tolist()  # the input is unchanged


@pytest.mark.parametrize("x_mask", [None, [False] * 5, [True] + [False] * 4])
@pytest.mark.parametrize("cotangent_shape", [(5,), (1,), ()])
@pytest.mark.parametrize("nothing", [False, np.ma.nomask], ids=["falses", "nomask"])
def test_a_masked_cotangent_gives_a_masked_result_whatever_it_masks(
    x_mask, cotangent_shape, nothing
):
    """The result was a plain array where the cotangent masked no element,
    a masked one where it masked one: ``.mask`` and ``.filled()`` failed
    by the data's values. NumPy's ``x * g`` is masked either way."""
    x = X if x_mask is None else np.ma.array(X, mask=x_mask)
    _, pullback = s2nn_xp.vjp(x)
    cotangent = np.ma.array(np.full(cotangent_shape, 2.0), mask=nothing)
    got = pullback(cotangent)
    assert isinstance(got, np.ma.MaskedArray)
    assert type(got) is type(np.ones(X.shape) * cotangent)
    want_mask = np.ma.getmaskarray(np.ma.array(x))
    np.testing.assert_array_equal(np.ma.getmaskarray(got), want_mask)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(pullback(2.0)))
    if x_mask is not None:  # the result's mask is its own
        assert not np.shares_memory(got.mask, x.mask)


def test_a_masked_cotangent_for_another_library_is_a_type_error(xp):
    if backend_of(xp).name == "numpy":
        pytest.skip("NumPy's masked arrays carry the mask")
    _, pullback = s2nn_xp.vjp(_on(xp, X))
    with pytest.raises(TypeError, match="cotangent is a masked NumPy array"):
        pullback(np.ma.array(np.ones(X.shape), mask=[True] + [False] * 4))
    with pytest.raises(TypeError, match="cotangent is a masked NumPy array"):
        pullback(np.ma.array([1.0, 2.0], mask=[True, False]))  # of a wrong shape too


@pytest.mark.parametrize("shape", [(2,), (1, 2, 5), (3, 5)])
def test_a_masked_cotangent_of_a_wrong_shape_is_named(xp, shape):
    """Its mask was broadcast before the shape was checked: NumPy's own error."""
    _, pullback = s2nn_xp.vjp(_on(xp, np.resize(X, (2, 5))))
    cotangent = np.ma.array(np.ones(shape), mask=np.ones(shape, bool))
    error = ValueError if backend_of(xp).name == "numpy" else TypeError
    with pytest.raises(error, match="cotangent"):
        pullback(cotangent)


@pytest.mark.parametrize("function", ["forward", "origin", "gradient", "s2nn", "vjp"])
def test_a_masked_x_for_an_adapter_is_a_type_error(xp, function):
    """An adapter's library has no masks: the data alone would drop it silently."""
    adapter = backend_of(xp).adapter
    if adapter is None:
        pytest.skip("computed by the array-API math, which keeps masks")
    masked = np.ma.array(X, mask=[True] + [False] * 4)
    with pytest.raises(TypeError, match="x is a masked NumPy array"):
        getattr(importlib.import_module(adapter), function)(masked)
    with pytest.raises(TypeError, match="leave xp out"):  # x's own keeps the mask
        getattr(s2nn_xp, function)(masked, xp=xp)
    assert masked.mask.tolist() == [True] + [False] * 4


def test_the_pullback_differentiates_at_the_values_of_the_call(xp):
    """A training loop may update x (or a parameter) in place before the pullback.

    Where the library's arrays cannot change (JAX, Dask), nothing to check.
    """
    x = xp.asarray(X)
    alpha = xp.asarray(np.full(X.shape, 2.0))
    want = to_numpy(s2nn_xp.gradient(x, alpha, 0.5))
    _, pullback = s2nn_xp.vjp(x, alpha, 0.5)
    try:
        x[...] = x + 4.0
        alpha[...] = alpha * 3.0
    except (TypeError, ValueError, NotImplementedError, AttributeError):
        pytest.skip("the library's arrays cannot be changed in place")
    np.testing.assert_array_equal(to_numpy(pullback(1.0)), want)


def test_an_x_beyond_the_librarys_dimensions_is_refused_naming_the_limit(xp):
    """marray's functions stop at 32 dimensions (NumPy's, broadcasting masks):
    a bare RuntimeError naming no argument, where NumPy computes."""
    limit = backend_of(xp).max_dimensions
    if limit is None:
        pytest.skip("computes with any number of dimensions")
    at_limit = xp.asarray(np.zeros((1,) * limit))
    assert tuple(s2nn_xp.gradient(at_limit).shape) == (1,) * limit
    beyond = xp.asarray(np.zeros((1,) * (limit + 1)))
    message = rf"x has {limit + 1} dimensions, and \w+ computes with at most {limit}"
    for function in (s2nn_xp.forward, s2nn_xp.origin, s2nn_xp.gradient, s2nn_xp.vjp):
        with pytest.raises(ValueError, match=message):
            function(beyond)


def test_the_pullback_of_a_masked_x_keeps_the_mask_of_the_call():
    """A NumPy masked x's mask is its own array: updating x changes it."""
    x = np.ma.array(X, mask=[False, True, False, True, False])
    want = s2nn_xp.gradient(x)
    _, pullback = s2nn_xp.vjp(x)
    x[1] = 3.0  # unmasks x[1], in x's mask
    x.mask[0] = True
    got = pullback(1.0)
    np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(want))
    np.testing.assert_array_equal(got.filled(-1.0), want.filled(-1.0))


# --- item 5: subnormal input, as documented ------------------------------------


def test_subnormal_input_spikes_as_the_definition_says(xp):
    """Negative subnormals do not spike, except where the library flushes them
    to zero (XLA on the CPU, CuPy in float32)."""
    dtype = "float32"
    tiny = -np.finfo(np.float32).smallest_subnormal
    x = _on(xp, [tiny], dtype)
    spike = to_numpy(s2nn_xp.forward(x))
    flushed = backend_of(xp).flushes_input(x, np.float32)
    assert spike.tolist() == ([1.0] if flushed else [0.0])


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
@pytest.mark.parametrize("form", ["number", "numpy"])
def test_subnormal_parameters_are_refused_where_they_would_act_as_0(xp, name, form):
    """Where the library flushes subnormals (XLA), a subnormal parameter is 0.

    alpha=1e-38 gave sigmoid(0) = 0.5 for every x < 0 there, silently (0.27
    at x = -1e38 elsewhere): refused there, naming the parameter; computed
    with its value elsewhere. epsilon may be 0: a tiny one acts as 0 there,
    as one that rounds to 0 does everywhere.
    """
    tiny = float(np.finfo(np.float32).smallest_normal) / 4
    value = tiny if form == "number" else np.array([tiny, 1.0, 2.0])
    x = _on(xp, [-1e38, 0.0, 1.0], "float32")
    flushed = backend_of(xp).flushes(x, np.float32)
    if flushed and name != "epsilon":
        match = rf"^{name}\b.* subnormal in float32, which \w+ computes as 0"
        with pytest.raises(ValueError, match=match):
            s2nn_xp.origin(x, **{name: value})
        # judged in float32: this float64 value rounds to its smallest normal
        s2nn_xp.origin(x, **{name: float(np.nextafter(2.0**-126, 0.0))})
        return
    # Dask computes its graph here, under this error state: -1000 / alpha,
    # the sigmoid input's floor, overflows there (to -inf, a bound no value
    # reaches), as the docs' Backends page says
    with np.errstate(over="ignore"):
        got = to_numpy(s2nn_xp.origin(x, **{name: value}))
    assert np.isfinite(got).all()
    if name == "alpha":  # sigmoid(-1e38 * 2.9e-39), not sigmoid(0)
        assert abs(float(got[0]) - 1 / (1 + np.exp(1e38 * tiny))) < 1e-6


def test_the_definition_documents_flushed_subnormals():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "definition.rst").read_text()
    assert "subnormal" in text and "XLA" in text


# --- item 7: big-endian input ---------------------------------------------------


@pytest.mark.parametrize("dtype", [">f8", ">f4", "<f8"])
@pytest.mark.parametrize("function", list(PUBLIC))
def test_non_native_byte_order(dtype, function):
    x = X.astype(dtype)
    result = PUBLIC[function](x)
    assert result.dtype.kind == "f" and result.dtype.isnative
    assert result.dtype.itemsize == x.dtype.itemsize
    np.testing.assert_allclose(
        result, PUBLIC[function](X.astype(x.dtype.newbyteorder("=")))
    )


# --- item 8: tiny alpha ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("function", PARAMETRISED)
def test_tiny_alpha_gives_values_without_warnings(xp, dtype, function):
    if dtype == "float16" and Capability.FLOAT16 not in backend_of(xp).capabilities:
        pytest.skip("no float16 in this library")
    x = _on(xp, [-2.0, -1.0, 0.0, 1.0, -np.inf], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = to_numpy(PUBLIC[function](x, alpha=1e-37))
    assert not np.isnan(result).any()


# --- item 9: the caller's floating-point error state -------------------------------


@pytest.mark.parametrize("function", list(PUBLIC))
def test_valid_input_never_raises_under_errstate_raise(function):
    x = np.array([-np.inf, -1e300, -200.0, -1.0, 0.0, np.inf, np.nan])
    with np.errstate(all="raise"):
        result = PUBLIC[function](x)
    assert np.isnan(result[-1])


@pytest.mark.parametrize("function", list(PUBLIC))
def test_valid_input_never_raises_under_errstate_raise_on_any_backend(xp, function):
    """array-api-strict and marray compute with NumPy underneath too, and
    Dask's tasks a chunk, with number parameters (the user guide's Dask)."""
    x = _on(xp, [-np.inf, -1e300, -300.0, -1.0, 0.0, np.inf], "float64")
    with np.errstate(all="raise"):
        result = to_numpy(PUBLIC[function](x))
    assert np.isfinite(result).all() or function == "origin"


def test_the_plain_module_as_xp():
    """``xp=numpy`` (no isdtype in NumPy 1.x), ``xp=dask.array``: compat's namespace."""
    want = s2nn_xp.gradient(X)
    np.testing.assert_array_equal(s2nn_xp.gradient(X, xp=np), want)
    np.testing.assert_array_equal(s2nn_xp.gradient(list(X), xp=np), want)
    if "dask" in selected_backends():
        da = pytest.importorskip("dask.array")
        np.testing.assert_array_equal(
            s2nn_xp.gradient(da.asarray(X), xp=da).compute(), want
        )


def test_arrays_on_another_device_than_x_are_named():
    """array-api-strict's devices: the argument named, not the library's message."""
    strict = pytest.importorskip("array_api_strict")
    if "array_api_strict" not in selected_backends():
        pytest.skip("array_api_strict not selected")
    other = strict.Device("device1")
    x = strict.asarray([-1.0, 0.0, 1.0], device=other)
    alpha = strict.asarray([4.0, 4.0, 4.0])  # the default device
    with pytest.raises(ValueError, match=r"^alpha is on device .*, x on device"):
        s2nn_xp.gradient(x, alpha)
    with pytest.raises(ValueError, match=r"^epsilon is on device"):
        s2nn_xp.origin(x, epsilon=strict.asarray([0.0, 0.0, 0.0]))
    _, pullback = s2nn_xp.vjp(x)
    with pytest.raises(ValueError, match=r"^cotangent is on device"):
        pullback(strict.asarray([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(  # host data goes to x's device
        to_numpy(pullback([2.0, 2.0, 2.0])), 2 * to_numpy(s2nn_xp.gradient(x))
    )


def test_host_cotangents_go_to_the_compute_dtype_directly():
    """A device without float64 takes a Python-number cotangent of float32 x."""
    strict = pytest.importorskip("array_api_strict")
    if "array_api_strict" not in selected_backends():
        pytest.skip("array_api_strict not selected")
    x = strict.asarray([-1.0, 0.0, 1.0], dtype=strict.float32)
    devices = [d for d in strict.__array_namespace_info__().devices() if "64" in str(d)]
    for device in devices or [None]:
        on_device = strict.asarray(x, device=device) if device is not None else x
        _, pullback = s2nn_xp.vjp(on_device)
        for cotangent in (2.0, [2.0, 2.0, 2.0], np.full(3, 2.0, np.float16)):
            got = to_numpy(pullback(cotangent))
            np.testing.assert_array_equal(got, 2 * to_numpy(s2nn_xp.gradient(x)))


# --- item 11: one rule for mixed parameters ----------------------------------------


def _host_form(values, form):
    """``values`` as a list, or a NumPy array of an unusual layout."""
    if form == "list":
        return list(values)
    if form == "deque":  # any sequence is host data, as a list is
        return collections.deque(values)
    if form == "array.array":
        return array.array("d", values)
    host = np.array(values, dtype=np.float64)
    if form == "reversed":  # negative strides (PyTorch refuses them)
        return np.ascontiguousarray(host[::-1])[::-1]
    if form == "read-only":  # a tensor must not share it (PyTorch warns)
        host.flags.writeable = False
    if form == "big-endian":  # PyTorch refuses a non-native byte order
        host = host.astype(host.dtype.newbyteorder("S"))
    if form == "field":  # strides no multiple of 8 bytes (PyTorch refuses them)
        record = np.zeros(host.shape, dtype=[("value", "f8"), ("flag", "i4")])
        record["value"] = host
        host = record["value"]
    return host


HOST_FORMS = [
    "numpy",
    "list",
    "deque",
    "array.array",
    "reversed",
    "read-only",
    "big-endian",
    "field",
]


@pytest.mark.parametrize("function", PARAMETRISED)
@pytest.mark.parametrize("form", HOST_FORMS)
def test_host_parameters_work_with_every_library(xp, function, form):
    alpha = _host_form([4.0, 2.0, 4.0, 2.0, 4.0], form)
    beta = _host_form([1.0, 2.0, 1.0, 2.0, 1.0], form)
    got = PUBLIC[function](_on(xp, X, "float64"), alpha=alpha, beta=beta)
    want = PUBLIC[function](X, alpha=np.array(alpha), beta=np.array(beta))
    xp_assert_close(got, want, xp=xp, rtol=1e-12)


@pytest.mark.parametrize("form", HOST_FORMS)
def test_host_cotangents_of_any_layout_work_with_every_library(xp, form):
    cotangent = _host_form([1.0, -2.0, 3.0, -4.0, 5.0], form)
    _, pullback = s2nn_xp.vjp(_on(xp, X, "float64"))
    want = s2nn_xp.gradient(X) * np.array(cotangent)
    xp_assert_close(pullback(cotangent), want, xp=xp, rtol=1e-12)


@pytest.mark.parametrize("x_shape", [(), (5,)])
@pytest.mark.parametrize("form", ["numpy", "list", "native"])
def test_cotangents_of_more_dimensions_than_x_are_named(xp, x_shape, form):
    """Host data for a Dask x was chunked like x before its shape was checked:
    IndexError "tuple index out of range"."""
    x = _on(xp, np.resize(X, x_shape))
    cotangent = np.ones((3, *x_shape))
    cotangent = {"numpy": cotangent, "list": cotangent.tolist()}.get(
        form, _on(xp, cotangent)
    )
    _, pullback = s2nn_xp.vjp(x)
    with pytest.raises(ValueError, match=r"^cotangent of shape .* more dimensions"):
        pullback(cotangent)


def test_a_list_holding_arrays_of_a_library_is_refused(xp):
    """A list would pass them as plain numbers: no gradient, no device."""
    two = xp.asarray(2.0)
    if array_api_compat.is_numpy_namespace(xp):
        np.testing.assert_array_equal(  # NumPy's own arrays are numbers to it
            s2nn_xp.gradient(X, [two, 4.0, two, 4.0, two]),
            s2nn_xp.gradient(X, np.array([2.0, 4.0, 2.0, 4.0, 2.0])),
        )
        return
    library = backend_of(xp).module.partition(".")[0]
    x = _on(xp, X)
    for call in (
        lambda: s2nn_xp.gradient(x, [two, 4.0, two, 4.0, two]),
        lambda: s2nn_xp.origin(x, 4.0, [[1.0, two, 1.0, 1.0, 1.0]]),
        lambda: s2nn_xp.S2NN(alpha=[two]),
        lambda: s2nn_xp.gradient([two, 1.0]),
    ):
        with pytest.raises(TypeError, match=rf"is a list holding {library} arrays"):
            call()
    _, pullback = s2nn_xp.vjp(x)
    with pytest.raises(TypeError, match=r"cotangent is a list holding"):
        pullback([two] * 5)


def test_arrays_of_a_third_library_are_rejected_clearly():
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match=r"different libraries.*alpha"):
        s2nn_xp.gradient(X, alpha=strict.asarray(4.0))
    _, pullback = s2nn_xp.vjp(X)
    with pytest.raises(TypeError, match=r"different libraries.*cotangent"):
        pullback(strict.asarray(np.ones(5)))


def test_a_chunked_librarys_results_are_in_xs_chunks(xp):
    """Host data (a parameter, a cotangent) and a broadcast cotangent are
    made in x's chunks (_compat's array_for, broadcast_to_x): a chunked
    library added without its branches there made a number cotangent in
    chunks of one value each (a pullback 200 times slower: a cubed trial)."""
    backend = backend_of(xp)
    x = backend.asarray(np.linspace(-3.0, 3.0, 64))
    chunks = getattr(x, "chunks", None)
    if chunks is None:
        pytest.skip(f"{backend.name}'s arrays have no chunks")
    assert len(chunks[0]) > 1, (
        f"{backend.name}'s record makes arrays of one chunk: its from_numpy "
        "should make several (as Dask's), for this test to check anything"
    )
    alpha = np.linspace(1.0, 5.0, 64)
    _, pullback = s2nn_xp.vjp(x, alpha=alpha)
    results = {
        "host alpha": s2nn_xp.gradient(x, alpha=alpha),
        "number cotangent": pullback(2.0),
        "host cotangent": pullback(np.full(64, 2.0)),
        "one-value cotangent": pullback(np.array([2.0])),
    }
    # The helpers themselves, whose chunks an operation with x may hide.
    ns = _compat.array_namespace(x)
    results["array_for"] = _compat.array_for(ns, alpha, x.dtype, x)
    results["broadcast_to_x"] = _compat.broadcast_to_x(ns, ns.asarray(2.0), x)
    for name, result in results.items():
        assert result.chunks == chunks, name


def _third_library(xp):
    """An installed library not ``xp``'s or NumPy's: array-api-strict first,
    whose values sit on the host (the registry's ``values_on_host``), where
    reading them came first."""
    own = backend_of(xp).name
    for name in ("array_api_strict", "torch", "dask"):
        if name != own and importlib.util.find_spec(name) is not None:
            return name
    pytest.skip("no third library with host values is installed")


@pytest.mark.parametrize("value", [2.0, 0.0, -1.0, float("nan")])
def test_an_array_of_a_third_library_is_a_type_error_whatever_its_values(xp, value):
    """Its values were checked first: a valid one raised TypeError (the
    libraries), an invalid one ValueError (the values)."""
    library = _third_library(xp)
    if library == "dask":
        import dask.array as da

        alien = da.from_array(np.asarray(value))
    else:
        alien = importlib.import_module(library).asarray(value)
    x = _on(xp, X)
    for name in ("alpha", "beta", "epsilon"):
        with pytest.raises(TypeError, match=rf"different libraries.*{name}"):
            s2nn_xp.origin(x, **{name: alien})


# --- item 12: messages that name the argument ---------------------------------------


def test_mismatched_xp_names_xp():
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match=r"xp=array_api_strict does not match"):
        s2nn_xp.gradient(X, xp=strict)


@pytest.mark.parametrize("bad", ["numpy", 3])
def test_xp_that_is_no_namespace_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"xp must be an array-API namespace"):
        s2nn_xp.gradient(X, xp=bad)
    with pytest.raises(TypeError, match=r"not the module math$"):
        s2nn_xp.gradient(X, xp=math)


@pytest.mark.parametrize("function", list(PUBLIC))
def test_python_numbers_numpy_cannot_hold_are_floats(function):
    """An int beyond int64 and a Fraction: real numbers, as parameters take them."""
    for number in (10**30, -(2**70), Fraction(1, 3)):
        np.testing.assert_array_equal(
            PUBLIC[function](number), PUBLIC[function](float(number))
        )
    with pytest.raises(ValueError, match=r"x is a number of 401 digits, beyond"):
        PUBLIC[function](10**400)
    # more digits than Python turns into text (its ValueError said so)
    with pytest.raises(ValueError, match=r"x is a number of 5001 digits, beyond"):
        PUBLIC[function](-(10**5000))


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
def test_a_parameter_int_beyond_float64_is_said_so(name):
    """As for x: it said "must be finite and > 0" of a finite, positive int."""
    cases = ((10**400, 401), (2 * 10**308, 309), (10**5000, 5001), (10**5000 - 1, 5000))
    for number, digits in cases:
        want = rf"^{name} is a number of {digits} digits, beyond the range of float64$"
        with pytest.raises(ValueError, match=want):
            s2nn_xp.origin(np.ones(2), **{name: number})
        with pytest.raises(ValueError, match=want):
            s2nn_xp.S2NN(**{name: number})
        # in a list it is one of the values, not the parameter
        with pytest.raises(ValueError, match=want.replace(" is a ", " holds a ")):
            s2nn_xp.origin(np.ones(2), **{name: [1.0, number]})


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_a_parameter_fraction_below_float64_is_said_so(name):
    """It said "must be finite and > 0" of a positive number that rounds to 0."""
    want = rf"^{name} \(a Fraction of about 1e-400\) is 0 in float64, the widest"
    with pytest.raises(ValueError, match=want):
        s2nn_xp.origin(np.ones(2), **{name: Fraction(1, 10**400)})
    with pytest.raises(ValueError, match=rf"^{name} must be finite and > 0"):
        s2nn_xp.origin(np.ones(2), **{name: -Fraction(1, 10**400)})
    # epsilon may be 0: one that rounds to it is 0
    np.testing.assert_array_equal(
        s2nn_xp.origin(np.ones(2), epsilon=Fraction(1, 10**400)),
        s2nn_xp.origin(np.ones(2), epsilon=0.0),
    )
    # in a list, one of its values (it said "its one value is not" of a
    # positive one, then that the parameter was the Fraction)
    held = rf"^{name} holds a Fraction of about 1e-400, which is 0 in float64, the"
    with pytest.raises(ValueError, match=held):
        s2nn_xp.origin(np.ones(2), **{name: [0.5, Fraction(1, 10**400)]})
    np.testing.assert_array_equal(
        s2nn_xp.origin(np.ones(2), epsilon=[Fraction(1, 10**400)] * 2),
        s2nn_xp.origin(np.ones(2), epsilon=0.0),
    )
    # terms beyond the digits Python turns into text (repr raised its
    # ValueError about the digit limit, which named no parameter)
    beyond = rf"^{name} \(a Fraction of about 1e-5000\) is 0 in float64"
    with pytest.raises(ValueError, match=beyond):
        s2nn_xp.origin(np.ones(2), **{name: Fraction(1, 10**5000)})
    held = rf"^{name} holds a Fraction of about 1e-5000,"
    with pytest.raises(ValueError, match=held):
        s2nn_xp.origin(np.ones(2), **{name: [Fraction(1, 10**5000)]})


def test_parameters_of_every_ml_dtypes_float_format_are_compared_in_float64():
    """float8_e8m0fnu holds no 0: the bound, compared in that dtype, was NaN
    there, and every value was refused."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    powers = np.array([0.5, 1.0, 2.0, 4.0])  # exact in every format
    x = np.linspace(-2.0, 2.0, 4)
    tested = []
    for format_name in dir(ml_dtypes):
        dtype = getattr(ml_dtypes, format_name)
        if "float" not in format_name or not isinstance(dtype, type):
            continue
        held = powers.astype(dtype)
        for name in ("alpha", "beta", "epsilon"):
            np.testing.assert_array_equal(
                s2nn_xp.origin(x, **{name: held}), s2nn_xp.origin(x, **{name: powers})
            )
        # out of range still refused (e8m0 has no negatives: it holds NaN)
        negative = (-powers).astype(dtype)
        with pytest.raises(ValueError, match="alpha must be finite and > 0"):
            s2nn_xp.origin(x, alpha=negative)
        tested.append(format_name)
    assert "bfloat16" in tested
    if hasattr(ml_dtypes, "float8_e8m0fnu"):
        assert "float8_e8m0fnu" in tested


def test_a_list_x_of_bools_and_ints_beyond_int64_is_floats(xp):
    """Each alone was taken; together NumPy makes an object array, which
    refused the bool (a rule of parameters' lists)."""
    values, floats = [True, 2**70, False], [1.0, 2.0**70, 0.0]
    for function in (s2nn_xp.forward, s2nn_xp.origin, s2nn_xp.gradient):
        np.testing.assert_array_equal(
            to_numpy(function(values, xp=xp)), to_numpy(function(floats, xp=xp))
        )
        np.testing.assert_array_equal(  # as [True, 0.5] is
            to_numpy(function([True, Fraction(1, 2)], xp=xp)),
            to_numpy(function([1.0, 0.5], xp=xp)),
        )
        np.testing.assert_array_equal(  # NumPy's bool too
            to_numpy(function([np.True_, 2**70], xp=xp)),
            to_numpy(function([1.0, 2.0**70], xp=xp)),
        )
    # parameters and cotangents take no bool, in any company
    with pytest.raises(TypeError, match="alpha"):
        s2nn_xp.gradient(_on(xp, X[:3]), alpha=values)
    with pytest.raises(TypeError, match="cotangent is a list holding a bool"):
        s2nn_xp.vjp(_on(xp, X[:3]))[1](values)


def test_lists_of_python_numbers_numpy_cannot_hold_are_floats_everywhere(xp):
    """In a list as on their own: as x (with xp= too), parameter and cotangent."""
    numbers = [10**30, Fraction(1, 3), -(2**70), 0.5, 2]
    floats = [float(n) for n in numbers]
    for got, want in (
        (s2nn_xp.origin(numbers), s2nn_xp.origin(floats)),
        (s2nn_xp.origin(numbers, xp=xp), s2nn_xp.origin(floats, xp=xp)),
        (
            s2nn_xp.gradient(_on(xp, X), alpha=[2**70, Fraction(1, 2), 4, 4, 4]),
            s2nn_xp.gradient(_on(xp, X), alpha=[2.0**70, 0.5, 4, 4, 4]),
        ),
        (s2nn_xp.vjp(_on(xp, X))[1](numbers), s2nn_xp.vjp(_on(xp, X))[1](floats)),
    ):
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    with pytest.raises(ValueError, match=r"x holds a number of 401 digits"):
        s2nn_xp.forward([[1.0, 10**400]], xp=xp)


def test_lists_of_ints_numpy_reads_as_uint64_are_floats_too(xp):
    """Ints from 2**63 to 2**64 - 1, which NumPy reads as uint64: not integer
    input (PyTorch computed [2**63] in float32, and 2**63 in float64)."""
    ints = [[2**63, 2**63 + 4096], [2**64 - 1, 2**64 - 2]]  # (2**63, 1): float64
    floats = [[float(n) for n in row] for row in ints]
    for got, want in (
        (s2nn_xp.origin(ints, xp=xp), s2nn_xp.origin(floats, xp=xp)),
        (s2nn_xp.gradient(tuple(ints[0]), xp=xp), s2nn_xp.gradient(floats[0], xp=xp)),
        (
            s2nn_xp.vjp(_on(xp, X[:2]))[1](ints[0]),
            s2nn_xp.vjp(_on(xp, X[:2]))[1](floats[0]),
        ),
        (
            s2nn_xp.gradient(_on(xp, X[:2]), alpha=[2**63, 4]),
            s2nn_xp.gradient(_on(xp, X[:2]), alpha=[2.0**63, 4.0]),
        ),
    ):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(to_numpy(got), to_numpy(want))
    # numbers NumPy reads as uint64 otherwise stay integer input
    unsigned = s2nn_xp.gradient([np.uint64(2**63)], xp=xp)
    assert unsigned.dtype == s2nn_xp.gradient([1], xp=xp).dtype


@pytest.mark.parametrize(
    "bad", [None, "1.0", {"x": 1}, b"1", bytearray(b"1"), memoryview(b"1")]
)
@pytest.mark.parametrize("function", list(PUBLIC))
def test_x_that_is_no_number_is_a_type_error(bad, function):
    with pytest.raises(TypeError, match=r"x must be an array or a real number"):
        PUBLIC[function](bad)
    if not isinstance(bad, (str, bytes, bytearray, memoryview)):
        return
    with pytest.raises(TypeError, match=r"alpha must be a real number or an array"):
        s2nn_xp.gradient(X, alpha=bad)  # not 97, 98, ... (the bytes' values)
    with pytest.raises(TypeError, match=r"cotangent must be a real number"):
        s2nn_xp.vjp(X)[1](bad)


@pytest.mark.skipif(
    np.finfo(np.longdouble).bits <= 64, reason="longdouble is float64 here"
)
@pytest.mark.parametrize("function", list(PUBLIC))
def test_x_wider_than_float64_is_a_type_error(function):
    """The guards assume float64's range (exp(-1000) is 0): not longdouble's."""
    x = np.full(3, -300.0, dtype=np.longdouble)
    with pytest.raises(TypeError, match=r"x has dtype float\d+, wider than float64"):
        PUBLIC[function](x)


@pytest.mark.parametrize(
    "x", [np.array([1.0], np.longdouble), np.array(["1"]), np.array([object()])]
)
@pytest.mark.parametrize("adapter", ["torch", "jax"])
def test_adapters_name_x_of_no_supported_numpy_dtype(adapter, x):
    """NumPy data for an adapter's s2nn: the Definition's message, not the library's."""
    if adapter not in selected_backends():
        pytest.skip(f"{adapter} not selected")
    if x.dtype == np.longdouble and np.finfo(np.longdouble).bits <= 64:
        pytest.skip("longdouble is float64 here")
    module = pytest.importorskip(f"s2nn_xp.{adapter}")
    with pytest.raises(TypeError, match=r"^x (must|has)"):
        module.s2nn(x)


ML_DTYPES = ["bfloat16", "float8_e4m3fn", "float8_e5m2", "int4"]


@pytest.mark.parametrize("name", ML_DTYPES)
def test_ml_dtypes_cotangents_and_parameters_on_every_backend(xp, name):
    """NumPy arrays of ml_dtypes' types are real data for every argument.

    NumPy's isdtype does not know them (an unclear TypeError naming no
    argument), and PyTorch cannot read them.
    """
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = np.array([0.5, 1.0, 2.0, 3.0, 4.0])  # exact in each of them
    if name == "int4":
        values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    held = values.astype(getattr(ml_dtypes, name))
    x = _on(xp, X)
    _, pullback = s2nn_xp.vjp(x)
    xp_assert_close(pullback(held), pullback(_on(xp, values)), xp=xp, rtol=0)
    for function in PARAMETRISED:
        xp_assert_close(
            PUBLIC[function](x, alpha=held),
            PUBLIC[function](x, alpha=values.tolist()),
            xp=xp,
            rtol=0,
        )


@pytest.mark.parametrize("name", ML_DTYPES)
@pytest.mark.parametrize("function", list(PUBLIC))
def test_ml_dtypes_x_follows_the_dtype_rules_in_numpy(name, function):
    """Floats computed in float32 and rounded once; integers promoted (as JAX does)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = np.dtype(getattr(ml_dtypes, name))
    x = np.linspace(-3.0, 3.0, 3 * 2**17).astype(dtype)  # the block path too
    got = PUBLIC[function](x)
    if name == "int4":
        assert got.dtype == np.float64
        want = PUBLIC[function](x.astype(np.float64))
    else:
        assert got.dtype == dtype
        want = PUBLIC[function](x.astype(np.float32)).astype(dtype)
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


@pytest.mark.parametrize("adapter", ["torch", "jax"])
def test_adapters_take_numpy_data_as_the_numpy_path_does(adapter):
    """Big-endian NumPy x (native-order results) and NumPy-scalar cotangents."""
    if adapter not in selected_backends():
        pytest.skip(f"{adapter} not selected")
    module = pytest.importorskip(f"s2nn_xp.{adapter}")
    swapped = X.astype(">f8")
    np.testing.assert_allclose(  # XLA's exp is not NumPy's: a few ulp
        to_numpy(module.s2nn(swapped, origin=True)), s2nn_xp.origin(X), rtol=1e-6
    )
    for form in ("reversed", "read-only", "big-endian", "field"):
        x = _host_form(X, form)
        np.testing.assert_array_equal(
            to_numpy(module.gradient(x)), to_numpy(module.gradient(X.copy()))
        )
        assert x.flags.writeable == (form != "read-only")
    array = {"torch": "torch.tensor", "jax": "jax.numpy.asarray"}[adapter]
    library, _, name = array.rpartition(".")
    x = getattr(pytest.importorskip(library), name)(X)
    _, pullback = s2nn_xp.vjp(x)
    np.testing.assert_array_equal(
        to_numpy(pullback(np.float64(2.0))), to_numpy(pullback(2.0))
    )


@pytest.mark.parametrize("adapter", ["torch", "jax"])
def test_adapters_take_numpy_arrays_of_every_ml_dtypes_float(adapter):
    """In the library's dtype of that name where it can hold it, else float32.

    (XLA's CPU backend names float6 but holds none: an XLA error before.)
    """
    if adapter not in selected_backends():
        pytest.skip(f"{adapter} not selected")
    module = pytest.importorskip(f"s2nn_xp.{adapter}")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    names = [n for n in dir(ml_dtypes) if n.startswith(("float4", "float6", "float8"))]
    assert any(name.startswith("float6") for name in names)
    for name in names:
        x = np.array([-1.0, -0.25, 0.5, 2.0]).astype(getattr(ml_dtypes, name))
        want = s2nn_xp.gradient(x.astype(np.float32))
        for function in (module.gradient, lambda x: module.vjp(x)[1](1.0)):
            result = function(x)
            kept = str(result.dtype).endswith(name)
            assert kept or str(result.dtype).endswith("float32"), name
            result_xp = array_api_compat.array_namespace(result)
            got = to_numpy(result_xp.astype(result, result_xp.float32))
            rounded = want.astype(x.dtype).astype(np.float32) if kept else want
            # XLA's exp is not NumPy's: a few ulp of float32
            np.testing.assert_allclose(got, rounded, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("adapter", ["torch", "jax"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int8"])
def test_adapters_take_numpy_integers_of_every_width(adapter, dtype):
    """PyTorch reads no uint64 array, nor a NumPy integer scalar."""
    if adapter not in selected_backends():
        pytest.skip(f"{adapter} not selected")
    module = pytest.importorskip(f"s2nn_xp.{adapter}")
    values = np.array([0, 1, 3], dtype=dtype)
    want = to_numpy(module.gradient(values.astype(np.int64)))
    np.testing.assert_array_equal(to_numpy(module.gradient(values)), want)
    np.testing.assert_array_equal(to_numpy(module.gradient(values[2])), want[2])
    if adapter == "torch":
        module.S2NN(alpha=values + 1, beta=values[2])  # no torch TypeError


def test_bfloat16_numpy_arrays_are_computed_in_float32():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = X.astype(ml_dtypes.bfloat16)
    result = s2nn_xp.gradient(x)
    assert result.dtype == x.dtype
    want = s2nn_xp.gradient(X.astype(np.float32)).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(result.astype(np.float32), want.astype(np.float32))


def test_each_message_is_written_once():
    """The rules' messages live in _validation; adapters raise its errors."""
    import inspect

    from s2nn_xp import _api, _evaluation, _object

    for phrase in ("must have a real numeric dtype", "does not broadcast"):
        assert phrase in inspect.getsource(_validation)
        for module in (_api, _evaluation, _object):
            assert phrase not in inspect.getsource(module)


# --- the selected frameworks' own entry points ----------------------------------------


@pytest.fixture
def torch():
    if "torch" not in selected_backends():
        pytest.skip("torch not selected")
    return pytest.importorskip("torch")


@pytest.fixture
def jnp():
    if "jax" not in selected_backends():
        pytest.skip("jax not selected")
    return pytest.importorskip("jax.numpy")


def test_torch_adapter_rejects_overflowing_numpy_parameters(torch):
    import s2nn_xp.torch as st

    x = torch.zeros(3)
    for call in (
        lambda: st.s2nn(x, np.array([1e39])),
        lambda: st.S2NN(beta=np.array([1e39]))(x),
        lambda: s2nn_xp.gradient(x, [1e39]),
    ):
        with pytest.raises(ValueError, match=r"overflows? float32"):
            call()


def test_jax_adapter_rejects_overflowing_numpy_parameters(jnp):
    import s2nn_xp.jax as sj

    x = jnp.zeros(3, dtype=jnp.float32)
    with pytest.raises(ValueError, match=r"alpha.*overflows? float32"):
        sj.s2nn(x, np.array([1e39]))
    with pytest.raises(TypeError, match=r"x must be an array or a real number"):
        sj.s2nn(None)


def test_torch_tiny_alpha_in_every_path(torch):
    import s2nn_xp.torch as st

    for dtype in (torch.float16, torch.float32):
        x = torch.tensor([-2.0, -1.0, 0.0, 1.0], dtype=dtype, requires_grad=True)
        st.s2nn(x, 1e-37).sum().backward()
        assert torch.isfinite(x.grad).all()
        assert torch.isfinite(st.S2NN(alpha=1e-37, origin=True)(x)).all()
        assert torch.isfinite(s2nn_xp.gradient(x.detach(), 1e-37)).all()


def test_torch_sparse_and_nested_x_name_the_layout(torch):
    sparse = torch.zeros(3).to_sparse()
    with pytest.raises(TypeError, match=r"x must be a dense .*sparse_coo"):
        s2nn_xp.s2nn(sparse)
    nested = torch.nested.nested_tensor(
        [torch.zeros(2), torch.zeros(3)], layout=torch.jagged
    )
    with pytest.raises(TypeError, match=r"x must be a dense .*nested"):
        s2nn_xp.gradient(nested)


def test_torch_sparse_nested_and_meta_parameters_are_named(torch):
    """They reached torch's own errors (an INTERNAL ASSERT in a backward)."""
    import s2nn_xp.torch as st

    x = torch.tensor([-1.0, 0.5], requires_grad=True)
    sparse = torch.tensor([4.0, 4.0]).to_sparse().requires_grad_()
    nested = torch.nested.nested_tensor([torch.ones(2)], layout=torch.jagged)
    calls = (
        lambda value: s2nn_xp.s2nn(x, value),
        lambda value: s2nn_xp.gradient(x, beta=value),
        lambda value: st.S2NN(alpha=value, learnable=True),
        lambda value: s2nn_xp.S2NN(alpha=value)(x),
    )
    for value, kind in ((sparse, "sparse_coo"), (nested, "nested")):
        for call in calls:
            with pytest.raises(
                TypeError, match=rf"(alpha|beta) must be a dense .*{kind}"
            ):
                call(value)
    with pytest.raises(ValueError, match="alpha is on the meta device"):
        s2nn_xp.s2nn(x, torch.ones(2, device="meta"))


@pytest.mark.filterwarnings("ignore:The PyTorch API of MaskedTensors is in prototype")
def test_torch_masked_tensors_are_refused_naming_the_argument(torch):
    """Some functions passed, gradient failed inside torch's dispatch."""
    masked = pytest.importorskip("torch.masked")
    values = masked.masked_tensor(
        torch.tensor([-1.0, 1.0]), torch.tensor([True, False])
    )
    x = torch.tensor([-1.0, 1.0])
    calls = {
        "x": [getattr(s2nn_xp, f) for f in ("forward", "origin", "gradient", "s2nn")],
        "alpha": [lambda a: s2nn_xp.s2nn(x, a), lambda a: s2nn_xp.gradient(x, a)],
        "cotangent": [lambda c: s2nn_xp.vjp(x)[1](c)],
    }
    for name, functions in calls.items():
        for call in functions:
            with pytest.raises(TypeError, match=f"{name} is a torch MaskedTensor"):
                call(values)


def test_torch_vjp_pullback_under_vmap(torch):
    x = torch.tensor([-1.0, 0.0, 1.0])
    _, pullback = s2nn_xp.vjp(x)
    cotangents = torch.eye(3)
    got = torch.func.vmap(pullback)(cotangents)
    torch.testing.assert_close(got, torch.diag(s2nn_xp.gradient(x)))


def test_torch_mixed_parameters_on_every_function(torch):
    import s2nn_xp.torch as st

    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    spike = st.S2NN(alpha=np.array([4.0, 2.0, 1.0]))
    want = s2nn_xp.gradient(x.numpy(), np.array([4.0, 2.0, 1.0]))
    np.testing.assert_allclose(spike.surrogate_grad(x).numpy(), want)
    np.testing.assert_allclose(s2nn_xp.vjp(x, [4.0, 2.0, 1.0])[1](1.0).numpy(), want)


def test_torch_compile_does_not_recompile_per_number(torch):
    """A schedule that changes alpha or beta every call compiles at most twice."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    import s2nn_xp.torch as st

    x = torch.randn(8, requires_grad=True)
    values = [1.0 + 0.25 * i for i in range(torch._dynamo.config.recompile_limit + 4)]
    for fullgraph in (True, False):
        torch._dynamo.reset()
        counters.clear()
        function = torch.compile(
            lambda x, a: st.s2nn(x, a, 2.0), backend="aot_eager", fullgraph=fullgraph
        )
        for alpha in values:
            function(x, alpha).sum().backward()
        assert counters["stats"]["unique_graphs"] <= 2
        torch._dynamo.reset()
        counters.clear()
        module = st.S2NN()
        compiled = torch.compile(module, backend="aot_eager", fullgraph=fullgraph)
        for alpha in values:
            module.alpha, module.beta = alpha, alpha / 2
            compiled(x).sum().backward()
        assert counters["stats"]["unique_graphs"] <= 2


def test_torch_compile_invalid_alpha_names_it(torch):
    import s2nn_xp.torch as st

    function = torch.compile(lambda x, a: st.s2nn(x, a), backend="aot_eager")
    with pytest.raises(ValueError, match=r"alpha must be finite and > 0"):
        function(torch.zeros(3), -1.0)


@pytest.mark.parametrize("function", ["forward", "origin", "gradient", "s2nn", "vjp"])
def test_a_wrong_xp_is_refused_on_every_backend(xp, function):
    """Adapters (JAX, PyTorch) take no namespace, and must not ignore a wrong one."""
    x = _on(xp, X, "float32")
    other = types.ModuleType("another_library")
    other.asarray = lambda values, **kwargs: values
    mismatch = r"does not match the library of x, \S+ \(x is of type "  # both named
    for wrong, match in ((other, mismatch), ("numpy", "xp")):
        with pytest.raises(TypeError, match=match):
            getattr(s2nn_xp, function)(x, xp=wrong)


NUMPY_KINDS = {
    "ndarray": np.asarray,
    "matrix": np.asmatrix,
    "recarray": lambda values: values.view(np.recarray),
    "masked": np.ma.asarray,
}


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
@pytest.mark.parametrize("kind", sorted(NUMPY_KINDS))
@pytest.mark.parametrize("function", ["forward", "origin", "gradient", "s2nn", "vjp"])
def test_a_numpy_array_of_any_kind_is_no_host_data_for_xp(xp, function, kind):
    """A NumPy array with another library's ``xp`` is refused, np.matrix too.

    array-api-compat counts np.matrix as no array, so it went to ``xp``'s
    library as host data (a list would), silently, where every other NumPy
    array was refused; with NumPy's ``xp``, or none, it is NumPy input as a
    plain 2-d array.
    """
    x = NUMPY_KINDS[kind](np.array([[-1.0, 0.0, 0.5]]))
    if backend_of(xp).name == "numpy":
        got = getattr(s2nn_xp, function)(x, xp=xp)
        got = got[1](1.0) if function == "vjp" else got
        assert got.shape == (1, 3)
        assert not isinstance(got, np.matrix)
        return
    named = r"numpy\.matrix" if kind == "matrix" else r"numpy\."  # as given
    match = rf"does not match the library of x, numpy \(x is of type {named}"
    with pytest.raises(TypeError, match=match):
        getattr(s2nn_xp, function)(x, xp=xp)


@pytest.mark.parametrize("function", ["forward", "origin", "gradient", "s2nn", "vjp"])
def test_host_data_with_xp_is_that_librarys_input(xp, function):
    """Numbers and lists given with ``xp`` go where ``xp``'s arrays go.

    Through the adapter, where the library has one, which converts host data
    by its own rules: the result is the adapter's, value and dtype, with or
    without ``xp`` (JAX without 64-bit mode does not wrap -2**40 + 1 into
    int32 and spike).
    """
    backend = backend_of(xp)
    adapter = None
    if backend.adapter is not None and function in backend.implements:
        adapter = getattr(importlib.import_module(backend.adapter), function)
    for host in ([-2.0, -0.5, 0.0, 1.5], [-(2**40) + 1, 3], -(2**40) + 1, 0.25):
        got = getattr(s2nn_xp, function)(host, xp=xp)
        if adapter is not None:
            want = adapter(host)
        else:
            want = getattr(s2nn_xp, function)(xp.asarray(host))
        if function == "vjp":
            (got, got_pullback), (want, want_pullback) = got, want
            got, want = got_pullback(1.0), want_pullback(1.0)
        assert backend_of(array_api_compat.array_namespace(got)) is backend
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    # -2**40 + 1 < 0: no spike, and its gradient is 0
    spike = s2nn_xp.forward([-(2**40) + 1], xp=xp)
    assert backend.to_numpy(spike).tolist() == [0.0]


@pytest.mark.parametrize("function", ["forward", "origin", "gradient", "s2nn", "vjp"])
def test_numpy_scalars_with_xp_are_host_data(xp, function):
    """A NumPy scalar (``numpy.float64`` is a float; indexing gives one) is
    the number it holds: with ``xp`` it is that library's input, as the same
    scalar in a list is (it was refused as a NumPy array, advising to leave
    ``xp`` out, which gave a NumPy result)."""
    backend = backend_of(xp)
    scalars = [np.float64(0.25), np.float32(-0.5), np.int64(-3), np.bool_(True)]
    ml_dtypes = sys.modules.get("ml_dtypes") or pytest.importorskip("ml_dtypes")
    scalars += [ml_dtypes.bfloat16(0.5), np.complex128(1.0)]
    for host in scalars:
        try:  # as the same scalar in a list: refused alike (complex, no bfloat16)
            want = getattr(s2nn_xp, function)([host], xp=xp)
        except (TypeError, ValueError) as exc:
            with pytest.raises(type(exc), match=re.escape(str(exc))):
                getattr(s2nn_xp, function)(host, xp=xp)
            continue
        got = getattr(s2nn_xp, function)(host, xp=xp)
        if function == "vjp":
            (got, got_pullback), (want, want_pullback) = got, want
            got, want = got_pullback(1.0), want_pullback(1.0)
        assert backend_of(array_api_compat.array_namespace(got)) is backend
        assert got.shape == () and got.dtype == want.dtype
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want)[0])


def test_casts_into_the_compute_dtype_are_quiet(xp):
    """Host parameters and cotangents beyond float32's range round there, as the
    math rounds, without warnings or errors under np.errstate(all="raise");
    an alpha that rounds to 0 is refused by a ValueError, quietly too. So do
    float64 parameter arrays of x's own library (array-api-strict's and
    marray's casts raised "underflow encountered in cast")."""
    x = _on(xp, X, "float32")
    tiny, huge = np.full(X.shape, 1e-50), np.full(X.shape, 1e300)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        s2nn_xp.origin(x, epsilon=tiny)
        s2nn_xp.origin(x, epsilon=_on(xp, tiny, "float64"))
        s2nn_xp.gradient(x, beta=_on(xp, [1e-45, 1.0, 2.0, 3.0, 1.0], "float64"))
        with pytest.raises(ValueError, match="alpha has values that are 0 in"):
            s2nn_xp.gradient(x, tiny)
        _, pullback = s2nn_xp.vjp(x)
        pullback(tiny)
        pullback(huge)
        pullback(1e300)


def _holding_itself(times: int = 1) -> list[object]:
    values: list[object] = [1.0]
    for _ in range(times):
        values.append(values)
    return values


def _nested(depth: int) -> object:
    values: object = 1.0
    for _ in range(depth):
        values = [values]
    return values


@pytest.mark.parametrize(
    "ragged",
    [[[1.0], [1.0, 2.0]], _holding_itself(), _holding_itself(2), _nested(65)],
    ids=["ragged", "holding itself", "holding itself twice", "65 deep"],
)
@pytest.mark.parametrize("function", list(PUBLIC))
def test_ragged_host_data_is_named(xp, function, ragged):
    """No RecursionError from a list that holds itself (nor a walk of 2**64
    steps, twice): NumPy's ValueError, named."""
    x = _on(xp, X[:2], "float32")
    if function == "vjp":
        _, pullback = s2nn_xp.vjp(x)
        with pytest.raises(ValueError, match="cotangent is no rectangular array"):
            pullback(ragged)
    elif function != "forward":
        with pytest.raises(ValueError, match="alpha is no rectangular array"):
            PUBLIC[function](x, alpha=ragged)
    with pytest.raises(ValueError, match="x is no rectangular array"):
        PUBLIC[function](ragged)


@pytest.mark.parametrize("unknown", [None, math.nan])
def test_sizes_not_known_yet_are_refused_for_any_lazy_library(unknown):
    """None (a lazy library's data-dependent size) as Dask's NaN: not checkable."""
    with pytest.raises(ValueError, match=r"sizes not known yet.*make them known"):
        _validation.check_broadcast("alpha", (unknown,), (unknown,))
    with pytest.raises(ValueError, match=r"alpha of shape \(3,\) against x of shape"):
        _validation.check_broadcast("alpha", (3,), (unknown,))
    _validation.check_broadcast("alpha", (1,), (unknown,))  # broadcasts whatever it is


class _RowsMadeWhenRead(collections.abc.Sequence):
    """A sequence whose rows are new lists at each read (their ids reused)."""

    def __init__(self, rows):
        self._rows = rows

    def __len__(self):
        return len(self._rows)

    def __getitem__(self, index):
        return list(self._rows[index])


class _BoolsByArray:
    """Bools as NumPy reads them from an object (``__array__``: a pandas Series)."""

    def __array__(self, dtype=None, copy=None):
        return np.array([True, True, True], dtype=dtype)


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
def test_a_bool_parameter_is_refused_in_the_words_of_any_wrong_type(xp, name):
    """It said "a real number or array", other wrong types "or an array"."""
    x = xp.asarray([-1.0, 0.0, 1.0])
    for value in (True, np.bool_(False)):
        with pytest.raises(
            TypeError, match=rf"^{name} must be a real number or an array, not a bool$"
        ):
            s2nn_xp.origin(x, **{name: value})
    with pytest.raises(
        TypeError, match=rf"^{name} must be a real number or an array, not "
    ):
        s2nn_xp.origin(x, **{name: "2.0"})


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
def test_a_bool_in_a_parameter_list_is_refused_everywhere(xp, name):
    """NumPy reads [True, 2.0] as [1.0, 2.0]; a bool parameter is refused."""
    x = xp.asarray([-1.0, 0.0, 1.0])
    given = {name: [2.0, True, 2.0]}
    match = f"{name} is a list holding a bool"
    with pytest.raises(TypeError, match=match):  # a 0-d bool array in it too
        s2nn_xp.origin(x, **{name: [2.0, np.array(True), 2.0]})
    with pytest.raises(TypeError, match=match):  # an object NumPy reads as bools
        s2nn_xp.origin(x, **{name: [[2.0, 2.0, 2.0], _BoolsByArray()]})
    rows = _RowsMadeWhenRead([(2.0, 2.0, 2.0)] * 49 + [(2.0, True, 2.0)])
    with pytest.raises(TypeError, match=match):  # each row a new list
        s2nn_xp.origin(xp.asarray(np.zeros((50, 3))), **{name: rows})
    calls = [
        lambda: s2nn_xp.origin(x, **given),
        lambda: s2nn_xp.s2nn(x, **given),
        lambda: s2nn_xp.S2NN(**given),
    ]
    if name != "epsilon":
        calls.append(lambda: s2nn_xp.gradient(x, **given))
    for call in calls:
        with pytest.raises(TypeError, match=match):
            call()
    # a cotangent is refused as a bool one is; x's bools are spikes (floats)
    _, pullback = s2nn_xp.vjp(x)
    with pytest.raises(TypeError, match="cotangent is a list holding a bool"):
        pullback([1.0, True, 0.0])
    xp_assert_close(
        s2nn_xp.gradient([[True, -1.0]], xp=xp),
        s2nn_xp.gradient(xp.asarray([[1.0, -1.0]])),
        xp=xp,
    )


class _FailingArray:
    """An object whose ``__array__`` raises (NumPy's read fails on it)."""

    def __array__(self, dtype=None, copy=None):
        raise ValueError("no values here")


def test_an_element_numpy_cannot_read_is_named_by_the_argument():
    """The list walk read it first, and its error came out without the name."""
    with pytest.raises(ValueError, match=r"alpha is no rectangular array .*no values"):
        s2nn_xp.gradient(np.zeros(3), alpha=[_FailingArray()])
    _, pullback = s2nn_xp.vjp(np.zeros(3))
    with pytest.raises(ValueError, match=r"cotangent is no rectangular .*no values"):
        pullback([_FailingArray()])


def test_a_namespace_of_an_older_standard_is_refused_naming_the_minimum(xp):
    """array-api-strict set to 2022.12 has no clip: raw RuntimeErrors and a
    ValueError came from deep inside the math, by input."""
    if backend_of(xp).name != "array_api_strict":  # its flags set the version
        pytest.skip("array-api-strict's flags choose the standard's version")
    xs = xp
    with xs.ArrayAPIStrictFlags(api_version="2022.12"):
        calls = [
            lambda: s2nn_xp.gradient(xs.asarray([-1.0, 1.0])),
            lambda: s2nn_xp.forward(xs.asarray([1, 2])),
            lambda: s2nn_xp.origin(xs.asarray([1.0, 2.0]), alpha=np.array([2.0, 1.0])),
            lambda: s2nn_xp.vjp(xs.asarray([1.0])),
            lambda: s2nn_xp.s2nn([0.5], xp=xs),
        ]
        # a parameter of that namespace with x of another library: its
        # reading failed in array-api-strict's words (ValueError, __dlpack__);
        # it is refused as another library's, before it is read
        with pytest.raises(TypeError, match=r"different libraries .* alpha: array_"):
            s2nn_xp.gradient(np.array([0.5, -0.5]), alpha=xs.asarray([2.0, 2.0]))
        for call in calls:
            with pytest.raises(
                TypeError, match=r"standard 2022\.12; .* 2023\.12 or later"
            ):
                call()
    assert s2nn_xp.forward(xs.asarray([-1.0, 1.0])).__array_namespace__() is not None


def test_the_minimum_standard_is_checked_where_a_namespace_states_its_own():
    from types import ModuleType

    from s2nn_xp._validation import MINIMUM_STANDARD, check_standard_version

    for version, refused in (("2021.12", True), (MINIMUM_STANDARD, False)):
        namespace = ModuleType("old_arrays")
        namespace.__array_api_version__ = version  # type: ignore[attr-defined]
        if refused:
            with pytest.raises(TypeError, match="x is an array of old_arrays"):
                check_standard_version(namespace)
        else:
            check_standard_version(namespace)
    check_standard_version(ModuleType("states_none"))


class _NamesANamespaceOnly:
    """An object with ``__array_namespace__`` and nothing else of an array."""

    def __array_namespace__(self, api_version=None):
        return np


def test_an_object_that_only_names_a_namespace_is_refused_alike(xp):
    """x, a parameter or a cotangent: one TypeError naming it on every backend
    (AttributeError for its dtype, or "cannot be mixed" by library, before)."""
    fake = _NamesANamespaceOnly()
    x = _on(xp, [-0.5, 0.5], "float32")
    calls = {
        "x": lambda: s2nn_xp.gradient(fake),
        "alpha": lambda: s2nn_xp.gradient(x, alpha=fake),
        "epsilon": lambda: s2nn_xp.origin(x, epsilon=fake),
        "cotangent": lambda: s2nn_xp.vjp(x)[1](fake),
    }
    for name, call in calls.items():
        match = (
            rf"^{name} must be .*, not .*_NamesANamespaceOnly, which has "
            r"__array_namespace__ but no dtype or shape$"
        )
        with pytest.raises(TypeError, match=match):
            call()


class _ReadByNumPy:
    """An object NumPy reads through ``__array__`` (as pandas' and xarray's)."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)


def test_what_x_takes_through_array_parameters_and_cotangents_take(xp):
    """x took an object with __array__ as host data; a parameter or a
    cotangent refused it ("must be a real number or an array")."""
    x = _on(xp, [-0.5, 0.5], "float32")
    alpha = _ReadByNumPy([2.0, 4.0])
    want = to_numpy(s2nn_xp.gradient(x, alpha=np.array([2.0, 4.0])))
    np.testing.assert_array_equal(to_numpy(s2nn_xp.gradient(x, alpha=alpha)), want)
    _, pullback = s2nn_xp.vjp(x)
    np.testing.assert_array_equal(
        to_numpy(pullback(_ReadByNumPy([1.0, 3.0]))),
        to_numpy(pullback(np.array([1.0, 3.0]))),
    )
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        s2nn_xp.gradient(x, alpha=_ReadByNumPy([-1.0, 4.0]))
    # the other protocols, on the instance too
    held = np.array([2.0, 4.0])
    by_interface = types.SimpleNamespace(__array_interface__=held.__array_interface__)
    by_interface.held = held
    np.testing.assert_array_equal(
        to_numpy(s2nn_xp.gradient(x, alpha=by_interface)), want
    )


class _DLPackOnly:
    def __dlpack__(self, **kwargs):
        raise BufferError("no data")

    def __dlpack_device__(self):
        return (1, 0)


class _IndexOnly:
    def __index__(self):
        return 3


@pytest.mark.parametrize("kind", [_DLPackOnly, _IndexOnly])
def test_x_that_numpy_reads_as_an_object_is_no_array(kind):
    """It said "x must have a real numeric dtype, not object": x is no array."""
    with pytest.raises(TypeError, match=r"^x must be an array or a real number, not"):
        s2nn_xp.gradient(kind())


class _LengthOnly:
    """Read by NumPy as a sequence of objects, as a JAX sparse array is."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        if index < 2:
            return object()
        raise IndexError(index)


@pytest.mark.parametrize("name", ["x", "alpha", "cotangent"])
def test_what_numpy_reads_as_objects_is_refused_naming_its_type(xp, name):
    """x said "must have a real numeric dtype, not object" for an object
    NumPy reads as a sequence of objects (a JAX BCOO of float32), and every
    argument said so for a list holding None."""
    x = _on(xp, [-0.5, 0.5], "float32")
    accepted = (
        "an array or a real number" if name == "x" else "a real number or an array"
    )

    def call(value):
        if name == "x":
            return s2nn_xp.gradient(value, xp=xp)
        if name == "alpha":
            return s2nn_xp.gradient(x, alpha=value)
        return s2nn_xp.vjp(x)[1](value)

    with pytest.raises(
        TypeError, match=rf"^{name} must be {accepted}, not .*_LengthOnly"
    ):
        call(_LengthOnly())
    with pytest.raises(TypeError, match=rf"^{name} is a list holding None; give real"):
        call([None, 1.0])
    with pytest.raises(TypeError, match=rf"^{name} is a list holding builtins.object"):
        call([[1.0], [object()]])


class _ObjectColumn:
    """Host data of dtype object by ``__array__`` (a pandas column of strings)."""

    def __array__(self, dtype=None, copy=None):
        return np.array(["1.5", 2.0], dtype=object)


def test_an_array_of_objects_by_a_protocol_is_refused_by_its_dtype(xp):
    """Not by its type, as an object NumPy cannot read is: the same object
    holding floats is taken."""
    x = _on(xp, [-0.5, 0.5], "float32")
    # xp's asarray reads it: Dask and array-api-strict say so in their words
    by_dtype = r"^x (must have a real numeric dtype|is no array of real numbers)"
    with pytest.raises(TypeError, match=by_dtype):
        s2nn_xp.gradient(_ObjectColumn(), xp=xp)
    with pytest.raises(TypeError, match=r"^alpha must have a real numeric dtype"):
        s2nn_xp.gradient(x, alpha=_ObjectColumn())


def test_objects_a_library_reads_no_numbers_from_are_refused_by_their_kind(
    xp, monkeypatch
):
    """A library whose asarray says ValueError of object data (ndonnx's)
    made that a ValueError ("no rectangular array"), where the others say
    TypeError; a ragged list is still a ValueError of its shape."""
    library_asarray = xp.asarray

    def asarray(obj, *args, **kwargs):
        if isinstance(obj, _ObjectColumn):
            raise ValueError("object data is not supported")
        return library_asarray(obj, *args, **kwargs)

    monkeypatch.setattr(xp, "asarray", asarray)
    by_kind = r"^x (must have a real numeric dtype|is no array of real numbers)"
    with pytest.raises(TypeError, match=by_kind):
        s2nn_xp.gradient(_ObjectColumn(), xp=xp)
    with pytest.raises(ValueError, match=r"^x is no rectangular array"):
        s2nn_xp.gradient([[0.5], [0.5, 1.0]], xp=xp)


def test_a_number_that_is_not_real_is_refused_by_its_type_whatever_xp(xp):
    """A Decimal: refused by its type without xp, and by xp's dtype words
    with it (the number skipped the check for objects NumPy cannot read)."""
    with pytest.raises(TypeError, match=r"^x must be an array or a real number, not"):
        s2nn_xp.gradient(decimal.Decimal("0.5"), xp=xp)


class _CountedReads(_ReadByNumPy):
    reads = 0

    def __array__(self, dtype=None, copy=None):
        type(self).reads += 1
        return super().__array__(dtype, copy)


def test_host_data_is_read_once(xp):
    """Read by NumPy first, then by xp's asarray: twice, for a lazy reader
    (an h5py dataset) twice the input and output."""
    _CountedReads.reads = 0
    s2nn_xp.gradient(_CountedReads([-0.5, 0.5]), xp=xp)
    assert _CountedReads.reads == 1


def test_refused_dtypes_are_not_remembered():
    """Every dtype asked about was kept, those refused too: a string dtype
    of each length, without bound."""
    from s2nn_xp import _validation

    s2nn_xp.gradient(np.zeros(2))
    remembered = len(_validation._REAL_DTYPES)
    for length in range(1, 20):
        for refused in (
            np.array(["a" * length]),
            np.zeros(1, f"V{length}"),
            np.zeros(1, [(f"f{length}", "f4")]),
        ):
            with pytest.raises(TypeError, match="alpha must have a real numeric"):
                s2nn_xp.gradient(np.zeros(2), alpha=refused)
    assert len(_validation._REAL_DTYPES) == remembered


@pytest.mark.skip_backends("cupy", reason="CuPy's asarray reads CUDA memory")
def test_an_object_of_cuda_memory_alone_is_refused_by_its_type(xp):
    """Read by NumPy, which keeps it as an object: no array (for one NumPy
    can also copy, xp's asarray is given it, as CuPy's reads it in place)."""

    class DeviceOnly:
        __cuda_array_interface__ = {  # noqa: RUF012
            "shape": (2,),
            "typestr": "<f4",
            "data": (0, False),
            "version": 3,
        }

    with pytest.raises(TypeError, match=r"^x must be an array or a real number"):
        s2nn_xp.gradient(DeviceOnly(), xp=xp)


def test_host_data_reaches_an_asarray_that_reads_no_protocols(xp, monkeypatch):
    """The standard's asarray need not read ``__array__`` (pydata/sparse's
    does not): given the object, it refused it, and the error said that x
    was "no rectangular array of numbers"."""
    if xp is np:
        pytest.skip("NumPy's asarray is the one that reads host data")
    library_asarray = xp.asarray

    def asarray(obj, *args, **kwargs):
        if isinstance(obj, _ReadByNumPy):
            raise ValueError(f"{type(obj)} not supported.")
        return library_asarray(obj, *args, **kwargs)

    monkeypatch.setattr(xp, "asarray", asarray)
    got = s2nn_xp.gradient(_ReadByNumPy([-0.5, 0.5]), xp=xp)
    want = s2nn_xp.gradient(library_asarray(np.array([-0.5, 0.5])))
    assert type(got) is type(want)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(want))


class _NamedDimensions(_ReadByNumPy):
    """Host data with named dimensions, as xarray's DataArray and Variable."""

    def __init__(self, values, dims):
        super().__init__(values)
        self.dims = dims


class _Labelled(_ReadByNumPy):
    """Host data with an index, as pandas' Series and DataFrame."""

    def __init__(self, values):
        super().__init__(values)
        self.index = range(len(self.values))
        self.loc = None

    def mask(self, condition):  # pandas' method: no mask of a masked array
        return self


class _WithUnits(_ReadByNumPy):
    """Host data with units, as pint's Quantity."""

    def __init__(self, values, units):
        super().__init__(values)
        self.units = units


# Host data that means more than its values, and the start of the error.
_MORE_THAN_VALUES = {
    "named dimensions": (
        lambda values: _NamedDimensions(values, ("time", "neuron")),
        r"has named dimensions \('time',",
    ),
    "an index": (_Labelled, "is labelled data"),
    "units": (lambda values: _WithUnits(values, Unit("millivolt")), "is a quantity"),
    "an ndarray's unit": (
        lambda values: Quantity(values, Unit("%")),
        "is a quantity",
    ),
}


@pytest.mark.parametrize("kind", list(_MORE_THAN_VALUES))
@pytest.mark.parametrize("name", ["x", "alpha", "cotangent"])
def test_arrays_that_mean_more_than_their_values_are_refused(xp, name, kind):
    """A DataArray was read as NumPy data: its coordinates dropped, a
    per-"time" alpha broadcast along the neurons (by position), and a
    Dask-backed one computed in the call; a pandas Series likewise (its
    index dropped), and refused as a parameter as a masked array (its
    method mask read as one); a quantity's units dropped (a percent read as
    its number)."""
    make, error = _MORE_THAN_VALUES[kind]
    x = _on(xp, [[-0.5, 0.5], [1.0, -1.0]], "float32")
    named = make([[1.0, 2.0], [3.0, 4.0]])
    calls = {
        "x": lambda: s2nn_xp.gradient(named, xp=xp),
        "alpha": lambda: s2nn_xp.gradient(x, alpha=named),
        "cotangent": lambda: s2nn_xp.vjp(x)[1](named),
    }
    with pytest.raises(TypeError, match=rf"^{name} {error}"):
        calls[name]()
    in_a_list = {
        "x": lambda: s2nn_xp.gradient([named, named], xp=xp),
        "alpha": lambda: s2nn_xp.gradient(x, alpha=[named]),
        "cotangent": lambda: s2nn_xp.vjp(x)[1]([named]),
    }
    with pytest.raises(TypeError, match=rf"^{name} {error}"):
        in_a_list[name]()


class _WithMaskMethod(_ReadByNumPy):
    def mask(self, condition):
        return self


def test_a_method_called_mask_is_no_mask(xp):
    """A parameter with a method mask (pandas') was refused as masked."""
    x = _on(xp, [-0.5, 0.5], "float32")
    got = s2nn_xp.gradient(x, alpha=_WithMaskMethod([2.0, 4.0]))
    want = s2nn_xp.gradient(x, alpha=np.array([2.0, 4.0]))
    np.testing.assert_array_equal(to_numpy(got), to_numpy(want))


def test_a_named_array_of_no_dimensions_is_a_number(xp):
    """Whatever xarray shows as its attributes: its coordinates (one named
    index, from a pandas Series) and attributes (CF's units) were read as a
    pandas index and a quantity's unit."""
    x = _on(xp, [[-0.5, 0.5], [1.0, -1.0]], "float32")
    unnamed = _NamedDimensions(2.0, ())  # 0-d: a number
    unnamed.index, unnamed.loc, unnamed.units = 0, object(), Unit("1/mV")
    np.testing.assert_array_equal(
        to_numpy(s2nn_xp.gradient(x, alpha=unnamed)),
        to_numpy(s2nn_xp.gradient(x, alpha=2.0)),
    )


class _NotAQuantity(_ReadByNumPy):
    def __init__(self, values, **attributes):
        super().__init__(values)
        vars(self).update(attributes)


@pytest.mark.parametrize(
    "attributes",
    [
        {"unit": "s"},  # pandas' time resolution (its dtype is refused, as such)
        {"unit": np.array([0.5, -0.5])},  # a record array's field called unit
        {"units": lambda: "m"},  # a method
        {"unit": Unit("")},  # astropy's dimensionless, unscaled
        {"units": Unit("dimensionless")},  # pint's, unyt's
        {"index": lambda value: 0, "loc": None},  # a sequence's method index
    ],
    ids=["resolution", "field", "method", "astropy's 1", "pint's 1", "list-like"],
)
def test_attributes_of_those_names_that_mean_no_label_or_unit(xp, attributes):
    x = _on(xp, [-0.5, 0.5], "float32")
    plain = _NotAQuantity([2.0, 4.0], **attributes)
    np.testing.assert_array_equal(
        to_numpy(s2nn_xp.gradient(x, alpha=plain)),
        to_numpy(s2nn_xp.gradient(x, alpha=np.array([2.0, 4.0]))),
    )
