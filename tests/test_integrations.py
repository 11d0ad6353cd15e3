"""Every snippet of the docs' "Use with your SNN library" page runs as it says.

The page's ``pycon`` blocks need the SNN libraries, which only the ``clients``
session installs (the docs build does not run them): each section of the page
is one doctest, in one namespace, skipped where a library it imports is
missing. JAX runs in its default 32-bit mode, as a reader's would.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

from tests._support import load_backend, selected_backends
from tests.test_docs import jax_defaults

PAGE = Path(__file__).resolve().parents[1] / "docs" / "integrations.rst"

# torch's exporters and norse deprecate torch.jit internals; not this package.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def sections() -> dict[str, str]:
    """Section title -> the doctest text of its ``pycon`` blocks, in order."""
    found: dict[str, str] = {}
    title = None
    lines = PAGE.read_text().splitlines()
    in_block = False
    for line, underline in zip(lines, [*lines[1:], ""], strict=True):
        if underline and set(underline) == {"-"} and len(underline) >= len(line):
            title = line
            continue
        if line.startswith(".. code-block:: pycon"):
            in_block = True
            continue
        if in_block and line and not line.startswith(" "):
            in_block = False
        if in_block and title is not None:
            found[title] = found.get(title, "") + line.removeprefix("   ") + "\n"
    return found


def imported_libraries(text: str) -> list[str]:
    """The top-level modules the snippets import."""
    names = re.findall(r"^(?:>>>|\.\.\.) +(?:import|from) +(\w+)", text, re.M)
    return sorted(set(names) - {"s2nn_xp"})


def test_every_section_with_code_is_found():
    assert set(sections()) == {
        "SpikingJelly",
        "snnTorch",
        "Norse",
        "brainstate and brainpy",
        "JAX: optax, equinox and flax-style models",
        "Export",
    }


@pytest.mark.parametrize("title", sorted(sections()))
def test_section_runs_as_written(title):
    text = sections()[title]
    for library in imported_libraries(text):
        pytest.importorskip(library)
    test = doctest.DocTestParser().get_doctest(text, {}, title, str(PAGE), 0)
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    runner = doctest.DocTestRunner(optionflags=flags)
    reports: list[str] = []
    with jax_defaults():
        runner.run(test, out=reports.append)
    assert runner.summarize(verbose=False).failed == 0, "".join(reports)
    assert test.examples


def test_the_type_checked_user_code_runs_as_typed():
    """``tests/typing_user_code.py``, which the lint session type-checks: the
    uses its checker accepts run, and those it refuses raise."""
    for framework in ("torch", "jax"):  # both: the sessions that have them
        if framework not in selected_backends():
            pytest.skip(f"backend {framework!r} not selected")
        load_backend(framework)
    from tests import typing_user_code as code

    for accepted in code.ACCEPTED:
        accepted()
    for refused, error in code.REFUSED.items():
        with pytest.raises(error):
            refused()


def test_public_annotations_resolve_at_run_time():
    """Tools that read annotations at run time (``typing.get_type_hints``:
    jsonargparse, LightningCLI, pydantic) got "unsupported operand type(s)
    for |: 'str' and 'NoneType'" from a type alias that was a string at run
    time."""
    import importlib
    import inspect
    import typing

    for framework in ("torch", "jax"):
        if framework not in selected_backends():
            pytest.skip(f"backend {framework!r} not selected")
        load_backend(framework)
    for name in ("s2nn_xp", "s2nn_xp.torch", "s2nn_xp.jax"):
        module = importlib.import_module(name)
        for public in module.__all__:
            value = getattr(module, public)
            members = [value]
            if inspect.isclass(value):
                members += [m for _, m in inspect.getmembers(value, inspect.isfunction)]
            for member in members:
                if callable(member):
                    typing.get_type_hints(member)
            warning = inspect.isclass(value) and issubclass(value, Warning)
            if callable(value) and not warning:  # a warning has no signature
                inspect.signature(value, eval_str=True)
