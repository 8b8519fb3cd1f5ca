"""Four eyes, roles per gate, production approvers: refused when signing, journaled, and re-checked at verify."""

from __future__ import annotations

import pytest

from relnb.journal import read_events
from relnb.signing import Policy, SigningRefused, approve, verify_release_signatures
from relnb.signing.keys import sign_statement
from relnb.signing.statement import make_statement

from .conftest import ALICE, BOB, append_event, failed_gate, settings, signed_event

SIGNERS = ".relnb/allowed_signers"


def test_release_lead_waiving_their_own_failed_gate_is_refused_and_journaled(journal, repo, keys):
    failed_gate(journal, "B7")
    with pytest.raises(SigningRefused) as err:
        signed_event(journal, repo, "waiver", "B7", "it is fine, trust me", keys.priv("alice"))
    assert "four-eyes" in str(err.value) and ALICE in str(err.value)
    assert [v.rule for v in err.value.violations] == ["four-eyes"]
    last = journal.events[-1]
    assert last.type == "approval-refused"
    assert (
        last.payload["principal"] == ALICE
        and last.payload["gate"] == "B7"
        and last.payload["kind"] == "waiver"
    )
    assert not any(e.type == "waiver" for e in journal.events)

    ok = signed_event(
        journal, repo, "waiver", "B7", "DLQ probe is known flaky, ticket OPS-12", keys.priv("bob")
    )
    assert ok.payload["approver"]["email"] == BOB
    report = verify_release_signatures(
        read_events(journal.path),
        repo.path,
        allowed_signers_path=SIGNERS,
        policy=settings().policy(created=journal.events[0].payload),
    )
    assert report.ok, report.lines()
    assert report.refusals and report.refusals[0]["principal"] == ALICE
    assert any("refused at signing" in line for line in report.lines())


def test_four_eyes_is_rechecked_at_verify(journal, repo, keys):
    """A lead waiver that bypassed the signing-time check (old relnb, hand edit) still fails verify."""
    failed_gate(journal, "B7")
    st = make_statement(
        kind="waiver",
        release_id="1.4.0",
        release_sha=repo.sha_before,
        gate="B7",
        text="mine",
        principal=ALICE,
        prev=journal.head,
    )
    ap = sign_statement(st, keys.priv("alice"))
    ev = append_event(
        journal,
        "waiver",
        "B7",
        "mine",
        {"name": "alice", "email": ALICE, "key": ap.fingerprint},
        {"approval": ap.to_dict()},
    )
    report = verify_release_signatures(
        read_events(journal.path),
        repo.path,
        allowed_signers_path=SIGNERS,
        policy=Policy(four_eyes=True),
    )
    [check] = report.checks
    assert (
        not report.ok
        and check.seq == ev.seq
        and check.status == "policy"
        and "four-eyes" in check.line()
    )
    assert verify_release_signatures(
        read_events(journal.path),
        repo.path,
        allowed_signers_path=SIGNERS,
        policy=Policy(four_eyes=False),
    ).ok


def test_four_eyes_by_key_not_only_by_name(journal, repo, keys):
    """The lead's key listed under a second principal cannot approve either."""
    pol = Policy(four_eyes=True, release_lead=ALICE)
    fp = "SHA256:lead"
    assert pol.check(
        "waiver", "B7", "alice-alt@example.com", set(), fingerprint=fp, lead_fingerprints=[fp]
    )
    assert not pol.check(
        "waiver", "B7", BOB, set(), fingerprint="SHA256:bob", lead_fingerprints=[fp]
    )
    assert not pol.check("sign-off", "B7", ALICE, set())  # sign-offs are not four-eyes items


def test_roles_per_gate(journal, repo, keys):
    with pytest.raises(SigningRefused, match="needs role db-reviewer"):
        signed_event(journal, repo, "sign-off", "A3", "looked at it", keys.priv("alice"))
    assert journal.events[-1].type == "approval-refused"
    ev = signed_event(journal, repo, "sign-off", "A3", "reviewed the SQL", keys.priv("bob"))
    assert ev.type == "sign-off"
    # an unsigned A3 sign-off by someone without the role is reported at verify (roles from allowed_signers at SHA)
    bad = append_event(
        journal, "sign-off", "A3", "me too", {"name": "alice", "email": ALICE, "key": None}, {}
    )
    report = verify_release_signatures(
        read_events(journal.path),
        repo.path,
        allowed_signers_path=SIGNERS,
        policy=Policy(gate_roles={"A3": ["db-reviewer"]}),
    )
    assert not report.ok
    assert [c.seq for c in report.failures] == [
        bad.seq
    ] and "needs role db-reviewer" in report.failures[0].line()


def test_min_production_approvers(journal, repo, keys):
    st = settings(min_production_approvers=2, gates={"D": ["prod-approver"]})
    with pytest.raises(SigningRefused, match="four-eyes"):
        signed_event(journal, repo, "promote", "D", "go", keys.priv("alice"), st=st)
    signed_event(journal, repo, "promote", "D", "go", keys.priv("bob"), st=st)
    with pytest.raises(SigningRefused, match="already approved"):
        signed_event(journal, repo, "promote", "D", "go again", keys.priv("bob"), st=st)
    journal.append("action-started", {"gate": "D2", "attempt": 1, "action": "D2"})
    policy = st.policy(created=journal.events[0].payload)
    report = verify_release_signatures(
        read_events(journal.path), repo.path, allowed_signers_path=SIGNERS, policy=policy
    )
    assert not report.ok
    assert any(
        "production promotion needs 2 approver(s) with role prod-approver" in g and "has 1" in g
        for g in report.general
    )
    assert (
        policy.check_promotion(
            [
                {"kind": "promote", "principal": BOB},
                {"kind": "promote", "principal": "carol@example.com"},
            ]
        )
        == []
    )
    assert policy.check_promotion(
        [{"kind": "promote", "principal": BOB}, {"kind": "promote", "principal": ALICE}]
    )


def test_required_signing_without_a_key_is_refused(journal, repo):
    with pytest.raises(SigningRefused, match="signing is required"):
        approve(
            journal,
            kind="sign-off",
            gate="A4",
            text="x",
            settings=settings(required=True),
            repo=repo.path,
        )
    assert (
        approve(journal, kind="sign-off", gate="A4", text="x", settings=settings(), repo=repo.path)
        is None
    )
