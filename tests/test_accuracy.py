"""The accuracy statement of the docs' Definition page, point by point.

Where ``exp(alpha * x)`` is normal, gradients are within ``2.5 + |alpha * x|``
ulp (float64; float32: ``3.5 + |alpha * x|``) of the exact values for the
parameters as rounded to the compute dtype (2.5 and 3.5 ulp where ``alpha * x``
is exact); further left the absolute error is at
most ``alpha * (1 + |alpha * x|)`` smallest subnormals. The references come from
mpmath, unrounded: a reference rounded to the dtype would hide up to half an
ulp.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import s2nn_xp

from ._support import exact_gradient, require

require("numpy")


# ulp where alpha * x is exact (the Definition's Accuracy section).
BOUND = {np.float64: 2.5, np.float32: 3.5}


def _errors(alpha: float, dtype: type, n: int = 600, x=None):
    info = np.finfo(dtype)
    alpha = float(dtype(alpha))  # the parameter as the math sees it
    lowest = np.log(float(info.smallest_subnormal)) / alpha * 1.02
    if x is None:
        x = np.linspace(lowest, -1e-3, n).astype(dtype)
    got = s2nn_xp.gradient(x, alpha).astype(np.float64)
    exact = [exact_gradient(float(v), alpha) for v in x]
    want = np.array([float(v) for v in exact])
    z = np.abs(alpha * x.astype(np.float64))
    normal = alpha * x.astype(np.float64) >= np.log(float(info.tiny))
    ulp = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    error = [abs(mpmath.mpf(g) - e) for g, e in zip(got, exact, strict=True)]
    error = np.array([float(e) for e in error])
    with np.errstate(over="ignore"):  # ulps of results far below normal
        return z, normal, error / ulp, error / float(info.smallest_subnormal)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha", [0.5, 4.0, 8.0, 64.0, 1024.0])
def test_power_of_two_alpha_is_within_the_bound_where_exp_is_normal(alpha, dtype):
    _, normal, ulps, _ = _errors(alpha, dtype)
    assert normal.sum() > 100
    assert ulps[normal].max() <= BOUND[dtype]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("alpha", [0.7, 3.0, 4.0, 1024.0, 1000.0])
def test_every_alpha_is_within_the_stated_bounds(alpha, dtype):
    z, normal, ulps, subnormals = _errors(alpha, dtype)
    assert (ulps[normal] <= BOUND[dtype] + z[normal]).all()
    alpha = float(dtype(alpha))
    assert (subnormals[~normal] <= alpha * (1 + z[~normal])).all()


def test_the_bound_is_needed():
    """Not 2 ulp everywhere: the statement says where it holds, and it does not
    hold beyond (the test above could not pass a wrong, tighter statement)."""
    _, normal, ulps, _ = _errors(3.0, np.float64)
    assert ulps[normal].max() > 20


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_hardest_values_found_are_within_the_bound(dtype):
    """Values where reviews measured the most ulp (float32: 3.13 at -1.3900713;
    float64: 2.21 at -0.8577506398552764)."""
    hard = [-0.1727640208099291, -0.1252787205537711, -3.7236419, -0.90520024]
    hard += [-1.0373244, -1.2259105, -1.3900713, -0.8577506398552764]
    rng = np.random.default_rng(7)
    x = np.concatenate([hard, rng.uniform(-20.0, 0.0, 4000)]).astype(dtype)
    for alpha in (4.0, 8.0):
        _, normal, ulps, _ = _errors(alpha, dtype, x=x)
        assert ulps[normal].max() <= BOUND[dtype]
