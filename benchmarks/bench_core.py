"""NumPy benchmark of the array-API math against the memory floor.

Times, at each size and dtype, the median of repeated calls after warm-up:

* ``floor``: ``np.multiply(x, g)``, the bandwidth floor (read two arrays,
  write one), measured in the same run;
* ``naive``: the unguarded textbook formula
  ``where(x < 0, a*s*(1-s), b/(x+1))`` with ``s = 1/(1+exp(-a*x))`` (wrong at
  ``x <= -1`` only in untaken lanes, but NaN-unsafe and warning-prone);
* ``guarded_where``: the straightforward safe version, inputs of both branches
  guarded with ``where`` before use, then selected with ``where``;
* ``s2nn_xp.gradient``, ``s2nn_xp.origin``, ``s2nn_xp.forward`` and the
  ``s2nn_xp.vjp`` round trip (spike plus pullback).

Run ``python benchmarks/bench_core.py --help`` for options.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import s2nn_xp

A, B = 4.0, 1.0


def naive(x):
    s = 1 / (1 + np.exp(-A * x))
    return np.where(x < 0, A * s * (1 - s), B / (x + 1))


def guarded_where(x):
    negative = x < 0
    left_x = np.where(negative, x, 0)
    s = 1 / (1 + np.exp(-A * left_x))
    right_x = np.where(negative, 0, x)
    return np.where(negative, A * s * (1 - s), B / (right_x + 1))


def vjp_round_trip(x, g):
    y, pullback = s2nn_xp.vjp(x)
    return y, pullback(g)


def median_seconds(fn, args, repeats: int) -> float:
    fn(*args)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2-size", type=int, nargs="+", default=[22])
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}; medians of {args.repeats} runs after warm-up")
    print(f"{'dtype':8} {'size':>6} {'case':18} {'median ms':>10} {'x floor':>8}")
    for log2 in args.log2_size:
        for dtype in args.dtype:
            x = (rng.standard_normal(2**log2) * 3).astype(dtype)
            g = np.ones_like(x)
            cases = {
                "floor x*g": lambda x, g: np.multiply(x, g),
                "naive": lambda x, g: naive(x),
                "guarded_where": lambda x, g: guarded_where(x),
                "gradient": lambda x, g: s2nn_xp.gradient(x),
                "origin": lambda x, g: s2nn_xp.origin(x),
                "forward": lambda x, g: s2nn_xp.forward(x),
                "vjp (fwd+bwd)": vjp_round_trip,
            }
            floor = None
            for name, fn in cases.items():
                with np.errstate(all="ignore"):
                    seconds = median_seconds(fn, (x, g), args.repeats)
                floor = floor or seconds
                print(
                    f"{dtype:8} 2^{log2:<4} {name:18} {seconds * 1e3:10.3f} "
                    f"{seconds / floor:8.2f}"
                )


if __name__ == "__main__":
    main()
