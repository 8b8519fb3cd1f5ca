"""Getting an approval signed (or accepting a pre-signed one) just before its event is appended.

`approve()` is what `Release.sign_off / waive / skip / action(force=True)`, the promotion cell and
the seal call. It returns a `Grant`: the identity to record (principal as email, key fingerprint)
and the payload fragment `{"approval": {...}}` to merge into the event, or None in unsigned mode.
The caller must append its event immediately after (no other append in between), because an
interactive signature covers the journal head at that moment (`prev`).

A policy violation is journaled as `approval-refused` (who, what, which rule) and raised as
`SigningRefused`, so a refused attempt stays on the record.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RelnbError
from .keys import (
    Approval,
    SigningError,
    allowed_signers_at,
    fingerprint,
    parse_allowed_signers,
    principal_for,
    resolve_key,
    sign_statement,
    verify_approval,
)
from .policy import Policy, Violation, lead_principal
from .statement import (
    KINDS,
    PRESIGNABLE,
    REFUSED_EVENT,
    event_fields,
    event_identity,
    event_kind,
    make_statement,
    mismatch,
    release_binding,
)
from .verify import DEFAULT_ALLOWED_SIGNERS

if TYPE_CHECKING:
    from ..journal import JournalWriter


class SigningRefused(RelnbError):
    """The approval breaks the signing policy or cannot be signed/verified; nothing was approved."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        violations: list[Violation] | None = None,
        *,
        gate: str | None = None,
        fix: str | None = None,
    ):
        self.violations = violations or []
        super().__init__(message, gate=gate, fix=fix)


@dataclass
class SigningSettings:
    """The `[signing]` table of relnb.toml, validated by config.py."""

    allowed_signers: str = DEFAULT_ALLOWED_SIGNERS
    key: str | None = None
    principal: str | None = None
    required: bool = False
    four_eyes: bool = True
    min_production_approvers: int = 0
    release_lead: str | None = None
    gates: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> SigningSettings:
        data = dict(data or {})
        return cls(
            allowed_signers=data.get("allowed_signers") or DEFAULT_ALLOWED_SIGNERS,
            key=data.get("key"),
            principal=data.get("principal"),
            required=bool(data.get("required", False)),
            four_eyes=bool(data.get("four_eyes", True)),
            min_production_approvers=int(data.get("min_production_approvers") or 0),
            release_lead=data.get("release_lead"),
            gates={str(k).upper(): list(v) for k, v in (data.get("gates") or {}).items()},
        )

    def policy(
        self, *, project_release_lead: str | None = None, created: Mapping[str, Any] | None = None
    ) -> Policy:
        return Policy(
            gate_roles=dict(self.gates),
            four_eyes=self.four_eyes,
            min_production_approvers=self.min_production_approvers,
            release_lead=lead_principal(self.release_lead, project_release_lead, created),
        )


@dataclass(frozen=True)
class Grant:
    approval: Approval

    @property
    def identity(self) -> dict[str, Any]:
        """What to record as by/approver: the principal (an email) and the key fingerprint."""
        p = self.approval.principal
        return {
            "name": p.split("@")[0] if "@" in p else p,
            "email": p if "@" in p else None,
            "key": self.approval.fingerprint,
        }

    def payload(self) -> dict[str, Any]:
        return {"approval": self.approval.to_dict()}


def recorded_approvals(events: list[Any]) -> list[dict[str, Any]]:
    """(kind, gate, principal) of approvals already in the journal, for the policy's history rules."""
    out = []
    for ev in events:
        kind = event_kind(ev)
        if kind is None:
            continue
        payload = ev.payload if hasattr(ev, "payload") else ev.get("payload", {})
        ap = payload.get("approval") or {}
        ident = event_identity(ev) or {}
        out.append(
            {
                "kind": kind,
                "gate": event_fields(ev)["gate"],
                "principal": ap.get("principal") or ident.get("email") or ident.get("name"),
            }
        )
    return out


def approve(
    journal: JournalWriter,
    *,
    kind: str,
    gate: str | None,
    text: str,
    settings: SigningSettings,
    repo: str | os.PathLike[str],
    key: str | None = None,
    principal: str | None = None,
    presigned: Approval | Mapping[str, Any] | None = None,
    project_release_lead: str | None = None,
    email: str | None = None,
) -> Grant | None:
    """Sign (or accept a pre-signed approval for) one decision, after checking the policy.

    Returns None in unsigned mode (no key configured and signing not required); raises
    SigningRefused (journaled) on a policy violation, SigningRefused when signing is required but
    impossible, SigningError for broken key set-ups.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown approval kind {kind!r}")
    events = journal.events
    release_id, release_sha = release_binding(events)
    created = events[0].payload if events else {}
    policy = settings.policy(project_release_lead=project_release_lead, created=created)
    allowed_text = (
        allowed_signers_at(repo, release_sha or "", settings.allowed_signers)
        if release_sha
        else None
    )
    allowed = parse_allowed_signers(allowed_text or "")

    if presigned is not None:
        approval = presigned if isinstance(presigned, Approval) else Approval.from_dict(presigned)
        st = approval.statement
        probe = {"type": _event_type(kind), "payload": _probe_payload(kind, gate, text)}
        problem = (
            mismatch(probe, st, release_id, release_sha)
            if "prev" not in st
            else "a pre-signed approval must not carry prev"
        )
        if kind not in PRESIGNABLE:
            problem = f"a {kind} cannot be pre-signed; it is signed when it happens"
        if problem is None:
            if allowed_text is None:
                problem = f"{settings.allowed_signers} is not in the repository at the release SHA {str(release_sha)[:12]}"
            else:
                result = verify_approval(approval, allowed_text)
                problem = None if result.ok else result.reason
        if problem is not None:
            raise SigningRefused(
                f"pre-signed {kind} of {gate} by {approval.principal} rejected: {problem}",
                gate=gate,
            )
        if any(st == a.get("statement") for a in _approval_payloads(events)):
            raise SigningRefused(
                f"pre-signed {kind} of {gate} by {approval.principal} was already used in this release",
                gate=gate,
            )
    else:
        key = resolve_key(key, settings.key, repo=Path(repo))
        if key is None:
            if settings.required:
                raise SigningRefused(
                    f"signing is required ([signing] required = true) but no signing key is configured for this {kind}",
                    gate=gate,
                    fix="set RELNB_SIGNING_KEY (or [signing] key, or git's user.signingkey with gpg.format=ssh)",
                )
            return None
        if allowed_text is None:
            raise SigningRefused(
                f"{settings.allowed_signers} is not in the repository at the release SHA {str(release_sha)[:12]}",
                gate=gate,
                fix="commit allowed_signers before cutting the release, or sign nothing (unsigned mode)",
            )
        who = principal_for(key, allowed, wanted=principal or settings.principal, email=email)
        _refuse_if_violating(journal, policy, kind, gate, who, allowed, fingerprint(key), events)
        statement = make_statement(
            kind=kind,
            release_id=release_id or "",
            release_sha=release_sha,
            gate=gate,
            text=text,
            principal=who,
            prev=journal.head,
        )
        return Grant(sign_statement(statement, key))
    _refuse_if_violating(
        journal, policy, kind, gate, approval.principal, allowed, approval.fingerprint, events
    )
    return Grant(approval)


def _refuse_if_violating(
    journal, policy: Policy, kind, gate, principal, allowed, fp, events
) -> None:
    lead_fps = []
    for k in allowed.keys_of(policy.release_lead or ""):
        try:
            lead_fps.append(fingerprint(f"key::{k}"))
        except SigningError:
            continue
    violations = policy.check(
        kind,
        gate,
        principal,
        allowed.roles_of(principal),
        policy.release_lead,
        recorded_approvals(events),
        fingerprint=fp,
        lead_fingerprints=lead_fps,
    )
    if violations:
        summary = "; ".join(v.message for v in violations)
        journal.append(
            REFUSED_EVENT,
            {
                "gate": gate,
                "kind": kind,
                "principal": principal,
                "key": fp,
                "summary": summary,
                "violations": [v.to_dict() for v in violations],
            },
        )
        raise SigningRefused(
            summary, violations, gate=gate, fix=policy.describe_need(gate or "?", kind)
        )


def _event_type(kind: str) -> str:
    return {"force": "gate-started", "promote": "promotion-approved", "seal": "sealed", "abandon": "abandoned"}.get(
        kind, kind
    )


def _probe_payload(kind: str, gate: str | None, text: str) -> dict[str, Any]:
    if kind in ("sign-off", "promote"):
        return {"gate": gate, "note": text}
    if kind == "force":
        return {"gate": gate, "forced": True, "reason": text}
    if kind == "seal":
        return {"manifest_sha256": text}
    return {"gate": gate, "reason": text}


def _approval_payloads(events: list[Any]) -> list[dict[str, Any]]:
    return [ev.payload["approval"] for ev in events if isinstance(ev.payload.get("approval"), dict)]
