"""Test matrix: one session per array backend, plus lint.

``nox`` runs every default session; ``nox -s jax`` runs one. Arguments after
``--`` go to pytest. The torch session installs the version named by the
environment variable ``S2NN_XP_TORCH`` (default ``torch==2.13.0``, which is a
CPU build on the project's CI machines; an unpinned torch from PyPI is a
multi-GB CUDA build).
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = [
    "lint",
    "numpy",
    "array_api_strict",
    "dask",
    "jax",
    "torch",
    "cupy",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

TORCH = os.environ.get("S2NN_XP_TORCH", "torch==2.13.0")


def _pytest(session: nox.Session, backend: str) -> None:
    session.run(
        "pytest",
        *session.posargs,
        env={"S2NN_XP_BACKENDS": backend, "PYTHONHASHSEED": "0"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def numpy(session: nox.Session) -> None:
    """NumPy, the float64 reference backend; also the API and packaging tests."""
    session.install("-e", ".[test,strict]")
    _pytest(session, "numpy")


@nox.session(name="array_api_strict")
def array_api_strict(session: nox.Session) -> None:
    """array-api-strict: proves the math uses nothing outside the standard."""
    session.install("-e", ".[test,strict]")
    _pytest(session, "array_api_strict")


@nox.session
def dask(session: nox.Session) -> None:
    """Dask: lazy evaluation, chunk by chunk, and a local distributed cluster."""
    session.install("-e", ".[test,dask]")
    _pytest(session, "dask")


@nox.session
def jax(session: nox.Session) -> None:
    """JAX on the CPU: every transform, the adapter and its math."""
    session.install("-e", ".[test,jax]")
    _pytest(session, "jax")


@nox.session
def torch(session: nox.Session) -> None:
    """PyTorch on the CPU (CUDA tests skip without a GPU)."""
    session.install(TORCH)
    session.install("-e", ".[test]")
    _pytest(session, "torch")


@nox.session
def cupy(session: nox.Session) -> None:
    """CuPy on a CUDA GPU; skipped where no NVIDIA driver is present."""
    if shutil.which("nvidia-smi") is None:
        session.skip("no CUDA device here (nvidia-smi not found): cupy tests not run")
    session.install("-e", ".[test,cupy]")
    _pytest(session, "cupy")
