"""Who puts a version into an environment: D4's deploy and the rollback's redeploy.

Teams deploy through a script, a PaaS API, Kubernetes, Nomad...; relnb asks one thing of all of
them: deploy this target and say how it went. relnb's `command` (commands.deploy, or
commands.rollback for a rollback) and `coolify` (Coolify's API) are registered exactly like a
plug-in's provider (entry point group `relnb.deploy_providers`, name =
`environments.<env>.deploy_provider`). Whatever the provider says, D4 and the rollback then
wait for the app's version endpoint to show the target (relnb.actions.deploy.deploy_and_verify):
a provider's "done" is not the proof.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..plugins import Registry, callable_shape
from ..results import Outcome

if TYPE_CHECKING:
    from ..gatecontext import GateContext


@dataclass(frozen=True)
class DeployTarget:
    """What to deploy where; `rollback` marks the redeploy of the previous release."""

    environment: str
    version: str
    sha: str
    rollback: bool = False

    def env_vars(self) -> dict[str, str]:
        """How a command learns the target (RELNB_VERSION, RELNB_SHA, RELNB_ROLLBACK)."""
        return {
            "RELNB_VERSION": self.version,
            "RELNB_SHA": self.sha,
            **({"RELNB_ROLLBACK": "1"} if self.rollback else {}),
        }


# provider(ctx, target) -> Outcome: passed when the platform reports the deploy done.
DeployProvider = Callable[["GateContext", DeployTarget], Outcome]


def command_provider(ctx: GateContext, target: DeployTarget) -> Outcome:
    """commands.deploy with the target in the environment; a rollback prefers commands.rollback."""
    from ..gatecontext import command_action

    commands = ctx.env(target.environment)["commands"]
    name = "rollback" if target.rollback and commands["rollback"] else "deploy"
    return command_action(ctx, name, env_name=target.environment, extra_env=target.env_vars())


def coolify_provider(ctx: GateContext, target: DeployTarget) -> Outcome:
    """Coolify deploys the resource (uuid) or tag as configured there; it cannot pick an older
    version, so a rollback through Coolify needs commands.rollback."""
    from .deploy import deploy_coolify

    env = ctx.env(target.environment)
    where = f"environments.{target.environment}"
    if target.rollback:
        if env["commands"]["rollback"]:
            return command_provider(ctx, target)
        return Outcome.failed(
            "Coolify deploys what its resource is set to, not an earlier version: "
            f"set {where}.commands.rollback to the command that redeploys {target.version}",
            missing_config=f"{where}.commands.rollback",
        )
    cool = env["coolify"]
    if not cool["api_url"]:
        return Outcome.failed(
            f"deploy_provider is coolify but {where}.coolify.api_url is not set",
            missing_config=f"{where}.coolify.api_url",
        )
    token = ctx.secret(cool["token_env"], f"{where}.coolify.token_env")
    return deploy_coolify(cool["api_url"], token, uuid=cool["uuid"], tag=cool["tag"])


DEPLOY_PROVIDERS: Registry[DeployProvider] = Registry("deploy provider", "relnb.deploy_providers", callable_shape)
DEPLOY_PROVIDERS.register("command", command_provider)
DEPLOY_PROVIDERS.register("coolify", coolify_provider)


def provider_name(env: dict[str, Any]) -> str:
    """The configured provider; unset means Coolify when its API is configured, else the command."""
    return env["deploy_provider"] or ("coolify" if env["coolify"]["api_url"] else "command")


def deploy(ctx: GateContext, target: DeployTarget) -> Outcome:
    """Run the environment's provider; a provider that raises fails the step with the reason."""
    from ..errors import RelnbError
    from ..redact import scrub

    env = ctx.env(target.environment)
    name = provider_name(env)
    try:  # nothing was deployed: failed, so D4 does not go on to wait for /version
        provider = DEPLOY_PROVIDERS.get(name)
        out = provider(ctx, target)
    except RelnbError as exc:
        return Outcome.failed(str(exc), config_error=str(exc))
    except Exception as exc:
        origin = DEPLOY_PROVIDERS.origin(name)
        return Outcome.failed(
            f"deploy provider {name!r} ({origin}) raised {type(exc).__name__}: {scrub(str(exc))[:200]}"
        )
    if not isinstance(out, Outcome):
        return Outcome.failed(
            f"deploy provider {name!r} ({DEPLOY_PROVIDERS.origin(name)}) returned "
            f"{type(out).__name__}, not an Outcome"
        )
    return Outcome(out.status, out.summary, {"provider": name, **out.evidence})
