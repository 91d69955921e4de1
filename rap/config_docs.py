"""The docs' configuration tables, rendered from rap/schemas/rap-config.json.

A doc holds a generated table between two marker lines::

    <!-- rap-config:begin VIEW -->
    ...
    <!-- rap-config:end -->

where VIEW is ``algorithm`` (every field: default, range, unit, variable,
option, meaning) or ``deploy`` (variable, option, default, range). Only the
lines between the markers are rewritten; the markers' indentation is kept,
so a table may sit inside a list item. ``python3 -m rap.config_docs`` rewrites
every doc; ``--check`` only says which differ (tests/unit/test_config_table.py
fails on any).

Not here: the table itself (rap.config reads it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rap.config import CONSTRAINTS, FIELDS, Field
from rap.paths import REPO

DOCS = (REPO / "docs" / "algorithm.md", REPO / "docs" / "deploy.md")
REGENERATE = "python3 -m rap.config_docs"
_REGION = re.compile(r"^(?P<indent>[ \t]*)<!-- rap-config:begin (?P<view>\w+) -->\n"
                     r"(?P<body>.*?)"
                     r"^(?P=indent)<!-- rap-config:end -->$", re.MULTILINE | re.DOTALL)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _algorithm(fields: list[Field]) -> list[str]:
    lines = _table(
        ["field", "default", "allowed", "unit", "rap.go environment variable", "`invoke deploy`", "meaning"],
        [[f"`{f.name}`", f.default_text, f.allowed, f.unit, f"`{f.env}`", f"`--{f.option}`", f.help]
         for f in fields])
    lines.append("")
    for c in CONSTRAINTS:
        lines.append(f"The sum `{' + '.join(c.fields)}` must be > 0; otherwise {c.help}.")
    for f in fields:
        if f.scope != "decision":
            lines.append(f"`{f.name}` is read only by the {f.scope}: it is not part of a vector's `config`.")
    return lines


def _deploy(fields: list[Field]) -> list[str]:
    return _table(["variable", "from", "default", "allowed"],
                  [[f"`{f.env}`", f"`--{f.option}`", f.default_text, f.allowed] for f in fields])


VIEWS = {"algorithm": _algorithm, "deploy": _deploy}


def render(view: str) -> list[str]:
    """The lines of one view, from the table."""
    return VIEWS[view](list(FIELDS.values()))


def rendered(text: str) -> str:
    """``text`` with every marked region rendered afresh."""
    def region(m: re.Match) -> str:
        indent, view = m["indent"], m["view"]
        if view not in VIEWS:
            raise ValueError(f"rap-config region {view!r}: known views are {', '.join(VIEWS)}")
        # blank lines around the table, so no Markdown reader takes a marker for a row
        body = "".join(f"{indent}{line}".rstrip() + "\n" for line in ["", *render(view), ""])
        return f"{indent}<!-- rap-config:begin {view} -->\n{body}{indent}<!-- rap-config:end -->"
    return _REGION.sub(region, text)


def stale(docs=DOCS) -> list[Path]:
    """The docs whose marked regions differ from the table (a doc without a region is stale too)."""
    return [p for p in docs if not _REGION.search(t := p.read_text()) or rendered(t) != t]


def write(docs=DOCS) -> list[Path]:
    """Rewrite the marked regions; returns the docs that changed."""
    changed = []
    for p in docs:
        text = p.read_text()
        new = rendered(text)
        if new != text:
            p.write_text(new)
            changed.append(p)
    return changed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv not in ([], ["--check"]):
        print(f"usage: {REGENERATE} [--check]", file=sys.stderr)
        return 2
    if argv:
        out = stale()
        for p in out:
            print(f"{p.relative_to(REPO)}: differs from rap/schemas/rap-config.json; run `{REGENERATE}`")
        return 1 if out else 0
    for p in write():
        print(f"rewrote {p.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
