"""Static charts of a window gate's recorded samples: one renderer for the live notebook's result
and for the sealed archive.

Inline SVG built here, with no scripts, assets or third-party renderer, for two reasons. A sealed
archive is re-executed by nbval on every CI run and must reproduce its stored outputs byte for
byte, for as long as the archive is kept: a renderer whose output changes with its version (as
vl-convert's does) would break old records. And the live result and the archive must show the
same picture of the same samples. The chart is a function of the recorded samples alone, plus,
with `marks`, of the gate's recorded evidence (its rules' limits and its breaches): archives
sealed before marks existed call it without them and render exactly as they always did.

Chart styles. A release records the style its charts are drawn in (`chart_style` in its
release-created event, CHART_STYLE at creation), and every renderer of its record, live or
sealed, reads it back from there: style 1 (seconds, bare numbers, the window's length under an
unlabelled axis) is what a journal without the key gets, so archives sealed before styles existed
re-execute byte for byte; style 2 draws each metric in the unit its text uses (latency in ms,
rates in %, the DLQ as a count of jobs), clock time in UTC on the x axis, and titles on both axes.

The streaming chart shown while a window runs (relnb.metrics.charts, Vega-Lite through altair)
is interactive and redrawn every tick; it is not a record and is not archived.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..journal import Event
from .samples import is_fraction

# What a release created by this relnb records; a journal without the key draws style 1.
CHART_STYLE = 2


def chart_style(created: Mapping[str, Any]) -> int:
    """The chart style a release recorded at creation (its release-created payload).

    A release keeps the style it was created with, so what its result showed live is what its
    archive shows, and a later relnb's new style never re-renders an old record; a style newer
    than this relnb knows is drawn in the newest one it has.
    """
    v = created.get("chart_style")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        return 1
    return min(v, CHART_STYLE)


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
    style: int = 1  # see chart_style(); style 1's output must never change
    clock: bool = True  # x is a Unix timestamp (False: the samples' order, none had a ts)

    def svg(self) -> str:
        if self.style >= 2:
            return _svg_units(self)
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
        if self.style >= 2:
            u = unit(self.metric)
            name = f"{self.gate + ' · ' if self.gate else ''}{self.metric}{u.title}"
            if not ys:
                return f"{name}: no data"
            return (
                f"{name}: {len(ys)} samples, min {u.label(min(ys))}, max {u.label(max(ys))}, "
                f"last {u.label(ys[-1])}"
            )
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
    rows: list[dict[str, Any]],
    gate: str | None = None,
    evidence: Mapping[str, Any] | None = None,
    style: int = 1,
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
    unordered: set[tuple[str | None, str]] = set()  # series with a sample that had no ts
    for i, row in enumerate(rows):
        if gate is not None and row.get("gate") != gate:
            continue
        timed = isinstance(row.get("ts"), int | float)
        x = row["ts"] if timed else float(i)
        for metric, value in (row.get("values") or {}).items():
            y = value if isinstance(value, int | float) and not isinstance(value, bool) else None
            series.setdefault((row.get("gate"), metric), []).append((float(x), y))
            if not timed:
                unordered.add((row.get("gate"), metric))
    return [
        Chart(
            metric, tuple(pts), g, limit=limits.get(metric), breaches=tuple(spans.get(metric, ())),
            style=style, clock=(g, metric) not in unordered,
        )
        for (g, metric), pts in sorted(series.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
    ]


def window_figures(
    rows: list[dict[str, Any]], gate: str, evidence: Mapping[str, Any] | None = None, style: int = 1
) -> tuple[str, ...]:
    """The SVG charts a window gate's result shows (live and in the archive alike)."""
    return tuple(c.svg() for c in charts_from_samples(rows, gate, evidence, style))


# -- style 2: units, clock time, axis titles ------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """How a metric is shown: recorded values times `scale`, labelled like its status line."""

    scale: float = 1.0
    suffix: str = ""  # after each value: " ms", "%"
    name: str = ""  # in the axis title
    whole: bool = False  # a count: ticks on whole numbers

    @property
    def title(self) -> str:
        return f" ({self.name})" if self.name else ""

    def label(self, value: float) -> str:
        """A recorded value in this unit (the value is in the recorded scale)."""
        return _fmt(_tidy(value * self.scale)) + self.suffix


def unit(metric: str) -> Unit:
    """The unit a metric's text uses (relnb.metrics.samples.fmt_value) and its chart shows."""
    if is_fraction(metric):
        return Unit(100.0, "%", "%")
    if metric.startswith("latency"):
        return Unit(1000.0, " ms", "ms")
    if metric.startswith("dlq"):
        return Unit(name="jobs", whole=True)
    if metric == "request_rate":
        return Unit(name="req/s")
    return Unit()


def _tidy(v: float) -> float:
    # 0.1 * 3 is 0.30000000000000004: a tick label shows the number a person would write
    return float(f"{v:.10g}") + 0.0  # + 0.0: no "-0"


def _nice(raw: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least `raw` (> 0)."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))


def value_ticks(lo: float, hi: float, whole: bool = False, count: int = 4) -> list[float]:
    """Round tick values from at or below `lo` to at or above `hi` (both included), about `count` steps."""
    step = _nice((hi - lo) / count) if hi > lo else 1.0
    if whole:  # a count: steps of 1, 2, 5, 10, 20, 25, ...; never 0.5 or 2.5 jobs
        step = 1.0 if step < 1 else 5.0 if step == 2.5 else step
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    last = max(last, first + 1)
    return [_tidy(k * step) for k in range(first, last + 1)]


_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def time_ticks(x0: float, x1: float, most: int = 6) -> tuple[list[float], str]:
    """Clock ticks (Unix seconds) on round times inside [x0, x1], and their strftime format: HH:MM
    once ticks are a minute apart or more, HH:MM:SS on windows shorter than that (a 57 s B8
    window would otherwise show one label), the date too once they are days apart."""
    span = x1 - x0
    step = next((s for s in _TIME_STEPS if span / s <= most), _TIME_STEPS[-1] * math.ceil(span / 86400 / most))
    first = math.ceil(x0 / step - 1e-9) * step
    ticks = [float(t) for t in range(int(first), int(x1) + 1, int(step))] if span > 0 else [x0]
    return ticks or [x0], ("%m-%d %H:%M" if step >= 86400 else "%H:%M" if step >= 60 else "%H:%M:%S")


def _clock(ts: float, fmt: str) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def _svg_units(chart: Chart) -> str:
    """Style 2: values in the metric's unit, clock time in UTC, both axes titled."""
    u = unit(chart.metric)
    pad_l, pad_r, pad_t, pad_b = 72, 28, 22, 38
    w, h = chart.width, max(chart.height, 160)
    esc = html.escape
    pts = [(x, y * u.scale) for x, y in chart.points if y is not None]
    name = f"{chart.gate + ' · ' if chart.gate else ''}{chart.metric}{u.title}"
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{esc(name)}" style="font-family:system-ui,sans-serif;font-size:11px">'
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff" stroke="#d0d7de"/>'
        f'<text x="{pad_l}" y="14" fill="#24292f">{esc(name)} ({len(pts)} samples)</text>'
    )
    if not pts:
        return head + f'<text x="{pad_l}" y="{h // 2}" fill="#9a6700">no data</text></svg>'
    limit = None if chart.limit is None else chart.limit * u.scale
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    top = max(max(ys), limit if limit is not None else max(ys))
    yt = value_ticks(min(0.0, min(ys)), top, u.whole)
    y0, y1 = yt[0], yt[-1]
    sx = (w - pad_l - pad_r) / ((x1 - x0) or 1.0)
    sy = (h - pad_t - pad_b) / (y1 - y0)

    def px(x: float) -> float:
        return pad_l + (x - x0) * sx

    def py(y: float) -> float:
        return h - pad_b - (y - y0) * sy

    base = h - pad_b
    parts = [head]
    # y axis: gridlines, labelled ticks, the title turned along the axis
    for v in yt:
        parts.append(
            f'<line class="grid" x1="{pad_l}" y1="{py(v):.1f}" x2="{w - pad_r}" y2="{py(v):.1f}" '
            f'stroke="{"#d0d7de" if v == y0 else "#eaeef2"}"/>'
            f'<text class="ytick" x="{pad_l - 6}" y="{py(v) + 4:.1f}" text-anchor="end" '
            f'fill="#57606a">{esc(_fmt(v) + u.suffix)}</text>'
        )
    mid = (pad_t + base) / 2
    parts.append(
        f'<text class="ytitle" transform="translate(12 {mid:.1f}) rotate(-90)" text-anchor="middle" '
        f'fill="#57606a">{esc(chart.metric + u.title)}</text>'
    )
    # x axis: clock ticks in UTC, titled with the date, the window's length and its gaps
    gaps = sum(1 for _, y in chart.points if y is None)
    extra = f" · {_dur(x1 - x0)}" + (f" · {gaps} gap(s)" if gaps else "")
    if chart.clock:
        ticks, fmt = time_ticks(x0, x1)
        for t in ticks:
            parts.append(
                f'<line class="xtick" x1="{px(t):.1f}" y1="{base}" x2="{px(t):.1f}" y2="{base + 4}" '
                f'stroke="#8c959f"/><text class="xtick" x="{px(t):.1f}" y="{base + 15}" '
                f'text-anchor="middle" fill="#57606a">{_clock(t, fmt)}</text>'
            )
        xtitle = f"time (UTC), {_clock(x0, '%Y-%m-%d')}{extra}"
    else:  # samples recorded without a timestamp: their order is all there is
        xtitle = f"samples in recorded order (no timestamps){f' · {gaps} gap(s)' if gaps else ''}"
    parts.append(
        f'<text class="xtitle" x="{(pad_l + w - pad_r) / 2:.1f}" y="{h - 6}" text-anchor="middle" '
        f'fill="#57606a">{esc(xtitle)}</text>'
    )
    for a, b in chart.breaches:
        if b >= x0 and a <= x1:
            when = _clock(a, "%H:%M:%S") + ("" if b == a else "–" + _clock(b, "%H:%M:%S"))
            parts.append(
                f'<rect class="breach" x="{px(max(a, x0)):.1f}" y="{pad_t}" '
                f'width="{max((min(b, x1) - max(a, x0)) * sx, 2.0):.1f}" height="{base - pad_t}" '
                f'fill="#cf222e" fill-opacity="0.15"><title>breach{f" {when} UTC" if chart.clock else ""}'
                "</title></rect>"
            )
    if limit is not None:
        label = esc(f"limit {_fmt(_tidy(limit))}{u.suffix}")
        parts.append(
            f'<line class="limit" x1="{pad_l}" y1="{py(limit):.1f}" x2="{w - pad_r}" y2="{py(limit):.1f}" '
            f'stroke="#cf222e" stroke-dasharray="4 3"><title>{label}</title></line>'
            f'<text class="limit" x="{w - pad_r}" y="{py(limit) - 3:.1f}" text-anchor="end" '
            f'fill="#cf222e">{label}</text>'
        )
    # the line breaks at a gap (a poll that returned nothing is not a value in between)
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in chart.points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append((x, y * u.scale))
    for run in runs:
        if len(run) == 1:
            parts.append(f'<circle cx="{px(run[0][0]):.1f}" cy="{py(run[0][1]):.1f}" r="2" fill="#0969da"/>')
        elif run:
            coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            parts.append(f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{coords}"/>')
    return "".join(parts) + "</svg>"
