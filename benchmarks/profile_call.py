"""Where the host time of one eager call goes: cProfile of repeated calls.

Per-call cost is the figure that decides small layers (2**16 values on a GPU
took 681 us for an eager PyTorch forward+backward on an H200, against a
54 us floor). This profiles, for each framework installed, repeated calls
at one size on its first GPU (else the CPU) and prints the functions that
take the most cumulative time:

* PyTorch: ``s2nn_xp.torch.s2nn`` forward and backward (``y.backward(g)``),
  and the same through a module with learnable per-neuron parameters;
* JAX: ``s2nn_xp.jax.gradient`` (an eager public function), waited for.

``.ci/gpu-check`` runs it on the GPU machine. Run
``python benchmarks/profile_call.py --help`` for options.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib.util
import io
import pstats
from collections.abc import Callable

from s2nn_xp._timing import median_seconds


def _torch_call(
    size: int, *, learnable: bool = False
) -> tuple[str, Callable[[], object]]:
    import torch

    import s2nn_xp.torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = torch.randn(size, device=device, requires_grad=True)
    g = torch.randn(size, device=device)
    spike: Callable[[torch.Tensor], torch.Tensor] = s2nn_xp.torch.s2nn
    if learnable:
        spike = s2nn_xp.torch.S2NN(
            alpha=torch.full((size,), 4.0, device=device),
            beta=torch.full((size,), 1.0, device=device),
            learnable=True,
        )

    def call() -> object:
        spike(x).backward(g)
        if device == "cuda":
            torch.cuda.synchronize()
        return x.grad

    kind = "learnable forward+backward" if learnable else "forward+backward"
    return f"torch {kind} on {device}", call


def _jax_call(size: int) -> tuple[str, Callable[[], object]]:
    import jax
    import jax.numpy as jnp

    import s2nn_xp.jax

    x = jax.device_put(jnp.linspace(-3.0, 3.0, size), jax.devices()[0])

    def call() -> object:
        return s2nn_xp.jax.gradient(x).block_until_ready()

    return f"jax gradient on {jax.devices()[0]}", call


_CALLS: dict[str, Callable[[int], tuple[str, Callable[[], object]]]] = {
    "torch": _torch_call,
    "torch-learnable": functools.partial(_torch_call, learnable=True),
    "jax": _jax_call,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2**16, help="values per call")
    parser.add_argument("--calls", type=int, default=300, help="calls profiled")
    parser.add_argument("--top", type=int, default=25, help="functions listed")
    parser.add_argument(
        "--framework", nargs="+", choices=sorted(_CALLS), default=sorted(_CALLS)
    )
    arguments = parser.parse_args(argv)
    for module in arguments.framework:
        make = _CALLS[module]
        library = module.split("-")[0]
        if importlib.util.find_spec(library) is None:
            print(f"{library}: not installed")
            continue
        title, call = make(arguments.size)
        # compiled, cached, warm; then the median call, unprofiled
        unprofiled = median_seconds({title: call}, arguments.calls, warmup=20)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(arguments.calls):
            call()
        profile.disable()
        report = io.StringIO()
        stats = pstats.Stats(profile, stream=report).sort_stats("cumulative")
        stats.print_stats(arguments.top)
        per_call = stats.total_tt / arguments.calls * 1e6  # type: ignore[attr-defined]
        print(
            f"== {title}, {arguments.size} values: {unprofiled[title] * 1e6:.1f} us"
            " a call (median),"
            f" {per_call:.1f} us under the profiler (which slows Python calls)"
        )
        print(report.getvalue())


if __name__ == "__main__":
    main()
