"""The demo's approvers: real ed25519 keys, their allowed_signers committed before the release SHA."""

from __future__ import annotations

import subprocess
from pathlib import Path

from relnb.signing.keys import (
    allowed_signers_at,
    parse_allowed_signers,
    sign_statement,
    verify_approval,
)
from relnb.signing.statement import make_statement
from relnb_demo import signers
from relnb_demo.repo import ALLOWED_SIGNERS, PREVIOUS_TAG, create_repo


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_keys_and_allowed_signers_in_the_repo(tmp_path: Path) -> None:
    lead, reviewer = signers.generate(tmp_path / "stack" / "signing-keys")
    assert lead.principal == "lead@docflow.test" and reviewer.principal == "reviewer@docflow.test"
    assert (tmp_path / "stack" / "signing-keys").stat().st_mode & 0o077 == 0  # keys dir is private
    for s in (lead, reviewer):
        assert s.public.startswith("ssh-ed25519 ")
        assert "BEGIN OPENSSH PRIVATE KEY" in s.key.read_text()
    text = signers.allowed_signers((lead, reviewer))
    assert "PRIVATE" not in text and lead.public in text and reviewer.public in text

    repo = create_repo(tmp_path / "docflow", allowed_signers=text)
    since = git(repo.path, "log", "--format=%s", f"{PREVIOUS_TAG}..HEAD").splitlines()
    assert "chore(release): signing keys for relnb approvals" in since and len(since) == 5
    at_head = allowed_signers_at(repo.path, repo.head_sha, ALLOWED_SIGNERS)
    assert at_head == text
    assert allowed_signers_at(repo.path, repo.previous_sha, ALLOWED_SIGNERS) is None
    parsed = parse_allowed_signers(at_head)
    assert parsed.roles_of(reviewer.principal) == {"db-reviewer"}
    assert "db-reviewer" not in parsed.roles_of(lead.principal)

    # a statement signed with the reviewer's key verifies against the committed file
    st = make_statement(
        kind="sign-off", release_id="1.1.0", release_sha=repo.head_sha, gate="A3",
        text="ok", principal=reviewer.principal,
    )
    assert verify_approval(sign_statement(st, reviewer.key), at_head).ok
    forged = sign_statement({**st, "principal": lead.principal}, reviewer.key)
    assert not verify_approval(forged, at_head).ok  # the reviewer's key cannot sign as the lead
