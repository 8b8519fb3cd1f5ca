"""`relnb verify` for approvals: every sign-off, waiver, skip, forced re-run, promotion and seal.

Each approval event is checked against allowed_signers *as committed at the release's SHA*
(`git show SHA:path`), so a key added afterwards cannot sign the past. A signed event passes
only if all hold:
- the signed statement is byte-for-byte the one rebuilt from the event and the release-created
  event (release id + SHA, kind, gate, text), so a signature copied from another event, gate or
  release, or an event edited afterwards (with its chain rewritten), fails;
- interactive statements carry `prev`, which must equal the event's `prev`; a seal must carry it;
- a pre-signed statement (no `prev`) is used by one event only (a replay is named);
- `ssh-keygen -Y verify` accepts it for the named principal, with the recorded fingerprint;
- the event's identity (email, key) is the signer's;
- the policy holds (roles, four eyes, min production approvers), judged as of that event.
Unsigned approvals are listed as `unsigned` and fail only when signing is required. The report
names seq, event type, gate and principal for every problem.

Trust anchor (issue 22): an archive's own allowed_signers copy is covered only by hashes anyone
can recompute. When it stands in for the repository (the release SHA is not at hand), or when
`trust_always` is set (`relnb verify --trust allowed_signers`), every signature must also verify
against `trusted_allowed_signers`, which the caller reads from outside the archive; with
`trust_required` (the project requires signing) having no such anchor is itself a failure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..gates import GUARDED_SECTION
from ..journal import Event
from .keys import Approval, SigningError, allowed_signers_at, parse_allowed_signers, verify_approval
from .policy import Policy, lead_principal
from .statement import (
    REFUSED_EVENT,
    event_fields,
    event_identity,
    event_kind,
    mismatch,
    release_binding,
)

DEFAULT_ALLOWED_SIGNERS = ".relnb/allowed_signers"


@dataclass
class EventSignature:
    seq: int
    type: str
    kind: str
    gate: str | None
    principal: str | None
    signed: bool
    fingerprint: str | None = None
    problems: list[str] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.signed and self.problems:
            return "invalid"
        if self.policy:
            return "policy"
        return "signed" if self.signed else "unsigned"

    def line(self) -> str:
        where = f"seq {self.seq} {self.type}" + (f" {self.gate}" if self.gate else "")
        who = self.principal or "?"
        detail = "; ".join(self.problems + self.policy)
        mark = {
            "signed": "signed",
            "unsigned": "UNSIGNED",
            "invalid": "INVALID",
            "policy": "POLICY",
        }[self.status]
        fp = f" ({self.fingerprint})" if self.fingerprint and self.status == "signed" else ""
        return f"{where} by {who}{fp}: {mark}" + (f": {detail}" if detail else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "kind": self.kind,
            "gate": self.gate,
            "principal": self.principal,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "problems": self.problems + self.policy,
        }


@dataclass
class SignatureReport:
    release_id: str | None
    release_sha: str | None
    allowed_signers: str
    require_signed: bool
    checks: list[EventSignature] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    general: list[str] = field(default_factory=list)  # problems not tied to one approval

    @property
    def unsigned(self) -> list[EventSignature]:
        return [c for c in self.checks if not c.signed]

    @property
    def failures(self) -> list[EventSignature]:
        return [
            c
            for c in self.checks
            if c.status in ("invalid", "policy") or (self.require_signed and not c.signed)
        ]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.general

    def lines(self) -> list[str]:
        out = [c.line() for c in self.checks]
        out += [f"seq {r['seq']} refused at signing: {r['summary']}" for r in self.refusals]
        return out + self.general

    @property
    def summary(self) -> str:
        signed = sum(1 for c in self.checks if c.status == "signed")
        head = (
            f"approvals of release {self.release_id}: {len(self.checks)} recorded, {signed} validly signed, "
            f"{len(self.unsigned)} unsigned"
        )
        if self.ok:
            return head + (" (unsigned mode: marked UNSIGNED)" if self.unsigned else "") + " — OK"
        return head + f" — FAILED: {len(self.failures) + len(self.general)} problem(s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "release_sha": self.release_sha,
            "allowed_signers": self.allowed_signers,
            "require_signed": self.require_signed,
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            "refusals": self.refusals,
            "problems": self.general,
        }


def _as_dict(ev: Event | Mapping[str, Any]) -> dict[str, Any]:
    return ev.to_dict() if isinstance(ev, Event) else dict(ev)


def verify_release_signatures(
    events: Sequence[Event | Mapping[str, Any]],
    repo: str | os.PathLike[str],
    release_sha: str | None = None,
    allowed_signers_path: str = DEFAULT_ALLOWED_SIGNERS,
    policy: Policy | None = None,
    require_signed: bool = False,
    archived_allowed_signers: str | None = None,
    trusted_allowed_signers: str | None = None,
    trusted_name: str = "the project's allowed_signers",
    trust_always: bool = False,
    trust_required: bool = False,
) -> SignatureReport:
    """Check every approval in a (chain-verified) journal; see the module docstring.

    `archived_allowed_signers` is the copy a sealed archive keeps (manifest-covered): it stands in
    when the repository is not at hand, and must equal the repository's file when it is.
    """
    evs = [_as_dict(e) for e in events]
    release_id, created_sha = release_binding(evs)
    sha = release_sha or created_sha
    policy = policy or Policy()
    report = SignatureReport(release_id, sha, allowed_signers_path, require_signed)
    created = next((e["payload"] for e in evs if e["type"] == "release-created"), {})
    lead = lead_principal(policy.release_lead, None, created)
    if release_sha and created_sha and release_sha != created_sha:
        report.general.append(
            f"release-created records SHA {created_sha[:12]}, verifying against {release_sha[:12]}"
        )

    allowed_text: str | None = None
    why_no_signers: str | None = None
    try:
        allowed_text = allowed_signers_at(repo, sha or "", allowed_signers_path)
        if allowed_text is None:
            why_no_signers = (
                f"{allowed_signers_path} did not exist at the release SHA {str(sha)[:12]}"
            )
    except SigningError as exc:
        why_no_signers = exc.message
    if archived_allowed_signers is not None:
        if allowed_text is not None and allowed_text != archived_allowed_signers:
            report.general.append(
                f"the archive's allowed_signers differs from {allowed_signers_path} at the "
                f"release SHA {str(sha)[:12]}"
            )
        elif allowed_text is None:
            report.allowed_signers = (
                f"{allowed_signers_path} (archived copy; repository: {why_no_signers})"
            )
        stand_in = allowed_text is None
        allowed_text, why_no_signers = archived_allowed_signers, None
        if stand_in and trusted_allowed_signers is None and trust_required:
            report.general.append(
                f"no trust anchor for the archive's allowed_signers: the release SHA is not in "
                f"{repo} and {trusted_name} is not readable (pass --trust FILE)"
            )
        trust_always = trust_always or stand_in
    trusted = trusted_allowed_signers if trust_always else None
    allowed = parse_allowed_signers(allowed_text or "")
    lead_keys = _lead_fingerprints(allowed, lead)

    seen_signatures: dict[str, int] = {}
    approvals: list[dict[str, Any]] = []
    promotion_checked = False
    for ev in evs:
        if ev["type"] == REFUSED_EVENT:
            p = ev["payload"]
            report.refusals.append(
                {"seq": ev["seq"], "summary": p.get("summary", ""), "principal": p.get("principal")}
            )
            continue
        if not promotion_checked and _starts_production(ev):
            promotion_checked = True
            for v in policy.check_promotion(approvals, lead):
                report.general.append(
                    f"seq {ev['seq']} {ev['type']} {ev['payload'].get('gate')}: {v.message}"
                )
        kind = event_kind(ev)
        if kind is None:
            continue
        fields = event_fields(ev)
        ident = event_identity(ev) or {}
        raw = ev["payload"].get("approval")
        check = EventSignature(
            ev["seq"],
            ev["type"],
            kind,
            fields["gate"],
            ident.get("email") or ident.get("name"),
            signed=raw is not None,
        )
        report.checks.append(check)
        roles: set[str] = set()
        valid = False
        if raw is not None:
            valid = _check_signed(
                check,
                ev,
                raw,
                release_id,
                sha,
                allowed,
                allowed_text,
                why_no_signers,
                seen_signatures,
                ident,
                (trusted, trusted_name),
            )
            roles = allowed.roles_of(check.principal) if valid else set()
        else:
            roles = allowed.roles_of(check.principal)
        if raw is None or valid:
            violations = policy.check(
                kind,
                fields["gate"],
                check.principal,
                roles,
                lead,
                approvals,
                fingerprint=check.fingerprint,
                lead_fingerprints=lead_keys,
            )
            check.policy.extend(v.message for v in violations)
        approvals.append(
            {
                "kind": kind,
                "gate": fields["gate"],
                "principal": check.principal,
                "valid": valid or (raw is None and not require_signed),
            }
        )
    return report


def _check_signed(
    check: EventSignature,
    ev: dict[str, Any],
    raw: Any,
    release_id: str | None,
    sha: str | None,
    allowed: Any,
    allowed_text: str | None,
    why_no_signers: str | None,
    seen: dict[str, int],
    ident: Mapping[str, Any],
    trust: tuple[str | None, str] = (None, ""),
) -> bool:
    try:
        approval = Approval.from_dict(raw if isinstance(raw, Mapping) else {})
    except SigningError as exc:
        check.problems.append(exc.message)
        return False
    check.principal = approval.principal
    check.fingerprint = approval.fingerprint
    st = approval.statement
    problem = mismatch(ev, st, release_id, sha)
    if problem:
        check.problems.append(problem)
    if "prev" in st and st["prev"] != ev["prev"]:
        check.problems.append(
            "signed for a different journal position (prev differs): not made for this event"
        )
    if check.kind == "seal" and "prev" not in st:
        check.problems.append("a seal must be signed over the journal head (statement has no prev)")
    if "prev" not in st:
        first = seen.get(approval.signature)
        if first is not None:
            check.problems.append(f"pre-signed approval already used at seq {first} (replayed)")
        else:
            seen[approval.signature] = ev["seq"]
    if ident.get("email") and str(ident["email"]).lower() != approval.principal.lower():
        check.problems.append(
            f"event names {ident['email']} but the approval is signed by {approval.principal}"
        )
    if ident.get("key") and ident["key"] != approval.fingerprint:
        check.problems.append(
            f"event names key {ident['key']} but the approval was made with {approval.fingerprint}"
        )
    if allowed_text is None:
        check.problems.append(f"cannot verify: {why_no_signers}")
        return False
    result = verify_approval(approval, allowed_text)
    if not result.ok:
        check.problems.append(f"{result.reason} (allowed_signers at {str(sha)[:12]})")
    trusted, trusted_name = trust
    if trusted is not None and result.ok:
        anchored = verify_approval(approval, trusted)
        if not anchored.ok:
            check.problems.append(
                f"signer {approval.principal} ({approval.fingerprint}) is not trusted by {trusted_name}: "
                f"{anchored.reason}"
            )
    return not check.problems


def _starts_production(ev: Mapping[str, Any]) -> bool:
    if ev["type"] not in ("gate-started", "action-started"):
        return False
    gate = ev["payload"].get("gate") or ev["payload"].get("of_gate")
    return isinstance(gate, str) and gate[:1].upper() == GUARDED_SECTION


def _lead_fingerprints(allowed: Any, lead: str | None) -> list[str]:
    if not lead:
        return []
    from .keys import fingerprint

    out = []
    for key in allowed.keys_of(lead):
        try:
            out.append(fingerprint(f"key::{key}"))
        except SigningError:
            continue
    return out
