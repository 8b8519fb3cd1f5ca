"""Charts carry the recorded points; live displays stay bounded; text progress has heartbeats."""

from __future__ import annotations

import io
import json
import re

import pytest

from relnb.metrics import FunctionSource, Rule, Sample, evaluate_samples, run_window
from relnb.metrics.charts import (
    Downsampler,
    LiveCharts,
    VegaLite,
    mimebundle,
    window_chart,
    window_spec,
)
from relnb.metrics.live import TextProgress, auto_display
from relnb.metrics.verdict import Baseline
from relnb.results import Status

from ._fakes import FakeClock

RULES = [
    Rule("error_rate", max=0.01, min_samples=5),
    Rule("latency_p95", max=0.5, max_ratio=3.0, min_samples=5),
]


def recorded(n=40, bad_from=30):
    return [
        Sample.build(
            1_700_000_000 + 5 * i,
            {
                "error_rate": (0.05 if i >= bad_from else 0.001 * (i % 4)),
                "latency_p95": 0.1 + i / 1000,
            },
        ).to_dict()
        for i in range(n)
    ]


def test_result_chart_draws_every_recorded_point_the_limit_and_the_breaches():
    """The static chart (live result and archive alike) from the samples and the gate's evidence."""
    from relnb.metrics.svgchart import window_figures

    samples = recorded()
    base = Baseline({"latency_p95": [0.1] * 20}, "pre-deploy")
    outcome = evaluate_samples(samples, RULES, duration_s=200, baseline=base)
    assert outcome.status == Status.FAILED
    rows = [{"gate": "D7", "ts": s["ts"], "values": s["values"]} for s in samples]
    plain = dict(zip(("error_rate", "latency_p95"), window_figures(rows, "D7"), strict=True))
    marked = dict(zip(("error_rate", "latency_p95"), window_figures(rows, "D7", outcome.evidence), strict=True))
    for svg in (*plain.values(), *marked.values()):
        assert svg.startswith("<svg") and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
        coords = re.search(r'<polyline [^>]*points="([^"]*)"', svg).group(1).split()
        assert len(coords) == len(samples)  # every sample is a drawn point
    assert 'class="limit"' in marked["error_rate"] and "limit 0.01" in marked["error_rate"]
    breach = [b for b in outcome.evidence["breaches"] if b["metric"] == "error_rate"]
    assert breach and marked["error_rate"].count('class="breach"') == len(breach)
    assert 'class="breach"' not in marked["latency_p95"] or any(
        b["metric"] == "latency_p95" for b in outcome.evidence["breaches"]
    )
    # without evidence (archives sealed before marks existed) nothing but the data is drawn
    assert "limit" not in plain["error_rate"] and "breach" not in plain["error_rate"]


def test_spec_and_mimebundle_hold_the_data_offline():
    samples = recorded(20, bad_from=99)
    spec = window_spec(samples, RULES)
    assert [r["value"] for r in spec["datasets"]["points:error_rate"]] == [
        s["values"]["error_rate"] for s in samples
    ]
    bundle = mimebundle(spec)
    assert set(bundle) == {"application/vnd.vegalite.v6+json", "image/svg+xml", "text/plain"}
    chart = window_chart(samples, RULES)
    assert chart.to_dict()["datasets"]["points:latency_p95"][0]["value"] == pytest.approx(0.1)
    json.dumps(spec, allow_nan=False)


def _encodings(spec, key):
    """Every `key` encoding in a (layered, concatenated) Vega-Lite spec."""
    if isinstance(spec, dict):
        if isinstance(spec.get("encoding"), dict) and key in spec["encoding"]:
            yield spec["encoding"][key]
        for v in spec.values():
            yield from _encodings(v, key)
    elif isinstance(spec, list):
        for v in spec:
            yield from _encodings(v, key)


def test_axes_say_their_units_and_the_clock():
    """issue 21: latency was plotted in seconds while the text said ms; no units; x-axis '57 s'."""
    spec = window_spec(recorded(20, bad_from=99), RULES)
    titles = {y.get("title") for y in _encodings(spec, "y")}
    assert "latency_p95 (ms)" in titles and "error_rate (%)" in titles, titles
    latency_axis = next(y["axis"] for y in _encodings(spec, "y") if y.get("title") == "latency_p95 (ms)")
    assert "* 1000" in latency_axis["labelExpr"]
    xs = list(_encodings(spec, "x"))
    assert xs and all(x["scale"]["type"] == "utc" and x["axis"]["format"] == "%H:%M:%S" for x in xs if "title" in x)


def test_downsampler_is_bounded_and_keeps_breaches_and_maxima():
    ds = Downsampler(16)
    for i in range(1000):
        ds.append(1_700_000_000 + i, 1.0 if i != 777 else 9.0, breach=(i == 777))
    rows = ds.view()
    assert len(rows) <= 17
    assert max(r["value"] for r in rows) == 9.0
    assert any(r["breach"] for r in rows)


def test_live_charts_payload_is_bounded():
    clock = FakeClock()
    live = LiveCharts(RULES, capacity=50)
    sizes = []

    def on_tick(state):
        if state.heartbeat or state.done:
            return
        live.update(state)
        chart = live.chart(state)
        assert isinstance(chart, VegaLite)
        sizes.append(len(chart._mime_()[1]))

    run_window(
        FunctionSource({"error_rate": lambda t: 0.0, "latency_p95": lambda t: 0.1}),
        RULES,
        3600,
        5,
        on_tick=on_tick,
        clock=clock,
        sleep=clock.sleep,
    )
    assert len(sizes) == 720
    assert sizes[-1] < sizes[49] * 1.3  # capped at ~50 rows per metric, not 720
    assert "max of every" in live.note()


def test_text_progress_throttles_and_keeps_heartbeats():
    clock = FakeClock()
    out = io.StringIO()
    text = TextProgress(out, every_s=20, heartbeat_s=60, prefix="D7")
    outcome = run_window(
        FunctionSource({"error_rate": lambda t: 0.0}),
        RULES[:1],
        300,
        5,
        on_tick=text,
        clock=clock,
        sleep=clock.sleep,
    )
    lines = out.getvalue().splitlines()
    assert outcome.status == Status.PASSED
    assert 14 <= len(lines) <= 18  # ~every 20 s of a 300 s window, plus the final verdict
    assert lines[0].startswith("D7 [window 0s/5m00s, 5m00s left]")
    assert "error_rate 0.00%" in lines[0]
    assert lines[-1].startswith("D7: PASSED")
    slow = io.StringIO()
    run_window(
        FunctionSource({"error_rate": lambda t: 0.0}),
        RULES[:1],
        600,
        290,
        on_tick=TextProgress(slow, every_s=3600, heartbeat_s=60),
        clock=clock,
        sleep=clock.sleep,
        heartbeat_s=30,
    )
    beats = [ln for ln in slow.getvalue().splitlines() if "heartbeat" in ln]
    assert len(beats) >= 8  # 600 s with polls 290 s apart: still a line at least every minute


def test_text_progress_reports_hard_breach_immediately():
    clock = FakeClock()
    out = io.StringIO()
    run_window(
        FunctionSource({"error_rate": lambda t: 0.0 if t < 12 else 0.5}),
        RULES[:1],
        300,
        1,
        on_tick=TextProgress(out, every_s=3600),
        clock=clock,
        sleep=clock.sleep,
    )
    text = out.getvalue()
    assert "HARD BREACH: error_rate 50.00% > 1.00% for 3 consecutive samples" in text
    assert "FAILED" in text


def test_auto_display_headless_is_text():
    assert isinstance(auto_display(RULES), TextProgress)


def test_jupyter_display_updates_handles_in_a_real_kernel(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    code = (
        "import time\n"
        "from relnb.metrics import FunctionSource, Rule, run_window\n"
        "from relnb.metrics.live import auto_display, Tee, JupyterDisplay\n"
        "rules = [Rule('error_rate', max=0.01, min_samples=3)]\n"
        "display_ = auto_display(rules, every_s=0.5)\n"
        "assert isinstance(display_, Tee) and isinstance(display_.displays[0], JupyterDisplay)\n"
        "out = run_window(FunctionSource({'error_rate': lambda t: 0.0}), rules, 2.0, 0.25, on_tick=display_)\n"
        "print(out.status, out.evidence['metrics']['error_rate']['count'])\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    kinds = [o.output_type for o in outputs]
    assert kinds.count("display_data") == 2, kinds  # status + chart, updated in place
    chart = next(o for o in outputs if "application/vnd.vegalite.v6+json" in o.get("data", {}))
    points = chart["data"]["application/vnd.vegalite.v6+json"]["datasets"]["points:error_rate"]
    printed = next(
        o["text"] for o in outputs if o.output_type == "stream" and o["name"] == "stdout"
    )
    status, count = printed.split()
    assert status == "passed"
    assert len(points) == int(count) >= 3  # the final state of the live chart holds every sample


MARIMO_NB = """import marimo

app = marimo.App()


@app.cell
def _():
    from relnb.metrics import FunctionSource, Rule, run_window
    from relnb.metrics.live import Tee, auto_display

    rules = [Rule("error_rate", max=0.01, min_samples=3)]
    d = auto_display(rules, every_s=0.5)
    kind = type(d.displays[0]).__name__ if isinstance(d, Tee) else type(d).__name__
    out = run_window(FunctionSource({"error_rate": lambda t: 0.0}), rules, 2.0, 0.25, on_tick=d)
    print("KIND", kind, out.status)
    return


if __name__ == "__main__":
    app.run()
"""


def test_marimo_display_replaces_the_cell_output_in_a_marimo_kernel(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    nb = tmp_path / "window.py"
    nb.write_text(MARIMO_NB)
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    marimo = Path(sys.executable).with_name("marimo")
    proc = subprocess.run(
        [
            str(marimo),
            "export",
            "ipynb",
            "--include-outputs",
            str(nb),
            "-o",
            str(tmp_path / "out.ipynb"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = json.loads((tmp_path / "out.ipynb").read_text())["cells"][0]["outputs"]
    text = json.dumps(outputs)
    assert "KIND MarimoDisplay passed" in text  # marimo was detected inside its kernel
    shown = [o for o in outputs if o["output_type"] == "display_data"]
    html = "".join(shown[-1]["data"]["text/html"])
    assert "relnb-window-status" in html and "passed" in html  # the final replaced output
    assert "application/vnd.vegalite.v6+json" in html  # the chart, rendered by marimo's frontend


def test_a_teams_ratio_metric_is_plotted_in_percent_like_its_text():
    """The text said "4.00%" for a team's `cache_miss_ratio` (samples.is_fraction) while the live
    chart plotted 0.04 with no unit: both follow is_fraction now."""
    from relnb.metrics.charts import metric_chart

    spec = metric_chart("cache_miss_ratio", [Rule("cache_miss_ratio", max=0.2)]).to_dict()
    y = next(_encodings(spec, "y"))
    assert y["title"] == "cache_miss_ratio (%)" and y["axis"]["format"] == ".1%", y
    plain = next(_encodings(metric_chart("queue_depth", []).to_dict(), "y"))
    assert plain["title"] == "queue_depth" and plain["axis"]["format"] == "~s", plain
