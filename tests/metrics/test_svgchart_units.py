"""Issue 21: the static charts (a window gate's result, live and archived) in the units their text
uses, on a clock-time axis, with axis titles; records made before that keep their exact bytes.

The style is recorded in the release-created event (`chart_style`); a journal without it is drawn
in style 1, byte for byte what the renderer drew before styles existed (data/svgchart_v1.json,
generated on that renderer by tests/metrics/_svgchart_sample.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from relnb import Release
from relnb.archive import ArchiveView
from relnb.metrics import svgchart
from relnb.metrics.svgchart import sample_rows
from relnb.watch import figures

from ..core.helpers import make_project
from ._app import FaultyApp
from ._svgchart_sample import FIXTURE, T0, rendered, sample_events

CREATED = {"release_id": "fx-1", "version": "1.0.0", "environment": "production", "git_sha": "0" * 40}


def _ticks(svg: str, cls: str) -> list[str]:
    return re.findall(rf'<text class="{cls}"[^>]*>([^<]*)</text>', svg)


def _title(svg: str, cls: str) -> str:
    found = _ticks(svg, cls)
    assert len(found) == 1, (cls, svg)
    return found[0]


def _by_metric(svgs) -> dict[str, str]:
    return {re.search(r'aria-label="[^"]*· (\w+)', s).group(1): s for s in svgs}


def _drawn(svg: str) -> list[tuple[float, float]]:
    """Every drawn data point: the polylines' vertices and the lone points' circles."""
    pts = [tuple(map(float, p.split(","))) for line in re.findall(r'<polyline [^>]*points="([^"]*)"', svg) for p in line.split()]
    pts += [(float(x), float(y)) for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)]
    return sorted(pts)


def _ytick_y(svg: str) -> dict[str, float]:
    return {label: float(y) - 4 for y, label in re.findall(r'<text class="ytick" x="[\d.]+" y="([\d.]+)"[^>]*>([^<]*)</text>', svg)}


# -- style 1: what every record made before styles keeps ------------------------------------------


def test_a_journal_without_a_chart_style_renders_the_bytes_the_renderer_always_drew():
    want = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert rendered(sample_events()) == want
    assert rendered(sample_events({**CREATED, "chart_style": 1})) == want
    # the fixture is a real picture of the samples, not an empty shell
    assert len(want["charts"]) == 8 and all(svg.startswith("<svg") for _r, svg in want["charts"])
    assert "limit 0.5" in want["result:D7"][2] and "12 min 0 s, 1 gap(s)" in want["result:D7"][2]


def test_chart_style_reads_the_recorded_value_and_defaults_to_1():
    chart_style = svgchart.chart_style
    assert svgchart.CHART_STYLE == 2
    assert [chart_style(c) for c in ({}, {"chart_style": None}, {"chart_style": "2"}, {"chart_style": True}, {"chart_style": 0})] == [1] * 5
    assert chart_style({"chart_style": 2}) == 2
    assert chart_style({"chart_style": 7}) == svgchart.CHART_STYLE  # a newer relnb's record: the newest style known


# -- style 2: units, clock time, axis titles ------------------------------------------------------


def test_style_2_draws_ms_percent_counts_on_a_utc_clock_axis_with_axis_titles():
    assert datetime.fromtimestamp(T0, UTC).isoformat().startswith("2026-11-25T11:28:06")  # what the ticks below assume
    view = ArchiveView(".", events=sample_events({**CREATED, "chart_style": 2}), marks=True)
    d7 = _by_metric(view.result("D7").figures)
    lat, err, dlq = d7["latency_p95"], d7["error_rate"], d7["dlq_depth"]

    assert _title(lat, "ytitle") == "latency_p95 (ms)"
    assert _ticks(lat, "ytick") == ["0 ms", "200 ms", "400 ms", "600 ms"]
    assert "limit 500 ms" in lat and "limit 0.5" not in lat
    assert _title(err, "ytitle") == "error_rate (%)"
    assert _ticks(err, "ytick") == ["0%", "2%", "4%", "6%"]
    assert "limit 1%" in err
    assert _title(dlq, "ytitle") == "dlq_depth (jobs)"
    assert _ticks(dlq, "ytick") == ["0", "1", "2", "3", "4"]  # a count: whole numbers only

    # x: 11:28:06 to 11:40:06 UTC, every 30 s: clock ticks on round minutes, not "720 s"
    for svg in (lat, err, dlq):
        assert _ticks(svg, "xtick") == ["11:30", "11:32", "11:34", "11:36", "11:38", "11:40"]
        assert _title(svg, "xtitle") == "time (UTC), 2026-11-25 · 12 min 0 s · 1 gap(s)"
    assert "<title>breach 11:33:06–11:33:51 UTC</title>" in err

    # the data is drawn in the unit the axis says: the last latency, 0.38 s, sits at 380 ms
    y = _ytick_y(lat)
    last = _drawn(lat)[-1]
    assert last[1] == pytest.approx(y["0 ms"] + (y["400 ms"] - y["0 ms"]) * 380 / 400, abs=0.1)
    # every recorded value is a drawn point; the gap breaks the line instead of bridging it
    assert len(_drawn(lat)) == 24 and lat.count("<polyline") == 2

    # a 57 s window (B8) labels seconds, where HH:MM would repeat one minute
    b8 = _by_metric(view.result("B8").figures)
    assert _ticks(b8["latency_p95"], "xtick") == ["11:28:10", "11:28:20", "11:28:30", "11:28:40", "11:28:50", "11:29:00"]
    assert _ticks(b8["latency_p95"], "ytick")[-1] == "15 ms"
    assert _title(b8["request_rate"], "ytitle") == "request_rate (req/s)"
    # samples recorded without a timestamp have no clock to show
    (c1,) = view.result("C1").figures
    assert _title(c1, "xtitle") == "samples in recorded order (no timestamps)" and not _ticks(c1, "xtick")

    # the archive's monitoring section and its text view use the same units
    reprs = [repr(c) for c in view.charts()]
    assert "D7 · latency_p95 (ms): 24 samples, min 120 ms, max 380 ms, last 380 ms" in reprs
    assert "D7 · error_rate (%): 24 samples, min 0%, max 5%, last 0%" in reprs
    unmarked = ArchiveView(".", events=view.events, marks=False).result("D7").figures
    assert [c.svg() for c in view.charts() if c.gate == "D7"] == list(unmarked)


# -- a new release: recorded at creation, drawn live ----------------------------------------------


@pytest.fixture
def app() -> Iterator[FaultyApp]:
    a = FaultyApp(rps=200, latency_s=0.04, error_rate=0.02)
    yield a
    a.close()


def test_a_new_release_records_style_2_and_its_window_result_shows_units_and_clock_time(tmp_path, monkeypatch, app):
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    for var in ("RELNB_CONFIRM", "RELNB_SIGNOFFS", "RELNB_RERUN", "RELNB_SKIPS", "RELNB_HEADLESS", "RELNB_WINDOW"):
        monkeypatch.delenv(var, raising=False)
    toml = (
        '[monitor]\nwindow = "3s"\ninterval = "0.25s"\nsoak = "2s"\nmin_samples = 3\nfailure_limit = 1\n'
        f'[environments.staging]\nbase_url = "http://127.0.0.1:9"\n'
        f'[environments.staging.metrics]\nkind = "scrape"\nurls = ["{app.url}"]\n'
    )
    r = Release.create("1.4.0", root=make_project(tmp_path / "p", toml))
    directory = r.directory
    try:
        b8 = r.check("B8")  # the live result, as the notebook shows it
        rows = [row for row in sample_rows(r.journal.events) if row["gate"] == "B8"]
        assert rows and b8.figures == figures(r, "B8")
        charts = _by_metric(b8.figures)
        lat, err = charts["latency_p95"], charts["error_rate"]
        assert _title(lat, "ytitle") == "latency_p95 (ms)" and all(t.endswith(" ms") for t in _ticks(lat, "ytick"))
        assert _title(err, "ytitle") == "error_rate (%)" and all(t.endswith("%") for t in _ticks(err, "ytick"))
        # a few seconds of samples: clock ticks in UTC within the recorded times
        first, last = min(x["ts"] for x in rows), max(x["ts"] for x in rows)
        ticks = _ticks(lat, "xtick")
        assert ticks and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in ticks)

        def clock(ts: float) -> str:
            return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S")

        recorded = {clock(t) for t in range(int(first), int(last) + 2)}
        assert set(ticks) <= recorded, (ticks, clock(first), clock(last))
        assert _title(lat, "xtitle").startswith(f"time (UTC), {datetime.fromtimestamp(first, UTC):%Y-%m-%d}")
        # the ms axis carries the recorded latency (about 40 ms), not 0.04 on a seconds axis
        assert max(float(t.removesuffix(" ms")) for t in _ticks(lat, "ytick")) >= 40
        assert r.info.get("chart_style") == 2  # recorded at creation, in release-created
    finally:
        r.close()
    # the archive reads the style back from the journal: it draws what the live result showed
    view = ArchiveView(directory, marks=True)
    assert view.chart_style == 2 and view.result("B8").figures == b8.figures
