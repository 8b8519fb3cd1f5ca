"""A read-only view of a release's record: what the archived notebook's cells display.

`ArchiveView(".")` folds the journal in a release directory without taking its lock, so the
archived ipynb can be re-executed (nbval) inside the archive and reproduce its stored outputs
exactly: every output is a function of the journal alone (never of the clock, the config or the
network). Charts are relnb.metrics.svgchart's inline SVG of the recorded `sample` events (the
renderer the live result uses too), so they render offline and identically on every re-run.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..eventtext import describe_event
from ..gates import GATE_IDS, SECTIONS, get_gate
from ..journal import JOURNAL_NAME, Event, read_events
from ..metrics.svgchart import Chart, chart_style, charts_from_samples, sample_rows, window_figures
from ..results import SYMBOLS, GateResult, StatusTable
from ..state import ReleaseState, fold
from .files import CHANGELOG
from .incidents import Incident, IncidentList, incidents_from_events


class Timeline:
    def __init__(self, events: list[Event]) -> None:
        self.rows = [
            (ev.seq, ev.ts, ev.type, line.text())
            for ev in events
            if (line := describe_event(ev)) is not None
        ]

    def __repr__(self) -> str:
        return (
            "\n".join(f"{ts[:19]}  #{seq:<4} {text}" for seq, ts, _t, text in self.rows)
            or "no events"
        )

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr data-type='{html.escape(t)}'><td>{html.escape(ts[:19])}</td><td>#{seq}</td>"
            f"<td>{html.escape(text)}</td></tr>"
            for seq, ts, t, text in self.rows
        )
        return f"<table class='relnb-timeline' style='font-size:12px'>{body}</table>"


class ArchiveView:
    """The record of one release, read from `<directory>/journal.jsonl` (no lock, no config)."""

    def __init__(
        self, directory: str | Path = ".", *, events: list[Event] | None = None, marks: bool = False
    ) -> None:
        self.directory = Path(directory)
        # Charts with the rules' limits and the breaches (archives sealed since relnb draws them
        # say so in their first cell; older ones re-render exactly as they were sealed).
        self.marks = marks
        all_events = events if events is not None else read_events(self.directory / JOURNAL_NAME)
        # The view shows the release as it stood when it was sealed: the `sealed` event itself
        # changes no gate, and excluding it keeps outputs identical before and after sealing.
        self.events = [e for e in all_events if e.type != "sealed"]
        created = self.events[0].payload if self.events else {}
        self.release_id = str(created.get("release_id") or self.directory.resolve().name)
        self.state: ReleaseState = fold(self.release_id, self.events)
        # the style the release was created with draws its charts (none recorded: style 1)
        self.chart_style = chart_style(self.state.created)
        self._samples: list[dict[str, Any]] | None = None

    @property
    def info(self) -> dict[str, Any]:
        return self.state.created

    def samples(self) -> list[dict[str, Any]]:
        if self._samples is None:
            self._samples = sample_rows(self.events)
        return self._samples

    def result(self, gate_id: str) -> GateResult:
        gid = get_gate(gate_id).id
        res = self.state.result(gid)
        figures = window_figures(
            self.samples(), gid, res.evidence if self.marks else None, self.chart_style
        )
        return res.with_(figures=figures) if figures else res

    def section(self, letter: str) -> StatusTable:
        letter = letter.upper()
        return StatusTable(
            self.release_id,
            tuple(self.state.result(g) for g in GATE_IDS if g[0] == letter),
            SECTIONS,
        )

    def status(self) -> StatusTable:
        return self.state.table()

    def incidents(self) -> IncidentList:
        return IncidentList(self.incident_records())

    def incident_records(self) -> list[Incident]:
        return incidents_from_events(self.events)

    def charts(self) -> list[Chart]:
        return charts_from_samples(self.samples(), style=self.chart_style)

    def timeline(self) -> Timeline:
        return Timeline(self.events)

    def changelog(self) -> str | None:
        path = self.directory / CHANGELOG
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def __repr__(self) -> str:
        c = self.info
        return (
            f"release {self.release_id}: version {c.get('version')}, environment {c.get('environment')}, "
            f"git {str(c.get('git_sha'))[:12]}, verdict {self.state.verdict()}"
        )

    def _repr_html_(self) -> str:
        return f"<p class='relnb-release'><b>{html.escape(repr(self))}</b></p>"


def symbol(status: str) -> str:
    from ..results import Status

    return SYMBOLS[Status(status)]


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
