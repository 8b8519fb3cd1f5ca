"""relnb's own gate providers: config in, `Outcome` out, integrations imported lazily.

Each function maps the release's configuration onto one check or action under relnb/checks and
relnb/actions; when the configuration needed is missing the gate is inconclusive (checks) or failed
(actions) with the key to set, never passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import git
from .config import parse_duration
from .gatecontext import GateContext, command_action, not_configured
from .redact import scrub
from .results import Outcome, Status


def release_sha(ctx: GateContext) -> str | None:
    """The SHA being released: recorded when the release was created, else the repository's HEAD."""
    return ctx.release.info.get("git_sha") or git.output(ctx.repo(), "rev-parse", "HEAD")


def previous_tag(ctx: GateContext) -> str | None:
    project = ctx.config.project
    if project["previous_tag"]:
        return project["previous_tag"]
    prefix = project["tag_prefix"]
    own = f"{prefix}{ctx.release.info.get('version')}"
    return git.newest_tag(ctx.repo(), release_sha(ctx) or "HEAD", prefix, exclude=own)


def ci_checks(ctx: GateContext) -> Outcome:
    ci = ctx.config.data["ci"]
    from .checks.ops import ci as ci_checks_mod

    if ci["provider"] == "command":
        if not ci["command"]:
            return not_configured("ci.command", "set the test command to run, e.g. `pytest -q`")
        return ci_checks_mod.check_ci_command(ci["command"], ctx.repo(), timeout_s=parse_duration(ci["timeout"]))

    if not ci["github_repo"]:
        return not_configured("ci.github_repo", "set owner/name of the GitHub repository")
    token = ctx.secret(ci["token_env"], "ci.token_env") if ci["token_env"] else None
    sha = ctx.release.info.get("git_sha")
    return ci_checks_mod.check_ci_github(
        ci["github_repo"],
        sha,
        token=token,
        api_url=ci["api_url"],
        required=ci["required_checks"] or None,
        branch=ctx.config.project["main_branch"],
    )


def endpoints_documented(ctx: GateContext) -> Outcome:
    from .checks.http.openapi import check_endpoints_documented

    sha = release_sha(ctx)
    if not sha:
        return Outcome.inconclusive(f"{ctx.repo()} is not a git repository with commits: set project.repo")
    return check_endpoints_documented(
        str(ctx.repo()), sha, previous_tag(ctx), ctx.config.project["openapi"], ignore=["/metrics", "/_admin/*"]
    )


def runbooks(ctx: GateContext) -> Outcome:
    from .checks.ops.repo_files import check_runbooks

    sha = release_sha(ctx)
    if not sha:
        return Outcome.inconclusive(f"{ctx.repo()} is not a git repository with commits: set project.repo")
    return check_runbooks(ctx.repo(), sha, ctx.config.project["runbooks"])


def staging_runs_main(ctx: GateContext) -> Outcome:
    from .checks.http.version import check_version

    env = ctx.env("staging")
    main = git.output(ctx.repo(), "rev-parse", ctx.config.project["main_branch"])
    if not main:
        return Outcome.inconclusive(f"cannot resolve branch {ctx.config.project['main_branch']!r} in {ctx.repo()}")
    return check_version(
        env["base_url"], main, path=env["version_path"], field=env["version_field"],
        timeout_s=parse_duration(env["version_timeout"]), poll_interval_s=2,
    )


def deploy_artifacts(ctx: GateContext) -> Outcome:
    import os

    from .checks.ops.repo_files import check_deploy_artifacts, dotenv_keys

    project = ctx.config.project
    if not project["deploy_artifacts"] and not project["env_templates"]:
        return not_configured("project.deploy_artifacts", "list the compose templates and scripts a deploy needs")
    env = ctx.env("production")
    provided: set[str] = set(os.environ)
    if env["secrets"]["dotenv"]:
        dotenv = ctx.config.root / env["secrets"]["dotenv"]
        if not dotenv.is_file():
            return Outcome.failed(f"dotenv file {dotenv} (environments.production.secrets.dotenv) does not exist")
        provided = dotenv_keys(dotenv)
    return check_deploy_artifacts(
        ctx.repo(), release_sha(ctx) or "HEAD", project["deploy_artifacts"], project["env_templates"], provided,
        environment="production",
    )


def cors_and_redirects(ctx: GateContext) -> Outcome:
    from .checks.http.cors_oidc import check_cors_and_redirects

    env = ctx.env("staging")
    oidc = env["oidc"]
    if not oidc["frontends"]:
        return not_configured("environments.staging.oidc.frontends", "list each frontend's origin and redirect_uri")
    return check_cors_and_redirects(env["base_url"], oidc["frontends"], oidc["issuer"], oidc["client_id"])


def previous_images(ctx: GateContext) -> Outcome:
    from .checks.ops.registry import check_previous_tags

    env = ctx.env("production")
    reg = env["registry"]
    if not reg["url"] or not reg["repositories"]:
        return not_configured("environments.production.registry", "set url and repositories (api, worker)")
    tag = previous_tag(ctx)
    image_tag = tag[len(ctx.config.project["tag_prefix"]):] if tag else None
    kwargs = {}
    if reg["username_env"] and reg["password_env"]:
        kwargs = {
            "username": ctx.secret(reg["username_env"], "environments.production.registry.username_env").reveal(),
            "password": ctx.secret(reg["password_env"], "environments.production.registry.password_env"),
        }
    return check_previous_tags(reg["url"], reg["repositories"], image_tag, **kwargs)


def _env_secret(ctx: GateContext, env_name: str, field: str):
    var = ctx.env(env_name)[field]
    return ctx.secret(var, f"environments.{env_name}.{field}") if var else None


def _migrations_dir(ctx: GateContext):
    return ctx.repo() / ctx.config.project["migrations_dir"]


def _new_migrations(ctx: GateContext) -> tuple[list[str], str | None]:
    from .checks.migrations.included import new_migrations_since

    tag = previous_tag(ctx)
    if not tag:
        return [], None
    return new_migrations_since(ctx.repo(), tag, ctx.config.project["migrations_dir"], release_sha(ctx) or "HEAD"), tag


def _migrate_and_verify(ctx: GateContext, env_name: str) -> Outcome:
    """B2/D3: run the migrate command, then prove it from the ledger (all applied, checksums, none failed)."""
    from .checks.migrations.ledger import verify_ledger

    ran = command_action(ctx, "migrate", env_name=env_name)
    if ran.status is not Status.PASSED:
        return ran
    if ctx.config.project["migrations_kind"] == "none":
        return Outcome.passed(f"{ran.summary} (no ledger configured: project.migrations_kind = none)", **ran.evidence)
    db = _env_secret(ctx, env_name, "database_url_env")
    if db is None:
        return Outcome.inconclusive(
            f"migrate ran, but the ledger cannot be read: set environments.{env_name}.database_url_env",
            migrate=ran.evidence,
        )
    ledger = verify_ledger(db.reveal(), ctx.config.project["migrations_kind"], _migrations_dir(ctx))
    return Outcome(ledger.status, f"{ran.summary.split(':')[0]}; {ledger.summary}", {"migrate": ran.evidence, "ledger": ledger.evidence})


def migrate_staging(ctx: GateContext) -> Outcome:
    return _migrate_and_verify(ctx, "staging")


def migrate_production(ctx: GateContext) -> Outcome:
    return _migrate_and_verify(ctx, "production")


def migration_included(ctx: GateContext) -> Outcome:
    """A3 evidence: a schema change comes with a migration; its SQL and lint findings for the reviewer."""
    from .checks.migrations.included import check_migration_included
    from .checks.migrations.sqlrisk import destructive_changes

    tag = previous_tag(ctx)
    if not tag:
        return Outcome.inconclusive("no previous release tag: set project.previous_tag or tag the last release")
    project = ctx.config.project
    out = check_migration_included(ctx.repo(), tag, project["schema_paths"], project["migrations_dir"], release_sha(ctx) or "HEAD")
    names, _ = _new_migrations(ctx)
    sql = {}
    for name in names:
        f = _migrations_dir(ctx) / name / "migration.sql"
        if f.is_file():
            text = f.read_text()
            sql[name] = {"sql": text[:4000], "findings": [_finding(x) for x in destructive_changes(text)]}
    return Outcome(out.status, out.summary, {**out.evidence, "migrations": sql})


def _finding(f) -> dict:
    return {"rule": f.rule, "severity": f.severity, "message": f.message, "statement": f.statement, "table": f.table}


def backwards_compatibility(ctx: GateContext) -> Outcome:
    """A4 evidence: destructive SQL in new migrations and breaking OpenAPI changes; a plan note if any."""
    from .checks.http.openapi import openapi_breaking_changes, spec_at
    from .checks.migrations.sqlrisk import destructive_changes

    names, tag = _new_migrations(ctx)
    if not tag:
        return Outcome.inconclusive("no previous release tag: set project.previous_tag or tag the last release")
    sql_findings = []
    for name in names:
        f = _migrations_dir(ctx) / name / "migration.sql"
        if f.is_file():
            sql_findings += [{"migration": name, **_finding(x)} for x in destructive_changes(f.read_text())]
    spec_path = ctx.config.project["openapi"]
    old, new = spec_at(str(ctx.repo()), tag, spec_path), spec_at(str(ctx.repo()), release_sha(ctx) or "HEAD", spec_path)
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


def migration_safety(ctx: GateContext) -> Outcome:
    from .checks.migrations.safety import check_migration_safety

    project = ctx.config.project
    if not project["shadow_database_url_env"]:
        return not_configured("project.shadow_database_url_env", "name an env var with a Postgres URL where relnb may create scratch databases")
    admin = ctx.secret(project["shadow_database_url_env"], "project.shadow_database_url_env")
    prod = _env_secret(ctx, "production", "database_url_env")
    return check_migration_safety(
        _migrations_dir(ctx),
        admin.reveal(),
        production_url=prod.reveal() if prod else None,
        ledger_kind=project["migrations_kind"],
        repo=ctx.repo(),
        since_tag=previous_tag(ctx),
        large_rows=int(project["large_table_rows"]),
    )


def rollback_plan(ctx: GateContext) -> Outcome:
    """E2/E3 share one plan; each gate says whether its branch applies and is prepared."""
    from .checks.migrations.reversibility import rollback_plan as plan_for

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


def _queue_args(ctx: GateContext, env_name: str) -> tuple[str, dict] | Outcome:
    env = ctx.env(env_name)
    redis = _env_secret(ctx, env_name, "redis_url_env")
    if redis is None:
        return not_configured(f"environments.{env_name}.redis_url_env", "name the env var holding the queue Redis URL")
    q = env["queue"]
    return redis.reveal(), {"kind": q["kind"], "queues": q["names"], "prefix": q["prefix"]}


def queues_processing(ctx: GateContext) -> Outcome:
    from .checks.queues import check_queues_processing

    args = _queue_args(ctx, "staging")
    if isinstance(args, Outcome):
        return args
    url, kw = args
    q = ctx.env("staging")["queue"]
    return check_queues_processing(
        url, kw["kind"], kw["queues"], prefix=kw["prefix"],
        interval_s=parse_duration(q["check_interval"]), max_job_age_s=parse_duration(q["max_job_age"]),
    )


def dlq_stable(ctx: GateContext) -> Outcome:
    from .checks.queues import check_dlq

    args = _queue_args(ctx, "staging")
    if isinstance(args, Outcome):
        return args
    url, kw = args
    interval = parse_duration(ctx.env("staging")["queue"]["check_interval"])
    return check_dlq(url, kw["kind"], kw["queues"], prefix=kw["prefix"], samples=3, interval_s=interval)


def _flows(ctx: GateContext, env_name: str) -> Outcome:
    from .checks.http.flows import smoke_outcome

    auth = ctx.env(env_name)["auth"]
    where = f"environments.{env_name}.auth"
    owner = ctx.secret(auth["token_env"], f"{where}.token_env") if auth["token_env"] else None
    member = ctx.secret(auth["member_token_env"], f"{where}.member_token_env") if auth["member_token_env"] else None
    return smoke_outcome(ctx.config, env_name, owner, member)


def smoke_staging(ctx: GateContext) -> Outcome:
    return _flows(ctx, "staging")


def smoke_production(ctx: GateContext) -> Outcome:
    return _flows(ctx, "production")


def backup_available(ctx: GateContext) -> Outcome:
    from .checks.ops.backups import check_rds_snapshots, check_s3_backup

    b = ctx.env("production")["backups"]
    max_h = parse_duration(b["max_age"]) / 3600
    if b["kind"] == "rds":
        if not b["instance"]:
            return not_configured("environments.production.backups.instance", "name the RDS instance")
        return check_rds_snapshots(b["instance"], max_age_hours=max_h, **_aws_kwargs(ctx, b))
    if not b["bucket"]:
        return not_configured("environments.production.backups.bucket", "name the S3 bucket holding the backups")
    return check_s3_backup(b["bucket"], b["prefix"], max_age_hours=max_h, client=_s3_client(ctx, b))


def _aws_kwargs(ctx: GateContext, b: dict) -> dict:
    return {"client": _s3_client(ctx, b, service="rds")}


def _s3_client(ctx: GateContext, b: dict, service: str = "s3"):
    import boto3

    kw = {"region_name": b["region"]}
    if b["endpoint_url"]:
        kw["endpoint_url"] = b["endpoint_url"]
    if b["access_key_env"] and b["secret_key_env"]:
        kw["aws_access_key_id"] = ctx.secret(b["access_key_env"], "environments.production.backups.access_key_env").reveal()
        kw["aws_secret_access_key"] = ctx.secret(b["secret_key_env"], "environments.production.backups.secret_key_env").reveal()
    return boto3.client(service, **kw)


def secrets_exist(ctx: GateContext) -> Outcome:
    import os

    from .checks.ops.secrets import check_secrets

    sec = ctx.env("production")["secrets"]
    if not sec["required"]:
        return not_configured("environments.production.secrets.required", "list the secrets production needs")
    probes = {p["name"]: p for p in sec["probes"]}
    specs = []
    for name in sec["required"]:
        spec = {"name": name, "source": sec["source"]}
        if sec["source"] == "dotenv":
            spec["path"] = str(ctx.config.root / (sec["dotenv"] or ".env"))
        p = probes.get(name)
        if p:
            spec["kind"] = p["kind"]
            opts = {k: p[k] for k in ("bucket", "endpoint_url", "region", "access_key_id_from") if p[k]}
            if opts:
                spec["options"] = opts
        specs.append(spec)
    return check_secrets(specs, env=os.environ)


def dashboards_alerts(ctx: GateContext) -> Outcome:
    from .checks.ops.observability import check_observability

    o = ctx.env("production")["observability"]
    if not o["prometheus_url"]:
        return not_configured("environments.production.observability.prometheus_url", "set the Prometheus URL")
    dsn = ctx.secret(o["error_tracking_dsn_env"], "environments.production.observability.error_tracking_dsn_env") if o["error_tracking_dsn_env"] else None
    return check_observability(
        o["prometheus_url"],
        expected_jobs=o["expected_jobs"] or None,
        expected_alerts=o["expected_alerts"],
        alertmanager_url=o["alertmanager_url"],
        error_tracking_dsn=dsn,
        settle_s=parse_duration(o["settle"]),
    )


def snapshot(ctx: GateContext) -> Outcome:
    """D2: pg_dump → S3 (or an RDS snapshot) when backups are configured, else the snapshot command."""
    from .actions import snapshot as snap

    b = ctx.env("production")["backups"]
    if b["kind"] == "rds" and b["instance"]:
        return snap.take_snapshot_rds(b["instance"], f"relnb-{ctx.release.id}".replace(".", "-"), **_aws_kwargs(ctx, b))
    if b["bucket"]:
        db = _env_secret(ctx, "production", "database_url_env")
        if db is None:
            return not_configured("environments.production.database_url_env", "name the env var with the production DB URL")
        prefix = (b["prefix"].rstrip("/") + "/relnb-snapshots").lstrip("/")
        return snap.take_snapshot_s3(db.reveal(), b["bucket"], prefix, label=f"release-{ctx.release.id}", client=_s3_client(ctx, b))
    return command_action(ctx, "snapshot")


def build_images(ctx: GateContext) -> Outcome:
    return command_action(ctx, "build")


def safe_mode(ctx: GateContext) -> Outcome:
    return command_action(ctx, "safe_mode_on")


def deploy(ctx: GateContext) -> Outcome:
    """D4: deploy (command or Coolify), then /version must show the released SHA."""
    from .actions.deploy import deploy_and_verify, deploy_coolify

    env = ctx.env("production")
    sha = release_sha(ctx) or ""
    cool = env["coolify"]
    if cool["api_url"]:
        token = ctx.secret(cool["token_env"], "environments.production.coolify.token_env")

        def step() -> Outcome:
            return deploy_coolify(cool["api_url"], token, uuid=cool["uuid"], tag=cool["tag"])
    else:

        def step() -> Outcome:
            return command_action(ctx, "deploy", extra_env={"RELNB_SHA": sha})

    if not env["version_path"]:
        done = step()
        note = "not verified against /version: environments.production.version_path is empty"
        return Outcome(done.status, f"{done.summary} ({note})", {**done.evidence, "sha": sha, "version_check": note})
    out = deploy_and_verify(step, **_version_probe(env), expected=sha)
    return Outcome(out.status, out.summary, {**out.evidence, "sha": sha})


def scripted_smoke(ctx: GateContext) -> Outcome:
    from .checks.http.smoke import run_smoke_script

    env = ctx.env("production")
    script = env["commands"]["smoke"]
    if not script:
        return Outcome.failed("no smoke script configured: set environments.production.commands.smoke")
    if not env["auth"]["token_env"]:
        return not_configured("environments.production.auth.token_env", "name the env var with a bearer token")
    token = ctx.secret(env["auth"]["token_env"], "environments.production.auth.token_env")
    return run_smoke_script(ctx.repo() / script, base_url=env["base_url"], owner_token=token, cwd=ctx.repo())


def git_tag(ctx: GateContext) -> Outcome:
    """F1: annotated tag at the SHA that was deployed; refuses a tag that points elsewhere."""
    repo = ctx.repo()
    version = str(ctx.release.info.get("version"))
    tag = f"{ctx.config.project['tag_prefix']}{version}"
    deployed = ctx.release.action_result("D4")
    sha = (deployed or {}).get("evidence", {}).get("sha") or ctx.release.info.get("git_sha")
    if not sha:
        return Outcome.failed("no deployed SHA in the journal and no git SHA at release creation")

    existing = git.run(repo, "rev-parse", "-q", "--verify", f"refs/tags/{tag}^{{commit}}")
    if existing.returncode == 0:
        at = existing.stdout.strip()
        if at == sha:
            return Outcome.passed(f"tag {tag} already at {sha[:12]}", tag=tag, sha=sha, created=False)
        return Outcome.failed(
            f"tag {tag} exists at {at[:12]}, not at the deployed {sha[:12]}: refusing to move it",
            tag=tag, tag_sha=at, deployed_sha=sha,
        )
    state = ctx.release.state
    counts = state.table().counts()
    message = f"Release {version}\n\nrelnb release {ctx.release.id}: " + ", ".join(
        f"{n} {s}" for s, n in sorted(counts.items())
    )
    made = git.run(repo, "tag", "-a", tag, sha, "-m", message)
    if made.returncode != 0:
        return Outcome.failed(f"git tag failed: {scrub(made.stderr.strip())[:200]}", tag=tag, sha=sha)
    return Outcome.passed(f"created annotated tag {tag} at {sha[:12]}", tag=tag, sha=sha, created=True)


def _lazy(module: str, name: str) -> Callable[[GateContext], Outcome]:
    """A provider living in a leaf package, imported only when its gate runs."""

    def provider(ctx: GateContext) -> Outcome:
        import importlib

        return getattr(importlib.import_module(module), name)(ctx)

    provider.__name__ = name
    return provider


BUILTIN: dict[str, tuple[Callable[[GateContext], Outcome], bool]] = {
    "A1": (ci_checks, False),
    "A2": (endpoints_documented, False),
    "A3": (migration_included, False),
    "A4": (backwards_compatibility, False),
    "A6": (runbooks, False),
    "B1": (staging_runs_main, False),
    "B2": (migrate_staging, False),
    "B3": (build_images, False),
    "B4": (deploy_artifacts, False),
    "B5": (smoke_staging, False),
    "B6": (queues_processing, False),
    "B7": (dlq_stable, False),
    "B8": (_lazy("relnb.watch", "no_error_spikes"), False),
    "B9": (cors_and_redirects, False),
    "C1": (_lazy("relnb.watch", "staging_soak"), False),
    "C2": (backup_available, False),
    "C3": (migration_safety, False),
    "C4": (secrets_exist, False),
    "C5": (dashboards_alerts, False),
    "D1": (safe_mode, False),
    "D2": (snapshot, False),
    "D3": (migrate_production, False),
    "D4": (deploy, False),
    "D5": (smoke_production, False),
    "D6": (scripted_smoke, False),
    "D7": (_lazy("relnb.watch", "monitor_production"), False),
    "E1": (previous_images, False),
    "E2": (rollback_plan, False),
    "E3": (rollback_plan, False),
    "F1": (git_tag, False),
    "F2": (_lazy("relnb.archive", "f2_incidents"), False),
    "F3": (_lazy("relnb.archive", "f3_changelog"), False),
}


def _version_probe(env: dict[str, Any]) -> dict[str, Any]:
    """Where D4 and the rollback redeploy read the running version: the same endpoint as B1."""
    return {
        "base_url": env["base_url"],
        "path": env["version_path"],
        "fields": (env["version_field"],),
        "timeout_s": parse_duration(env["version_timeout"]),
    }


def rollback_steps(ctx: GateContext) -> list[tuple[str, Callable[[], Outcome]]]:
    """The rollback the plan calls for, as named actions: redeploy the previous version first (old
    code runs on the expanded schema), then undo the schema when the migrations are reversible."""
    from .actions.deploy import deploy_and_verify

    env = ctx.env("production")
    tag = previous_tag(ctx)
    prev_sha = git.output(ctx.repo(), "rev-parse", f"{tag}^{{commit}}") if tag else None
    prev_version = tag[len(ctx.config.project["tag_prefix"]):] if tag else ""

    def redeploy() -> Outcome:
        if not prev_sha:
            return Outcome.failed("no previous release tag to roll back to: set project.previous_tag")
        name = "rollback" if env["commands"]["rollback"] else "deploy"
        extra = {"RELNB_VERSION": prev_version, "RELNB_SHA": prev_sha, "RELNB_ROLLBACK": "1"}

        def step() -> Outcome:
            return command_action(ctx, name, extra_env=extra)

        if not env["version_path"]:
            return step()
        return deploy_and_verify(step, **_version_probe(env), expected=prev_sha)

    steps: list[tuple[str, Callable[[], Outcome]]] = [("rollback-redeploy", redeploy)]
    # the plan this release recorded at E3 is the one to follow (and needs no repository, so a
    # replay elsewhere shows the same steps); work it out now only when E3 has not settled
    recorded = ctx.release.result("E3")
    if recorded.recorded and recorded.status is Status.PASSED:
        plan: Any = recorded
    else:
        try:
            plan = rollback_plan(GateContext(ctx.release, "E3"))
        except Exception as exc:
            reason = scrub(f"{type(exc).__name__}: {exc}")[:200]
            steps.append(("rollback-plan", lambda: Outcome.failed(f"cannot tell the rollback plan (E3): {reason}")))
            return steps
    if plan.evidence.get("applies") and plan.evidence.get("plan", "").startswith("run down"):
        if env["commands"]["migrate_down"]:
            steps.append(("rollback-down-migration", lambda: command_action(ctx, "migrate_down")))
        else:

            def restore() -> Outcome:
                from .actions.snapshot import restore_from_evidence

                d2 = ctx.release.action_result("D2")
                if not d2 or d2.get("status") != "passed":
                    return Outcome.failed("no D2 snapshot recorded in this release to restore")
                db = _env_secret(ctx, "production", "database_url_env")
                if db is None:
                    return not_configured("environments.production.database_url_env", "name the production DB URL env var")
                return restore_from_evidence(db.reveal(), d2.get("evidence", {}), client=_s3_client(ctx, env["backups"]))

            steps.append(("rollback-restore-snapshot", restore))
    return steps
