"""Providers of the HTTP gates: A2 endpoints documented, B1 staging runs main, B9 CORS/redirects,
B5/D5 smoke flows, D6 scripted smoke.
"""

from __future__ import annotations

from ... import git
from ...config import parse_duration
from ...gatecontext import GateContext, not_configured
from ...results import Outcome


def endpoints_documented(ctx: GateContext) -> Outcome:
    """A2: the routes the code at the release SHA serves (project.routes) against its spec."""
    from .openapi import check_endpoints_documented
    from .routes import RouteSource

    sha = ctx.release_sha()
    if not sha:
        return Outcome.inconclusive(f"{ctx.repo()} is not a git repository with commits: set project.repo")
    project = ctx.config.project
    routes = project["routes"]
    source = RouteSource(
        command=routes["command"], app=routes["app"], python_path=tuple(routes["python_path"]),
        timeout_s=ctx.duration(routes["timeout"]),
    )
    return check_endpoints_documented(
        str(ctx.repo()), sha, ctx.previous_tag(), project["openapi"], source=source, ignore=routes["ignore"],
        version=str(ctx.release.info.get("version") or ""), tag_prefix=project["tag_prefix"],
    )


def staging_runs_main(ctx: GateContext) -> Outcome:
    """B1: the configured version source (JSON field, text, header or command) shows main's SHA."""
    from .version import check_version, expected_version, version_source

    env = ctx.env("staging")
    source = version_source(env, where="environments.staging", cwd=ctx.repo(), file=ctx.config.file)
    main = git.output(ctx.repo(), "rev-parse", ctx.config.project["main_branch"])
    if not main:
        return Outcome.inconclusive(f"cannot resolve branch {ctx.config.project['main_branch']!r} in {ctx.repo()}")
    expected, tags = expected_version(env, main, str(ctx.release.info.get("version", "")))
    return check_version(
        env["base_url"], expected, source=source,
        timeout_s=parse_duration(env["version_timeout"]), poll_interval_s=2, tags=tags,
        headers=ctx.auth_headers("staging"),
    )


def cors_and_redirects(ctx: GateContext) -> Outcome:
    from .cors_oidc import check_cors_and_redirects

    env = ctx.env("staging")
    oidc = env["oidc"]
    if not oidc["frontends"]:
        return not_configured("environments.staging.oidc.frontends", "list each frontend's origin and redirect_uri")
    return check_cors_and_redirects(
        env["base_url"], oidc["frontends"], oidc["issuer"], oidc["client_id"], preflight_path=oidc["cors_path"],
        credentials=oidc["cors_credentials"],
    )


def _flows(ctx: GateContext, env_name: str) -> Outcome:
    from .flows import smoke_outcome

    auth = ctx.env(env_name)["auth"]
    where = f"environments.{env_name}.auth"
    owner = ctx.secret(auth["token_env"], f"{where}.token_env") if auth["token_env"] else None
    member = ctx.secret(auth["member_token_env"], f"{where}.member_token_env") if auth["member_token_env"] else None
    return smoke_outcome(ctx.config, env_name, owner, member)


def smoke_staging(ctx: GateContext) -> Outcome:
    return _flows(ctx, "staging")


def smoke_production(ctx: GateContext) -> Outcome:
    return _flows(ctx, "production")


def scripted_smoke(ctx: GateContext) -> Outcome:
    from .smoke import run_smoke_script

    env = ctx.env("production")
    script = env["commands"]["smoke"]
    if not script:
        return Outcome.failed("no smoke script configured: set environments.production.commands.smoke")
    if not env["auth"]["token_env"]:
        return not_configured("environments.production.auth.token_env", "name the env var with a bearer token")
    token = ctx.secret(env["auth"]["token_env"], "environments.production.auth.token_env")
    return run_smoke_script(ctx.repo() / script, base_url=env["base_url"], owner_token=token, cwd=ctx.repo())
