"""Shared test helpers: the backends under test, conversion to NumPy,
comparisons, input grids, and reference values computed with mpmath.

The backends come from the package's registry (``s2nn_xp._backends``); this
module adds only what the tests choose: which backends run
(``S2NN_XP_BACKENDS``) and how a missing one is reported.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import strategies as st

import s2nn_xp._compat as compat
from s2nn_xp import _backends

mpmath.mp.prec = 113  # quad precision, far beyond float64

# The checkout under test, for children that import it.
REPO = Path(__file__).resolve().parents[1]


# --- the backends under test ----------------------------------------------------


def python_script(script: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh interpreter, its output captured as text.

    ``options`` go to :func:`subprocess.run` (``env``, ``cwd``, ``timeout``:
    300 seconds unless given); a failure is the caller's to judge.
    """
    options.setdefault("timeout", 300)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        **options,
    )


def env_with_repo(**variables: str) -> dict[str, str]:
    """This process's environment for a child that imports this checkout.

    The repository goes first on ``PYTHONPATH``, before what it held (where
    the packages a machine without network was given may lie), and
    ``variables`` are set.
    """
    env = {**os.environ, **variables}
    path = [str(REPO), os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    return env


def normal_or_zero(values: np.ndarray) -> np.ndarray:
    """``values`` less its subnormal numbers (which a flushing library zeroes)."""
    return values[(values == 0) | (np.abs(values) >= np.finfo(values.dtype).tiny)]


def selected_backends() -> list[str]:
    """The backends named in ``S2NN_XP_BACKENDS``; by default every one."""
    names = os.environ.get("S2NN_XP_BACKENDS")
    if not names:
        return list(_backends.BACKENDS)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(_backends.BACKENDS))
    if unknown:
        msg = (
            f"S2NN_XP_BACKENDS: unknown backends {unknown}; "
            f"known: {list(_backends.BACKENDS)}"
        )
        raise pytest.UsageError(msg)
    return chosen


def _explicitly_selected(name: str) -> bool:
    return bool(os.environ.get("S2NN_XP_BACKENDS")) and name in selected_backends()


def load_backend(name: str) -> ModuleType:
    """Import backend `name`, or skip (or fail, where it was asked for by name).

    A backend asked for by name must import. One whose arrays live on GPUs
    only may fail to import for want of CUDA's libraries (its session runs
    where no GPU is, too), and is skipped then, but not where its module is
    not installed at all (a typo in the record's module or in the extra that
    the session installs would otherwise pass with nothing tested); one that
    imports but finds no device is skipped, unless it was asked for by name
    and runs on CPUs (its device lister is broken, then).
    """
    backend = _backends.get(name)
    try:
        module = backend.load()
    except ImportError as exc:
        gpu_only = "cpu" not in backend.device_kinds
        absent = _backends.not_installed(exc, backend.module)
        if _explicitly_selected(name) and (absent or not gpu_only):
            pytest.fail(f"backend {name!r} was selected but does not import: {exc}")
        pytest.skip(f"{name} is not installed")
    if not backend.has_device():
        if _explicitly_selected(name) and "cpu" in backend.device_kinds:
            # Every machine has a CPU: a broken device lister, not a
            # missing device (its session would pass with nothing tested).
            pytest.fail(
                f"backend {name!r} was selected and runs on CPUs, but finds no "
                f"device here: {_why_no_device(backend)}"
            )
        pytest.skip(f"{name} is installed but finds no device here")
    backend.enable_float64()
    return module


def _why_no_device(backend: _backends.Backend) -> str:
    try:
        return f"its devices() gave {backend.devices()!r}"
    except Exception as exc:  # what has_device() swallowed
        return f"its devices() raised {exc!r}"


def float8_dtypes(torch: ModuleType) -> list[Any]:
    """The float8 dtypes of this ``torch`` (older releases lack some)."""
    names = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    return [getattr(torch, name) for name in names if hasattr(torch, name)]


def require(name: str) -> ModuleType:
    """Import backend `name` for a module of tests, or skip the whole module.

    Use at the top of a backend-specific test module; it is skipped in the
    sessions of other backends.
    """
    if name not in selected_backends():
        pytest.skip(f"backend {name!r} not selected", allow_module_level=True)
    try:
        return load_backend(name)
    except pytest.skip.Exception as exc:
        pytest.skip(str(exc), allow_module_level=True)


def backend_of(xp: ModuleType) -> _backends.Backend:
    """The registry's record of the namespace `xp`."""
    backend = _backends.of_namespace(xp)
    assert backend is not None, (
        f"{xp.__name__} is in no registry entry (check the record's "
        "array_modules and is_namespace)"
    )
    return backend


def backend_name(xp: ModuleType) -> str:
    """The registry's name of the namespace `xp` (``jax.numpy`` is ``jax``)."""
    return backend_of(xp).name


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of any backend's array (16-bit floats widened to float32)."""
    backend = _backends.of_array(a)
    out = np.asarray(a) if backend is None else backend.to_numpy(a)
    if out.dtype.name == "bfloat16":
        out = out.astype(np.float32)
    return out


def assert_same_bits(actual, desired) -> None:
    """Bitwise equal, of any backend: NaN where NaN, the sign of every zero."""
    a = to_numpy(actual).astype(np.float64)
    b = to_numpy(desired).astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    number = ~np.isnan(a)
    np.testing.assert_array_equal(np.signbit(a[number]), np.signbit(b[number]))
    np.testing.assert_array_equal(a[number], b[number])


def xp_assert_close(actual, desired, *, xp, rtol=1e-7, atol=0.0, dtype=None):
    """`actual` is an array of `xp` of `desired`'s shape whose values are close.

    NaNs must sit in the same places; infinities must match exactly.
    """
    assert compat.array_namespace(actual) is compat.array_namespace(xp.asarray(0.0)), (
        f"result is a {type(actual)}, not an array of {xp.__name__}"
    )
    if dtype is not None:
        assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    got = to_numpy(actual).astype(np.float64)
    want = np.asarray(
        to_numpy(desired) if not isinstance(desired, np.ndarray) else desired,
        dtype=np.float64,
    )
    # The shapes checked here, not by assert_allclose(strict=True): NumPy 1.26
    # (the oldest the package allows) has no strict there.
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


# The Definition's Accuracy: ulp of the exact values within which gradient,
# origin and d origin / d beta are where exp(alpha * x) is normal and alpha * x
# exact; d origin / d alpha, x times a value within them, within half an ulp
# more.
ULP_BOUND = {np.float64: 2.5, np.float32: 3.5}
ALPHA_PARTIAL_ULP_BOUND = {dtype: bound + 0.5 for dtype, bound in ULP_BOUND.items()}
# What a framework's less accurate exp adds to those bounds: JAX 0.10's
# float64 exp on the CPU is up to 1.6 ulp off (NumPy's, and JAX 0.4.35's,
# 0.5), which moves its results up to 2 ulp from NumPy's, and up to 0.41
# ulp past the bounds (Definition page): float32's bounds hold for them.
EXP_ULP_EXCESS = {("jax", np.float64): 1.0}
# What the frameworks' autodiff of the plain origin (ordinary math: each
# operation's derivative, rounded one after another) adds to those bounds.
PLAIN_ORIGIN_ULP_EXCESS = 2.0


def absolute_errors(got, exact) -> np.ndarray:
    """|got - exact| for each value, ``exact`` unrounded (mpmath)."""
    got = np.asarray(got, dtype=np.float64).ravel()
    pairs = zip(got, exact, strict=True)
    return np.array([float(abs(mpmath.mpf(g) - e)) for g, e in pairs])


def ulps_off(got, exact, dtype) -> np.ndarray:
    """|got - exact| in ulp of ``exact`` (mpmath values, unrounded) in ``dtype``.

    A reference rounded to the dtype would hide up to half an ulp.
    """
    exact = list(exact)
    spacing = np.maximum(ulps([float(e) for e in exact], dtype), 5e-324)
    return absolute_errors(got, exact) / spacing


def ulps(values, dtype) -> np.ndarray:
    """The ulp of each of `values` (float64) in `dtype`, as float64."""
    magnitudes = np.abs(np.asarray(values, dtype=np.float64))
    with np.errstate(over="ignore"):  # beyond the dtype: inf, its ulp inf
        return np.spacing(magnitudes.astype(dtype)).astype(np.float64)


def ulp_error(actual: np.ndarray, desired: np.ndarray, dtype) -> np.ndarray:
    """|actual - desired| in units of the last place of `desired` in `dtype`."""
    desired = np.asarray(desired, dtype=np.float64)
    spacing = np.maximum(ulps(desired, dtype), np.finfo(dtype).smallest_subnormal)
    return np.abs(np.asarray(actual, dtype=np.float64) - desired) / spacing


# --- Reference values, computed independently with mpmath -------------------


def _mp_sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


def ref_forward(x: float) -> float:
    if math.isnan(x):
        return math.nan
    return 1.0 if x >= 0 else 0.0


def _rounded(exact):
    """A reference rounded to float64 from the unrounded ``exact``; NaN for NaN."""

    def reference_value(x: float, *params, **named) -> float:
        if math.isnan(x):
            return math.nan  # mpmath's NaN converts with the sign bit set
        return float(exact(x, *params, **named))

    reference_value.__doc__ = exact.__doc__
    return reference_value


def exact_origin(x: float, alpha=4.0, beta=1.0, epsilon=1e-8) -> mpmath.mpf:
    """The origin function, unrounded (to mpmath's working precision)."""
    if x < 0:
        return _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
    if math.isinf(x):
        return mpmath.inf
    return mpmath.mpf(beta) * mpmath.log1p(
        mpmath.mpf(x) + mpmath.mpf(epsilon)
    ) + mpmath.mpf(0.5)


def exact_gradient(x: float, alpha=4.0, beta=1.0) -> mpmath.mpf:
    """The gradient, unrounded (to mpmath's working precision)."""
    if math.isnan(x):
        return mpmath.mpf("nan")
    if math.isinf(x):
        return mpmath.mpf(0)
    if x < 0:
        s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
        return mpmath.mpf(alpha) * s * (1 - s)
    return mpmath.mpf(beta) / (mpmath.mpf(x) + 1)


def exact_dgradient_dx(x: float, alpha=4.0, beta=1.0) -> mpmath.mpf:
    """Definition page: alpha^2 s (1-s)(1-2s) for x < 0, -beta/(x+1)^2 for x >= 0."""
    if math.isinf(x):
        return mpmath.mpf(0)
    if x < 0:
        s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
        return mpmath.mpf(alpha) ** 2 * s * (1 - s) * (1 - 2 * s)
    return -mpmath.mpf(beta) / (mpmath.mpf(x) + 1) ** 2


def exact_dorigin_dalpha(x: float, alpha=4.0) -> mpmath.mpf:
    """d origin / d alpha = x s (1-s) for x < 0, else 0."""
    if x >= 0 or math.isinf(x):
        return mpmath.mpf(0)
    s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
    return mpmath.mpf(x) * s * (1 - s)


def exact_dorigin_dalpha2(x: float, alpha=4.0) -> mpmath.mpf:
    """d^2 origin / d alpha^2 = x^2 s (1-s)(1-2s) for x < 0, else 0."""
    if x >= 0 or math.isinf(x):
        return mpmath.mpf(0)
    s = _mp_sigmoid(mpmath.mpf(alpha) * mpmath.mpf(x))
    return mpmath.mpf(x) ** 2 * s * (1 - s) * (1 - 2 * s)


def exact_dorigin_dbeta(x: float, epsilon=1e-8) -> mpmath.mpf:
    """d origin / d beta = log1p(x + epsilon) for x >= 0, else 0."""
    if x < 0:
        return mpmath.mpf(0)
    if math.isinf(x):
        return mpmath.inf
    return mpmath.log1p(mpmath.mpf(x) + mpmath.mpf(epsilon))


def exact_dgradient_dalpha(x: float, alpha=4.0) -> mpmath.mpf:
    """d gradient / d alpha = s (1-s) (1 + alpha x (1 - 2s)) for x < 0, else 0."""
    if x >= 0 or math.isinf(x):
        return mpmath.mpf(0)
    z = mpmath.mpf(alpha) * mpmath.mpf(x)
    s = _mp_sigmoid(z)
    return s * (1 - s) * (1 + z * (1 - 2 * s))


def exact_dgradient_dbeta(x: float) -> mpmath.mpf:
    """d gradient / d beta = 1 / (x + 1) for x >= 0, else 0."""
    if x < 0 or math.isinf(x):
        return mpmath.mpf(0)
    return 1 / (mpmath.mpf(x) + 1)


ref_origin = _rounded(exact_origin)
ref_gradient = _rounded(exact_gradient)
ref_dgradient_dx = _rounded(exact_dgradient_dx)
ref_dorigin_dalpha = _rounded(exact_dorigin_dalpha)
ref_dorigin_dalpha2 = _rounded(exact_dorigin_dalpha2)
ref_dorigin_dbeta = _rounded(exact_dorigin_dbeta)
ref_dgradient_dalpha = _rounded(exact_dgradient_dalpha)
ref_dgradient_dbeta = _rounded(exact_dgradient_dbeta)


def reference(fn, x: np.ndarray, **params) -> np.ndarray:
    """Apply a scalar reference function elementwise (float64 result)."""
    flat = [fn(float(v), **params) for v in np.asarray(x, dtype=np.float64).ravel()]
    return np.asarray(flat, dtype=np.float64).reshape(np.shape(x))


# --- inputs ---------------------------------------------------------------------

# Inputs every backend must handle exactly (the Definition page's special
# values, and the edges of each branch).
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


def grid(alpha: float = 4.0, n: int = 400, bound: float = 700.0) -> np.ndarray:
    """Points with |alpha * x| <= bound, dense near 0 (down to 1e-300), both signs."""
    rng = np.random.default_rng(20260128)
    mags = np.concatenate(
        [
            rng.uniform(0, bound / alpha, n),
            np.logspace(-300, np.log10(bound / alpha), n),
        ]
    )
    return np.concatenate([-mags, mags, [-1.0, -0.0, 0.0, 1.0]])


_rng = np.random.default_rng(20260128)
GRID = np.concatenate(
    [
        _rng.uniform(-20.0, 20.0, 400),
        -np.logspace(-12, np.log10(20.0), 100),
        np.logspace(-12, np.log10(20.0), 100),
        [-1.0, -0.5, -0.0, 0.0, 0.5, 1.0],
    ]
)
"""Points on both branches, dense near the kink, |4 x| <= 80 so that no
float32 result is subnormal (XLA on CPU flushes subnormals to zero)."""

COTANGENT = _rng.standard_normal(GRID.shape)
"""A random cotangent (or tangent) of GRID's shape."""

KERNEL_X = np.concatenate([GRID, SPECIAL_X, -SPECIAL_X, [-1e-45, -5e-324]])
"""What a kernel restating ``_math`` is checked on: both branches, every special
value with both signs, and the smallest float32 and float64 subnormals."""


# --- parameters for property tests (hypothesis) ----------------------------------

POSITIVE = st.floats(min_value=1e-38, max_value=3.4e38, allow_subnormal=False)
"""Any valid alpha or beta, from the smallest normal float32 to the largest."""

ANY_ALPHA = st.one_of(st.sampled_from([1e-38, 1e-37, 2.5e-37]), POSITIVE)
"""POSITIVE with tiny alphas often: below ``1000 / largest``, ``_math`` clamps
the sigmoid input's bound, which shows at ``x = -inf`` where ``alpha *
largest > -104`` (so that its exponential is not 0 in float32)."""

ANY_EPSILON = st.one_of(st.just(0.0), POSITIVE.filter(lambda e: e < 1e30))
"""Any valid epsilon, 0 included."""


PUBLIC_CALLS: dict[str, tuple[tuple[float, ...], dict[str, bool]]] = {
    "forward": ((), {}),
    "origin": ((2.0, 3.0, 1e-4), {}),
    "gradient": ((2.0, 3.0), {}),
    "s2nn": ((2.0, 3.0, 1e-4), {"origin": True}),
    "vjp": ((2.0, 3.0, 1e-4), {"origin": True}),
}
"""Each public function's arguments after ``x`` (all non-default), for
checking that a call reaches an adapter unchanged."""


def run_in_threads(work, count: int = 2) -> None:
    """``work(i)`` for ``i`` in ``range(count)``, each in a thread, all at once.

    A failure in a thread is raised here, in the calling thread (the first).
    """
    import threading

    failures = []

    def guarded(i):
        try:
            work(i)
        except BaseException as error:  # raised below, in the calling thread
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def count_calls(monkeypatch, module, names) -> dict[str, int]:
    """Count the calls of ``module.<name>`` for each name (replaced for the test).

    Traces, for functions that JAX or Dynamo trace; calls, for eager code.
    """
    counts = dict.fromkeys(names, 0)
    for name in names:
        original = getattr(module, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)
    return counts


class Unit:
    """A unit, as astropy's and pint's are (objects, not strings: a string
    would be pandas' time resolution)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Quantity(np.ndarray):
    """A NumPy array with a unit, as astropy's Quantity (percent: 1/100)."""

    def __new__(cls, values: Any, unit: Unit) -> Quantity:
        quantity = np.asarray(values, dtype=np.float64).view(cls)
        quantity.unit = unit
        return quantity

    def __array_finalize__(self, obj: Any) -> None:
        self.unit = getattr(obj, "unit", None)


class ForeignArray:
    """An array of a library no backend knows: an array-API object over NumPy.

    NumPy reads it (``__array__``), as it would many a library's arrays; the
    adapters must still refuse it as ``x``, since read as host data it would
    leave its library silently (its gradients, device and laziness).
    """

    def __init__(self, values: Any) -> None:
        self._values = np.asarray(values)

    def __array_namespace__(self, api_version: str | None = None) -> ModuleType:
        return ModuleType("foreign_arrays")

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self._values, dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._values.shape

    @property
    def dtype(self) -> np.dtype:
        return self._values.dtype


def assert_adapter_refuses_foreign_x(backend: str, *more: Any) -> None:
    """Every function the registry says ``backend``'s adapter implements, and
    ``more`` callables, refuse a :class:`ForeignArray` as ``x``, naming it."""
    import importlib

    record = _backends.BACKENDS[backend]
    assert record.adapter is not None
    adapter = importlib.import_module(record.adapter)
    calls = [getattr(adapter, name) for name in record.implements]
    foreign = ForeignArray([-1.0, 0.5])
    for call in (*calls, *more):
        with pytest.raises(TypeError, match=r"x is tests\._support\.ForeignArray, not"):
            call(foreign)
