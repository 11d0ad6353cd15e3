"""The examples in the README and in the docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from tests.conftest import selected_backends

ROOT = Path(__file__).resolve().parents[1]


# Module -> the backend whose session runs its examples.
DOCSTRING_MODULES = {
    "s2nn_xp._api": "numpy",
    "s2nn_xp._validation": "numpy",
    "s2nn_xp.jax": "jax",
    "s2nn_xp.torch": "torch",
    "s2nn_xp.cupy": "cupy",
}


@pytest.mark.skipif("numpy" not in selected_backends(), reason="numpy not selected")
def test_readme_examples():
    result = doctest.testfile(
        str(ROOT / "README.md"),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("module", DOCSTRING_MODULES)
def test_docstring_examples(module):
    backend = DOCSTRING_MODULES[module]
    if backend not in selected_backends():
        pytest.skip(f"{backend} not selected")
    if backend == "cupy":
        from tests.conftest import load_backend

        load_backend("cupy")  # skips without a GPU
    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0
