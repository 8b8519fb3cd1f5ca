"""Unsigned approvals are marked UNSIGNED wherever a release is shown; signed ones name the signer.

Covers `relnb show` (gate lines, approvals, timeline), the archive's HTML page and ipynb timeline,
the review page and notebook, and headless progress lines, for a release recorded without keys
and for one signed with real ssh-keygen keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relnb import Outcome, Release
from relnb.eventtext import describe_event
from relnb.journal import read_events

from ..core.helpers import commit
from .conftest import ALICE, BOB, Repo

RELNB = [sys.executable, "-m", "relnb.cli"]
REVIEW = Path(__file__).resolve().parents[2] / "notebooks" / "review.py"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("RELNB_")}
    e.update({"RELNB_USER": f"Alice <{ALICE}>", "MARIMO_SKIP_UPDATE_CHECK": "1", **(env or {})})
    return subprocess.run(
        [*RELNB, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=300, check=False
    )


def _project(repo: Repo, signing: str) -> Path:
    commit(repo.path, {"relnb.toml": f'[project]\nname = "marks"\nrelease_lead = "Alice <{ALICE}>"\n{signing}'}, "relnb config")
    return repo.path


def _record(root: Path, monkeypatch: pytest.MonkeyPatch, key: Path | None) -> None:
    """Sign off A5, skip D1, force a re-run of B5 and (as Bob) waive B7: every approval kind."""
    monkeypatch.setenv("RELNB_USER", f"Alice <{ALICE}>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    if key:
        monkeypatch.setenv("RELNB_SIGNING_KEY", str(key))
    r = Release.create("1.0.0", root=root)
    r.request_sign_off("A5", submitted="no flag needed")
    r.skip("D1", reason="no risky migration")
    r.run("B5", lambda: Outcome.passed("smoke ok"))
    r.run("B5", lambda: Outcome.passed("smoke ok again"), rerun=True, reason="flaky runner")
    r.run("B7", lambda: Outcome.failed("3 jobs in the DLQ"))
    r.close()


def _waive_as_bob(root: Path, monkeypatch: pytest.MonkeyPatch, key: Path | None) -> None:
    monkeypatch.setenv("RELNB_USER", f"Bob <{BOB}>")
    if key:
        monkeypatch.setenv("RELNB_SIGNING_KEY", str(key))
    r = Release.open("1.0.0", root=root)
    r.waive("B7", approver=f"Bob <{BOB}>", reason="known poison messages, replayed after")
    r.close()


def _abandon_as_alice(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a finished release is sealed (issue 19 item 5): this one, with B7 waived but most
    gates never run, is given up by its lead, with a reason, and sealed as "abandoned"."""
    monkeypatch.setenv("RELNB_USER", f"Alice <{ALICE}>")
    r = Release.open("1.0.0", root=root)
    r.abandon(reason="rehearsal of the approval marks; 1.0.1 ships")
    r.close()


def _review_page(root: Path, tmp: Path) -> str:
    out = tmp / "review.html"
    env = {**os.environ, "RELNB_RELEASES_DIR": str(root / "releases"), "HOME": str(tmp)}
    env["MARIMO_SKIP_UPDATE_CHECK"] = "1"
    proc = subprocess.run(
        [sys.executable, str(REVIEW), "--html", str(out)],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out.read_text()


def _review_notebook_outputs(root: Path, tmp: Path) -> str:
    """What the review notebook's cells display (marimo's app.run), as text."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('review', {str(REVIEW)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "outputs, _defs = mod.app.run()\n"
        "print('\\n'.join(getattr(o, 'text', '') or '' for o in outputs if o is not None))\n"
    )
    env = {**os.environ, "RELNB_RELEASES_DIR": str(root / "releases"), "HOME": str(tmp)}
    env["MARIMO_SKIP_UPDATE_CHECK"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp, capture_output=True, text=True,
        timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_unsigned_release_is_marked_everywhere(repo: Repo, tmp_path: Path, monkeypatch):
    root = _project(repo, "")
    _record(root, monkeypatch, None)
    _waive_as_bob(root, monkeypatch, None)
    events = read_events(root / "releases" / "1.0.0" / "journal.jsonl")
    approvals = [e for e in events if e.type in ("sign-off", "skip", "waiver") or e.payload.get("forced")]
    assert len(approvals) == 4 and not any("approval" in e.payload for e in approvals)

    # headless progress lines (the same renderer as the timeline)
    for ev in approvals:
        assert "[UNSIGNED]" in describe_event(ev).column(), ev.type

    # an open release in `relnb show`
    show = cli("show", "1.0.0", "--timeline", cwd=root)
    assert show.returncode == 0, show.stderr
    gate_lines = show.stdout.split("gates:", 1)[1].split("incidents:", 1)[0].splitlines()
    for gid in ("A5", "D1", "B7"):  # the gate table's summaries carry the mark too
        line = next(ln for ln in gate_lines if ln.split()[:1] == [gid])
        assert "[UNSIGNED]" in line, line
    approvals_part = show.stdout.split("approvals:", 1)[1].split("timeline:", 1)[0]
    assert approvals_part.count("[UNSIGNED]") == 4, approvals_part
    assert "B5 forced re-run by" in approvals_part and "flaky runner" in approvals_part
    timeline = show.stdout.split("timeline:", 1)[1]
    assert f"A5 signed off by Alice <{ALICE}> [UNSIGNED]: no flag needed" in timeline
    assert f"B7 waived by Bob <{BOB}> [UNSIGNED]: known poison messages" in timeline

    # archived: HTML page, ipynb timeline, `relnb show` from the archive summary, review
    _abandon_as_alice(root, monkeypatch)
    sealed = cli("archive", "1.0.0", cwd=root)
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    d = root / "releases" / "1.0.0"
    html = (d / "release.html").read_text()
    assert "A5 signed off by Alice &lt;alice@example.com&gt; [UNSIGNED]" in html
    assert "D1 skipped by" in html and html.count("[UNSIGNED]") >= 4
    nb = json.loads((d / "release.ipynb").read_text())
    timeline_cell = next(c for c in nb["cells"] if c["source"] == "record.timeline()")
    text = timeline_cell["outputs"][0]["data"]["text/plain"]
    assert f"B7 waived by Bob <{BOB}> [UNSIGNED]" in text and "B5 forced re-run by" in text
    archived_show = cli("show", "1.0.0", cwd=root).stdout
    assert archived_show.split("approvals:", 1)[1].count("[UNSIGNED]") == 4
    page = _review_page(root, tmp_path)
    assert "4 UNSIGNED" in page and page.count(">UNSIGNED<") == 4
    assert _review_notebook_outputs(root, tmp_path).count("<strong>UNSIGNED</strong>") == 4


def test_signed_release_names_principal_and_key(repo: Repo, keys, tmp_path: Path, monkeypatch):
    root = _project(repo, "[signing]\nenabled = true\n")
    _record(root, monkeypatch, keys.priv("alice"))
    _waive_as_bob(root, monkeypatch, keys.priv("bob"))
    _abandon_as_alice(root, monkeypatch)
    sealed = cli("archive", "1.0.0", cwd=root, env={"RELNB_SIGNING_KEY": str(keys.priv("alice"))})
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr

    show = cli("show", "1.0.0", "--timeline", cwd=root).stdout
    approvals_part = show.split("approvals:", 1)[1].split("timeline:", 1)[0]
    assert "UNSIGNED" not in show
    assert approvals_part.count(f"[signed by {ALICE} (SHA256:") == 3  # sign-off, skip, force
    assert approvals_part.count(f"[signed by {BOB} (SHA256:") == 1  # the waiver
    fp = next(
        e.payload["approval"]["fingerprint"]
        for e in read_events(root / "releases" / "1.0.0" / "journal.jsonl")
        if e.type == "waiver"
    )
    assert f"{fp[:19]}…" in approvals_part and fp not in approvals_part  # short fingerprint
    html = (root / "releases" / "1.0.0" / "release.html").read_text()
    assert f"B7 waived by bob &lt;{BOB}&gt; [signed by {BOB} (SHA256:" in html
    assert "UNSIGNED" not in html
    page = _review_page(root, tmp_path)
    assert "4 signed" in page and "UNSIGNED" not in page and f"signed by {BOB}" in page
    verify = cli("verify", "1.0.0", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "6 validly signed, 0 unsigned" in verify.stdout  # four approvals, the abandonment and the seal
