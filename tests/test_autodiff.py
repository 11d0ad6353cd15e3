"""The autodiff contract, once for every framework with autodiff.

The docs' Definition page ("Derivatives") says that the spike's value is the
step and every derivative of it, of every order and in ``x``, ``alpha`` and
``beta``, is the derivative of the surrogate model ``origin``; ``epsilon`` is
a constant; NaN gives NaN in every derivative; 16-bit input is computed in
float32 and rounded once. These tests check that through each framework's
own transforms (grad, vjp, jvp, vmap, compiled, higher order, parameters).

Each framework is a small helper class below that says how it takes these
derivatives; the tests are written once against the helpers, and run for
every backend whose registry entry has the ``autodiff`` capability.
``tests/test_jax.py`` and ``tests/test_torch.py`` keep only what is special
to each framework. Reference values are the mpmath functions of
``tests/_support.py``, or the float64 NumPy path, never the adapter.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from typing import ClassVar

import mpmath
import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _backends
from tests._support import (
    ALPHA_PARTIAL_ULP_BOUND,
    COTANGENT,
    EXP_ULP_EXCESS,
    GRID,
    PLAIN_ORIGIN_ULP_EXCESS,
    SPECIAL_X,
    ULP_BOUND,
    exact_dorigin_dalpha,
    exact_dorigin_dbeta,
    exact_gradient,
    exact_origin,
    load_backend,
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
    selected_backends,
    to_numpy,
    ulp_error,
    ulps_off,
)


def f64(a) -> np.ndarray:
    return np.asarray(to_numpy(a), dtype=np.float64)


# --- one helper per framework -------------------------------------------------


class _JAX:
    """JAX's transforms, as the contract uses them."""

    name = "jax"

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp

        import s2nn_xp.jax

        self.jax, self.xp, self.s2nn = jax, jnp, s2nn_xp.jax.s2nn
        self.grad, self.vmap = jax.grad, jax.vmap
        self.jacfwd, self.hessian = jax.jacfwd, jax.hessian

    def array(self, values, dtype: str = "float64"):
        return self.xp.asarray(np.asarray(values), dtype=dtype)

    def astype(self, a, dtype: str):
        return a.astype(dtype)

    def vjp(self, fn, x, cotangent):
        y, pullback = self.jax.vjp(fn, x)
        return y, pullback(cotangent)[0]

    def jvp(self, fn, primals, tangents):
        return self.jax.jvp(fn, primals, tangents)

    def compiled_grad(self, fn, x):
        """The gradient of scalar `fn` at `x`, compiled."""
        return self.jax.jit(self.jax.grad(fn))(x)

    def derivative(self, fn, x, order: int = 1):
        """Elementwise ``d^order fn / dx^order`` of an elementwise `fn`."""
        for _ in range(order):
            fn = self.jax.grad(fn)
        return self.jax.jit(self.jax.vmap(fn))(x)

    def all_derivatives(self, x, alpha=4.0, beta=1.0, orders=(1, 2, 3), function=None):
        """Every derivative in (x, alpha, beta) of the given orders, elementwise.

        Keys name the variables in the order differentiated: ``"xa"`` is
        ``d/d alpha (d s2nn / dx)``. Of ``function(x, alpha, beta)``, the
        spike (:func:`s2nn`) if not given.
        """
        jax = self.jax
        function = function or self.s2nn

        def derivatives(x, alpha, beta):
            out = {}
            for order in orders:
                for combo in itertools.product("xab", repeat=order):
                    fn = function
                    for variable in combo:
                        fn = jax.grad(fn, argnums="xab".index(variable))
                    out["".join(combo)] = jax.vmap(fn, (0, None, None))(x, alpha, beta)
            return out

        alpha, beta = self.xp.asarray(alpha, x.dtype), self.xp.asarray(beta, x.dtype)
        found = jax.jit(derivatives)(x, alpha, beta)
        return {k: f64(v) for k, v in found.items()}


class _Torch:
    """PyTorch's autograd and ``torch.func``, as the contract uses them."""

    name = "torch"

    def __init__(self) -> None:
        import torch

        import s2nn_xp.torch

        self.torch, self.xp, self.s2nn = torch, torch, s2nn_xp.torch.s2nn
        self.grad, self.vmap = torch.func.grad, torch.func.vmap
        self.jacfwd, self.hessian = torch.func.jacfwd, torch.func.hessian

    def array(self, values, dtype: str = "float64"):
        return self.torch.asarray(np.asarray(values), dtype=getattr(self.torch, dtype))

    def astype(self, a, dtype: str):
        return a.to(getattr(self.torch, dtype))

    def vjp(self, fn, x, cotangent):
        y, pullback = self.torch.func.vjp(fn, x)
        return y, pullback(cotangent)[0]

    def jvp(self, fn, primals, tangents):
        return self.torch.func.jvp(fn, primals, tangents)

    def compiled_grad(self, fn, x):
        """The gradient of scalar `fn` at `x`, compiled (autograd backward)."""
        x = x.detach().requires_grad_(True)
        self.torch.compile(fn, fullgraph=True)(x).backward()
        return x.grad

    def derivative(self, fn, x, order: int = 1):
        """Elementwise ``d^order fn / dx^order`` of an elementwise `fn`."""
        x = x.detach().requires_grad_(True)
        out = fn(x)
        for _ in range(order):
            (out,) = self.torch.autograd.grad(out.sum(), x, create_graph=True)
        return out.detach()

    def all_derivatives(self, x, alpha=4.0, beta=1.0, orders=(1, 2, 3), function=None):
        """As :meth:`_JAX.all_derivatives`, with per-element alpha and beta."""
        torch = self.torch
        function = function or self.s2nn
        inputs = {
            "x": x.detach().clone().requires_grad_(True),
            "a": torch.full_like(x, alpha).requires_grad_(True),
            "b": torch.full_like(x, beta).requires_grad_(True),
        }
        y = function(inputs["x"], inputs["a"], inputs["b"])
        out = {}
        for order in orders:
            for combo in itertools.product("xab", repeat=order):
                value = y
                for variable in combo:
                    (value,) = torch.autograd.grad(
                        value.sum(),
                        inputs[variable],
                        create_graph=True,
                        allow_unused=True,
                    )
                    if value is None:  # not a function of the variable: 0
                        value = torch.zeros_like(x, requires_grad=True)
                out["".join(combo)] = f64(value)
        return out


HELPERS: dict[str, type] = {"jax": _JAX, "torch": _Torch}
AUTODIFF = [
    b.name
    for b in _backends.BACKENDS.values()
    if _backends.Capability.AUTODIFF in b.capabilities
]


@pytest.fixture(params=[name for name in AUTODIFF if name in selected_backends()])
def fw(request):
    """The helper of one framework with autodiff."""
    load_backend(request.param)
    return HELPERS[request.param]()


def test_every_backend_with_autodiff_has_a_helper():
    assert sorted(HELPERS) == sorted(AUTODIFF)


def _hard_x(fw, dtype: str):
    """Kink, -1, and the largest finite magnitudes of `dtype`."""
    big = float(np.finfo(dtype).max) / 2
    return fw.array([-big, -1e4, -2.0, -1.0, -0.5, -0.0, 0.0, 1e4, big], dtype)


def _not_finite(derivatives, x) -> dict[str, list[float]]:
    return {
        key: f64(x)[~np.isfinite(values)].tolist()
        for key, values in derivatives.items()
        if not np.isfinite(values).all()
    }


def _zero_everywhere(key: str) -> bool:
    """Derivatives that are 0 for every x, so 0 at NaN too: origin is linear
    in beta, and alpha and beta live in different branches."""
    return key.count("b") >= 2 or ("a" in key and "b" in key)


# --- the public API, inputs ---------------------------------------------------


def test_public_api_and_the_object_carry_the_surrogate_gradient(fw):
    x = fw.array(GRID)
    want = reference(ref_gradient, GRID)
    spike_grad = fw.grad(lambda v: s2nn_xp.s2nn(v).sum())(x)
    object_grad = fw.grad(lambda v: s2nn_xp.S2NN()(v).sum())(x)
    np.testing.assert_allclose(f64(spike_grad), want, rtol=1e-15)
    np.testing.assert_allclose(f64(object_grad), want, rtol=1e-15)
    np.testing.assert_array_equal(f64(s2nn_xp.S2NN()(x)), reference(ref_forward, GRID))
    origin_fn = s2nn_xp.S2NN(alpha=2.0, beta=0.5, origin=True)
    want_origin = reference(ref_origin, GRID, alpha=2.0, beta=0.5)
    np.testing.assert_allclose(f64(origin_fn(x)), want_origin, rtol=1e-15)


def test_python_and_numpy_input_become_framework_arrays(fw):
    for x in (0.5, [-1.0, 1.0], np.array([-1.0, 1.0])):
        y = fw.s2nn(x)
        assert _backends.of_array(y).name == fw.name
        np.testing.assert_array_equal(f64(y), np.asarray(x) >= 0)
    y = fw.s2nn(fw.array([-1.0, 1.0]), alpha=np.array([2.0, 3.0]), beta=[1.0, 2.0])
    assert _backends.of_array(y).name == fw.name


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int32", "int64", "bool"])
def test_integer_and_bool_input_is_promoted(fw, dtype):
    x = fw.array(np.array([-2, -1, 0, 1, 2]).astype(dtype), dtype)
    default = fw.xp.asarray(1.0).dtype  # float64 for JAX under jax_enable_x64
    for with_origin in (False, True):
        y = fw.s2nn(x, origin=with_origin)
        assert y.dtype == default
        want = reference(ref_origin if with_origin else ref_forward, f64(x))
        np.testing.assert_allclose(f64(y), want, rtol=1e-7)


# --- values and first derivatives ---------------------------------------------


@pytest.mark.parametrize("with_origin", [False, True], ids=["spike", "origin"])
def test_special_values_and_their_gradient(fw, with_origin):
    x = fw.array(SPECIAL_X)
    spike = functools.partial(fw.s2nn, origin=with_origin)
    y, grad = fw.vjp(spike, x, fw.array(np.ones_like(SPECIAL_X)))
    want = reference(ref_origin if with_origin else ref_forward, SPECIAL_X)
    np.testing.assert_allclose(f64(y), want, rtol=4e-16, strict=True)
    want_grad = reference(ref_gradient, SPECIAL_X)
    np.testing.assert_allclose(f64(grad), want_grad, rtol=4e-16, strict=True)
    assert y.dtype == grad.dtype == x.dtype


@pytest.mark.parametrize("function", ["origin", "gradient"])
def test_forward_and_reverse_mode_of_the_plain_functions_agree(fw, function):
    """``origin`` and ``gradient`` are ordinary differentiable math.

    Forward mode gave NaN at ``x = +inf`` in PyTorch, where reverse mode gave
    0: the blend multiplied the infinite branch by ``floor``'s tangent of
    zeros.
    """
    fn = getattr(s2nn_xp, function)
    x, ones = fw.array(SPECIAL_X), fw.array(np.ones_like(SPECIAL_X))
    _, pushed = fw.jvp(fn, (x,), (ones,))
    _, pulled = fw.vjp(fn, x, ones)
    np.testing.assert_allclose(f64(pushed), f64(pulled), rtol=1e-15, strict=True)
    assert not np.isnan(f64(pushed)[~np.isnan(SPECIAL_X)]).any()


def test_the_spike_alone_differentiates_to_zero_in_every_transform(fw):
    """``forward`` is the step: where autodiff records it, its derivative is 0.

    PyTorch's eager autograd got a result that required no grad, and
    ``backward`` raised ("element 0 of tensors does not require grad"),
    where ``torch.func``, JAX, and ``torch.floor`` itself give 0.
    """
    x = fw.array(SPECIAL_X)
    ones = fw.array(np.ones_like(SPECIAL_X))
    infinite = fw.array(np.full_like(SPECIAL_X, np.inf))

    def total(v):
        return s2nn_xp.forward(v).sum()

    found = {
        "eager": fw.derivative(s2nn_xp.forward, x),
        "grad": fw.grad(total)(x),
        "compiled": fw.compiled_grad(total, x),
        "vjp": fw.vjp(s2nn_xp.forward, x, ones)[1],
        "jvp": fw.jvp(s2nn_xp.forward, (x,), (infinite,))[1],  # not 0 * inf
        "vmap": fw.vmap(fw.grad(s2nn_xp.forward))(x),
        "hessian": fw.hessian(total)(x[:3]),
    }
    for transform, derivative in found.items():
        zeros = np.zeros(tuple(derivative.shape))
        np.testing.assert_array_equal(f64(derivative), zeros, err_msg=transform)
    np.testing.assert_array_equal(
        f64(s2nn_xp.forward(x)), reference(ref_forward, SPECIAL_X), strict=True
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("params", [(4.0, 1.0), (8.0, 2.0), (0.5, 1.7)])
def test_grad_is_the_surrogate_gradient(fw, dtype, params):
    alpha, beta = params  # powers of two: alpha * x is exact
    x = fw.array(GRID / alpha * 4, dtype)
    grad = fw.grad(lambda v: fw.s2nn(v, alpha, beta).sum())(x)
    assert grad.dtype == x.dtype
    want = reference(ref_gradient, f64(x), alpha=alpha, beta=beta)
    # The NumPy path reaches 2 ulp in float64; fused, reordered code (XLA)
    # is allowed 4 ulp here.
    assert ulp_error(f64(grad), want, np.dtype(dtype)).max() <= 4.0
    if dtype == "float64":  # and the float64 NumPy path, the reference backend
        core = s2nn_xp.gradient(f64(x), alpha, beta)
        np.testing.assert_allclose(f64(grad), core, rtol=1e-15)


@pytest.mark.parametrize("with_origin", [False, True], ids=["spike", "origin"])
def test_vjp_and_jvp_multiply_by_the_surrogate_gradient(fw, with_origin):
    x, cotangent = fw.array(GRID), fw.array(COTANGENT)
    spike = functools.partial(fw.s2nn, origin=with_origin)
    want_y = reference(ref_origin if with_origin else ref_forward, GRID)
    want = COTANGENT * reference(ref_gradient, GRID)
    y, pulled = fw.vjp(spike, x, cotangent)
    np.testing.assert_allclose(f64(y), want_y, rtol=1e-15)
    np.testing.assert_allclose(f64(pulled), want, rtol=1e-15)
    y, pushed = fw.jvp(spike, (x,), (cotangent,))
    np.testing.assert_allclose(f64(y), want_y, rtol=1e-15)
    np.testing.assert_allclose(f64(pushed), want, rtol=1e-15)


def test_compiled_gradient(fw):
    x = fw.array(GRID)
    weights = fw.array(np.arange(GRID.size, dtype=np.float64))

    def loss(v):
        return (fw.s2nn(v) * weights).sum()

    grad = fw.compiled_grad(loss, x)
    want = reference(ref_gradient, GRID) * np.arange(GRID.size)
    np.testing.assert_allclose(f64(grad), want, rtol=1e-15)


@pytest.mark.parametrize(
    ("in_axes", "out_axes"),
    [((0, 0), 0), ((1, 0), 0), ((1, 0), 1), ((-1, 0), 0), ((0, None), 1)],
)
def test_vmap_of_grad_over_any_axis(fw, in_axes, out_axes):
    x = fw.array(GRID[:600].reshape(20, 30))
    x_axis, alpha_axis = in_axes
    per_neuron = alpha_axis is None  # one alpha per neuron, shared by the batch
    n_alpha = x.shape[1] if per_neuron else x.shape[x_axis]
    alpha = fw.array(np.linspace(1.0, 8.0, n_alpha))
    per_example = fw.vmap(fw.grad(lambda v, a: fw.s2nn(v, a).sum()), in_axes, out_axes)(
        x, alpha
    )
    got = np.moveaxis(f64(per_example), out_axes, 0)
    per_x = np.moveaxis(f64(x), x_axis, 0)
    if per_neuron:
        per_alpha = np.broadcast_to(f64(alpha), per_x.shape)
    else:  # one alpha per batch element
        per_alpha = np.broadcast_to(f64(alpha)[:, None], per_x.shape)
    want = np.vectorize(ref_gradient)(per_x, per_alpha)
    # alpha is no power of two: alpha * x rounds, |alpha * x| * eps relative.
    np.testing.assert_allclose(got, want, rtol=1e-13)


# --- higher orders ------------------------------------------------------------


def test_second_derivative_is_the_derivative_of_the_gradient(fw):
    x = fw.array(GRID)
    # Autodiff of the gradient loses relative precision near 0- (where
    # alpha^2 s (1-s) (1-2s) -> 0 by cancellation), never absolute precision.
    want = reference(ref_dgradient_dx, GRID)
    second = f64(fw.derivative(fw.s2nn, x, 2))
    np.testing.assert_allclose(second, want, rtol=1e-12, atol=1e-14)
    # The Hessian is diagonal, and forward over reverse gives it too.
    few = fw.array(GRID[::20])
    hessian = f64(fw.hessian(lambda v: fw.s2nn(v).sum())(few))
    np.testing.assert_allclose(np.diag(hessian), want[::20], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(hessian - np.diag(np.diag(hessian)), 0.0)
    forward_over_reverse = fw.jacfwd(fw.grad(lambda v: fw.s2nn(v).sum()))(few)
    np.testing.assert_allclose(
        f64(forward_over_reverse), hessian, rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_x_derivative_to_third_order_is_finite(fw, dtype):
    x = fw.xp.concat([_hard_x(fw, dtype), fw.array([-np.inf, np.inf], dtype)])
    for order, with_origin in itertools.product((1, 2, 3), (False, True)):
        spike = functools.partial(fw.s2nn, origin=with_origin)
        values = f64(fw.derivative(spike, x, order))
        assert np.isfinite(values).all(), (order, with_origin, values)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_huge_beta_and_epsilon_give_no_nan_where_the_tail_is_not_taken(fw, dtype):
    """log1p(-0.5 + epsilon) * beta and beta / (1 + x) overflow there."""
    largest = float(np.finfo(dtype).max)
    x = fw.array([-2.0, -1.0, -0.25, -1e-30], dtype)
    huge = functools.partial(fw.s2nn, beta=largest * 0.9, epsilon=3.0, origin=True)
    plain = functools.partial(fw.s2nn, origin=True)
    for order in (0, 1, 2):
        got = f64(fw.derivative(huge, x, order) if order else huge(x))
        want = f64(fw.derivative(plain, x, order) if order else plain(x))
        np.testing.assert_array_equal(got, want, err_msg=f"order {order}")


@pytest.mark.parametrize(("dtype", "alpha"), [("float32", 1e20), ("float64", 1e200)])
def test_derivatives_at_the_tie_with_a_huge_alpha_are_the_tails(fw, dtype, alpha):
    """The sigmoid guard passed half a derivative at x = 0 into the branch not
    taken, where it grows with alpha: 0 times inf was NaN in the blend."""
    x = fw.array([0.0, -0.0], dtype)
    spike = functools.partial(fw.s2nn, alpha=alpha, beta=3.0)
    smooth = functools.partial(fw.s2nn, alpha=alpha, beta=3.0, origin=True)
    # d^k/dx^k of 3 log1p(x): 3, -3, 6 at 0; the spike's from the second on
    want = {(spike, 2): -3.0, (spike, 3): 6.0, (smooth, 2): -3.0, (smooth, 3): 6.0}
    for (function, order), value in want.items():
        got = f64(fw.derivative(function, x, order))
        np.testing.assert_allclose(got, value, rtol=1e-6, err_msg=f"order {order}")


@pytest.mark.parametrize(("dtype", "alpha"), [("float32", 1e-20), ("float64", 1e-160)])
def test_derivatives_with_a_tiny_alpha_are_finite(fw, dtype, alpha):
    """The sigmoid's floor -1000 / alpha passed its own derivative, 1000 /
    alpha**2 (inf), to d / d alpha, where the clip's 0 made it NaN."""
    x = fw.array([-2.0, -1.0, -0.0, 0.0, 1.0], dtype)
    assert _not_finite(fw.all_derivatives(x, alpha=alpha, orders=(1, 2)), x) == {}
    d_alpha = fw.all_derivatives(x, alpha=alpha, orders=(1,))["a"]
    # x s (1 - s) with s = 1/2: x / 4 where x < 0, 0 elsewhere
    np.testing.assert_allclose(d_alpha, [-0.5, -0.25, 0.0, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mixed_derivatives_are_finite(fw, dtype):
    """Orders 1 to 3 in (x, alpha, beta), at -1, the kink and the largest values."""
    x = _hard_x(fw, dtype)
    assert _not_finite(fw.all_derivatives(x), x) == {}


def test_parameter_derivatives_at_infinity(fw):
    """Every derivative is finite at +inf but d/d beta = log1p(inf) = inf.

    (The Definition page's ``d origin / d beta = log1p(x + epsilon)`` is +inf
    at x = +inf, as the origin function itself is.)
    """
    x = fw.array([np.inf])
    derivatives = fw.all_derivatives(x)  # orders 1 to 3
    assert derivatives.pop("b") == np.inf
    assert _not_finite(derivatives, x) == {}
    assert derivatives["a"] == 0.0 and derivatives["x"] == 0.0


def test_alpha_derivatives_at_minus_infinity_are_zero(fw):
    x = fw.array([-np.inf])
    derivatives = fw.all_derivatives(x)  # orders 1 to 3
    assert derivatives["a"] == 0.0 and derivatives["aa"] == 0.0
    assert _not_finite(derivatives, x) == {}


# Where reviews measured the most ulp: d/d alpha, JAX float64 (3.00 and 2.69
# ulp; its exp is less accurate than NumPy's), and gradient's hardest values;
# then JAX 0.10's float64 (2.75 and 2.67 ulp d/dx, 3.41 d/d alpha, 2.57
# origin: its exp is less accurate still).
_HARDEST_X = [-2.6882074684175024, -1.2773406229981548, -0.8577506398552764]
_HARDEST_X += [-1.3900713, -0.90520024, -3.7236419]
_HARDEST_X += [-9.088459169886471, -7.008469892793352, -0.7903493346184973]
_HARDEST_X += [-1.2854362279766267, -1.2706344548899058, -2.337512421188181]


# Where a review's search (16 million x near 0-, alpha = 4) found the plain
# origin's largest errors: JAX's d/dx and d/d alpha in float64, then JAX's and
# PyTorch's in float32. Uniform draws on [-4, 0] came to 3.2 ulp at most.
_PLAIN_ORIGIN_HARDEST_X = [-0.00018431522517773537, -0.000962781138010802]
_PLAIN_ORIGIN_HARDEST_X += [-0.001178614, -0.007687203, -0.001759377, -0.0038084819]


def _plain_origin(x, alpha, beta):
    """The plain function ``origin``, without epsilon (whose derivative in x
    would not be the gradient's, the Definition's table)."""
    return s2nn_xp.origin(x, alpha, beta, 0.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("alpha", [4.0, 16.0])
@pytest.mark.parametrize("function", ["spike", "plain origin"])
def test_first_derivatives_are_within_the_definitions_ulp_bounds(
    fw, function, alpha, dtype
):
    """The Definition's Accuracy, through each framework's autodiff, where
    exp(alpha * x) is normal and alpha * x exact: the spike's d/dx and d/d
    beta within the gradient's bound, d/d alpha (x times a value within it)
    half an ulp more. The page held d/d alpha to the gradient's 2.5 ulp
    (float64); JAX's came to 3.00 (mpmath, 40 digits). The plain ``origin``,
    which the framework differentiates as ordinary math, has its own wider
    bounds: the spike's held it to theirs, and an accuracy audit found 4.17
    ulp (JAX, float64, d/dx), a review's search 4.25 and 4.61 (d/d alpha)."""
    kind = np.dtype(dtype).type
    rng = np.random.default_rng(11)
    values = np.concatenate([_HARDEST_X, rng.uniform(-4.0, 0.0, 1500)])
    values = np.concatenate([values, rng.uniform(0.0, 8.0, 200)]).astype(kind)
    plain = function == "plain origin"
    if plain:
        near_zero = -np.exp(rng.uniform(np.log(1e-6), np.log(0.05), 300))
        more = np.concatenate([_PLAIN_ORIGIN_HARDEST_X, near_zero]).astype(kind)
        values = np.concatenate([values, more])
    found = fw.all_derivatives(
        fw.array(values, dtype),
        alpha=alpha,
        orders=(1,),
        function=_plain_origin if plain else None,
    )
    with mpmath.workdps(40):
        exact = {
            "x": [exact_gradient(float(v), alpha) for v in values],
            "a": [exact_dorigin_dalpha(float(v), alpha) for v in values],
            "b": [
                exact_dorigin_dbeta(float(v), epsilon=0.0 if plain else 1e-8)
                for v in values
            ],
        }
        off = {key: ulps_off(found[key], exact[key], kind) for key in exact}
        if not plain:  # the spike's origin mode: its values, as gradient's
            origin = f64(fw.s2nn(fw.array(values, dtype), alpha=alpha, origin=True))
            exact["origin"] = [exact_origin(float(v), alpha) for v in values]
            off["origin"] = ulps_off(origin, exact["origin"], kind)
    bounds = {"x": ULP_BOUND, "a": ALPHA_PARTIAL_ULP_BOUND, "b": ULP_BOUND}
    bounds["origin"] = ULP_BOUND
    excess = EXP_ULP_EXCESS.get((fw.name, kind), 0.0)
    if plain:
        excess = PLAIN_ORIGIN_ULP_EXCESS
    for key, errors in off.items():
        assert errors.max() <= bounds[key][kind] + excess, (key, errors.max())


def test_second_parameter_derivatives_are_the_definition(fw):
    """d^2/d alpha^2 of origin, and 0 for beta twice or alpha and beta."""
    derivatives = fw.all_derivatives(fw.array(GRID), alpha=3.0, beta=1.5, orders=(2,))
    want = reference(ref_dorigin_dalpha2, GRID, alpha=3.0)
    np.testing.assert_allclose(derivatives["aa"], want, rtol=1e-11, atol=1e-15)
    for key in ("ab", "ba", "bb"):
        assert not derivatives[key].any(), key


def test_mixed_second_derivatives_are_the_definition(fw):
    derivatives = fw.all_derivatives(fw.array(GRID), alpha=3.0, beta=1.5, orders=(2,))
    want_xa = reference(ref_dgradient_dalpha, GRID, alpha=3.0)
    np.testing.assert_allclose(derivatives["xa"], want_xa, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(derivatives["ax"], want_xa, rtol=1e-12, atol=1e-15)
    want_xb = reference(ref_dgradient_dbeta, GRID)
    np.testing.assert_allclose(derivatives["xb"], want_xb, rtol=1e-15)
    # d/dx (d origin / d beta) = 1 / (x + 1 + epsilon): origin has epsilon,
    # the gradient has not, so the two orders differ by that much.
    np.testing.assert_allclose(
        derivatives["bx"], want_xb * (GRID + 1) / (GRID + 1 + 1e-8), rtol=1e-15
    )
    np.testing.assert_allclose(
        derivatives["xx"],
        reference(ref_dgradient_dx, GRID, alpha=3.0, beta=1.5),
        rtol=1e-12,
        atol=1e-14,
    )


def test_nan_in_gives_nan_out(fw):
    x = fw.array([np.nan])
    for with_origin in (False, True):
        assert np.isnan(f64(fw.s2nn(x, origin=with_origin))).all()
    for key, values in fw.all_derivatives(x).items():
        if not _zero_everywhere(key):
            assert np.isnan(values).all(), key


def test_nan_in_gives_nan_out_in_forward_mode(fw):
    primals = (fw.array([np.nan]), fw.array(4.0), fw.array(1.0))
    for argnum in range(3):
        tangents = [fw.xp.zeros_like(p) for p in primals]
        tangents[argnum] = fw.xp.ones_like(primals[argnum])
        _, tangent = fw.jvp(fw.s2nn, primals, tuple(tangents))
        assert np.isnan(f64(tangent)).all(), argnum
    second = fw.jacfwd(fw.grad(lambda v: fw.s2nn(v).sum()))(primals[0])
    assert np.isnan(f64(second)).all()
    assert np.isnan(f64(fw.hessian(lambda v: fw.s2nn(v).sum())(primals[0]))).all()


# --- parameters ---------------------------------------------------------------


def test_scalar_parameter_gradients_are_the_definition(fw):
    x, cotangent = fw.array(GRID), fw.array(COTANGENT)

    def loss(alpha, beta):
        return (fw.s2nn(x, alpha, beta) * cotangent).sum()

    d_alpha, d_beta = fw.grad(loss, argnums=(0, 1))(fw.array(3.0), fw.array(1.5))
    want_alpha = (COTANGENT * reference(ref_dorigin_dalpha, GRID, alpha=3.0)).sum()
    want_beta = (COTANGENT * reference(ref_dorigin_dbeta, GRID)).sum()
    np.testing.assert_allclose(f64(d_alpha), want_alpha, rtol=1e-13)
    np.testing.assert_allclose(f64(d_beta), want_beta, rtol=1e-13)


@pytest.mark.parametrize("with_origin", [False, True], ids=["spike", "origin"])
def test_per_neuron_parameter_gradients_sum_over_the_batch(fw, with_origin):
    batch, neurons = 12, 50
    x64 = GRID[: batch * neurons].reshape(batch, neurons)
    cotangent = COTANGENT[: batch * neurons].reshape(batch, neurons)
    alpha, beta = np.linspace(0.5, 8.0, neurons), np.linspace(0.2, 3.0, neurons)

    def loss(alpha, beta):
        y = fw.s2nn(fw.array(x64), alpha, beta, origin=with_origin)
        return (y * fw.array(cotangent)).sum()

    d_alpha, d_beta = fw.grad(loss, argnums=(0, 1))(fw.array(alpha), fw.array(beta))
    assert d_alpha.shape == d_beta.shape == (neurons,)
    want_alpha = np.vectorize(ref_dorigin_dalpha)(x64, alpha)
    want_beta = reference(ref_dorigin_dbeta, x64)
    np.testing.assert_allclose(
        f64(d_alpha), (cotangent * want_alpha).sum(0), rtol=1e-12
    )
    np.testing.assert_allclose(f64(d_beta), (cotangent * want_beta).sum(0), rtol=1e-12)


def test_parameter_gradients_keep_their_dtype(fw):
    x = fw.array(GRID, "float32")
    alpha64 = fw.array(np.full(GRID.shape, 4.0), "float64")
    beta16 = fw.array(1.0, "float16")
    assert fw.s2nn(x, alpha64, beta16).dtype == x.dtype
    d_alpha, d_beta = fw.grad(lambda a, b: fw.s2nn(x, a, b).sum(), argnums=(0, 1))(
        alpha64, beta16
    )
    assert d_alpha.dtype == alpha64.dtype and d_beta.dtype == beta16.dtype


def test_epsilon_is_a_constant(fw):
    x = fw.array(GRID)
    epsilon = fw.array(1e-3)
    y = fw.s2nn(x, epsilon=epsilon, origin=True)
    want = reference(ref_origin, GRID, epsilon=1e-3)
    np.testing.assert_allclose(f64(y), want, rtol=1e-15)
    told = (  # PyTorch says so where epsilon requires grad, as its module does
        pytest.warns(UserWarning, match="epsilon requires grad, but it is")
        if fw.name == "torch"
        else contextlib.nullcontext()
    )
    with told:
        d_epsilon = fw.grad(lambda e: fw.s2nn(x, epsilon=e, origin=True).sum())(epsilon)
    assert f64(d_epsilon) == 0.0


# --- 16-bit dtypes ------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("with_origin", [False, True], ids=["spike", "origin"])
def test_16_bit_is_computed_in_float32_and_rounded_once(fw, dtype, with_origin):
    """Values, and a random 16-bit cotangent or tangent times the float32
    gradient, rounded once."""
    x = fw.array(GRID / 4, dtype)
    direction = fw.array(COTANGENT, dtype)
    wide, wide_direction = (fw.astype(a, "float32") for a in (x, direction))
    spike = functools.partial(fw.s2nn, alpha=2.5, beta=0.75, origin=with_origin)
    want_y = fw.astype(spike(wide), dtype)
    want = fw.astype(s2nn_xp.gradient(wide, 2.5, 0.75) * wide_direction, dtype)
    y, cotangent = fw.vjp(spike, x, direction)
    _, tangent = fw.jvp(spike, (x,), (direction,))
    assert y.dtype == cotangent.dtype == tangent.dtype == x.dtype
    np.testing.assert_array_equal(f64(y), f64(want_y))
    np.testing.assert_array_equal(f64(cotangent), f64(want))
    np.testing.assert_array_equal(f64(tangent), f64(want))


# --- errors -------------------------------------------------------------------


class TestErrors:
    """The adapter's ``s2nn`` names the argument it rejects."""

    CASES: ClassVar = [
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"beta": float("inf")}, ValueError, "beta"),
        ({"epsilon": float("nan")}, ValueError, "epsilon"),
        ({"epsilon": -1e-9}, ValueError, "epsilon"),
        ({"alpha": True}, TypeError, "alpha"),
        ({"beta": "1.0"}, TypeError, "beta"),
        ({"beta": 1j}, TypeError, "beta"),
        ({"origin": 1}, TypeError, "origin"),
    ]
    ARRAY_CASES: ClassVar = [  # (name, values, dtype), made in the framework
        ("alpha", np.ones(3), "float64", ValueError, "alpha"),
        ("beta", np.ones((2, 1, 4)), "float64", ValueError, "beta"),
        ("beta", np.array([1j]), "complex64", TypeError, "beta"),
    ]

    @pytest.mark.parametrize(("kwargs", "error", "match"), CASES)
    def test_bad_arguments(self, fw, kwargs, error, match):
        with pytest.raises(error, match=match):
            fw.s2nn(fw.array(np.ones((2, 4))), **kwargs)

    @pytest.mark.parametrize(("name", "values", "dtype", "error", "match"), ARRAY_CASES)
    def test_bad_array_parameters(self, fw, name, values, dtype, error, match):
        with pytest.raises(error, match=match):
            fw.s2nn(fw.array(np.ones((2, 4))), **{name: fw.array(values, dtype)})

    def test_complex_input(self, fw):
        with pytest.raises(TypeError, match="complex"):
            fw.s2nn(fw.array([1j], "complex64"))

    def test_parameters_of_another_library(self, fw):
        class Foreign:
            pass

        with pytest.raises(TypeError, match="alpha"):
            fw.s2nn(fw.array(np.ones(3)), alpha=Foreign())
