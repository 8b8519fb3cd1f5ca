"""DORA metrics from the index, and notebooks/review.py rendering headless to HTML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relnb import Outcome, Release
from relnb.archive import archive_release, read_index
from relnb.archive.dora import dora_metrics, gate_failure_frequency

from .builders import finish, project_with_history

REVIEW = Path(__file__).resolve().parents[2] / "notebooks" / "review.py"


def row(rid, deployed, commits=(), incidents=(), gates=None, failures=None):
    return {
        "release_id": rid,
        "created_at": deployed,
        "deployed_at": deployed,
        "commits": [{"sha": "x", "committed_at": c} for c in commits],
        "incidents": list(incidents),
        "gates": gates or {},
        "gate_failures": failures or {},
    }


def test_dora_definitions():
    rows = [
        row(
            "1",
            "2026-01-01T12:00:00+00:00",
            ["2026-01-01T00:00:00+00:00", "2026-01-01T06:00:00+00:00"],
        ),
        row(
            "2",
            "2026-01-08T12:00:00+00:00",
            ["2026-01-08T10:00:00+00:00"],
            incidents=[
                {
                    "severity": "major",
                    "started_at": "2026-01-08T13:00:00+00:00",
                    "ended_at": "2026-01-08T13:30:00+00:00",
                }
            ],
            failures={"B6": 2},
        ),
        row("3", "2026-01-15T12:00:00+00:00", gates={"D7": "failed"}, failures={"D7": 1, "B6": 1}),
        {**row("4", None), "created_at": "2026-01-16T00:00:00+00:00"},  # never deployed
    ]
    m = dora_metrics(rows)
    assert m["deployments"] == 3 and m["deployment_frequency_per_week"] == 1.5  # 3 over 2 weeks
    assert m["lead_time_hours_median"] == 6.0  # 12, 6, 2
    assert m["change_failure_rate"] == round(2 / 3, 3)
    assert m["time_to_restore_minutes_median"] == 30.0
    freq = gate_failure_frequency(rows)
    assert freq["B6"] == 0.5 and freq["D7"] == 0.25 and freq["A1"] == 0.0


def test_review_notebook_headless_html_from_real_archives(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    root = project_with_history(tmp_path / "proj")
    for rid, ok in (("1.1.0", True), ("1.2.0", False)):
        r = Release.create(rid, root=root)
        r.run("B6", lambda ok=ok: Outcome.passed("ok") if ok else Outcome.failed("stuck jobs"))
        if ok:
            finish(r)  # only a finished release is sealed (issue 19 item 5)
        else:
            r.abandon(reason="stuck jobs: the fix ships in 1.2.1")
        r.close()
        assert archive_release(rid, root=root).manifest["verdict"] == ("passed" if ok else "abandoned")
    assert set(read_index(root / "releases")) == {"1.1.0", "1.2.0"}
    out = tmp_path / "review.html"
    env = {
        **os.environ,
        "RELNB_RELEASES_DIR": str(root / "releases"),
        "HOME": str(tmp_path),
        "MARIMO_SKIP_UPDATE_CHECK": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(REVIEW), "--html", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text()
    assert "1.1.0" in page and "1.2.0" in page and "<script" not in page
    assert ">B6</text>" in page and "50%" in page  # B6 failed in one of two releases


@pytest.mark.parametrize("n", [3])
def test_list_stays_on_the_index(tmp_path, monkeypatch, n):
    """`relnb list` reads index rows; it does not fold archived journals."""
    from relnb.archive.commands import list_rows
    from relnb.config import load_config

    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    root = project_with_history(tmp_path / "proj")
    for i in range(n):
        r = Release.create(f"1.{i}.0", root=root)
        r.abandon(reason="an empty release, sealed for the index")  # sealed only when finished
        r.close()
        archive_release(f"1.{i}.0", root=root)
    cfg = load_config(root / "relnb.toml")
    for i in range(n):  # make the journals unreadable: list must not care
        (root / "releases" / f"1.{i}.0" / "journal.jsonl").write_text("garbage\n")
    rows = list_rows(cfg)
    assert [r["release_id"] for r in rows] == [f"1.{i}.0" for i in range(n)]
