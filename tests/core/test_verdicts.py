"""Verdict integrity (issue 19, items 1–7): nothing reaches "passed", exit 0 or a sealed archive
without the evidence its gate's kind asks for. Each test names the cheapest false pass it closes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import relnb
from relnb import Outcome, Release, Status, UsageError

from .helpers import all_green, make_project

LEAD = "Lead Person <lead@example.org>"
OTHER = "Second Person <second@example.org>"


@pytest.fixture
def release(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", LEAD)
    for var in ("RELNB_CONFIRM", "RELNB_SIGNOFFS", "RELNB_RERUN", "RELNB_SKIPS", "RELNB_HEADLESS",
                "RELNB_WINDOW_REASON", "RELNB_RERUN_REASON"):
        monkeypatch.delenv(var, raising=False)
    root = make_project(tmp_path / "p")
    r = Release.create("1.4.0", root=root)
    yield r
    r.close()


def with_commands(release: Release, tmp_path: Path, **commands: str) -> Path:
    """Production commands that append to a log (the side effects a test can observe)."""
    log = tmp_path / "actions.log"
    lines = "".join(f'{k} = "echo {k} >> {log}{v}"\n' for k, v in commands.items())
    cfg = release.config.root / "relnb.toml"
    cfg.write_text(f'[project]\nmigrations_kind = "none"\n[environments.production]\nbase_url = "http://127.0.0.1:9"\nversion_path = ""\n'
                   f"[environments.production.commands]\n{lines}")
    release.config = relnb.load_config(cfg)
    return log


# -- item 1, 2: a sign-off settles only a gate a person decides ------------------------------------


def test_a_sign_off_cannot_pass_an_inconclusive_check(release):
    release.run("C2", lambda: Outcome.inconclusive("cannot list the bucket"))
    with pytest.raises(UsageError, match="automatic check"):
        release.sign_off("C2", by=OTHER, note="I looked at the console")
    assert release.result("C2").status is Status.INCONCLUSIVE
    waived = release.waive("C2", approver=OTHER, reason="nightly snapshot verified by hand in the console")
    assert waived.status is Status.WAIVED and "was inconclusive" in waived.summary


def test_a_sign_off_cannot_pass_an_action_that_never_ran(release):
    with pytest.raises(UsageError, match="an action"):
        release.sign_off("D4", by=LEAD, note="deployed by hand")
    assert release.result("D4").status is Status.PENDING
    assert release.state.promotion_blockers()  # nothing got past the guard


def test_a_sign_off_recorded_before_an_action_does_not_hide_its_failure(release):
    """A journal with a sign-off written before the action ran (older relnb, a hand-written
    event): the action's own failure is what the gate shows."""
    all_green(release)
    release.journal.append("sign-off", {"gate": "D2", "by": {"name": "X", "email": "x@example.org"}, "note": "ok"})
    release.action("D2", lambda: Outcome.failed("pg_dump exited 1"), confirmed=True)
    assert release.result("D2").status is Status.FAILED


def test_a_forged_sign_off_of_an_automatic_check_is_not_a_pass(release):
    release.journal.append("sign-off", {"gate": "C2", "by": {"name": "X", "email": "x@example.org"}, "note": "ok"})
    assert release.result("C2").status is Status.PENDING
    release.run("C2", lambda: Outcome.inconclusive("no backups found"))
    release.journal.append("sign-off", {"gate": "C2", "by": {"name": "X", "email": "x@example.org"}, "note": "ok"})
    assert release.result("C2").status is Status.INCONCLUSIVE


def test_a_sign_off_needs_a_reachable_person_and_a_note(release):
    release.request_sign_off("A3", evidence=lambda: Outcome.passed("1 migration"))
    with pytest.raises(UsageError, match="names no email"):
        release.sign_off("A3", by="nobody", note="fine")
    with pytest.raises(UsageError, match="needs a note"):
        release.sign_off("A3", by=OTHER, note=" ")
    assert release.sign_off("A3", by=OTHER, note="read the SQL").status is Status.PASSED


# -- item 3: run() is for checks only; a forced re-run has a reason --------------------------------


def test_run_refuses_sign_off_gates_and_actions(release):
    with pytest.raises(UsageError, match="sign-off"):
        release.run("A3", lambda: Outcome.passed("reviewed"))
    with pytest.raises(UsageError, match="an action"):
        release.run("D2", lambda: Outcome.passed("snapshot"))
    assert release.result("A3").status is Status.PENDING
    assert release.result("D2").status is Status.PENDING
    all_green(release)
    assert release.action("D2", lambda: Outcome.passed("snap"), confirmed=True).status is Status.PASSED
    with pytest.raises(UsageError, match="an action"):
        release.run("D2", lambda: Outcome.passed("again"), rerun=True, reason="again")
    assert sum(e.type == "action-started" and e.payload.get("action") == "D2" for e in release.journal.events) == 1


def test_a_gate_listed_manual_is_not_passed_by_run(release):
    cfg = release.config.root / "relnb.toml"
    cfg.write_text('[gates]\nmanual = ["C2"]\n')
    release.config = relnb.load_config(cfg)
    with pytest.raises(UsageError, match="sign-off"):
        release.run("C2", lambda: Outcome.passed("looked fine"))
    assert release.check("C2").status is Status.PENDING
    assert release.sign_off("C2", by=OTHER, note="snapshot at 02:00 restored in staging").status is Status.PASSED


# -- item 4: section D is a sequence; safe mode is switched off again -------------------------------


def test_a_failed_production_step_stops_every_step_after_it(release, tmp_path):
    log = with_commands(release, tmp_path, snapshot="", migrate="", deploy="")
    all_green(release, except_=("D1",))
    d1 = release.act("D1", confirmed=True)  # no safe_mode_on command configured
    assert d1.status is Status.FAILED
    for gate in ("D2", "D3", "D4"):
        res = release.act(gate, confirmed=True)
        assert res.status is Status.PENDING and "D1 failed" in res.summary, res.summary
    assert release.check("D5", lambda: Outcome.passed("smoke")).status is Status.PENDING
    assert not log.exists()  # no snapshot, no migration, no deploy
    assert release.state.verdict() == "failed"


def test_safe_mode_is_switched_off_after_the_deploy(release, tmp_path):
    log = with_commands(release, tmp_path, safe_mode_on="", safe_mode_off="", snapshot="", migrate="", deploy="")
    all_green(release, except_=("D1",))
    for gate in ("D1", "D2", "D3", "D4"):
        assert release.act(gate, confirmed=True).status is Status.PASSED, release.result(gate)
    assert log.read_text().split() == ["safe_mode_on", "snapshot", "migrate", "deploy", "safe_mode_off"]
    release.act("D4", confirmed=True)  # re-executing the cell repeats nothing
    assert log.read_text().split().count("safe_mode_off") == 1


def test_safe_mode_without_a_way_out_fails_before_switching_it_on(release, tmp_path):
    log = with_commands(release, tmp_path, safe_mode_on="")
    all_green(release, except_=("D1",))
    d1 = release.act("D1", confirmed=True)
    assert d1.status is Status.FAILED and "safe_mode_off" in d1.summary
    assert not log.exists()


# -- item 5: only a finished release is sealed -------------------------------------------------------


def test_a_failed_release_is_not_sealed_by_a_blanket_confirm(release, monkeypatch):
    release.run("A1", lambda: Outcome.failed("2 checks red"))
    monkeypatch.setenv("RELNB_CONFIRM", "all")
    release.context = relnb.RunContext.from_env()
    said = relnb.archive.archive(release, confirmed=True)
    assert isinstance(said, str) and "not finished" in said and "A1 failed" in said, said
    assert release.state.sealed is None
    with pytest.raises(relnb.RelnbError, match="not finished"):
        relnb.archive.archive_release(release.id, config=release.config)
    # it can still be fixed and run again
    assert release.run("A1", lambda: Outcome.passed("green")).status is Status.PASSED


def test_an_abandoned_release_is_sealed_with_that_verdict(release):
    release.run("A1", lambda: Outcome.failed("2 checks red"))
    with pytest.raises(UsageError):
        release.abandon(reason=" ")
    release.abandon(reason="the fix ships in 1.4.1", by=LEAD)
    assert release.state.verdict() == "abandoned"
    result = relnb.archive.archive_release(release.id, config=release.config)
    assert result.manifest["verdict"] == "abandoned"
    from relnb.journal import read_events

    sealed = [e for e in read_events(release.directory / "journal.jsonl") if e.type == "sealed"]
    assert sealed[0].payload["verdict"] == "abandoned"
    assert "CHANGELOG.md" not in result.files  # a changelog entry would claim it shipped


# -- item 6: a rollback that fails is "rollback failed", exit 1 --------------------------------------


def deployed(release: Release, tmp_path: Path, **commands: str) -> Path:
    log = with_commands(release, tmp_path, snapshot="", migrate="", deploy="", **commands)
    all_green(release)
    for gate in ("D2", "D3", "D4"):
        assert release.act(gate, confirmed=True).status is Status.PASSED
    return log


def test_a_failing_rollback_step_makes_the_verdict_rollback_failed(release, tmp_path):
    from relnb.headless import exit_code

    deployed(release, tmp_path)
    release.check("D5", lambda: Outcome.failed("login flow 500"))
    table = release.rollback(confirmed=True)  # no previous tag: the redeploy step fails
    assert table.rows[-1].status is Status.FAILED
    state = relnb.read_state(release.id, config=release.config)
    assert state.verdict() == "rollback failed" and exit_code(state) == 1
    assert [i["title"] for i in state.incidents if i.get("severity") == "critical"]
    text = repr(state.table())
    # no previous tag, so no safe plan: the rollback stops at its plan instead of redeploying blind
    assert "Rollback" in text and "rollback-plan" in text and "no safe rollback" in text  # `relnb status` shows it
    assert state.seal_blockers()[0][0] == "rollback"


def test_a_rolled_back_release_exits_1_and_does_not_tag(release, tmp_path):
    from relnb.headless import exit_code

    deployed(release, tmp_path)
    release.check("D5", lambda: Outcome.failed("login flow 500"))
    steps = [("rollback-redeploy", lambda: Outcome.passed("previous version live"))]
    import relnb.actions.gates as action_gates

    original = action_gates.rollback_steps
    action_gates.rollback_steps = lambda ctx: steps
    try:
        release.rollback(confirmed=True)
    finally:
        action_gates.rollback_steps = original
    state = release.state
    assert state.verdict() == "rolled back" and exit_code(state) == 1
    f1 = release.act("F1", confirmed=True)
    assert f1.status is Status.PENDING, f1.summary
    assert not state.seal_blockers()


def test_a_deploy_cut_off_by_a_crash_is_rolled_back_when_decided_in_advance(release, tmp_path, monkeypatch):
    log = with_commands(release, tmp_path, snapshot="", migrate="", deploy="")
    all_green(release)
    release.act("D2", confirmed=True)
    release.act("D3", confirmed=True)
    # the process died mid-deploy: started, never finished
    release.journal.append("action-started", {"gate": "D4", "action": "D4", "attempt": 1})
    monkeypatch.setenv("RELNB_CONFIRM", "all,rollback-on-failure")
    release.context = relnb.RunContext.from_env()
    assert release.act("D4").status is Status.INTERRUPTED
    table = release.rollback()
    assert table.rows[0].title == "rollback-plan", table  # it ran (and fails: no previous tag, no plan)
    assert "deploy" not in log.read_text().split()[2:]
    assert release.state.verdict() == "rollback failed"


# -- item 7: a skip holds; the CLI refuses what it cannot honour -------------------------------------


def test_a_recorded_skip_holds_in_the_next_run(release, tmp_path, monkeypatch):
    log = with_commands(release, tmp_path)
    all_green(release, except_=("D1",))
    monkeypatch.setenv("RELNB_SKIPS", json.dumps({"D1": "no risky migration"}))
    release.context = relnb.RunContext.from_env()
    assert release.act("D1", confirmed=True).status is Status.SKIPPED
    monkeypatch.setenv("RELNB_SKIPS", "{}")
    monkeypatch.setenv("RELNB_CONFIRM", "all")
    release.context = relnb.RunContext.from_env()
    assert release.act("D1").status is Status.SKIPPED
    assert not log.exists()


RELNB = [sys.executable, "-m", "relnb.cli"]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--skip", "A1=CI is slow today"], "A1 is required"),
        (["--sign-off", "A3=nobody"], "names no email"),
        (["--sign-off", "A3=Nobody <n@example.org>"], "has no note"),
        (["--rerun", "A1"], "needs --rerun-reason"),
    ],
)
def test_the_cli_refuses_decisions_it_cannot_honour(tmp_path, args, needle):
    root = make_project(tmp_path / "p")
    env = {**os.environ, "RELNB_USER": LEAD}
    env.pop("RELNB_ROOT", None)
    subprocess.run([*RELNB, "new", "1.0.0"], cwd=root, env=env, check=True, capture_output=True)
    journal = root / "releases" / "1.0.0" / "journal.jsonl"
    before = journal.read_bytes()
    proc = subprocess.run([*RELNB, "run", "notebooks/release-1.0.0.py", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert needle in proc.stderr
    assert journal.read_bytes() == before


# -- item 11 (the core's part): a shortened window is at most waived --------------------------------


def test_a_shortened_clean_window_is_waived_in_the_shorteners_words(release, monkeypatch):
    def short() -> Outcome:
        return Outcome.inconclusive("window 2m shorter than the configured 30m: samples within limits",
                                    shortened={"configured": "30m", "used": "2m", "would_pass": True})

    release.run("B1", lambda: Outcome.passed("staging runs main"))
    assert release.check("B8", short).status is Status.INCONCLUSIVE  # no reason given: not waived
    monkeypatch.setenv("RELNB_WINDOW_REASON", "rehearsal on a laptop")
    release.context = relnb.RunContext.from_env()
    res = release.check("B8", short)
    assert res.status is Status.WAIVED and "rehearsal on a laptop" in res.summary
    assert release.state.gates["B8"].waiver["approver"]["email"] == "lead@example.org"
    # samples that broke a rule stay failed, whatever the reason
    release.check("C1", lambda: Outcome.failed("error rate 9%", shortened={"configured": "24s", "used": "5s"}))
    assert release.result("C1").status is Status.FAILED
    # and a window without evidence (the metrics source went away) is not the shortening's doing
    all_green(release, except_=("C1",))
    release.check("C1", lambda: Outcome.passed("soak clean"), rerun=True, reason="after the fix")
    for gate in ("D2", "D3", "D4"):
        release.action(gate, lambda: Outcome.passed("done"), confirmed=True)
    release.check("D5", lambda: Outcome.passed("smoke ok"))
    release.skip("D6", reason="no tokens")
    gone = release.check("D7", lambda: Outcome.inconclusive(
        "metrics source failed mid-window", shortened={"configured": "30m", "used": "2m"}))
    assert gone.status is Status.INCONCLUSIVE


def test_the_quickstart_seals_only_a_finished_release(tmp_path):
    """examples/quickstart with `--confirm all`: without the skips B3 fails and the release stays
    open (it used to be sealed as failed, never to be retried); with them it passes and seals."""
    import shutil

    from .helpers import Repo

    example = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
    repo = Repo(tmp_path / "qs")
    for f in example.iterdir():
        shutil.copy(f, repo.path / f.name)
    repo.commit({}, "quickstart", tag="v0.9.0")
    env = {**os.environ, "RELNB_USER": "Quick Start <qs@example.org>"}
    env.pop("RELNB_ROOT", None)

    def relnb_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*RELNB, *args], cwd=repo.path, env=env, capture_output=True, text=True, timeout=300)

    nb = "notebooks/release-1.0.0.py"
    assert relnb_cli("new", "1.0.0").returncode == 0
    first = relnb_cli("run", nb, "--sign-offs", "sign-offs.json", "--confirm", "all")
    assert first.returncode == 1 and "B3  FAIL" in first.stdout, first.stdout + first.stderr
    state = relnb.read_state("1.0.0", root=repo.path)
    assert state.sealed is None and state.verdict() == "failed"
    second = relnb_cli("run", nb, "--sign-offs", "sign-offs.json", "--confirm", "all", "--skip", "B3=no images",
                       "--skip", "D1=no risky migration", "--skip", "D6=no bearer tokens")
    assert second.returncode == 0, second.stdout + second.stderr
    state = relnb.read_state("1.0.0", root=repo.path)
    assert state.verdict() == "passed" and state.sealed is not None


def test_f1_tags_on_a_machine_whose_git_has_no_identity(release, tmp_path, monkeypatch):
    """Found by running CI with a new user's environment: `git tag -a` needs a committer, and a
    fresh machine has none configured; the tag is the release lead's."""
    from relnb.actions.gates import git_tag
    from relnb.gatecontext import GateContext

    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    out = git_tag(GateContext(release, "F1"))
    assert out.status is Status.PASSED, out.summary
    tagger = subprocess.run(["git", "for-each-ref", "--format=%(taggeremail)", "refs/tags/v1.4.0"],
                            cwd=release.config.root, capture_output=True, text=True).stdout.strip()
    assert tagger == "<lead@example.org>"


def test_a_failed_rollback_is_a_failing_testcase_in_junit(release, tmp_path):
    from relnb.junit import write_junit

    deployed(release, tmp_path)
    release.check("D5", lambda: Outcome.failed("login flow 500"))
    release.rollback(confirmed=True)
    xml = write_junit(relnb.read_state(release.id, config=release.config), tmp_path / "junit.xml").read_text()
    assert 'name="E3 rollback: rollback-plan"' in xml and xml.count("<testcase") == 34
    assert 'tests="34"' in xml
