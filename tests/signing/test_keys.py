"""ssh-keygen signing and verification with real keys; allowed_signers as of a commit."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from relnb.signing.keys import (
    SigningError,
    allowed_signers_at,
    fingerprint,
    parse_allowed_signers,
    principal_for,
    sign_statement,
    verify_approval,
)
from relnb.signing.statement import make_statement

from .conftest import ALICE, BOB, CAROL

SHA = "a" * 40


def _stmt(principal: str, **kw: object) -> dict:
    base = dict(
        kind="sign-off",
        release_id="1.4.0",
        release_sha=SHA,
        gate="A3",
        text="reviewed",
        principal=principal,
    )
    base.update(kw)
    return make_statement(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("who", "principal", "algo"), [("alice", ALICE, "ED25519"), ("bob", BOB, "RSA")]
)
def test_sign_and_verify_ed25519_and_rsa(keys, repo, who, principal, algo):
    allowed = allowed_signers_at(repo.path, repo.sha_before, ".relnb/allowed_signers")
    approval = sign_statement(_stmt(principal), keys.priv(who))
    assert approval.signature.startswith("-----BEGIN SSH SIGNATURE-----")
    want_fp = subprocess.run(
        ["ssh-keygen", "-lf", str(keys.priv(who)) + ".pub"], capture_output=True, text=True
    ).stdout.split()[1]
    assert approval.fingerprint == want_fp == fingerprint(str(keys.priv(who)))
    ok = verify_approval(approval, allowed)
    assert ok.ok, ok.reason
    assert (
        algo
        in subprocess.run(
            ["ssh-keygen", "-lf", str(keys.priv(who)) + ".pub"], capture_output=True, text=True
        ).stdout
    )


def test_verify_names_each_failure(keys, repo):
    before = allowed_signers_at(repo.path, repo.sha_before, ".relnb/allowed_signers")
    after = allowed_signers_at(repo.path, repo.sha_after, ".relnb/allowed_signers")
    carol = sign_statement(_stmt(CAROL), keys.priv("carol"))
    res = verify_approval(carol, before)
    assert (
        not res.ok
        and "not in allowed_signers" in res.reason
        and res.fingerprint == carol.fingerprint
    )
    assert verify_approval(carol, after).ok  # the same signature is fine against the later file

    # bob's key, claiming to be alice
    bob_as_alice = sign_statement(_stmt(ALICE), keys.priv("bob"))
    res = verify_approval(bob_as_alice, before)
    assert not res.ok and f"belongs to {BOB}, not {ALICE}" in res.reason

    # modified statement
    good = sign_statement(_stmt(BOB), keys.priv("bob"))
    tampered = type(good)(
        {**good.statement, "text": "lgtm (edited)"},
        good.signature,
        good.principal,
        good.fingerprint,
    )
    res = verify_approval(tampered, before)
    assert not res.ok and "modified after signing" in res.reason

    # the recorded fingerprint must be the signing key's
    lying = type(good)(good.statement, good.signature, good.principal, carol.fingerprint)
    res = verify_approval(lying, before)
    assert not res.ok and "recorded key" in res.reason


def test_namespace_restriction_is_honoured(keys, repo):
    """alice's allowed_signers line has namespaces="relnb": a signature in another namespace fails."""
    before = allowed_signers_at(repo.path, repo.sha_before, ".relnb/allowed_signers")
    from relnb.signing.statement import statement_bytes

    data = statement_bytes(_stmt(ALICE))
    sig = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(keys.priv("alice"))],
        input=data,
        capture_output=True,
        check=True,
    ).stdout.decode()
    from relnb.signing.keys import Approval

    approval = Approval(_stmt(ALICE), sig, ALICE, fingerprint(str(keys.priv("alice"))))
    assert not verify_approval(approval, before).ok


def test_allowed_signers_roles_and_principals(keys, repo):
    text = allowed_signers_at(repo.path, repo.sha_after, ".relnb/allowed_signers")
    allowed = parse_allowed_signers(text)
    assert allowed.roles_of(BOB) == {"db-reviewer", "prod-approver"}
    assert allowed.roles_of(ALICE) == {"release-lead"}
    assert allowed.roles_of("nobody@example.com") == set()
    assert allowed.principals_for_key(keys.pub("carol")) == [CAROL]
    assert principal_for(str(keys.priv("bob")), allowed) == BOB
    with pytest.raises(SigningError, match="not in allowed_signers"):
        principal_for(str(keys.priv("mallory")), allowed)
    with pytest.raises(SigningError, match="not carol"):
        principal_for(str(keys.priv("bob")), allowed, wanted=CAROL)


def test_allowed_signers_at_commits(repo, tmp_path):
    before = allowed_signers_at(repo.path, repo.sha_before, ".relnb/allowed_signers")
    after = allowed_signers_at(repo.path, repo.sha_after, "./.relnb/allowed_signers")
    assert CAROL not in before and CAROL in after
    assert allowed_signers_at(repo.path, repo.sha_before, ".relnb/missing") is None
    with pytest.raises(SigningError, match="not in the repository"):
        allowed_signers_at(repo.path, "b" * 40, ".relnb/allowed_signers")
    with pytest.raises(SigningError, match="no git SHA"):
        allowed_signers_at(repo.path, "", ".relnb/allowed_signers")


def test_passphrase_key_without_agent_fails_fast(tmp_path):
    key = tmp_path / "locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(key)], check=True
    )
    t0 = time.monotonic()
    with pytest.raises(SigningError, match="ssh-agent"):
        sign_statement(_stmt(ALICE), key)
    assert time.monotonic() - t0 < 20


def test_public_key_without_agent_is_refused(keys):
    with pytest.raises(SigningError, match="SSH_AUTH_SOCK"):
        sign_statement(_stmt(ALICE), str(keys.priv("alice")) + ".pub")


def test_sign_through_ssh_agent(keys, repo, tmp_path, monkeypatch):
    """A key held only by ssh-agent: relnb gets the .pub path (or git's key:: form), never the key."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists(), "ssh-agent did not start"
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(
            ["ssh-add", "-q", str(keys.priv("alice"))],
            env=env,
            check=True,
            timeout=10,
            capture_output=True,
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        allowed = allowed_signers_at(repo.path, repo.sha_before, ".relnb/allowed_signers")
        via_pub = sign_statement(_stmt(ALICE), str(keys.priv("alice")) + ".pub")
        via_literal = sign_statement(_stmt(ALICE), "key::" + keys.pub("alice"))
        assert verify_approval(via_pub, allowed).ok
        assert verify_approval(via_literal, allowed).ok
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)
