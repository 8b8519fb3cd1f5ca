"""Static charts of a window gate's recorded samples: one renderer for the live notebook's result
and for the sealed archive.

Inline SVG built here, with no scripts, assets or third-party renderer, for two reasons. A sealed
archive is re-executed by nbval on every CI run and must reproduce its stored outputs byte for
byte, for as long as the archive is kept: a renderer whose output changes with its version (as
vl-convert's does) would break old records. And the live result and the archive must show the
same picture of the same samples. The chart is a function of the recorded samples alone, plus,
with `marks`, of the gate's recorded evidence (its rules' limits and its breaches): archives
sealed before marks existed call it without them and render exactly as they always did.

The streaming chart shown while a window runs (relnb.metrics.charts, Vega-Lite through altair)
is interactive and redrawn every tick; it is not a record and is not archived.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..journal import Event


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
    limit: float | None = None  # the rule's threshold, drawn as a dashed line
    breaches: tuple[tuple[float, float], ...] = ()  # (start, end) of each breach, shaded

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
        if self.limit is not None:
            y1 = max(y1, self.limit)
        if y1 == y0:
            y1 = y0 + 1.0
        sx = (w - pad_l - pad_r) / ((x1 - x0) or 1.0)
        sy = (h - pad_t - pad_b) / (y1 - y0)
        coords = " ".join(
            f"{pad_l + (x - x0) * sx:.1f},{h - pad_b - (y - y0) * sy:.1f}" for x, y in pts
        )
        gaps = sum(1 for _, y in self.points if y is None)
        spans = "".join(
            f'<rect class="breach" x="{pad_l + (max(a, x0) - x0) * sx:.1f}" y="{pad_t}" '
            f'width="{max((min(b, x1) - max(a, x0)) * sx, 2.0):.1f}" height="{h - pad_t - pad_b}" '
            f'fill="#cf222e" fill-opacity="0.15"><title>breach</title></rect>'
            for a, b in self.breaches
            if b >= x0 and a <= x1
        )
        limit = (
            f'<line class="limit" x1="{pad_l}" y1="{h - pad_b - (self.limit - y0) * sy:.1f}" '
            f'x2="{w - pad_r}" y2="{h - pad_b - (self.limit - y0) * sy:.1f}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"><title>limit {_fmt(self.limit)}</title></line>'
            if self.limit is not None
            else ""
        )
        return (
            head
            + f'<text x="4" y="{pad_t + 8}" fill="#57606a">{_fmt(y1)}</text>'
            + f'<text x="4" y="{h - pad_b}" fill="#57606a">{_fmt(y0)}</text>'
            + f'<line x1="{pad_l}" y1="{h - pad_b}" x2="{w - pad_r}" y2="{h - pad_b}" stroke="#d0d7de"/>'
            + spans
            + limit
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


def charts_from_samples(
    rows: list[dict[str, Any]], gate: str | None = None, evidence: Mapping[str, Any] | None = None
) -> list[Chart]:
    """One chart per (gate, metric); with the gate's `evidence`, its rules' limits and breaches."""
    limits: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for rule in (evidence or {}).get("rules") or []:
        if isinstance(rule, Mapping) and isinstance(rule.get("max"), int | float):
            limits.setdefault(str(rule.get("metric")), float(rule["max"]))
    for b in (evidence or {}).get("breaches") or []:
        if isinstance(b, Mapping) and isinstance(b.get("start_ts"), int | float):
            end = b.get("end_ts") if isinstance(b.get("end_ts"), int | float) else b["start_ts"]
            spans.setdefault(str(b.get("metric")), []).append((float(b["start_ts"]), float(end)))
    series: dict[tuple[str | None, str], list[tuple[float, float | None]]] = {}
    for i, row in enumerate(rows):
        if gate is not None and row.get("gate") != gate:
            continue
        x = row["ts"] if isinstance(row.get("ts"), int | float) else float(i)
        for metric, value in (row.get("values") or {}).items():
            y = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            series.setdefault((row.get("gate"), metric), []).append((float(x), y))
    return [
        Chart(metric, tuple(pts), g, limit=limits.get(metric), breaches=tuple(spans.get(metric, ())))
        for (g, metric), pts in sorted(series.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
    ]


def window_figures(
    rows: list[dict[str, Any]], gate: str, evidence: Mapping[str, Any] | None = None
) -> tuple[str, ...]:
    """The SVG charts a window gate's result shows (live and in the archive alike)."""
    return tuple(c.svg() for c in charts_from_samples(rows, gate, evidence))
