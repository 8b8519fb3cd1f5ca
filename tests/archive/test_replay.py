"""Replay: the archived notebook re-executed offline reaches the same outcome on every gate."""

from __future__ import annotations

import json
import shutil

import pytest

from relnb import Release
from relnb.archive import archive_release, replay_archive
from relnb.journal import JournalWriter, read_events

from .builders import LEAD, NO_SERVICES, notebook_release, project_with_history, relnb


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    return project_with_history(tmp_path / "proj", manual=NO_SERVICES)


def _unshare_ok() -> bool:
    import subprocess

    return (
        shutil.which("unshare") is not None
        and subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False).returncode
        == 0
    )


def test_notebook_release_replays_identically_with_network_disabled(project):
    d = notebook_release(project)
    log_before = (project / "actions.log").read_text()
    relnb("archive", "1.1.0", cwd=project, check=True)
    statuses = {
        json.loads(ln)["payload"].get("gate")
        for ln in (d / "journal.jsonl").read_text().splitlines()
    }
    assert {"A1", "B2", "D2", "D3", "D4"} <= statuses  # the run reached production steps
    assert json.loads((d / "manifest.json").read_text())["verdict"] == "passed"
    if not _unshare_ok():
        pytest.fail(
            "unshare -rn is needed to run the replay in a network namespace without interfaces"
        )
    proc = relnb("replay", "1.1.0", cwd=project, prefix=["unshare", "-rn"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replay identical — 33 gates" in proc.stdout
    assert (project / "actions.log").read_text() == log_before  # no action ran again
    assert relnb("verify", "1.1.0", cwd=project).returncode == 0  # replay never writes the archive


def test_replay_uses_the_archived_notebook_not_the_changed_template(project):
    notebook_release(project, "1.2.0")
    archive_release("1.2.0", root=project)
    (project / "templates").mkdir()
    (project / "templates" / "release.py").write_text(
        'raise SystemExit("new template must not run")\n'
    )
    (project / "notebooks" / "release-1.2.0.py").write_text(
        'raise SystemExit("live notebook must not run")\n'
    )
    rep = replay_archive(project / "releases" / "1.2.0")
    assert rep.identical, rep.summary + rep.output
    assert rep.notebook == "notebook.py"


def test_replay_reapplies_waivers_and_detects_a_record_the_notebook_cannot_produce(
    project, tmp_path
):
    d = notebook_release(project, "1.3.0")
    # forge: D4 "passed" although A–C block promotion. Written straight into the journal (as an
    # edited record would be), then archived. Replaying the notebook cannot reproduce it.
    relnb("new", "1.4.0", cwd=project, check=True)
    w = JournalWriter.open(project / "releases" / "1.4.0")
    w.append("action-started", {"gate": "D4", "action": "D4", "attempt": 1})
    w.append(
        "action-finished",
        {"gate": "D4", "action": "D4", "status": "passed", "summary": "deployed", "evidence": {}},
    )
    w.close()
    # only a finished release is sealed (issue 19 item 5): the forged one is sealed as abandoned
    forged = Release.open("1.4.0", root=project)
    forged.abandon(reason="record edited by hand", by=LEAD)
    forged.close()
    assert archive_release("1.4.0", root=project).manifest["verdict"] == "abandoned"
    rep = replay_archive(project / "releases" / "1.4.0")
    assert not rep.identical
    assert ("D4", "passed", "pending") in rep.differences

    # a waived failure replays as waived, and the guard lets D proceed as it did live
    assert archive_release("1.3.0", root=project).manifest["verdict"] == "passed"
    events = read_events(d / "journal.jsonl")
    assert any(e.type == "sign-off" for e in events)
    assert [e.payload["gate"] for e in events if e.type == "waiver"] == ["A6"]
    rep = replay_archive(d)
    assert rep.identical, rep.summary + rep.output


def test_replay_refuses_a_tampered_archive(project):
    d = notebook_release(project, "1.5.0")
    archive_release("1.5.0", root=project)
    (d / "notebook.py").write_text((d / "notebook.py").read_text() + "\n# edited\n")
    proc = relnb("replay", "1.5.0", cwd=project)
    assert proc.returncode == 3 and "notebook.py: changed" in proc.stderr
