"""What a provider gets and the few answers every provider gives: the toolkit of a gate's code.

A provider (relnb's own in relnb.providers, or a team's through `register_check`) takes a
`GateContext` (the release, its config, the environment it looks at) and returns an `Outcome`.
This module sits below both the registry (relnb.checklist) and the providers, so neither has to
import the other to share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import git
from .config import parse_duration
from .errors import RelnbError, SecretMissing, UsageError
from .gates import get_gate
from .results import Outcome

if TYPE_CHECKING:
    from .release import Release

Provider = Callable[["GateContext"], Outcome]


@dataclass
class GateContext:
    release: Release
    gate_id: str

    @property
    def config(self):
        return self.release.config

    @property
    def environment(self) -> str | None:
        return get_gate(self.gate_id).environment

    def env(self, name: str | None = None) -> dict[str, Any]:
        return self.config.env(name or self.environment or "production")

    def repo(self) -> Path:
        return self.config.repo_path()

    def secret(self, env_var: str | None, key: str):
        return self.config.secret(env_var, key=key)

    def duration(self, value: str | float) -> float:
        return parse_duration(value)

    def release_sha(self) -> str | None:
        """The SHA being released: recorded when the release was created, else the repo's HEAD."""
        return self.release.info.get("git_sha") or git.output(self.repo(), "rev-parse", "HEAD")

    def previous_tag(self) -> str | None:
        """The release before this one: project.previous_tag, else the newest tag with the prefix."""
        project = self.config.project
        if project["previous_tag"]:
            return project["previous_tag"]
        own = f"{project['tag_prefix']}{self.release.info.get('version')}"
        return git.newest_tag(self.repo(), self.release_sha() or "HEAD", project["tag_prefix"], exclude=own)

    def env_secret(self, env_name: str, field: str) -> Any:
        """The secret an environment's `<field>` (an `_env` key) names, or None when unset."""
        var = self.env(env_name)[field]
        return self.secret(var, f"environments.{env_name}.{field}") if var else None

    def auth_headers(self, env_name: str) -> dict[str, str]:
        """The environment's owner token as an Authorization header, none when no token_env is set:
        an app may guard its version endpoint too (NetBox's /api/status/ needs a token)."""
        auth = self.env(env_name)["auth"]
        if not auth["token_env"]:
            return {}
        try:
            token = self.secret(auth["token_env"], f"environments.{env_name}.auth.token_env")
        except SecretMissing:  # most version endpoints are public; a guarded one answers 401/403 in the evidence
            return {}
        return {"Authorization": f"{auth['scheme']} {token.reveal()}"}

    def aws_client(self, backups: dict[str, Any], service: str = "s3") -> Any:
        """A boto3 client for the production backups' endpoint, region and credentials."""
        import boto3

        kw = {"region_name": backups["region"]}
        if backups["endpoint_url"]:
            kw["endpoint_url"] = backups["endpoint_url"]
        if backups["access_key_env"] and backups["secret_key_env"]:
            where = "environments.production.backups"
            kw["aws_access_key_id"] = self.secret(backups["access_key_env"], f"{where}.access_key_env").reveal()
            kw["aws_secret_access_key"] = self.secret(backups["secret_key_env"], f"{where}.secret_key_env").reveal()
        return boto3.client(service, **kw)


def not_configured(key: str, fix: str) -> Outcome:
    """A check that has nothing to look at cannot pass: say which key to set."""
    return Outcome.inconclusive(f"not configured: {key} — {fix}", missing_config=key)


def config_error(exc: RelnbError) -> Outcome:
    return Outcome.inconclusive(str(exc), config_error=str(exc))


def command_action(ctx: GateContext, name: str, *, env_name: str | None = None, extra_env: dict[str, str] | None = None) -> Outcome:
    """Run `environments.<env>.commands.<name>` in the app repository."""
    from .actions.command import run_command

    env_name = env_name or ctx.environment or "production"
    try:
        env = ctx.env(env_name)
    except RelnbError as exc:
        return config_error(exc)
    command = env["commands"].get(name)
    if not command:
        return Outcome.failed(
            f"no {name} command configured: set environments.{env_name}.commands.{name} in relnb.toml",
            missing_config=f"environments.{env_name}.commands.{name}",
        )
    timeout = parse_duration(env["commands"]["timeout"])
    run_env = {"RELNB_ENVIRONMENT": env_name, "RELNB_RELEASE": ctx.release.id,
               "RELNB_VERSION": str(ctx.release.info.get("version", ""))}
    run_env.update(extra_env or {})
    return run_command(command, cwd=ctx.repo(), env=run_env, timeout_s=timeout, what=f"{name} command")


def require(cond: Any, key: str, fix: str) -> None:
    if not cond:
        raise UsageError(f"not configured: {key}", key=key, fix=fix)
