"""Real ssh-keygen keys (ed25519 and RSA), a real git repo holding allowed_signers, real journals.

People: alice (ed25519) is the release lead; bob (RSA) is a db-reviewer; carol (ed25519) is
added to allowed_signers only *after* the release SHA; mallory (ed25519) is never in it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from relnb.journal import JournalWriter
from relnb.signing import SigningSettings, approve

from ..core.helpers import git

ALICE, BOB, CAROL, MALLORY = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "mallory@example.com",
)


@dataclass
class Keys:
    dir: Path

    def priv(self, who: str) -> Path:
        return self.dir / who

    def pub(self, who: str) -> str:
        return " ".join((self.dir / f"{who}.pub").read_text().split()[:2])


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    assert shutil.which("ssh-keygen"), "ssh-keygen is required (apt-get install openssh-client)"
    d = tmp_path_factory.mktemp("keys")
    for name, kind in (
        ("alice", "ed25519"),
        ("bob", "rsa"),
        ("carol", "ed25519"),
        ("mallory", "ed25519"),
    ):
        args = ["-t", kind] + (["-b", "2048"] if kind == "rsa" else [])
        subprocess.run(
            ["ssh-keygen", "-q", *args, "-N", "", "-C", name, "-f", str(d / name)],
            check=True,
            timeout=60,
        )
    return Keys(d)


@dataclass
class Repo:
    path: Path
    sha_before: str  # the release SHA: alice + bob
    sha_after: str  # carol added later


@pytest.fixture
def repo(tmp_path: Path, keys: Keys) -> Repo:
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    signers = path / ".relnb" / "allowed_signers"
    signers.parent.mkdir()
    signers.write_text(
        "# who may sign relnb approvals\n"
        f"# relnb-roles: {ALICE} release-lead\n"
        f"# relnb-roles: {BOB} db-reviewer,prod-approver\n"
        f'{ALICE} namespaces="relnb" {keys.pub("alice")}\n'
        f"{BOB} {keys.pub('bob')} bob's laptop\n"
    )
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "allowed signers")
    before = git(path, "rev-parse", "HEAD")
    with signers.open("a") as fh:
        fh.write(f"# relnb-roles: {CAROL} db-reviewer,prod-approver\n{CAROL} {keys.pub('carol')}\n")
    git(path, "commit", "-q", "-am", "add carol")
    return Repo(path, before, git(path, "rev-parse", "HEAD"))


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RELNB_SIGNING_KEY", "RELNB_SIGNING_PRINCIPAL", "SSH_AUTH_SOCK", "RELNB_USER"):
        monkeypatch.delenv(var, raising=False)


def new_journal(
    directory: Path, repo: Repo, *, release_id: str = "1.4.0", sha: str | None = None
) -> JournalWriter:
    j = JournalWriter.open(directory, create=True)
    j.append(
        "release-created",
        {
            "release_id": release_id,
            "version": release_id,
            "git_sha": sha or repo.sha_before,
            "author": {"name": "alice", "email": ALICE, "key": None},
        },
    )
    return j


@pytest.fixture
def journal(tmp_path: Path, repo: Repo) -> Iterator[JournalWriter]:
    j = new_journal(tmp_path / "releases" / "1.4.0", repo)
    yield j
    j.close()


def settings(**kw: object) -> SigningSettings:
    return SigningSettings.from_mapping({"gates": {"A3": ["db-reviewer"]}, **kw})


# Journal events shaped exactly like relnb/release.py writes them, plus the approval fragment.


def signed_event(
    j: JournalWriter,
    repo: Repo,
    kind: str,
    gate: str | None,
    text: str,
    key: Path | str | None,
    st: SigningSettings | None = None,
    **kw,
):
    grant = approve(
        j,
        kind=kind,
        gate=gate,
        text=text,
        settings=st or settings(),
        repo=repo.path,
        key=str(key) if key else None,
        **kw,
    )
    who = grant.identity if grant else {"name": "someone", "email": None, "key": None}
    extra = grant.payload() if grant else {}
    return append_event(j, kind, gate, text, who, extra)


def append_event(j: JournalWriter, kind: str, gate: str | None, text: str, who: dict, extra: dict):
    if kind == "sign-off":
        return j.append("sign-off", {"gate": gate, "by": who, "note": text, **extra})
    if kind == "waiver":
        return j.append(
            "waiver", {"gate": gate, "approver": who, "reason": text, "waives": "failed", **extra}
        )
    if kind == "skip":
        return j.append("skip", {"gate": gate, "by": who, "reason": text, **extra})
    if kind == "force":
        return j.append(
            "gate-started",
            {"gate": gate, "attempt": 2, "forced": True, "reason": text, "by": who, **extra},
        )
    if kind == "promote":
        return j.append("promotion-approved", {"gate": "D", "by": who, "note": text, **extra})
    if kind == "seal":
        return j.append(
            "sealed", {"manifest_sha256": text, "files": 3, "archived_by": who, **extra}
        )
    raise AssertionError(kind)


def failed_gate(j: JournalWriter, gate: str) -> None:
    j.append("gate-started", {"gate": gate, "attempt": 1})
    j.append(
        "gate-finished",
        {"gate": gate, "attempt": 1, "status": "failed", "summary": "broken", "evidence": {}},
    )
