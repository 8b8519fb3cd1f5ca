"""A read-only view of a release's record: what the archived notebook's cells display.

`ArchiveView(".")` folds the journal in a release directory without taking its lock, so the
archived ipynb can be re-executed (nbval) inside the archive and reproduce its stored outputs
exactly: every output is a function of the journal alone (never of the clock, the config or the
network). Charts are inline SVG built here from recorded `sample` events, so they render offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..eventtext import describe_event
from ..gates import GATE_IDS, SECTIONS, get_gate
from ..journal import JOURNAL_NAME, Event, read_events
from ..results import SYMBOLS, GateResult, StatusTable
from ..state import ReleaseState, fold
from .files import CHANGELOG
from .incidents import Incident, IncidentList, incidents_from_events


def sample_rows(events: Iterable[Event]) -> list[dict[str, Any]]:
    """Monitoring samples as flat rows `{seq, gate, ts, at, ok, values}` (tolerant of shapes).

    The window records `Sample.to_dict()`, either as the payload or under `sample`; a `gate`
    key says which window (C1 soak, D7 monitoring) recorded it.
    """
    rows = []
    for ev in events:
        if ev.type != "sample":
            continue
        p = ev.payload
        s = p.get("sample") if isinstance(p.get("sample"), dict) else p
        values = (
            s.get("values")
            if isinstance(s.get("values"), dict)
            else {
                k: v
                for k, v in s.items()
                if isinstance(v, int | float) and not isinstance(v, bool) and k != "ts"
            }
        )
        rows.append(
            {
                "seq": ev.seq,
                "gate": p.get("gate") or s.get("gate"),
                "ts": s.get("ts"),
                "at": s.get("at") or ev.ts,
                "ok": s.get("ok", True),
                "values": values,
            }
        )
    return rows


@dataclass(frozen=True)
class Chart:
    """One metric over time as a small inline SVG (no scripts, no external assets)."""

    metric: str
    points: tuple[tuple[float, float | None], ...]
    gate: str | None = None
    width: int = 560
    height: int = 120

    def svg(self) -> str:
        pad_l, pad_r, pad_t, pad_b = 56, 8, 18, 18
        w, h = self.width, self.height
        pts = [(x, y) for x, y in self.points if y is not None]
        title = html.escape(f"{self.gate + ' · ' if self.gate else ''}{self.metric}")
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img" aria-label="{title}" style="font-family:system-ui,sans-serif;font-size:11px">'
            f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff" stroke="#d0d7de"/>'
            f'<text x="{pad_l}" y="12" fill="#24292f">{title} ({len(pts)} samples)</text>'
        )
        if not pts:
            return head + f'<text x="{pad_l}" y="{h // 2}" fill="#9a6700">no data</text></svg>'
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        x0, x1 = min(xs), max(xs)
        y0, y1 = min(0.0, min(ys)), max(ys)
        if y1 == y0:
            y1 = y0 + 1.0
        sx = (w - pad_l - pad_r) / ((x1 - x0) or 1.0)
        sy = (h - pad_t - pad_b) / (y1 - y0)
        coords = " ".join(
            f"{pad_l + (x - x0) * sx:.1f},{h - pad_b - (y - y0) * sy:.1f}" for x, y in pts
        )
        gaps = sum(1 for _, y in self.points if y is None)
        return (
            head
            + f'<text x="4" y="{pad_t + 8}" fill="#57606a">{_fmt(y1)}</text>'
            + f'<text x="4" y="{h - pad_b}" fill="#57606a">{_fmt(y0)}</text>'
            + f'<line x1="{pad_l}" y1="{h - pad_b}" x2="{w - pad_r}" y2="{h - pad_b}" stroke="#d0d7de"/>'
            + f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{coords}"/>'
            + f'<text x="{pad_l}" y="{h - 4}" fill="#57606a">{_dur(x1 - x0)}'
            + (f", {gaps} gap(s)" if gaps else "")
            + "</text></svg>"
        )

    def __repr__(self) -> str:
        ys = [y for _, y in self.points if y is not None]
        if not ys:
            return f"{self.metric}: no data"
        return f"{self.metric}: {len(ys)} samples, min {_fmt(min(ys))}, max {_fmt(max(ys))}, last {_fmt(ys[-1])}"

    def _repr_svg_(self) -> str:
        return self.svg()


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _dur(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def charts_from_samples(rows: list[dict[str, Any]], gate: str | None = None) -> list[Chart]:
    series: dict[tuple[str | None, str], list[tuple[float, float | None]]] = {}
    for i, row in enumerate(rows):
        if gate is not None and row.get("gate") != gate:
            continue
        x = row["ts"] if isinstance(row.get("ts"), int | float) else float(i)
        for metric, value in (row.get("values") or {}).items():
            y = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            series.setdefault((row.get("gate"), metric), []).append((float(x), y))
    return [
        Chart(metric, tuple(pts), g)
        for (g, metric), pts in sorted(series.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
    ]


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

    def __init__(self, directory: str | Path = ".", *, events: list[Event] | None = None) -> None:
        self.directory = Path(directory)
        all_events = events if events is not None else read_events(self.directory / JOURNAL_NAME)
        # The view shows the release as it stood when it was sealed: the `sealed` event itself
        # changes no gate, and excluding it keeps outputs identical before and after sealing.
        self.events = [e for e in all_events if e.type != "sealed"]
        created = self.events[0].payload if self.events else {}
        self.release_id = str(created.get("release_id") or self.directory.resolve().name)
        self.state: ReleaseState = fold(self.release_id, self.events)
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
        figures = tuple(c.svg() for c in charts_from_samples(self.samples(), gid))
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
        return charts_from_samples(self.samples())

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
