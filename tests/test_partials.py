"""``_math.partials``: the gradient and the parameter partials in one pass.

Checked against mpmath and against each framework's own autodiff of
``_math.origin`` (what the adapters used before the one-pass partials).
"""

from __future__ import annotations

import numpy as np
import pytest

from s2nn_xp import _compat, _math
from s2nn_xp._backends import Capability

from ._support import (
    GRID,
    SPECIAL_X,
    backend_of,
    ref_dorigin_dalpha,
    ref_dorigin_dbeta,
    reference,
    selected_backends,
    to_numpy,
)

X = np.concatenate([GRID, SPECIAL_X])


@pytest.mark.parametrize("in_place", [True, False])
@pytest.mark.parametrize(("alpha", "beta"), [(4.0, 1.0), (2.5, 0.75)])
def test_partials_are_the_definition(xp, in_place, alpha, beta):
    if in_place and Capability.AUTODIFF in backend_of(xp).capabilities:
        pytest.skip("in-place temporaries are for libraries without autodiff")
    namespace = _compat.array_namespace(xp.asarray(0.0))
    x = xp.asarray(X)
    # As the public functions call the math: NaN input meets NaN on purpose.
    with _compat.quiet_floating_point(namespace):
        partials = _math.partials(namespace, x, alpha, beta, 1e-8, in_place=in_place)
        grad, d_alpha, d_beta = (to_numpy(a) for a in partials)
        want_grad = _math.gradient(namespace, x, alpha, beta, in_place=False)
    np.testing.assert_array_equal(grad, to_numpy(want_grad))
    finite = np.isfinite(X)
    want_alpha = reference(ref_dorigin_dalpha, X[finite], alpha=alpha)
    np.testing.assert_allclose(d_alpha[finite], want_alpha, rtol=1e-13, atol=1e-300)
    want_beta = reference(ref_dorigin_dbeta, X[finite])
    np.testing.assert_allclose(d_beta[finite], want_beta, rtol=1e-14)
    # -inf: both 0 (no inf * 0); +inf: d/d beta = log1p(inf) = inf; NaN: NaN.
    specials = {-np.inf: (0.0, 0.0), np.inf: (0.0, np.inf)}
    for value, (want_a, want_b) in specials.items():
        (i,) = np.flatnonzero(value == X)[:1]
        assert (d_alpha[i], d_beta[i]) == (want_a, want_b)
    assert np.isnan(d_alpha[np.isnan(X)]).all() and np.isnan(d_beta[np.isnan(X)]).all()


def test_partials_are_torch_autodiff_of_origin():
    if "torch" not in selected_backends():
        pytest.skip("torch not selected")
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp

    x = torch.asarray(GRID)
    alpha = torch.full_like(x, 2.5, requires_grad=True)
    beta = torch.full_like(x, 0.75, requires_grad=True)
    origin = _math.origin(xp, x, alpha, beta, 1e-8, in_place=False)
    want = torch.autograd.grad(origin.sum(), (alpha, beta))
    _, d_alpha, d_beta = _math.partials(xp, x, 2.5, 0.75, 1e-8, in_place=False)
    torch.testing.assert_close(d_alpha, want[0], rtol=1e-13, atol=1e-300)
    torch.testing.assert_close(d_beta, want[1], rtol=1e-14, atol=0)


def test_partials_are_jax_autodiff_of_origin():
    if "jax" not in selected_backends():
        pytest.skip("jax not selected")
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    x = jnp.asarray(GRID)

    def origin(alpha, beta):
        return _math.origin(jnp, x, alpha, beta, 1e-8, in_place=False)

    d_alpha_want = jax.jacfwd(lambda a: origin(a, 0.75))(2.5)
    d_beta_want = jax.jacfwd(lambda b: origin(2.5, b))(0.75)
    _, d_alpha, d_beta = _math.partials(jnp, x, 2.5, 0.75, 1e-8, in_place=False)
    np.testing.assert_allclose(d_alpha, d_alpha_want, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(d_beta, d_beta_want, rtol=1e-14)
