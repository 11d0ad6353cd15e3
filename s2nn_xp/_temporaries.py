"""Temporaries that the eager kernels keep from call to call, per thread.

The NumPy and PyTorch eager kernels compute into a few temporaries of up to
a cache block each (a *workspace*). A fresh array that size is memory that
glibc maps when it is allocated and unmaps when it is freed, so a call that
allocated its temporaries faulted their pages in again at every call: at
2^20 float32 values about 1,900 page faults a call in PyTorch, which cost
more than the arithmetic (``gradient`` 4.7 ms, 2.0 ms with kept ones). So
each thread keeps its workspaces (threads never share temporaries), at most
a few cache blocks for each kind of kernel and dtype.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

__all__ = ["Kept"]


class Kept(threading.local):
    """Workspaces of the thread using it, one per key, lent one call at a time."""

    def __init__(self) -> None:
        self._free: dict[Hashable, list[Any]] = {}

    @contextlib.contextmanager
    def lend(
        self,
        key: Hashable,
        elements: int,
        make: Callable[[int], list[Any]],
        *,
        keepable: Callable[[list[Any]], bool] | None = None,
    ) -> Iterator[list[Any]]:
        """The kept workspace of ``key``, of at least ``elements`` values each.

        ``make(elements)`` makes one where none is kept or the kept one is
        smaller. Lent by taking it out: a call nested in the one that holds
        it (Python code that an operation of the kernels runs, a subclass's
        or a mode's) finds none and makes its own. ``keepable`` says whether
        one just made may be kept (not, for instance, one of fake tensors).
        """
        keep = True
        scratch = self._free.pop(key, None)
        if scratch is None or scratch[0].shape[0] < elements:
            scratch = make(elements)
            keep = keepable is None or keepable(scratch)
        try:
            yield scratch
        finally:
            if keep:
                self._free[key] = scratch
