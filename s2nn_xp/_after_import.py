"""Runs an action right after a library is imported, without importing it.

``import s2nn_xp`` must not import a framework, yet some work must be done
as soon as one is there: :class:`s2nn_xp.S2NN` becomes a JAX pytree, and the
PyTorch adapter is imported with PyTorch (``torch.compile`` traces Python
bytecode and cannot import a module while it traces a call). Where the
library is imported already, :func:`when_imported` acts at once; otherwise it
puts a finder at the front of :data:`sys.meta_path` that, when the library is
imported, lets the import run as usual and acts right after the library's
module has executed; the finder then takes itself out (not before: a spec
that is only looked up, never executed, leaves it in place).

An action that fails never breaks the user's import: it warns, naming what
could not be done and why.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["when_imported"]

# What an action returns is not used.
Action = Callable[[], object]


def when_imported(library: str, action: Action, what: str) -> None:
    """Call `action` now if `library` is imported, else right after it is.

    `library` is a top-level module name; `what` says what `action` does,
    for the warning should it fail ("register s2nn_xp.S2NN as a JAX
    pytree"). Actions for one library run in the order they were given.
    """
    if library in sys.modules:
        _act(library, action, what)
        return
    finder = next(
        (
            f
            for f in sys.meta_path
            if isinstance(f, _AfterImport) and f.library == library
        ),
        None,
    )
    if finder is None:
        finder = _AfterImport(library)
        sys.meta_path.insert(0, finder)
    finder.actions.append((action, what))


def _act(library: str, action: Action, what: str) -> None:
    try:
        action()
    except Exception as exc:  # never break the user's import of the library
        msg = f"s2nn_xp could not {what} once {library} was imported ({exc!r})"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds `library` as the other finders do, and acts once it has loaded."""

    def __init__(self, library: str) -> None:
        self.library = library
        self.actions: list[tuple[Action, str]] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != self.library:
            return None
        finders = [f for f in sys.meta_path if f is not self]
        for finder in finders:
            find = getattr(finder, "find_spec", None)
            spec = None if find is None else find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None  # the library is not installed: the import fails as usual
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        if getattr(loader.exec_module, "_acts_for", None) is self:
            return spec  # a loader found before and not used yet
        # The finder stays in place until the library has executed: a spec
        # may be only looked up (importlib.util.find_spec("torch"), a
        # library's "is it installed?" probe), and the import that follows
        # finds a fresh one.
        exec_module = loader.exec_module

        def exec_then_act(module: ModuleType) -> None:
            if module.__name__ != self.library:
                # A loader that serves other modules too (a zipimporter: every
                # module of its zip), executing one the library imports.
                exec_module(module)
                return
            try:
                exec_module(module)
            finally:
                if vars(loader).get("exec_module") is exec_then_act:
                    del loader.exec_module  # the loader's own method again
            # Once, even where a spec from an earlier lookup executes too.
            if self not in sys.meta_path:
                return
            sys.meta_path.remove(self)
            for action, what in self.actions:
                _act(self.library, action, what)

        exec_then_act._acts_for = self  # type: ignore[attr-defined]
        loader.exec_module = exec_then_act
        return spec
