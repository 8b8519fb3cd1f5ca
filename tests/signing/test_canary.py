"""Canary: private key material never appears in the journal, approvals files, reports or any output."""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from relnb.cli import add_sign_parser
from relnb.journal import read_events
from relnb.signing import SigningError, SigningRefused, verify_release_signatures
from relnb.signing.keys import sign_statement
from relnb.signing.statement import make_statement

from ..core.helpers import git
from .conftest import append_event, failed_gate, new_journal, settings, signed_event


def _needles(key_file: Path) -> list[str]:
    """Every form the private key could leak in: its PEM body lines and the raw private scalar."""
    text = key_file.read_text()
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("-----")]
    raw = serialization.load_ssh_private_key(text.encode(), None).private_bytes_raw()
    return [*body, raw.hex(), base64.b64encode(raw).decode().rstrip("="), "PRIVATE KEY"]


def test_no_private_key_material_anywhere(tmp_path, repo, keys, capfd):
    # a fresh canary key of the project's release lead… and of a reviewer, both in allowed_signers
    kd = tmp_path / "canary-keys"
    kd.mkdir()
    for name in ("lead", "rev"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(kd / name)],
            check=True,
        )
    signers = repo.path / ".relnb" / "allowed_signers"
    pub = {n: " ".join((kd / f"{n}.pub").read_text().split()[:2]) for n in ("lead", "rev")}
    signers.write_text(
        signers.read_text()
        + f"# relnb-roles: rev@example.com db-reviewer\nlead@example.com {pub['lead']}\nrev@example.com {pub['rev']}\n"
    )
    git(repo.path, "commit", "-q", "-am", "canary signers")
    sha = git(repo.path, "rev-parse", "HEAD")
    (repo.path / "relnb.toml").write_text('[project]\nrelease_lead = "Lead <lead@example.com>"\n')

    j = new_journal(repo.path / "releases" / "9.9.9", repo, release_id="9.9.9", sha=sha)
    st = settings(release_lead="lead@example.com")
    signed_event(j, repo, "sign-off", "A3", "reviewed", kd / "rev", st=st)
    failed_gate(j, "B7")
    with pytest.raises(SigningRefused) as refused:
        signed_event(j, repo, "waiver", "B7", "mine", kd / "lead", st=st)
    print(refused.value)
    signed_event(j, repo, "force", "B5", "retry", kd / "lead", st=st)
    signed_event(j, repo, "seal", None, "c" * 64, kd / "lead", st=st)
    j.close()
    # a forged event, for the failure output too
    forged = new_journal(tmp_path / "forged", repo, release_id="9.9.9", sha=sha)
    ap = sign_statement(
        make_statement(
            kind="sign-off",
            release_id="9.9.9",
            release_sha=sha,
            gate="A4",
            text="x",
            principal="rev@example.com",
        ),
        kd / "lead",
    )
    append_event(
        forged,
        "sign-off",
        "A4",
        "x",
        {"name": "rev", "email": "rev@example.com", "key": None},
        {"approval": ap.to_dict()},
    )
    forged.close()

    # `relnb sign` output
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    add_sign_parser(p.add_subparsers(dest="c"))
    args = p.parse_args(
        [
            "--config",
            str(repo.path / "relnb.toml"),
            "sign",
            "9.9.9",
            "A4",
            "--note",
            "ok",
            "--key",
            str(kd / "rev"),
        ]
    )
    assert args.func(args) == 0

    for path in (repo.path / "releases" / "9.9.9" / "journal.jsonl", forged.path):
        report = verify_release_signatures(
            read_events(path),
            repo.path,
            allowed_signers_path=".relnb/allowed_signers",
            policy=st.policy(),
        )
        print(report.summary, *report.lines(), json.dumps(report.to_dict()), sep="\n")
    # failure paths: a passphrase-protected key, a missing key
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw-123456", "-f", str(kd / "locked")],
        check=True,
    )
    for bad in (kd / "locked", kd / "absent"):
        with pytest.raises(SigningError) as err:
            sign_statement(
                make_statement(
                    kind="sign-off",
                    release_id="9.9.9",
                    release_sha=sha,
                    gate="A3",
                    text="",
                    principal="x",
                ),
                bad,
            )
        print(err.value)

    captured = capfd.readouterr()
    written = [
        f.read_text(errors="replace")
        for f in [*(repo.path / "releases").rglob("*"), *(tmp_path / "forged").rglob("*")]
        if f.is_file()
    ]
    haystack = "\n".join([captured.out, captured.err, *written])
    assert "approvals.json" in captured.out and "signed by" not in captured.err
    assert "BEGIN SSH SIGNATURE" in haystack  # the canary would notice output at all
    for key_file in (kd / "lead", kd / "rev", kd / "locked"):
        if key_file.name == "locked":
            needles = [
                ln for ln in key_file.read_text().splitlines() if ln and not ln.startswith("-----")
            ]
        else:
            needles = _needles(key_file)
        for needle in needles:
            assert needle not in haystack, f"private key material of {key_file.name} leaked"
