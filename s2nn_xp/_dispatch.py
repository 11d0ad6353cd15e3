"""Picks the framework adapter's version of a public function for an array.

The rule, for every public function: if ``x`` is an array of a backend whose
registry record (:mod:`s2nn_xp._backends`) lists the function in
``implements``, call that adapter's function of the same name; otherwise the
caller runs the array-API math. An autodiff framework's adapter implements
``s2nn`` to attach the surrogate derivatives; an adapter implements the other
public functions where it computes them its own way (compiled, or fused
kernels). An adapter is imported only when an array of its library arrives.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ._backends import of_array
from ._validation import check_namespace

__all__ = ["adapter_for", "implementation"]

_loaded: dict[str, ModuleType] = {}


def _load(module: str) -> ModuleType:
    """Import an adapter once; later calls are a dict lookup (compile-friendly)."""
    adapter = _loaded.get(module)
    if adapter is None:
        adapter = _loaded[module] = importlib.import_module(module)
    return adapter


def adapter_for(x: Any) -> ModuleType | None:
    """The adapter module for `x`'s library, or None where the math serves."""
    backend = of_array(x)
    if backend is None or backend.adapter is None:
        return None
    return _load(backend.adapter)


def implementation(
    name: str, x: Any, xp: ModuleType | None = None
) -> Callable[..., Any] | None:
    """The adapter's version of the public function `name` for `x`, if any.

    A given `xp` is checked against `x` first, as the array-API path checks
    it: an adapter takes no namespace, and must not ignore a wrong one.
    """
    backend = of_array(x)
    if backend is None or backend.adapter is None or name not in backend.implements:
        return None
    if xp is not None:
        check_namespace(xp, x)
    function: Callable[..., Any] = getattr(_load(backend.adapter), name)
    return function
