"""Which provider answers each of the 33 gates: the index, not the providers themselves.

Each provider sits next to its check (relnb/checks/<group>/gates.py, relnb/actions/gates.py) and
is imported only when its gate runs, so opening a release loads none of them. relnb's providers
are registered through the same registry a plug-in's are (relnb.checklist).
"""

from __future__ import annotations

from collections.abc import Callable

from .gatecontext import GateContext
from .results import Outcome


def _lazy(module: str, name: str) -> Callable[[GateContext], Outcome]:
    """A provider living in a leaf package, imported only when its gate runs."""

    def provider(ctx: GateContext) -> Outcome:
        import importlib

        return getattr(importlib.import_module(module), name)(ctx)

    provider.__name__ = name
    return provider


BUILTIN: dict[str, tuple[Callable[[GateContext], Outcome], bool]] = {
    "A1": (_lazy("relnb.checks.ops.gates", "ci_checks"), False),
    "A2": (_lazy("relnb.checks.http.gates", "endpoints_documented"), False),
    "A3": (_lazy("relnb.checks.migrations.gates", "migration_included"), False),
    "A4": (_lazy("relnb.checks.migrations.gates", "backwards_compatibility"), False),
    "A6": (_lazy("relnb.checks.ops.gates", "runbooks"), False),
    "B1": (_lazy("relnb.checks.http.gates", "staging_runs_main"), False),
    "B2": (_lazy("relnb.checks.migrations.gates", "migrate_staging"), False),
    "B3": (_lazy("relnb.actions.gates", "build_images"), False),
    "B4": (_lazy("relnb.checks.ops.gates", "deploy_artifacts"), False),
    "B5": (_lazy("relnb.checks.http.gates", "smoke_staging"), False),
    "B6": (_lazy("relnb.checks.queues.gates", "queues_processing"), False),
    "B7": (_lazy("relnb.checks.queues.gates", "dlq_stable"), False),
    "B8": (_lazy("relnb.watch", "no_error_spikes"), False),
    "B9": (_lazy("relnb.checks.http.gates", "cors_and_redirects"), False),
    "C1": (_lazy("relnb.watch", "staging_soak"), False),
    "C2": (_lazy("relnb.checks.ops.gates", "backup_available"), False),
    "C3": (_lazy("relnb.checks.migrations.gates", "migration_safety"), False),
    "C4": (_lazy("relnb.checks.ops.gates", "secrets_exist"), False),
    "C5": (_lazy("relnb.checks.ops.gates", "dashboards_alerts"), False),
    "D1": (_lazy("relnb.actions.gates", "safe_mode"), False),
    "D2": (_lazy("relnb.actions.gates", "snapshot"), False),
    "D3": (_lazy("relnb.checks.migrations.gates", "migrate_production"), False),
    "D4": (_lazy("relnb.actions.gates", "deploy"), False),
    "D5": (_lazy("relnb.checks.http.gates", "smoke_production"), False),
    "D6": (_lazy("relnb.checks.http.gates", "scripted_smoke"), False),
    "D7": (_lazy("relnb.watch", "monitor_production"), False),
    "E1": (_lazy("relnb.checks.ops.gates", "previous_images"), False),
    "E2": (_lazy("relnb.checks.migrations.gates", "rollback_plan"), False),
    "E3": (_lazy("relnb.checks.migrations.gates", "rollback_plan"), False),
    "F1": (_lazy("relnb.actions.gates", "git_tag"), False),
    "F2": (_lazy("relnb.archive", "f2_incidents"), False),
    "F3": (_lazy("relnb.archive", "f3_changelog"), False),
}
