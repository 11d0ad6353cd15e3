"""The backend registry (behind `s2nn-xp` and the docs' table) matches the code.

Each backend's session checks its own row: the dtypes it lists work, the
autodiff transforms it names run with the surrogate gradient, and the adapter
it points to implements what the table says.
"""

from __future__ import annotations

import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _backends, _dispatch
from tests._support import backend_name, to_numpy

X = np.array([-1.5, -1.0, -0.25, 0.0, 0.5, 2.0])


def test_registry_names_match_the_test_matrix():
    from tests.conftest import BACKENDS

    assert list(_backends.BACKENDS) == list(BACKENDS)
    for name, backend in _backends.BACKENDS.items():
        assert backend.module == BACKENDS[name]


def test_adapters_implement_what_the_table_says():
    table = {name: set(b.dispatched()) for name, b in _backends.BACKENDS.items()}
    assert table == {
        "numpy": set(),
        "array_api_strict": set(),
        "dask": set(),
        "jax": {"s2nn"},
        "torch": {"s2nn"},
        "cupy": {"forward", "origin", "gradient", "s2nn", "vjp"},
    }


def test_the_row_of_this_backend(xp):
    name = backend_name(xp)
    backend = _backends.get(name)
    assert backend.is_installed()
    ns = s2nn_xp._compat.array_namespace(xp.asarray(0.0))
    for dtype in backend.dtypes:
        x = ns.astype(xp.asarray(X), getattr(ns, dtype, None) or np.dtype(dtype))
        assert s2nn_xp.gradient(x).dtype == x.dtype
    x = backend.asarray(X)
    adapter = _dispatch.adapter_for(x)
    assert (adapter is None) == (name in ("numpy", "array_api_strict", "dask"))
    grad = to_numpy(backend.autodiff_gradient(x, 4.0, 1.0))
    np.testing.assert_allclose(grad, s2nn_xp.gradient(X), rtol=1e-6)
    # The devices found here are of the kinds the table lists ("cuda:0" is
    # "cuda", JAX's "TFRT_CPU_0" or "cpu:0" is "cpu").
    for device in backend.devices():
        kind = device.lower().replace("tfrt_", "").split(":")[0].rstrip("_0123456789")
        assert kind in backend.device_kinds, (device, backend.device_kinds)


def _jax_transforms():
    import jax
    import jax.numpy as jnp

    f = s2nn_xp.s2nn
    x = jnp.asarray(X)
    want = s2nn_xp.gradient(X)
    return {
        "grad": lambda: jax.vmap(jax.grad(f))(x),
        "vjp": lambda: jax.vjp(f, x)[1](jnp.ones_like(x))[0],
        "jvp": lambda: jax.jvp(f, (x,), (jnp.ones_like(x),))[1],
        "vmap": lambda: jax.vmap(jax.grad(f))(x),
        "jit": lambda: jax.jit(jax.vmap(jax.grad(f)))(x),
        "hessian": lambda: want if jnp.all(jnp.isfinite(jax.hessian(f)(x[0]))) else 0,
        "linearize": lambda: jax.linearize(f, x)[1](jnp.ones_like(x)),
        "checkpoint": lambda: jax.vmap(jax.grad(jax.checkpoint(f)))(x),
        "lax.scan": lambda: jax.lax.scan(lambda c, v: (c, jax.grad(f)(v)), 0.0, x)[1],
    }, want


def _torch_transforms():
    import torch

    f = s2nn_xp.s2nn
    want = s2nn_xp.gradient(X)

    def backward():
        x = torch.asarray(X, requires_grad=True)
        f(x).sum().backward()
        return x.grad

    def double_backward():
        x = torch.asarray(X, requires_grad=True)
        (g,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        g.sum().backward()
        assert torch.isfinite(x.grad).all()
        return g

    def autograd_grad():
        x = torch.asarray(X, requires_grad=True)
        return torch.autograd.grad(f(x).sum(), x)[0]

    def compiled():
        x = torch.asarray(X, requires_grad=True)
        torch.compile(f, fullgraph=True)(x).sum().backward()
        return x.grad

    x = torch.asarray(X)
    one = torch.ones_like(x)
    scalar_grad = torch.func.grad(lambda v: f(v))
    return {
        "backward": backward,
        "autograd.grad": autograd_grad,
        "double backward": double_backward,
        "func.grad": lambda: torch.func.vmap(scalar_grad)(x),
        "func.vmap": lambda: torch.func.vmap(scalar_grad)(x),
        "func.jvp": lambda: torch.func.jvp(f, (x,), (one,))[1],
        "func.jacrev": lambda: torch.diagonal(torch.func.jacrev(f)(x)),
        "func.jacfwd": lambda: torch.diagonal(torch.func.jacfwd(f)(x)),
        "func.hessian": lambda: (
            want
            if torch.isfinite(torch.func.hessian(lambda v: f(v).sum())(x)).all()
            else 0
        ),
        "compile": compiled,
    }, want


@pytest.mark.backends("jax", "torch")
def test_named_transforms_carry_the_surrogate_gradient(xp):
    name = backend_name(xp)
    transforms, want = {"jax": _jax_transforms, "torch": _torch_transforms}[name]()
    assert set(transforms) == set(_backends.get(name).transforms)
    for transform, run in transforms.items():
        np.testing.assert_allclose(to_numpy(run()), want, rtol=1e-6, err_msg=transform)
