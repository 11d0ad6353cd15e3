"""The fused Triton kernels timed on a GPU: launch configurations and parts.

What a GPU run has to answer about the kernels of ``s2nn_xp._triton``, in one
table, each time beside the memory floor of the same bytes timed in the same
run (``s2nn_xp._timing``):

* which block size and number of warps each elementwise kernel runs fastest
  with (the package launches every one with ``_BLOCK`` values a program and
  ``COMPILE_OPTIONS``' warps);
* what the learnable backward costs beside the fixed one, for a batch of
  rows x neurons at the full size and at layer sizes (2^16, 2^20): with
  both parameters' terms, with ``x``'s term alone, and run as one program
  along the rows, which leaves no column sums to reduce (learnable / fixed
  forward+backward was 2.3x at 2^28 values on an H200 and about 1.55x at
  2^16 and 2^20, where the host's launches decide);
* the host's time of one launch, not waited for (per-call cost): the
  package's (a kernel compiled before is called directly) beside Triton's
  own launch of the same kernel.

``.ci/gpu-check`` runs it. Without a GPU it times nothing, unless Triton's
interpreter is on (``TRITON_INTERPRET=1``, on the CPU: the tests' dry run, at
a small size). Run ``python benchmarks/kernel_configs.py --help`` for options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from s2nn_xp._cli import LEARNABLE_BATCH, parse_repeats, parse_size
from s2nn_xp._timing import ONE_ARRAY, floor_cases, floor_of, median_seconds


def _inputs(size: int, device: str) -> tuple[Any, Any]:
    import torch

    generator = torch.Generator(device).manual_seed(0)
    x = torch.randn(size, device=device, generator=generator)
    return x, torch.randn(size, device=device, generator=generator)


def _config_cases(
    size: int, blocks: list[int], warps: list[int], device: str
) -> tuple[dict[str, Callable[[], Any]], dict[str, str]]:
    """Each elementwise kernel at each launch configuration, and its floors."""
    import torch

    from s2nn_xp import _triton

    x, g = _inputs(size, device)
    cases: dict[str, Callable[[], Any]] = dict(floor_cases(x, g))
    floors: dict[str, str] = {}
    libdevice = not _triton.INTERPRETED
    for block in blocks:
        for count in warps:
            grid = (_triton._ceil_div(size, block),)
            launch = {
                "use_libdevice": libdevice,
                "block": block,
                **_triton.COMPILE_OPTIONS,
                "num_warps": count,
            }

            def forward(
                origin: bool, launch: dict[str, Any] = launch, grid: Any = grid
            ) -> Any:
                y = torch.empty_like(x)
                kernel = _triton._spike_kernel[grid]
                kernel(x, y, size, 4.0, 1.0, 1e-8, with_origin=origin, **launch)
                return y

            def backward(launch: dict[str, Any] = launch, grid: Any = grid) -> Any:
                out = torch.empty_like(x)
                kernel = _triton._spike_vjp_kernel[grid]
                kernel(g, x, out, size, 4.0, 1.0, with_cotangent=True, **launch)
                return out

            config = f"block {block}, {count} warps"
            cases[f"forward, {config}"] = lambda f=forward: f(False)
            cases[f"origin, {config}"] = lambda f=forward: f(True)
            cases[f"backward, {config}"] = backward
            floors[f"forward, {config}"] = floors[f"origin, {config}"] = ONE_ARRAY
            floors[f"backward, {config}"] = "x*g"
    return cases, floors


def _one_row_program(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` with the learnable kernel run as one program along the rows.

    Its column sums are then the result: no reduction to launch, where the
    host's launches, not the GPU, decide the time of a layer's call.
    """
    from s2nn_xp import _triton

    def run() -> Any:
        saved = _triton._ROW_PROGRAMS
        _triton._ROW_PROGRAMS = 1
        try:
            return call()
        finally:
            _triton._ROW_PROGRAMS = saved

    return run


def _layer_cases(
    size: int, rows: int, device: str
) -> tuple[dict[str, Callable[[], Any]], dict[str, str]]:
    """The backward of a batch of rows x neurons: fixed, and learnable in parts."""
    import torch

    from s2nn_xp import _triton

    x, g = _inputs(size, device)
    x, g = x.view(rows, -1), g.view(rows, -1)
    alpha, beta = torch.full_like(x[0], 4.0), torch.full_like(x[0], 1.0)

    def learnable(with_alpha: bool, with_beta: bool) -> Any:
        return _triton.cotangents(
            g,
            x,
            alpha,
            beta,
            1e-8,
            with_x=True,
            with_alpha=with_alpha,
            with_beta=with_beta,
        )

    shape = f"{rows} x {size // rows}"
    floor = f"x*g {shape}"
    cases = {
        floor: floor_cases(x, g)["x*g"],
        f"backward {shape}, fixed": lambda: _triton.spike_vjp(g, x, 4.0, 1.0),
        f"backward {shape}, learnable": lambda: learnable(True, True),
        f"backward {shape}, learnable, one row program": _one_row_program(
            lambda: learnable(True, True)
        ),
        f"backward {shape}, learnable, x's term only": lambda: learnable(False, False),
    }
    return cases, dict.fromkeys(list(cases)[1:], floor)


def _host_launch(device: str) -> dict[str, float]:
    """Median host seconds of one backward launch of 1,024 values, not waited for.

    The package's launch (the compiled kernel called directly where
    ``_triton.DIRECT_LAUNCH``), and the same through Triton's own launch
    (``JITFunction.run``), taking turns.
    """
    import torch

    from s2nn_xp import _triton

    x = torch.randn(1024, device=device)
    g = torch.randn_like(x)
    direct = _triton.DIRECT_LAUNCH

    def through_triton() -> Any:
        _triton.DIRECT_LAUNCH = False
        try:
            return _triton.spike_vjp(g, x, 4.0, 1.0)
        finally:
            _triton.DIRECT_LAUNCH = direct

    seconds = median_seconds(
        {
            "host: one backward launch of 1,024 values": lambda: _triton.spike_vjp(
                g, x, 4.0, 1.0
            ),
            "host: the same through Triton's launch": through_triton,
        },
        repeats=200,
        warmup=20,
    )
    if device == "cuda":
        torch.cuda.synchronize()
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--size", type=parse_size, default=2**28, help="values (default 2^28)"
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=LEARNABLE_BATCH,
        help=f"rows of the learnable batch (default {LEARNABLE_BATCH}, as the bench's)",
    )
    parser.add_argument(
        "--layers",
        type=parse_size,
        nargs="*",
        default=[2**16, 2**20],
        help="sizes of the learnable backward's host-bound rows (default 2^16 2^20)",
    )
    parser.add_argument("--blocks", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8])
    parser.add_argument(
        "--repeats", type=parse_repeats, default=9, help="timed calls a case"
    )
    arguments = parser.parse_args(argv)
    from s2nn_xp import _triton

    if not _triton.AVAILABLE:
        print("Triton is not installed: nothing to time")
        return
    import torch

    if not (torch.cuda.is_available() or _triton.INTERPRETED):
        print("no CUDA device, and Triton's interpreter is off: nothing to time")
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cases, floors = _config_cases(
        arguments.size, arguments.blocks, arguments.warps, device
    )
    for size in (arguments.size, *arguments.layers):
        layer_cases, layer_floors = _layer_cases(size, arguments.rows, device)
        cases.update(layer_cases)
        floors.update(layer_floors)

    def wait(result: Any) -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    seconds = median_seconds(cases, arguments.repeats, synchronize=wait)
    print(f"Triton kernels on {device}, {arguments.size} float32 values")
    print(f"{'case':52s} {'median us':>10s} {'x floor':>8s}")
    for name, floor in floors.items():
        ratio = seconds[name] / floor_of(seconds, floor)
        print(f"{name:52s} {seconds[name] * 1e6:10.1f} {ratio:8.2f}")
    for name, value in _host_launch(device).items():
        print(f"{name:52s} {value * 1e6:10.1f}")
    print(f"floors: one array {ONE_ARRAY}; backward x*g (of the layer's shape)")


if __name__ == "__main__":
    main()
