"""CuPy benchmark of the fused S2NN kernels against the memory floor.

Needs a CUDA GPU and CuPy. At each size (default 2**16 and 2**28 elements)
and dtype (default float32), times with ``cupyx.profiler.benchmark`` (the
median of GPU times taken with CUDA events, and the median host time per
call):

* the floors, measured in the same run on the same bytes: ``copy``
  (``cupy.copyto``: read one array, write one) and ``multiply``
  (``cupy.multiply(x, g, out=...)``: read two, write one);
* every kernel of :mod:`s2nn_xp.cupy` with preallocated outputs: forward,
  origin, gradient, forward_and_gradient, vjp (spike and stored gradient) and
  its pullback; the gradient also through its elementwise path (an array
  ``alpha`` forces it), through the public ``s2nn_xp.gradient`` (dispatch and
  allocation included), and as the chain of CuPy ufuncs that the array-API
  math makes (``s2nn_xp._math.gradient`` on CuPy arrays).

``floor x`` is a kernel's median GPU time over the floor's time for the same
bytes (copy's bandwidth for kernels that touch two arrays, multiply's for
three); the goal at 2**28 is at most 1.1. ``burst us`` is the wall time per
call over a burst of back-to-back calls (launch-bound at 2**16, where the goal
is no more than one ufunc's, the ``multiply`` row). ``--sweep`` times the
contiguous kernels at the largest size for other launch configurations
(threads per block x 16-byte chunks per thread), set through the adapter's
private ``_LAUNCH`` constant. A kernel that cannot run makes the adapter
compute with the array-API math and warn (``s2nn_xp._fused``); here that
warning is an error, so that no figure times the fallback as a kernel.

Run ``python benchmarks/bench_cupy.py --help`` for options; ``--json FILE``
saves the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import s2nn_xp
from s2nn_xp import _backends, _math
from s2nn_xp._cli import (
    script_arguments,
    script_needs,
    size_label,
    writable_file,
    write_output,
)

try:
    import array_api_compat.cupy as cupy_namespace
    import cupy
    from cupyx.profiler import benchmark

    import s2nn_xp.cupy as s2nn_cupy
except ImportError as exc:  # --help included: one line, not a traceback
    script_needs("CuPy", exc)
from s2nn_xp._fused import FusedKernelWarning
from s2nn_xp._timing import median_seconds

A, B, EPS = 4.0, 1.0, 1e-8
DTYPES = _backends.get("cupy").dtypes
BURST = 200


def gpu_and_host_medians(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median GPU seconds (CUDA events) and median host seconds per call."""
    result = benchmark(fn, (), n_repeat=repeat, n_warmup=max(3, repeat // 10))
    return float(np.median(result.gpu_times[0])), float(np.median(result.cpu_times))


def burst_seconds(fn: Callable[[], Any], calls: int = BURST) -> float:
    """Wall seconds per call over ``calls`` back-to-back calls, then a sync."""

    def burst() -> None:
        for _ in range(calls):
            fn()

    def synchronize(result: None) -> None:
        cupy.cuda.get_current_stream().synchronize()

    seconds = median_seconds({"burst": burst}, 5, synchronize=synchronize, warmup=1)
    return seconds["burst"] / calls


def cases(x, g, dtype) -> dict[str, tuple[Callable[[], Any], int, int]]:
    """name -> (call, bytes moved, arrays touched)."""
    n, size = x.size, x.dtype.itemsize
    compute = 4 if dtype == "float16" else size
    out, out2 = cupy.empty_like(x), cupy.empty_like(x)
    _, pullback = s2nn_cupy.vjp(x)
    alpha_array = cupy.asarray(A, dtype=s2nn_cupy._FLOAT_COMPUTE[x.dtype])
    x_compute = x.astype(alpha_array.dtype)
    return {
        "copy": (lambda: cupy.copyto(out, x), 2 * n * size, 2),
        "multiply": (lambda: cupy.multiply(x, g, out=out), 3 * n * size, 3),
        "forward": (lambda: s2nn_cupy.forward(x, out=out), 2 * n * size, 2),
        "origin": (lambda: s2nn_cupy.origin(x, A, B, EPS, out=out), 2 * n * size, 2),
        "gradient": (lambda: s2nn_cupy.gradient(x, A, B, out=out), 2 * n * size, 2),
        "forward_and_gradient": (
            lambda: s2nn_cupy.forward_and_gradient(x, A, B, out=(out, out2)),
            3 * n * size,
            3,
        ),
        "vjp (spike + gradient)": (
            lambda: s2nn_cupy.vjp(x, A, B, EPS),
            n * (2 * size + compute),
            3,
        ),
        "pullback": (lambda: pullback(g, out=out), n * (2 * size + compute), 3),
        "gradient, elementwise path": (
            lambda: s2nn_cupy.gradient(x, alpha_array, B, out=out),
            2 * n * size,
            2,
        ),
        "s2nn_xp.gradient (public)": (
            lambda: s2nn_xp.gradient(x, A, B),
            2 * n * size,
            2,
        ),
        "ufunc chain (array-API math)": (
            lambda: _math.gradient(cupy_namespace, x_compute, A, B),
            2 * n * size,
            2,
        ),
    }


def check_paths_agree(dtype: str) -> None:
    """The contiguous and elementwise kernels agree (no timing of wrong code)."""
    x = cupy.asarray(np.random.default_rng(0).normal(scale=3, size=4099), dtype=dtype)
    strided = cupy.repeat(x, 2)[::2]
    for name in ("forward", "origin", "gradient"):
        fn = getattr(s2nn_cupy, name)
        cupy.testing.assert_array_equal(fn(x), fn(strided))


def run_size(n: int, dtype: str, repeat: int) -> list[dict[str, Any]]:
    rng = cupy.random.default_rng(0)
    x = (rng.standard_normal(n, dtype=cupy.float32) * 3).astype(dtype)
    g = rng.standard_normal(n, dtype=cupy.float32).astype(dtype)
    rows, bandwidth = [], {}
    for name, (fn, nbytes, arrays) in cases(x, g, dtype).items():
        gpu, host = gpu_and_host_medians(fn, repeat)
        if name in ("copy", "multiply"):
            bandwidth[arrays] = nbytes / gpu
        rows.append(
            {
                "size": size_label(n),
                "dtype": dtype,
                "case": name,
                "gpu_us": gpu * 1e6,
                "host_us": host * 1e6,
                "burst_us": burst_seconds(fn) * 1e6 if n <= 2**20 else None,
                "GB/s": nbytes / gpu / 1e9,
                "floor_x": gpu / (nbytes / bandwidth[arrays]),
            }
        )
    del x, g
    cupy.get_default_memory_pool().free_all_blocks()
    return rows


def sweep(n: int, repeat: int) -> list[dict[str, Any]]:
    """Contiguous kernels (float32) under other launch configurations."""
    rng = cupy.random.default_rng(0)
    x = rng.standard_normal(n, dtype=cupy.float32) * 3
    g = rng.standard_normal(n, dtype=cupy.float32)
    out, out2 = cupy.empty_like(x), cupy.empty_like(x)
    copy_gpu, _ = gpu_and_host_medians(lambda: cupy.copyto(out, x), repeat)
    mul_gpu, _ = gpu_and_host_medians(lambda: cupy.multiply(x, g, out=out), repeat)
    rows = []
    default = s2nn_cupy._LAUNCH
    try:
        for block in (128, 256, 512):
            for chunks in (1, 2, 4, 8):
                # the adapter's launch configuration, a private module constant
                s2nn_cupy._LAUNCH = s2nn_cupy._LaunchConfiguration(block, chunks)
                _, pullback = s2nn_cupy.vjp(x)
                timed = {
                    "gradient": (
                        lambda: s2nn_cupy.gradient(x, out=out),
                        copy_gpu,
                    ),
                    "forward_and_gradient": (
                        lambda: s2nn_cupy.forward_and_gradient(x, out=(out, out2)),
                        mul_gpu,
                    ),
                    "pullback": (lambda: pullback(g, out=out), mul_gpu),  # noqa: B023
                }
                for name, (fn, floor) in timed.items():
                    gpu, _ = gpu_and_host_medians(fn, repeat)
                    rows.append(
                        {
                            "block": block,
                            "chunks_per_thread": chunks,
                            "case": name,
                            "gpu_us": gpu * 1e6,
                            "floor_x": gpu / floor,
                        }
                    )
    finally:
        s2nn_cupy._LAUNCH = default
    return rows


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def show(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if value < 100 else f"{value:.0f}"
        return str(value)

    table = [columns] + [[show(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--json", type=writable_file, help="save the rows to this file")
    # s2nn-xp bench's options (sizes as 8192 or 2^16), by its rules
    args = script_arguments(
        parser,
        argv,
        [2**16, 2**28],
        ["float32"],
        repeats=50,
        known_dtypes=DTYPES,
        host_memory=False,  # the arrays live on the GPU
    )
    # time kernels, never the array-API math that stands in for a failed one
    warnings.filterwarnings("error", category=FusedKernelWarning)

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    print(
        f"{props['name'].decode()}, {props['multiProcessorCount']} SMs; "
        f"CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"
        f"; Python {sys.version.split()[0]}"
    )
    for dtype in args.dtype:
        check_paths_agree(dtype)
    rows = []
    for dtype in args.dtype:
        for size in args.size:
            rows += run_size(size, dtype, args.repeats)
    columns = ["size", "dtype", "case", "gpu_us", "host_us", "burst_us", "GB/s"]
    print_table(rows, [*columns, "floor_x"])
    result = {"rows": rows}
    if args.sweep:
        sweep_rows = sweep(max(args.size), args.repeats)
        print(f"\nlaunch configurations, float32, {size_label(max(args.size))}:")
        print_table(
            sweep_rows, ["block", "chunks_per_thread", "case", "gpu_us", "floor_x"]
        )
        result["sweep"] = sweep_rows
    if args.json:
        write_output(args.json, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
