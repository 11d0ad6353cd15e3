"""Test fixtures: one ``xp`` fixture over the array backends.

The backends run are those named (comma-separated) in the environment
variable ``S2NN_XP_BACKENDS``; by default every backend that imports. Each nox
session names one, so a missing library is a skip there, never a silent pass.
"""

from __future__ import annotations

import importlib
import os
import sys

import pytest

# Backend name -> module the tests use as ``xp`` (what users pass in).
BACKENDS = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "dask": "dask.array",
    "jax": "jax.numpy",
    "torch": "torch",
    "cupy": "cupy",
}


def selected_backends() -> list[str]:
    names = os.environ.get("S2NN_XP_BACKENDS")
    if not names:
        return list(BACKENDS)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        msg = f"S2NN_XP_BACKENDS: unknown backends {unknown}; known: {list(BACKENDS)}"
        raise pytest.UsageError(msg)
    return chosen


def _explicitly_selected(name: str) -> bool:
    return bool(os.environ.get("S2NN_XP_BACKENDS")) and name in selected_backends()


def load_backend(name: str):
    """Import backend `name`, or skip (or fail, where it was asked for by name)."""
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        if _explicitly_selected(name) and name != "cupy":
            pytest.fail(f"backend {name!r} was selected but does not import: {exc}")
        pytest.skip(f"{name} is not installed")
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    if name == "cupy":
        try:
            if module.cuda.runtime.getDeviceCount() < 1:
                pytest.skip("cupy is installed but no CUDA device is present")
        except module.cuda.runtime.CUDARuntimeError as exc:
            pytest.skip(f"cupy is installed but CUDA is unavailable: {exc}")
    return module


def require(name: str):
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


@pytest.fixture(autouse=True)
def _jax_x64():
    """Keep ``jax_enable_x64`` on for every test once JAX is in use.

    The ``xp`` fixture turns it on when JAX loads; some libraries that tests
    import (brainstate, braintools) turn it off again when they load.
    """
    jax = sys.modules.get("jax")
    if jax is not None and "jax" in selected_backends():
        jax.config.update("jax_enable_x64", True)


@pytest.fixture(params=selected_backends())
def xp(request):
    """The array namespace of one backend (the library's own module)."""
    marker = request.node.get_closest_marker("backends")
    if marker is not None and request.param not in marker.args:
        pytest.skip(f"test is only for backends {marker.args}")
    marker = request.node.get_closest_marker("skip_backends")
    if marker is not None and request.param in marker.args:
        pytest.skip(f"test does not apply to {request.param}")
    return load_backend(request.param)
