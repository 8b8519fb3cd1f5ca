"""Signing wired into the Release API and `relnb verify`: opt-in, four-eyes, tamper detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import relnb
from relnb import Outcome
from relnb.signing import SigningRefused

from ..core.helpers import commit
from .conftest import ALICE, BOB


def _project(repo_path: Path, *, enabled: bool) -> Path:
    toml = f'[project]\nrelease_lead = "Alice <{ALICE}>"\n[signing]\nenabled = {str(enabled).lower()}\n'
    commit(repo_path, {"relnb.toml": toml}, "cfg")
    return repo_path


def _release(root: Path, monkeypatch: pytest.MonkeyPatch, who: str, key: Path | None) -> relnb.Release:
    monkeypatch.setenv("RELNB_USER", f"{who.split('@')[0].title()} <{who}>")
    if key:
        monkeypatch.setenv("RELNB_SIGNING_KEY", str(key))
    else:
        monkeypatch.delenv("RELNB_SIGNING_KEY", raising=False)
    return relnb.Release.open("1.0.0", root=root)


def test_signing_is_opt_in(repo, keys, monkeypatch):
    root = _project(repo.path, enabled=False)
    monkeypatch.setenv("RELNB_SIGNING_KEY", str(keys.priv("alice")))
    r = relnb.Release.create("1.0.0", root=root)
    r.request_sign_off("A5", submitted="no flag needed")
    assert "approval" not in r.journal.events[-1].payload
    r.close()


def test_signed_sign_off_four_eyes_and_verify(repo, keys, monkeypatch, tmp_path):
    root = _project(repo.path, enabled=True)
    monkeypatch.setenv("RELNB_USER", f"Alice <{ALICE}>")
    r = relnb.Release.create("1.0.0", root=root)
    r.close()
    r = _release(root, monkeypatch, ALICE, keys.priv("alice"))
    res = r.request_sign_off("A5", submitted="no flag needed")
    ev = r.journal.events[-1]
    assert ev.payload["approval"]["principal"] == ALICE
    assert res.evidence["sign_off"]["by"]["key"].startswith("SHA256:")
    # C3 judges the migration A3 reviewed: it waits for A3's (signed) sign-off
    assert r.run("C3", lambda: Outcome.failed("rewrite of documents")).status is relnb.Status.PENDING
    r.request_sign_off("A3", submitted="one migration: documents.pages, reviewed")
    assert r.journal.events[-1].payload["approval"]["principal"] == ALICE
    r.run("C3", lambda: Outcome.failed("rewrite of documents"))
    with pytest.raises(SigningRefused):  # the release lead waiving their own failure
        r.waive("C3", approver=f"Alice <{ALICE}>", reason="small table")
    assert r.journal.events[-1].type == "approval-refused"
    r.close()
    r = _release(root, monkeypatch, BOB, keys.priv("bob"))
    assert r.waive("C3", approver=f"Bob <{BOB}>", reason="table has 200 rows").status is relnb.Status.WAIVED
    r.close()
    # only a finished release is sealed (issue 19 item 5): this one is given up by its lead
    r = _release(root, monkeypatch, ALICE, keys.priv("alice"))
    r.abandon(reason="signing rehearsal; the changes ship in 1.0.1")
    r.close()

    env = {**os.environ, "RELNB_SIGNING_KEY": str(keys.priv("alice")), "RELNB_USER": f"Alice <{ALICE}>"}
    env.pop("RELNB_ROOT", None)
    sealed = subprocess.run([sys.executable, "-m", "relnb.cli", "archive", "1.0.0"], cwd=root, env=env, capture_output=True, text=True)
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    seal = json.loads((root / "releases" / "1.0.0" / "journal.jsonl").read_text().splitlines()[-1])
    assert seal["type"] == "sealed" and seal["payload"]["approval"]["principal"] == ALICE
    ok = subprocess.run([sys.executable, "-m", "relnb.cli", "verify", "1.0.0"], cwd=root, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signed" in ok.stdout.lower()
    _verifies_away_from_its_repository(root / "releases" / "1.0.0", tmp_path, env, keys)

    # forge: change the signed note and re-chain the journal so only the signature can tell
    from relnb.journal import canonical, event_hash

    path = root / "releases" / "1.0.0" / "journal.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    prev = "0" * 64
    for ev in lines:
        if ev["type"] == "sign-off":
            ev["payload"]["note"] = "flag docflow.analytics is on"
            bad_seq = ev["seq"]
        ev["prev"] = prev
        ev["hash"] = event_hash(ev["seq"], ev["ts"], ev["type"], ev["payload"], prev)
        prev = ev["hash"]
    path.write_bytes(b"".join(canonical(ev) + b"\n" for ev in lines))
    bad = subprocess.run([sys.executable, "-m", "relnb.cli", "verify", "1.0.0"], cwd=root, env=env, capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"seq {bad_seq}" in bad.stdout and ALICE in bad.stdout
    priv = keys.priv("alice").read_text()
    body = "".join(priv.splitlines()[1:-1])
    for f in (root / "releases").rglob("*"):
        if f.is_file():
            assert body[:40] not in f.read_text(errors="replace")


def _verifies_away_from_its_repository(archive: Path, tmp_path: Path, env: dict, keys) -> None:
    """The archive keeps allowed_signers as of the release SHA: a copy committed in another
    repository (a record, a CI fixture) verifies its signatures with no access to the original,
    and swapping that file for one naming an attacker's key is caught."""
    import shutil

    signers = archive / "signing" / "allowed_signers"
    assert ALICE in signers.read_text()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "releases").mkdir(parents=True)
    (elsewhere / "relnb.toml").write_text('[project]\nname = "records"\n')
    copy = elsewhere / "releases" / archive.name
    shutil.copytree(archive, copy, ignore=shutil.ignore_patterns(".lock"))
    ok = subprocess.run([sys.executable, "-m", "relnb.cli", "verify", "--all"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 unsigned — OK" in ok.stdout, ok.stdout
    (copy / "signing" / "allowed_signers").write_text(f"{ALICE} {keys.pub('bob')}\n")
    bad = subprocess.run([sys.executable, "-m", "relnb.cli", "verify", "--all"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "signing/allowed_signers" in bad.stdout, bad.stdout
