"""The ``s2nn-xp`` command: ``info``, ``plot`` and ``bench``.

Run ``s2nn-xp --help`` (or ``python -m s2nn_xp --help``) for the subcommands
and ``s2nn-xp SUBCOMMAND --help`` for their options.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__
from ._backends import BACKENDS, Backend, available, get
from ._compat import array_namespace

__all__ = ["main"]

# The seed documentation's figure: gradients for three (alpha, beta) pairs,
# the origin function for the first two.
GRADIENT_PAIRS = ((4.0, 1.0), (8.0, 2.0), (2.0, 0.5))
ORIGIN_PAIRS = ((4.0, 1.0), (8.0, 2.0))
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
KNOWN_DTYPES = ("float16", "bfloat16", "float32", "float64")
OPS = ("forward", "forward+backward", "gradient")


# --- info ----------------------------------------------------------------------


def agreement_grid() -> np.ndarray:
    """The fixed float64 inputs of the cross-backend check, special values too."""
    special = [-np.inf, -1.0, -0.0, 0.0, np.inf, np.nan]
    return np.concatenate([np.linspace(-3.0, 3.0, 61), special])


def check_backend(backend: Backend, alpha: float = 4.0, beta: float = 1.0) -> dict:
    """Compare one backend's results with the float64 NumPy reference.

    Returns
    -------
    dict
        ``{"forward": err, "origin": err, "gradient": err, "autodiff": err,
        "passed": bool}``, each ``err`` the largest relative difference, or
        ``inf`` where NaNs or infinities sit in other places.
    """
    import s2nn_xp

    x_np = agreement_grid()
    reference = {
        "forward": s2nn_xp.forward(x_np),
        "origin": s2nn_xp.origin(x_np, alpha, beta),
        "gradient": s2nn_xp.gradient(x_np, alpha, beta),
    }
    reference["autodiff"] = reference["gradient"]
    x = backend.asarray(x_np)
    results = {
        "forward": s2nn_xp.forward(x),
        "origin": s2nn_xp.origin(x, alpha, beta),
        "gradient": s2nn_xp.gradient(x, alpha, beta),
        "autodiff": backend.autodiff_gradient(x, alpha, beta),
    }
    report: dict[str, Any] = {}
    for name, result in results.items():
        got = backend.to_numpy(result).astype(np.float64)
        report[name] = _relative_error(got, reference[name])
    report["passed"] = all(err <= 1e-12 for err in report.values())
    return report


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    same_special = np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(
        got[np.isinf(want)], want[np.isinf(want)]
    )
    if not same_special or got.shape != want.shape:
        return float("inf")
    finite = np.isfinite(want)
    scale = np.maximum(np.abs(want[finite]), np.finfo(np.float64).tiny)
    diff = np.abs(got[finite] - want[finite]) / scale
    return float(diff.max(initial=0.0))


def run_info(args: argparse.Namespace) -> int:
    """Print installed backends and the cross-backend agreement table."""
    print(f"s2nn_xp {__version__}, Python {sys.version.split()[0]}")
    rows = []
    failed = False
    for backend in BACKENDS.values():
        if not backend.is_installed():
            rows.append((backend.name, "-", "-", backend.autodiff, "not installed"))
            continue
        if not backend.has_device():
            rows.append(
                (
                    backend.name,
                    backend.version(),
                    "none",
                    backend.autodiff,
                    "installed, no device (skipped)",
                )
            )
            continue
        try:
            devices = ", ".join(backend.devices()) or "none"
            report = check_backend(backend)
        except Exception as exc:  # report, never hide, a broken backend
            rows.append(
                (
                    backend.name,
                    backend.version(),
                    "?",
                    backend.autodiff,
                    f"FAIL: {type(exc).__name__}: {exc}",
                )
            )
            failed = True
            continue
        worst = max(v for k, v in report.items() if k != "passed")
        verdict = "pass" if report["passed"] else "FAIL"
        failed |= not report["passed"]
        rows.append(
            (
                backend.name,
                backend.version(),
                devices,
                backend.autodiff,
                f"{verdict} (max rel. err {worst:.1e})",
            )
        )
    _print_table(("backend", "version", "devices", "autodiff", "agreement"), rows)
    print(
        "agreement: forward, origin, gradient and the autodiff gradient of s2nn on "
        f"{agreement_grid().size} points (x in [-3, 3], -1, +-0, +-inf, NaN) against "
        "the float64 NumPy reference"
    )
    return 1 if failed else 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [tuple(str(c) for c in header), *[tuple(str(c) for c in r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


# --- plot ----------------------------------------------------------------------


def make_figure(gradient_pairs=GRADIENT_PAIRS, origin_pairs=ORIGIN_PAIRS):
    """The surrogate gradients and origin functions over x in [-3, 3]."""
    import matplotlib.pyplot as plt

    import s2nn_xp

    x = np.linspace(-3.0, 3.0, 1001)
    fig, (ax_grad, ax_origin) = plt.subplots(1, 2, figsize=(10, 4))
    for alpha, beta in gradient_pairs:
        ax_grad.plot(
            x,
            s2nn_xp.gradient(x, alpha, beta),
            label=rf"$\alpha={alpha:g}, \beta={beta:g}$",
        )
    for alpha, beta in origin_pairs:
        ax_origin.plot(
            x,
            s2nn_xp.origin(x, alpha, beta),
            label=rf"$\alpha={alpha:g}, \beta={beta:g}$",
        )
    for ax, title, ylabel in (
        (ax_grad, "S2NN surrogate gradients", "gradient"),
        (ax_origin, "S2NN original function", "origin"),
    ):
        ax.set(title=title, xlabel="input x", ylabel=ylabel)
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def run_plot(args: argparse.Namespace) -> int:
    """Draw the figure into ``--out`` or show it."""
    if len(args.alpha or ()) != len(args.beta or ()):
        _fail("--alpha and --beta must be given the same number of times")
    pairs = tuple(zip(args.alpha or (), args.beta or (), strict=True))
    for alpha, beta in pairs:
        if not (np.isfinite(alpha) and alpha > 0 and np.isfinite(beta) and beta > 0):
            _fail(f"--alpha and --beta must be finite and > 0, not {alpha}, {beta}")
    if args.out is not None:
        if args.out.suffix.lower() not in PLOT_SUFFIXES:
            suffixes = ", ".join(PLOT_SUFFIXES)
            _fail(f"--out must end in {suffixes}, not {args.out.name!r}")
        _check_writable("--out", args.out)
    try:
        import matplotlib
    except ImportError:
        _fail('plot needs matplotlib: python -m pip install "s2nn-xp[plot]"')
    if args.out is None and matplotlib.get_backend().lower() == "agg":
        _fail("no display to show the figure on; pass --out FILE.png|.svg|.pdf")
    fig = make_figure(pairs or GRADIENT_PAIRS, pairs or ORIGIN_PAIRS)
    if args.out is None:
        import matplotlib.pyplot as plt

        plt.show()
        return 0
    try:
        fig.savefig(args.out)
    except OSError as exc:
        _fail(f"--out: cannot write {str(args.out)!r}: {exc.strerror or exc}")
    print(f"wrote {args.out}")
    return 0


# --- bench ---------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``4194304``, ``2^22`` or ``2**22`` -> 4194304 (argparse type)."""
    try:
        for power in ("**", "^"):
            if power in text:
                base, exponent = text.split(power)
                size = int(base) ** int(exponent)
                break
        else:
            size = int(text)
    except ValueError:
        msg = f"size must be a whole number such as 65536 or 2^16, not {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 1 <= size <= 2**31:
        msg = f"size must be between 1 and 2^31, not {size}"
        raise argparse.ArgumentTypeError(msg)
    return size


def parse_repeats(text: str) -> int:
    """``15`` -> 15, a count of timed runs of at least 1 (argparse type)."""
    try:
        repeats = int(text)
    except ValueError:
        repeats = 0
    if repeats < 1:
        msg = f"must be a whole number >= 1, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return repeats


def median_seconds(
    cases: dict[str, Callable[[], Any]],
    sync: Callable[[Any], None],
    repeats: int,
    warmup: int = 2,
) -> dict[str, float]:
    """Median wall time of each case, synchronised, after `warmup` calls each.

    The cases take turns in every repeat, so a burst of load on a shared
    machine slows them all alike rather than one case's whole run.
    """
    for fn in cases.values():
        for _ in range(warmup):
            sync(fn())
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            sync(fn())
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def _cases(backend: Backend, x: Any, cotangent: Any) -> dict[str, Callable[[], Any]]:
    import s2nn_xp

    xp = array_namespace(x)

    def copy(v: Any) -> Any:
        return xp.asarray(v, copy=True)

    def scale(v: Any, ct: Any) -> Any:
        return v * ct

    # The floors are compiled like the ops (jitted for JAX), so the ratio
    # compares like with like.
    copy, scale = backend.jit(copy), backend.jit(scale)
    forward, gradient = backend.jit(s2nn_xp.s2nn), backend.jit(s2nn_xp.gradient)
    round_trip = backend.forward_and_backward()
    return {
        "copy": lambda: copy(x),
        "x*g": lambda: scale(x, cotangent),
        "forward": lambda: forward(x),
        "forward+backward": lambda: round_trip(x, cotangent),
        "gradient": lambda: gradient(x),
    }


def _anchor_cases(backend: Backend, x: Any, cotangent: Any) -> dict[str, Callable]:
    """The framework-bound S2NNs on the same arrays, where installed."""
    anchors: dict[str, Callable] = {}
    if backend.name == "torch":
        try:
            from spikingjelly.activation_based import surrogate
        except ImportError:
            return anchors
        import torch

        sj = surrogate.S2NN()

        def sj_forward_backward() -> Any:
            leaf = x.detach().requires_grad_(True)
            spike = sj(leaf)
            return spike, torch.autograd.grad(spike, leaf, cotangent)[0]

        anchors["spikingjelly"] = sj_forward_backward
    if backend.name == "jax":
        try:
            import braintools
        except ImportError:
            return anchors
        import jax

        bt = braintools.surrogate.S2NN()

        @jax.jit
        def bt_forward_backward(v: Any, ct: Any) -> Any:
            spike, pullback = jax.vjp(bt, v)
            return spike, pullback(ct)[0]

        anchors["braintools"] = lambda: bt_forward_backward(x, cotangent)
    return anchors


def bench_records(
    backends: Sequence[Backend],
    sizes: Sequence[int],
    dtypes: Sequence[str],
    repeats: int,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Time every op per backend, size and dtype next to the floors and anchors."""
    plan = [(b, s, d) for b in backends for s in sizes for d in dtypes if d in b.dtypes]
    rng = np.random.default_rng(0)
    records = []
    for step, (backend, size, dtype) in enumerate(plan, start=1):
        progress(f"[{step}/{len(plan)}] {backend.name} {dtype} n={size}")
        values = (rng.standard_normal(size) * 3).astype(np.float32)
        x = backend.asarray(values)
        xp = array_namespace(x)
        x = xp.astype(x, getattr(xp, dtype))
        cotangent = x * 0 + 1
        cases = _cases(backend, x, cotangent)
        anchor_cases = _anchor_cases(backend, x, cotangent)
        medians = median_seconds(
            {**cases, **{f"anchor {n}": fn for n, fn in anchor_cases.items()}},
            backend.synchronize,
            repeats,
        )
        timed = {name: medians[name] for name in cases}
        anchors = {name: medians[f"anchor {name}"] for name in anchor_cases}
        floors = {
            "forward": timed["copy"],
            "gradient": timed["copy"],
            "forward+backward": timed["copy"] + timed["x*g"],
        }
        for op in OPS:
            record = {
                "backend": backend.name,
                "op": op,
                "dtype": dtype,
                "size": size,
                "seconds": timed[op],
                "floor_seconds": floors[op],
                "ratio_to_floor": timed[op] / floors[op],
            }
            if op == "forward+backward":
                for anchor, seconds in anchors.items():
                    record[f"{anchor}_seconds"] = seconds
                    record[f"ratio_to_{anchor}"] = timed[op] / seconds
            records.append(record)
    return records


BENCH_HEADER = (
    "backend",
    "dtype",
    "size",
    "op",
    "median us",
    "floor us",
    "x floor",
    "x anchor",
)


def bench_row(record: dict) -> tuple[str, ...]:
    """One record of :func:`bench_records` as the text cells of the table."""
    anchors = ", ".join(
        f"{key[len('ratio_to_') :]} {value:.2f}x"
        for key, value in record.items()
        if key.startswith("ratio_to_") and key != "ratio_to_floor"
    )
    return (
        record["backend"],
        record["dtype"],
        str(record["size"]),
        record["op"],
        f"{record['seconds'] * 1e6:.1f}",
        f"{record['floor_seconds'] * 1e6:.1f}",
        f"{record['ratio_to_floor']:.2f}",
        anchors or "-",
    )


def _bench_backends(names: Sequence[str] | None) -> list[Backend]:
    """The backends named (each installed with a device), or all usable ones."""
    if not names:
        usable = available()
        for backend in BACKENDS.values():
            if backend not in usable and backend.is_installed():
                _note(f"{backend.name} is installed but has no device; skipped")
        return usable
    chosen = []
    for name in dict.fromkeys(names):
        backend = get(name)
        if not backend.is_installed():
            _fail(f"backend {name!r} is not installed here")
        if not backend.has_device():
            _fail(f"backend {name!r} is installed but has no device here")
        chosen.append(backend)
    return chosen


def run_bench(args: argparse.Namespace) -> int:
    """Time the backends and print (and optionally save) the figures."""
    if args.json is not None:
        _check_writable("--json", args.json)
    dtypes = list(dict.fromkeys(args.dtype))
    for dtype in dtypes:
        if dtype not in KNOWN_DTYPES:
            _fail(f"unknown dtype {dtype!r}; known: {', '.join(KNOWN_DTYPES)}")
    chosen = _bench_backends(args.backend)
    lacking = [
        f"{b.name} has no {d} (only {', '.join(b.dtypes)})"
        for b in chosen
        for d in dtypes
        if d not in b.dtypes
    ]
    if not chosen or len(lacking) == len(chosen) * len(dtypes):
        _fail("nothing to run: " + ("; ".join(lacking) or "no usable backend here"))
    for message in lacking:
        _note(f"{message}; skipped")

    sizes = list(dict.fromkeys(args.size))
    records = bench_records(chosen, sizes, dtypes, args.repeats, _progress)
    _print_table(BENCH_HEADER, [bench_row(r) for r in records])
    print(
        f"medians of {args.repeats} runs after warm-up, the cases taking turns; "
        "floor: copy (forward, gradient) or copy + x*g (forward+backward) of "
        "the same bytes, same run"
    )
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(records, indent=2) + "\n")
        except OSError as exc:
            _fail(f"--json: cannot write {str(args.json)!r}: {exc.strerror or exc}")
        print(f"wrote {args.json}")
    return 0


# --- entry point ---------------------------------------------------------------


class _UsageError(Exception):
    pass


def _fail(message: str) -> NoReturn:
    raise _UsageError(message)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _note(message: str) -> None:
    _progress(f"note: {message}")


def _check_writable(option: str, path: Path) -> None:
    """Fail (before any work) unless a file can be written at `path`."""
    folder = path.parent
    if not folder.is_dir():
        _fail(f"{option}: cannot write {str(path)!r}: no directory {str(folder)!r}")
    if path.is_dir():
        _fail(f"{option}: cannot write {str(path)!r}: it is a directory")
    if not os.access(folder, os.W_OK):
        _fail(f"{option}: cannot write {str(path)!r}: {str(folder)!r} is read-only")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``s2nn-xp``."""
    parser = argparse.ArgumentParser(
        prog="s2nn-xp",
        description="The S2NN surrogate spiking function on every array library.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser(
        "info",
        help="installed backends and a cross-backend check",
        description=run_info.__doc__,
    )
    info.set_defaults(run=run_info)

    plot = sub.add_parser(
        "plot",
        help="draw the surrogate gradients and origin",
        description=run_plot.__doc__,
    )
    plot.add_argument("--out", type=Path, help="PNG, SVG or PDF file to write")
    plot.add_argument(
        "--alpha",
        type=float,
        action="append",
        help="alpha of one curve (repeat, with --beta, for more)",
    )
    plot.add_argument(
        "--beta",
        type=float,
        action="append",
        help="beta of one curve (as many as --alpha)",
    )
    plot.set_defaults(run=run_plot)

    bench = sub.add_parser(
        "bench",
        help="time each backend against the memory floor",
        description=run_bench.__doc__,
    )
    bench.add_argument(
        "--backend",
        nargs="+",
        action="extend",
        metavar="B",
        help=f"any of {', '.join(BACKENDS)} (default: all installed with a device)",
    )
    bench.add_argument(
        "--size",
        type=parse_size,
        nargs="+",
        default=[2**16, 2**22],
        metavar="N",
        help="element counts, e.g. 65536 or 2^22",
    )
    bench.add_argument(
        "--dtype",
        nargs="+",
        default=["float32"],
        metavar="D",
        help=f"any of {', '.join(KNOWN_DTYPES)}",
    )
    bench.add_argument(
        "--repeats",
        type=parse_repeats,
        default=15,
        help="timed runs per case (at least 1)",
    )
    bench.add_argument(
        "--json", type=Path, metavar="FILE", help="also write every figure as JSON"
    )
    bench.set_defaults(run=run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``s2nn-xp`` with `argv` (default: the command line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (_UsageError, ValueError) as exc:
        parser.exit(2, f"s2nn-xp {args.command}: error: {exc}\n")
