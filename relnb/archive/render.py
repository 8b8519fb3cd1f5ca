"""The archived notebook with outputs (ipynb) and a self-contained HTML page, from the journal.

Archiving never re-runs the live notebook (that would call production). Instead the ipynb's code
cells ask an `ArchiveView` of the release directory for each recorded result, and each stored
output is exactly what that cell produces, so `pytest --nbval` inside the archive re-executes
the cells offline and compares every output (text/plain, text/html, SVG): the record checks
itself. The HTML page embeds the same renderings plus the notebook source, with inline CSS and
inline SVG only: no script, stylesheet or image is loaded from anywhere.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ..eventtext import md_code, md_escape, md_sanitize
from ..gates import SECTIONS, Kind, gates_in
from .record import ArchiveView


def _bundle(obj: Any) -> dict[str, str]:
    """What IPython's display formatter produces for our objects (their mimebundle)."""
    data = {"text/plain": repr(obj)}
    if hasattr(obj, "_repr_html_"):
        data["text/html"] = obj._repr_html_()
    if hasattr(obj, "_repr_svg_"):
        data["image/svg+xml"] = obj._repr_svg_()
    return data


def _template_call(gate_id: str, kind: Kind) -> str:
    var = gate_id.lower()
    if kind is Kind.SIGN_OFF:
        return f'{var} = release.check("{gate_id}", submitted={var}_form.value)'
    if kind is Kind.ACTION:
        return f'{var} = release.act("{gate_id}", confirmed={var}_go)'
    return f'{var} = release.check("{gate_id}")'


def notebook_cells(view: ArchiveView, changelog: str | None) -> list[tuple[str, str, Any]]:
    """(cell type, source, object shown) in template order; markdown cells show nothing."""
    c = view.info

    def md(value: Any) -> str:
        return md_escape(str(value))

    cells: list[tuple[str, str, Any]] = [
        (
            "markdown",
            f"# Release {md(view.release_id)} — sealed record\n\n"
            f"Version **{md(c.get('version'))}**, environment **{md(c.get('environment'))}**, "
            f"git `{md_code(str(c.get('git_sha')))}`, created by {md((c.get('author') or {}).get('name'))}.\n\n"
            "Each code cell reads the recorded result from the journal beside this notebook "
            "(nothing is re-run); the comment above it is the live notebook's cell. The "
            "notebook source that ran is archived next to this file.",
            None,
        ),
        (
            "code",
            'from relnb.archive import ArchiveView\n\nrecord = ArchiveView(".", marks=True)\nrecord',
            view,
        ),
    ]
    for letter, title in SECTIONS.items():
        lines = [f"## {letter}) {title}", ""]
        for g in gates_in(letter):
            lines.append(
                f"- **{g.id}** {g.title}{' *(optional)*' if g.optional else ''} — {g.kind}"
            )
        cells.append(("markdown", "\n".join(lines), None))
        for g in gates_in(letter):
            src = f'# notebook: {_template_call(g.id, g.kind)}\nrecord.result("{g.id}")'
            cells.append(("code", src, view.result(g.id)))
        cells.append(("code", f'record.section("{letter}")', view.section(letter)))
    charts = view.charts()
    cells.append(
        (
            "markdown",
            "## Monitoring samples" + ("" if charts else "\n\nNo samples were recorded."),
            None,
        )
    )
    for i, chart in enumerate(charts):
        cells.append(("code", f"record.charts()[{i}]", chart))
    cells.append(("markdown", "## Incidents", None))
    cells.append(("code", "record.incidents()", view.incidents()))
    # the section escapes what it quotes; sanitised again here, as archives may carry one
    # written before it did (issue 22 item 3)
    cells.append(
        (
            "markdown",
            "## Changelog\n\n" + (md_sanitize(changelog) if changelog else "No changelog section was produced."),
            None,
        )
    )
    cells.append(("markdown", "## Timeline", None))
    cells.append(("code", "record.timeline()", view.timeline()))
    cells.append(("markdown", "## Release status", None))
    cells.append(("code", "record.status()", view.status()))
    return cells


def render_ipynb(view: ArchiveView, changelog: str | None) -> str:
    """nbformat 4.5 JSON; code cells numbered with execute_result outputs (nbval accepts it)."""
    nb_cells = []
    n = 0
    for i, (kind, source, obj) in enumerate(notebook_cells(view, changelog)):
        cid = f"cell-{i:03d}"
        if kind == "markdown":
            nb_cells.append({"cell_type": "markdown", "id": cid, "metadata": {}, "source": source})
            continue
        n += 1
        outputs = []
        if obj is not None and source.rstrip().splitlines()[-1].strip() not in ("",):
            outputs.append(
                {
                    "output_type": "execute_result",
                    "execution_count": n,
                    "metadata": {},
                    "data": _bundle(obj),
                }
            )
        nb_cells.append(
            {
                "cell_type": "code",
                "id": cid,
                "execution_count": n,
                "metadata": {},
                "outputs": outputs,
                "source": source,
            }
        )
    nb = {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "relnb": {"release_id": view.release_id, "archive": True},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#24292f}
h1{font-size:24px}h2{font-size:18px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:2px 8px;vertical-align:top;border-bottom:1px solid #eaeef2}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
.cell-src{color:#57606a;font-family:ui-monospace,monospace;font-size:12px;margin:10px 0 0}
.meta td:first-child{color:#57606a}
"""


def _md_to_html(text: str) -> str:
    """Enough Markdown for our own cells and changelog (headings, lists, bold, code)."""
    import re

    out, in_list = [], False
    for line in text.splitlines():
        # what the Markdown encodes (entities, backslash escapes) shown as the literal text it is
        esc = html.escape(html.unescape(line))
        esc = re.sub(r"\\([\\\[\]`*_])", lambda m: f"&#{ord(m.group(1))};", esc)
        esc = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", esc)
        esc = re.sub(r"`([^`]+)`", r"<code>\1</code>", esc)
        esc = re.sub(r"\*(.+?)\*", r"<i>\1</i>", esc)
        esc = re.sub(r"\[([^\]]+)\]\((?:[^)]+)\)", r"\1", esc)  # links become plain text
        m = re.match(r"^(#{1,6}) (.*)$", esc)
        if line.startswith("- ") or (line.startswith("  ") and in_list):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{esc[2:]}</li>" if line.startswith("- ") else f"<br>{esc.strip()}")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if m:
            level = min(len(m.group(1)) + 1, 6)
            out.append(f"<h{level}>{m.group(2)}</h{level}>")
        elif esc.strip():
            out.append(f"<p>{esc}</p>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def render_html(
    view: ArchiveView,
    changelog: str | None,
    notebook_source: str,
    notebook_name: str,
    meta: dict[str, Any],
) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>relnb release {html.escape(view.release_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in meta.items()
    )
    parts.append(f"<table class='meta'>{rows}</table>")
    for kind, source, obj in notebook_cells(view, changelog):
        if kind == "markdown":
            parts.append(_md_to_html(source))
            continue
        first = source.splitlines()[0]
        if first.startswith("# notebook: "):
            parts.append(f"<div class='cell-src'>{html.escape(first[12:])}</div>")
        if obj is None:
            continue
        if hasattr(obj, "_repr_html_"):
            parts.append(obj._repr_html_())
        elif hasattr(obj, "_repr_svg_"):
            parts.append(f"<div class='relnb-chart'>{obj._repr_svg_()}</div>")
        else:
            parts.append(f"<pre>{html.escape(repr(obj))}</pre>")
    parts.append(
        f"<h2>Notebook source ({html.escape(notebook_name)})</h2>"
        f"<details><summary>show</summary><pre>{html.escape(notebook_source)}</pre></details>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
