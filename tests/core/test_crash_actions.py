"""Crash mid-action (issue 22): `kill -9` of the process running an action does not leave the
journal saying "interrupted" about a command that went on and finished. The command outlives
relnb, and the next run records how it really ended — from its status file, or by waiting for it —
then runs the action's own verification; it never starts the command a second time."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import relnb
from relnb import Release, Status

from .helpers import all_green, make_project

LEAD = "Lead Person <lead@example.org>"

CHILD = """
import sys
from relnb import Release
r = Release.open(sys.argv[1], root=sys.argv[2])
print(r.act("D3", confirmed=True).status, flush=True)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", LEAD)
    for var in ("RELNB_CONFIRM", "RELNB_SIGNOFFS", "RELNB_RERUN", "RELNB_SKIPS", "RELNB_HEADLESS"):
        monkeypatch.delenv(var, raising=False)
    return make_project(tmp_path / "p")


def configure(root: Path, log: Path, migrate: str) -> None:
    (root / "relnb.toml").write_text(
        '[project]\nmigrations_kind = "none"\n[environments.production]\nbase_url = "http://127.0.0.1:9"\n'
        f'version_path = ""\n[environments.production.commands]\nsnapshot = "echo snapshot >> {log}"\n'
        f"migrate = '{migrate}'\n"
    )


def ready(root: Path) -> str:
    r = Release.create("1.4.0", root=root)
    all_green(r)
    assert r.act("D2", confirmed=True).status is Status.PASSED
    rid = r.id
    r.close()
    return rid


def events(root: Path, rid: str) -> list[dict]:
    journal = next(root.rglob(f"{rid}/journal.jsonl"))
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


def start_and_kill(root: Path, rid: str, *, group: bool = False) -> dict:
    """Run D3 in a child process and SIGKILL it once its command is recorded as started."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, rid, str(root)], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    proc = None
    while time.monotonic() < deadline and proc is None:
        proc = next(
            (e["payload"] for e in events(root, rid)
             if e["type"] == "action-process" and e["payload"]["action"] == "D3"),
            None,
        )
        time.sleep(0.05)
    assert proc is not None, "the child never recorded its command"
    if group:  # the command dies too: as if the machine had restarted
        os.killpg(proc["pid"], signal.SIGKILL)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    return proc


def adopt(root: Path, rid: str) -> relnb.GateResult:
    r = Release.open(rid, root=root)
    try:
        return r.act("D3", confirmed=True)
    finally:
        r.close()


def test_a_command_that_finished_after_relnb_was_killed_is_recorded_as_it_ended(project, tmp_path):
    log = tmp_path / "actions.log"
    configure(project, log, f"echo migrate >> {log}; sleep 1; echo migrated >> {log}")
    rid = ready(project)
    proc = start_and_kill(project, rid)
    deadline = time.monotonic() + 20
    while "migrated" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "migrated" in log.read_text(), "the command died with relnb: kill -9 must not reach it"
    res = adopt(project, rid)
    assert res.status is Status.PASSED, res.summary
    assert res.summary.startswith("finished while relnb was away"), res.summary
    assert res.evidence["adopted"]["how"] == "status file" and res.evidence["exit_code"] == 0
    assert log.read_text().split().count("migrate") == 1, "the command ran twice"
    evs = events(project, rid)
    started = [e for e in evs if e["type"] == "action-started" and e["payload"].get("action") == "D3"]
    finished = [e for e in evs if e["type"] == "action-finished" and e["payload"].get("action") == "D3"]
    assert len(started) == 1 and len(finished) == 1
    assert finished[0]["payload"]["attempt"] == started[0]["payload"]["attempt"]
    # the raw output lived in a private directory, and is gone once the finish is journaled
    assert not Path(proc["output_file"]).exists() and not Path(proc["status_file"]).exists()
    assert stat.S_IMODE(Path(proc["output_file"]).parent.parent.stat().st_mode) == 0o700
    assert str(project) not in proc["output_file"]
    # and it holds: the next call answers from the record
    r = Release.open(rid, root=project)
    assert r.result("D3").status is Status.PASSED and r.state.actions["D3"]["state"] == "finished"
    r.close()


def test_a_command_still_running_is_waited_for(project, tmp_path):
    log = tmp_path / "actions.log"
    configure(project, log, f"echo migrate >> {log}; sleep 3; echo migrated >> {log}")
    rid = ready(project)
    start_and_kill(project, rid)
    res = adopt(project, rid)  # the command is still running: relnb waits for it to end
    assert res.status is Status.PASSED, res.summary
    assert res.evidence["adopted"]["how"] == "waited for the running command"
    assert "migrated" in log.read_text() and log.read_text().split().count("migrate") == 1


def test_a_command_that_failed_while_relnb_was_away_fails_the_action(project, tmp_path):
    log = tmp_path / "actions.log"
    configure(project, log, f"echo migrate >> {log}; sleep 1; echo relation exists; exit 4")
    rid = ready(project)
    start_and_kill(project, rid)
    res = adopt(project, rid)
    assert res.status is Status.FAILED, res.summary
    assert "exited 4" in res.summary and "relation exists" in res.summary


def test_a_command_killed_with_relnb_stays_interrupted(project, tmp_path):
    """The cheapest false verdict: a process that left no status must not be taken as done."""
    log = tmp_path / "actions.log"
    configure(project, log, f"echo migrate >> {log}; sleep 5; echo migrated >> {log}")
    rid = ready(project)
    start_and_kill(project, rid, group=True)
    res = adopt(project, rid)
    assert res.status is Status.INTERRUPTED, res.summary
    assert "without leaving its exit status" in res.summary and "resume" in res.summary
    assert "migrated" not in log.read_text()


def test_a_changed_command_is_not_adopted(project, tmp_path):
    log = tmp_path / "actions.log"
    configure(project, log, f"echo migrate >> {log}; sleep 1")
    rid = ready(project)
    start_and_kill(project, rid)
    configure(project, log, f"echo other-migrate >> {log}")
    res = adopt(project, rid)
    assert res.status is Status.INTERRUPTED and "differs" in res.summary, res.summary
    assert "other-migrate" not in log.read_text()


def test_an_action_run_in_one_process_leaves_no_files_behind(project, tmp_path):
    log = tmp_path / "actions.log"
    configure(project, log, f"echo migrate >> {log}; echo line two")
    rid = ready(project)
    r = Release.open(rid, root=project)
    res = r.act("D3", confirmed=True)
    r.close()
    assert res.status is Status.PASSED and res.evidence["output_tail"] == ["line two"], res
    procs = [e["payload"] for e in events(project, rid) if e["type"] == "action-process" and e["payload"]["action"] == "D3"]
    assert len(procs) == 1 and not Path(procs[0]["output_file"]).exists()
