"""F2 (incidents need tests) and F3 (changelog from a real git history, line by line)."""

from __future__ import annotations

import pytest

from relnb import GateContext, Outcome, Release, Status
from relnb.archive import (
    f2_incidents,
    f3_changelog,
    insert_section,
    update_incident,
    waive_incident_test,
)
from relnb.archive.changelog import commits_between, parse_commit

from ..core.helpers import all_green
from .builders import git, project_with_history


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    return project_with_history(tmp_path / "proj")


def f2(release):
    """The F2 provider's verdict (the gate itself waits for D7, which these releases never run)."""
    return f2_incidents(GateContext(release, "F2"))


def test_f2_needs_an_existing_test_or_a_waiver_for_every_incident(project):
    r = Release.create("1.1.0", root=project)
    assert f2(r).status is Status.PASSED  # nothing happened: positive evidence of no incidents
    inc = r.incident("upload 503s", severity="major", started_at="2026-01-05T10:00:00+00:00")
    seq = next(e.seq for e in r.journal.events if e.type == "incident")
    res = f2(r)
    assert res.status is Status.FAILED and "links no test" in res.summary
    update_incident(r, seq, test="tests/test_upload.py::test_retry_on_503")
    res = f2(r)
    assert res.status is Status.FAILED and "does not exist" in res.summary
    (project / "tests").mkdir()
    (project / "tests" / "test_upload.py").write_text(
        "class TestUpload:\n    def test_other(self):\n        pass\n"
    )
    update_incident(r, seq, test="tests/test_upload.py::TestUpload::test_retry_on_503[503]")
    res = f2(r)
    assert res.status is Status.FAILED and "test_retry_on_503 is not defined" in res.summary
    (project / "tests" / "test_upload.py").write_text(
        "class TestUpload:\n    def test_retry_on_503(self):\n        assert True\n"
    )
    assert f2(r).status is Status.PASSED
    r.incident("dashboard slow", severity="minor")  # no time range, no test
    res = f2(r)
    assert res.status is Status.FAILED
    seq2 = max(e.seq for e in r.journal.events if e.type == "incident")
    waive_incident_test(
        r, seq2, approver="Ops <ops@example.org>", reason="config change, no code bug"
    )
    assert "start time" in f2(r).summary
    update_incident(
        r, seq2, started_at="2026-01-05T11:00:00+00:00", ended_at="2026-01-05T11:20:00+00:00"
    )
    res = f2(r)
    assert res.status is Status.PASSED, res.summary
    assert inc["severity"] == "major"
    r.close()


def test_conventional_commit_parsing():
    c = parse_commit(
        "a" * 40, "feat(api)!: drop v1 routes", "BREAKING CHANGE: clients must use /v2"
    )
    assert (c.type, c.scope, c.breaking, c.category) == ("feat", "api", True, "Added")
    assert c.breaking_note == "clients must use /v2"
    assert parse_commit("b" * 40, "fix(security): escape names").category == "Security"
    assert parse_commit("c" * 40, "Merge branch x").category is None
    assert parse_commit("d" * 40, "docs: readme").category is None


def test_f3_section_from_real_history_line_by_line_and_idempotent(project):
    shas = {}
    for msg, day in [
        ("feat(upload): resumable uploads", 4),
        ("docs: explain retries", 5),
        ("perf: cache analytics summary", 6),
        ("refactor!: rename workspace owner field\n\nBREAKING CHANGE: owner is now owner_id", 7),
        ("not a conventional message", 8),
        ("fix(security): escape workspace names", 9),
    ]:
        git(
            project,
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            msg,
            date=f"2026-01-{day:02d}T10:00:00+00:00",
        )
        shas[msg.split(":")[0]] = git(project, "rev-parse", "--short=7", "HEAD")
    first = commits_between(project, "v1.0.0")
    assert len(first) == 8
    feat_api = git(project, "rev-parse", "--short=7", "HEAD~7")
    fix_up = git(project, "rev-parse", "--short=7", "HEAD~6")
    r = Release.create("1.1.0", root=project)
    r.run(
        "A2",
        lambda: __import__("relnb").Outcome.passed(
            "1 added", added=["GET /analytics/summary"], removed=[], changed=[], breaking_changes=[]
        ),
    )
    r.run(
        "E3",
        lambda: __import__("relnb").Outcome.passed(
            "plan",
            migrations=[
                {
                    "name": "20260104_add_pages",
                    "reversible": True,
                    "reason": "down migration present",
                },
                {
                    "name": "20260106_drop_legacy",
                    "reversible": False,
                    "reason": "no down migration",
                },
            ],
        ),
    )
    r.incident(
        "upload 503s",
        severity="major",
        started_at="2026-01-05T10:00:00+00:00",
        ended_at="2026-01-05T10:07:00+00:00",
        test="tests/test_upload.py::test_retry",
    )
    waiting = r.action("F3", lambda: f3_changelog(GateContext(r, "F3")), confirmed=True)
    assert waiting.status is Status.PENDING and "D4" in waiting.summary
    assert not (project / "CHANGELOG.md").exists()  # nothing written for a version not deployed
    all_green(r)
    r.action("D2", lambda: Outcome.passed("snapshot"), confirmed=True)
    r.action("D3", lambda: Outcome.passed("migrated"), confirmed=True)
    r.action("D4", lambda: Outcome.passed("deployed"), confirmed=True)
    # deployed is not shipped: F3 also waits for the monitoring window (issue 19 item 5)
    waiting = r.action("F3", lambda: f3_changelog(GateContext(r, "F3")), confirmed=True)
    assert waiting.status is Status.PENDING and "D7" in waiting.summary
    assert not (project / "CHANGELOG.md").exists()
    r.run("D5", lambda: Outcome.passed("production smoke passed"))
    r.skip("D6", reason="no tokens")
    r.run("D7", lambda: Outcome.passed("window clean"))
    res = r.action("F3", lambda: f3_changelog(GateContext(r, "F3")), confirmed=True)
    assert res.status is Status.PASSED, res.summary
    import datetime

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    expected = [
        f"## [1.1.0] - {today}",
        "",
        "### Added",
        "",
        f"- **api:** analytics summary endpoint ({feat_api})",
        f"- **upload:** resumable uploads ({shas['feat(upload)']})",
        "",
        "### Changed",
        "",
        f"- cache analytics summary ({shas['perf']})",
        f"- **BREAKING:** rename workspace owner field ({shas['refactor!']})",
        "  owner is now owner_id",
        "",
        "### Fixed",
        "",
        f"- upload retries on 503 ({fix_up})",
        "",
        "### Security",
        "",
        f"- **security:** escape workspace names ({shas['fix(security)']})",
        "",
        "### Migrations",
        "",
        "- `20260104_add_pages` — reversible: down migration present",
        "- `20260106_drop_legacy` — not reversible: no down migration",
        "",
        "### API",
        "",
        "- Added `GET /analytics/summary`",
        "",
        "### Incidents",
        "",
        "- [major] upload 503s (2026-01-05T10:00:00+00:00 – 2026-01-05T10:07:00+00:00); test `tests/test_upload.py::test_retry`",
    ]
    changelog = (project / "CHANGELOG.md").read_text()
    section = res.evidence["section"]
    assert section.splitlines() == expected
    assert changelog.startswith("# Changelog\n") and "## [Unreleased]\n\n## [1.1.0]" in changelog
    assert (
        res.evidence["commits_left_out"]
        == ["chore: init", "docs: explain retries", "not a conventional message"][1:]
    )
    # idempotent: the same section again changes nothing; F3 re-run (forced) reports it
    again = r.action(
        "F3",
        lambda: f3_changelog(GateContext(r, "F3")),
        confirmed=True,
        force=True,
        reason="check idempotence",
    )
    assert (
        again.evidence["changed"] is False and (project / "CHANGELOG.md").read_text() == changelog
    )
    r.close()


def test_insert_section_places_and_replaces():
    doc = "# Changelog\n\n## [Unreleased]\n\n- wip\n\n## [1.0.0] - 2026-01-01\n\n### Added\n\n- first\n\n[1.0.0]: https://example.org/v1.0.0\n"
    new, changed = insert_section(doc, "1.1.0", "## [1.1.0] - 2026-02-01\n\n### Fixed\n\n- a bug\n")
    assert changed
    assert new.index("## [Unreleased]") < new.index("## [1.1.0]") < new.index("## [1.0.0]")
    same, changed2 = insert_section(
        new, "1.1.0", "## [1.1.0] - 2026-02-01\n\n### Fixed\n\n- a bug\n"
    )
    assert not changed2 and same == new
    replaced, changed3 = insert_section(
        new, "1.1.0", "## [1.1.0] - 2026-02-02\n\n### Fixed\n\n- two bugs\n"
    )
    assert (
        changed3
        and "two bugs" in replaced
        and "- a bug" not in replaced
        and replaced.count("## [1.1.0]") == 1
    )
    assert replaced.rstrip().endswith("[1.0.0]: https://example.org/v1.0.0")
    latest, _ = insert_section(
        doc, "1.0.0", "## [1.0.0] - 2026-01-01\n\n### Added\n\n- first, reworded\n"
    )
    assert latest.rstrip().endswith("[1.0.0]: https://example.org/v1.0.0") and "reworded" in latest
