"""Picks the framework adapter's version of a public function for an array.

The rule, for every public function: if ``x`` is an array of a backend whose
registry record (:mod:`s2nn_xp._backends`) lists the function in
``implements``, call that adapter's function of the same name; otherwise the
caller runs the array-API math. An autodiff framework's adapter implements
``s2nn`` to attach the surrogate derivatives; an adapter implements the other
public functions where it computes them its own way (compiled, or fused
kernels). An adapter is imported when an array of its library first
arrives, or, where the registry says so, as soon as its library is imported
(:func:`import_adapters_with_their_libraries`).
"""

from __future__ import annotations

import functools
import importlib
import importlib._bootstrap
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import _after_import, _compat
from ._backends import BACKENDS, of_array, of_namespace, older_than_supported
from ._validation import check_namespace, is_host_data

__all__ = ["adapter_for", "implementation", "import_adapters_with_their_libraries"]

_loaded: dict[str, ModuleType] = {}


def _load(module: str) -> ModuleType:
    """Import an adapter once; later calls are a dict lookup (compile-friendly)."""
    adapter = _loaded.get(module)
    if adapter is None:
        adapter = _loaded[module] = importlib.import_module(module)
    return adapter


def import_adapters_with_their_libraries() -> None:
    """Import each ``adapter_with_library`` adapter when its library is imported.

    ``torch.compile`` cannot import a module while it traces a call, so a
    compiled function that is the first to give a tensor to a public
    function would fail (``fullgraph=True``) or break its graph there for
    good; with the adapter imported beside PyTorch, :func:`_load` finds it.
    """
    for backend in BACKENDS.values():
        if backend.adapter is not None and backend.adapter_with_library:
            _after_import.when_imported(
                backend.module.partition(".")[0],
                functools.partial(_load_supported, backend.name, backend.adapter),
                f"import {backend.adapter}",
            )


# Python's error for an import that would wait for a thread waiting for it
# (a private class; none where an interpreter has no such error).
_IMPORT_DEADLOCK: tuple[type[BaseException], ...] = tuple(
    filter(None, [getattr(importlib._bootstrap, "_DeadlockError", None)])
)


def _load_supported(name: str, adapter: str) -> None:
    """Import ``adapter`` where backend ``name``'s library is a version it supports.

    Where it is older, the user's import of the library (and of s2nn_xp,
    after it) goes on without a word, as for a user who never gives it an
    array: the adapter refuses it, saying why, when an array arrives. Where
    another thread is importing the adapter, waiting for the library's
    import that runs this, Python refuses the import here: that thread
    completes it, so nothing is said (it was a warning, which
    ``-W error`` raised in the user's ``import torch``).
    """
    if older_than_supported(name) is None:
        try:
            _load(adapter)
        except _IMPORT_DEADLOCK:
            if adapter not in sys.modules:  # no other thread is importing it
                raise


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
    it: an adapter takes no namespace, and must not ignore a wrong one. Host
    data (numbers, lists) with a given `xp` goes to `xp`'s adapter, which
    converts it by its own rules (JAX's, for instance, promotes integers in
    NumPy first), as it would without `xp`.
    """
    backend = of_array(x)
    if backend is None:  # a wrapper of a JAX array goes where the array goes
        unwrapped = _compat.stood_for(x)
        if unwrapped is not x:
            x = unwrapped
            backend = of_array(x)
    host = xp is not None and is_host_data(x)
    if host:
        backend = of_namespace(check_namespace(xp, x))
    if backend is None or backend.adapter is None or name not in backend.implements:
        return None
    if xp is not None and not host:  # checked above for host data
        check_namespace(xp, x)
    function: Callable[..., Any] = getattr(_load(backend.adapter), name)
    return function
