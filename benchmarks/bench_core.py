"""NumPy benchmark of the array-API math against the memory floor.

Times, at each size and dtype, the median of repeated calls after warm-up,
the cases taking turns (:mod:`s2nn_xp._timing`, as ``s2nn-xp bench``):

* the floors, timed in the same run (:data:`s2nn_xp._timing.FLOORS`): the
  faster of ``copy`` and ``-x`` (read one array, write one), the floor of the
  one-array cases, and of ``copy`` + ``x*g`` and the two in one call (read
  two, write two), that of the ``vjp`` round trip;
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
from collections.abc import Callable

import numpy as np

import s2nn_xp
from s2nn_xp._cli import script_arguments, size_label
from s2nn_xp._timing import ONE_ARRAY, ROUND_TRIP, floor_cases, floor_of, median_seconds

A, B = 4.0, 1.0
DTYPES = ("float32", "float64")


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


def cases(x, g) -> dict[str, tuple[Callable[[], object], str]]:
    """Case name -> (call, its memory floor)."""
    return {
        "naive": (lambda: naive(x), ONE_ARRAY),
        "guarded_where": (lambda: guarded_where(x), ONE_ARRAY),
        "gradient": (lambda: s2nn_xp.gradient(x), ONE_ARRAY),
        "origin": (lambda: s2nn_xp.origin(x), ONE_ARRAY),
        "forward": (lambda: s2nn_xp.forward(x), ONE_ARRAY),
        "vjp (fwd+bwd)": (lambda: vjp_round_trip(x, g), ROUND_TRIP),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # s2nn-xp bench's options (sizes as 8192 or 2^22), by its rules
    args = script_arguments(
        parser, argv, [2**22], DTYPES, repeats=21, known_dtypes=DTYPES
    )
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}; medians of {args.repeats} runs after warm-up")
    print(f"{'dtype':8} {'size':>6} {'case':18} {'median ms':>10} {'x floor':>8}")
    for size in args.size:
        for dtype in args.dtype:
            x = (rng.standard_normal(size) * 3).astype(dtype)
            g = np.ones_like(x)
            timed = cases(x, g)
            calls = {name: call for name, (call, _) in timed.items()}
            with np.errstate(all="ignore"):  # the naive formula overflows
                seconds = median_seconds({**floor_cases(x, g), **calls}, args.repeats)
            for name, (_, floor) in timed.items():
                print(
                    f"{dtype:8} {size_label(size):>6} {name:18} "
                    f"{seconds[name] * 1e3:10.3f} "
                    f"{seconds[name] / floor_of(seconds, floor):8.2f}"
                )


if __name__ == "__main__":
    main()
