"""The array-API math against independent references, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import s2nn_xp
import s2nn_xp._compat as compat
from tests._support import (
    SPECIAL_X,
    assert_same_bits,
    backend_of,
    grid,
    normal_or_zero,
    ref_forward,
    ref_gradient,
    ref_origin,
    reference,
    to_numpy,
    ulp_error,
    xp_assert_close,
)

FUNCTIONS = {
    "forward": (s2nn_xp.forward, ref_forward, ()),
    "origin": (s2nn_xp.origin, ref_origin, ("alpha", "beta", "epsilon")),
    "gradient": (s2nn_xp.gradient, ref_gradient, ("alpha", "beta")),
}
# Powers of two for alpha keep alpha * x exact, so what is measured is the
# formula's own error (see test_alpha_rounding_is_the_only_extra_error).
PARAMETERS = [
    {"alpha": 4.0, "beta": 1.0, "epsilon": 1e-8},
    {"alpha": 8.0, "beta": 2.0, "epsilon": 1e-8},
    {"alpha": 0.5, "beta": 1.7, "epsilon": 0.0},
]


def _call(name, x, params):
    fn, ref, names = FUNCTIONS[name]
    kwargs = {k: params[k] for k in names}
    return fn(x, **kwargs), reference(ref, to_numpy(x), **kwargs)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("params", PARAMETERS, ids=lambda p: f"a{p['alpha']}")
def test_float64_within_2_ulp(xp, name, params):
    x = xp.asarray(grid(params["alpha"]), dtype=xp.float64)
    got, want = _call(name, x, params)
    err = ulp_error(to_numpy(got), want, np.float64)
    assert err.max() <= 2.0, (
        f"max error {err.max()} ulp at x={to_numpy(x)[err.argmax()]}"
    )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_special_values_exact(xp, name):
    for dtype in (xp.float64, xp.float32):
        with np.errstate(over="ignore"):  # +-1e300 -> +-inf in float32 is intended
            x = xp.asarray(
                SPECIAL_X.astype(to_numpy(xp.asarray(0.0, dtype=dtype)).dtype)
            )
        got, want = _call(name, x, PARAMETERS[0])
        with np.errstate(over="ignore"):  # 1e300 -> inf in float32 is intended
            want = want.astype(to_numpy(got).dtype)  # the reference rounded once
        xp_assert_close(
            got, want, xp=xp, rtol=4 * np.finfo(want.dtype).eps, dtype=dtype
        )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_float32_within_4_ulp(xp, name):
    x64 = grid(4.0, bound=20.0).astype(np.float32)
    x = xp.asarray(x64, dtype=xp.float32)
    if backend_of(xp).flushes_input(x, np.float32):  # XLA's CPU, CuPy: to zero
        x64 = normal_or_zero(x64)
        x = xp.asarray(x64, dtype=xp.float32)
    got, want = _call(name, x, PARAMETERS[0])
    err = ulp_error(to_numpy(got), want, np.float32)
    assert err.max() <= 4.0, f"max error {err.max()} ulp at x={x64[err.argmax()]}"


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(
    "dtype_name",
    [
        pytest.param("float16", marks=pytest.mark.requires_float16),
        pytest.param("bfloat16", marks=pytest.mark.requires_bfloat16),
    ],
)
def test_16bit_computed_in_float32_rounded_once(xp, name, dtype_name):
    ns = compat.array_namespace(xp.asarray(0.0))
    # Beyond the standard's dtypes: the library's own (jnp.bfloat16), else
    # NumPy's, which NumPy-backed arrays (Dask, marray) take.
    dtype = getattr(ns, dtype_name, None) or np.dtype(dtype_name)
    x = ns.astype(xp.asarray(grid(4.0, n=100, bound=20.0)), dtype)
    got, _ = _call(name, x, PARAMETERS[0])
    assert got.dtype == dtype
    # One rounding of the float32 result: identical to rounding it ourselves.
    fn, _, names = FUNCTIONS[name]
    via_float32 = fn(ns.astype(x, ns.float32), **{k: PARAMETERS[0][k] for k in names})
    xp_assert_close(got, ns.astype(via_float32, dtype), xp=xp, rtol=0)


@pytest.mark.parametrize(
    "dtype_name",
    [
        pytest.param("float16", marks=pytest.mark.requires_float16),
        pytest.param("bfloat16", marks=pytest.mark.requires_bfloat16),
    ],
)
def test_16bit_pullback_of_a_float32_cotangent_is_rounded_once(xp, dtype_name):
    """The cotangent meets the gradient in float32, not rounded to x's dtype first.

    The PyTorch and JAX adapters rounded it to 16 bits before the product
    (two roundings; a quarter of the values differed from NumPy's).
    """
    ns = compat.array_namespace(xp.asarray(0.0))
    dtype = getattr(ns, dtype_name, None) or np.dtype(dtype_name)
    x = ns.astype(xp.asarray(grid(4.0, n=100, bound=20.0)), dtype)
    rng = np.random.default_rng(3)
    cotangent = xp.asarray(rng.uniform(-3.0, 3.0, x.shape).astype(np.float32))
    got = s2nn_xp.vjp(x)[1](cotangent)
    assert got.dtype == dtype
    once = ns.astype(s2nn_xp.gradient(ns.astype(x, ns.float32)) * cotangent, dtype)
    xp_assert_close(got, once, xp=xp, rtol=0)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_integer_and_bool_promote_to_default_float(xp, name):
    default = xp.asarray(0.5).dtype  # the namespace's default real floating dtype
    for ints in (xp.asarray([-2, 0, 3]), xp.asarray([True, False])):
        got, want = _call(name, ints, PARAMETERS[0])
        xp_assert_close(
            got,
            want,
            xp=xp,
            rtol=1e-7 if default == xp.float32 else 1e-15,
            dtype=default,
        )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_complex_input_raises(xp, name):
    if not hasattr(xp, "complex64"):
        pytest.skip("no complex dtype")
    x = xp.asarray([1 + 1j, -1j], dtype=xp.complex64)
    with pytest.raises(TypeError, match="complex"):
        FUNCTIONS[name][0](x)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (2, 3, 4)])
def test_shape_and_dtype_preserved(xp, name, shape):
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.normal(size=shape).astype(np.float32))
    got, want = _call(name, x, PARAMETERS[0])
    assert tuple(got.shape) == shape
    assert type(got) is type(x)  # 0-d too: an array, not a NumPy scalar
    xp_assert_close(got, want, xp=xp, rtol=2e-6, dtype=xp.float32)


@pytest.mark.parametrize("name", [*FUNCTIONS, "pullback"])
def test_0d_input_is_computed_as_the_same_value_in_an_array(xp, name):
    """A 0-d array gives the bits its value gives inside a 1-d array.

    NumPy 1.x computed 0-d float32 (and 16-bit) arrays with Python-number
    operands in float64 (value-based casting): different values, same dtype.
    """
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0.0, 2.0, 12), [-1.7, -0.3, 0.0, 0.7]])
    for dtype_name in ("float16", "float32", "float64"):
        dtype = getattr(xp, dtype_name, None)
        if dtype is None:  # array-api-strict has no float16
            continue
        if name == "forward":
            call = s2nn_xp.forward
        elif name == "pullback":
            call = lambda x: s2nn_xp.vjp(x, 3.0)[1](1.3)  # noqa: E731
        else:
            call = lambda x, f=FUNCTIONS[name][0]: f(x, 3.0)  # noqa: E731
        row = xp.asarray(values, dtype=dtype)
        whole = to_numpy(call(row))
        for i, value in enumerate(values):
            single = call(xp.asarray(value, dtype=dtype))
            assert tuple(single.shape) == ()
            assert single.dtype == row.dtype
            assert_same_bits(to_numpy(single), whole[i])


def test_the_spike_with_model_derivatives_is_the_spike_bit_for_bit(xp):
    """Its value is the step's at every special value, NaN and the infinities too."""
    from s2nn_xp import _math

    namespace = compat.array_namespace(xp.asarray(0.0))
    for dtype in (xp.float32, xp.float64):
        with np.errstate(over="ignore"):  # +-1e300 -> +-inf in float32 is intended
            x = xp.asarray(
                SPECIAL_X.astype(to_numpy(xp.asarray(0.0, dtype=dtype)).dtype)
            )
        largest = float(np.finfo(to_numpy(x).dtype).max)
        # A huge beta overflows beta * log1p(x): inf - inf was NaN.
        for beta in (1.0, 0.9 * largest, xp.full(x.shape, 0.9 * largest, dtype=dtype)):
            got = _math.spike_with_model_derivatives(namespace, x, 4.0, beta, 1e-8)
            assert_same_bits(to_numpy(got), to_numpy(s2nn_xp.forward(x)))


@pytest.mark.parametrize("name", ["origin", "gradient"])
def test_per_neuron_parameters_broadcast(xp, name):
    rng = np.random.default_rng(1)
    x_np = rng.normal(size=(5, 3))
    alphas, betas = (
        np.array([2.0, 4.0, 8.0]),
        np.array([[0.5], [1.0], [2.0], [3.0], [4.0]]),
    )
    fn, ref, _ = FUNCTIONS[name]
    got = fn(xp.asarray(x_np), alpha=xp.asarray(alphas), beta=xp.asarray(betas))
    want = np.empty_like(x_np)
    for i in range(5):
        for j in range(3):
            want[i, j] = ref(x_np[i, j], alpha=alphas[j], beta=betas[i, 0])
    xp_assert_close(got, want, xp=xp, rtol=1e-14, dtype=xp.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [5, 2**18])  # small, and NumPy's blocks
def test_a_huge_beta_and_epsilon_give_no_nan_where_the_tail_is_not_taken(
    xp, dtype, size
):
    """log1p(-0.5 + epsilon) * beta overflowed there, and the blend's 0 times it.

    Quietly too (no overflow warning from Dask's compute, where NumPy's
    floating-point state is the caller's).
    """
    largest = float(np.finfo(dtype).max)
    values = np.resize(np.array([-2.0, -1.0, -0.25, -1e-30, -np.inf]), size)
    x = backend_of(xp).asarray(values.astype(dtype))  # as the record makes it
    got = s2nn_xp.origin(x, beta=largest * 0.9, epsilon=3.0)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(s2nn_xp.origin(x)))


def test_array_parameters_follow_x_dtype(xp):
    x = xp.asarray([-0.5, 0.5], dtype=xp.float32)
    got = s2nn_xp.gradient(x, alpha=xp.asarray([4.0, 4.0], dtype=xp.float64))
    assert got.dtype == xp.float32


def test_array_parameters_are_used_in_the_compute_dtype(xp):
    """A float64 parameter array meets float32 input as float32 values."""
    x_np = np.linspace(-3.0, 3.0, 101, dtype=np.float32)
    third = np.full(101, 1 / 3)  # not a float32 number
    x = xp.asarray(x_np)
    for fn, name in ((s2nn_xp.gradient, "alpha"), (s2nn_xp.origin, "beta")):
        got = to_numpy(fn(x, **{name: xp.asarray(third)}))
        want = to_numpy(fn(x, **{name: xp.asarray(third.astype(np.float32))}))
        np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
def test_parameter_beyond_the_compute_dtype_raises(xp, name):
    """A number finite in float64 but inf in the compute dtype would make NaN."""
    x = xp.asarray([-1.0, 0.0, 1.0], dtype=xp.float32)
    with pytest.raises(ValueError, match=rf"{name}=1e\+300 overflows .*float32"):
        s2nn_xp.origin(x, **{name: 1e300})
    with pytest.raises(ValueError, match=rf"{name}=1e\+300 overflows"):
        s2nn_xp.s2nn(x, **{name: 1e300}, origin=True)
    big = float(np.finfo(np.float32).max)  # the largest allowed: no NaN
    assert not np.isnan(to_numpy(s2nn_xp.origin(x, **{name: big}))).any()
    if name != "epsilon":
        assert not np.isnan(to_numpy(s2nn_xp.gradient(x, **{name: big}))).any()
    x64 = xp.asarray([-1.0, 0.0, 1.0], dtype=xp.float64)
    assert np.isfinite(to_numpy(s2nn_xp.gradient(x64, alpha=1e300, beta=1e300))).all()


def test_huge_integer_parameter_raises_value_error(xp):
    with pytest.raises(ValueError, match="alpha is a number of 401 digits, beyond"):
        s2nn_xp.s2nn(xp.asarray([0.0]), alpha=10**400)


@pytest.mark.parametrize("value", [[4.0, -2.0, 1.0], (1.0, np.nan, 1.0)])
def test_list_parameter_values_are_checked(xp, value):
    x = xp.asarray([-1.0, 0.0, 1.0])
    for fn in (s2nn_xp.gradient, s2nn_xp.s2nn):
        with pytest.raises(ValueError, match="alpha must be finite and > 0"):
            fn(x, alpha=value)
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        s2nn_xp.s2nn(x, alpha=np.asarray(value))


@pytest.mark.requires_host_values
def test_host_array_parameter_values_are_checked(xp):
    """Arrays whose values live on the host are checked like numbers."""
    x = xp.asarray([-1.0, 0.0, 1.0])
    for name, value in (("alpha", -2.0), ("beta", 0.0), ("epsilon", np.inf)):
        bad = xp.asarray([1.0, value, 1.0])
        with pytest.raises(ValueError, match=f"{name} must be finite"):
            s2nn_xp.s2nn(x, **{name: bad}, origin=True)


@pytest.mark.parametrize("origin", ["yes", None, 1])
def test_origin_must_be_a_bool(xp, origin):
    x = xp.asarray([0.0])
    for fn in (s2nn_xp.s2nn, s2nn_xp.vjp):
        with pytest.raises(TypeError, match="origin must be a bool"):
            fn(x, origin=origin)


def test_numpy_bool_is_a_bool(xp):
    x = xp.asarray([0.0])
    want = to_numpy(s2nn_xp.origin(x))
    np.testing.assert_array_equal(to_numpy(s2nn_xp.s2nn(x, origin=np.True_)), want)


def test_input_is_not_modified(xp):
    values = np.array([-2.0, -0.5, 0.0, 0.5, np.nan])
    x = xp.asarray(values)
    for fn in (s2nn_xp.forward, s2nn_xp.origin, s2nn_xp.gradient, s2nn_xp.s2nn):
        fn(x)
    np.testing.assert_array_equal(to_numpy(x), values)


def test_values_agree_with_numpy_float64(xp):
    """Every other backend gives the NumPy float64 numbers (the reference path)."""
    if compat.is_numpy_namespace(xp):
        pytest.skip("NumPy is the reference itself")
    x_np = grid(4.0, n=200, bound=50.0)
    x = xp.asarray(x_np)
    for fn in (s2nn_xp.forward, s2nn_xp.origin, s2nn_xp.gradient):
        xp_assert_close(fn(x), fn(x_np), xp=xp, rtol=4e-16)


def test_alpha_rounding_is_the_only_extra_error():
    """For alpha that is no power of two, alpha * x is rounded before exp.

    The error is then about |alpha * x| / 2 ulp, as in every implementation
    that forms alpha * x; with that product computed exactly (here: x chosen
    so that it is) the result is again within 2 ulp.
    """
    alpha = 3.0
    x = -np.arange(1, 200, dtype=np.float64) / 4  # 3 * x is exact for these
    err = ulp_error(
        s2nn_xp.gradient(x, alpha), reference(ref_gradient, x, alpha=alpha), np.float64
    )
    assert err.max() <= 2.0
