"""Directives that generate documentation from the code and from data.

``.. backend-table::`` is the capability table: its rows come from
:data:`s2nn_xp._backends.BACKENDS` and each adapter's ``DISPATCHED`` tuple, so
the page cannot drift from what the package does. ``.. bench-table:: FILE``
prints the records of an ``s2nn-xp bench --json`` file.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

from s2nn_xp._backends import BACKENDS
from s2nn_xp._cli import BENCH_HEADER, bench_row

HEADER = (
    "backend",
    "how s2nn attaches the gradient",
    "autodiff transforms",
    "dtypes",
    "devices",
    "fused kernels",
    "adapter implements",
)


def rows() -> list[tuple[str, ...]]:
    """One row of text cells per backend."""
    return [
        (
            b.name,
            b.autodiff,
            ", ".join(b.transforms) or "- (use s2nn_xp.vjp)",
            ", ".join(b.dtypes),
            ", ".join(kind.upper() for kind in b.device_kinds),
            b.fused,
            ", ".join(b.dispatched()) or "- (array-API math)",
        )
        for b in BACKENDS.values()
    ]


def table(header, body) -> nodes.table:
    """A docutils table of text cells."""
    node = nodes.table()
    group = nodes.tgroup(cols=len(header))
    node += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)
    head, rows_node = nodes.thead(), nodes.tbody()
    for container, cells in ((head, [header]), (rows_node, body)):
        for cells_of_row in cells:
            row = nodes.row()
            for text in cells_of_row:
                entry = nodes.entry()
                entry += nodes.paragraph(text=str(text))
                row += entry
            container += row
    group += head
    group += rows_node
    return node


class BackendTable(Directive):
    """Insert the capability table."""

    def run(self):
        """The table node."""
        return [table(HEADER, rows())]


class BenchTable(Directive):
    """Insert the figures of an ``s2nn-xp bench --json`` file."""

    required_arguments = 1

    def run(self):
        """The table node."""
        source = Path(self.state.document.settings.env.srcdir) / self.arguments[0]
        records = json.loads(source.read_text())
        return [table(BENCH_HEADER, [bench_row(r) for r in records])]


def setup(app):
    """Register the directives."""
    app.add_directive("backend-table", BackendTable)
    app.add_directive("bench-table", BenchTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
