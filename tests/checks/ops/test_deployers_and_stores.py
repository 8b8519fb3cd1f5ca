"""Deploy providers and backup stores as registries: a team's own provider deploys D4 and the
rollback's redeploy, a team's own store answers C2, D2 and the restore; relnb's S3 store does the
same against moto's S3 and the real Postgres through the gates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import relnb
from relnb import Outcome, Release, Status
from relnb.actions.backupstores import BACKUP_STORES, NotConfigured, with_store
from relnb.actions.deployers import DEPLOY_PROVIDERS, DeployTarget
from relnb.actions.gates import deploy, rollback_steps, snapshot
from relnb.checks.ops.gates import backup_available
from relnb.gatecontext import GateContext

from ...core.helpers import commit, git, make_project


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Release]:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    root = make_project(tmp_path / "app")
    git(root, "tag", "v1.0.0")
    commit(root, {}, "feat: 1.1.0")
    r = Release.create("1.1.0", root=root)
    yield r
    r.close()


def configure(r: Release, toml: str) -> None:
    if 'base_url = ' not in toml:  # an environment needs one; these tests do not reach it
        toml = '[environments.production]\nbase_url = "http://127.0.0.1:9"\n' + toml.replace("[environments.production]\n", "")
    (r.config.root / "relnb.toml").write_text(toml)
    r.config = relnb.load_config(r.config.root / "relnb.toml")


class Platform:
    """A stand-in deployment platform: what the app's /version serves is what was deployed last."""

    def __init__(self, sha: str) -> None:
        self.sha = sha
        self.targets: list[DeployTarget] = []

    def provider(self, ctx: GateContext, target: DeployTarget) -> Outcome:
        self.targets.append(target)
        self.sha = target.sha
        return Outcome.passed(f"rolled out {target.version}", pods=3)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/version", lambda request: JSONResponse({"sha": self.sha}))])


@pytest.fixture
def register() -> Iterator[Any]:
    """`register(registry, name, value)` as the project's code would; taken back out afterwards."""
    made: list[tuple[Any, str]] = []

    def add(registry: Any, name: str, value: Any) -> None:
        registry.register(name, value, origin="code")
        made.append((registry, name))

    yield add
    for registry, name in made:
        registry.unregister(name)


def deploy_with(release: Release, provider: str, version_url: str, timeout: str) -> Outcome:
    """D4 with `provider`, verified against `version_url`/version."""
    configure(
        release,
        f'[environments.production]\nbase_url = "{version_url}"\nversion_path = "/version"\n'
        f'version_field = "sha"\nversion_timeout = "{timeout}"\ndeploy_provider = "{provider}"\n',
    )
    return deploy(GateContext(release, "D4"))


def test_relnb_registers_its_own_like_a_plugin() -> None:
    assert {"command", "coolify"} <= set(DEPLOY_PROVIDERS.names())
    assert {"s3", "rds"} <= set(BACKUP_STORES.names())
    assert DEPLOY_PROVIDERS.origin("command") == BACKUP_STORES.origin("s3") == "relnb"


def test_a_teams_provider_deploys_d4_and_the_rollback(release, serve, register) -> None:
    prev_sha = git(release.config.root, "rev-parse", "v1.0.0")
    platform = Platform(prev_sha)
    register(DEPLOY_PROVIDERS, "nomad-test", platform.provider)
    out = deploy_with(release, "nomad-test", serve(platform.app()), "5s")
    assert out.status is Status.PASSED, out.summary
    assert platform.targets == [DeployTarget("production", "1.1.0", release.info["git_sha"])]
    assert out.evidence["deploy"]["provider"] == "nomad-test" and out.evidence["deploy"]["pods"] == 3
    assert platform.sha == release.info["git_sha"]

    name, redeploy = rollback_steps(GateContext(release, "E3"))[0]
    assert name == "rollback-redeploy"
    back = redeploy()
    assert back.status is Status.PASSED, back.summary
    assert platform.targets[-1] == DeployTarget("production", "1.0.0", prev_sha, rollback=True)
    assert platform.sha == prev_sha


def test_a_provider_that_says_done_but_did_not_deploy_fails_at_version(release, serve, register) -> None:
    platform = Platform("0" * 40)
    register(DEPLOY_PROVIDERS, "liar-test", lambda ctx, t: Outcome.passed("done"))
    out = deploy_with(release, "liar-test", serve(platform.app()), "1s")
    assert out.status is Status.FAILED and "deploy reported passed, but" in out.summary


def test_unknown_broken_and_misshapen_providers_never_pass(release, register) -> None:
    configure(release, '[environments.production]\ndeploy_provider = "kubernetes"\n')
    out = deploy(GateContext(release, "D4"))
    assert out.status is Status.FAILED  # and at once: nothing was deployed, no /version to wait for
    assert "unknown deploy provider 'kubernetes'" in out.summary and "command" in out.summary

    def broken(ctx: GateContext, target: DeployTarget) -> Outcome:
        raise RuntimeError("API down")

    register(DEPLOY_PROVIDERS, "broken-test", broken)
    register(DEPLOY_PROVIDERS, "shape-test", lambda ctx, t: "ok")
    configure(release, '[environments.production]\ndeploy_provider = "broken-test"\n')
    out = deploy(GateContext(release, "D4"))
    assert out.status is Status.FAILED and "raised RuntimeError: API down" in out.summary
    configure(release, '[environments.production]\ndeploy_provider = "shape-test"\n')
    out = deploy(GateContext(release, "D4"))
    assert out.status is Status.FAILED and "returned str, not an Outcome" in out.summary


def test_coolify_cannot_roll_back_without_a_command(release) -> None:
    configure(
        release,
        '[environments.production]\ndeploy_provider = "coolify"\n'
        '[environments.production.coolify]\napi_url = "http://127.0.0.1:9"\ntoken_env = "COOLIFY_TOKEN"\n',
    )
    _name, redeploy = rollback_steps(GateContext(release, "E3"))[0]
    out = redeploy()
    assert out.status is Status.FAILED
    assert "environments.production.commands.rollback" in out.summary


class FolderStore:
    """A team's store: the database's rows as JSON files in a folder (their NAS, say)."""

    def __init__(self, ctx: GateContext, b: Mapping[str, Any]) -> None:
        if not b["prefix"]:
            raise NotConfigured("prefix", "name the backup folder")
        self.folder = Path(b["prefix"])
        self.db = Path(b["bucket"])  # the "database": a JSON file

    def newest(self, *, max_age_hours: float) -> Outcome:
        dumps = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        if not dumps:
            return Outcome.failed(f"no backup in {self.folder}")
        age_h = (time.time() - dumps[-1].stat().st_mtime) / 3600
        if age_h > max_age_hours:
            return Outcome.failed(f"newest backup {dumps[-1].name} is {age_h:.1f} h old")
        return Outcome.passed(f"newest backup {dumps[-1].name}", file=dumps[-1].name)

    def snapshot(self, *, label: str) -> Outcome:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{label}.json"
        path.write_text(self.db.read_text())
        return Outcome.passed(f"copied to {path.name}", file=path.name)

    def restore(self, evidence: Mapping[str, Any]) -> Outcome:
        self.db.write_text((self.folder / evidence["file"]).read_text())
        return Outcome.passed(f"restored {evidence['file']}")


def test_a_teams_backup_store_answers_c2_d2_and_the_restore(release, tmp_path, register) -> None:
    register(BACKUP_STORES, "folder-test", FolderStore)
    db = tmp_path / "db.json"
    db.write_text(json.dumps({"accounts": 250}))
    configure(release, '[environments.production.backups]\nkind = "folder-test"\n')
    c2 = backup_available(GateContext(release, "C2"))
    assert c2.status is Status.INCONCLUSIVE
    assert "environments.production.backups.prefix" in c2.summary and "name the backup folder" in c2.summary

    configure(
        release,
        f'[environments.production.backups]\nkind = "folder-test"\nprefix = "{tmp_path / "nas"}"\n'
        f'bucket = "{db}"\nmax_age = "1h"\n',
    )
    assert backup_available(GateContext(release, "C2")).status is Status.FAILED  # nothing there yet
    d2 = snapshot(GateContext(release, "D2"))
    assert d2.status is Status.PASSED and d2.evidence["file"] == "release-1.1.0.json"
    c2 = backup_available(GateContext(release, "C2"))
    assert c2.status is Status.PASSED, c2.summary
    db.write_text(json.dumps({"accounts": 0}))
    restored = with_store(GateContext(release, "E3"), lambda store: store.restore(d2.evidence))
    assert restored.status is Status.PASSED
    assert json.loads(db.read_text()) == {"accounts": 250}


def test_unknown_store_is_inconclusive_and_d2_without_one_uses_the_command(release) -> None:
    configure(release, '[environments.production.backups]\nkind = "tape"\n')
    c2 = backup_available(GateContext(release, "C2"))
    assert c2.status is Status.INCONCLUSIVE and "unknown backup store 'tape'" in c2.summary
    configure(release, "[environments.production.commands]\nsnapshot = \"echo snapshot taken\"\n")
    d2 = snapshot(GateContext(release, "D2"))  # s3 without a bucket: the team's command
    assert d2.status is Status.PASSED and "snapshot taken" in json.dumps(d2.evidence)


def test_s3_store_through_the_gates_with_a_restore_test(release, pg_url, aws, s3, pg_admin_url, monkeypatch) -> None:
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("create table accounts (id serial primary key, email text)")
        c.execute("insert into accounts (email) select 'u' || g || '@x.test' from generate_series(1, 120) g")
    scratch = pg_url.rsplit("/", 1)[0] + "/" + "relnb_scratch_" + str(int(time.time() * 1000))
    with psycopg.connect(pg_admin_url, autocommit=True) as c:
        c.execute(f'create database "{scratch.rsplit("/", 1)[1]}"')
    s3.create_bucket(Bucket="backups")
    monkeypatch.setenv("PROD_DB_URL", pg_url)
    monkeypatch.setenv("SCRATCH_DB_URL", scratch)
    configure(
        release,
        '[environments.production]\ndatabase_url_env = "PROD_DB_URL"\n'
        f'[environments.production.backups]\nbucket = "backups"\nprefix = "prod"\nendpoint_url = "{aws}"\n'
        'restore_test = true\n',
    )
    c2 = backup_available(GateContext(release, "C2"))
    assert c2.status is Status.INCONCLUSIVE and "restore_test_database_url_env" in c2.summary
    (release.config.root / "relnb.toml").write_text(
        (release.config.root / "relnb.toml").read_text() + 'restore_test_database_url_env = "SCRATCH_DB_URL"\n'
    )
    release.config = relnb.load_config(release.config.root / "relnb.toml")
    d2 = snapshot(GateContext(release, "D2"))
    assert d2.status is Status.PASSED, d2.summary
    assert d2.evidence["key"].startswith("prod/relnb-snapshots/release-1.1.0")
    c2 = backup_available(GateContext(release, "C2"))
    assert c2.status is Status.PASSED and "restore test passed" in c2.summary, c2.summary
    with psycopg.connect(scratch) as c:
        assert c.execute("select count(*) from accounts").fetchone()[0] == 120
    assert pg_url not in json.dumps(c2.evidence) and scratch not in json.dumps(c2.evidence)
