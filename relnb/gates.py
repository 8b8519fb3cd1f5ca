"""The checklist as data: every item has a stable gate ID, a kind and its dependencies.

Dependencies serve two rules: a waiver is void once the gate or anything upstream of it runs
again, and section D may only start when A–C are passed, skipped or waived (the promotion guard).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import UsageError


class Kind(StrEnum):
    CHECK = "check"  # automatic: gathers evidence and decides
    SIGN_OFF = "sign-off"  # a person decides, with evidence gathered first
    ACTION = "action"  # changes a system; runs once per release, through the journal


SECTIONS: dict[str, str] = {
    "A": "Pre-merge checklist (PR-level)",
    "B": "Staging deployment checklist",
    "C": "Production readiness checklist (gate before promote)",
    "D": "Production deployment steps",
    "E": "Rollback plan (must be prepared)",
    "F": "Post-release",
}

# Sections whose gates must all be passed/skipped/waived before section D may run.
PROMOTION_PREREQUISITES = ("A", "B", "C")
GUARDED_SECTION = "D"
# Sections whose gates (like every action) wait until the gates they depend on are settled: the
# readiness checks judge what staging showed (C1's soak starts when B1 saw the release), so a
# failed input leaves them waiting rather than failing on someone else's account.
WAITS_FOR_INPUTS = ("C", GUARDED_SECTION, "F")
# The roles a few gates play in the release's mechanics, named here so the core names no gate.
DEPLOY_GATE = "D4"  # its action is what a rollback undoes
SAFE_MODE_GATE = "D1"  # its action is undone (safe mode off) after the deploy, or by the rollback
ROLLBACK_GATE = "E3"  # the prepared rollback runs as named steps of this gate
PRODUCTION_WINDOW_GATE = "D7"  # Release.monitor(): the production monitoring window
# Gates that claim the release shipped (a tag, a changelog entry): never after a rollback.
SHIP_RECORDS = ("F1", "F3")


@dataclass(frozen=True)
class GateSpec:
    id: str
    title: str
    kind: Kind
    optional: bool = False
    depends_on: tuple[str, ...] = ()
    environment: str | None = None  # which environment the gate looks at, if any
    watches: bool = False  # decided over a monitoring window: its result carries the charts
    checklist: str | None = None  # the checklist's own words, where they name one team's stack

    @property
    def section(self) -> str:
        return self.id[0]

    @property
    def checklist_words(self) -> str:
        """The item as the team's checklist says it (docs/release-checklist.md); `title` is the
        same item in words true on any stack, and what a project renames in `[gates] titles`."""
        return self.checklist or self.title


def _g(
    gate_id: str,
    title: str,
    kind: Kind,
    *,
    optional: bool = False,
    depends_on: tuple[str, ...] = (),
    env: str | None = None,
    watches: bool = False,
    checklist: str | None = None,
) -> GateSpec:
    return GateSpec(gate_id, title, kind, optional, depends_on, env, watches, checklist)


C, S, A = Kind.CHECK, Kind.SIGN_OFF, Kind.ACTION

GATES: tuple[GateSpec, ...] = (
    _g("A1", "All CI checks green (unit + integration + migrations + e2e smoke)", C),
    _g("A2", "New endpoints documented (OpenAPI updated)", C),
    _g("A3", "New DB migration is included and reviewed", S),
    _g("A4", "Backwards compatibility considered (expand/contract if needed)", S, depends_on=("A3",)),
    _g("A5", "Feature flag added if risky / partially rolled out", S),
    _g("A6", "Runbook references", C),
    _g("B1", "Deploy to staging automatically from main", C, env="staging"),
    _g("B2", "Run migrations on the staging database", A, checklist="Run migrate deploy on staging DB", depends_on=("B1",), env="staging"),
    _g("B3", "(Optional) build/publish release artifacts", A, checklist="(Optional) build/publish images", optional=True, env="staging"),
    _g("B4", "Deploy artifacts and environment templates", C, checklist="VPS deploy artifacts", env="staging"),
    _g("B5", "Smoke test flows", C, depends_on=("B1", "B2"), env="staging"),
    _g("B6", "Verify worker queues are processing (no stuck jobs)", C, depends_on=("B1",), env="staging"),
    _g("B7", "Verify DLQ count is stable/zero", C, depends_on=("B1",), env="staging"),
    _g("B8", "Verify logs show no new error spikes", C, depends_on=("B1",), env="staging", watches=True),
    _g("B9", "Verify CORS + redirect URIs correct for staging frontends", C, depends_on=("B1",), env="staging"),
    _g("C1", "Confirm staging has run for N hours without error spikes", C, depends_on=("B1",), env="staging", watches=True),
    _g("C2", "Confirm DB backup is available (automatic snapshot)", C, env="production"),
    _g("C3", "Confirm migration is safe", C, depends_on=("A3",), env="production"),
    _g("C4", "Confirm secrets exist in production", C, checklist="Confirm secrets exist in prod (Keycloak URLs, S3 keys, Redis, DB)", env="production"),
    _g("C5", "Confirm dashboards/alerts working (logs, metrics, error tracking)", C, env="production"),
    _g("D1", "Put system in “safe mode” if needed", A, optional=True, env="production"),
    _g("D2", "Take/confirm fresh DB snapshot", A, env="production"),
    _g("D3", "Run migrations", A, checklist="Run migrations (prisma migrate deploy)", depends_on=("D2",), env="production"),
    _g("D4", "Deploy the new version", A, checklist="Deploy new API + worker images", depends_on=("D3",), env="production"),
    _g("D5", "Run production smoke tests", C, depends_on=("D4",), env="production"),
    _g("D6", "(Optional) scripted smoke check if you can supply bearer tokens", A, optional=True, depends_on=("D4",), env="production"),
    _g("D7", "Monitor for 30–60 minutes", C, depends_on=("D4",), env="production", watches=True),
    _g("E1", "Previous version's artifact available", C, checklist="Previous Docker image tag available", env="production"),
    _g("E2", "If migration is non-reversible, rollback = redeploy old app + hotfix forward", C),
    _g("E3", "If reversible: run down migration (rare) OR restore snapshot", C),
    # A tag and a changelog entry claim the release shipped: deployed and through its window.
    _g("F1", "Tag release in git", A, depends_on=("D4", "D7")),
    _g("F2", "Record any incidents + add tests for any bugs found", C, depends_on=("D7",)),
    # A version that never reached production gets no changelog section, as it gets no tag.
    _g("F3", "Update changelog", A, depends_on=("D4", "D7")),
)

_BY_ID = {g.id: g for g in GATES}
GATE_IDS: tuple[str, ...] = tuple(g.id for g in GATES)


def get_gate(gate_id: str) -> GateSpec:
    """Look a gate up by ID; unknown IDs name the valid ones."""
    try:
        return _BY_ID[gate_id.upper()]
    except KeyError:
        raise UsageError(
            f"unknown gate ID {gate_id!r}",
            gate=gate_id,
            fix=f"use one of {', '.join(GATE_IDS)}",
        ) from None


def upstream(gate_id: str) -> set[str]:
    """Every gate that `gate_id` depends on, transitively (not including itself)."""
    seen: set[str] = set()
    todo = list(get_gate(gate_id).depends_on)
    while todo:
        g = todo.pop()
        if g not in seen:
            seen.add(g)
            todo.extend(get_gate(g).depends_on)
    return seen


def gates_in(section: str) -> tuple[GateSpec, ...]:
    return tuple(g for g in GATES if g.section == section)


def earlier_in_sequence(gate_id: str) -> tuple[str, ...]:
    """The guarded section is a sequence (snapshot before migrate before deploy before watching
    it): the gates that must have settled before `gate_id` may start; () outside that section."""
    spec = get_gate(gate_id)
    if spec.section != GUARDED_SECTION:
        return ()
    ids = [g.id for g in gates_in(GUARDED_SECTION)]
    return tuple(ids[: ids.index(spec.id)])
