"""The JAX adapter: values, surrogate derivatives of every order, transforms.

Reference values are the mpmath functions of ``tests/_support.py`` (SPEC.md
written out independently), or the float64 NumPy core, never the adapter.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require

require("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402
from jax.extend.core import subjaxprs  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import s2nn_xp  # noqa: E402
import s2nn_xp._math  # noqa: E402
import s2nn_xp.jax  # noqa: E402
from s2nn_xp.jax import s2nn  # noqa: E402
from tests._support import (  # noqa: E402
    SPECIAL_X,
    ref_dgradient_dalpha,
    ref_dgradient_dbeta,
    ref_dgradient_dx,
    ref_dorigin_dalpha,
    ref_dorigin_dalpha2,
    ref_dorigin_dbeta,
    ref_forward,
    ref_gradient,
    ref_origin,
    reference,
    ulp_error,
)

REPO = Path(__file__).resolve().parents[1]

# Points on both branches, dense near the kink, |alpha * x| <= 80 so that no
# float32 result is subnormal (XLA on CPU flushes subnormals to zero).
_rng = np.random.default_rng(20260128)
GRID = np.concatenate(
    [
        _rng.uniform(-20.0, 20.0, 400),
        -np.logspace(-12, np.log10(20.0), 100),
        np.logspace(-12, np.log10(20.0), 100),
        [-1.0, -0.5, -0.0, 0.0, 0.5, 1.0],
    ]
)


def grad_x(fn, order=1):
    """Elementwise ``d^order fn / dx^order`` of an elementwise ``fn``."""
    for _ in range(order):
        fn = jax.grad(fn)
    return jax.jit(jax.vmap(fn))


def primitives(closed_jaxpr) -> set[str]:
    """Names of all primitives in a jaxpr and in the jaxprs inside it."""
    names = set()
    stack = [closed_jaxpr.jaxpr]
    while stack:
        jaxpr = stack.pop()
        names.update(eqn.primitive.name for eqn in jaxpr.eqns)
        stack.extend(subjaxprs(jaxpr))
    return names


def f64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


# --- the module, dispatch and the core class -----------------------------------


def test_module_contract():
    assert s2nn_xp.jax.DISPATCHED == ("s2nn",)
    assert s2nn_xp.jax.__all__ == ["s2nn"]


def test_public_api_dispatches_to_the_adapter():
    x = jnp.asarray(GRID)
    spike_grad = jax.grad(lambda x: s2nn_xp.s2nn(x).sum())(x)
    class_grad = jax.grad(lambda x: s2nn_xp.S2NN()(x).sum())(x)
    want = reference(ref_gradient, GRID)
    np.testing.assert_allclose(spike_grad, want, rtol=1e-15)
    np.testing.assert_allclose(class_grad, want, rtol=1e-15)
    np.testing.assert_array_equal(s2nn_xp.S2NN()(x), reference(ref_forward, GRID))
    origin_fn = s2nn_xp.S2NN(alpha=2.0, beta=0.5, origin=True)
    np.testing.assert_allclose(
        origin_fn(x),
        reference(ref_origin, GRID, alpha=2.0, beta=0.5),
        rtol=1e-15,
    )


def test_numpy_and_python_input_become_jax_arrays():
    for x in (0.5, [-1.0, 1.0], np.array([-1.0, 1.0])):
        y = s2nn(x)
        assert isinstance(y, jax.Array)
        np.testing.assert_array_equal(y, np.asarray(x) >= 0)
    y = s2nn(jnp.array([-1.0, 1.0]), alpha=np.array([2.0, 3.0]), beta=[1.0, 2.0])
    assert isinstance(y, jax.Array)


# --- values and first derivatives against the references -----------------------


@pytest.mark.parametrize("with_origin", [False, True], ids=["spike", "origin"])
def test_special_values_and_their_gradient(with_origin):
    x = jnp.asarray(SPECIAL_X)
    y, grad = jax.vmap(jax.value_and_grad(lambda x: s2nn(x, origin=with_origin)))(x)
    want = reference(ref_origin if with_origin else ref_forward, SPECIAL_X)
    np.testing.assert_allclose(y, want, rtol=4e-16, strict=True)
    np.testing.assert_allclose(grad, reference(ref_gradient, SPECIAL_X), rtol=4e-16)
    assert y.dtype == grad.dtype == jnp.float64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("params", [(4.0, 1.0), (8.0, 2.0), (0.5, 1.7)])
def test_grad_is_the_surrogate_gradient(dtype, params):
    alpha, beta = params
    x = jnp.asarray(GRID / alpha * 4, dtype=dtype)
    grad = jax.grad(lambda x: s2nn(x, alpha, beta).sum())(x)
    assert grad.dtype == dtype
    want = reference(ref_gradient, f64(x), alpha=alpha, beta=beta)
    # The NumPy core reaches 2 ulp in float64; XLA's fused, reordered code
    # under jit is allowed 4 ulp here.
    assert ulp_error(np.asarray(grad), want, np.dtype(dtype)).max() <= 4.0
    if dtype == "float64":  # and the NumPy core, the package's reference backend
        core = s2nn_xp.gradient(f64(x), alpha, beta)
        np.testing.assert_allclose(grad, core, rtol=1e-15)


def test_vjp_jvp_and_linearize_agree_with_the_reference():
    x = jnp.asarray(GRID)
    cotangent = jnp.asarray(_rng.standard_normal(GRID.shape))
    derivative = reference(ref_gradient, GRID)

    y, pullback = jax.vjp(s2nn, x)
    np.testing.assert_array_equal(y, reference(ref_forward, GRID))
    np.testing.assert_allclose(pullback(cotangent)[0], cotangent * derivative, 1e-15)

    y, tangent_out = jax.jvp(s2nn, (x,), (cotangent,))
    np.testing.assert_array_equal(y, reference(ref_forward, GRID))
    np.testing.assert_allclose(tangent_out, cotangent * derivative, rtol=1e-15)

    y, linear = jax.linearize(lambda x: s2nn(x, origin=True), x)
    np.testing.assert_allclose(y, reference(ref_origin, GRID), rtol=1e-15)
    np.testing.assert_allclose(linear(cotangent), cotangent * derivative, 1e-15)


def test_jit_checkpoint_and_value_and_grad():
    x = jnp.asarray(GRID)
    derivative = reference(ref_gradient, GRID)

    def loss(x):
        return (s2nn(x) * jnp.arange(x.size)).sum()

    for transform in (jax.jit, jax.checkpoint, lambda f: jax.jit(jax.checkpoint(f))):
        value, grad = jax.value_and_grad(transform(loss))(x)
        np.testing.assert_allclose(
            value, (reference(ref_forward, GRID) * np.arange(x.size)).sum()
        )
        np.testing.assert_allclose(grad, derivative * np.arange(x.size), rtol=1e-15)


def test_default_32_bit_mode():
    """JAX's default configuration (no x64): float32 values, gradients, promotion."""
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp, numpy as np
        import s2nn_xp
        from s2nn_xp.jax import s2nn
        assert not jax.config.jax_enable_x64
        x = jnp.asarray([-1.0, 0.0, 1.0])
        assert s2nn(x).dtype == jnp.float32
        grad = jax.grad(lambda x: s2nn(x, 4.0, 1.0).sum())(x)
        assert grad.dtype == jnp.float32
        np.testing.assert_allclose(grad, [0.07065082, 1.0, 0.5], rtol=1e-6)
        np.testing.assert_allclose(s2nn_xp.gradient(x), grad, rtol=1e-6)
        assert s2nn(jnp.asarray([-1, 0, 2])).dtype == jnp.float32
        d_alpha = jax.grad(lambda a: s2nn(x, a, origin=True).sum())(4.0)
        assert d_alpha.dtype == jnp.float32, d_alpha.dtype
        half = s2nn(x.astype(jnp.bfloat16), origin=True)
        assert half.dtype == jnp.bfloat16
        """
    )
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


@pytest.mark.parametrize(
    ("in_axes", "out_axes"),
    [((0, 0), 0), ((1, 0), 0), ((1, 0), 1), ((-1, 0), 0), ((0, None), 1)],
)
def test_vmap_over_any_axis(in_axes, out_axes):
    x = jnp.asarray(GRID[:600].reshape(20, 30))
    x_axis, alpha_axis = in_axes
    per_neuron = alpha_axis is None  # one alpha per neuron, shared by the batch
    alpha = jnp.linspace(1.0, 8.0, x.shape[1] if per_neuron else x.shape[x_axis])
    fn = jax.vmap(jax.grad(lambda x, a: s2nn(x, a).sum()), in_axes, out_axes)
    got = jnp.moveaxis(fn(x, alpha), out_axes, 0)
    per_x = jnp.moveaxis(x, x_axis, 0)
    if per_neuron:
        per_alpha = np.broadcast_to(f64(alpha), per_x.shape)
    else:  # one alpha per batch element
        per_alpha = np.broadcast_to(f64(alpha)[:, None], per_x.shape)
    want = np.vectorize(ref_gradient)(f64(per_x), per_alpha)
    # alpha is no power of two: alpha * x rounds, |alpha * x| * eps relative.
    np.testing.assert_allclose(got, want, rtol=1e-13)


# --- higher orders -----------------------------------------------------------


def test_hessian_is_the_derivative_of_the_gradient():
    x = jnp.asarray(GRID[::20])
    hessian = jax.hessian(lambda x: s2nn(x).sum())(x)
    want = reference(ref_dgradient_dx, f64(x))
    np.testing.assert_allclose(np.diag(hessian), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(hessian - np.diag(np.diag(hessian)), 0.0)
    # Forward over reverse and reverse over reverse agree.
    second = grad_x(s2nn, 2)(jnp.asarray(GRID))
    forward_over_reverse = jax.vmap(jax.jacfwd(jax.grad(s2nn)))(jnp.asarray(GRID))
    np.testing.assert_allclose(second, forward_over_reverse, rtol=1e-12, atol=1e-14)
    # Autodiff of the gradient loses relative precision near 0- (where
    # alpha^2 s (1-s) (1-2s) -> 0 by cancellation), never absolute precision.
    np.testing.assert_allclose(
        second, reference(ref_dgradient_dx, GRID), rtol=1e-12, atol=1e-14
    )


def _hard_x(dtype) -> jax.Array:
    """Kink, -1, and the largest finite magnitudes of `dtype`."""
    big = float(np.finfo(dtype).max) / 2
    return jnp.asarray([-big, -1e4, -2.0, -1.0, -0.5, -0.0, 0.0, 1e4, big], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_x_derivative_to_third_order_is_finite(dtype):
    x = jnp.concatenate([_hard_x(dtype), jnp.asarray([-np.inf, np.inf], dtype)])
    for order in (1, 2, 3):
        for with_origin in (False, True):
            spike = functools.partial(s2nn, origin=with_origin)
            derivative = grad_x(spike, order)(x)
            assert np.isfinite(derivative).all(), (order, with_origin, derivative)


def _all_derivatives(x, alpha=4.0, beta=1.0, orders=(1, 2, 3)):
    """Every derivative in (x, alpha, beta) of the given orders, elementwise.

    Keys name the variables in the order differentiated: ``"xa"`` is
    ``d/d alpha (d s2nn / dx)``. One compiled function computes them all.
    """

    def derivatives(x, alpha, beta):
        out = {}
        for order in orders:
            for combo in itertools.product("xab", repeat=order):
                fn = s2nn
                for variable in combo:
                    fn = jax.grad(fn, argnums="xab".index(variable))
                out["".join(combo)] = jax.vmap(fn, (0, None, None))(x, alpha, beta)
        return out

    alpha, beta = jnp.asarray(alpha, x.dtype), jnp.asarray(beta, x.dtype)
    return {k: np.asarray(v) for k, v in jax.jit(derivatives)(x, alpha, beta).items()}


def _not_finite(derivatives, x):
    return {
        key: np.asarray(x)[~np.isfinite(values)].tolist()
        for key, values in derivatives.items()
        if not np.isfinite(values).all()
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mixed_derivatives_are_finite(dtype):
    """Orders 1 to 3 in (x, alpha, beta), at -1, the kink and the largest values."""
    x = _hard_x(dtype)
    assert _not_finite(_all_derivatives(x), x) == {}


def test_parameter_derivatives_at_infinity():
    """SPEC: every derivative is finite at +inf but d/d beta = log1p(inf) = inf.

    (The issue asks for no inf from any derivative at +-inf; SPEC's
    ``d origin / d beta = log1p(x + epsilon)`` is +inf at x = +inf, as the
    origin function itself is, so SPEC's value is what is tested.)
    """
    x = jnp.asarray([np.inf])
    derivatives = _all_derivatives(x)  # orders 1 to 3
    assert derivatives.pop("b") == np.inf
    assert _not_finite(derivatives, x) == {}
    assert derivatives["a"] == 0.0 and derivatives["x"] == 0.0


def test_alpha_derivatives_at_minus_infinity_are_zero():
    x = jnp.asarray([-np.inf])
    derivatives = _all_derivatives(x)  # orders 1 to 3
    assert derivatives["a"] == 0.0 and derivatives["aa"] == 0.0
    assert _not_finite(derivatives, x) == {}


def test_second_parameter_derivatives_are_spec():
    """d^2/d alpha^2 of origin, and 0 for beta twice or alpha and beta."""
    derivatives = _all_derivatives(jnp.asarray(GRID), alpha=3.0, beta=1.5, orders=(2,))
    want = reference(ref_dorigin_dalpha2, GRID, alpha=3.0)
    np.testing.assert_allclose(derivatives["aa"], want, rtol=1e-11, atol=1e-15)
    for key in ("ab", "ba", "bb"):
        assert not derivatives[key].any(), key


def _zero_everywhere(key):
    """Derivatives that are 0 for every x, so 0 at NaN too: origin is linear
    in beta, and alpha and beta live in different branches."""
    return key.count("b") >= 2 or ("a" in key and "b" in key)


def test_nan_in_gives_nan_out():
    x = jnp.asarray([np.nan])
    for with_origin in (False, True):
        assert np.isnan(s2nn(x, origin=with_origin)).all()
    derivatives = _all_derivatives(x)
    for key, values in derivatives.items():
        if not _zero_everywhere(key):
            assert np.isnan(values).all(), key


@pytest.mark.parametrize("jit", [False, True])
def test_nan_in_gives_nan_out_in_forward_mode(jit):
    def spike(x, alpha, beta):
        return s2nn(x, alpha, beta)

    fn = jax.jit(spike) if jit else spike
    primals = (jnp.asarray([np.nan]), jnp.asarray(4.0), jnp.asarray(1.0))
    for argnum in range(3):
        tangents = [jnp.zeros_like(p) for p in primals]
        tangents[argnum] = jnp.ones_like(primals[argnum])
        _, tangent = jax.jvp(fn, primals, tuple(tangents))
        assert np.isnan(tangent).all(), argnum
    _, linear = jax.linearize(lambda b: fn(primals[0], 4.0, b), 1.0)
    assert np.isnan(linear(1.0)).all()


# --- learnable parameters ----------------------------------------------------


def test_scalar_parameter_gradients_are_spec():
    x = jnp.asarray(GRID)
    cotangent = jnp.asarray(_rng.standard_normal(GRID.shape))

    def loss(x, alpha, beta):
        return (s2nn(x, alpha, beta) * cotangent).sum()

    d_alpha, d_beta = jax.grad(loss, argnums=(1, 2))(x, 3.0, 1.5)
    want_alpha = (cotangent * reference(ref_dorigin_dalpha, GRID, alpha=3.0)).sum()
    want_beta = (cotangent * reference(ref_dorigin_dbeta, GRID)).sum()
    np.testing.assert_allclose(d_alpha, want_alpha, rtol=1e-13)
    np.testing.assert_allclose(d_beta, want_beta, rtol=1e-13)
    # Second order, mixed with x: d gradient / d alpha and / d beta.
    mixed = jax.vmap(jax.grad(jax.grad(s2nn), argnums=(1, 2)), (0, None, None))
    d_alpha_dx, d_beta_dx = mixed(x, 3.0, 1.5)
    np.testing.assert_allclose(
        d_alpha_dx,
        reference(ref_dgradient_dalpha, GRID, alpha=3.0),
        rtol=1e-12,
        atol=1e-15,
    )
    np.testing.assert_allclose(
        d_beta_dx, reference(ref_dgradient_dbeta, GRID), rtol=1e-15
    )


@pytest.mark.parametrize("with_origin", [False, True], ids=["spike", "origin"])
def test_per_neuron_parameter_gradients_sum_over_the_batch(with_origin):
    batch, neurons = 12, 50
    x64 = GRID[: batch * neurons].reshape(batch, neurons)
    cotangent = _rng.standard_normal(x64.shape)
    alpha = np.linspace(0.5, 8.0, neurons)
    beta = np.linspace(0.2, 3.0, neurons)

    def loss(alpha, beta):
        y = s2nn(jnp.asarray(x64), alpha, beta, origin=with_origin)
        return (y * cotangent).sum()

    d_alpha, d_beta = jax.grad(loss, argnums=(0, 1))(jnp.asarray(alpha), beta)
    assert d_alpha.shape == d_beta.shape == (neurons,)
    want_alpha = np.vectorize(ref_dorigin_dalpha)(x64, alpha)
    want_beta = reference(ref_dorigin_dbeta, x64)
    np.testing.assert_allclose(d_alpha, (cotangent * want_alpha).sum(0), rtol=1e-12)
    np.testing.assert_allclose(d_beta, (cotangent * want_beta).sum(0), rtol=1e-12)


def test_parameter_cotangents_keep_their_dtype():
    x = jnp.asarray(GRID, dtype=jnp.float32)
    alpha64 = jnp.full(GRID.shape, 4.0, dtype=jnp.float64)
    beta16 = jnp.asarray(1.0, dtype=jnp.float16)
    d_alpha, d_beta = jax.grad(lambda a, b: s2nn(x, a, b).sum(), argnums=(0, 1))(
        alpha64, beta16
    )
    assert d_alpha.dtype == jnp.float64 and d_beta.dtype == jnp.float16
    assert s2nn(x, alpha64, beta16).dtype == jnp.float32


def test_epsilon_is_a_constant():
    x = jnp.asarray(GRID)
    d_epsilon = jax.grad(lambda e: s2nn(x, epsilon=e, origin=True).sum())(1e-3)
    assert d_epsilon == 0.0
    np.testing.assert_allclose(
        s2nn(x, epsilon=jnp.asarray(1e-3), origin=True),
        reference(ref_origin, GRID, epsilon=1e-3),
        rtol=1e-15,
    )


def test_no_recompilation_when_parameter_values_change(monkeypatch):
    traces = {"forward": 0, "gradient": 0}
    for name in traces:
        original = getattr(s2nn_xp._math, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            traces[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(s2nn_xp._math, name, counting)
    x = jnp.asarray(GRID[:37])

    # Eager calls: Python-number parameters are traced, not baked in; arrays
    # of new values reuse the compiled function too.
    s2nn(x, 1.0, 0.25)
    s2nn(x, 4.0, jnp.full(37, 1.0))
    compiled = dict(traces)
    for alpha in (2.0, 4.0, 7.5):
        s2nn(x, alpha, alpha / 4)
        s2nn(x, 4.0, jnp.full(37, alpha))
    assert traces == compiled

    # Under the caller's jit, with gradients in x and in the parameters.
    user_traces = []

    @jax.jit
    def step(x, alpha, beta):
        user_traces.append(1)
        return jax.grad(lambda x, a, b: s2nn(x, a, b).sum(), argnums=(0, 1, 2))(
            x, alpha, beta
        )

    for value in (1.0, 2.0, 3.0):
        step(x, jnp.asarray(value), jnp.full(37, value))
    assert len(user_traces) == 1
    assert traces["gradient"] == compiled["gradient"] + 1


# --- dtypes ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_is_computed_in_float32_and_rounded_once(dtype):
    x = jnp.asarray(GRID / 4, dtype=dtype)
    wide = x.astype(jnp.float32)
    for with_origin in (False, True):
        spike = functools.partial(s2nn, origin=with_origin)
        y = spike(x)
        grad = jax.grad(lambda x, spike=spike: spike(x).sum())(x)
        assert y.dtype == grad.dtype == dtype
        np.testing.assert_array_equal(y, s2nn(wide, origin=with_origin).astype(dtype))
        wide_grad = jax.grad(lambda x, spike=spike: spike(x).sum())(wide)
        np.testing.assert_array_equal(grad, wide_grad.astype(dtype))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_cotangents_and_tangents_are_rounded_once(dtype):
    """A random 16-bit cotangent or tangent times the float32 gradient, rounded once."""
    x = jnp.asarray(GRID / 4, dtype=dtype)
    wide = x.astype(jnp.float32)
    direction = jnp.asarray(_rng.standard_normal(GRID.shape), dtype=dtype)
    want = (s2nn_xp.gradient(wide) * direction.astype(jnp.float32)).astype(dtype)
    for with_origin in (False, True):
        spike = functools.partial(s2nn, origin=with_origin)
        _, pullback = jax.vjp(spike, x)
        (cotangent,) = pullback(direction)
        _, tangent = jax.jvp(spike, (x,), (direction,))
        assert cotangent.dtype == tangent.dtype == dtype
        np.testing.assert_array_equal(cotangent, want)
        np.testing.assert_array_equal(tangent, want)


def test_float32_values_and_cotangents_stay_float32():
    x = jnp.asarray(GRID, dtype=jnp.float32)
    y, pullback = jax.vjp(s2nn, x)
    assert y.dtype == pullback(jnp.ones_like(y))[0].dtype == jnp.float32


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "bool"])
def test_integer_and_bool_input_is_promoted(dtype):
    x = jnp.asarray([-2, -1, 0, 1, 2]).astype(dtype)
    default = jnp.asarray(1.0).dtype  # float64 under jax_enable_x64
    for with_origin in (False, True):
        y = s2nn(x, origin=with_origin)
        assert y.dtype == default
        want = ref_origin if with_origin else ref_forward
        np.testing.assert_allclose(y, reference(want, f64(x)), rtol=1e-15)


# --- inference computes the forward only --------------------------------------


def test_inference_jaxpr_and_hlo_compute_no_derivative():
    x = jnp.asarray(GRID, dtype=jnp.float32)
    spike_only = primitives(jax.make_jaxpr(s2nn)(x))
    assert "floor" in spike_only  # the walk reaches the custom-JVP call's body
    assert not spike_only & {"exp", "log1p", "div", "logistic"}, spike_only
    hlo = jax.jit(s2nn).lower(x).compile().as_text()
    assert "exponential" not in hlo and "divide" not in hlo
    # The check sees derivatives where there are some.
    with_grad = primitives(jax.make_jaxpr(jax.grad(lambda x: s2nn(x).sum()))(x))
    assert {"exp", "div"} <= with_grad
    # The origin is computed alone too: as many exp and log1p as the core's.
    origin_jaxpr = jax.make_jaxpr(lambda x: s2nn(x, origin=True))(x)
    core_jaxpr = jax.make_jaxpr(lambda x: s2nn_xp._math.origin(jnp, x, 4.0, 1.0, 1e-8))(
        x
    )
    shape = f"f32[{x.size}]"  # count whole-array operations, not scalar ones
    for name in ("exp", "log1p", "div"):
        op = f"{shape} = {name} "
        assert str(origin_jaxpr).count(op) == str(core_jaxpr).count(op), name


def test_differentiating_x_alone_computes_no_parameter_derivative():
    x = jnp.asarray(GRID)

    def grad_jaxpr(argnums):
        loss = jax.grad(lambda x, a, b: s2nn(x, a, b).sum(), argnums)
        return jax.make_jaxpr(loss)(x, 4.0, 1.0)

    only_x = grad_jaxpr(0)
    # d/d beta = log1p(x + epsilon): origin's logarithm appears only with it.
    assert "log1p" not in primitives(only_x)
    assert "log1p" in primitives(grad_jaxpr((0, 2)))
    assert len(str(only_x)) < len(str(grad_jaxpr((0, 1))))


# --- real SNN code ------------------------------------------------------------


def _lif_rates(weights, inputs, spike, *, unrolled=False):
    """Firing rates of a layer of LIF neurons run over time with lax.scan."""

    def step(v, current):
        v = 0.8 * v + current @ weights
        s = spike(v - 1.0)
        return v - s, s  # soft reset, differentiated through the spike

    v0 = jnp.zeros((inputs.shape[1], weights.shape[1]), inputs.dtype)
    if unrolled:
        spikes = []
        v = v0
        for current in inputs:
            v, s = step(v, current)
            spikes.append(s)
        return jnp.stack(spikes).mean(0)
    return jax.lax.scan(step, v0, inputs)[1].mean(0)


def test_lif_network_with_scan_trains_with_grad():
    key_input, key_weights = jax.random.split(jax.random.key(0))
    inputs = jax.random.uniform(key_input, (15, 8, 10), jnp.float32)  # T, B, in
    weights = 0.05 * jax.random.normal(key_weights, (10, 6), jnp.float32)
    target = jnp.linspace(0.1, 0.7, 6)

    def loss(weights, unrolled=False):
        rates = _lif_rates(weights, inputs, s2nn, unrolled=unrolled)
        return ((rates - target) ** 2).mean()

    grad = jax.jit(jax.grad(loss))(weights)
    unrolled_grad = jax.jit(jax.grad(lambda w: loss(w, unrolled=True)))(weights)
    np.testing.assert_allclose(grad, unrolled_grad, rtol=1e-5, atol=1e-7)
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0

    @jax.jit
    def train_step(weights):
        value, grad = jax.value_and_grad(loss)(weights)
        return weights - 2.0 * grad, value

    first = None
    for _ in range(40):
        weights, value = train_step(weights)
        first = value if first is None else first
    assert loss(weights) < 0.25 * first


def test_lif_with_learnable_per_neuron_surrogate_parameters():
    inputs = jax.random.uniform(jax.random.key(1), (20, 4, 6), jnp.float32)
    weights = jnp.full((6, 5), 0.3, jnp.float32)

    def loss(alpha, beta):
        rates = _lif_rates(weights, inputs, lambda v: s2nn(v, alpha, beta))
        return (rates * jnp.arange(5)).sum()

    d_alpha, d_beta = jax.jit(jax.grad(loss, (0, 1)))(jnp.full(5, 4.0), 1.0)
    assert d_alpha.shape == (5,) and d_beta.shape == ()
    assert np.isfinite(d_alpha).all() and np.isfinite(d_beta)
    assert np.abs(d_alpha).max() > 0 and d_beta != 0


# --- jax.test_util.check_grads against the surrogate model --------------------


def test_check_grads_of_the_origin_model():
    """Finite differences of the origin function match the surrogate rule.

    The spike itself is a step, whose finite differences are 0 or huge; the
    surrogate derivatives are those of the origin function (up to ``epsilon``
    in ``d/dx`` on ``x >= 0``: ``beta / (x + 1)`` against ``beta / (x + 1 +
    epsilon)``), so ``origin=True`` is what finite differences can check, to
    second order in ``x``, ``alpha`` and ``beta``, in both modes. Points keep
    away from the kink at 0, where the model is not twice differentiable.
    """
    x = jnp.asarray([-3.0, -1.0, -0.4, -0.05, 0.05, 0.3, 1.0, 5.0])
    alpha = jnp.asarray(3.0)
    beta = jnp.linspace(0.5, 2.0, 8)

    def model(x, alpha, beta):
        return s2nn(x, alpha, beta, origin=True)

    check_grads(model, (x, alpha, beta), order=2, modes=("fwd", "rev"), eps=1e-5)
    # The spike carries the same derivatives as the origin model.
    for argnums in (0, 1, 2):
        np.testing.assert_array_equal(
            jax.jacrev(lambda *a: s2nn(*a), argnums)(x, alpha, beta),
            jax.jacrev(model, argnums)(x, alpha, beta),
        )


# --- sharding ------------------------------------------------------------------

_SHARDING_SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    import s2nn_xp
    from s2nn_xp.jax import s2nn

    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("neurons",))
    sharding = NamedSharding(mesh, PartitionSpec(None, "neurons"))
    x_np = np.linspace(-3.0, 3.0, 8 * 64, dtype=np.float32).reshape(8, 64)
    x = jax.device_put(x_np, sharding)

    spikes = jax.jit(s2nn)(x)
    eager = s2nn_xp.s2nn(x)
    grad = jax.jit(jax.grad(lambda x: s2nn(x).sum()))(x)
    print(json.dumps({
        "devices": len(devices),
        "shards": len(x.addressable_shards),
        "same_sharding": all(
            a.sharding.is_equivalent_to(sharding, 2) for a in (spikes, eager, grad)
        ),
        "spikes": np.asarray(spikes).tolist(),
        "eager": np.asarray(eager).tolist(),
        "grad": np.asarray(grad).tolist(),
    }))
    """
)


def test_sharded_input_keeps_its_sharding_over_four_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    )
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    completed = subprocess.run(
        [sys.executable, "-c", _SHARDING_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4 and result["shards"] == 4
    assert result["same_sharding"]
    x = np.linspace(-3.0, 3.0, 8 * 64, dtype=np.float32).reshape(8, 64)
    np.testing.assert_array_equal(result["spikes"], reference(ref_forward, x))
    np.testing.assert_array_equal(result["eager"], reference(ref_forward, x))
    want_grad = reference(ref_gradient, f64(x)).astype(np.float32)
    np.testing.assert_allclose(result["grad"], want_grad, rtol=4e-7)


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"beta": -1.0}, ValueError, "beta"),
        ({"epsilon": float("nan")}, ValueError, "epsilon"),
        ({"alpha": True}, TypeError, "alpha"),
        ({"beta": "1.0"}, TypeError, "beta"),
        ({"alpha": jnp.ones(3)}, ValueError, "alpha of shape"),
        ({"beta": jnp.asarray([1j])}, TypeError, "beta"),
        ({"origin": 1}, TypeError, "origin"),
    ],
)
def test_bad_arguments_raise_errors_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        s2nn(jnp.ones((2, 4)), **kwargs)


def test_complex_input_raises_type_error():
    with pytest.raises(TypeError, match="complex"):
        s2nn(jnp.asarray([1j]))


def test_parameters_of_another_library_raise_type_error():
    class Foreign:
        pass

    with pytest.raises(TypeError, match="alpha"):
        s2nn(jnp.ones(3), alpha=Foreign())


# --- properties ----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        16,
        # No subnormals: XLA on CPU flushes them to zero (a negative
        # subnormal spikes there), a property of XLA and not of the adapter.
        elements=st.floats(
            -1e6, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False
        ),
    ),
    st.floats(0.25, 16.0),
    st.floats(0.1, 8.0),
)
def test_gradient_and_spike_match_the_numpy_core(x, alpha, beta):
    spikes, grad = _spike_and_grad(jnp.asarray(x), alpha, beta)
    np.testing.assert_array_equal(spikes, s2nn_xp.forward(x))
    np.testing.assert_allclose(
        grad, s2nn_xp.gradient(x, alpha, beta), rtol=1e-14, atol=1e-300
    )
    assert (np.asarray(grad) >= 0).all()


@jax.jit
def _spike_and_grad(x, alpha, beta):
    return jax.vjp(lambda x: s2nn(x, alpha, beta), x)[0], jax.grad(
        lambda x: s2nn(x, alpha, beta).sum()
    )(x)
