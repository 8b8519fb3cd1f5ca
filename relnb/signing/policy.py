"""Who may approve what: roles per gate, four eyes, and how many must approve production.

The same `Policy.check` runs when someone signs (a violation is refused and journaled as
`approval-refused`) and again in `verify` over the whole journal, so an approval that slipped in
(an older relnb, a hand-edited journal, a policy tightened since) is still named by seq.

Rules:
- `gate_roles`: an approval of kind sign-off, waiver, skip or promote for a gate listed there needs
  a principal holding at least one of the listed roles (roles come from allowed_signers at the
  release SHA; see keys.py). Promotion approvals use the gate "D".
- `four_eyes`: a waiver or a promotion approval by the release lead is refused (compared by
  principal, and by key: the lead's own keys cannot approve under another principal).
- `min_production_approvers`: section D may not start until that many distinct principals (other
  than the release lead, when four_eyes) have recorded a `promote` approval. 0 turns it off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLE_KINDS = ("sign-off", "waiver", "skip", "promote")
FOUR_EYES_KINDS = ("waiver", "promote")
PROMOTION_GATE = "D"


@dataclass(frozen=True)
class Violation:
    rule: str  # "role" | "four-eyes" | "min-approvers" | "duplicate"
    message: str
    gate: str | None = None
    principal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "gate": self.gate,
            "principal": self.principal,
        }

    def __str__(self) -> str:
        return self.message


@dataclass
class Policy:
    gate_roles: dict[str, list[str]] = field(default_factory=dict)
    four_eyes: bool = True
    min_production_approvers: int = 0
    release_lead: str | None = None  # principal (usually an email)

    @classmethod
    def from_config(cls, signing: Mapping[str, Any], *, release_lead: str | None = None) -> Policy:
        """From the `[signing]` table (see the report for the keys)."""
        return cls(
            gate_roles={str(g).upper(): list(r) for g, r in (signing.get("gates") or {}).items()},
            four_eyes=bool(signing.get("four_eyes", True)),
            min_production_approvers=int(signing.get("min_production_approvers", 0) or 0),
            release_lead=signing.get("release_lead") or release_lead,
        )

    def roles_needed(self, gate: str | None) -> list[str]:
        return list(self.gate_roles.get((gate or "").upper(), []))

    def describe_need(self, gate: str, kind: str = "sign-off") -> str:
        roles = self.roles_needed(gate)
        who = f"a principal with role {' or '.join(roles)}" if roles else "an allowed signer"
        if self.four_eyes and kind in FOUR_EYES_KINDS and self.release_lead:
            who += f" other than the release lead ({self.release_lead})"
        return f"{gate} needs a signed {kind} by {who}"

    def check(
        self,
        kind: str,
        gate: str | None,
        principal: str | None,
        roles: Iterable[str],
        release_lead: str | None = None,
        existing_approvals: Sequence[Mapping[str, Any]] = (),
        *,
        fingerprint: str | None = None,
        lead_fingerprints: Iterable[str] = (),
    ) -> list[Violation]:
        out: list[Violation] = []
        lead = release_lead or self.release_lead
        needed = self.roles_needed(gate)
        if kind in ROLE_KINDS and needed and not (set(needed) & set(roles)):
            out.append(
                Violation(
                    "role",
                    f"{kind} of {gate} by {principal} refused: needs role {' or '.join(needed)}, "
                    f"{principal} has {', '.join(sorted(roles)) or 'no roles'}",
                    gate,
                    principal,
                )
            )
        if self.four_eyes and kind in FOUR_EYES_KINDS and lead:
            same_principal = bool(principal) and principal.lower() == lead.lower()
            same_key = bool(fingerprint) and fingerprint in set(lead_fingerprints)
            if same_principal or same_key:
                what = "their own" if kind == "waiver" else "the"
                target = f"{what} {gate} gate" if kind == "waiver" else "production promotion"
                out.append(
                    Violation(
                        "four-eyes",
                        f"four-eyes: {principal} is the release lead and cannot approve {target} "
                        f"({kind}); a second person must",
                        gate,
                        principal,
                    )
                )
        if kind == "promote" and principal:
            earlier = {
                str(a.get("principal")).lower()
                for a in existing_approvals
                if a.get("kind") == "promote"
            }
            if principal.lower() in earlier:
                out.append(
                    Violation(
                        "duplicate",
                        f"{principal} already approved the promotion; one vote each",
                        gate,
                        principal,
                    )
                )
        return out

    def check_promotion(
        self, existing_approvals: Sequence[Mapping[str, Any]], release_lead: str | None = None
    ) -> list[Violation]:
        """Before section D: enough distinct, valid promotion approvals?"""
        if self.min_production_approvers <= 0:
            return []
        lead = (release_lead or self.release_lead or "").lower()
        voters = {
            str(a.get("principal")).lower()
            for a in existing_approvals
            if a.get("kind") == "promote" and a.get("valid", True)
        }
        if self.four_eyes and lead:
            voters.discard(lead)
        if len(voters) >= self.min_production_approvers:
            return []
        roles = self.roles_needed(PROMOTION_GATE)
        role_text = f" with role {' or '.join(roles)}" if roles else ""
        return [
            Violation(
                "min-approvers",
                f"production promotion needs {self.min_production_approvers} approver(s){role_text}"
                f"{' other than the release lead' if self.four_eyes and lead else ''}; has {len(voters)}"
                + (f" ({', '.join(sorted(voters))})" if voters else ""),
                PROMOTION_GATE,
                None,
            )
        ]


def lead_principal(
    configured: str | None, project_release_lead: str | None, created: Mapping[str, Any] | None
) -> str | None:
    """The release lead as a principal: `[signing] release_lead`, else the email of
    `[project] release_lead`, else the email of whoever created the release."""
    if configured:
        return configured
    if project_release_lead:
        from ..identity import Identity

        ident = Identity.parse(project_release_lead)
        return ident.email or ident.name
    author = (created or {}).get("author") or {}
    return author.get("email") or author.get("name")
