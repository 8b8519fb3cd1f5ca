"""E2/E3: can this release's migrations be undone, and so what is the rollback plan?

The plan follows from two questions about each migration the release brings (changeset.py):

- does it **break the previous release** (drops or renames a column or table that release
  reads)? Then redeploying the previous version over the new schema fails — the plan must
  undo the schema *before* the redeploy, or it is not a plan.
- is it **reversible** (a down step exists and does something, and the up step destroyed no
  data)?

| breaks previous | all reversible | plan                                                     | branch |
|-----------------|----------------|----------------------------------------------------------|--------|
| no migration    |                | redeploy the previous version                            | E2/E3  |
| no              | no             | redeploy the previous version + hotfix forward           | E2     |
| no              | yes            | run the down migrations, or restore the D2 snapshot      | E3     |
| yes             | yes            | run the down migrations before redeploying, or restore   | E3     |
| yes             | no             | restore the D2 snapshot before redeploying (if recorded) | E3     |
| yes             | no, no snapshot| none: E2 fails, "prepare a hotfix-forward or a restore"  | E2     |

What relnb cannot read (a file it cannot parse, an operation it does not know, SQL built at
run time, a kind it has no reader for) makes both gates inconclusive with the reason.

The evidence is the contract relnb/actions/gates.py `rollback_steps` follows: `applies`, `plan`
(starting "run down" → down migration or snapshot restore; "restore" → snapshot restore),
`undo` (none | down-or-restore | restore | forward) and `redeploy_safe` (False: the previous
version cannot run on this schema until it is undone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...results import Outcome, Status
from .changeset import ReleaseMigrations


@dataclass
class Plan:
    status: Status
    summary: str
    gate: str  # the branch that applies: E2, E3 or E2/E3
    plan: str = ""
    undo: str = ""
    redeploy_safe: bool | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def outcome(self, gate_id: str, *, snapshot_missing: str | None = None) -> Outcome:
        """This plan as E2's or E3's result."""
        ev = {
            "plan": self.plan,
            "gate": self.gate,
            "undo": self.undo,
            "redeploy_safe": self.redeploy_safe,
            **self.evidence,
        }
        if self.status is Status.INCONCLUSIVE:
            return Outcome(self.status, self.summary, {"applies": None, **ev})
        if self.gate in (gate_id, "E2/E3"):
            return Outcome(self.status, self.summary, {"applies": True, **ev})
        other = "E3" if gate_id == "E2" else "E2"
        if self.status is Status.PASSED:
            return Outcome.passed(f"not this branch: {self.summary} ({other} applies)", applies=False, **ev)
        # E2 failed for want of a restore: E3's branch (the restore) is the one not prepared
        restore = {**ev, "plan": f"restore the D2 snapshot before redeploying {self.evidence.get('previous_tag')}", "undo": "restore"}
        status = Status.FAILED if snapshot_missing == "failed" else Status.INCONCLUSIVE
        what = "the D2 snapshot failed" if snapshot_missing == "failed" else "no D2 snapshot is recorded in this release"
        return Outcome(status, f"{self.summary.split(';')[0]}: a restore would undo it, but {what}", {"applies": True, **restore})


def _named(rs: ReleaseMigrations, effects: tuple[str, ...]) -> list[str]:
    return [f"{m.name}: {c.message}" for m, c in rs.changes(*effects)]


def _breaking(rs: ReleaseMigrations, only: set[str] | None = None) -> list[str]:
    """What the previous release reads and this one drops or renames (Change.breaks_previous)."""
    return [f"{m.name}: {c.message}" for m, c in rs.changes() if c.breaks_previous and (only is None or m.name in only)]


def _short(items: list[str], n: int = 2) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return "; ".join(items[:n]) + more


def rollback_plan(rs: ReleaseMigrations, previous_tag: str, snapshot: dict[str, Any] | None) -> Plan:
    """The rollback this release needs. `snapshot`: D2's recorded finish (status, evidence), or None."""
    ev: dict[str, Any] = {
        "previous_tag": previous_tag,
        "migrations_kind": rs.kind,
        "found_by": rs.source,
        "migrations": [m.to_dict() for m in rs.migrations],
    }
    if rs.incomplete:
        return Plan(Status.INCONCLUSIVE, f"cannot tell the rollback plan: {rs.incomplete}", "E2/E3", evidence={**ev, "unreadable": rs.unreadable})
    if rs.kind == "none":
        return Plan(
            Status.INCONCLUSIVE,
            f"project.migrations_kind = none: relnb reads no migrations, so it cannot tell whether redeploying"
            f" {previous_tag} is safe; set project.migrations_kind/migrations_dir, or list E2/E3 in [gates] manual",
            "E2/E3", evidence=ev,
        )
    unread = _named(rs, ("unread",))
    unknown = [f"{m.name}: {m.reading.reason}" for m in rs.migrations if m.reading.reversible is None]
    if unread or unknown:
        return Plan(
            Status.INCONCLUSIVE,
            f"cannot tell whether {previous_tag} runs on this schema or it can be undone: {_short(unread + unknown)}",
            "E2/E3", evidence={**ev, "unread": unread + unknown},
        )
    if not rs.migrations:
        at = f"; {rs.on_disk} {rs.kind} migration(s) at the release" if rs.on_disk is not None else ""
        return Plan(
            Status.PASSED,
            f"no migrations in this release ({rs.source}{at}): rollback = redeploy {previous_tag}",
            "E2/E3", "redeploy previous app", "none", True, ev,
        )
    irreversible = [m for m in rs.migrations if m.reading.reversible is False]
    breaking = _breaking(rs)
    ev["breaking"] = breaking
    down_order = [m.name for m in reversed(rs.migrations)]
    if not breaking and irreversible:
        names = ", ".join(f"{m.name} ({m.reading.reason})" for m in irreversible[:3])
        return Plan(
            Status.PASSED,
            f"{len(irreversible)} non-reversible migration(s): {names}; none drops or renames what {previous_tag}"
            f" reads: rollback = redeploy {previous_tag} + hotfix forward",
            "E2", "redeploy previous app + hotfix forward", "forward", True, ev,
        )
    if not irreversible:
        if not breaking:
            return Plan(
                Status.PASSED,
                f"all {len(rs.migrations)} migration(s) reversible: rollback = run the down migration(s) in reverse"
                " order, or restore the D2 snapshot",
                "E3", "run down migration(s) or restore the D2 snapshot", "down-or-restore", True,
                {**ev, "down_order": down_order},
            )
        return Plan(
            Status.PASSED,
            f"reversible, but {_short(breaking, 1)}: rollback = run the down migration(s) before redeploying"
            f" {previous_tag} (it cannot run on this schema), or restore the D2 snapshot",
            "E3", f"run down migration(s) before redeploying {previous_tag}, or restore the D2 snapshot",
            "down-or-restore", False, {**ev, "down_order": down_order},
        )
    bad = _breaking(rs, {m.name for m in irreversible}) or breaking
    why = f"non-reversible: {_short(bad, 1)}; redeploying {previous_tag} over it breaks"
    key = _snapshot_key(snapshot)
    if key is not None:
        return Plan(
            Status.PASSED,
            f"{why}: rollback = restore the D2 snapshot {key} before redeploying {previous_tag}"
            " (writes since the snapshot are lost)",
            "E3", f"restore the D2 snapshot before redeploying {previous_tag}", "restore", False,
            {**ev, "snapshot": key},
        )
    return Plan(
        Status.FAILED,
        f"{why}; prepare a hotfix-forward or a restore",
        "E2", f"hotfix forward or restore: redeploying {previous_tag} alone breaks", "forward", False, ev,
    )


def _snapshot_key(d2: dict[str, Any] | None) -> str | None:
    """The D2 snapshot a restore would use, when D2 passed."""
    if not d2 or d2.get("status") != "passed":
        return None
    ev = d2.get("evidence") or {}
    key = ev.get("key") or ev.get("snapshot_id") or ev.get("snapshot")
    return str(key) if key else "(recorded)"


def snapshot_state(d2: dict[str, Any] | None) -> str:
    if not d2:
        return "none"
    return "recorded" if d2.get("status") == "passed" else "failed"
