"""Test matrix: one session per array backend, plus lint.

``nox`` runs every default session; ``nox -s jax`` runs one. Arguments after
``--`` go to pytest. The sessions that need PyTorch install what the
environment variable ``S2NN_XP_TORCH`` names (default ``torch==2.13.0``; a
wheel's path or URL too), which is a CPU build on the project's CI machines
and from PyPI, pinned or not, a multi-GB CUDA build: the README says how
pip takes PyTorch's CPU build instead.
"""

from __future__ import annotations

import ast
import os
import re
import runpy
import shutil

import nox

nox.options.sessions = [
    "lint",
    "package",
    "numpy",
    "numpy_oldest",
    "cupy_emulation",
    "array_api_strict",
    "dask",
    "jax",
    "jax_oldest",
    "torch",
    "clients",
    "cupy",
    "marray",
    "examples",
    "docs",
    "docs_browser",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

TORCH = os.environ.get("S2NN_XP_TORCH", "torch==2.13.0")
# Triton for its interpreter (TRITON_INTERPRET=1): the CUDA kernels' tests.
# The newest: 3.9 warns where a kernel is compiled without saying whether
# to fuse multiply-adds (the GPU compile test turns warnings into errors).
TRITON = os.environ.get("S2NN_XP_TRITON", "triton==3.9.0")
# The oldest NumPy and array-api-compat that pyproject's dependencies allow.
OLDEST_NUMPY = "numpy==1.26.0"
OLDEST_COMPAT = "array-api-compat==1.11"
# What user code type checkers must accept and refuse (the lint session).
TYPED_USER_CODE = "tests/typing_user_code.py"
# The JAX whose types mypy checks the adapter against (pinned, as mypy is).
LINT_JAX = "jax==0.10.2"
# The oldest JAX that pyproject's jax extra allows, with its jaxlib.
OLDEST_JAX = ("jax==0.4.35", "jaxlib==0.4.35")
# Drives the system's Chromium; its own browser downloads are never used.
PLAYWRIGHT = "playwright==1.65.2"
# The framework-bound S2NNs that `s2nn-xp bench` times beside s2nn_xp, and
# what they need that the clients session (and a GPU machine, through
# the gpu_wheels session) does not otherwise have.
TORCH_ANCHOR = ("spikingjelly==2.0.0", "loguru>=0.7,<1")
JAX_ANCHOR = (
    "brainstate==0.5.4",
    "braintools==0.3.0",
    "brainunit==0.5.2",
    "saiunit==0.5.2",
    "brainevent==0.2.1",
)


def _pytest(session: nox.Session, backend: str, *args: str) -> None:
    session.run(
        "pytest",
        *args,
        *session.posargs,
        env={"S2NN_XP_BACKENDS": backend, "PYTHONHASHSEED": "0"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check, and mypy on the package (pyproject's settings).

    mypy sees the types of NumPy, array-api-compat and the two frameworks
    whose adapters users type-check against (PyTorch, JAX: without them
    the adapters' annotations went unchecked, and 33 errors stood in
    ``torch.py``); the other optional libraries count as untyped
    (``ignore_missing_imports``). Then a user's code, by mypy --strict and
    by basedpyright.
    """
    # pinned: new rules or checks must not fail CI; the package's own
    # requirements as pyproject.toml states them (one place)
    session.install("ruff==0.17.6", "mypy==1.19.1", *_requirements())
    session.install(TORCH, LINT_JAX, "basedpyright==1.40.2")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    # A user's code, strictly, against the package as installed (its own
    # errors silenced, as a checker silences an installed package's).
    session.run("mypy", "--strict", "--follow-imports=silent", TYPED_USER_CODE)
    # and by pyright, as users' projects run it too (pyproject's settings):
    # it read a type alias mypy read, as no type at all.
    session.run("basedpyright", TYPED_USER_CODE)


def _requirements() -> list[str]:
    """The package's dependencies, from ``pyproject.toml`` (one line there).

    Read with a pattern, not ``tomllib``, which Python 3.10 lacks.
    """
    with open("pyproject.toml") as file:
        line = re.search(r"^dependencies = (\[.*\])$", file.read(), re.MULTILINE)
    assert line is not None, "pyproject.toml: dependencies on one line"
    dependencies: list[str] = ast.literal_eval(line.group(1))
    return dependencies


_SDIST_CHECK = """
import pathlib, sys, tarfile
(sdist,) = pathlib.Path(sys.argv[1]).glob("*.tar.gz")
names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
need = {"tests/conftest.py", "tests/_support.py", "tests/__init__.py",
        "CHANGELOG.md", "LICENSE", "noxfile.py", "docs/conf.py",
        "examples/train_digits.py", "benchmarks/bench_core.py", "s2nn_xp/py.typed",
        ".ci/run", ".ci/gpu-check"}
missing = sorted(need - names)
assert not missing, f"sdist lacks {missing}"
stray = sorted(n for n in names if "__pycache__" in n or n.startswith("docs/_build"))
assert not stray, f"sdist carries {stray[:5]}"
print(sdist.name, "carries", len(names), "files")
"""


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and wheel, install the wheel, and check what it ships."""
    session.install("build>=1", "twine>=5")
    dist = os.path.join(session.create_tmp(), "dist")
    shutil.rmtree(dist, ignore_errors=True)  # no wheel of an earlier run
    session.run("python", "-m", "build", "--outdir", dist)
    session.run("twine", "check", "--strict", f"{dist}/*")
    # The sdist carries what its tests and docs need.
    session.run("python", "-c", _SDIST_CHECK, dist, external=False)
    wheels = [f for f in os.listdir(dist) if f.endswith(".whl")]
    session.install(os.path.join(dist, wheels[0]))
    check = (
        "import importlib.resources as r, sys, numpy as np, s2nn_xp; "
        "assert r.files('s2nn_xp').joinpath('py.typed').is_file(); "
        "assert s2nn_xp.S2NN()(np.array([0.0]))[0] == 1.0; "
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules; "
        "print('s2nn_xp', s2nn_xp.__version__, 'wheel OK')"
    )
    session.run("python", "-c", check, external=False)


CUPY_EMULATION = "tests/test_cupy_sources.py"


@nox.session
def numpy(session: nox.Session) -> None:
    """NumPy, the float64 reference backend; also the API and packaging tests.

    The host emulation of the CuPy kernels has its own session,
    ``cupy_emulation``.
    """
    session.install("-e", ".[test,strict,plot]")
    _pytest(session, "numpy", f"--ignore={CUPY_EMULATION}")


@nox.session(name="numpy_oldest")
def numpy_oldest(session: nox.Session) -> None:
    """The NumPy suite on the oldest NumPy and array-api-compat allowed.

    The NumPy block path's kernels call NumPy's ufuncs directly, where
    ``_math`` goes through array-api-compat; this proves them on 1.x too,
    and the package on the oldest array-api-compat (pyproject's bounds).
    """
    session.install("-e", ".[test]", OLDEST_NUMPY, OLDEST_COMPAT)
    _pytest(session, "numpy", f"--ignore={CUPY_EMULATION}")


@nox.session(name="cupy_emulation")
def cupy_emulation(session: nox.Session) -> None:
    """The CuPy kernels' sources compiled and emulated on the host (no GPU)."""
    session.install("-e", ".[test]")
    _pytest(session, "numpy", CUPY_EMULATION)


@nox.session
def marray(session: nox.Session) -> None:
    """marray: masked arrays over NumPy, served by the array-API math alone."""
    session.install("-e", ".[test,marray]")
    _pytest(session, "marray")


@nox.session(name="array_api_strict")
def array_api_strict(session: nox.Session) -> None:
    """array-api-strict: proves the math uses nothing outside the standard."""
    session.install("-e", ".[test,strict,plot]")
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


@nox.session(name="jax_oldest")
def jax_oldest(session: nox.Session) -> None:
    """The JAX suite on the oldest JAX the package allows (pyproject's extra).

    It has no batching or derivative rules for ``optimization_barrier`` and
    does not import ``jax.export`` with ``jax``: this proves the adapter's
    ways around them.
    """
    session.install("-e", ".[test]", *OLDEST_JAX)
    _pytest(session, "jax")


@nox.session
def torch(session: nox.Session) -> None:
    """PyTorch on the CPU (CUDA tests skip without a GPU).

    Triton comes too (CPU builds of torch do not bring it), so that the fused
    CUDA kernels of the torch adapter run on the CPU in Triton's interpreter;
    ml_dtypes (whose NumPy arrays the adapter converts) comes with the test
    extra, as in every session.
    """
    session.install(TORCH, TRITON)
    session.install("-e", ".[test]")
    _pytest(session, "torch")


@nox.session
def clients(session: nox.Session) -> None:
    """s2nn_xp inside the SNN libraries users have, in PyTorch and in JAX.

    PyTorch: spikingjelly, snntorch and norse neurons with
    ``s2nn_xp.torch.S2NN`` as their surrogate. spikingjelly's metadata asks for
    torchvision, torchaudio and tensorboard (and through them for a multi-GB
    CUDA build of torch), none of which its neurons use: it is installed
    without dependencies, plus the modules its neuron, surrogate and model
    code imports; norse likewise, plus nir and nirtorch (its NIR export).

    JAX: braintools' S2NN (the anchor) side by side, brainstate and brainpy
    neurons with ``s2nn_xp.S2NN`` as ``spk_fun``, its pytree with optax,
    equinox and flax (nnx modules, ``flax.serialization``). Deployment:
    torch.export, ONNX in onnxruntime and jax.export.
    The snippets of the docs' "Use with your SNN library" page run here.
    """
    session.install(TORCH)
    session.install("-e", ".[test,jax]")
    spikingjelly, *spikingjelly_needs = TORCH_ANCHOR
    torch_clients = (spikingjelly, "snntorch==1.0.0", "norse==1.1.0")
    session.install("--no-deps", *torch_clients, "nirtorch==2.6")
    session.install(*spikingjelly_needs, "tqdm", "h5py==3.16.0", "nir==1.0.8")
    session.install(*JAX_ANCHOR, "brainpy==2.8.2")
    session.install("optax==0.2.8", "equinox==0.13.8", "flax==0.12.8")
    session.install("onnx==1.23.2", "onnxscript==0.7.2", "onnxruntime==1.32.0")
    session.install("flatbuffers>=24")  # jax.export's serialisation
    session.run(
        "pytest",
        "tests/test_clients_torch.py",
        "tests/test_clients_jax.py",
        "tests/test_pytree.py",
        "tests/test_export.py",
        "tests/test_integrations.py",
        *session.posargs,
        env={"S2NN_XP_BACKENDS": "torch,jax", "PYTHONHASHSEED": "0"},
    )


@nox.session
def examples(session: nox.Session) -> None:
    """The digits training example, shortened, in PyTorch and JAX."""
    session.install(TORCH)
    session.install("-e", ".[test,jax,examples]")
    session.run(
        "pytest",
        "tests/test_examples.py",
        *session.posargs,
        env={"S2NN_XP_BACKENDS": "torch,jax"},
    )


@nox.session
def cupy(session: nox.Session) -> None:
    """CuPy on a CUDA GPU; skipped where no NVIDIA driver is present."""
    if shutil.which("nvidia-smi") is None:
        session.skip("no CUDA device here (nvidia-smi not found): cupy tests not run")
    session.install("-e", ".[test,cupy]")
    _pytest(session, "cupy")


@nox.session(name="gpu_wheels")
def gpu_wheels(session: nox.Session) -> None:
    """Wheels for ``.ci/gpu-check`` on a GPU machine without network (not default).

    That machine has PyTorch, Triton, CuPy, JAX, NumPy, pytest, hypothesis and
    mpmath; what else the checks import travels as wheels in ``.whl/``:
    array-api-compat as the package requires it, and the anchors with what
    they need, as the clients session pins them (pure-Python wheels, about
    5 MB). Arguments after ``--``: the machine's Python version (3.12).
    """
    python = session.posargs[0] if session.posargs else "3.12"
    session.install("--no-deps", ".")
    requires = "import importlib.metadata as m; print(*m.requires('s2nn-xp'))"
    output = session.run("python", "-c", requires, silent=True)
    compat = [r for r in str(output).split() if r.startswith("array-api-compat")]
    session.run(
        "python",
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--platform",
        "manylinux_2_17_x86_64",
        "--dest",
        ".whl",
        *compat,
        *TORCH_ANCHOR,
        *JAX_ANCHOR,
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation (warnings are errors) and run its examples."""
    session.install(TORCH)
    # The docs extra brings sphinx-mathjax-offline: MathJax served with the
    # site, no network needed.
    session.install("-e", ".[docs,jax,dask]")
    # The performance page's figures are drawn by this module, for any case.
    session.run("python", "-m", "doctest", "docs/_ext/bench_figure.py")
    build = ("sphinx-build", "-W", "--keep-going", "-q", "docs")
    session.run(*build, "-b", "html", "docs/_build/html")
    session.run(*build, "-b", "doctest", "docs/_build/doctest")


@nox.session(name="docs_browser", requires=["docs"])
def docs_browser(session: nox.Session) -> None:
    """Open every page of the built documentation in headless Chromium.

    After the ``docs`` session has built the site, ``docs/_check_site.py``
    checks each page as a reader sees it: math typeset, images loaded, no
    console error, no request leaving the site, tables within the page.
    Skipped where no Chromium is installed (``.ci/run`` installs Debian's).
    Arguments after ``--`` go to the script (``--screenshots DIR``).
    """
    site_check = runpy.run_path("docs/_check_site.py")
    if site_check["find_browser"]() is None:
        session.skip(site_check["NO_BROWSER"])
    session.install(PLAYWRIGHT)
    session.run("python", "docs/_check_site.py", *session.posargs)
