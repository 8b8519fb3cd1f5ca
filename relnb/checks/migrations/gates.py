"""Providers of the migration gates: A3 migration included, A4 backwards compatibility, B2/D3
migrate and verify the ledger, C3 migration safety, E2/E3 the rollback plan.
"""

from __future__ import annotations

from ... import git
from ...gatecontext import GateContext, command_action, not_configured
from ...results import Outcome, Status


def _migrations_dir(ctx: GateContext):
    return ctx.repo() / ctx.config.project["migrations_dir"]


def _new_migrations(ctx: GateContext) -> tuple[list[str], str | None]:
    from .included import new_migrations_since

    tag = ctx.previous_tag()
    if not tag:
        return [], None
    return new_migrations_since(ctx.repo(), tag, ctx.config.project["migrations_dir"], ctx.release_sha() or "HEAD"), tag


def _migrate_and_verify(ctx: GateContext, env_name: str) -> Outcome:
    """B2/D3: run the migrate command, then prove it from the ledger (all applied, checksums, none failed)."""
    from .ledger import verify_ledger

    ran = command_action(ctx, "migrate", env_name=env_name)
    if ran.status is not Status.PASSED:
        return ran
    if ctx.config.project["migrations_kind"] == "none":
        return Outcome.passed(f"{ran.summary} (no ledger configured: project.migrations_kind = none)", **ran.evidence)
    db = ctx.env_secret(env_name, "database_url_env")
    if db is None:
        return Outcome.inconclusive(
            f"migrate ran, but the ledger cannot be read: set environments.{env_name}.database_url_env",
            migrate=ran.evidence,
        )
    project = ctx.config.project
    ledger = verify_ledger(
        db.reveal(), project["migrations_kind"], _migrations_dir(ctx), apps=project["migration_apps"] or None
    )
    return Outcome(ledger.status, f"{ran.summary.split(':')[0]}; {ledger.summary}", {"migrate": ran.evidence, "ledger": ledger.evidence})


def migrate_staging(ctx: GateContext) -> Outcome:
    return _migrate_and_verify(ctx, "staging")


def migrate_production(ctx: GateContext) -> Outcome:
    return _migrate_and_verify(ctx, "production")


def migration_included(ctx: GateContext) -> Outcome:
    """A3 evidence: a schema change comes with a migration; its SQL and lint findings for the reviewer."""
    from .included import check_migration_included
    from .sqlrisk import destructive_changes

    tag = ctx.previous_tag()
    if not tag:
        return Outcome.inconclusive("no previous release tag: set project.previous_tag or tag the last release")
    project = ctx.config.project
    if _installed_migrations(ctx):
        return _pending_on_staging(ctx, tag)
    out = check_migration_included(ctx.repo(), tag, project["schema_paths"], project["migrations_dir"], ctx.release_sha() or "HEAD")
    names, _ = _new_migrations(ctx)
    sql = {}
    for name in names:
        f = _migrations_dir(ctx) / name / "migration.sql"
        if f.is_file():
            text = f.read_text()
            sql[name] = {"sql": text[:4000], "findings": [_finding(x) for x in destructive_changes(text)]}
    return Outcome(out.status, out.summary, {**out.evidence, "migrations": sql})


def _installed_migrations(ctx: GateContext) -> bool:
    """migrations_dir exists but git tracks nothing in it: the migrations ship in an installed
    package (an app from PyPI in the release's virtualenv), so git cannot say what is new."""
    d = _migrations_dir(ctx)
    if not d.is_dir():
        return False
    rel = ctx.config.project["migrations_dir"]
    return not git.output(ctx.repo(), "ls-tree", "-r", "--name-only", ctx.release_sha() or "HEAD", "--", rel)


def _pending_on_staging(ctx: GateContext, tag: str) -> Outcome:
    """A3 for installed migrations: the ones staging's ledger has not applied are what this
    release brings there, listed for the reviewer."""
    from .ledger import verify_ledger

    project = ctx.config.project
    where = f"{project['migrations_dir']} is not in git (migrations of an installed package)"
    db = ctx.env_secret("staging", "database_url_env")
    if db is None or project["migrations_kind"] == "none":
        return Outcome.inconclusive(
            f"{where}: set environments.staging.database_url_env and project.migrations_kind to list them",
            since=tag,
        )
    ledger = verify_ledger(db.reveal(), project["migrations_kind"], _migrations_dir(ctx), apps=project["migration_apps"] or None)
    pending = ledger.evidence.get("ledger", {}).get("pending")
    if not isinstance(pending, list):
        return Outcome.inconclusive(f"{where}; staging's ledger: {ledger.summary}", since=tag, ledger=ledger.evidence)
    names = ", ".join(pending[:5]) + (" …" if len(pending) > 5 else "")
    summary = f"{len(pending)} migration(s) not yet applied on staging: {names}" if pending else "no migration pending on staging"
    return Outcome.passed(f"{summary} ({where})", since=tag, new_migrations=pending, ledger=ledger.evidence)


def _finding(f) -> dict:
    return {"rule": f.rule, "severity": f.severity, "message": f.message, "statement": f.statement, "table": f.table}


def backwards_compatibility(ctx: GateContext) -> Outcome:
    """A4 evidence: destructive SQL in new migrations and breaking OpenAPI changes; a plan note if any."""
    from ..http.openapi import openapi_breaking_changes, spec_at
    from .sqlrisk import destructive_changes

    names, tag = _new_migrations(ctx)
    if not tag:
        return Outcome.inconclusive("no previous release tag: set project.previous_tag or tag the last release")
    sql_findings = []
    for name in names:
        f = _migrations_dir(ctx) / name / "migration.sql"
        if f.is_file():
            sql_findings += [{"migration": name, **_finding(x)} for x in destructive_changes(f.read_text())]
    spec_path = ctx.config.project["openapi"]
    old, new = spec_at(str(ctx.repo()), tag, spec_path), spec_at(str(ctx.repo()), ctx.release_sha() or "HEAD", spec_path)
    api = openapi_breaking_changes(old, new) if old is not None and new is not None else []
    evidence = {"previous_tag": tag, "migrations": names, "sql_findings": sql_findings, "api_breaking_changes": api}
    if old is None or new is None:
        evidence["openapi"] = f"{spec_path} missing at {tag if old is None else 'HEAD'}"
    found = len(sql_findings) + len(api)
    if found:
        return Outcome.passed(
            f"{len(sql_findings)} destructive SQL change(s), {len(api)} breaking API change(s): needs an expand/contract plan",
            sign_off_requires="an expand/contract plan for the changes found",
            **evidence,
        )
    return Outcome.passed(f"no destructive SQL or breaking API change since {tag}", **evidence)


# the migration kinds whose files C3 replays on a shadow database and whose ledger names them the
# same way; the other kinds get a one-line "not applicable" instead of a misleading "none found"
_REPLAYED_KINDS = ("prisma",)


def migration_safety(ctx: GateContext) -> Outcome:
    from .safety import check_migration_safety

    project = ctx.config.project
    kind = project["migrations_kind"]
    if kind == "none":
        return Outcome.inconclusive("not applicable: project.migrations_kind = none, no migration files to judge")
    if kind not in _REPLAYED_KINDS:
        return Outcome.inconclusive(
            f"not applicable: C3 replays prisma-layout SQL migrations on a shadow database; {kind}"
            " migrations are not replayed (review their SQL under A3)", migrations_kind=kind,
        )
    if not project["shadow_database_url_env"]:
        return not_configured("project.shadow_database_url_env", "name an env var with a Postgres URL where relnb may create scratch databases")
    admin = ctx.secret(project["shadow_database_url_env"], "project.shadow_database_url_env")
    prod = ctx.env_secret("production", "database_url_env")
    return check_migration_safety(
        _migrations_dir(ctx),
        admin.reveal(),
        production_url=prod.reveal() if prod else None,
        ledger_kind=kind,
        repo=ctx.repo(),
        since_tag=ctx.previous_tag(),
        large_rows=int(project["large_table_rows"]),
    )


def rollback_plan(ctx: GateContext) -> Outcome:
    """E2/E3 share one plan; each gate says whether its branch applies and is prepared."""
    from .reversibility import rollback_plan as plan_for

    names, tag = _new_migrations(ctx)
    if not tag:
        return Outcome.inconclusive("no previous release tag: cannot tell which migrations this release brings")
    d2 = ctx.release.action_result("D2")
    snapshot = (d2 or {}).get("evidence", {}).get("key")
    plan = plan_for(_migrations_dir(ctx), names, snapshot=snapshot)
    if plan.status is not Status.PASSED:
        return plan
    applies = plan.evidence.get("gate") in (ctx.gate_id, "E2/E3")
    if not applies:
        other = "E3" if ctx.gate_id == "E2" else "E2"
        return Outcome.passed(f"not this branch: {plan.summary} ({other} applies)", applies=False, **plan.evidence)
    return Outcome.passed(plan.summary, applies=True, **plan.evidence)
