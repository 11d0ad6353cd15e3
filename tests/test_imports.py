"""``import s2nn_xp`` imports no framework; an array imports its own adapter only.

Runs in every nox session, so each checks it with its own framework installed
(a framework that is not installed could not be imported by mistake).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

FRAMEWORKS = ("jax", "torch", "cupy", "dask")

# What a framework's array is made from, in a fresh interpreter.
MAKE_ARRAY = {
    "jax": "import jax.numpy as m; x = m.ones(3)",
    "torch": "import torch as m; x = m.ones(3)",
    "dask": "import dask.array as m; x = m.ones(3)",
}


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_import_and_numpy_use_touch_no_framework():
    _run(
        "import sys, s2nn_xp, numpy as np\n"
        "s2nn_xp.s2nn(np.ones(3)); s2nn_xp.vjp([1.0])[1](1.0)\n"
        "s2nn_xp.S2NN()(np.zeros(2)); s2nn_xp.gradient(0.5)\n"
        f"loaded = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )


@pytest.mark.parametrize("framework", sorted(MAKE_ARRAY))
def test_an_array_loads_only_its_own_adapter(framework):
    if not _installed(framework):
        pytest.skip(f"{framework} is not installed")
    adapters = [f"s2nn_xp.{name}" for name in ("jax", "torch", "cupy")]
    others = [m for m in FRAMEWORKS if m != framework]
    _run(
        f"{MAKE_ARRAY[framework]}\n"
        "import sys, s2nn_xp\n"
        "before = set(sys.modules)\n"
        "s2nn_xp.s2nn(x); s2nn_xp.gradient(x)\n"
        "new = set(sys.modules) - before\n"
        f"wrong = sorted(m for m in new if m.split('.')[0] in {others!r})\n"
        "assert not wrong, wrong\n"
        f"adapters = sorted(m for m in new if m in {adapters!r})\n"
        f"want = [{('s2nn_xp.' + framework)!r}] if {framework!r} != 'dask' else []\n"
        "assert adapters == want, adapters\n"
    )
