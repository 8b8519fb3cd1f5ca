"""What the operator allowed for one run: confirmations, sign-offs, skips, re-runs, approvals.

Headless runs (`relnb run`) hand these to the notebook's process through environment variables;
interactive runs have none and ask a person instead. Kept apart from the journal machinery so the
rules of a run can be read on their own, and replaced as a whole (`relnb replay` answers every
step from the record through `RecordedOutcomes`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from .errors import UsageError
from .results import Outcome

# Environment variables through which `relnb run` tells a headless notebook what it may do.
ENV_CONFIRM = "RELNB_CONFIRM"  # "all", or gate IDs / section letters, comma separated
ENV_SIGNOFFS = "RELNB_SIGNOFFS"  # path to a JSON file {gate: {"by": ..., "note": ...}}, or a `relnb sign` file
ENV_APPROVALS = "RELNB_APPROVALS"  # path to a `relnb sign` approvals file (pre-signed skips, waivers, ...)
ENV_RERUN = "RELNB_RERUN"  # gate IDs to run again although settled
ENV_RERUN_REASON = "RELNB_RERUN_REASON"  # why they must run again (journaled with each forced run)
ENV_WINDOW_REASON = "RELNB_WINDOW_REASON"  # why the monitoring windows were shortened (a waiver)
ENV_SKIPS = "RELNB_SKIPS"  # JSON {gate: reason} for optional gates the run declares not needed
ENV_HEADLESS = "RELNB_HEADLESS"
# A rollback decided in advance for one case only: production did not pass after the deploy
# (headless CI's "roll back if monitoring fails"). Plain ROLLBACK rolls back unconditionally.
ROLLBACK_ON_FAILURE = "ROLLBACK-ON-FAILURE"
# What an operator confirms to roll back unconditionally (`relnb run --confirm ROLLBACK`).
ROLLBACK_CONFIRM = "ROLLBACK"
ENV_ROOT = "RELNB_ROOT"


class RecordedOutcomes(Protocol):
    """Answers a step from a record instead of running it: the double `relnb replay` injects
    (relnb.archive.replay), so a replayed notebook touches no system and signs nothing."""

    def outcome(self, gate_id: str) -> Outcome: ...


@dataclass
class RunContext:
    """What the operator allowed for this run, from the CLI (headless) or nothing (interactive)."""

    confirm: set[str] = field(default_factory=set)
    sign_offs: dict[str, dict[str, Any]] = field(default_factory=dict)
    rerun: set[str] = field(default_factory=set)
    rerun_reason: str | None = None
    skips: dict[str, str] = field(default_factory=dict)
    # Shortening a monitoring window is a decision with a reason: the gate it shortened is at
    # most waived with these words, by whoever shortened it (or the approval signed for it).
    window_reason: str | None = None
    headless: bool = False
    # Pre-signed approvals (`relnb sign`): each decision of the run picks up the one made for it.
    presigned: list[dict[str, Any]] = field(default_factory=list)
    # Set for a whole process by `use_recorded` (relnb replay's child): every Release opened
    # there answers its steps from the record.
    recorded: RecordedOutcomes | None = None
    process_recorded: ClassVar[RecordedOutcomes | None] = None

    @classmethod
    def use_recorded(cls, recorded: RecordedOutcomes | None) -> None:
        """Make every context created from now on in this process answer from `recorded`."""
        cls.process_recorded = recorded

    @classmethod
    def from_env(cls) -> RunContext:
        """The context `relnb run` handed this process (empty, i.e. interactive, without it)."""
        ctx = cls(headless=os.environ.get(ENV_HEADLESS) == "1", recorded=cls.process_recorded)
        ctx.confirm = {c.strip().upper() for c in os.environ.get(ENV_CONFIRM, "").split(",") if c.strip()}
        ctx.rerun = {c.strip().upper() for c in os.environ.get(ENV_RERUN, "").split(",") if c.strip()}
        ctx.rerun_reason = os.environ.get(ENV_RERUN_REASON) or None
        ctx.window_reason = os.environ.get(ENV_WINDOW_REASON) or None
        skips = os.environ.get(ENV_SKIPS)
        if skips:
            try:
                ctx.skips = {k.upper(): str(v) for k, v in json.loads(skips).items()}
            except ValueError as exc:
                raise UsageError(f"{ENV_SKIPS} is not JSON: {exc}") from None
        path = os.environ.get(ENV_SIGNOFFS)
        if path:
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read sign-offs file {path}: {exc}", path=path) from None
            from .signing.approvals_file import is_approvals_file

            if is_approvals_file(data):  # RELNB_SIGNOFFS may name a `relnb sign` file directly
                ctx.add_approvals(Path(path))
            else:
                ctx.sign_offs = {k.upper(): v for k, v in data.items()}
        approvals = os.environ.get(ENV_APPROVALS)
        if approvals:
            ctx.add_approvals(Path(approvals))
        return ctx

    def add_approvals(self, path: Path) -> None:
        """Take a `relnb sign` file's approvals: its sign-offs and skips become this run's
        decisions (unless the operator gave them otherwise), and every approval is kept for the
        event it was signed for."""
        from .signing.approvals_file import read_approvals, sign_offs_for_run, skips_for_run

        file = read_approvals(path)
        for gate, entry in sign_offs_for_run(file).items():
            self.sign_offs.setdefault(gate, entry)
        for gate, reason in skips_for_run(file).items():
            self.skips.setdefault(gate, reason)
        self.presigned.extend(a.to_dict() for a in file.approvals)

    def presigned_of_kind(self, kind: str, gate: str | None) -> list[dict[str, Any]]:
        """Every pre-signed approval of one kind for one gate (promotion votes carry free notes)."""
        return [
            a
            for a in self.presigned
            if (a.get("statement") or {}).get("kind") == kind
            and (a.get("statement") or {}).get("gate") == gate
        ]

    def presigned_for(self, kind: str, gate: str | None, text: str) -> dict[str, Any] | None:
        """The pre-signed approval made for exactly this decision (kind, gate and text), if any."""
        for a in self.presigned:
            st = a.get("statement") or {}
            if st.get("kind") == kind and st.get("gate") == gate and st.get("text", "") == (text or ""):
                return a
        return None

    def confirmed(self, gate_id: str) -> bool:
        """Did the operator confirm this gate (by ID, its section letter or `all`)?"""
        if gate_id == ROLLBACK_CONFIRM:  # never implied by `all` or a section: asked for by name
            return ROLLBACK_CONFIRM in self.confirm
        return bool({"ALL", gate_id, gate_id[0]} & self.confirm)


def confirmation(control: Any, gate_id: str, release: object = None) -> bool:
    """A button's value in marimo; in Jupyter an explicit typed `yes`; otherwise a bool.

    A person's go comes in many shapes; every action reads it through here so none of them can
    be mistaken for a yes by accident.
    """
    if isinstance(control, bool) or control is None:
        return bool(control)
    value = getattr(control, "value", None)
    if isinstance(value, bool):
        return value
    ask = getattr(control, "ask", None)
    if callable(ask):
        return bool(ask())
    return bool(control)
