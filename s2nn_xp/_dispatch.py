"""Picks the framework adapter for an array.

An adapter is a module of this package (``s2nn_xp.jax``, ``s2nn_xp.torch``,
``s2nn_xp.cupy``) that lists in its ``DISPATCHED`` tuple the public functions
it implements for its own arrays: ``s2nn`` for autodiff frameworks (to attach
the surrogate derivatives), and ``forward``, ``origin``, ``gradient`` and
``vjp`` where it has fused kernels. Everything else runs the array-API math.
An adapter is imported only when an array of its library arrives.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import _compat

__all__ = ["adapter_for", "implementation"]

_ADAPTERS: tuple[tuple[Callable[[Any], bool], str], ...] = (
    (_compat.is_jax_array, "s2nn_xp.jax"),
    (_compat.is_torch_array, "s2nn_xp.torch"),
    (_compat.is_cupy_array, "s2nn_xp.cupy"),
)

# Top-level module of an array's type -> adapter. Looking the type up first
# keeps dispatch cheap, and traceable by torch.compile, which warns about the
# cached type checks of array-api-compat; those remain the fallback for
# subclasses defined elsewhere.
_ADAPTER_BY_TYPE_MODULE = {
    "jax": "s2nn_xp.jax",
    "jaxlib": "s2nn_xp.jax",
    "torch": "s2nn_xp.torch",
    "cupy": "s2nn_xp.cupy",
    "numpy": None,
}


_loaded: dict[str, ModuleType] = {}


def _load(module: str) -> ModuleType:
    """Import an adapter once; later calls are a dict lookup (compile-friendly)."""
    adapter = _loaded.get(module)
    if adapter is None:
        adapter = _loaded[module] = importlib.import_module(module)
    return adapter


def adapter_for(x: Any) -> ModuleType | None:
    """The adapter module for `x`'s library, or None where the math serves."""
    library = type(x).__module__.partition(".")[0]
    if library in _ADAPTER_BY_TYPE_MODULE:
        module = _ADAPTER_BY_TYPE_MODULE[library]
        return None if module is None else _load(module)
    for is_library_array, module in _ADAPTERS:
        if is_library_array(x):
            return _load(module)
    return None


def implementation(name: str, x: Any) -> Callable[..., Any] | None:
    """The adapter's version of the public function `name` for `x`, if any."""
    adapter = adapter_for(x)
    if adapter is None or name not in adapter.DISPATCHED:
        return None
    return getattr(adapter, name)
