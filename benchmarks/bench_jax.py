"""JAX benchmark: s2nn_xp.jax.s2nn against braintools.surrogate.S2NN.

Times, on the same arrays in the same run, the median of repeated calls after
warm-up (each call waited for with ``block_until_ready``; the cases take turns
within every repeat, so a noisy neighbour hurts them alike):

* ``floor``: a copy of ``x`` plus ``x * g`` (each timed on its own, then
  added), the memory floor the issue names: the bytes a fused forward and
  backward cannot avoid moving;
* ``jit fwd+bwd``: under :func:`jax.jit`, the spike and the input gradient from
  one call, ``jax.vjp(spike, x)`` then the pullback of the cotangent ``g``;
* ``eager fwd+bwd``: the same without ``jit`` (op by op, as in a notebook);
* ``eager forward``: an inference call without ``jit``.

Run ``python benchmarks/bench_jax.py --help`` for options; ``--size`` is the
number of elements (default 2**22), float32.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import s2nn_xp.jax

try:
    import braintools.surrogate as braintools_surrogate
except ImportError:  # the comparison needs braintools; the floor does not
    braintools_surrogate = None


def fwd_bwd(spike: Callable) -> Callable:
    """``(x, g) -> (spike(x), g * d spike / dx)`` through :func:`jax.vjp`."""

    def run(x: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        y, pullback = jax.vjp(spike, x)
        (dx,) = pullback(g)
        return y, dx

    return run


def cases(ours: Callable, theirs: Callable | None) -> dict[str, Callable]:
    """Benchmark case name -> function of ``(x, g)``."""
    table = {
        "floor: copy": jax.jit(lambda x, g: jnp.copy(x)),
        "floor: x * g": jax.jit(lambda x, g: x * g),
        "jit fwd+bwd s2nn_xp": jax.jit(fwd_bwd(ours)),
        "eager fwd+bwd s2nn_xp": fwd_bwd(ours),
        "eager forward s2nn_xp": lambda x, g: ours(x),
    }
    if theirs is not None:
        table["jit fwd+bwd braintools"] = jax.jit(fwd_bwd(theirs))
        table["eager fwd+bwd braintools"] = fwd_bwd(theirs)
        table["eager forward braintools"] = lambda x, g: theirs(x)
    return table


def medians(
    table: dict[str, Callable], args: tuple, repeats: int, warmup: int
) -> dict[str, float]:
    """Median seconds of each case, the cases taking turns in every repeat."""
    for fn in table.values():
        for _ in range(warmup):
            jax.block_until_ready(fn(*args))
    times: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(repeats):
        for name, fn in table.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def check_agreement(table: dict[str, Callable], args: tuple) -> None:
    """The compared functions give the same spikes and input gradients."""
    ours = table["jit fwd+bwd s2nn_xp"](*args)
    for name in ("eager fwd+bwd s2nn_xp", "jit fwd+bwd braintools"):
        if name in table:
            for a, b in zip(ours, table[name](*args), strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)


def report(result: dict[str, float], size: int, itemsize: int) -> None:
    floor = result["floor: copy"] + result["floor: x * g"]
    print(f"{'case':28} {'median ms':>10} {'x floor':>8} {'x braintools':>13}")
    print(f"{'floor: copy + x * g':28} {floor * 1e3:10.3f} {1.0:8.2f}")
    for name, seconds in result.items():
        other = name.replace("s2nn_xp", "braintools")
        versus = ""
        if name.endswith("s2nn_xp") and other in result:
            versus = f"{seconds / result[other]:13.2f}"
        print(f"{name:28} {seconds * 1e3:10.3f} {seconds / floor:8.2f} {versus}")
    gigabytes = 4 * size * itemsize / 1e9  # read x and g, write y and dx
    rate = gigabytes / result["jit fwd+bwd s2nn_xp"]
    print(f"jit fwd+bwd s2nn_xp moves {gigabytes:.3f} GB: {rate:.1f} GB/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2**22, help="elements")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    keys = jax.random.split(jax.random.key(0))
    x = jax.random.normal(keys[0], (args.size,), jnp.float32) * 3
    g = jax.random.normal(keys[1], (args.size,), jnp.float32)
    theirs = braintools_surrogate.S2NN() if braintools_surrogate else None
    table = cases(s2nn_xp.jax.s2nn, theirs)
    check_agreement(table, (x, g))

    device = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}); "
        f"{args.size} float32 elements; medians of {args.repeats} runs "
        f"after {args.warmup} warm-up calls"
    )
    if theirs is None:
        print("braintools is not installed: no comparison")
    report(medians(table, (x, g), args.repeats, args.warmup), args.size, 4)


if __name__ == "__main__":
    main()
