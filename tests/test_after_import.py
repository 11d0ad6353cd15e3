"""Actions run right after a library is imported (``s2nn_xp._after_import``).

A small module written to a temporary folder stands for the library, so the
finder is tested on its own, in every session.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from s2nn_xp import _after_import

LIBRARY = "s2nn_xp_stand_in_library"


@pytest.fixture
def library(tmp_path, monkeypatch):
    """The stand-in library's source file; imported by the test, removed after."""
    source = tmp_path / f"{LIBRARY}.py"
    source.write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, LIBRARY, raising=False)
    importlib.invalidate_caches()
    yield source
    sys.modules.pop(LIBRARY, None)


def _finders():
    return [f for f in sys.meta_path if isinstance(f, _after_import._AfterImport)]


def test_acts_right_after_the_library_has_executed(library):
    seen = []
    _after_import.when_imported(
        LIBRARY, lambda: seen.append(sys.modules[LIBRARY].VALUE), "a"
    )
    _after_import.when_imported(LIBRARY, lambda: seen.append("second"), "b")
    assert seen == [] and LIBRARY not in sys.modules
    module = importlib.import_module(LIBRARY)
    assert seen == [42, "second"] and module.VALUE == 42
    assert not [f for f in _finders() if f.library == LIBRARY]  # taken out
    importlib.reload(module)
    assert seen == [42, "second"]  # once


def test_acts_at_once_where_the_library_is_imported(library):
    importlib.import_module(LIBRARY)
    seen = []
    _after_import.when_imported(LIBRARY, lambda: seen.append(1), "a")
    assert seen == [1]
    assert not [f for f in _finders() if f.library == LIBRARY]


def test_a_failing_action_warns_and_never_breaks_the_import(library):
    def broken():
        raise RuntimeError("not today")

    seen = []
    _after_import.when_imported(LIBRARY, broken, "do the thing")
    _after_import.when_imported(LIBRARY, lambda: seen.append(1), "then this")
    with pytest.warns(RuntimeWarning) as caught:
        module = importlib.import_module(LIBRARY)
    assert module.VALUE == 42 and seen == [1]  # the next action still ran
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith(f"s2nn_xp could not do the thing once {LIBRARY}")
    assert "not today" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.warns(RuntimeWarning, match="not today"):
            _after_import.when_imported(LIBRARY, broken, "do it now")


def test_a_failed_import_acts_at_the_next_that_succeeds(library):
    library.write_text("raise OSError('broken install')\n")
    seen = []
    _after_import.when_imported(LIBRARY, lambda: seen.append(1), "a")
    with pytest.raises(OSError, match="broken install"):
        importlib.import_module(LIBRARY)
    assert seen == [] and [f for f in _finders() if f.library == LIBRARY]
    library.write_text("VALUE = 1\n")
    sys.modules.pop(LIBRARY, None)
    importlib.invalidate_caches()
    importlib.import_module(LIBRARY)
    assert seen == [1]


def test_a_library_that_is_not_installed_fails_as_usual(library):
    library.unlink()
    importlib.invalidate_caches()
    _after_import.when_imported(LIBRARY, lambda: pytest.fail("acted"), "a")
    with pytest.raises(ModuleNotFoundError, match=LIBRARY):
        importlib.import_module(LIBRARY)
    assert [f for f in _finders() if f.library == LIBRARY]


def test_a_lookup_without_an_import_leaves_the_finder_in_place(library):
    """``importlib.util.find_spec`` (a library's "is it installed?") imports nothing.

    The finder waits for the import that executes the library, and acts once:
    a spec looked up earlier and executed later does not act again.
    """
    import importlib.util

    seen = []
    _after_import.when_imported(LIBRARY, lambda: seen.append(1), "a")
    looked_up = importlib.util.find_spec(LIBRARY)
    assert looked_up is not None and LIBRARY not in sys.modules
    assert seen == [] and [f for f in _finders() if f.library == LIBRARY]
    importlib.util.find_spec(LIBRARY)  # twice
    importlib.import_module(LIBRARY)
    assert seen == [1]
    assert not [f for f in _finders() if f.library == LIBRARY]
    again = importlib.util.module_from_spec(looked_up)
    looked_up.loader.exec_module(again)
    assert again.VALUE == 42 and seen == [1]


def test_a_loader_found_twice_acts_once(library):
    """A finder that hands out one loader for every lookup gets it wrapped once."""
    import importlib.machinery
    import importlib.util

    path = str(library)
    loader = importlib.machinery.SourceFileLoader(LIBRARY, path)

    class OneLoader:
        def find_spec(self, fullname, path=None, target=None):
            if fullname != LIBRARY:
                return None
            return importlib.util.spec_from_loader(fullname, loader, origin=path)

    sys.meta_path.insert(0, OneLoader())
    seen = []
    _after_import.when_imported(LIBRARY, lambda: seen.append(1), "a")
    importlib.util.find_spec(LIBRARY)
    importlib.util.find_spec(LIBRARY)
    importlib.import_module(LIBRARY)
    assert seen == [1] and "exec_module" not in vars(loader)  # its own again


def test_a_loader_serving_other_modules_acts_for_the_library_alone(
    tmp_path, monkeypatch
):
    """A zipimporter executes every module of its zip: the library's import of
    another one ran the action with the library half executed, then failed
    ("'zipimporter' object has no attribute 'exec_module'")."""
    import importlib.util
    import zipfile

    archive = tmp_path / "libraries.zip"
    with zipfile.ZipFile(archive, "w") as files:
        files.writestr(f"{LIBRARY}/__init__.py", "import zipped_helper\nVALUE = 7\n")
        files.writestr("zipped_helper.py", "HELP = 1\n")
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    for name in (LIBRARY, "zipped_helper"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()
    seen = []
    _after_import.when_imported(
        LIBRARY, lambda: seen.append(getattr(sys.modules[LIBRARY], "VALUE", None)), "a"
    )
    importlib.util.find_spec(LIBRARY)  # a lookup, then another module alone
    importlib.import_module("zipped_helper")
    assert seen == [] and [f for f in _finders() if f.library == LIBRARY]
    sys.modules.pop("zipped_helper")
    try:
        assert importlib.import_module(LIBRARY).VALUE == 7
        assert seen == [7]  # once, after the library executed whole
    finally:
        sys.modules.pop(LIBRARY, None)
        sys.modules.pop("zipped_helper", None)
