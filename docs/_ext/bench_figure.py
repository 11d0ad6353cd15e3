"""The performance page's figures, drawn from ``s2nn-xp bench --json`` records.

Nothing here names a backend or an operation: a panel is drawn for every
backend the records have and a line for every case and anchor, so a case that
``s2nn-xp bench`` learns to time appears on the page without a change here.
How a record is read:

* ``backend``, ``dtype`` and ``size`` say where it was measured (and
  ``version``, where present, which release of the backend);
* ``op``, and any other text or true/false field whose value differs between
  records of the same ``op``, say *what* was timed: the case, one line;
* ``seconds`` is s2nn_xp's median, ``floor_seconds`` the memory floor of the
  same bytes, and ``NAME_seconds`` for each anchor ``NAME`` that ``s2nn-xp
  bench`` knows (:data:`s2nn_xp._cli.ANCHORS`: spikingjelly, braintools) the
  framework-bound S2NN doing the same work on the same arrays;
* a record without ``seconds`` (a failed run) is not drawn; the other fields
  (ratios, the name of the floor) are derived, and not read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator

from s2nn_xp._cli import ANCHORS

PLACE = ("backend", "dtype", "size", "version")
OURS, FLOOR = "seconds", "floor_seconds"
PANELS_PER_ROW = 3
FLOOR_STYLE = {"color": "0.45", "linestyle": ":", "linewidth": 2.2}
STYLES = {
    "ours": {"linestyle": "-", "marker": "o", "markersize": 3.5},
    "anchor": {"linestyle": "--", "marker": "s", "markersize": 3.5},
    "floor": FLOOR_STYLE,
}
# An anchor's line has the colour of the case it was timed beside, dashed,
# with its library's marker.
ANCHOR_MARKERS = ("s", "^", "D", "v")
KIND_ORDER = ("ours", "anchor", "floor")  # in the legend


@dataclass
class Series:
    """One line of a panel: seconds per call against the number of values."""

    label: str
    kind: str  # "ours", "anchor" or "floor"
    points: dict[int, float] = field(default_factory=dict)
    floor: dict[int, float] = field(default_factory=dict)  # of an "ours" line
    beside: str = ""  # of an "anchor" line: the case it does the work of

    def xy(self) -> tuple[list[int], list[float]]:
        """The sizes and times in increasing size."""
        sizes = sorted(self.points)
        return sizes, [self.points[s] for s in sizes]

    def ratios(self) -> tuple[list[int], list[float]]:
        """The sizes and time / memory floor, of an "ours" line."""
        sizes, seconds = self.xy()
        return sizes, [t / self.floor[n] for n, t in zip(sizes, seconds, strict=True)]


@dataclass
class Panel:
    """The lines of one backend."""

    title: str
    lines: list[Series]


def load(path: str | Path) -> list[dict]:
    """The records of an ``s2nn-xp bench --json`` file."""
    return json.loads(Path(path).read_text())


def _is_figure(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def case_fields(records: Sequence[dict]) -> list[str]:
    """``op``, then the text and true/false fields that tell its cases apart.

    A field whose value follows from the op (the name of its floor) or is the
    same for all (the version) says nothing about the case.
    """
    by_op: dict[str, list[dict]] = {}
    for record in records:
        by_op.setdefault(record["op"], []).append(record)
    fields: dict[str, None] = {"op": None}
    for group in by_op.values():
        for key in dict.fromkeys(k for record in group for k in record):
            values = [record.get(key) for record in group]
            differs = len({json.dumps(value) for value in values}) > 1
            if key not in PLACE and differs and not any(map(_is_figure, values)):
                fields[key] = None
    return list(fields)


def case_label(record: dict, fields: Sequence[str]) -> str:
    """``forward+backward, learnable``: the op and the case's other fields."""
    parts = []
    for key in fields:
        value = record.get(key)
        if value is not None and value is not False:
            parts.append(key if value is True else str(value))
    return ", ".join(parts)


def panels(
    records: Sequence[dict], keep: Callable[[dict], bool] = lambda _: True
) -> dict[str, Panel]:
    """Every line of every backend's panel, in the order the records give them.

    `keep` chooses the records drawn; their anchors and floors come along.

    Examples
    --------
    A case the bench learns to time (here a ``learnable`` flag) is a line of
    its own with no change here; an anchor timed beside one case only is
    named by its library; a failed run (no ``seconds``) is left out:

    >>> where = {"backend": "torch", "dtype": "float32", "version": "2.13.0"}
    >>> def timed(op, size, seconds, **more):
    ...     floor = {"floor_seconds": size * 1e-9, "floor": "copy + x*g"}
    ...     return {**where, "op": op, "size": size, "seconds": seconds,
    ...             **floor, **more}
    >>> records = [
    ...     timed("forward+backward", 1024, 2e-5, spikingjelly_seconds=3e-5),
    ...     timed("forward+backward", 1024, 4e-5, learnable=True),
    ...     timed("forward+backward", 4096, 3e-5, spikingjelly_seconds=5e-5),
    ...     timed("forward+backward", 4096, 6e-5, learnable=True),
    ...     {**where, "op": "gradient", "size": 1024, "error": "MemoryError"},
    ... ]
    >>> panel = panels(records)["torch"]
    >>> panel.title
    'torch 2.13.0'
    >>> [(s.kind, s.label) for s in panel.lines]  # doctest: +NORMALIZE_WHITESPACE
    [('ours', 'forward+backward'), ('anchor', 'spikingjelly'),
     ('ours', 'forward+backward, learnable'), ('floor', 'memory floor')]
    >>> panel.lines[2].xy()
    ([1024, 4096], [4e-05, 6e-05])
    """
    timed = [r for r in records if _is_figure(r.get(OURS)) and keep(r)]
    dtypes = dict.fromkeys(r["dtype"] for r in timed)
    result: dict[str, Panel] = {}
    for backend in dict.fromkeys(r["backend"] for r in timed):
        ours = [r for r in timed if r["backend"] == backend]
        fields = case_fields(ours)
        lines: dict[tuple[str, str], Series] = {}
        for record in ours:
            case = case_label(record, fields)
            if len(dtypes) > 1:
                case = f"{case} ({record['dtype']})"
            line = lines.setdefault((case, "ours"), Series(case, "ours"))
            line.points[record["size"]] = record[OURS]
            line.floor[record["size"]] = record[FLOOR]
            for anchor in ANCHORS:
                if _is_figure(record.get(f"{anchor}_seconds")):
                    label = f"{anchor}, {case}"
                    line = lines.setdefault(
                        (label, "anchor"), Series(label, "anchor", beside=case)
                    )
                    line.points[record["size"]] = record[f"{anchor}_seconds"]
        versions = dict.fromkeys(str(r.get("version", "")) for r in ours)
        title = f"{backend} {next(iter(versions))}" if len(versions) == 1 else backend
        series = list(lines.values())
        result[backend] = Panel(title.strip(), [*series, *_floors(series)])
    _shorten_anchor_labels(result)
    return result


def _floors(lines: Sequence[Series]) -> list[Series]:
    """The floor lines of a panel: one per distinct floor of its cases.

    Cases whose floors are the same timings (the bench times each floor once
    per size and gives it to every case it bounds) share one line.
    """
    floors: dict[tuple, list[str]] = {}
    for line in lines:
        if line.kind == "ours":
            floors.setdefault(tuple(sorted(line.floor.items())), []).append(line.label)
    if len(floors) == 1:
        ((points, _),) = floors.items()
        return [Series("memory floor", "floor", dict(points))]
    return [
        Series(f"memory floor of {', '.join(cases)}", "floor", dict(points))
        for points, cases in floors.items()
    ]


def _shorten_anchor_labels(result: dict[str, Panel]) -> None:
    """``spikingjelly`` for an anchor timed beside one case only."""
    anchor_lines = [
        line
        for panel in result.values()
        for line in panel.lines
        if line.kind == "anchor"
    ]
    for anchor in ANCHORS:
        mine = [line for line in anchor_lines if line.label.startswith(f"{anchor}, ")]
        if len({line.label for line in mine}) == 1:
            for line in mine:
                line.label = anchor


def _time_label(seconds: float, _position: int | None = None) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale * 0.999:
            return f"{seconds / scale:g} {unit}"
    return f"{seconds:g} s"


def _size_label(size: float, _position: int | None = None) -> str:
    exponent = math.log2(size)
    return f"$2^{{{exponent:.0f}}}$" if exponent.is_integer() else ""


def _grid(n_panels: int, height: float) -> tuple[Figure, list[Axes]]:
    columns = min(n_panels, PANELS_PER_ROW)
    rows = math.ceil(n_panels / columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(3.4 * columns, height * rows + 1.1),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    for ax in flat[:n_panels]:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(LogLocator(base=4))
        ax.xaxis.set_major_formatter(FuncFormatter(_size_label))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda *_: ""))
        ax.grid(True, which="major", alpha=0.3)
        ax.set_xlabel("values per call")
    return fig, flat[:n_panels]


def _legend(fig: Figure, handles: dict[tuple[str, str], Line2D]) -> None:
    """One legend under the panels: s2nn_xp's lines, the anchors, the floors.

    In as many columns (up to 3) as fit the figure's width, the figure made
    taller by the legend's height, so that the panels keep theirs: long
    labels (several dtypes' lines) in 3 columns ran past both edges.

    >>> fig, ax = plt.subplots(figsize=(4, 2), layout="constrained")
    >>> label = "s2nn_xp forward+backward learnable (float{})"
    >>> lines = {("ours", label.format(b)): ax.plot([0, 1])[0] for b in (32, 64)}
    >>> _legend(fig, lines)
    >>> bool(fig.legends[0].get_window_extent().width <= fig.bbox.width)
    True
    """
    keys = sorted(handles, key=lambda key: KIND_ORDER.index(key[0]))
    for columns in range(min(len(keys), 3), 0, -1):
        legend = fig.legend(
            [handles[key] for key in keys],
            [label for _, label in keys],
            loc="outside lower center",
            ncol=columns,
            frameon=False,
            fontsize="small",
        )
        extent = legend.get_window_extent()
        if columns == 1 or extent.width <= fig.bbox.width:
            break
        legend.remove()
    fig.set_figheight(fig.get_figheight() + extent.height / fig.dpi)


# The markers of s2nn_xp's cases past the ten colours (a file of two dtypes
# has more cases than that: two cases shared a colour and a marker).
OURS_MARKERS = ("o", "P", "X", "*")


def _colors(records: Sequence[dict]) -> dict[str, tuple[str, str]]:
    """One look per s2nn_xp case, the same in every panel and figure.

    ``(colour, marker)``: the ten colours, then again with the next marker.
    """
    lines = [line for panel in panels(records).values() for line in panel.lines]
    cases = dict.fromkeys(line.label for line in lines if line.kind == "ours")
    return {
        label: (f"C{i % 10}", OURS_MARKERS[i // 10 % len(OURS_MARKERS)])
        for i, label in enumerate(cases)
    }


def _style(line: Series, colors: dict[str, tuple[str, str]]) -> dict:
    """How `line` is drawn: its kind's style, its case's colour (and marker)."""
    style = dict(STYLES[line.kind])
    if line.kind == "ours":
        style["color"], style["marker"] = colors[line.label]
    if line.kind == "anchor":
        style["color"] = colors[line.beside][0]
        library = next(a for a in ANCHORS if line.label.startswith(a))
        style["marker"] = ANCHOR_MARKERS[list(ANCHORS).index(library) % 4]
    return style


def has_backward(record: dict) -> bool:
    """Whether a record times a backward pass, or has an anchor beside it."""
    return "backward" in record["op"] or any(f"{a}_seconds" in record for a in ANCHORS)


def time_per_call(records: Sequence[dict]) -> Figure:
    """Seconds per forward+backward call against the number of values.

    One panel per backend (log-log, shared axes): each s2nn_xp case with a
    backward pass, each anchor library timed beside it, and the memory floor.
    """
    drawn = panels(records, has_backward)
    colors = _colors(records)
    fig, axes = _grid(len(drawn), 2.9)
    handles: dict[tuple[str, str], Line2D] = {}
    for ax, panel in zip(axes, drawn.values(), strict=True):
        for line in panel.lines:
            label = f"s2nn_xp {line.label}" if line.kind == "ours" else line.label
            (handles[line.kind, label],) = ax.plot(*line.xy(), **_style(line, colors))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_time_label))
        ax.set_title(panel.title)
    axes[0].set_ylabel("median time per call")
    _legend(fig, handles)
    return fig


def ratio_to_floor(records: Sequence[dict]) -> Figure:
    """Time / memory floor of every s2nn_xp case against the number of values."""
    drawn = panels(records)
    colors = _colors(records)
    fig, axes = _grid(len(drawn), 2.6)
    handles: dict[tuple[str, str], Line2D] = {}
    for ax, panel in zip(axes, drawn.values(), strict=True):
        for line in panel.lines:
            if line.kind == "ours":
                style = _style(line, colors)
                (handles[line.kind, line.label],) = ax.plot(*line.ratios(), **style)
        ax.axhline(1.0, **FLOOR_STYLE)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.set_title(panel.title)
    axes[0].set_ylabel("time / memory floor (1x: at the floor)")
    _legend(fig, handles)
    return fig
