"""Providers of the ops gates: A1 CI, A6 runbooks, B4 deploy artifacts, C2 backups, C4 secrets,
C5 dashboards/alerts, E1 previous images or packages: relnb.toml in, the check under relnb.checks.ops called.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ...config import parse_duration
from ...gatecontext import GateContext, not_configured
from ...redact import scrub
from ...results import Outcome


def ci_checks(ctx: GateContext) -> Outcome:
    ci = ctx.config.data["ci"]
    from . import ci as ci_checks_mod

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


def runbooks(ctx: GateContext) -> Outcome:
    from .repo_files import check_runbooks

    sha = ctx.release_sha()
    if not sha:
        return Outcome.inconclusive(f"{ctx.repo()} is not a git repository with commits: set project.repo")
    return check_runbooks(ctx.repo(), sha, ctx.config.project["runbooks"])


def deploy_artifacts(ctx: GateContext) -> Outcome:
    """B4: the deploy files and env templates at the release SHA, the templates listing every
    secret production requires, and each template key defined where production's secrets live
    (never relnb's own environment: without such a source the keys are left uncompared)."""
    from .repo_files import check_deploy_artifacts

    project = ctx.config.project
    if not project["deploy_artifacts"] and not project["env_templates"]:
        return not_configured("project.deploy_artifacts", "list the compose templates and scripts a deploy needs")
    sec = ctx.env("production")["secrets"]
    provided, label, why = None, None, None
    if project["env_templates"]:
        provided, label, why = _production_key_names(ctx, sec, project["env_templates"])
    return check_deploy_artifacts(
        ctx.repo(), ctx.release_sha() or "HEAD", project["deploy_artifacts"], project["env_templates"], provided,
        environment="production", required_keys=sec["required"], key_source=label, keys_unavailable=why,
    )


def _production_key_names(ctx: GateContext, sec: dict, templates: list[str]) -> tuple[set[str] | None, str | None, str | None]:
    """(names production defines among the templates' keys, where they were read, why not)."""
    from .repo_files import template_keys_at
    from .secrets import present_names

    where = "environments.production.secrets"
    source, path, command = sec["source"], None, None
    if source == "dotenv" or (source == "env" and sec["dotenv"]):  # the environment's own file
        source, path = "dotenv", str(ctx.config.root / (sec["dotenv"] or ".env"))
    elif source == "env":
        return None, None, (
            "only relnb's own environment could be seen, not production's: "
            f"set {where}.source to dotenv, command, ssm or secretsmanager"
        )
    elif source == "command":
        if not sec["command"]:
            return None, None, f"no listing command: set {where}.command"
        command = sec["command"]
    names = template_keys_at(ctx.repo(), ctx.release_sha() or "HEAD", templates)
    label = {"dotenv": f"dotenv {sec['dotenv'] or '.env'}", "command": f"command `{scrub(command or '')[:120]}`"}.get(source, source)
    provided, problem = present_names(
        names, source, path=path, command=command, cwd=ctx.repo(),
        command_timeout_s=parse_duration(sec["command_timeout"]),
    )
    return provided, label, (f"could not read production's keys ({label}): {problem}" if problem else None)


def previous_images(ctx: GateContext) -> Outcome:
    """E1 from the registry the images live in, or the package index an installed app comes from."""
    from .registry import check_previous_tags

    env = ctx.env("production")
    reg = env["registry"]
    if (not reg["url"] or not reg["repositories"]) and env["package_index"]["requirements"]:
        return previous_packages(ctx)
    if not reg["url"] or not reg["repositories"]:
        return not_configured(
            "environments.production.registry",
            "set url and repositories (api, worker); an app installed from a package index sets"
            " environments.production.package_index.requirements instead",
        )
    tag = ctx.previous_tag()
    image_tag = tag[len(ctx.config.project["tag_prefix"]):] if tag else None
    return check_previous_tags(reg["url"], reg["repositories"], image_tag, **_login(ctx, reg, "registry"))


def _login(ctx: GateContext, table: dict[str, Any], name: str) -> dict[str, Any]:
    """username/password from a production table's `username_env`/`password_env`, when both are set."""
    if not (table["username_env"] and table["password_env"]):
        return {}
    where = f"environments.production.{name}"
    return {
        "username": ctx.secret(table["username_env"], f"{where}.username_env").reveal(),
        "password": ctx.secret(table["password_env"], f"{where}.password_env"),
    }


def previous_packages(ctx: GateContext) -> Outcome:
    from ... import git
    from .package_index import canonical_name, check_previous_packages, includes, read_pins

    idx = ctx.env("production")["package_index"]
    where = "environments.production.package_index"
    tag = ctx.previous_tag()
    if not tag:
        return Outcome.inconclusive("no previous release tag known: set project.previous_tag or create a tag")
    path = idx["requirements"]
    pins: dict[str, str | None] = {}
    todo, seen = [path], set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        text = git.output(ctx.repo(), "show", f"{tag}:{name}")
        if text is None:
            return Outcome.inconclusive(f"{name} cannot be read at {tag}: check {where}.requirements")
        pins |= read_pins(text)
        base = posixpath.dirname(name)
        todo += [posixpath.normpath(posixpath.join(base, inc)) for inc in includes(text)]
    if idx["packages"]:
        wanted = {name: pins.get(name) for name in (canonical_name(p) for p in idx["packages"])}
        absent = [n for n in wanted if n not in pins]
        if absent:
            return Outcome.inconclusive(f"{', '.join(absent)} not in {path} at {tag}: check {where}.packages")
        pins = wanted
    return check_previous_packages(idx["url"], pins, previous=tag, source=path, **_login(ctx, idx, "package_index"))


def backup_available(ctx: GateContext) -> Outcome:
    """C2: the production backup store's newest backup (relnb's s3/rds or a plug-in's store)."""
    from ...actions.backupstores import max_age_hours, with_store

    return with_store(ctx, lambda store: store.newest(max_age_hours=max_age_hours(ctx)))


def secrets_exist(ctx: GateContext) -> Outcome:
    """C4 through production's own sources; `source = "env"` can only see relnb's environment,
    so it is reported as such and stays inconclusive."""
    from .secrets import check_secrets

    where = "environments.production.secrets"
    sec = ctx.env("production")["secrets"]
    if not sec["required"]:
        return not_configured(f"{where}.required", "list the secrets production needs")
    if sec["source"] == "command" and not sec["command"]:
        return not_configured(f"{where}.command", "a command printing production's variables, e.g. `ssh prod env`")
    probes = {p["name"]: p for p in sec["probes"]}
    stray = [n for n in sec["public"] if n not in sec["required"]]
    if stray:
        return not_configured(f"{where}.public", f"list only names that are in {where}.required ({', '.join(stray)} is not)")
    specs = []
    for name in sec["required"]:
        spec = {"name": name, "source": sec["source"]}
        if sec["source"] == "dotenv":
            spec["path"] = str(ctx.config.root / (sec["dotenv"] or ".env"))
        if sec["source"] == "command":
            spec["command"] = sec["command"]
        if name in sec["public"]:
            spec["kind"] = "public"
        p = probes.get(name)
        if p:
            spec["kind"] = p["kind"]
            opts = {k: p[k] for k in ("bucket", "endpoint_url", "region", "access_key_id_from") if p[k]}
            if opts:
                spec["options"] = opts
        specs.append(spec)
    return check_secrets(
        specs, cwd=ctx.repo(), command_timeout_s=parse_duration(sec["command_timeout"]), environment="production"
    )


def dashboards_alerts(ctx: GateContext) -> Outcome:
    from .observability import check_observability

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
        dsn_probe=o["error_tracking_probe"],
        settle_s=parse_duration(o["settle"]),
    )
