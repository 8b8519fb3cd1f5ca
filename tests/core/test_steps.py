"""The one step runner: gate checks, gate actions and rollback steps share one lifecycle, and the
journal keeps the shapes each has always had (committed archives are read against them)."""

import ast
import re
from pathlib import Path

import pytest

from relnb import Outcome, Release, Status
from relnb.gates import GATE_IDS, ROLLBACK_GATE

from .helpers import make_project

RELNB = Path(__file__).resolve().parents[2] / "relnb"
# The release core: the facade and the concepts behind it. Gates are named only in relnb.gates.
CORE = ("release", "runcontext", "steps", "promotion", "decisions", "effects")


@pytest.fixture
def release(tmp_path, monkeypatch):
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    for var in ("RELNB_CONFIRM", "RELNB_SIGNOFFS", "RELNB_RERUN", "RELNB_SKIPS", "RELNB_HEADLESS"):
        monkeypatch.delenv(var, raising=False)
    r = Release.create("1.4.0", root=make_project(tmp_path / "p"))
    yield r
    r.close()


def events(release, kind):
    return [e.payload for e in release.journal.events if e.type == kind]


def _boom(exc):
    def step():
        raise exc

    return step


def test_a_gate_step_and_a_named_step_are_journaled_under_their_own_keys(release):
    release.run("A1", lambda: Outcome.passed("  two\n lines "))
    release.action(ROLLBACK_GATE, lambda: Outcome.passed("kept\n as is"), name="revert-app", confirmed=True)
    gate = events(release, "gate-finished")[-1]
    named = events(release, "action-finished")[-1]
    assert list(gate)[:2] == ["gate", "attempt"] and gate["summary"] == "two lines"
    assert list(named)[:2] == ["action", "of_gate"] and named["of_gate"] == ROLLBACK_GATE
    assert "attempt" not in named and named["summary"] == "kept\n as is"
    assert release.action_result("revert-app")["status"] == "passed"


def test_every_kind_of_step_fails_on_a_crash_or_a_wrong_type(release):
    assert release.run("A2", _boom(ValueError("bad"))).summary == "ValueError: bad"
    assert release.run("A6", lambda: True).status is Status.FAILED
    named = release.action(ROLLBACK_GATE, _boom(RuntimeError("no")), name="restore-db", confirmed=True)
    assert named.status is Status.FAILED and "Traceback" in named.evidence["traceback"]
    wrong = release.action(ROLLBACK_GATE, lambda: "yes", name="flush", confirmed=True)
    assert wrong.status is Status.FAILED and "not an Outcome" in wrong.summary


def test_an_interrupted_step_is_journaled_then_reraised(release):
    with pytest.raises(KeyboardInterrupt):
        release.run("B4", _boom(KeyboardInterrupt()))
    assert events(release, "gate-finished")[-1]["status"] == "interrupted"
    assert release.result("B4").status is Status.INTERRUPTED
    with pytest.raises(KeyboardInterrupt):
        release.action(ROLLBACK_GATE, _boom(KeyboardInterrupt()), name="flush", confirmed=True)
    assert events(release, "action-finished")[-1] == {
        "action": "flush", "of_gate": ROLLBACK_GATE, "status": "interrupted", "summary": "interrupted by the user"
    }
    cut = release.action(ROLLBACK_GATE, lambda: Outcome.passed("x"), name="flush", confirmed=True)
    assert cut.status is Status.INTERRUPTED and cut.recorded
    again = release.action(ROLLBACK_GATE, lambda: Outcome.passed("done"), name="flush", confirmed=True, resume=True)
    assert again.status is Status.PASSED
    assert events(release, "action-started")[-1]["resumed"] is True


def test_a_forced_named_step_keeps_its_reason_after_its_confirmation(release):
    release.action(ROLLBACK_GATE, lambda: Outcome.passed("1"), name="revert-app", confirmed=True)
    release.action(ROLLBACK_GATE, lambda: Outcome.passed("2"), name="revert-app", confirmed=True, force=True, reason="redo")
    started = events(release, "action-started")[-1]
    assert list(started) == ["action", "of_gate", "confirmed_by", "forced", "reason"]


def _string_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.mark.parametrize("module", CORE)
def test_the_release_core_names_no_gate(module):
    """Gate roles come from relnb.gates (DEPLOY_GATE, ROLLBACK_GATE, ...), so a renumbered
    checklist changes one module; the core's code and docstrings name no gate ID."""
    ids = re.compile(r"\b(" + "|".join(GATE_IDS) + r")\b")
    named = [s for s in _string_literals(RELNB / f"{module}.py") if ids.search(s)]
    assert named == [], f"relnb/{module}.py names gates: {named}"
