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


def adapter_for(x: Any) -> ModuleType | None:
    """The adapter module for `x`'s library, or None where the math serves."""
    for is_library_array, module in _ADAPTERS:
        if is_library_array(x):
            return importlib.import_module(module)
    return None


def implementation(name: str, x: Any) -> Callable[..., Any] | None:
    """The adapter's version of the public function `name` for `x`, if any."""
    adapter = adapter_for(x)
    if adapter is None or name not in adapter.DISPATCHED:
        return None
    return getattr(adapter, name)
