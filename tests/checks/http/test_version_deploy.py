"""D4 and the rollback's redeploy verify the running version in the shape the environment
configures (issue 20): a text body, a header, a command; the same source as B1.

A team's deploy provider (registered as a plug-in) changes what a real uvicorn app serves; the
version command reads a file the "platform" writes. Needs relnb/actions/gates.py to pass the
environment's version source to deploy_and_verify.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import relnb
from relnb import Outcome, Release, Status
from relnb.actions.deployers import DEPLOY_PROVIDERS, DeployTarget
from relnb.actions.gates import deploy, rollback_steps
from relnb.errors import ConfigError
from relnb.gatecontext import GateContext

from ...core.helpers import commit, git, make_project


class Platform:
    """What the app serves (and the file a version command reads) is what was deployed last;
    `stale` makes it report `shown` whatever was deployed (a deploy that did not land)."""

    def __init__(self, sha: str, state: Path) -> None:
        self.sha, self.state = sha, state
        self.stale: str | None = None
        self.write()

    def write(self) -> None:
        self.state.write_text(f"deployed image api:{self.shown}\n")

    @property
    def shown(self) -> str:
        return self.stale or self.sha

    def provider(self, ctx: GateContext, target: DeployTarget) -> Outcome:
        self.sha = target.sha
        self.write()
        return Outcome.passed(f"rolled out {target.version}")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/version.txt", lambda request: PlainTextResponse(self.shown + "\n")),
                Route("/healthz", lambda request: PlainTextResponse("ok", headers={"X-Revision": self.shown})),
                Route("/error", lambda request: PlainTextResponse(f"<html>{self.sha}</html>", media_type="text/html")),
            ]
        )


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Release]:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    root = make_project(tmp_path / "app")
    git(root, "tag", "v1.0.0")
    commit(root, {}, "feat: 1.1.0")
    r = Release.create("1.1.0", root=root)
    yield r
    r.close()


@pytest.fixture
def platform(release: Release, tmp_path: Path) -> Iterator[Platform]:
    p = Platform(git(release.config.root, "rev-parse", "v1.0.0"), tmp_path / "deployed.txt")
    DEPLOY_PROVIDERS.register("platform-test", p.provider, origin="code")
    yield p
    DEPLOY_PROVIDERS.unregister("platform-test")


def configure(r: Release, url: str, source: str) -> None:
    (r.config.root / "relnb.toml").write_text(
        f'[environments.production]\nbase_url = "{url}"\nversion_timeout = "1s"\n'
        f'deploy_provider = "platform-test"\n{source}'
    )
    r.config = relnb.load_config(r.config.root / "relnb.toml")


def sources(state: Path) -> dict[str, str]:
    return {
        "text": 'version_source = "text"\nversion_path = "/version.txt"\n',
        "header": 'version_source = "header"\nversion_path = "/healthz"\nversion_header = "X-Revision"\n',
        "command": (
            f'version_source = "command"\nversion_command = "cat {shlex.quote(str(state))}"\n'
            'version_pattern = "api:([0-9a-f]{40})"\n'
        ),
    }


@pytest.mark.parametrize("kind", ["text", "header", "command"])
def test_d4_and_the_rollback_verify_the_version_in_the_configured_shape(release, platform, serve, kind):
    configure(release, serve(platform.app()), sources(platform.state)[kind])
    out = deploy(GateContext(release, "D4"))
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["version"]["source"] == kind
    assert out.evidence["version"]["deployed"] == release.info["git_sha"]

    name, redeploy = rollback_steps(GateContext(release, "E3"))[0]
    back = redeploy()
    assert name == "rollback-redeploy" and back.status is Status.PASSED, back.summary
    assert back.evidence["version"]["deployed"] == git(release.config.root, "rev-parse", "v1.0.0")


@pytest.mark.parametrize("kind", ["text", "header", "command"])
def test_d4_fails_when_the_configured_source_still_shows_the_old_version(release, platform, serve, kind):
    platform.stale = platform.sha  # the deploy "succeeds", the old version keeps running
    configure(release, serve(platform.app()), sources(platform.state)[kind])
    out = deploy(GateContext(release, "D4"))
    assert out.status is Status.FAILED, out.summary
    assert "deploy reported passed, but" in out.summary


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ('version_source = "text"\nversion_path = "/error"\n', "HTML page"),
        ('version_source = "header"\nversion_path = "/version.txt"\nversion_header = "X-Revision"\n', "no X-Revision header"),
        ('version_source = "command"\nversion_command = "exit 3"\n', "command exited 3"),
    ],
)
def test_d4_never_passes_when_the_version_cannot_be_read(release, platform, serve, source, problem):
    configure(release, serve(platform.app()), source)
    out = deploy(GateContext(release, "D4"))
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert problem in out.evidence["version"]["problem"]


def test_d4_with_a_command_source_but_no_command_is_a_config_error_before_deploying(release, platform, serve):
    before = platform.sha
    configure(release, serve(platform.app()), 'version_source = "command"\n')
    with pytest.raises(ConfigError) as err:  # the step runner turns it into a failed D4
        deploy(GateContext(release, "D4"))
    assert err.value.key == "environments.production.version_command" and "relnb.toml" in str(err.value)
    assert platform.sha == before  # refused before anything was deployed
