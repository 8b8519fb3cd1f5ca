"""Headless: `relnb sign` makes detached approvals; a CI run consumes them; a missing one is pending, named."""

from __future__ import annotations

import argparse
import json

import pytest

from relnb.cli import add_sign_parser
from relnb.journal import read_events
from relnb.signing import SigningRefused, approve, verify_release_signatures
from relnb.signing.approvals_file import (
    EXIT_OK,
    EXIT_PENDING,
    preflight,
    presign,
    read_approvals,
    sign_offs_for_run,
)
from relnb.signing.keys import allowed_signers_at

from .conftest import ALICE, BOB, append_event, failed_gate, new_journal, settings

SIGNERS = ".relnb/allowed_signers"


def _cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="relnb")
    p.add_argument("--config")
    sub = p.add_subparsers(dest="command", required=True)
    add_sign_parser(sub)
    args = p.parse_args(argv)
    return args.func(args)


@pytest.fixture
def project(repo):
    (repo.path / "relnb.toml").write_text('[project]\nrelease_lead = "Alice <alice@example.com>"\n')
    return repo


def test_ci_run_with_presigned_approvals(project, keys, capsys):
    repo = project
    j = new_journal(repo.path / "releases" / "1.4.0", repo)
    cfg = str(repo.path / "relnb.toml")
    assert (
        _cli(
            [
                "--config",
                cfg,
                "sign",
                "1.4.0",
                "A3",
                "--note",
                "reviewed 0042",
                "--key",
                str(keys.priv("bob")),
            ]
        )
        == 0
    )
    assert (
        _cli(
            [
                "--config",
                cfg,
                "sign",
                "1.4.0",
                "B7",
                "--kind",
                "waiver",
                "--reason",
                "flaky probe",
                "--key",
                str(keys.priv("bob")),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"signed sign-off of A3 for release 1.4.0 at {repo.sha_before[:12]} as {BOB}" in out
    path = repo.path / "releases" / "1.4.0" / "approvals.json"
    file = read_approvals(path)
    assert file.release_sha == repo.sha_before and len(file.approvals) == 2
    assert all("prev" not in a.statement for a in file.approvals)

    st = settings(gates={"A3": ["db-reviewer"], "A4": ["api-owner"]})
    policy = st.policy(project_release_lead="Alice <alice@example.com>")
    allowed = allowed_signers_at(repo.path, repo.sha_before, SIGNERS)
    ok = preflight(
        file,
        release_id="1.4.0",
        release_sha=repo.sha_before,
        allowed_signers_text=allowed,
        policy=policy,
        needed=[("A3", "sign-off"), ("B7", "waiver")],
    )
    assert ok.exit_code == EXIT_OK and not ok.lines()
    missing = preflight(
        file,
        release_id="1.4.0",
        release_sha=repo.sha_before,
        allowed_signers_text=allowed,
        policy=policy,
        needed=[("A3", "sign-off"), ("A4", "sign-off")],
    )
    assert missing.exit_code == EXIT_PENDING
    assert missing.lines() == [
        "pending: A4 needs a signed sign-off by a principal with role api-owner"
    ]

    # the notebook consumes them (what release.request_sign_off / waive do once integrated)
    run = sign_offs_for_run(file)
    assert run["A3"]["by"] == BOB and run["A3"]["note"] == "reviewed 0042"
    g = approve(
        j,
        kind="sign-off",
        gate="A3",
        text=run["A3"]["note"],
        settings=st,
        repo=repo.path,
        presigned=run["A3"]["approval"],
    )
    append_event(j, "sign-off", "A3", run["A3"]["note"], g.identity, g.payload())
    failed_gate(j, "B7")
    [waiver] = file.find("waiver", "B7")
    g = approve(
        j,
        kind="waiver",
        gate="B7",
        text="flaky probe",
        settings=st,
        repo=repo.path,
        presigned=waiver,
    )
    append_event(j, "waiver", "B7", "flaky probe", g.identity, g.payload())
    # the A3 approval cannot be reused for A4, nor twice
    with pytest.raises(SigningRefused, match="gate is 'A3', this event needs 'A4'"):
        approve(
            j,
            kind="sign-off",
            gate="A4",
            text="reviewed 0042",
            settings=st,
            repo=repo.path,
            presigned=run["A3"]["approval"],
        )
    with pytest.raises(SigningRefused, match="already used"):
        approve(
            j,
            kind="sign-off",
            gate="A3",
            text="reviewed 0042",
            settings=st,
            repo=repo.path,
            presigned=run["A3"]["approval"],
        )
    report = verify_release_signatures(
        read_events(j.path),
        repo.path,
        allowed_signers_path=SIGNERS,
        policy=policy,
        require_signed=True,
    )
    j.close()
    assert report.ok, report.lines()
    assert [c.status for c in report.checks] == ["signed", "signed"]


def test_presign_refuses_policy_violations_and_foreign_releases(project, keys, tmp_path):
    repo = project
    out = tmp_path / "approvals.json"
    st = settings()
    with pytest.raises(SigningRefused, match="needs role db-reviewer"):
        presign(
            "1.4.0",
            "A3",
            kind="sign-off",
            text="x",
            repo=repo.path,
            settings=st,
            out=out,
            sha=repo.sha_before,
            key=str(keys.priv("alice")),
        )
    with pytest.raises(SigningRefused, match="four-eyes"):
        presign(
            "1.4.0",
            "B7",
            kind="waiver",
            text="x",
            repo=repo.path,
            settings=st,
            out=out,
            sha=repo.sha_before,
            key=str(keys.priv("alice")),
            project_release_lead=f"Alice <{ALICE}>",
        )
    assert not out.exists()
    # a key added after the release SHA cannot pre-sign it either
    from relnb.signing.keys import SigningError

    with pytest.raises(SigningError, match="not in allowed_signers"):
        presign(
            "1.4.0",
            "A4",
            kind="sign-off",
            text="x",
            repo=repo.path,
            settings=st,
            out=out,
            sha=repo.sha_before,
            key=str(keys.priv("carol")),
        )

    presign(
        "1.3.9",
        "A3",
        kind="sign-off",
        text="ok",
        repo=repo.path,
        settings=st,
        out=out,
        sha=repo.sha_before,
        key=str(keys.priv("bob")),
    )
    file = read_approvals(out)
    allowed = allowed_signers_at(repo.path, repo.sha_before, SIGNERS)
    res = preflight(
        file,
        release_id="1.4.0",
        release_sha=repo.sha_before,
        allowed_signers_text=allowed,
        policy=st.policy(),
        needed=[("A3", "sign-off")],
    )
    assert res.exit_code == 1
    assert "release_id is '1.3.9', this event needs '1.4.0'" in res.lines()[0]
    assert "pending: A3 needs a signed sign-off by a principal with role db-reviewer" in res.lines()


def test_cli_sign_refusal_exit_code(project, keys, capsys):
    import relnb.cli

    cfg = str(project.path / "relnb.toml")
    parser_argv = [
        "--config",
        cfg,
        "sign",
        "1.4.0",
        "B7",
        "--kind",
        "waiver",
        "--reason",
        "x",
        "--key",
        str(keys.priv("alice")),
        "--sha",
        project.sha_before,
    ]
    with pytest.raises(SigningRefused):
        _cli(parser_argv)
    # through relnb's own main (error mapping), once the lead has hooked add_sign_parser in
    if "sign" in relnb.cli.build_parser()._subparsers._group_actions[0].choices:
        assert relnb.cli.main(parser_argv) == 1
    data = json.dumps(capsys.readouterr().out)
    assert "PRIVATE" not in data
