"""Directives that generate documentation from the code and from data.

``.. backend-table::`` is the capability table: its rows come from
:data:`s2nn_xp._backends.BACKENDS` (each record's ``implements``), so
the page cannot drift from what the package does; ``:backends-with:`FIELD```
names the backends whose record sets a field, in a sentence. ``.. bench-table:: FILE``
prints the records of an ``s2nn-xp bench --json`` file, one table per backend,
and ``.. bench-command:: FILE`` the command that writes such a file again.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

from s2nn_xp._backends import BACKENDS
from s2nn_xp._cli import BENCH_HEADER, bench_row, build_parser, size_label

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
            ", ".join(b.implements) or "- (array-API math)",
        )
        for b in BACKENDS.values()
    ]


def table(header, body, title: str | None = None) -> nodes.table:
    """A docutils table of text cells, under `title` if one is given."""
    node = nodes.table()
    if title is not None:
        node += nodes.title(text=title)
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


def backends_with(name, rawtext, text, lineno, inliner, options=None, content=()):
    """``:backends-with:`FIELD``` -- the backends whose record sets FIELD, by name.

    A list of libraries by capability in a sentence, from the registry.
    """
    if not all(hasattr(b, text) for b in BACKENDS.values()):
        message = inliner.reporter.error(f"no record field {text!r}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    names = [b.name for b in BACKENDS.values() if getattr(b, text)]
    return [nodes.literal(rawtext, ", ".join(names))], []


def _bench_source(directive: Directive) -> Path:
    """The JSON file named by `directive`; a change to it rebuilds the page."""
    env = directive.state.document.settings.env
    source = Path(env.srcdir) / directive.arguments[0]
    env.note_dependency(str(source))
    return source


class BenchTable(Directive):
    """Insert the figures of an ``s2nn-xp bench --json`` file, per backend."""

    required_arguments = 1

    def run(self):
        """One table node per backend."""
        records = json.loads(_bench_source(self).read_text())
        tables = []
        for backend in dict.fromkeys(r["backend"] for r in records):
            body = [bench_row(r) for r in records if r["backend"] == backend]
            node = table(BENCH_HEADER, body, title=backend)
            node["classes"].append("bench")
            tables.append(node)
        return tables


class BenchCommand(Directive):
    """Insert the ``s2nn-xp bench`` command that writes the file's records.

    The command is read back by ``s2nn-xp``'s own parser: a page cannot show a
    command that the CLI no longer takes.
    """

    required_arguments = 1

    def run(self):
        """A literal block with the command."""
        source = _bench_source(self)
        records = json.loads(source.read_text())
        output = source.relative_to(
            Path(self.state.document.settings.env.srcdir).parent
        )

        def listed(key: str) -> str:
            return " ".join(dict.fromkeys(str(r[key]) for r in records))

        sizes = " ".join(size_label(n) for n in sorted({r["size"] for r in records}))
        # Files from before records said how many runs they took have no count.
        repeats = {r.get("repeats") for r in records} - {None}
        count = f" --repeats {repeats.pop()}" if len(repeats) == 1 else ""
        command = (
            f"s2nn-xp bench --backend {listed('backend')} \\\n"
            f"    --size {sizes} \\\n"
            f"    --dtype {listed('dtype')}{count} --json {output.as_posix()}"
        )
        try:
            build_parser().parse_args(shlex.split(command.replace("\\\n", ""))[1:])
        except SystemExit:
            raise self.error(f"s2nn-xp does not take: {command}") from None
        return [nodes.literal_block(command, command, language="bash")]


def setup(app):
    """Register the directives."""
    app.add_directive("backend-table", BackendTable)
    app.add_role("backends-with", backends_with)
    app.add_directive("bench-table", BenchTable)
    app.add_directive("bench-command", BenchCommand)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
