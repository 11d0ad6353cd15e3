"""``s2nn_xp.S2NN`` as a JAX pytree, registered as soon as JAX is imported.

``import s2nn_xp`` must not import JAX, and the registration must hold
whether JAX is imported before or after ``s2nn_xp``. So where JAX is already
imported, :func:`register_when_jax_is_imported` registers at once; otherwise
it puts a finder at the front of :data:`sys.meta_path` that, when ``jax`` is
imported, lets the import run as usual and registers right after ``jax``'s
module has executed; the finder then takes itself out.

The leaves are ``alpha`` and ``beta`` (numbers or arrays, differentiable);
``epsilon``, ``origin`` and any parameter held in a brainstate state are the
static part, compared as :class:`s2nn_xp.S2NN` compares them.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["register", "register_when_jax_is_imported"]

_registered = False


def register() -> None:
    """Register :class:`s2nn_xp.S2NN` with ``jax.tree_util`` (once)."""
    global _registered
    if _registered:
        return
    from jax import tree_util

    from ._api import S2NN

    def flatten_with_keys(obj: S2NN) -> tuple[list[tuple[Any, Any]], Any]:
        leaves, aux = obj._tree_flatten()
        return [(tree_util.GetAttrKey(name), leaf) for name, leaf in leaves], aux

    def flatten(obj: S2NN) -> tuple[list[Any], Any]:
        leaves, aux = obj._tree_flatten()
        return [leaf for _, leaf in leaves], aux

    tree_util.register_pytree_with_keys(
        S2NN, flatten_with_keys, S2NN._tree_unflatten, flatten
    )
    _registered = True


def register_when_jax_is_imported() -> None:
    """Register now if JAX is imported, else right after it is."""
    if "jax" in sys.modules:
        register()
    elif not any(isinstance(f, _AfterJaxImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterJaxImport())


class _AfterJaxImport(importlib.abc.MetaPathFinder):
    """Finds ``jax`` as the other finders do, and registers once it has loaded."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != "jax":
            return None
        finders = [f for f in sys.meta_path if f is not self]
        for finder in finders:
            find = getattr(finder, "find_spec", None)
            spec = None if find is None else find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None  # JAX is not installed: the import fails as usual
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        sys.meta_path.remove(self)
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            try:
                exec_module(module)
            except BaseException:  # a failed import: try again at the next one
                sys.meta_path.insert(0, self)
                raise
            finally:
                del loader.exec_module  # the loader's own method again
            try:
                register()
            except Exception as exc:  # never break the user's import of JAX
                msg = (
                    "s2nn_xp.S2NN could not be registered as a JAX pytree "
                    f"({exc!r}); it still works as a function of arrays"
                )
                warnings.warn(msg, RuntimeWarning, stacklevel=2)

        loader.exec_module = exec_then_register
        return spec
