"""Forged archives fail `relnb verify` in a project that requires signing (issue 22 item 1).

An archive is only hashes: anyone who can write its files can rewrite the journal, re-hash the
chain and the manifest, and put the sealed event's hash back. These tests do exactly that, as
an attacker would, and check that verify judges the result by the project it runs in (its
relnb.toml `[signing]` and allowed_signers, or `--trust`), not by the archive's own copies; and
that every file under an archive is accounted for.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relnb import Release
from relnb.archive import archive_release
from relnb.archive import files as F
from relnb.journal import GENESIS, Event, event_hash
from relnb.signing.keys import sign_statement
from relnb.signing.statement import expected_statement

from ..core.helpers import git
from ..signing.conftest import ALICE, BOB, Keys, Repo, _no_ambient_keys, keys, repo  # noqa: F401
from ..signing.test_marks import _abandon_as_alice, _project, _record, _waive_as_bob, cli
from .builders import finish, project_with_history

REQUIRED = f'[project]\nname = "marks"\nrelease_lead = "Alice <{ALICE}>"\n[signing]\nenabled = true\nrequired = true\n'
INTEGRITY_ONLY = "integrity only, not authenticity: anyone who can write the files can re-hash them"


Edit = Callable[[dict[str, Any]], dict[str, Any]]


def forge(directory: Path, edit: Edit, files: dict[str, str] | None = None) -> None:
    """Rewrite every event's payload (`edit` gets the event with its new prev), replace archived
    files, and re-hash it all: the chain, the manifest's entries, the sealed event's manifest hash."""
    journal = directory / F.JOURNAL
    raw = [json.loads(line) for line in journal.read_text().splitlines()]
    for name, text in (files or {}).items():
        (directory / name).write_text(text)
    manifest = json.loads((directory / F.MANIFEST).read_text())
    for name, entry in manifest["files"].items():
        entry.update(
            sha256=F.sha256_file(directory / name), bytes=(directory / name).stat().st_size
        )
    prev, lines = GENESIS, []
    for obj in raw[:-1]:
        p = edit({**obj, "prev": prev})
        ev = Event(
            obj["seq"],
            obj["ts"],
            obj["type"],
            p,
            prev,
            event_hash(obj["seq"], obj["ts"], obj["type"], p, prev),
        )
        lines.append(ev.line())
        prev = ev.hash
    before = b"".join(lines)
    manifest["journal"].update(
        head=prev, events=len(lines), sha256=F.sha256_bytes(before), bytes=len(before)
    )
    text = F.dump_json(manifest)
    (directory / F.MANIFEST).write_text(text)
    sealed = raw[-1]
    payload = {**sealed["payload"], "manifest_sha256": F.sha256_bytes(text.encode())}
    p = edit({**sealed, "payload": payload, "prev": prev})
    ev = Event(
        sealed["seq"],
        sealed["ts"],
        "sealed",
        p,
        prev,
        event_hash(sealed["seq"], sealed["ts"], "sealed", p, prev),
    )
    journal.write_bytes(before + ev.line())


def strip_approvals(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev["payload"].items() if k != "approval"}


def fingerprint_of(key: Path) -> str:
    return sign_statement({"principal": "x"}, key).fingerprint


def resign_as(swap: dict[str, Path], release: tuple[str, str]) -> Edit:
    """Re-sign every approval made with a key (by fingerprint) with the attacker's key for it,
    naming the same principals: what someone who rewrites the archive's allowed_signers copy to
    list their keys for those principals can do."""

    def edit(ev: dict[str, Any]) -> dict[str, Any]:
        a = ev["payload"].get("approval")
        if not a:
            return ev["payload"]
        key = swap[a["fingerprint"]]
        fp = fingerprint_of(key)
        p = json.loads(json.dumps(ev["payload"]).replace(a["fingerprint"], fp))
        st = expected_statement({**ev, "payload": p}, a["statement"], *release)
        if "prev" in st:  # signed over the rewritten chain, as the attacker can
            st["prev"] = ev["prev"]
        return {**p, "approval": sign_statement(st, key).to_dict()}

    return edit


@pytest.fixture
def signed_archive(repo: Repo, keys: Keys, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    """A sealed archive whose approvals and seal are signed with real keys (as in test_marks)."""
    root = _project(repo, "[signing]\nenabled = true\n")
    _record(root, monkeypatch, keys.priv("alice"))
    _waive_as_bob(root, monkeypatch, keys.priv("bob"))
    _abandon_as_alice(root, monkeypatch)
    sealed = cli("archive", "1.0.0", cwd=root, env={"RELNB_SIGNING_KEY": str(keys.priv("alice"))})
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    (root / "relnb.toml").write_text(REQUIRED)  # the project now requires signing
    return root


def test_honest_signed_archive_verifies_in_a_project_requiring_signing(signed_archive: Path):
    """issue 22 item 1: the anchors do not reject what is genuinely signed."""
    out = cli("verify", "1.0.0", cwd=signed_archive)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sealed archive OK" in out.stdout and "6 validly signed, 0 unsigned" in out.stdout
    assert INTEGRITY_ONLY not in out.stdout


def test_downgrade_forgery_fails_in_a_project_requiring_signing(signed_archive: Path):
    """issue 22 item 1: approvals removed, the archived policy set to unsigned, all re-hashed."""
    d = signed_archive / "releases" / "1.0.0"
    cfg = (
        (d / "config" / "relnb.toml")
        .read_text()
        .replace("enabled = true", "enabled = false\nrequired = false")
    )
    forge(d, strip_approvals, {"config/relnb.toml": cfg})
    out = cli("verify", "1.0.0", cwd=signed_archive)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "sealed archive OK" in out.stdout  # the hashes really were all put back
    assert (
        "the archive's policy (signing off) is weaker than the project's (required)" in out.stdout
    )
    assert (
        "the project requires signed approvals; seq" in out.stdout
        and "sign-off A5 is unsigned" in out.stdout
    )
    sealed_seq = len((d / F.JOURNAL).read_text().splitlines()) - 1
    assert f"seq {sealed_seq} seal is unsigned" in out.stdout
    # an explicit trust anchor judges it the same from anywhere
    trusted = cli(
        "verify", str(d), "--trust", str(signed_archive / ".relnb" / "allowed_signers"), cwd=d
    )
    assert trusted.returncode == 1 and "A5 is unsigned" in trusted.stdout, (
        trusted.stdout + trusted.stderr
    )


def test_resigned_archive_with_forged_signers_copy_fails_outside_its_repository(
    signed_archive: Path,
    keys: Keys,  # noqa: F811
    tmp_path: Path,
):
    """issue 22 item 1: verified where the release SHA is not at hand, the archive's own
    allowed_signers copy stood in unchecked; mallory re-signs every approval, lists her key for
    alice and bob in that copy, re-hashes: the project's allowed_signers (or --trust) rejects it."""
    other = tmp_path / "reviewer"  # a reviewer's checkout: same signers, not the app's history
    (other / ".relnb").mkdir(parents=True)
    shutil.copy(signed_archive / ".relnb" / "allowed_signers", other / ".relnb" / "allowed_signers")
    (other / "relnb.toml").write_text(REQUIRED)
    git(other, "init", "-q", "-b", "main")
    git(other, "add", ".")
    git(other, "commit", "-q", "-m", "reviewer")
    d = signed_archive / "releases" / "1.0.0"
    honest = tmp_path / "honest"
    shutil.copytree(d, honest)
    ok = cli("verify", str(honest), cwd=other)
    assert ok.returncode == 0 and "6 validly signed" in ok.stdout, ok.stdout + ok.stderr

    created = json.loads((d / F.JOURNAL).read_text().splitlines()[0])["payload"]
    signers = (d / F.ALLOWED_SIGNERS).read_text()
    swap = {"alice": "mallory", "bob": "carol"}  # carol's key was added after the release SHA
    for who, attacker in swap.items():
        signers = signers.replace(keys.pub(who), keys.pub(attacker))
    forge(
        d,
        resign_as(
            {fingerprint_of(keys.priv(w)): keys.priv(a) for w, a in swap.items()},
            (created["release_id"], created["git_sha"]),
        ),
        {F.ALLOWED_SIGNERS: signers},
    )
    forged = tmp_path / "forged"
    shutil.copytree(d, forged)
    out = cli("verify", str(forged), cwd=other)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "sealed archive OK" in out.stdout and f"signer {ALICE} (SHA256:" in out.stdout
    assert "is not trusted by the project's" in out.stdout
    assert "prev differs" not in out.stdout and "does not match" not in out.stdout  # a true forgery
    trust = tmp_path / "trusted_signers"
    shutil.copy(signed_archive / ".relnb" / "allowed_signers", trust)
    anywhere = cli("verify", str(forged), "--trust", str(trust), cwd=forged)
    assert anywhere.returncode == 1 and f"is not trusted by {trust}" in anywhere.stdout, (
        anywhere.stdout
    )


@pytest.fixture
def unsigned_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    monkeypatch.delenv("RELNB_ROOT", raising=False)
    root = project_with_history(tmp_path / "proj")
    r = Release.create("1.1.0", root=root)
    finish(r)
    r.close()
    archive_release("1.1.0", root=root)
    return root


def _flip_f2(ev: dict[str, Any]) -> dict[str, Any]:
    p = ev["payload"]
    if p.get("gate") == "F2" and "status" in p:
        return {**p, "status": "failed" if p["status"] == "passed" else "passed"}
    return p


def test_rehashed_unsigned_archive_fails_in_a_project_requiring_signing(unsigned_archive: Path):
    """issue 22 item 1: F2's result flipped and re-hashed verifies by hashes; a project that
    requires signing rejects it (nothing in it is signed); an unsigned project says integrity only."""
    d = unsigned_archive / "releases" / "1.1.0"
    before = (d / F.JOURNAL).read_text()
    forge(d, _flip_f2)
    assert (d / F.JOURNAL).read_text() != before
    unsigned = cli("verify", "1.1.0", cwd=unsigned_archive)
    assert unsigned.returncode == 0 and INTEGRITY_ONLY in unsigned.stdout, (
        unsigned.stdout + unsigned.stderr
    )
    config = unsigned_archive / "relnb.toml"
    config.write_text(config.read_text() + "[signing]\nrequired = true\n")
    out = cli("verify", "1.1.0", cwd=unsigned_archive)
    assert out.returncode == 1, out.stdout + out.stderr
    assert (
        "the archive's policy (signing off) is weaker than the project's (required)" in out.stdout
    )
    assert "seal is unsigned" in out.stdout and INTEGRITY_ONLY not in out.stdout


def test_file_added_under_staging_is_named(unsigned_archive: Path):
    """issue 22 item 1: a file planted under .archive-staging/ is not in the manifest."""
    d = unsigned_archive / "releases" / "1.1.0"
    (d / F.STAGING).mkdir()
    (d / F.STAGING / "payload.html").write_text("<script>alert(1)</script>")
    out = cli("verify", "1.1.0", cwd=unsigned_archive)
    assert out.returncode == 1, out.stdout + out.stderr
    assert ".archive-staging/payload.html: added (not in the manifest)" in out.stdout


def test_symlinked_release_html_is_refused(unsigned_archive: Path, tmp_path: Path):
    """issue 22 item 1: a symlink with the right bytes behind it is still refused."""
    d = unsigned_archive / "releases" / "1.1.0"
    elsewhere = tmp_path / "release.html"
    shutil.move(d / F.HTML, elsewhere)
    os.symlink(elsewhere, d / F.HTML)
    out = cli("verify", "1.1.0", cwd=unsigned_archive)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "release.html: is a symlink (refused" in out.stdout


def test_deleted_journal_is_a_tamper_report(unsigned_archive: Path):
    """issue 22 item 1: a deleted journal.jsonl fails naming it, by id and with --all."""
    d = unsigned_archive / "releases" / "1.1.0"
    (d / F.JOURNAL).unlink()
    for args in (["1.1.0"], ["--all"]):
        out = cli("verify", *args, cwd=unsigned_archive)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "journal.jsonl: missing (deleted" in out.stdout, out.stdout
        assert "no release" not in out.stdout + out.stderr


def test_project_requiring_signing_without_an_anchor_fails(signed_archive: Path, tmp_path: Path):
    """issue 22 item 1: where neither the release SHA nor an allowed_signers file is at hand,
    the archive's own copy is no anchor: a project that requires signing says so and fails."""
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "relnb.toml").write_text(REQUIRED)
    git(bare, "init", "-q", "-b", "main")
    git(bare, "add", ".")
    git(bare, "commit", "-q", "-m", "bare")
    out = cli("verify", str(signed_archive / "releases" / "1.0.0"), cwd=bare)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no trust anchor for the archive's allowed_signers" in out.stdout
