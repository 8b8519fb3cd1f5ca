"""The promotion guard: section D waits for A–C, and for the approvals the policy asks for.

Also where every approval of a decision is signed (`approval`): promotion votes, sign-offs,
waivers, skips and forced re-runs all pass through the same policy check and SSH signature.
"""

from __future__ import annotations

from typing import Any

from .errors import PromotionRefused
from .gates import Kind, get_gate
from .identity import Identity, whoami
from .results import GateResult, Status
from .state import guarded


class PromotionGuard:
    """Mixed into `Release`: the rules that hold production steps back."""

    def guard(self, gate_id: str) -> GateResult | None:
        """Refuse section D before A–C allow it, and actions or D/F gates whose inputs are missing."""
        spec = get_gate(gate_id)
        if guarded(gate_id):
            blockers = self.state.promotion_blockers()
            if not blockers:
                self.take_presigned_promotions()
                missing = self.promotion_votes_missing()
                if missing:
                    return self.refuse(gate_id, f"{gate_id} refused: {missing}", [("D", missing)])
            if blockers:
                err = PromotionRefused(gate_id, blockers)
                last = self.state.gates[gate_id].refused
                if not last or last.get("blockers") != [list(b) for b in blockers]:
                    self.journal.append(
                        "refused", {"gate": gate_id, "summary": err.message, "blockers": [list(b) for b in blockers]}
                    )
                return GateResult(gate_id, Status.PENDING, err.message, {"blockers": blockers}, title=spec.title)
        if spec.kind is Kind.ACTION or spec.section in ("D", "F"):
            waiting = [
                (d, str(self.result(d).status)) for d in spec.depends_on if not self.result(d).status.ok_for_promotion
            ]
            if waiting:
                names = ", ".join(f"{d} ({s})" for d, s in waiting)
                return GateResult(gate_id, Status.PENDING, f"waiting for {names}", {"waiting_for": waiting}, title=spec.title)
        return None

    def approval(self, kind: str, gate: str | None, text: str, presigned: Any = None) -> Any:
        """An SSH-signed approval for this decision when signing is on ([signing] in relnb.toml).

        Runs the policy (roles, four-eyes) first: a violation is journaled and raised. Returns
        None in unsigned mode; the caller then records the approval as unsigned.
        """
        if self.context.recorded is not None:
            # `relnb replay` re-enacts recorded decisions in a scratch journal it throws away;
            # the archived approvals themselves are what `relnb verify` checks.
            return None
        signing = self.config.data["signing"]
        if presigned is None:
            presigned = self.context.presigned_for(kind, gate, text)
            if presigned is not None and self.used(presigned):
                presigned = None
        if not (signing["enabled"] or signing["required"] or presigned):
            return None
        from .signing import SigningSettings, approve

        return approve(
            self.journal,
            kind=kind,
            gate=gate,
            text=text or "",
            settings=SigningSettings.from_mapping(signing),
            repo=self.config.repo_path(),
            presigned=presigned,
            project_release_lead=self.config.project.get("release_lead"),
            email=whoami().email,
        )

    def used(self, approval: dict[str, Any]) -> bool:
        """Was this pre-signed approval consumed already? (Each one is good for one event.)"""
        st = approval.get("statement")
        return any(
            isinstance(ev.payload.get("approval"), dict) and ev.payload["approval"].get("statement") == st
            for ev in self.journal.events
        )

    def refuse(self, gate_id: str, summary: str, blockers: list[tuple[str, str]]) -> GateResult:
        """A pending result naming what blocks the gate, journaled once per distinct reason."""
        last = self.state.gates[gate_id].refused
        if not last or last.get("summary") != summary:
            self.journal.append(
                "refused", {"gate": gate_id, "summary": summary, "blockers": [list(b) for b in blockers]}
            )
        return GateResult(gate_id, Status.PENDING, summary, {"blockers": blockers}, title=get_gate(gate_id).title)

    def approve_promotion(self, *, by: Identity | str | None = None, note: str = "") -> str:
        """Record one approval to promote this release to production (`[signing]
        min_production_approvers`): signed like a sign-off, refused for the release lead under
        four-eyes and for a second vote by the same person. Returns what is still missing ("" when
        section D may start)."""
        self.require_promotion()
        who = Identity.parse(by) if by else whoami()
        grant = self.approval("promote", "D", note)
        if grant:
            who = Identity.parse(grant.identity)
        self.journal.append("promotion-approved", {"gate": "D", "by": who.to_dict(), "note": note, **(grant.payload() if grant else {})})
        return self.promotion_votes_missing()

    def promotion_votes_missing(self) -> str:
        """What the promotion policy still needs before section D, or "" (also when it is off)."""
        signing = self.config.data["signing"]
        if int(signing["min_production_approvers"] or 0) <= 0:
            return ""
        from .signing import SigningSettings
        from .signing.approve import recorded_approvals

        events = self.journal.events
        policy = SigningSettings.from_mapping(signing).policy(
            project_release_lead=self.config.project.get("release_lead"),
            created=events[0].payload if events else None,
        )
        violations = policy.check_promotion(recorded_approvals(events))
        if not violations:
            return ""
        return (
            f"{violations[0].message} — the approver runs release.approve_promotion(note=...), "
            f"or signs one in advance: relnb sign {self.id} D --kind promote"
        )

    def take_presigned_promotions(self) -> None:
        """Headless runs: record the promotion votes signed in advance (relnb run --sign-offs)."""
        for approval in self.context.presigned_of_kind("promote", "D"):
            if self.used(approval):
                continue
            note = str((approval.get("statement") or {}).get("text") or "")
            grant = self.approval("promote", "D", note, presigned=approval)
            who = Identity.parse(grant.identity) if grant else whoami()
            self.journal.append(
                "promotion-approved",
                {"gate": "D", "by": who.to_dict(), "note": note, **(grant.payload() if grant else {})},
            )

    def require_promotion(self) -> None:
        """Raise PromotionRefused unless A–C allow production steps (for scripts that prefer errors)."""
        blockers = self.state.promotion_blockers()
        if blockers:
            raise PromotionRefused("D", blockers)
