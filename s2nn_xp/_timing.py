"""How every figure of the project is timed: ``s2nn-xp bench`` and ``benchmarks/``.

A figure is the **median** wall time of repeated calls after warm-up, each
call waited for (a device synchronised, a lazy array computed), the cases
**taking turns** in every repeat so that a burst of load on a shared machine
slows them all alike rather than one case's whole run (in an order shuffled
anew every repeat, so that no case always follows the same one). Each is shown next to
a **memory floor** timed in the same run on the same arrays: the faster of a
copy of ``x`` and ``-x`` (read one array, write one), and of ``x * g`` beside
either (read two, write two), each compiled as the cases are.

Examples
--------
>>> import numpy as np
>>> from s2nn_xp._timing import floor_cases, median_seconds
>>> x = np.linspace(-3.0, 3.0, 1024)
>>> times = median_seconds(floor_cases(x, np.ones_like(x)), repeats=3)
>>> sorted(times)
['-x', '-x, x*g', 'copy', 'x*g']
>>> all(seconds > 0 for seconds in times.values())
True
"""

from __future__ import annotations

import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any

from ._compat import array_namespace, is_cupy_namespace

__all__ = [
    "ONE_ARRAY",
    "ROUND_TRIP",
    "floor_cases",
    "floor_of",
    "median_seconds",
    "peak_bytes",
]

# Floor name -> what it reads and writes, for the tables' captions.
FLOORS = {
    "copy": "a copy of x (read one array, write one)",
    "-x": "-x (the same bytes)",
    "x*g": "x * g (read two arrays, write one)",
    "-x, x*g": "both in one call",
}
# The floor of an op that reads x and writes one array (forward, gradient),
# and of one that also reads the cotangent and writes the spike and the
# gradient (forward and backward): what it cannot avoid moving, timed as
# the fastest of the ways listed ("a | b": the faster; "a + b": both, one
# call after the other). Not a copy alone: XLA's compiled copy on the CPU
# took 1.2-1.3 times -x at 2^24 values, and the public functions came out
# below their "floor"; nor two calls alone, where a case is one compiled
# call (JAX's forward+backward) and dispatch is most of the time.
ONE_ARRAY = "copy | -x"
ROUND_TRIP = "copy + x*g | -x, x*g"


def _no_wait(result: Any) -> None:
    """Eager libraries: the result is there when the call returns."""


def median_seconds(
    cases: Mapping[str, Callable[[], Any]],
    repeats: int,
    *,
    synchronize: Callable[[Any], None] = _no_wait,
    warmup: int = 2,
) -> dict[str, float]:
    """Median wall seconds of each case, the cases taking turns in every repeat.

    Parameters
    ----------
    cases : mapping of str to callable
        Name -> a call without arguments, timed as a whole.
    repeats : int
        Timed calls of each case (at least 1).
    synchronize : callable, optional
        Called with each result inside the timed span, so that a device or a
        lazy array has finished the work when the clock stops.
    warmup : int, default 2
        Untimed calls of each case first (compilation, caches, allocators).

    Returns
    -------
    dict of str to float
        Name -> median seconds, in the order of `cases`.
    """
    if repeats < 1:
        msg = f"repeats must be >= 1, not {repeats}"
        raise ValueError(msg)
    for call in cases.values():
        for _ in range(warmup):
            synchronize(call())
    times: dict[str, list[float]] = {name: [] for name in cases}
    # In a new order every repeat (the same orders every run): a case slows
    # the one after it (caches, the allocator, CPU frequency), and a fixed
    # order gave one case the same neighbour every time (spikingjelly's S2NN,
    # after the learnable case, took 13% longer than alone).
    order, shuffle = list(cases.items()), random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)
        for name, call in order:
            start = time.perf_counter()
            synchronize(call())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_bytes(
    call: Callable[[], Any], synchronize: Callable[[Any], None] = _no_wait
) -> int | None:
    """The most memory one call holds at once, as :mod:`tracemalloc` sees it.

    tracemalloc sees NumPy's allocations (not those of PyTorch, JAX or a
    GPU), the result's included. None where tracemalloc is already tracing
    (the caller's own measurement is left alone).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros(2**16)
    >>> peak_bytes(lambda: x + 1) >= x.nbytes
    True
    """
    if tracemalloc.is_tracing():
        return None
    tracemalloc.start()
    try:
        synchronize(call())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def floor_of(seconds: Mapping[str, float], floor: str) -> float:
    """The time of `floor` (:data:`ONE_ARRAY` or :data:`ROUND_TRIP`) in `seconds`.

    Examples
    --------
    >>> floor_of({"copy": 2.0, "-x": 2.5, "x*g": 3.0, "-x, x*g": 6.0}, ROUND_TRIP)
    5.0
    """
    return min(
        sum(seconds[name] for name in way.split(" + ")) for way in floor.split(" | ")
    )


def floor_cases(
    x: Any,
    cotangent: Any,
    compile: Callable[[Callable[..., Any]], Callable[..., Any]] = lambda f: f,
) -> dict[str, Callable[[], Any]]:
    """The memory floors of :data:`FLOORS` on `x` and `cotangent`, as cases.

    `compile` wraps each floor the way the timed operations run (``jax.jit``
    for JAX), so that a ratio compares like with like.
    """
    xp = array_namespace(x)

    def copy(v: Any) -> Any:
        return xp.asarray(v, copy=True)

    if is_cupy_namespace(xp):
        # A device-to-device memcpy: CuPy's own copy is an elementwise
        # kernel, which moved 1.6 TB/s on an H200 where the project's CuPy
        # kernels moved 3.5, so that they came out at half their "floor".

        def copy(v: Any) -> Any:
            if not v.flags.c_contiguous:  # memory, not values, is copied
                return xp.asarray(v, copy=True)
            result = xp.empty_like(v)
            result.data.copy_from_device_async(v.data, v.nbytes)
            return result

    def negative(v: Any) -> Any:
        return -v

    def scale(v: Any, g: Any) -> Any:
        return v * g

    def negative_and_scale(v: Any, g: Any) -> tuple[Any, Any]:
        return -v, v * g

    copy, negative = compile(copy), compile(negative)
    scale, negative_and_scale = compile(scale), compile(negative_and_scale)
    return {
        "copy": lambda: copy(x),
        "-x": lambda: negative(x),
        "x*g": lambda: scale(x, cotangent),
        "-x, x*g": lambda: negative_and_scale(x, cotangent),
    }
