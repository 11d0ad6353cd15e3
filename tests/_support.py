"""Shared test helpers: conversion to NumPy, comparisons and references."""

from __future__ import annotations

import math

import mpmath
import numpy as np

import s2nn_xp._compat as compat

mpmath.mp.prec = 113  # quad precision, far beyond float64


def backend_name(xp) -> str:
    name = xp.__name__
    return {"jax.numpy": "jax", "dask.array": "dask"}.get(name, name)


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of any backend's array (16-bit floats widened to float32)."""
    if compat.is_torch_array(a):
        import torch

        a = a.detach()
        if a.dtype == torch.bfloat16:
            a = a.float()
        return a.cpu().numpy()
    if compat.is_cupy_array(a):
        return a.get()
    if compat.is_dask_array(a):
        a = a.compute()
    if type(a).__module__.startswith("array_api_strict"):
        return np.from_dlpack(a)
    out = np.asarray(a)
    if out.dtype.name == "bfloat16":
        out = out.astype(np.float32)
    return out


def xp_assert_close(actual, desired, *, xp, rtol=1e-7, atol=0.0, dtype=None):
    """`actual` is an array of `xp` of `desired`'s shape whose values are close.

    NaNs must sit in the same places; infinities must match exactly.
    """
    assert compat.array_namespace(actual) is compat.array_namespace(xp.asarray(0.0)), (
        f"result is a {type(actual)}, not an array of {xp.__name__}"
    )
    if dtype is not None:
        assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    np.testing.assert_allclose(
        to_numpy(actual).astype(np.float64),
        np.asarray(
            to_numpy(desired) if not isinstance(desired, np.ndarray) else desired,
            dtype=np.float64,
        ),
        rtol=rtol,
        atol=atol,
        equal_nan=True,
        strict=True,
    )


def ulp_error(actual: np.ndarray, desired: np.ndarray, dtype) -> np.ndarray:
    """|actual - desired| in units of the last place of `desired` in `dtype`."""
    desired = np.asarray(desired, dtype=np.float64)
    spacing = np.spacing(np.abs(desired).astype(dtype)).astype(np.float64)
    spacing = np.maximum(spacing, np.finfo(dtype).smallest_subnormal)
    return np.abs(np.asarray(actual, dtype=np.float64) - desired) / spacing


# --- Reference values, computed independently with mpmath -------------------


def _mp_sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


def ref_forward(x: float) -> float:
    if math.isnan(x):
        return math.nan
    return 1.0 if x >= 0 else 0.0


def ref_origin(x: float, alpha=4.0, beta=1.0, epsilon=1e-8) -> float:
    if math.isnan(x):
        return math.nan
    if x < 0:
        return float(_mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x)))
    if math.isinf(x):
        return math.inf
    return float(
        mpmath.mpf(beta) * mpmath.log1p(mpmath.mpf(x) + mpmath.mpf(epsilon))
        + mpmath.mpf(0.5)
    )


def ref_gradient(x: float, alpha=4.0, beta=1.0) -> float:
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 0.0
    if x < 0:
        s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
        return float(mpmath.mpf(alpha) * s * (1 - s))
    return float(mpmath.mpf(beta) / (mpmath.mpf(x) + 1))


def ref_dgradient_dx(x: float, alpha=4.0, beta=1.0) -> float:
    """SPEC: alpha^2 s (1-s)(1-2s) for x < 0, -beta/(x+1)^2 for x >= 0."""
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 0.0
    if x < 0:
        s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
        return float(mpmath.mpf(alpha) ** 2 * s * (1 - s) * (1 - 2 * s))
    return float(-mpmath.mpf(beta) / (mpmath.mpf(x) + 1) ** 2)


def ref_dorigin_dalpha(x: float, alpha=4.0) -> float:
    if x >= 0 or math.isinf(x):
        return 0.0
    s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
    return float(mpmath.mpf(x) * s * (1 - s))


def ref_dorigin_dalpha2(x: float, alpha=4.0) -> float:
    """d^2 origin / d alpha^2 = x^2 s (1-s)(1-2s) for x < 0, else 0."""
    if x >= 0 or math.isinf(x):
        return 0.0
    s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
    return float(mpmath.mpf(x) ** 2 * s * (1 - s) * (1 - 2 * s))


def ref_dorigin_dbeta(x: float, epsilon=1e-8) -> float:
    if x < 0:
        return 0.0
    if math.isinf(x):
        return math.inf
    return float(mpmath.log1p(mpmath.mpf(x) + mpmath.mpf(epsilon)))


def ref_dgradient_dalpha(x: float, alpha=4.0) -> float:
    if x >= 0 or math.isinf(x):
        return 0.0
    z = mpmath.mpf(alpha) * mpmath.mpf(x)
    s = _mp_sigmoid(z)
    return float(s * (1 - s) * (1 + z * (1 - 2 * s)))


def ref_dgradient_dbeta(x: float) -> float:
    if x < 0:
        return 0.0
    if math.isinf(x):
        return 0.0
    return float(1 / (mpmath.mpf(x) + 1))


def reference(fn, x: np.ndarray, **params) -> np.ndarray:
    """Apply a scalar reference function elementwise (float64 result)."""
    flat = [fn(float(v), **params) for v in np.asarray(x, dtype=np.float64).ravel()]
    return np.asarray(flat, dtype=np.float64).reshape(np.shape(x))


# Inputs every backend must handle exactly (SPEC special values and edges).
SPECIAL_X = np.array(
    [
        -np.inf,
        -1e300,
        -1000.0,
        -200.0,
        -2.0,
        -1.0,
        -0.5,
        -1e-300,
        -0.0,
        0.0,
        1e-300,
        0.5,
        1.0,
        2.0,
        1000.0,
        1e300,
        np.inf,
        np.nan,
    ]
)
