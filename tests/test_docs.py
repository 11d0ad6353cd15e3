"""The examples in the README and in the docstrings run and print what they say."""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import re
import sys
from pathlib import Path

import pytest

from tests._support import load_backend, selected_backends

ROOT = Path(__file__).resolve().parents[1]


# Module -> the backend whose session runs its examples.
DOCSTRING_MODULES = {
    "s2nn_xp._api": "numpy",
    "s2nn_xp._object": "numpy",
    "s2nn_xp._cli": "numpy",
    "s2nn_xp._cupy_kernels": "numpy",
    "s2nn_xp._fused": "numpy",
    "s2nn_xp._timing": "numpy",
    "s2nn_xp.jax": "jax",
    "s2nn_xp.torch": "torch",
    "s2nn_xp.cupy": "cupy",
}


# ELLIPSIS: a float32 value whose last digit is the device's rounding
# (0.07065083 on XLA's CPU, 0.07065082 on an NVIDIA GPU) is written 0.0706508...
_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def readme_examples() -> dict[str, str]:
    """The README's ``>>>`` blocks, joined per framework they import."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    by_framework: dict[str, str] = {}
    for block in blocks:
        if ">>>" not in block:
            continue
        framework = next(
            (f for f in ("jax", "torch") if f"import {f}" in block), "numpy"
        )
        by_framework[framework] = by_framework.get(framework, "") + block + "\n"
    return by_framework


@contextlib.contextmanager
def jax_defaults():
    """JAX's default configuration (32-bit), as a reader of the docs has it.

    The ``xp`` fixture turns on ``jax_enable_x64`` for the whole session; the
    documented outputs are those of a fresh interpreter.
    """
    jax = sys.modules.get("jax")
    if jax is None:
        yield
        return
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("framework", ["numpy", "jax", "torch"])
def test_readme_examples(framework):
    if framework not in selected_backends():
        pytest.skip(f"{framework} not selected")
    load_backend(framework)  # skips where not installed, unless asked for by name
    text = readme_examples()[framework]
    test = doctest.DocTestParser().get_doctest(
        text, {}, f"README[{framework}]", "README.md", 0
    )
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    with jax_defaults():
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert test.examples


@pytest.mark.parametrize("module", DOCSTRING_MODULES)
def test_docstring_examples(module):
    backend = DOCSTRING_MODULES[module]
    if backend not in selected_backends():
        pytest.skip(f"{backend} not selected")
    load_backend(backend)  # skips where not installed (CuPy: without a GPU)
    with jax_defaults():
        result = doctest.testmod(
            importlib.import_module(module),
            optionflags=_FLAGS,
        )
    # attempted: doctest takes only the objects whose __module__ is module's
    assert result.failed == 0 and result.attempted > 0


def test_every_module_with_examples_has_them_run():
    """A module whose docstrings hold examples is in DOCSTRING_MODULES (the
    examples of the private ones ran nowhere)."""
    with_examples = {
        f"s2nn_xp.{path.stem}"
        for path in (ROOT / "s2nn_xp").glob("*.py")
        if ">>>" in path.read_text()
    }
    assert with_examples == set(DOCSTRING_MODULES)


def _public_names(module: str) -> set[str]:
    """``module``'s ``__all__``, read from its source (no framework imported)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{module} has no __all__")


def test_the_api_reference_lists_every_public_name():
    """Each public module's ``__all__`` in docs/api.rst, under its module (the
    adapters' forward, origin, gradient and vjp were missing)."""
    listed: dict[str, set[str]] = {}
    module = None
    for line in (ROOT / "docs" / "api.rst").read_text().splitlines():
        if line.startswith(".. currentmodule::"):
            module = line.split("::")[1].strip()
        elif module and re.fullmatch(r"   [A-Za-z_]\w*", line):
            listed.setdefault(module, set()).add(line.strip())
    assert set(listed) == {"s2nn_xp", "s2nn_xp.jax", "s2nn_xp.torch", "s2nn_xp.cupy"}
    for module, names in listed.items():
        public = _public_names(module) - {"__version__"}
        assert names == public, module


@pytest.mark.parametrize("adapter", ["torch", "jax"])
def test_the_adapters_functions_have_whole_docstrings(adapter):
    """They had one line each, pointing at the core function's, whose `xp`
    they do not take; numpydoc sections and examples, as the core's."""
    if adapter not in selected_backends():
        pytest.skip(f"{adapter} not selected")
    module = load_backend(adapter) and importlib.import_module(f"s2nn_xp.{adapter}")
    for name in module.__all__:
        value = getattr(module, name)
        doc = value.__doc__ or ""
        returns = () if isinstance(value, type) else ("Returns",)
        for section in ("Parameters", *returns, "Raises", "Examples"):
            assert f"\n    {section}\n    ---" in doc, (name, section)
        assert "xp :" not in doc and "Documented by" not in doc, name
