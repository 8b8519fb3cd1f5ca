"""Charts of a monitoring window: one per metric, from samples alone.

Each chart layers the recorded values (line + points, breaching points in red), the absolute
threshold(s) as dashed rules, the baseline p5–p95 band and the ratio limit. Because they are built
only from samples, rules, the baseline summary and the breaches (all journaled), an archive
re-renders the very same charts offline. `to_svg` uses vl-convert (no browser, no CDN), so
exported HTML and GateResult.figures carry the data points inline.

The live view (`live_chart`) caps the number of points drawn per metric with an incremental
max-preserving downsampler, so redrawing costs the same at minute 60 as at minute 1; exported
charts (`window_chart`) always show every recorded point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .rules import Rule
from .samples import Sample, as_sample, is_fraction, iso

if TYPE_CHECKING:
    import altair as alt

    from .window import WindowState

LIVE_POINTS = 120


class Downsampler:
    """Keeps at most `capacity` chart rows: when full, adjacent pairs merge into their worse value.

    Amortised O(1) per append (each halving touches every row once, and halvings get rarer as
    buckets double), rows are formatted once, and a breach is never averaged away: a merged row
    is marked breaching if any member was.
    """

    def __init__(self, capacity: int = LIVE_POINTS) -> None:
        self.capacity = max(8, capacity)
        self.rows: list[dict[str, Any]] = []
        self.bucket = 1  # raw samples per row
        self._pending: dict[str, Any] | None = None
        self._pending_n = 0

    def append(self, ts: float, value: float, breach: bool = False) -> None:
        # six significant digits: a chart needs no more, and a rate like 0.0024000000000000002
        # costs the browser payload 22 bytes where 6 do (the verdict keeps the exact value)
        value = float(f"{value:.6g}")
        p = self._pending
        if p is None:
            self._pending = {"t": iso(ts), "value": value, "breach": bool(breach)}
            self._pending_n = 1
        else:
            if value > p["value"]:
                p["t"], p["value"] = iso(ts), value
            p["breach"] = p["breach"] or bool(breach)
            self._pending_n += 1
        if self._pending_n >= self.bucket:
            self.rows.append(self._pending)  # type: ignore[arg-type]
            self._pending = None
            self._pending_n = 0
            if len(self.rows) > self.capacity:
                merged = []
                for i in range(0, len(self.rows) - 1, 2):
                    a, b = self.rows[i], self.rows[i + 1]
                    keep = dict(a if a["value"] >= b["value"] else b)
                    keep["breach"] = a["breach"] or b["breach"]
                    merged.append(keep)
                if len(self.rows) % 2:
                    merged.append(self.rows[-1])
                self.rows = merged
                self.bucket *= 2

    def view(self) -> list[dict[str, Any]]:
        return [*self.rows, *([dict(self._pending)] if self._pending is not None else [])]


def _axis_format(metric: str) -> str:
    return ".1%" if is_fraction(metric) else "~s"


def _in_breach(ts: float, breaches: Sequence[Mapping[str, Any]], metric: str) -> bool:
    return any(
        b["metric"] == metric
        and b.get("kind") in ("max", "min", "ratio")
        and b["start_ts"] <= ts <= b["end_ts"]
        for b in breaches
    )


def _points_rows(points: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [{"t": iso(p[0]), "value": p[1], "breach": bool(p[2])} for p in points]


def _span_rows(breaches: Sequence[Mapping[str, Any]], metric: str) -> list[dict[str, Any]]:
    return [
        {
            "start": iso(b["start_ts"]),
            "end": iso(b["end_ts"]),
            "kind": b["kind"],
            "hard": bool(b.get("hard")),
        }
        for b in breaches
        if b["metric"] == metric
    ]


def metric_chart(
    metric: str,
    rules: Sequence[Rule],
    *,
    baseline: Mapping[str, Any] | None = None,
    width: int = 560,
    height: int = 140,
    subtitle: str = "",
) -> alt.LayerChart:
    """One metric's layers; the data comes from named datasets `points:<metric>`/`breaches:<metric>`.

    Keeping the data out of the chart lets the live view build the chart once and only swap the
    datasets per tick (altair's per-row validation costs O(points) on every redraw).
    """
    import altair as alt

    # Latency is sampled in seconds and reported in ms (the status line, the verdict): the axis
    # says ms too; the data stays in seconds so the rules' limit lines sit on the same scale.
    if metric.startswith("latency"):
        y_axis, unit = alt.Axis(labelExpr="format(datum.value * 1000, '~r')"), " (ms)"
    elif is_fraction(metric):
        y_axis, unit = alt.Axis(format=_axis_format(metric)), " (%)"
    else:
        y_axis, unit = alt.Axis(format=_axis_format(metric)), ""
    base = alt.Chart(alt.NamedData(f"points:{metric}")).encode(
        # Clock time, whole seconds: Vega's default labels sub-second ticks on short windows.
        x=alt.X(
            "t:T", title="time (UTC)", scale=alt.Scale(type="utc"),
            axis=alt.Axis(format="%H:%M:%S", tickMinStep=1000),
        ),
        y=alt.Y("value:Q", title=f"{metric}{unit}", axis=y_axis),
    )
    layers: list[Any] = []
    base_metrics = (baseline or {}).get("metrics", {}).get(metric) if baseline else None
    if base_metrics and base_metrics.get("p5") is not None:
        band = {"lo": base_metrics["p5"], "hi": base_metrics["p95"], "label": "baseline p5–p95"}
        layers.append(
            alt.Chart(alt.Data(values=[band]))
            .mark_rect(opacity=0.18, color="#0969da")
            .encode(y="lo:Q", y2="hi:Q", tooltip=["label:N", "lo:Q", "hi:Q"])
        )
    layers.append(
        alt.Chart(alt.NamedData(f"breaches:{metric}"))
        .mark_rect(opacity=0.15, color="#cf222e")
        .encode(x="start:T", x2="end:T", tooltip=["kind:N", "start:T", "end:T", "hard:N"])
    )
    layers.append(base.mark_line(color="#57606a", strokeWidth=1.5))
    layers.append(
        base.mark_point(filled=True, size=28).encode(
            color=alt.Color(
                "breach:N",
                scale=alt.Scale(domain=[False, True], range=["#1a7f37", "#cf222e"]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("t:T", format="%H:%M:%S"),
                alt.Tooltip("value:Q", format=".4~g"),
                "breach:N",
            ],
        )
    )
    lines = []
    for r in rules:
        if r.metric != metric:
            continue
        if r.max is not None:
            lines.append({"y": r.max, "label": "max"})
        if r.min is not None:
            lines.append({"y": r.min, "label": "min"})
        if r.max_ratio is not None and base_metrics and base_metrics.get("p50") is not None:
            lines.append(
                {"y": base_metrics["p50"] * r.max_ratio, "label": f"{r.max_ratio:g}× baseline"}
            )
    if lines:
        layers.append(
            alt.Chart(alt.Data(values=lines))
            .mark_rule(color="#cf222e", strokeDash=[6, 4])
            .encode(y="y:Q", tooltip=["label:N", "y:Q"])
        )
    title = alt.Title(
        metric, subtitle=subtitle or "; ".join(r.describe() for r in rules if r.metric == metric)
    )
    return alt.layer(*layers).properties(width=width, height=height, title=title)


def _metrics(rules: Sequence[Rule]) -> list[str]:
    return list(dict.fromkeys(r.metric for r in rules))


def skeleton(
    rules: Sequence[Rule],
    *,
    baseline: Mapping[str, Any] | None = None,
    subtitles: Mapping[str, str] | None = None,
) -> alt.VConcatChart:
    """All ruled metrics stacked, sharing the time axis, without data."""
    import altair as alt

    charts = [
        metric_chart(m, rules, baseline=baseline, subtitle=(subtitles or {}).get(m, ""))
        for m in _metrics(rules)
    ]
    return alt.vconcat(*charts).resolve_scale(x="shared")


def _datasets(
    points: Mapping[str, Iterable[Sequence[Any]]], breaches: Sequence[Mapping[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for metric, pts in points.items():
        out[f"points:{metric}"] = _points_rows(pts)
        out[f"breaches:{metric}"] = _span_rows(breaches, metric)
    return out


def _recorded_points(
    samples: Iterable[Sample | Mapping[str, Any]],
    rules: Sequence[Rule],
    breaches: Sequence[Mapping[str, Any]],
) -> dict[str, list[tuple[float, float, bool]]]:
    items = [as_sample(s) for s in samples]
    return {
        metric: [
            (s.ts, v, _in_breach(s.ts, breaches, metric))
            for s in items
            if (v := s.values.get(metric)) is not None
        ]
        for metric in _metrics(rules)
    }


def window_spec(
    samples: Iterable[Sample | Mapping[str, Any]],
    rules: Sequence[Rule],
    *,
    evidence: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Vega-Lite JSON of every recorded point (archive/export view).

    `evidence` is the window's Outcome evidence (baseline summary and breaches); without it only
    values and thresholds are drawn.
    """
    breaches = list((evidence or {}).get("breaches") or ())
    spec = skeleton(rules, baseline=(evidence or {}).get("baseline")).to_dict()
    spec["datasets"] = {
        **spec.get("datasets", {}),
        **_datasets(_recorded_points(samples, rules, breaches), breaches),
    }
    return spec


def window_chart(
    samples: Iterable[Sample | Mapping[str, Any]],
    rules: Sequence[Rule],
    *,
    evidence: Mapping[str, Any] | None = None,
) -> alt.VConcatChart:
    """The same chart as an altair object (interactive in marimo/Jupyter)."""
    import altair as alt

    return alt.VConcatChart.from_dict(
        window_spec(samples, rules, evidence=evidence), validate=False
    )


class VegaLite:
    """A Vega-Lite spec that marimo (`_mime_`) and Jupyter (`_repr_mimebundle_`) display as is."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    @property
    def mimetype(self) -> str:
        major = (_vl_version(self.spec) or "6").split(".")[0]
        return f"application/vnd.vegalite.v{major}+json"

    def _mime_(self) -> tuple[str, str]:
        import json

        return self.mimetype, json.dumps(self.spec)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {self.mimetype: self.spec, "text/plain": "<monitoring window chart>"}

    def to_svg(self) -> str:
        return to_svg(self.spec)


class LiveCharts:
    """Bounded per-metric point sets fed tick by tick; the chart skeleton is built once."""

    def __init__(self, rules: Sequence[Rule], capacity: int = LIVE_POINTS) -> None:
        self.rules = list(rules)
        self.series = {m: Downsampler(capacity) for m in _metrics(rules)}
        self._seen = dict.fromkeys(self.series, 0)
        self._skeleton: dict[str, Any] | None = None
        self._skeleton_key: Any = None

    def update(self, state: WindowState) -> None:
        verdict = state.verdict
        for metric, ds in self.series.items():
            ts, values = verdict.series(metric)
            new = range(self._seen[metric], len(values))
            if len(new) == 1:  # the usual tick: O(1)
                i = new[0]
                ds.append(
                    ts[i], values[i], metric in verdict.breaching_now and ts[i] == verdict.last_ts
                )
            elif len(new) > 1:  # first draw after a resume: catch up once
                spans = [b.to_dict() for b in verdict.breaches if b.metric == metric]
                for i in new:
                    ds.append(ts[i], values[i], _in_breach(ts[i], spans, metric))
            self._seen[metric] = len(values)

    def chart(self, state: WindowState) -> VegaLite:
        """The skeleton is built once per baseline; each call only swaps the bounded datasets."""
        verdict = state.verdict
        key = id(verdict.baseline)
        if self._skeleton is None or key != self._skeleton_key:
            baseline = verdict.baseline.summary() if verdict.baseline else None
            self._skeleton = skeleton(self.rules, baseline=baseline).to_dict()
            self._skeleton_key = key
        recent = [b.to_dict() for b in verdict.breaches[-20:]]
        datasets = dict(self._skeleton.get("datasets", {}))
        for metric, ds in self.series.items():
            datasets[f"points:{metric}"] = ds.view()
            datasets[f"breaches:{metric}"] = _span_rows(recent, metric)
        return VegaLite({**self._skeleton, "datasets": datasets})

    def note(self) -> str:
        coarse = {m: ds.bucket for m, ds in self.series.items() if ds.bucket > 1}
        if not coarse:
            return ""
        return "live chart shows the max of every " + ", ".join(
            f"{b} samples ({m})" for m, b in coarse.items()
        )


def to_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The Vega-Lite JSON (for an application/vnd.vegalite mimebundle)."""
    return chart.to_dict()


def _vl_version(spec: Mapping[str, Any]) -> str | None:
    schema = str(spec.get("$schema", ""))
    if "/v" in schema:
        major_minor = schema.rsplit("/v", 1)[1].split(".json")[0]
        parts = major_minor.split(".")
        return ".".join(parts[:2])
    return None


def to_svg(chart: alt.TopLevelMixin | VegaLite | Mapping[str, Any]) -> str:
    """Static SVG via vl-convert: renders offline, needs no browser or CDN."""
    import vl_convert as vlc

    if isinstance(chart, VegaLite):
        chart = chart.spec
    spec = dict(chart) if isinstance(chart, Mapping) else chart.to_dict()
    version = _vl_version(spec)
    available = vlc.get_vegalite_versions()
    if version not in available:
        major = (version or "6").split(".")[0]
        same_major = [v for v in available if v.split(".")[0] == major]
        version = same_major[-1] if same_major else None
    return vlc.vegalite_to_svg(spec, vl_version=version) if version else vlc.vegalite_to_svg(spec)


def mimebundle(chart: alt.TopLevelMixin | VegaLite | Mapping[str, Any]) -> dict[str, Any]:
    """Vega-Lite JSON + static SVG + text: renders in Jupyter, nbconvert and offline viewers."""
    spec = (
        chart.spec
        if isinstance(chart, VegaLite)
        else dict(chart)
        if isinstance(chart, Mapping)
        else to_spec(chart)
    )
    major = (_vl_version(spec) or "6").split(".")[0]
    return {
        f"application/vnd.vegalite.v{major}+json": spec,
        "image/svg+xml": to_svg(spec),
        "text/plain": "<monitoring window chart>",
    }
