"""Acceptance: valid signatures verify; forged, late, modified, copied or replayed ones fail by seq + principal."""

from __future__ import annotations

import json
from pathlib import Path

from relnb.journal import GENESIS, JOURNAL_NAME, canonical, event_hash, read_events, verify_file
from relnb.signing import Policy, approval_label, verify_release_signatures
from relnb.signing.keys import sign_statement
from relnb.signing.statement import make_statement

from .conftest import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    append_event,
    failed_gate,
    new_journal,
    signed_event,
)

SIGNERS = ".relnb/allowed_signers"


def _verify(j, repo, **kw):
    kw.setdefault("policy", Policy(gate_roles={"A3": ["db-reviewer"]}))
    return verify_release_signatures(
        read_events(j.path), repo.path, allowed_signers_path=SIGNERS, **kw
    )


def _problem(report, seq):
    [check] = [c for c in report.checks if c.seq == seq]
    return check


def test_a_fully_signed_release_verifies(journal, repo, keys):
    a3 = signed_event(
        journal, repo, "sign-off", "A3", "reviewed 0042_add_index.sql", keys.priv("bob")
    )
    failed_gate(journal, "B7")
    waiver = signed_event(journal, repo, "waiver", "B7", "known flaky DLQ probe", keys.priv("bob"))
    skip = signed_event(journal, repo, "skip", "D1", "no schema lock expected", keys.priv("alice"))
    force = signed_event(
        journal, repo, "force", "B5", "retry after fixing the seed data", keys.priv("alice")
    )
    seal = signed_event(journal, repo, "seal", None, "f" * 64, keys.priv("alice"))
    report = _verify(journal, repo, require_signed=True)
    assert report.ok, report.lines()
    assert [c.status for c in report.checks] == ["signed"] * 5
    assert [c.seq for c in report.checks] == [a3.seq, waiver.seq, skip.seq, force.seq, seal.seq]
    assert {c.principal for c in report.checks} == {ALICE, BOB}
    # the journal identity is the principal + fingerprint
    assert a3.payload["by"]["email"] == BOB and a3.payload["by"]["key"].startswith("SHA256:")
    assert approval_label(a3.payload).startswith(f"signed by {BOB} (SHA256:")
    assert "prev" in a3.payload["approval"]["statement"]  # interactive: pins the history
    assert report.summary.endswith("— OK")


def test_key_not_in_allowed_signers_fails_with_seq_and_principal(journal, repo, keys):
    st = make_statement(
        kind="sign-off",
        release_id="1.4.0",
        release_sha=repo.sha_before,
        gate="A4",
        text="ok",
        principal=MALLORY,
        prev=journal.head,
    )
    ap = sign_statement(st, keys.priv("mallory"))
    ev = append_event(
        journal,
        "sign-off",
        "A4",
        "ok",
        {"name": "mallory", "email": MALLORY, "key": ap.fingerprint},
        {"approval": ap.to_dict()},
    )
    report = _verify(journal, repo)
    assert not report.ok
    check = _problem(report, ev.seq)
    assert check.status == "invalid" and check.principal == MALLORY
    line = check.line()
    assert f"seq {ev.seq} sign-off A4 by {MALLORY}" in line and "not in allowed_signers" in line


def test_key_added_after_the_release_sha_cannot_sign_the_past(journal, repo, keys):
    st = make_statement(
        kind="sign-off",
        release_id="1.4.0",
        release_sha=repo.sha_before,
        gate="A4",
        text="ok",
        principal=CAROL,
        prev=journal.head,
    )
    ap = sign_statement(st, keys.priv("carol"))
    ev = append_event(
        journal,
        "sign-off",
        "A4",
        "ok",
        {"name": "carol", "email": CAROL, "key": ap.fingerprint},
        {"approval": ap.to_dict()},
    )
    report = _verify(journal, repo)
    check = _problem(report, ev.seq)
    assert not report.ok and check.principal == CAROL
    assert "not in allowed_signers" in check.line() and repo.sha_before[:12] in check.line()
    # the same signature would pass against the later allowed_signers: the pinning is what refuses it
    later = verify_release_signatures(read_events(journal.path), repo.path, repo.sha_after, SIGNERS)
    assert "not in allowed_signers" not in _problem(later, ev.seq).line()


def _rewrite(path: Path, mutate) -> None:
    """Rewrite the journal with a valid hash chain after `mutate(events)`: a forger who can edit files."""
    events = [json.loads(line) for line in path.read_text().splitlines()]
    mutate(events)
    prev = GENESIS
    lines = []
    for e in events:
        e["prev"] = prev
        e["hash"] = event_hash(e["seq"], e["ts"], e["type"], e["payload"], prev)
        prev = e["hash"]
        lines.append(canonical(e).decode())
    path.write_text("\n".join(lines) + "\n")


def test_modified_event_fails_although_the_chain_is_rewritten(tmp_path, repo, keys):
    j = new_journal(tmp_path / "r", repo)
    ev = signed_event(
        j, repo, "sign-off", "A3", "reviewed: adds a nullable column", keys.priv("bob")
    )
    j.close()

    def edit(events):
        events[ev.seq]["payload"]["note"] = "reviewed: drops the users table (fine)"

    _rewrite(tmp_path / "r" / JOURNAL_NAME, edit)
    assert verify_file(tmp_path / "r" / JOURNAL_NAME).ok  # the hash chain alone cannot tell
    report = verify_release_signatures(
        read_events(tmp_path / "r" / JOURNAL_NAME), repo.path, allowed_signers_path=SIGNERS
    )
    check = _problem(report, ev.seq)
    assert not report.ok and check.principal == BOB
    assert "does not match this event" in check.line() and "text" in check.line()

    # editing the statement too (to match) breaks the signature instead
    def edit_both(events):
        events[ev.seq]["payload"]["approval"]["statement"]["text"] = events[ev.seq]["payload"][
            "note"
        ]

    _rewrite(tmp_path / "r" / JOURNAL_NAME, edit_both)
    report = verify_release_signatures(
        read_events(tmp_path / "r" / JOURNAL_NAME), repo.path, allowed_signers_path=SIGNERS
    )
    assert "modified after signing" in _problem(report, ev.seq).line()


def test_signature_copied_from_another_event_fails(journal, repo, keys):
    a3 = signed_event(journal, repo, "sign-off", "A3", "reviewed", keys.priv("bob"))
    copy = append_event(
        journal,
        "sign-off",
        "A4",
        "reviewed",
        a3.payload["by"],
        {"approval": a3.payload["approval"]},
    )
    report = _verify(journal, repo)
    check = _problem(report, copy.seq)
    assert not report.ok and check.status == "invalid" and check.principal == BOB
    assert "gate is 'A3', this event needs 'A4'" in check.line()
    assert "prev differs" in check.line()
    assert _problem(report, a3.seq).status == "signed"


def test_signature_copied_from_another_release_fails(tmp_path, repo, keys):
    other = new_journal(tmp_path / "other", repo, release_id="1.3.9")
    donor = signed_event(other, repo, "sign-off", "A3", "reviewed", keys.priv("bob"))
    other.close()
    j = new_journal(tmp_path / "this", repo)
    j.append("note", {"text": "pad so prev would line up is not enough"})
    ev = append_event(
        j,
        "sign-off",
        "A3",
        "reviewed",
        donor.payload["by"],
        {"approval": donor.payload["approval"]},
    )
    report = verify_release_signatures(read_events(j.path), repo.path, allowed_signers_path=SIGNERS)
    j.close()
    assert "release_id is '1.3.9', this event needs '1.4.0'" in _problem(report, ev.seq).line()


def test_presigned_approval_replayed_twice_is_named(journal, repo, keys):
    st = make_statement(
        kind="sign-off",
        release_id="1.4.0",
        release_sha=repo.sha_before,
        gate="A3",
        text="ok",
        principal=BOB,
    )
    ap = sign_statement(st, keys.priv("bob"))
    who = {"name": "bob", "email": BOB, "key": ap.fingerprint}
    first = append_event(journal, "sign-off", "A3", "ok", who, {"approval": ap.to_dict()})
    journal.append("gate-started", {"gate": "A3", "attempt": 2})  # new evidence voids the sign-off
    again = append_event(journal, "sign-off", "A3", "ok", who, {"approval": ap.to_dict()})
    report = _verify(journal, repo)
    assert _problem(report, first.seq).status == "signed"
    assert f"already used at seq {first.seq}" in _problem(report, again.seq).line()


def test_event_identity_must_be_the_signer(journal, repo, keys):
    st = make_statement(
        kind="sign-off",
        release_id="1.4.0",
        release_sha=repo.sha_before,
        gate="A3",
        text="ok",
        principal=BOB,
        prev=journal.head,
    )
    ap = sign_statement(st, keys.priv("bob"))
    ev = append_event(
        journal,
        "sign-off",
        "A3",
        "ok",
        {"name": "alice", "email": ALICE, "key": None},
        {"approval": ap.to_dict()},
    )
    assert (
        f"event names {ALICE} but the approval is signed by {BOB}"
        in _problem(_verify(journal, repo), ev.seq).line()
    )


def test_unsigned_mode_is_marked_and_fails_only_when_required(journal, repo):
    ev = append_event(
        journal,
        "sign-off",
        "A4",
        "looks compatible",
        {"name": "dave", "email": "dave@example.com", "key": None},
        {},
    )
    lax = _verify(journal, repo, require_signed=False)
    assert lax.ok and lax.unsigned[0].seq == ev.seq
    assert "UNSIGNED" in lax.checks[0].line() and "unsigned mode" in lax.summary
    assert approval_label(ev.payload) == "UNSIGNED"
    strict = _verify(journal, repo, require_signed=True)
    assert (
        not strict.ok
        and strict.failures[0].seq == ev.seq
        and "dave@example.com" in strict.checks[0].line()
    )


def test_seal_must_pin_the_journal_head(journal, repo, keys):
    st = make_statement(
        kind="seal",
        release_id="1.4.0",
        release_sha=repo.sha_before,
        gate=None,
        text="e" * 64,
        principal=ALICE,
    )
    ap = sign_statement(st, keys.priv("alice"))
    ev = append_event(
        journal,
        "seal",
        None,
        "e" * 64,
        {"name": "alice", "email": ALICE, "key": ap.fingerprint},
        {"approval": ap.to_dict()},
    )
    assert (
        "seal must be signed over the journal head"
        in _problem(_verify(journal, repo), ev.seq).line()
    )


def test_missing_allowed_signers_at_sha_fails_signed_events(tmp_path, repo, keys):
    j = new_journal(tmp_path / "r", repo)
    ev = signed_event(j, repo, "sign-off", "A3", "ok", keys.priv("bob"))
    j.close()
    report = verify_release_signatures(
        read_events(j.path), repo.path, allowed_signers_path=".relnb/nope"
    )
    assert not report.ok and "did not exist at the release SHA" in _problem(report, ev.seq).line()
