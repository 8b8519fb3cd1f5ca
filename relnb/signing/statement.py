"""The approval statement: the exact bytes a person signs, and how an event must match them.

A signature cannot simply cover a journal event's canonical bytes, because approvals given in
advance (`relnb sign`, consumed by a headless run) exist before their event does and cannot know
its `seq`, `ts` or `prev`. So every approval signs a small canonical JSON *statement*:

    {"v": 1, "kind": "sign-off|waiver|skip|force|seal|promote", "release_id", "release_sha",
     "gate", "text", "principal", "signed_at", ["prev"]}

- `release_id` + `release_sha` bind it to one release at one commit: copying it to another
  release fails.
- `kind` + `gate` bind it to one decision: a sign-off of A3 is not a waiver of A3, nor a sign-off
  of A4. For forced re-runs `gate` is the action's name (rollback steps have their own).
- `text` is the note (sign-off, promote), the reason (waiver, skip, force) or, for the seal, the
  manifest's sha256: editing the recorded text afterwards breaks the signature.
- `prev` is the journal head when signing interactively: the event must be appended right after
  that head, so the signature also pins all history before it. Pre-signed statements have no
  `prev`; each may be consumed once per release (a second use is reported as a replay). The seal
  is always signed interactively, so it always pins the whole journal.

Verification never trusts the statement on its own: it rebuilds the expected statement from the
event's own fields and the release-created event, and compares canonical bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..journal import Event, canonical, utcnow

STATEMENT_VERSION = 1
NAMESPACE = "relnb"
KINDS = ("sign-off", "waiver", "skip", "force", "seal", "promote", "abandon")
PRESIGNABLE = ("sign-off", "waiver", "skip", "force", "promote")
# Journal event type recording a production-promotion approval (four-eyes, min approvers).
PROMOTION_EVENT = "promotion-approved"
# Journal event type recording an approval that the policy refused at signing time.
REFUSED_EVENT = "approval-refused"


def make_statement(
    *,
    kind: str,
    release_id: str,
    release_sha: str | None,
    gate: str | None,
    text: str,
    principal: str,
    prev: str | None = None,
    signed_at: str | None = None,
) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"approval kind {kind!r} is not one of {', '.join(KINDS)}")
    st: dict[str, Any] = {
        "v": STATEMENT_VERSION,
        "kind": kind,
        "release_id": release_id,
        "release_sha": release_sha,
        "gate": gate,
        "text": text or "",
        "principal": principal,
        "signed_at": signed_at or utcnow(),
    }
    if prev is not None:
        st["prev"] = prev
    return st


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8): the same bytes on every machine."""
    return canonical(statement)


def _payload(event: Event | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(event, Event):
        return event.type, event.payload
    return str(event.get("type")), dict(event.get("payload") or {})


def event_kind(event: Event | Mapping[str, Any]) -> str | None:
    """Which approval kind an event records, or None when it needs no approval."""
    type_, p = _payload(event)
    if type_ in ("sign-off", "waiver", "skip"):
        return type_
    if type_ in ("gate-started", "action-started") and p.get("forced"):
        return "force"
    if type_ == "sealed":
        return "seal"
    if type_ == "abandoned":  # it lets an unfinished release be sealed: as accountable as a waiver
        return "abandon"
    if type_ == PROMOTION_EVENT:
        return "promote"
    return None


def event_fields(event: Event | Mapping[str, Any]) -> dict[str, Any]:
    """The statement fields an event fixes by itself: kind, gate and text."""
    type_, p = _payload(event)
    kind = event_kind(event)
    if kind in ("sign-off", "promote"):
        return {"kind": kind, "gate": p.get("gate"), "text": p.get("note") or ""}
    if kind in ("waiver", "skip"):
        return {"kind": kind, "gate": p.get("gate"), "text": p.get("reason") or ""}
    if kind == "force":
        return {
            "kind": kind,
            "gate": p.get("action") or p.get("gate"),
            "text": p.get("reason") or "",
        }
    if kind == "seal":
        return {"kind": kind, "gate": None, "text": p.get("manifest_sha256") or ""}
    if kind == "abandon":
        return {"kind": kind, "gate": None, "text": p.get("reason") or ""}
    raise ValueError(f"event type {type_!r} carries no approval")


def event_identity(event: Event | Mapping[str, Any]) -> dict[str, Any] | None:
    """The identity an approval event names (who signed off, waived, skipped, forced, sealed)."""
    _, p = _payload(event)
    for key in ("approver", "by", "archived_by"):
        who = p.get(key)
        if isinstance(who, dict):
            return who
        if isinstance(who, str) and who:
            return {"name": who, "email": None, "key": None}
    return None


def release_binding(events: Sequence[Event | Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(release_id, release_sha) from the release-created event (seq 0)."""
    for ev in events:
        type_, p = _payload(ev)
        if type_ == "release-created":
            return p.get("release_id"), p.get("git_sha")
    return None, None


def expected_statement(
    event: Event | Mapping[str, Any],
    statement: Mapping[str, Any],
    release_id: str | None,
    release_sha: str | None,
) -> dict[str, Any]:
    """What the statement must be for this event: derived fields from the event and release,
    the rest (principal, signed_at, prev) taken from the statement and checked separately."""
    want = {
        "v": STATEMENT_VERSION,
        **event_fields(event),
        "release_id": release_id,
        "release_sha": release_sha,
        "principal": statement.get("principal"),
        "signed_at": statement.get("signed_at"),
    }
    if "prev" in statement:
        want["prev"] = statement["prev"]
    return want


def mismatch(
    event: Event | Mapping[str, Any],
    statement: Mapping[str, Any],
    release_id: str | None,
    release_sha: str | None,
) -> str | None:
    """None when the statement is exactly the one this event needs; else what differs."""
    want = expected_statement(event, statement, release_id, release_sha)
    if statement_bytes(want) == statement_bytes(statement):
        return None
    diffs = []
    for key in sorted(set(want) | set(statement)):
        if want.get(key) != statement.get(key) or (key in want) != (key in statement):
            if key not in want:
                diffs.append(f"unexpected field {key!r}")
            else:
                diffs.append(
                    f"{key} is {_short(statement.get(key))}, this event needs {_short(want.get(key))}"
                )
    return "signed statement does not match this event (copied or modified): " + "; ".join(diffs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"
