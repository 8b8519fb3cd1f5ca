"""DORA metrics from the index, and notebooks/review.py rendering headless to HTML.

The real-archive tests build their releases through the public API in a git repository whose
commit dates they set, so every figure they check is known in advance: a passed release, a
release whose D7 failed and was rolled back, and one still open."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relnb import GATES, Kind, Outcome, Release
from relnb.archive import archive_release, read_index
from relnb.archive.dora import (
    dora_metrics,
    gate_failure_counts,
    gate_failure_frequency,
    load_rows,
    report_html,
)

from ..core.helpers import git
from .builders import REVIEWER, finish, project_with_history

REVIEW = Path(__file__).resolve().parents[2] / "notebooks" / "review.py"


def row(rid, deployed, commits=(), incidents=(), gates=None, failures=None):
    return {
        "release_id": rid,
        "verdict": "passed",
        "created_at": deployed,
        "deployed_at": deployed,
        "commits": [{"sha": f"{rid}-{i}", "committed_at": c} for i, c in enumerate(commits)],
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


def test_rollbacks_count_as_change_failures_and_their_commits_wait_for_the_release_that_ships():
    rows = [
        # rolled back after a minor incident: D5 and D7 passed, the change still failed
        {
            **row("1", "2026-01-01T12:00:00+00:00", ["2026-01-01T00:00:00+00:00"], gates={"D5": "passed", "D7": "passed"}),
            "verdict": "rolled back",
            "commits": [{"sha": "a", "committed_at": "2026-01-01T00:00:00+00:00"}],
        },
        # ships commit a (24 h after it was made) and b; a counts once, from the release that shipped it
        {
            **row("2", "2026-01-02T00:00:00+00:00"),
            "verdict": "passed",
            "commits": [
                {"sha": "a", "committed_at": "2026-01-01T00:00:00+00:00"},
                {"sha": "b", "committed_at": "2026-01-01T22:00:00+00:00"},
            ],
        },
        # imported history: a commit dated before the previous shipped deploy is counted, and said
        {
            **row("3", "2026-01-03T00:00:00+00:00"),
            "verdict": "passed",
            "commits": [
                {"sha": "b", "committed_at": "2026-01-01T22:00:00+00:00"},  # shipped already
                {"sha": "c", "committed_at": "2025-06-01T00:00:00+00:00"},
                {"sha": "d", "committed_at": "2026-01-02T20:00:00+00:00"},
            ],
        },
        # open: listed, counted nowhere (its deploy and its B6 failure alike)
        {**row("4", "2026-01-04T00:00:00+00:00", failures={"B6": 1}), "status": "open", "verdict": "failed"},
    ]
    m = dora_metrics(rows)
    assert (m["deployments"], m["change_failures"], m["change_failure_rate"]) == (3, 1, 0.333)
    assert m["releases"] == 3 and m["open_releases"] == 1
    assert m["lead_time_commits"] == 4  # a (24 h), b (2 h), c, d (4 h); the rolled-back copy of a is not one
    assert m["commits_before_previous_deploy"] == 1  # c, dated long before release 2's deploy
    assert m["lead_time_hours_median"] == 14.0  # median(2, 4, 24, 5136)
    assert gate_failure_frequency(rows)["B6"] == 0.0 and gate_failure_counts(rows) == []
    assert "No gate failed in any sealed release" in report_html(rows)


def _commit_at(root: Path, message: str, committed: datetime, authored: datetime | None = None) -> str:
    """An empty commit with its committer date (and, when it was rebased, an older author date)."""
    git(root, "commit", "-q", "--allow-empty", "-m", message, "--date", (authored or committed).isoformat(),
        date=committed.isoformat())  # --date is the author's, the env's date the committer's
    return git(root, "rev-parse", "HEAD")


def _through_c(r: Release) -> None:
    """Settle A–C (sign-offs by a reviewer, checks on passing evidence), and E2/E3 (the project
    lists them manual): redeploying the previous version is safe, nothing to undo."""
    from relnb.checklist import takes_sign_off

    manual = r.config.data["gates"]["manual"]
    for g in GATES:
        if g.id[0] not in "ABCE" or g.id == "E1":
            continue
        if g.optional:
            r.skip(g.id, reason="not needed in this release")
        elif takes_sign_off(g.id, manual):
            r.request_sign_off(g.id, evidence=lambda: Outcome.passed("redeploy v1.1.0 is safe", redeploy_safe=True, undo=""))
            r.sign_off(g.id, by=REVIEWER, note="checked by hand")
        elif g.kind is Kind.ACTION:
            r.action(g.id, lambda g=g: Outcome.passed(f"{g.id} done"), confirmed=True)
        else:
            r.run(g.id, lambda: Outcome.passed("ok"))


def test_review_figures_from_real_archives_with_a_rolled_back_and_an_open_release(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    root = project_with_history(tmp_path / "proj", manual=("E2", "E3"))
    now = datetime.now(UTC).replace(microsecond=0)
    git(root, "tag", "v1.0.1", date=(now - timedelta(days=20)).isoformat())  # in production before
    # written ten days ago on a branch, rebased onto main 30 hours ago: DORA's clock starts at 30 h
    rebased = _commit_at(root, "feat: export", now - timedelta(hours=30), now - timedelta(days=10))
    authored, committed = git(root, "log", "-1", "--format=%aI %cI").split()
    assert datetime.fromisoformat(authored) < datetime.fromisoformat(committed) - timedelta(days=8)
    _commit_at(root, "fix: export encoding", now - timedelta(hours=10))

    shipped = Release.create("1.1.0", root=root)
    finish(shipped)
    shipped.close()
    assert archive_release("1.1.0", root=root).manifest["verdict"] == "passed"
    git(root, "tag", "-a", "v1.1.0", "-m", "v1.1.0")
    _commit_at(root, "feat: faster search", now - timedelta(hours=2))

    bad = Release.create("1.2.0", root=root)
    _through_c(bad)
    bad.skip("D1", reason="no risky migration")
    for gate in ("D2", "D3", "D4"):
        assert bad.act(gate, confirmed=True).status.ok_for_promotion, bad.result(gate)
    bad.check("D5", lambda: Outcome.passed("smoke flows pass"))
    bad.skip("D6", reason="no tokens")
    bad.check("D7", lambda: Outcome.failed("error rate 7% > 2% for 10 min"))
    bad.rollback(confirmed=True)
    assert bad.state.verdict() == "rolled back", bad.state.seal_blockers()
    bad.close()
    assert archive_release("1.2.0", root=root).manifest["verdict"] == "rolled back"

    still_open = Release.create("1.3.0", root=root)
    still_open.run("B6", lambda: Outcome.failed("stuck jobs"))
    still_open.close()
    (root / "releases" / "index.json").unlink()  # a lost cache hides no sealed release

    rows = load_rows(root / "releases")
    assert [(r["release_id"], r["status"], r["verdict"]) for r in rows] == [
        ("1.1.0", "sealed", "passed"),
        ("1.2.0", "sealed", "rolled back"),
        ("1.3.0", "open", "failed"),
    ]
    assert rows[1]["gate_failed_attempts"] == {"D7": 1} and rows[0]["gate_failed_attempts"] == {}
    shas = [c["sha"] for c in rows[0]["commits"]]
    assert rebased[:12] in [s[:12] for s in shas] and len(shas) == 2
    m = dora_metrics(rows)
    assert (m["releases"], m["open_releases"], m["deployments"]) == (2, 1, 2)
    assert (m["change_failures"], m["change_failure_rate"]) == (1, 0.5)
    # committer dates: median(30 h, 10 h) = 20 h after deploy-time drift of seconds; by author
    # date it would be 125 h, and by the rolled-back release's commit it would include 2 h
    assert m["lead_time_commits"] == 2 and 20 <= m["lead_time_hours_median"] < 20.5, m
    assert m["commits_before_previous_deploy"] == 0
    freq = gate_failure_frequency(rows)
    assert freq["D7"] == 0.5 and freq["B6"] == 0.0  # the open release's B6 is not counted
    assert gate_failure_counts(rows) == [("D7", 1, 2)]
    page = report_html(rows)
    assert ">D7</text>" in page and "50% (1 of 2)" in page and ">B6</text>" not in page
    assert "<td>1.3.0</td><td>1.3.0</td><td>OPEN (not counted)</td>" in page
    assert "1 of 2 deployments" in page and "2 (1 open, not counted)" in page


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
    still_open = Release.create("1.3.0", root=root)  # listed as open, counted in no figure
    still_open.run("B6", lambda: Outcome.failed("stuck jobs again"))
    still_open.close()
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
    assert ">B6</text>" in page and "50% (1 of 2)" in page  # B6 failed in one of two sealed releases
    assert "<td>1.3.0</td><td>1.3.0</td><td>OPEN (not counted)</td>" in page


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


def test_the_demo_dates_its_release_commits_days_before_the_run_and_keeps_its_history(tmp_path):
    """`relnb demo`'s review shows a lead time of days: the release's commits (after v1.0.0) are
    dated before the run's clock; v1.0.0 and its history keep their fixed 2024 dates and SHA."""
    from relnb.archive.changelog import commits_between
    from relnb_demo.repo import PREVIOUS_TAG, create_repo

    now = datetime.now(UTC).replace(microsecond=0)
    fixed = create_repo(tmp_path / "fixed")
    dated = create_repo(tmp_path / "dated", now=now)
    assert dated.previous_sha == fixed.previous_sha and dated.head_sha != fixed.head_sha
    assert create_repo(tmp_path / "again", now=now).head_sha == dated.head_sha  # same clock, same SHAs

    def ages(repo):
        return [(now - datetime.fromisoformat(c.committed_at)).total_seconds() / 3600
                for c in commits_between(repo.path, PREVIOUS_TAG, "HEAD")]

    hours = ages(dated)
    assert len(hours) == 4 and hours == sorted(hours, reverse=True), hours
    assert hours[-1] >= 2 and hours[0] <= 4.5 * 24, hours
    assert min(ages(fixed)) > 365 * 24  # without a clock: the fixed dates, years before any run


def test_a_waived_window_is_a_change_failure_only_when_it_found_a_fault():
    """A rehearsal's shortened D7, inconclusive and waived, saw production neither fail nor stay
    healthy: counted apart. A D7 that breached and was waived (or rerun) is a change failure."""
    short = {**row("1", "2026-01-01T00:00:00+00:00", gates={"D7": "waived"}, failures={"D7": 1}), "gate_failed_attempts": {}}
    breached = {**row("2", "2026-01-02T00:00:00+00:00", gates={"D7": "waived"}, failures={"D7": 1}),
                "gate_failed_attempts": {"D7": 1}}
    rerun = {**row("3", "2026-01-03T00:00:00+00:00", gates={"D5": "passed"}, failures={"D5": 1}),
             "gate_failed_attempts": {"D5": 1}}
    clean = {**row("4", "2026-01-04T00:00:00+00:00", gates={"D5": "passed", "D7": "passed"}), "gate_failed_attempts": {}}
    old = row("5", "2026-01-05T00:00:00+00:00", gates={"D7": "waived"}, failures={"D7": 1})  # sealed before the field
    m = dora_metrics([short, breached, rerun, clean, old])
    assert (m["change_failures"], m["deployments_unverified"], m["change_failure_rate"]) == (2, 2, 0.4)
    page = report_html([short, breached, rerun, clean, old])
    assert "40% (2 of 5 deployments); 2 more not seen healthy either" in page
    assert [c for c in page.split("<td>") if c.startswith(("yes<", "no<", "unverified<"))] == [
        "unverified</td>", "yes</td>", "yes</td>", "no</td>", "unverified</td>"
    ]
