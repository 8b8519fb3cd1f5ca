"""Providers of the migration gates: A3 migration included, A4 backwards compatibility, B2/D3
migrate and verify the ledger, C3 migration safety, E2/E3 the rollback plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ... import git
from ...gatecontext import GateContext, command_action, not_configured
from ...results import Outcome, Status

if TYPE_CHECKING:
    from .changeset import ReleaseMigrations


def _migrations_dir(ctx: GateContext):
    return ctx.repo() / ctx.config.project["migrations_dir"]


_NO_TAG = "no previous release tag: set project.previous_tag or tag the last release"


def _release_migrations(ctx: GateContext, env_name: str) -> tuple[str, ReleaseMigrations] | Outcome:
    """The migrations this release brings, read for every kind: from git between the previous tag
    and the release SHA, or (migrations of an installed package) from the ledger and the disk."""
    from .changeset import release_migrations

    tag = ctx.previous_tag()
    if not tag:
        return Outcome.inconclusive(_NO_TAG)
    project = ctx.config.project
    if _installed_migrations(ctx):
        return tag, _installed_release(ctx, env_name, tag)
    sha = ctx.release_sha() or "HEAD"
    return tag, release_migrations(ctx.repo(), project["migrations_kind"], project["migrations_dir"], tag, sha)


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
    """A3 evidence: a schema change comes with a migration; every migration the release adds,
    with its operations and the changes A4 will ask about, for the reviewer."""
    from .included import check_migration_included

    tag = ctx.previous_tag()
    if not tag:
        return Outcome.inconclusive(_NO_TAG)
    project = ctx.config.project
    if _installed_migrations(ctx):
        return _pending_on_staging(ctx, tag)
    return check_migration_included(
        ctx.repo(), tag, project["schema_paths"], project["migrations_dir"], ctx.release_sha() or "HEAD",
        kind=project["migrations_kind"],
    )


def _installed_migrations(ctx: GateContext) -> bool:
    """migrations_dir exists but git tracks nothing in it: the migrations ship in an installed
    package (an app from PyPI in the release's virtualenv), so git cannot say what is new."""
    d = _migrations_dir(ctx)
    if not d.is_dir():
        return False
    rel = ctx.config.project["migrations_dir"]
    return not git.output(ctx.repo(), "ls-tree", "-r", "--name-only", ctx.release_sha() or "HEAD", "--", rel)


def _recorded_a3(ctx: GateContext, tag: str) -> list[str] | None:
    """What A3 listed for this release (staging's pending migrations when it gathered its
    evidence, before B2 applied them): the same set for A4 and for E2/E3 after D3."""
    ev = ctx.release.result("A3").evidence
    names = ev.get("new_migrations")
    if ev.get("since") != tag or ev.get("found_by", "").startswith("git") or not isinstance(names, list):
        return None
    return [n for n in names if isinstance(n, str)]


def _installed_names(ctx: GateContext, env_name: str, tag: str) -> tuple[list[str] | None, str, dict[str, Any]]:
    """(names, how they were found, ledger evidence): the environment's pending migrations of the
    installed package, with A3's recorded list; None when neither can be had."""
    from .ledger import verify_ledger

    project = ctx.config.project
    recorded = _recorded_a3(ctx, tag)
    where = f"{project['migrations_dir']} is not in git (migrations of an installed package)"
    db = ctx.env_secret(env_name, "database_url_env")
    if db is None or project["migrations_kind"] == "none":
        if recorded is not None:
            return recorded, f"listed by A3 ({where})", {}
        return None, f"{where}: set environments.{env_name}.database_url_env and project.migrations_kind to list them", {}
    ledger = verify_ledger(db.reveal(), project["migrations_kind"], _migrations_dir(ctx), apps=project["migration_apps"] or None)
    pending = ledger.evidence.get("ledger", {}).get("pending")
    if not isinstance(pending, list):
        if recorded is not None:
            return recorded, f"listed by A3 ({where}; {env_name}'s ledger: {ledger.summary})", {"ledger": ledger.evidence}
        return None, f"{where}; {env_name}'s ledger: {ledger.summary}", {"ledger": ledger.evidence}
    if recorded is None and env_name == "production" and ctx.release.action_result("D3"):
        return None, (
            f"{where}: production is already migrated (D3 ran), and A3's list of the migrations this release"
            " brings is not recorded: run A3"
        ), {"ledger": ledger.evidence}
    names = list(dict.fromkeys([*(recorded or []), *pending]))
    how = f"pending on {env_name}" + (" or listed by A3" if recorded else "")
    return names, f"{how} ({where})", {"ledger": ledger.evidence}


def _installed_release(ctx: GateContext, env_name: str, tag: str) -> ReleaseMigrations:
    from .changeset import ReleaseMigrations, installed_migrations

    kind = ctx.config.project["migrations_kind"]
    names, how, _ = _installed_names(ctx, env_name, tag)
    if names is None:
        return ReleaseMigrations(kind, how, problem=how)
    return installed_migrations(kind, _migrations_dir(ctx), names, how)


def _pending_on_staging(ctx: GateContext, tag: str) -> Outcome:
    """A3 for installed migrations: the ones staging's ledger has not applied are what this
    release brings there, listed and read for the reviewer."""
    from .changeset import installed_migrations

    names, how, ledger = _installed_names(ctx, "staging", tag)
    if names is None:
        return Outcome.inconclusive(how, since=tag, **ledger)
    rs = installed_migrations(ctx.config.project["migrations_kind"], _migrations_dir(ctx), names, how)
    ev = {"since": tag, **rs.evidence(), **ledger}
    if rs.incomplete:
        return Outcome.inconclusive(f"cannot read the release's migrations: {rs.incomplete}", **ev)
    if not names:
        return Outcome.passed(f"no migration {how}", **ev)
    listed = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
    return Outcome.passed(f"{len(names)} migration(s) {how}: {listed}", **ev)


def backwards_compatibility(ctx: GateContext) -> Outcome:
    """A4 evidence: what the release's migrations drop, rename, retype or leave unread, and
    breaking OpenAPI changes; when there is any, the sign-off note must give the plan for them."""
    from ..http.openapi import openapi_breaking_changes, spec_at

    got = _release_migrations(ctx, "staging")
    if isinstance(got, Outcome):
        return got
    tag, rs = got
    spec_path = ctx.config.project["openapi"]
    old, new = spec_at(str(ctx.repo()), tag, spec_path), spec_at(str(ctx.repo()), ctx.release_sha() or "HEAD", spec_path)
    api = openapi_breaking_changes(old, new) if old is not None and new is not None else []
    changes = [{"migration": m.name, **c.to_dict()} for m, c in rs.changes()]
    evidence: dict[str, Any] = {
        "previous_tag": tag,
        "migrations": rs.names,
        "migrations_kind": rs.kind,
        "found_by": rs.source,
        "schema_changes": changes,
        "api_breaking_changes": api,
    }
    if old is None or new is None:
        evidence["openapi"] = f"{spec_path} missing at {tag if old is None else 'HEAD'}"
    if rs.incomplete:
        return Outcome.inconclusive(f"cannot read this release's migrations: {rs.incomplete}", unreadable=rs.unreadable, **evidence)
    if changes or api:
        named = [f"{c['migration']}: {c['message']}" for c in changes] + [str(a) for a in api]
        listed = "; ".join(named[:3]) + (f" (+{len(named) - 3} more)" if len(named) > 3 else "")
        return Outcome.passed(
            f"{len(changes)} schema change(s) old code may not survive, {len(api)} breaking API change(s): {listed}",
            sign_off_requires=f"an expand/contract plan for: {listed}",
            **evidence,
        )
    read = f"{len(rs.names)} migration(s) read" if rs.names else "no new migration"
    if rs.kind == "none":
        read = "no migration file changed (project.migrations_kind = none: relnb reads no migrations)"
    return Outcome.passed(f"no destructive schema change ({read}) and no breaking API change since {tag}", **evidence)


def _expand_contract_plan(ctx: GateContext) -> str | None:
    """A4's sign-off note, when A4 is signed off: the team's expand/contract plan for the
    release's destructive changes, which C3 looks for by name (safety.plan_covers)."""
    a4 = ctx.release.result("A4")
    signed = a4.evidence.get("sign_off") if a4.status is Status.PASSED else None
    note = signed.get("note") if isinstance(signed, dict) else None
    return note if isinstance(note, str) and note.strip() else None


def migration_safety(ctx: GateContext) -> Outcome:
    """C3 for every kind relnb reads: the release's migrations as their tool renders them,
    replayed on a shadow of production's schema under the tool's transaction model."""
    from .release_safety import C3_KINDS, check_release_safety

    project = ctx.config.project
    kind = project["migrations_kind"]
    if kind == "none":
        return Outcome.inconclusive("not applicable: project.migrations_kind = none, no migration files to judge")
    if kind not in C3_KINDS:
        return Outcome.inconclusive(
            f"C3 cannot render {kind} migrations (a plug-in ledger): replay their SQL by hand and waive C3",
            migrations_kind=kind,
        )
    if not project["shadow_database_url_env"]:
        return not_configured("project.shadow_database_url_env", "name an env var with a Postgres URL where relnb may create scratch databases")
    admin = ctx.secret(project["shadow_database_url_env"], "project.shadow_database_url_env")
    prod = ctx.env_secret("production", "database_url_env")
    if kind == "prisma":
        # pending from production's ledger or git, the shadow rebuilt from the earlier files
        from .release_safety import tool_options
        from .safety import check_migration_safety

        return check_migration_safety(
            _migrations_dir(ctx),
            admin.reveal(),
            production_url=prod.reveal() if prod else None,
            ledger_kind=kind,
            repo=ctx.repo(),
            since_tag=ctx.previous_tag(),
            large_rows=int(project["large_table_rows"]),
            options=tool_options(kind, ctx.repo(), _migrations_dir(ctx)),
            expand_contract=_expand_contract_plan(ctx),
        )
    got = _release_migrations(ctx, "production")
    if isinstance(got, Outcome):
        return got
    _, rs = got
    return check_release_safety(
        rs,
        admin.reveal(),
        repo=ctx.repo(),
        migrations_dir=project["migrations_dir"],
        sha=ctx.release_sha(),
        production_url=prod.reveal() if prod else None,
        # keys the config schema may not have yet: read tolerantly, defaults otherwise
        command=project.get("migrations_sql_command") or None,
        golang_multi_statement=bool(project.get("migrations_multi_statement")),
        expand_contract=_expand_contract_plan(ctx),
        large_rows=int(project["large_table_rows"]),
        online_command=project.get("migrations_online_command") or None,
        online_url_env=project.get("migrations_online_url_env") or None,
        online_always=project.get("migrations_online") == "always",
        # the command never sees production's URL variable (nor PG*): it gets the scratch URL only
        drop_env=[v for v in [ctx.env("production")["database_url_env"], project["shadow_database_url_env"]] if v],
    )


def rollback_plan(ctx: GateContext) -> Outcome:
    """E2/E3 share one plan, derived from the release's migrations for every kind; each gate
    says whether its branch applies and is prepared (reversibility.py has the table)."""
    from .reversibility import rollback_plan as plan_for
    from .reversibility import snapshot_state

    got = _release_migrations(ctx, "production")
    if isinstance(got, Outcome):
        return Outcome.inconclusive("no previous release tag: cannot tell which migrations this release brings")
    tag, rs = got
    d2 = ctx.release.action_result("D2")
    return plan_for(rs, tag, d2).outcome(ctx.gate_id, snapshot_missing=snapshot_state(d2))
