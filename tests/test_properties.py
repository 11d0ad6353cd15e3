"""Property tests (hypothesis) of the math on NumPy."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import s2nn_xp
from tests._support import require

require("numpy")

alphas = st.floats(0.25, 16.0)
betas = st.floats(0.1, 8.0)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
float_dtypes = st.sampled_from([np.float16, np.float32, np.float64])


@given(
    hnp.arrays(
        float_dtypes,
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
        elements=st.floats(-50, 50, width=16),
    )
)
def test_shapes_and_dtypes_are_kept(x):
    for fn in (s2nn_xp.forward, s2nn_xp.origin, s2nn_xp.gradient, s2nn_xp.s2nn):
        y = fn(x)
        assert y.shape == x.shape and y.dtype == x.dtype


@given(hnp.arrays(np.float64, st.integers(1, 50), elements=finite))
def test_forward_is_the_step(x):
    np.testing.assert_array_equal(s2nn_xp.forward(x), np.where(x >= 0, 1.0, 0.0))


@given(hnp.arrays(np.float64, st.integers(1, 50), elements=finite), alphas, betas)
def test_gradient_positive_and_finite(x, alpha, beta):
    g = s2nn_xp.gradient(x, alpha, beta)
    assert np.all(np.isfinite(g))
    # Positive wherever the exact value is representable (no underflow).
    assert np.all(g[np.abs(alpha * x) < 700] > 0)


@given(st.lists(finite, min_size=2, max_size=50, unique=True), alphas, betas)
def test_origin_is_increasing(values, alpha, beta):
    x = np.sort(np.array(values))
    o = s2nn_xp.origin(x, alpha, beta)
    assert np.all(np.diff(o) >= 0)


@settings(max_examples=200)
@given(st.floats(-20, 20).filter(lambda v: abs(v) > 1e-3), alphas, betas)
def test_origin_slope_is_the_gradient(x, alpha, beta):
    """Central difference of origin matches gradient (epsilon=0 makes it exact)."""
    h = 1e-6 * max(1.0, abs(x))
    slope = (
        s2nn_xp.origin(x + h, alpha, beta, 0.0)
        - s2nn_xp.origin(x - h, alpha, beta, 0.0)
    ) / (2 * h)
    g = s2nn_xp.gradient(x, alpha, beta)
    np.testing.assert_allclose(slope, g, rtol=1e-5, atol=1e-9)


@given(st.sampled_from([np.nan, np.inf, -np.inf, -1.0, -0.0]), alphas, betas)
def test_special_values(x, alpha, beta):
    x = np.array([x])
    f, o, g = (
        s2nn_xp.forward(x),
        s2nn_xp.origin(x, alpha, beta),
        s2nn_xp.gradient(x, alpha, beta),
    )
    if np.isnan(x[0]):
        assert np.isnan(f) and np.isnan(o) and np.isnan(g)
    elif x[0] == np.inf:
        assert f == 1 and o == np.inf and g == 0
    elif x[0] == -np.inf:
        assert f == 0 and o == 0 and g == 0
    elif x[0] == -1.0:
        assert f == 0 and np.isfinite(o) and np.isfinite(g) and g > 0
    else:  # -0.0 spikes, with the x >= 0 column's values
        assert f == 1 and g == beta and o == 0.5 + beta * np.log1p(1e-8)
