"""The ``s2nn-xp`` command: ``info``, ``plot`` and ``bench``.

Run ``s2nn-xp --help`` (or ``python -m s2nn_xp --help``) for the subcommands
and ``s2nn-xp SUBCOMMAND --help`` for their options.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import importlib
import importlib.util
import io
import json
import math
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TextIO

import numpy as np

from . import __version__, _backends, _compat, _math
from ._api import ALPHA, BETA, EPSILON
from ._backends import (
    BACKENDS,
    Backend,
    Capability,
    get,
    jax_round_trip,
    not_installed,
    torch_round_trip,
)
from ._compat import array_namespace
from ._timing import (
    FLOORS,
    ONE_ARRAY,
    ROUND_TRIP,
    floor_cases,
    floor_of,
    median_seconds,
    peak_bytes,
)

__all__ = ["main"]

# One figure of ``s2nn-xp bench``: where and what was timed, and the figures.
Record = dict[str, Any]

# The docs' home-page figure (docs/_plots/surrogate_curves.py): gradients and
# origin functions for three (alpha, beta) pairs, and the spike dashed.
PLOT_PAIRS = ((4.0, 1.0), (8.0, 2.0), (2.0, 0.5))
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
PLOT_X = np.linspace(-3.0, 3.0, 1001)
# The largest magnitude a curve may reach: matplotlib's axis margins and
# ticks overflow float64 well before its largest value (1.8e308).
PLOT_LIMIT = 1e300


# --- info ----------------------------------------------------------------------


def agreement_grid() -> np.ndarray:
    """The fixed float64 inputs of the cross-backend check, special values too."""
    special = [-np.inf, -1.0, -0.0, 0.0, np.inf, np.nan]
    return np.concatenate([np.linspace(-3.0, 3.0, 61), special])


def check_backend(
    backend: Backend, alpha: float = ALPHA, beta: float = BETA
) -> dict[str, Any]:
    """Compare one backend's results with the float64 reference.

    The reference is ``_math``'s array-API math on NumPy arrays, called
    directly: the definition every kernel restates, so that NumPy's own row
    checks its kernels (and its pullback) against it.

    Returns
    -------
    dict
        ``{"forward": err, "origin": err, "gradient": err, "autodiff": err,
        "passed": bool}``, each ``err`` the largest relative difference, or
        ``inf`` where NaNs or infinities sit in other places.
    """
    import s2nn_xp

    x_np = agreement_grid()
    xp = array_namespace(x_np)
    with _compat.quiet_floating_point(xp):  # as the functions compute NumPy's
        reference = {
            "forward": _math.forward(xp, x_np, in_place=False),
            "origin": _math.origin(xp, x_np, alpha, beta, EPSILON, in_place=False),
            "gradient": _math.gradient(xp, x_np, alpha, beta, in_place=False),
        }
    reference["autodiff"] = reference["gradient"]
    # The grid holds NaN and infinities on purpose: a user's debugging
    # checks (JAX_DEBUG_NANS) would stop it and report a disagreement.
    with backend.without_debug_checks():
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
    details: list[str] = []
    failed = False
    for backend in BACKENDS.values():
        failure = backend.load_failure()
        if not_installed(failure, backend.module):
            rows.append((backend.name, "-", "-", backend.autodiff, "not installed"))
            continue
        if failure is not None:  # installed, but broken: report, never hide
            why = _first_line(backend.name, _why(failure), details)
            verdict = f"FAIL: installed, does not import ({why})"
            rows.append((backend.name, "-", "-", backend.autodiff, verdict))
            failed = True
            continue
        devices, cause = usable_devices(backend)
        if not devices:
            why = f": {_first_line(backend.name, cause, details)}" if cause else ""
            verdict = f"installed, no device (skipped){why}"
            rows.append(
                (backend.name, backend.version(), "none", backend.autodiff, verdict)
            )
            continue
        try:
            report = check_backend(backend)
        except Exception as exc:  # report, never hide, a broken backend
            rows.append(
                (
                    backend.name,
                    backend.version(),
                    ", ".join(devices),
                    backend.autodiff,
                    f"FAIL: {_first_line(backend.name, _why(exc), details)}",
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
                ", ".join(devices),
                backend.autodiff,
                f"{verdict} (max rel. err {worst:.1e})",
            )
        )
    _print_table(("backend", "version", "devices", "autodiff", "agreement"), rows)
    print(
        "agreement: forward, origin, gradient and the autodiff gradient of s2nn on "
        f"{agreement_grid().size} points (x in [-3, 3], -1, +-0, +-inf, NaN) against "
        "the float64 array-API math on NumPy (_math, which the kernels restate)"
    )
    for detail in details:
        print(detail)
    return 1 if failed else 0


def _first_line(name: str, message: str, details: list[str]) -> str:
    """``message``'s first line, for a cell of the table.

    A message of several lines (NumPy's deprecation notices) broke the
    table: its whole is added to ``details``, printed under the table.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message.strip()
    details.append(f"{name}: {message}")
    return f"{lines[0]} [whole message below]"


def _print_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], file: TextIO | None = None
) -> None:
    cells = [tuple(str(c) for c in header), *[tuple(str(c) for c in r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for i, row in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=file)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=file)


# --- plot ----------------------------------------------------------------------


def make_figure(
    pairs: Sequence[tuple[float, float]] = PLOT_PAIRS, *, shown: bool = True
) -> Any:
    """The surrogate gradients and origin functions over x in [-3, 3].

    One curve for each (alpha, beta) pair on each side, and the spike itself
    dashed beside the origin functions, as the docs' home-page figure. With
    ``shown=False`` a figure for a file alone, without pyplot and so without
    the display backend (``MPLBACKEND``) that pyplot would start.
    """
    import s2nn_xp

    if shown:
        import matplotlib.pyplot as plt

        fig, (ax_grad, ax_origin) = plt.subplots(1, 2, figsize=(10, 4))
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        ax_grad, ax_origin = fig.subplots(1, 2)
    for ax, function in ((ax_grad, s2nn_xp.gradient), (ax_origin, s2nn_xp.origin)):
        for alpha, beta in pairs:
            ax.plot(
                PLOT_X,
                function(PLOT_X, alpha, beta),
                label=rf"$\alpha={alpha:g}, \beta={beta:g}$",
            )
    ax_origin.plot(
        PLOT_X, s2nn_xp.forward(PLOT_X), color="0.5", linestyle="--", label="the spike"
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


def _check_drawable(alpha: float, beta: float) -> None:
    """Fail unless (alpha, beta) are valid and their curves stay drawable.

    The library's own rules judge the values (its message names the
    parameter); the curves must stay within :data:`PLOT_LIMIT`.
    """
    import s2nn_xp

    try:
        with np.errstate(over="ignore"):  # an overflow to inf is checked below
            curves = [
                f(PLOT_X, alpha, beta) for f in (s2nn_xp.gradient, s2nn_xp.origin)
            ]
    except ValueError as exc:
        _fail(f"--alpha {alpha:g} --beta {beta:g}: {exc}")
    peak = max(float(np.max(np.abs(curve))) for curve in curves)
    if not peak <= PLOT_LIMIT:
        _fail(
            f"--alpha {alpha:g} --beta {beta:g}: the curves reach {peak:.3g}, "
            f"larger than a plot can draw (at most {PLOT_LIMIT:g})"
        )


_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?|inf(?:inity)?|nan)",
    re.ASCII | re.IGNORECASE,
)


def parse_parameter(text: str) -> float:
    """``4``, ``0.5``, ``inf`` -> a float (argparse type); its range is the library's.

    Text of a number that float64 cannot hold (``1e400``, ``1e-400``), which
    ``float`` makes infinite or 0, is refused here in the user's own words:
    the library would judge the infinity or the 0 (``--alpha inf: ... must
    be finite``). Written as the decimal or exponent notation of ASCII
    digits, as ``--size`` is: what ``float`` also reads (spaces around it,
    ``4_0``, other scripts' digits) is refused.
    """
    if _NUMBER.fullmatch(text) is None:
        msg = f"{_shown(text)!r} is not a number"
        raise argparse.ArgumentTypeError(msg)
    value = float(text)
    if math.isinf(value) and "inf" not in text.lower():
        msg = f"{_shown(text)} is too large for float64"
        raise argparse.ArgumentTypeError(msg)
    if value == 0 and any(
        digit in text.lower().partition("e")[0] for digit in "123456789"
    ):
        msg = f"{_shown(text)} is too small for float64 (it rounds to 0)"
        raise argparse.ArgumentTypeError(msg)
    return value


def run_plot(args: argparse.Namespace) -> int:
    """Draw the figure into --out or show it."""
    if len(args.alpha or ()) != len(args.beta or ()):
        _fail("--alpha and --beta must be given the same number of times")
    pairs = tuple(zip(args.alpha or (), args.beta or (), strict=True))
    for alpha, beta in pairs:
        _check_drawable(alpha, beta)
    if args.out is not None:
        if args.out.suffix.lower() not in PLOT_SUFFIXES:
            suffixes = ", ".join(PLOT_SUFFIXES)
            hidden = args.out.name.startswith(".") and not args.out.suffix
            why = " (a name that starts with a dot has no suffix)" if hidden else ""
            _fail(f"--out must end in {suffixes}, not {args.out.name!r}{why}")
        _check_writable("--out", args.out)
    if importlib.util.find_spec("matplotlib") is None:
        _fail('plot needs matplotlib: python -m pip install "s2nn-xp[plot]"')
    if args.out is not None:
        # A file needs no display backend: matplotlib is imported without
        # MPLBACKEND, which it checks then (a name it does not know raised),
        # and the figure is drawn without pyplot. The variable is put back.
        display_backend = os.environ.pop("MPLBACKEND", None)
        try:
            import matplotlib.figure  # what make_figure draws with
        except ImportError as exc:  # installed, and broken (a library missing)
            _fail(f"matplotlib cannot be imported: {exc}")
        finally:
            if display_backend is not None:
                os.environ["MPLBACKEND"] = display_backend
    if args.out is None:
        # pyplot first: importing it is when matplotlib falls back from a
        # window backend (TkAgg without a display) to one that draws files.
        try:
            import matplotlib
            import matplotlib.pyplot as plt

            backend = matplotlib.get_backend()
            # Its module, started now (a name it cannot import is only
            # imported at the first figure)
            plt.close(plt.figure())
        except (ImportError, ValueError, RuntimeError) as exc:  # MPLBACKEND=...
            _fail(f"matplotlib cannot start its backend: {exc}")
        if not _shows_windows(backend):
            _fail(
                f"no display to show the figure on (matplotlib backend {backend!r});"
                " pass --out FILE.png|.svg|.pdf"
            )
    try:
        fig = make_figure(pairs or PLOT_PAIRS, shown=args.out is None)
        if args.out is not None:
            drawn = io.BytesIO()
            fig.savefig(drawn, format=args.out.suffix.lower().removeprefix("."))
    except Exception as exc:  # a matplotlibrc's usetex without LaTeX, a huge dpi
        _error(f"the figure cannot be drawn: {_why(exc)}", "plot")
        return 1
    if args.out is None:
        plt.show()
        return 0
    try:
        write_output(args.out, drawn.getvalue())  # the last figure kept if not
    except BrokenPipeError:  # a link to a stream whose reader went away
        raise
    except OSError as exc:
        # After the work (the options were checked, --out's folder too): an
        # error of the run (1), as bench's --json, not of the options (2).
        _error(f"--out: cannot write {str(args.out)!r}: {exc.strerror or exc}", "plot")
        return 1
    _said(f"wrote {args.out}", _is_standard_output_file(args.out))
    return 0


# --- bench ---------------------------------------------------------------------

MAX_SIZE = 2**31
MAX_REPEATS = 1000
DEFAULT_SIZES = (2**13, 2**20, 2**22, 2**24)
DEFAULT_DTYPES = ("float32",)
# dtype -> the dtype the math computes it in (16-bit: float32), which is
# also the dtype the NumPy values of the inputs are drawn in.
COMPUTE_DTYPES = _backends.COMPUTE_DTYPES
KNOWN_DTYPES = tuple(COMPUTE_DTYPES)
# The most full-size arrays a run holds at once: the NumPy values the inputs
# are drawn from, x, the cotangent, the floors' and the results' outputs, the
# math's temporaries, and for the learnable rows per-neuron alpha, beta and
# their gradients.
WORKING_ARRAYS = 17

# Each op timed -> its memory floor (:mod:`s2nn_xp._timing`).
OPS = {
    "forward": ONE_ARRAY,
    "origin": ONE_ARRAY,
    "gradient": ONE_ARRAY,
    "vjp+pullback": ROUND_TRIP,
    "forward+backward": ROUND_TRIP,
    "forward+backward eager": ROUND_TRIP,
    "forward+backward learnable": ROUND_TRIP,
}
# The framework-bound S2NNs timed beside ours where installed:
# name -> (backend, module that defines ``S2NN``).
ANCHORS = {
    "spikingjelly": ("torch", "spikingjelly.activation_based.surrogate"),
    "braintools": ("jax", "braintools.surrogate"),
}

_SIZE = re.compile(r"([0-9]+)(?:(?:\^|\*\*)([0-9]+))?", re.ASCII)


def parse_size(text: str) -> int:
    """``4194304``, ``2^22`` or ``2**22`` -> 4194304 (argparse type).

    ASCII digits only; the range is checked before a power is computed, so
    that ``9^999999999`` is refused at once.
    """
    # A negative whole number is one, out of range (not malformed).
    negative = text.startswith("-")
    match = _SIZE.fullmatch(text[negative:])
    if match is None:
        msg = f"size must be a whole number such as 65536 or 2^16, not {_shown(text)!r}"
        raise argparse.ArgumentTypeError(msg)
    # Digits beyond 2^31's ten, and 2^32 and up, are out of range: no need
    # to read a thousand digits or compute 9^999999999. A base of 0 is no
    # size, even as 0^0.
    base_digits, exponent_digits = (part.lstrip("0") for part in match.groups(""))
    too_large = len(base_digits) > 10
    # int() of the digits without the leading zeros (it refuses thousands);
    # an exponent of more than ten digits only as "large" (1^it is still 1)
    base = 0 if too_large else int(base_digits or "0")
    exponent = 1
    if match[2] is not None:
        exponent = int(exponent_digits or "0") if len(exponent_digits) <= 10 else 99
    too_large = too_large or (base > 1 and exponent >= MAX_SIZE.bit_length())
    size: int = 0 if too_large or base == 0 or negative else base**exponent
    if not 1 <= size <= MAX_SIZE:
        msg = f"size must be between 1 and {size_label(MAX_SIZE)}, not {_shown(text)}"
        raise argparse.ArgumentTypeError(msg)
    return size


def add_timing_options(
    parser: argparse.ArgumentParser,
    sizes: Sequence[int],
    dtypes: Sequence[str],
    *,
    repeats: int,
    known_dtypes: Sequence[str] = KNOWN_DTYPES,
) -> None:
    """``--size``, ``--dtype`` and ``--repeats``, as ``s2nn-xp bench`` takes them.

    With the caller's defaults: a repeated option adds to its list
    (``extend``); ``--size`` and ``--dtype`` are None where not given (the
    caller fills in `sizes` and `dtypes`, which the help names); a dtype
    outside `known_dtypes` is refused by the caller, which may say why.
    No ``--dtype`` where `known_dtypes` is empty. The scripts in
    ``benchmarks/`` take them through :func:`script_arguments`.
    """
    parser.add_argument(
        "--size",
        type=parse_size,
        nargs="+",
        action="extend",
        metavar="N",
        help=f"element counts from 1 to {size_label(MAX_SIZE)}, e.g. 8192 or 2^24 "
        "(default: " + " ".join(size_label(size) for size in sizes) + ")",
    )
    if known_dtypes:
        parser.add_argument(
            "--dtype",
            nargs="+",
            action="extend",
            metavar="D",
            help=f"any of {', '.join(known_dtypes)} (default: {' '.join(dtypes)})",
        )
    parser.add_argument(
        "--repeats",
        type=parse_repeats,
        default=repeats,
        help=f"timed runs per case, 1 to {MAX_REPEATS} (default: %(default)s)",
    )


def script_arguments(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    sizes: Sequence[int],
    dtypes: Sequence[str],
    *,
    repeats: int,
    known_dtypes: Sequence[str] = (),
    host_memory: bool = True,
) -> argparse.Namespace:
    """A benchmark script's arguments, its timing options as the command's.

    :func:`add_timing_options` added to `parser`, then `argv` parsed:
    ``size`` and ``dtype`` (where `known_dtypes` gives the option) are lists
    with the defaults filled in; an unknown dtype, and with `host_memory` a
    size whose run does not fit in the memory here (as the command checks
    it), are the parser's errors.
    """
    add_timing_options(
        parser, sizes, dtypes, repeats=repeats, known_dtypes=known_dtypes
    )
    args = parser.parse_args(argv)
    args.size = given_or_default(args.size, sizes)
    if known_dtypes:
        args.dtype = given_or_default(args.dtype, dtypes)
        unknown = unknown_dtype(args.dtype, known_dtypes)
        if unknown:
            parser.error(unknown)
    if host_memory:
        shortfall = memory_shortfall(args.size, args.dtype if known_dtypes else dtypes)
        if shortfall:
            parser.error(shortfall)
    return args


def script_needs(library: str, error: ImportError) -> NoReturn:
    """Exit as the command does for a missing library: 2, and one line saying so.

    For a benchmark script whose library (`library`, as users install it)
    failed to import with `error`; called before its options are parsed,
    so ``--help`` says it too, not a traceback.
    """
    prog = Path(sys.argv[0]).name
    sys.stderr.write(
        f"{prog}: error: needs {library}, which cannot be imported here: {error}\n"
    )
    raise SystemExit(2)


def given_or_default(given: Sequence[Any] | None, default: Sequence[Any]) -> list[Any]:
    """An ``extend`` option's values, once each in order, or `default`'s."""
    return list(dict.fromkeys(given or default))


def unknown_dtype(dtypes: Sequence[str], known: Sequence[str]) -> str | None:
    """What is wrong with the first of `dtypes` not in `known`, or None."""
    for dtype in dtypes:
        if dtype not in known:
            return f"unknown dtype {dtype!r}; known: {', '.join(known)}"
    return None


def size_label(size: int) -> str:
    """``2^k`` for a power of two, else the number: as :func:`parse_size` reads it.

    Examples
    --------
    >>> size_label(8192), size_label(8200)
    ('2^13', '8200')
    """
    return (
        f"2^{size.bit_length() - 1}"
        if size > 0 and size & (size - 1) == 0
        else str(size)
    )


def parse_repeats(text: str) -> int:
    """``15`` -> 15, a count of timed runs from 1 to 1000 (argparse type)."""
    return _count(text, 1)


def parse_warmup(text: str) -> int:
    """``3`` -> 3, a count of untimed calls from 0 to 1000 (argparse type)."""
    return _count(text, 0)


def _count(text: str, least: int) -> int:
    """A whole number from `least` to :data:`MAX_REPEATS` (argparse's error)."""
    # Digits first: int() refuses thousands of digits in its own words.
    digits = text.lstrip("0")
    numeral = text.isascii() and text.isdigit() and len(digits) <= 4
    count = int(digits or "0") if numeral else -1
    if not least <= count <= MAX_REPEATS:
        msg = (
            f"must be a whole number from {least} to {MAX_REPEATS}, "
            f"not {_shown(text)!r}"
        )
        raise argparse.ArgumentTypeError(msg)
    return count


def _shown(text: str) -> str:
    """``text`` for a message, its middle cut where it runs long."""
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"


def _itemsize(dtype: str) -> int:
    """Bytes of one value of `dtype` (bfloat16, which NumPy lacks, too)."""
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def memory_needed(size: int, dtype: str) -> int:
    """Bytes a bench run of `size` values of `dtype` holds at its peak (an estimate).

    :data:`WORKING_ARRAYS` arrays of the compute dtype.
    """
    return size * WORKING_ARRAYS * np.dtype(COMPUTE_DTYPES[dtype]).itemsize


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation here, or None if unknown."""
    try:
        # Linux: counts reclaimable caches
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on this system
        return None


def dtype_name(x: Any) -> str:
    """``float32`` for a float32 array of any library (``torch.float32`` too)."""
    return str(x.dtype).rpartition(".")[2]


def bench_input(backend: Backend, values: np.ndarray, dtype: str) -> Any:
    """`values` as a `dtype` array of `backend`.

    Cast in NumPy wherever NumPy has the dtype (Dask's namespace names no
    ``float16``); bfloat16, which NumPy lacks, by the library's own namespace.
    """
    if dtype in get("numpy").dtypes:
        return backend.asarray(values, dtype)
    x = backend.asarray(values, "float32")
    xp = array_namespace(x)
    return xp.astype(x, getattr(xp, dtype))


@dataclass(frozen=True)
class Inputs:
    """The arrays one bench run times on."""

    x: Any
    cotangent: Any


# Samples per batch in the learnable rows (their neurons: the size / 64).
LEARNABLE_BATCH = 64


def learnable_batch(size: int) -> int:
    """Samples of the learnable rows' batch at `size` values (the rest neurons).

    :data:`LEARNABLE_BATCH` where it divides `size`, else 1: one sample of
    `size` neurons, each with its own parameters (as much memory as ``x``
    for each); the records say which (``learnable_batch``).
    """
    return LEARNABLE_BATCH if size % LEARNABLE_BATCH == 0 else 1


def _learnable_round_trip(backend: Backend, inputs: Inputs) -> Callable[[], Any]:
    """Forward and backward with per-neuron alpha and beta that learn.

    ``() -> (spike, (d x, d alpha, d beta))``, run the way the library's
    users train (the registry's ``make_learnable_case``).
    """
    assert backend.make_learnable_case is not None
    xp = array_namespace(inputs.x)
    # A batch of 64 samples of n / 64 neurons, each neuron with its own alpha
    # and beta (as a layer holds them), whose gradients sum over the batch.
    shape = (learnable_batch(math.prod(inputs.x.shape)), -1)
    x = xp.reshape(inputs.x, shape)
    cotangent = xp.reshape(inputs.cotangent, shape)
    alpha, beta = xp.full_like(x[0], 4.0), xp.full_like(x[0], 1.0)
    return backend.make_learnable_case(x, cotangent, alpha, beta)


def _our_cases(backend: Backend, inputs: Inputs) -> dict[str, Callable[[], Any]]:
    """The floors and every op of :data:`OPS` this backend has, as cases."""
    import s2nn_xp

    x, cotangent = inputs.x, inputs.cotangent

    def vjp_and_pullback() -> Any:
        spike, pullback = s2nn_xp.vjp(x)
        return spike, pullback(cotangent)

    round_trip = backend.forward_and_backward()
    cases = {
        **floor_cases(x, cotangent, backend.jit),
        # The public functions as users call them.
        "forward": lambda: s2nn_xp.forward(x),
        "origin": lambda: s2nn_xp.origin(x),
        "gradient": lambda: s2nn_xp.gradient(x),
        # Forward and backward the way the library's users train.
        "forward+backward": lambda: round_trip(x, cotangent),
    }
    if Capability.AUTODIFF in backend.capabilities:
        # Elsewhere forward+backward is this very call.
        cases["vjp+pullback"] = vjp_and_pullback
    if backend.make_learnable_case is not None:
        cases["forward+backward learnable"] = _learnable_round_trip(backend, inputs)
    if backend.name == "jax":  # also as in a notebook, op by op
        eager = jax_round_trip(s2nn_xp.s2nn)
        cases["forward+backward eager"] = lambda: eager(x, cotangent)
    return cases


@contextlib.contextmanager
def _configuration_kept() -> Iterator[None]:
    """Undo what loading an anchor changes in the process's configuration.

    Importing braintools switches JAX's 64-bit mode off, which would change
    the dtype of our float64 inputs.
    """
    jax = sys.modules.get("jax")
    x64 = jax.config.jax_enable_x64 if jax is not None else None
    try:
        yield
    finally:
        if jax is not None and jax.config.jax_enable_x64 != x64:
            jax.config.update("jax_enable_x64", x64)


def load_anchor(name: str) -> ModuleType | None:
    """Anchor `name`'s module, None where it is not installed or fails to load."""
    _, module = ANCHORS[name]
    with _configuration_kept():
        try:
            return importlib.import_module(module)
        except Exception as exc:  # an anchor never costs us our own figures
            if not_installed(exc, module):  # said too: its column stays empty
                _note_once(f"{name} is not installed; not compared")
            else:  # broken: said, never hidden
                _note_once(f"{name} failed to load ({_why(exc)}); skipped")
            return None


def _anchor_cases(
    backend: Backend, x: Any, cotangent: Any, op: str = "forward+backward"
) -> dict[str, Callable[[], Any]]:
    """The framework-bound S2NNs doing `op` on the same arrays, where installed."""
    anchors: dict[str, Callable[[], Any]] = {}
    for name, (backend_name, _) in ANCHORS.items():
        if backend_name != backend.name:
            continue
        module = load_anchor(name)
        if module is None:
            continue
        try:
            with _configuration_kept():
                spike = module.S2NN()
        except Exception as exc:  # an anchor never costs us our own figures
            _note_once(f"{name} failed ({_why(exc)}); not compared")
            continue
        if backend.name == "torch" and op == "forward+backward":
            anchors[name] = functools.partial(torch_round_trip, spike, x, cotangent)
        if backend.name == "jax" and op in (
            "forward+backward",
            "forward+backward eager",
        ):
            round_trip = jax_round_trip(spike)
            if op == "forward+backward":
                round_trip = backend.jit(round_trip)
            anchors[name] = functools.partial(round_trip, x, cotangent)
    return anchors


def _first_calls(
    cases: dict[str, Callable[[], Any]], synchronize: Callable[[Any], None]
) -> tuple[dict[str, Callable[[], Any]], dict[str, str]]:
    """Call each case once: those that work, and why each other one failed."""
    working, failed = {}, {}
    for name, call in cases.items():
        try:
            synchronize(call())
        except Exception as exc:  # one failing case never loses the others
            failed[name] = _why(exc)
        else:
            working[name] = call
    return working, failed


def _torch_saved_bytes(call: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of `call`."""
    import torch

    saved: dict[tuple[int, int], int] = {}

    def pack(tensor: Any) -> Any:
        saved[tensor.data_ptr(), tensor.nbytes] = tensor.nbytes  # storage once
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        call()
    return sum(saved.values())


def _memory_fields(
    backend: Backend, op: str, call: Callable[[], Any], x_bytes: int
) -> dict[str, float]:
    """Memory figures of `op`, over the input's bytes, where they can be measured.

    ``peak_memory_ratio``: the most one call holds at once, with NumPy (whose
    allocations tracemalloc sees). ``saved_for_backward_ratio``: what PyTorch
    keeps between forward and backward.
    """
    if backend.name == "numpy":
        peak = peak_bytes(call)
        return {} if peak is None else {"peak_memory_ratio": peak / x_bytes}
    if backend.name == "torch" and op.startswith("forward+backward"):
        return {"saved_for_backward_ratio": _torch_saved_bytes(call) / x_bytes}
    return {}


def _record(backend: Backend, op: str, dtype: str, size: int, **fields: Any) -> Record:
    """A record of :func:`bench_records`: where it was measured, then `fields`."""
    return {"backend": backend.name, "op": op, "dtype": dtype, "size": size, **fields}


def _run_records(
    backend: Backend, size: int, dtype: str, repeats: int, rng: np.random.Generator
) -> list[Record]:
    """The records of one backend, size and dtype (raises if no input is made)."""
    for name, (backend_name, _) in ANCHORS.items():
        if backend_name == backend.name:
            load_anchor(name)  # before our inputs exist: they keep their dtype
    values = rng.standard_normal(size, np.dtype(COMPUTE_DTYPES[dtype]).type)
    x = bench_input(backend, np.multiply(values, 3, out=values), dtype)
    del values
    if dtype_name(x) != dtype:
        msg = f"the {backend.name} input came out {dtype_name(x)}, not {dtype}"
        raise RuntimeError(msg)
    inputs = Inputs(x, array_namespace(x).ones_like(x))
    cases = _our_cases(backend, inputs)
    compared = {
        op: _anchor_cases(backend, x, inputs.cotangent, op) for op in OPS if op in cases
    }
    for op, anchors in compared.items():
        cases.update({f"{op} {name}": call for name, call in anchors.items()})
    working, failed = _first_calls(cases, backend.synchronize)
    seconds = median_seconds(
        working, repeats, synchronize=backend.synchronize, warmup=1
    )
    floor_error = next(
        (
            f"the floor {name} failed: {failed[name]}"
            for name in FLOORS
            if name in failed
        ),
        None,
    )
    # Not x.nbytes: no array-API attribute (array-api-strict, marray lack it).
    x_bytes = size * _itemsize(dtype)
    records = []
    for op, floor in OPS.items():
        if op not in cases:
            continue
        error = failed.get(op) or floor_error
        if error:
            records.append(_record(backend, op, dtype, size, error=error))
            continue
        record = _record(
            backend,
            op,
            dtype,
            size,
            seconds=seconds[op],
            floor_seconds=floor_of(seconds, floor),
            ratio_to_floor=seconds[op] / floor_of(seconds, floor),
            floor=floor,
            version=backend.version(),
            device=backend.device_name(x),
        )
        for name in compared[op]:
            case = f"{op} {name}"
            if case in failed:
                _note(f"{name} failed ({failed[case]}); not compared")
            elif case in seconds:
                record[f"{name}_seconds"] = seconds[case]
                record[f"ratio_to_{name}"] = seconds[op] / seconds[case]
        try:
            record.update(_memory_fields(backend, op, cases[op], x_bytes))
        except Exception as exc:  # torch.func refuses saved-tensor hooks
            _note(f"{backend.name} {op}: memory not measured ({_why(exc)})")
        if op == "forward+backward learnable":
            record["learnable_batch"] = learnable_batch(size)
            if "forward+backward" in seconds:
                record["fixed_seconds"] = seconds["forward+backward"]
                record["ratio_to_fixed"] = seconds[op] / seconds["forward+backward"]
        records.append(record)
    return records


def bench_records(
    backends: Sequence[Backend],
    sizes: Sequence[int],
    dtypes: Sequence[str],
    repeats: int,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Record]:
    """Time every op per backend, size and dtype next to the floors and anchors.

    A run that fails gives a record with an ``error`` (and no figures) in
    place of its op's figures; the other runs go on.
    """
    plan = [(b, s, d) for b in backends for s in sizes for d in dtypes if d in b.dtypes]
    _NOTES_SAID.clear()
    failed_imports: set[str] = set()
    rng = np.random.default_rng(0)
    records: list[Record] = []
    for step, (backend, size, dtype) in enumerate(plan, start=1):
        if backend.name in failed_imports:  # installed and broken: said once
            continue
        try:
            # Inside: a Ctrl-C while the progress line is written (a slow
            # terminal) lost the figures of the runs that finished.
            progress(f"[{step}/{len(plan)}] {backend.name} {dtype} n={size}")
            failure = backend.load_failure()
            if failure is not None:
                failed_imports.add(backend.name)
                error = f"{backend.name} {_broken(failure)}"
                found = [_record(backend, "(setup)", dtype, size, error=error)]
            else:
                found = _run_records(backend, size, dtype, repeats, rng)
        except Exception as exc:  # one failing run never loses the others
            error = _why(exc)
            found = [_record(backend, "(setup)", dtype, size, error=error)]
        except KeyboardInterrupt as exc:  # Ctrl-C: the runs that finished
            raise BenchInterrupted(records, step - 1, len(plan)) from exc
        # The count of timed runs: with the rest, the command that remakes them.
        records += [{**record, "repeats": repeats} for record in found]
    return records


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`bench_records`, with the records of the finished runs."""

    def __init__(self, records: list[Record], finished: int, planned: int) -> None:
        super().__init__(f"{finished} of {planned} runs finished")
        self.records = records
        self.finished = finished
        self.planned = planned


# Memory figure of a record -> its label in the table.
MEMORY_FIGURES = {"peak_memory_ratio": "peak", "saved_for_backward_ratio": "saved"}
BENCH_HEADER = (
    "backend",
    "dtype",
    "size",
    "op",
    "median us",
    "floor us",
    "x floor",
    "memory / x",
    "x compared",
)


def bench_row(record: Record, details: list[str] | None = None) -> tuple[str, ...]:
    """One record of :func:`bench_records` as the text cells of the table.

    ``memory / x`` holds NumPy's peak and what PyTorch saves for backward;
    ``x compared`` the ratios to the anchors (``ratio_to_spikingjelly``) and,
    for learnable parameters, to the fixed-parameter call; their ``op`` says
    the batch they ran as, samples x neurons (``learnable_batch``). A failure
    of several lines shows its first, and is added whole to ``details``
    (printed under the table).
    """
    op = record["op"]
    batch = record.get("learnable_batch")
    if batch:  # samples x neurons: the same size may be either (8192, 8200)
        op = f"{op} ({batch} x {record['size'] // batch})"
    head = (record["backend"], record["dtype"], str(record["size"]), op)
    if "error" in record:
        where = " ".join(head)
        error = _first_line(where, record["error"], [] if details is None else details)
        return (*head, "-", "-", "-", "-", f"FAIL: {error}")
    memory = ", ".join(
        f"{label} {record[key]:.2f}"
        for key, label in MEMORY_FIGURES.items()
        if key in record
    )
    compared = ", ".join(
        f"{key[len('ratio_to_') :]} {value:.2f}x"
        for key, value in record.items()
        if key.startswith("ratio_to_") and key != "ratio_to_floor"
    )
    return (
        *head,
        f"{record['seconds'] * 1e6:.1f}",
        f"{record['floor_seconds'] * 1e6:.1f}",
        f"{record['ratio_to_floor']:.2f}",
        memory or "-",
        compared or "-",
    )


def usable_devices(backend: Backend) -> tuple[list[str], str]:
    """The devices `backend` finds here, and what its query raised, or ''.

    Asked once. Any exception of the library's device query (JAX asked for
    a platform it does not have, CUDA without a GPU) means "no device",
    never a failure; it is shown beside it (:func:`_no_device`): a misspelt
    ``JAX_PLATFORMS`` and a platform this machine lacks both leave JAX
    without a device, and only JAX's message tells them apart.
    """
    try:
        return list(backend.devices()), ""
    except Exception as exc:  # the cause, reported
        return [], _why(exc)


def _no_device(cause: str) -> str:
    """``has no device here``, with the `cause` where the query raised."""
    return f"has no device here ({cause})" if cause else "has no device here"


def _bench_backends(names: Sequence[str] | None) -> list[Backend]:
    """The backends named (each installed with a device), or all usable ones.

    All of them: those installed that fail to import too (each run of theirs
    a failed row, as ``info`` counts them failures).
    """
    if not names:
        chosen = []
        for backend in BACKENDS.values():
            failure = backend.load_failure()
            if not_installed(failure, backend.module):
                continue
            if failure is not None:  # its runs are failed rows
                chosen.append(backend)
                continue
            devices, cause = usable_devices(backend)
            if devices:
                chosen.append(backend)
            else:
                _note(f"{backend.name} is installed but {_no_device(cause)}; skipped")
        return chosen
    chosen = []
    for name in dict.fromkeys(names):
        try:
            backend = get(name)
        except ValueError as exc:
            _fail(str(exc))
        failure = backend.load_failure()
        if not_installed(failure, backend.module):
            _fail(f"backend {name!r} is not installed here")
        if failure is not None:
            _fail(f"backend {name!r} {_broken(failure)}")
        devices, cause = usable_devices(backend)
        if not devices:
            _fail(f"backend {name!r} is installed but {_no_device(cause)}")
        chosen.append(backend)
    return chosen


def _check_memory(sizes: Sequence[int], dtypes: Sequence[str]) -> None:
    """Fail unless the largest run fits in the memory available here."""
    shortfall = memory_shortfall(sizes, dtypes)
    if shortfall:
        _fail(shortfall)


def memory_shortfall(sizes: Sequence[int], dtypes: Sequence[str]) -> str | None:
    """Why the largest run does not fit in the memory available here, or None."""
    size, dtype = max(
        ((s, d) for s in sizes for d in dtypes), key=lambda run: memory_needed(*run)
    )
    needed, available = memory_needed(size, dtype), available_memory()
    if available is None or needed <= available:
        return None
    return (
        f"--size {size} needs about {needed / 2**30:.1f} GiB of memory for "
        f"{dtype} ({WORKING_ARRAYS} arrays of {size} {COMPUTE_DTYPES[dtype]} "
        f"values); {available / 2**30:.1f} GiB is available"
    )


def run_bench(args: argparse.Namespace) -> int:
    """Time every public function per backend next to the memory floor.

    Each op's median time (the cases taking turns) beside a floor timed in
    the same run on the same arrays, and beside the framework-bound S2NNs
    (spikingjelly, braintools) where installed. The defaults give every
    figure the project tracks at 2^13, 2^20, 2^22 and 2^24 values; the
    performance page shows the command behind its own file.
    """
    # "--json -": the JSON alone on standard output, the table on standard
    # error; so for a name of standard output's file (/dev/stdout, a link to
    # it, the file it is redirected to), written as that file.
    json_to_stdout = args.json is STANDARD_OUTPUT
    if args.json is not None and not json_to_stdout:
        _check_writable("--json", args.json)
    table_to_stderr = json_to_stdout or _is_standard_output_file(args.json)
    # What a library prints while it is imported and runs goes where the
    # table goes, not into the JSON.
    with (
        contextlib.redirect_stdout(sys.stderr)
        if table_to_stderr
        else contextlib.nullcontext()
    ):
        records, interrupted = _measured(args)
    json_failed = False
    with _interrupts_deferred() as deferred:
        # The figures first (a file, or standard output), then the table.
        if json_to_stdout:
            _write_standard_output(json.dumps(records, indent=2) + "\n")
        elif args.json is not None:
            try:
                write_output(args.json, json.dumps(records, indent=2) + "\n")
            except BrokenPipeError:  # the reader of a stream named: as for "-"
                raise
            except OSError as exc:
                # After the work: an error of the run (1), not of the options
                # (2); the table is still printed.
                why = exc.strerror or exc
                _error(f"--json: cannot write {str(args.json)!r}: {why}", "bench")
                json_failed = True
        try:
            _bench_table(records, args.repeats, sys.stderr if table_to_stderr else None)
        except OSError:
            if not table_to_stderr:  # the output itself; on stderr a diagnostic
                raise
        if args.json is not None and not json_to_stdout and not json_failed:
            _said(f"wrote {args.json}", table_to_stderr)
    if interrupted is not None or deferred.count:
        message = "interrupted"
        if interrupted is not None:
            message += (
                f": the figures of the {interrupted.finished} of "
                f"{interrupted.planned} runs that finished are above"
            )
        _error(message, "bench")
        return 130
    if json_failed:
        return 1
    failed = sum("error" in r for r in records)
    if failed:
        _note(f"{failed} row{'s' if failed > 1 else ''} failed (FAIL above)")
    return 1 if failed else 0


def _measured(
    args: argparse.Namespace,
) -> tuple[list[Record], BenchInterrupted | None]:
    """The records of the runs ``args`` asks for; the Ctrl-C that stopped them."""
    dtypes = given_or_default(args.dtype, DEFAULT_DTYPES)
    unknown = unknown_dtype(dtypes, KNOWN_DTYPES)
    if unknown:
        _fail(unknown)
    chosen = _bench_backends(args.backend)
    lacking = [
        f"{b.name} has no {d} (only {', '.join(b.dtypes)})"
        for b in chosen
        for d in dtypes
        if d not in b.dtypes
    ]
    if not chosen or len(lacking) == len(chosen) * len(dtypes):
        _fail("nothing to run: " + ("; ".join(lacking) or "no usable backend here"))
    sizes = given_or_default(args.size, DEFAULT_SIZES)
    _check_memory(sizes, dtypes)
    for message in lacking:
        _note(f"{message}; skipped")
    try:
        return bench_records(chosen, sizes, dtypes, args.repeats, _progress), None
    except BenchInterrupted as stop:  # the figures of the runs that finished
        if not stop.records:
            raise
        return stop.records, stop


def _bench_table(records: list[Record], repeats: int, file: TextIO | None) -> None:
    details: list[str] = []
    _print_table(BENCH_HEADER, [bench_row(r, details) for r in records], file=file)
    for detail in details:
        print(detail, file=file)
    floors = "; ".join(f"{name}: {what}" for name, what in FLOORS.items())
    print(
        f"medians of {repeats} run{'s' if repeats > 1 else ''} after "
        "warm-up, the cases taking turns; "
        f"floors of the same bytes, same run, the fastest way ({floors})",
        file=file,
    )


def write_output(path: Path, data: str | bytes) -> None:
    """``data`` into the file at ``path``, whole or not at all where it can be.

    A regular file (or none yet) is replaced by a complete one written beside
    it: written in place, a write that failed (a full disk) left a truncated
    file where the last run's was. Where no file can be made beside it or
    moved over it (a folder the user may not write, a name too long for the
    one beside it, a file mounted on its own) it is written in place, as
    :func:`_unwritable` found it can be before the work (where a full disk
    may leave it cut short, as the error then says). A named pipe or
    a device is written to; a descriptor of this process named as a file
    (:func:`_named_descriptor`), through that descriptor.
    """
    raw = data.encode() if isinstance(data, str) else data
    descriptor = _named_descriptor(path)
    if descriptor is not None:
        _write_descriptor(descriptor, raw)
        return
    path = _written_path(path)
    try:
        existing = path.stat().st_mode
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing):
        path.write_bytes(raw)
        return
    if existing is not None:
        mode = stat.S_IMODE(existing)
    else:  # as open() would make it (mkstemp's are 0o600)
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        if exc.errno not in _IN_PLACE_AFTER:
            raise
        _write_in_place(path, raw)
        return
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(raw)
        os.chmod(temporary, mode)
        try:
            os.replace(temporary, path)
        except OSError as exc:
            if exc.errno not in _IN_PLACE_AFTER:
                raise
            os.unlink(temporary)
            _write_in_place(path, raw)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# Errors of making a file beside the output or moving it over the output
# after which the output is written in place: the user may not write the
# folder (but may the file), the name is too long for the file beside it,
# the output is a mount point of its own, or on another file system.
_IN_PLACE_AFTER = frozenset(
    {errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.EBUSY, errno.EXDEV}
)


def _write_in_place(path: Path, raw: bytes) -> None:
    """``raw`` over the file at ``path``, as ``open(path, "w")`` writes it.

    The last file is cut to nothing first: a write that then fails (a full
    disk, a size limit) leaves it short, which the error says. (Room
    reserved first with ``posix_fallocate`` is no remedy: where it fails
    on ext4 it keeps what it got, and glibc's stand-in writes zeros.)
    """
    try:
        path.write_bytes(raw)
    except OSError as exc:
        why = f"{exc.strerror or exc} (written in place, the file may be cut short)"
        raise OSError(exc.errno, why, str(path)) from exc


def _named_descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` names, else None.

    ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/fd/N`` (a
    shell's ``>(...)``), spelled any way (``//dev/stdout``, ``..``, links
    to them: each folder resolved as the system resolves it). Opened by
    name, each is a new opening of what the descriptor reaches: a file
    redirected with ``>>`` was truncated, or replaced while the descriptor
    went on writing to the one removed (the table and the earlier contents
    lost); a pipe's name does not exist. (Another name of the file that
    standard output is, ``--json out.json > out.json``, is that file: the
    JSON alone goes into it.)
    """
    text = str(path)
    for _ in range(_LINKS_FOLLOWED):
        # As written first (/proc of another PID namespace resolves /dev/fd
        # to a number that is not this process's)
        descriptor = _descriptor_of_name(_without_dots(text))
        if descriptor is not None:
            return descriptor
        folder, name = os.path.split(text)
        folder = os.path.realpath(folder or os.curdir)
        if folder.startswith("//"):  # POSIX leaves two slashes alone
            folder = "/" + folder.lstrip("/")
        text = os.path.join(folder, name)
        descriptor = _descriptor_of_name(text)
        if descriptor is not None:
            return descriptor
        try:
            target = os.readlink(text)
        except (OSError, ValueError):  # no link
            return None
        text = os.path.join(folder, target)
    return None


# Links followed by name (as the system's own limit, 40 on Linux).
_LINKS_FOLLOWED = 40


def _without_dots(text: str) -> str:
    """``text`` without repeated separators and ``.`` (``..`` kept: a link's)."""
    parts = [part for part in text.split("/") if part not in ("", ".")]
    return ("/" if text.startswith("/") else "") + "/".join(parts)


def _descriptor_of_name(text: str) -> int | None:
    """The descriptor that ``text`` names, else None."""
    standard = {"/dev/stdout": 1, "/dev/stderr": 2}
    if text in standard:
        return standard[text]
    # /proc/self resolved: this process's number as its /proc numbers it
    own = os.path.realpath("/proc/self")
    for folder in (
        "/dev/fd/",
        "/proc/self/fd/",
        f"/proc/{os.getpid()}/fd/",
        f"{own}/fd/",
    ):
        number = text.removeprefix(folder)
        if number != text and number.isdigit() and number.isascii():
            return int(number)
    return None


def _write_descriptor(descriptor: int, raw: bytes) -> None:
    """``raw`` written through an open descriptor, after Python's buffered output.

    All of it: a pipe made non-blocking by another process (``EAGAIN``
    when its reader is slow) is waited for, not left with part of it.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    view = memoryview(raw)
    while view:
        try:
            view = view[os.write(descriptor, view) :]
        except BlockingIOError:
            _wait_writable(descriptor)


def _wait_writable(descriptor: int) -> None:
    """Wait until ``descriptor`` takes more (``poll``: no limit on its number)."""
    import select

    if hasattr(select, "poll"):
        waiting = select.poll()
        waiting.register(descriptor, select.POLLOUT)
        waiting.poll()
    else:  # pragma: no cover - systems without poll
        select.select([], [descriptor], [])


def _write_standard_output(text: str) -> None:
    """``text`` on standard output, all of it (:func:`_write_descriptor`).

    Through its descriptor where it has one; else (a stand-in: a test's
    capture, a closed stream) by its own ``write``.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    _write_descriptor(descriptor, text.encode(sys.stdout.encoding or "utf-8"))


def _descriptor_unwritable(descriptor: int) -> str | None:
    """Why nothing can be written through ``descriptor``, or None where it can."""
    try:
        import fcntl

        flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
    except OSError:
        return "no such descriptor is open"
    except ImportError:  # pragma: no cover - no such names outside POSIX
        return None
    if flags & os.O_ACCMODE == os.O_RDONLY:
        return "it is open for reading only"
    return None


class _Deferred:
    count = 0


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[_Deferred]:
    """Ctrl-C held while the figures are saved, and reported after.

    A second Ctrl-C close behind the first (a wrapper that passes on the
    terminal's) lost the figures of the runs that finished; a second one
    during the save itself still stops it (a named pipe nobody reads).
    """
    import signal
    import threading

    deferred = _Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield deferred
        return

    def hold(signum: int, frame: Any) -> None:
        deferred.count += 1
        if deferred.count > 1:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield deferred
    finally:
        signal.signal(signal.SIGINT, previous)


# --- entry point ---------------------------------------------------------------


class _UsageError(Exception):
    pass


def _fail(message: str) -> NoReturn:
    raise _UsageError(message)


def _progress(message: str) -> None:
    """A diagnostic on standard error; one that cannot be written stops nothing.

    (A closed pipe or a full disk there lost the whole run, before.)
    """
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        _silence_standard_error()


def _silence_standard_error() -> None:
    """Diagnostics from now on go nowhere (standard error closed, or failing)."""
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process's own)


def _why(exc: BaseException) -> str:
    """``RuntimeError: message``: an exception as a failed row reports it.

    Its type alone where it says nothing (JAX's bare AssertionError for a
    platform it cannot start).
    """
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _broken(failure: Exception) -> str:
    """What an installed library that fails to import is reported as."""
    return f"is installed but fails to import ({_why(failure)})"


def _note(message: str) -> None:
    _progress(f"note: {message}")


def _note_once(message: str) -> None:
    """A note said once a bench run.

    An anchor's: it is loaded and built again for every size and operation,
    and said its failure each time.
    """
    if message not in _NOTES_SAID:
        _NOTES_SAID.add(message)
        _note(message)


# The notes of :func:`_note_once` this bench run has said.
_NOTES_SAID: set[str] = set()


def _error(message: str, command: str) -> None:
    """An error after the work began, as ``main`` words the others."""
    _progress(f"s2nn-xp {command}: error: {message}")


def _shows_windows(backend: str) -> bool:
    """Whether matplotlib's `backend` shows figures (agg, pdf, svg: files only)."""
    try:
        from matplotlib.backends import BackendFilter, backend_registry
    except ImportError:  # matplotlib 3.8
        from matplotlib import rcsetup

        # getattr: newer matplotlib, whose types mypy may see, has none
        files_only = list(getattr(rcsetup, "non_interactive_bk", ()))
    else:
        files_only = backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)
    # Its module named as a module (MPLBACKEND=module://...backend_agg) is
    # the builtin backend itself
    name = backend.lower().removeprefix("module://matplotlib.backends.backend_")
    return name not in {builtin.lower() for builtin in files_only}


# The --json path that stands for standard output: "-" as given, found by
# identity (Path("./-") == Path("-"), and "./-" names a file).
STANDARD_OUTPUT = Path("-")


def _is_standard_output_file(path: Path | None) -> bool:
    """Whether ``path`` names the file standard output writes to.

    ``/dev/stdout``, a link to it, or the file standard output is redirected
    to (``--json out.json > out.json``): what is printed there follows the
    figures written there, which then no longer parse. Not a character
    device (a terminal, ``/dev/null``), which keeps nothing to parse.
    """
    if path is None or path is STANDARD_OUTPUT:
        return path is STANDARD_OUTPUT
    try:
        named, written = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # none there yet; no stdout
        return False
    same = (named.st_dev, named.st_ino) == (written.st_dev, written.st_ino)
    return same and not stat.S_ISCHR(named.st_mode)


def _said(message: str, to_stderr: bool) -> None:
    """``message`` on standard output, or standard error where it is the output."""
    if to_stderr:
        _progress(message)
    else:
        print(message)


def _output_path(text: str) -> Path:
    """A path to write to (argparse type); an empty one would be the folder.

    One that ends with a separator names a folder, which ``Path`` would drop
    (``out/`` wrote a file named ``out``), as ``.`` and ``..`` do.
    """
    if not text:
        msg = "an empty path"
        raise argparse.ArgumentTypeError(msg)
    folder = text.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep))
    if folder or os.path.basename(text) in (".", ".."):
        # "." and ".." (also at the end of a longer path, which Path drops:
        # "x.png/." is "x.png"), whose suffix was then said to be ''; an
        # existing folder of another name is a file that cannot be written
        msg = f"{text!r} names a folder; give a file name"
        raise argparse.ArgumentTypeError(msg)
    return STANDARD_OUTPUT if text == "-" else Path(text)


def _written_path(path: Path) -> Path:
    """The file that writing to `path` writes: through a link, not over it."""
    return Path(os.path.realpath(path))


def _check_writable(option: str, path: Path) -> None:
    """Fail (before any work) unless a file can be written at `path`."""
    why = _unwritable(path)
    if why is not None:
        _fail(f"{option}: {why}")


def writable_file(text: str) -> Path:
    """A file path that can be written, checked now (argparse type).

    For the scripts in ``benchmarks/``, whose ``--json`` is written after
    the whole run: checked as ``s2nn-xp bench`` checks its own, before any
    work. A file name only (not ``-``).
    """
    path = _output_path(text)
    if path is STANDARD_OUTPUT:
        msg = "give a file name (- is not standard output here)"
        raise argparse.ArgumentTypeError(msg)
    why = _unwritable(path)
    if why is not None:
        raise argparse.ArgumentTypeError(why)
    return path


def _unwritable(path: Path) -> str | None:
    """Why no file can be written at `path`, or None where one can.

    By trying: an existing regular file is opened for appending (nothing
    written), a new one stands in as a temporary file in its folder
    (removed), so that permissions, read-only mounts, immutable files and
    pseudo-filesystems (/proc) are all found out before a long run, not
    after it. A named pipe is left alone (its reader would see the end).
    The file checked is the one the write reaches (:func:`_written_path`):
    through a link that points nowhere yet, the link's own folder was; a
    descriptor named as a file (:func:`_named_descriptor`) is checked open
    for writing. Every error of the file system is a reason (a folder the
    user may not enter, a name too long, a loop of links), not a traceback.
    """
    descriptor = _named_descriptor(path)
    if descriptor is not None:
        why = _descriptor_unwritable(descriptor)
        return None if why is None else f"cannot write {str(path)!r}: {why}"
    try:
        target = _written_path(path)
        folder = target.parent
        if not folder.is_dir():
            why = "is not a directory" if folder.exists() else "does not exist"
            return f"cannot write {str(path)!r}: {str(folder)!r} {why}"
        try:
            os.stat(target)  # what is there: a loop or a name too long raises
        except FileNotFoundError:
            tempfile.TemporaryFile(dir=folder).close()  # a new file
            return None
        if target.is_dir():
            return f"cannot write {str(path)!r}: it is a directory"
        if target.is_file():
            with target.open("ab"):
                pass
        # else a pipe or a device: opening it would be a reader's end of file
    except OSError as exc:
        return f"cannot write {str(path)!r}: {exc.strerror or exc}"
    return None


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose help and version may fail to be written.

    argparse drops the error of writing them (a full disk, a reader gone):
    status 0 for output lost. Written and flushed here, the error reaches
    :func:`main`, which reports it as for any other output; errors of
    writing a message to standard error are still dropped.
    """

    def _print_message(self, message: str, file: Any = None) -> None:
        if not message:
            return
        stream = file or sys.stderr
        try:
            stream.write(message)
            stream.flush()
        except OSError:
            if stream is sys.stdout:  # the output asked for (help, version)
                raise
            # a message on standard error: the status says it (2 for a
            # mistake in the options), as argparse has it


class _ClosedOutput(io.TextIOBase):
    """Standard output closed from the start (``>&-``): writing it fails.

    Python has None there, and ``print`` to None writes nothing, silently.
    """

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``s2nn-xp``."""
    parser = _Parser(
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
    plot.add_argument("--out", type=_output_path, help="PNG, SVG or PDF file to write")
    plot.add_argument(
        "--alpha",
        type=parse_parameter,
        action="append",
        help="alpha of one curve (repeat, with --beta, for more)",
    )
    plot.add_argument(
        "--beta",
        type=parse_parameter,
        action="append",
        help="beta of one curve (as many as --alpha)",
    )
    plot.set_defaults(run=run_plot)

    bench = sub.add_parser(
        "bench",
        help="time every public function against the memory floor",
        description=run_bench.__doc__,
    )
    bench.add_argument(
        "--backend",
        nargs="+",
        action="extend",
        metavar="B",
        help=f"any of {', '.join(BACKENDS)} (default: all installed with a device)",
    )
    add_timing_options(bench, DEFAULT_SIZES, DEFAULT_DTYPES, repeats=15)
    bench.add_argument(
        "--json",
        type=_output_path,
        metavar="FILE",
        help="also write every figure as JSON (- for standard output, the table "
        "then going to standard error)",
    )
    bench.set_defaults(run=run_bench)
    return parser


# The exit status of a process that SIGPIPE ends: 128 + 13.
_BROKEN_PIPE = 141
# The errors of writing to standard output that are the output's, not ours
# (EAGAIN: a pipe that another process made non-blocking, full).
_OUTPUT_ERRORS = frozenset(
    {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG, errno.EBADF, errno.EAGAIN}
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``s2nn-xp`` with `argv` (default: the command line)."""
    # A stream closed from the start (`>&-`) is None in Python, and print()
    # to None writes to stdout: output fails when it is written (status 1),
    # diagnostics go nowhere (into stdout, they broke `--json -`).
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()
    if sys.stderr is None:
        _silence_standard_error()
    for stream in (sys.stdout, sys.stderr):
        # A path or message with characters the terminal's encoding lacks
        # (a non-ASCII file name under LANG=C) is printed escaped, not raised.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    parser = build_parser()
    command = "s2nn-xp"
    try:
        args = parser.parse_args(argv)
        command = f"s2nn-xp {args.command}"
        code: int = args.run(args)
    except _UsageError as exc:
        parser.exit(2, f"{command}: error: {exc}\n")
    except KeyboardInterrupt:
        # Ctrl-C: one line and the shell's code for SIGINT, not a traceback.
        parser.exit(130, f"\n{command}: interrupted\n")
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, with the status of
        # a Unix tool that SIGPIPE ends (128 + 13; 1 is a backend's
        # disagreement); stdout goes to devnull so that the flush at exit
        # does not raise.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _BROKEN_PIPE
    except OSError as exc:
        # Writing the output (a full disk, a failing device, a closed or
        # read-only stdout): one line. Any other OSError (a library that
        # fails to load) keeps its traceback.
        if exc.filename is not None or exc.errno not in _OUTPUT_ERRORS:
            raise
        parser.exit(1, f"{command}: error: cannot write output: {exc}\n")
    return code
