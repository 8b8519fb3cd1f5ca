"""Production promotion votes: `[signing] min_production_approvers` holds section D until enough
people other than the release lead approved, each signed, one vote each, pre-signable for CI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import relnb
from relnb import Outcome, Status
from relnb.signing import SigningRefused

from ..core.helpers import all_green, commit
from .conftest import ALICE, BOB, CAROL


def _project(repo, *, approvers: int = 1):
    toml = f'[project]\nrelease_lead = "Alice <{ALICE}>"\n[signing]\nenabled = true\nmin_production_approvers = {approvers}\n'
    commit(repo.path, {"relnb.toml": toml}, "cfg")
    return repo.path


def _as(monkeypatch, who: str, key) -> None:
    monkeypatch.setenv("RELNB_USER", f"{who.split('@')[0].title()} <{who}>")
    monkeypatch.setenv("RELNB_SIGNING_KEY", str(key))


def test_section_d_waits_for_votes_other_than_the_lead(repo, keys, monkeypatch):
    root = _project(repo, approvers=2)
    _as(monkeypatch, ALICE, keys.priv("alice"))
    r = relnb.Release.create("1.4.0", root=root)
    with pytest.raises(relnb.PromotionRefused):  # no vote before A–C allow production
        r.approve_promotion(note="too early")
    all_green(r)
    ran = []
    held = r.action("D2", lambda: ran.append(1) or Outcome.passed("snap"), confirmed=True)
    assert held.status is Status.PENDING and not ran
    assert "needs 2 approver(s) other than the release lead; has 0" in held.summary
    assert "relnb sign 1.4.0 D --kind promote" in held.summary
    with pytest.raises(SigningRefused):  # four-eyes: the lead cannot vote for their own release
        r.approve_promotion(note="mine")
    r.close()
    _as(monkeypatch, BOB, keys.priv("bob"))
    r = relnb.Release.open("1.4.0", root=root)
    assert "has 1 (bob@example.com)" in r.approve_promotion(note="dashboards checked")
    with pytest.raises(SigningRefused):  # one vote each
        r.approve_promotion(note="again")
    r.close()
    _as(monkeypatch, CAROL, keys.priv("carol"))
    r = relnb.Release.open("1.4.0", root=root)
    assert r.approve_promotion(note="go") == ""
    assert r.action("D2", lambda: ran.append(1) or Outcome.passed("snap"), confirmed=True).status is Status.PASSED
    votes = [e for e in r.journal.events if e.type == "promotion-approved"]
    assert [v.payload["approval"]["principal"] for v in votes] == [BOB, CAROL]
    r.close()
    env = {**os.environ}
    env.pop("RELNB_ROOT", None)
    ok = subprocess.run([sys.executable, "-m", "relnb.cli", "verify", "1.4.0"], cwd=root, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "promotion-approved D by bob@example.com" in ok.stdout, ok.stdout
    assert "promotion-approved D by carol@example.com" in ok.stdout
    assert "is the release lead and cannot approve production promotion" in ok.stdout


def test_presigned_votes_are_taken_by_a_headless_run(repo, keys, monkeypatch, tmp_path):
    root = _project(repo, approvers=1)
    _as(monkeypatch, ALICE, keys.priv("alice"))
    r = relnb.Release.create("1.4.0", root=root)
    all_green(r)
    r.close()
    env = {k: v for k, v in os.environ.items() if k != "RELNB_ROOT"}
    approvals = tmp_path / "approvals.json"
    signed = subprocess.run(
        [sys.executable, "-m", "relnb.cli", "sign", "1.4.0", "D", "--kind", "promote", "--note", "looks good",
         "--key", str(keys.priv("bob")), "-o", str(approvals)],
        cwd=root, env=env, capture_output=True, text=True,
    )
    assert signed.returncode == 0, signed.stdout + signed.stderr
    monkeypatch.setenv("RELNB_SIGNOFFS", str(approvals))
    r = relnb.Release.open("1.4.0", root=root)
    assert r.action("D2", lambda: Outcome.passed("snap"), confirmed=True).status is Status.PASSED
    vote = next(e for e in r.journal.events if e.type == "promotion-approved")
    assert vote.payload["approval"]["principal"] == BOB and vote.payload["note"] == "looks good"
    r.close()
    assert json.loads(approvals.read_text())
