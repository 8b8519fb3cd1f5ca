"""Apache Superset, a real app with Alembic migrations and a Celery worker on RabbitMQ, released
with relnb through every section, A to F.

Superset 6.0.0 → 6.1.0 from PyPI: two real versions five Alembic revisions apart. Staging and
production are two hosts of this machine (own databases, own Celery queues on the machine's
RabbitMQ, own gunicorn and worker); production runs 6.0.0 until section D migrates and deploys
it, backups live in moto's S3 server. The deployment repository is examples/superset, committed
as a team would: pin 6.0.0 (tagged v6.0.0), then the bump to 6.1.0 on main, which CI deployed to
staging. The relnb side uses only the public API, in the notebook's order (A, B, C, E, D, F).

The slow preparation (two pip installs, a migrated template database) starts in the background
when the session begins (tests/examples/conftest.py); this test waits for it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tomllib
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

import relnb
from relnb import Status

from ..conftest import unused_port
from ..core.helpers import Repo
from . import superset_host as host

# cold: two pip installs of Superset (~6 min each) and its migrations + roles (~2 min), in the
# background from the start of the session; with them cached the test takes ~3 min
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adopting.md"

FRONTEND = "https://dashboard.staging.example.org"
SIGNER = "Dana Reviewer <dana@example.org>"
NOTES = {
    "A2": "Superset's API is upstream's: /swagger/v1 of 6.1.0 and its release notes read",
    "A3": "Superset 6.1.0's five Alembic revisions: read in UPDATING.md and the revision files",
    "A4": "additive columns and tables; ab_user.username widened to 128 characters; 6.0.0 runs on 6.1.0's schema",
    "A5": "no feature flag: new features stay behind Superset's own feature flags",
    "A6": "runbooks in the wiki, reviewed",
    "C5": "no Prometheus server yet: relnb scrapes /metrics itself in B8, C1 and D7",
}


def _rabbitmq() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as exc:
        return str(exc)
    return None


def _deployment_repo(root: Path) -> tuple[Repo, str]:
    """examples/superset as its team's repository: the 6.0.0 pin, tagged, then the bump on main."""
    shutil.copytree(
        host.EXAMPLE, root,
        ignore=shutil.ignore_patterns(".venv", "releases", "production.env", "__pycache__", "notebooks"),
    )
    repo = Repo(root)
    changelog = (root / "CHANGELOG.md").read_text()
    requirements = (root / "requirements.txt").read_text()
    assert f"## {host.RELEASE}" in changelog and f"apache-superset=={host.RELEASE}\n" in requirements
    files = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}
    files.update({
        "requirements.txt": requirements.replace(f"=={host.RELEASE}", f"=={host.PREVIOUS}"),
        "CHANGELOG.md": "# Changelog\n\n" + f"## {host.PREVIOUS}" + changelog.split(f"## {host.PREVIOUS}", 1)[1],
    })
    repo.commit(files, f"Deploy Superset {host.PREVIOUS}", tag=f"v{host.PREVIOUS}", executable=("deploy/upgrade.sh",))
    sha = repo.commit({"requirements.txt": requirements, "CHANGELOG.md": changelog}, f"Bump Superset to {host.RELEASE}")
    return repo, sha


def _configure(root: Path, staging_url: str, production_url: str, s3_url: str, queues: tuple[str, str]) -> None:
    """The example's relnb.toml with this run's ports and queues, and windows short enough for a test."""
    text = (root / "relnb.toml").read_text()
    for old, new in [
        ("http://127.0.0.1:8201", staging_url),
        ("https://superset.example.org", production_url),
        ("http://127.0.0.1:8202", s3_url),
        ('soak = "2h"', 'soak = "20s"'),
        ('window = "45m"', 'window = "20s"'),
        ('interval = "15s"', 'interval = "2s"'),
        # one gunicorn process on a shared two-core machine: the rule is under test, not Superset's speed
        ("latency_p95_max = 1.0", "latency_p95_max = 3.0"),
    ]:
        assert old in text, f"examples/superset/relnb.toml no longer has {old!r}"
        text = text.replace(old, new)
    # the two environments share this machine's RabbitMQ: each gets its own queue (and dead letters)
    for name in queues:
        assert 'names = ["superset"]' in text
        text = text.replace('names = ["superset"]', f'names = ["{name}"]', 1)
    (root / "relnb.toml").write_text(text)


def test_the_guide_shows_only_settings_the_superset_example_has() -> None:
    """docs/adopting.md's Superset excerpts (fenced `toml superset`; the unmarked ones are
    NetBox's, checked by tests/core/test_adopting.py) are settings examples/superset really has,
    and the files it names exist."""
    import re

    def settings(text: str) -> set[str]:
        return {line.split("#")[0].strip() for line in text.splitlines() if "=" in line.split("#")[0]}

    guide = GUIDE.read_text()
    shown = [s for block in re.findall(r"```toml superset\n(.*?)```", guide, re.S) for s in settings(block)]
    assert len(shown) >= 8
    assert [s for s in shown if s not in settings((host.EXAMPLE / "relnb.toml").read_text())] == []
    config = relnb.load_config(host.EXAMPLE / "relnb.toml")
    for path in [*config.project["deploy_artifacts"], *config.project["env_templates"], *config.data["smoke"]["files"],
                 "conf/superset_config.py", "requirements.txt", "sign-offs.json"]:
        assert (host.EXAMPLE / path).is_file(), path
    assert sorted(relnb.load_sign_offs_file(host.EXAMPLE / "sign-offs.json")) == sorted(NOTES)
    flows = tomllib.loads((host.EXAMPLE / "relnb-flows.toml").read_text())["flows"]
    assert flows.keys() >= {*config.data["smoke"]["staging"], *config.data["smoke"]["production"]}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(2700)
def test_superset_release_goes_through_every_section(
    superset_prepared, pg_admin_url: str, redis_url: str, aws: str, s3, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if (why := _rabbitmq()) is not None:
        pytest.skip(f"Superset's Celery worker needs RabbitMQ on 127.0.0.1:5672: {why}")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("the Superset hosts need PostgreSQL's client tools (pg_dump, pg_restore) on PATH")
    prep = superset_prepared()
    previous, release, dump, password = prep["previous"], prep["release"], prep["dump"], prep["password"]
    run_id = uuid.uuid4().hex[:8]
    names = {e: f"relnb_superset_{e}_{run_id}" for e in ("staging", "prod", "scratch")}
    queues = (f"superset-{run_id}-staging", f"superset-{run_id}-prod")
    # RabbitMQ's default account, which answers on loopback only; a URL without credentials means
    # it to kombu and to relnb alike (a production broker URL carries a real password)
    broker = "amqp://127.0.0.1:5672//"
    urls = {e: host.create_database(pg_admin_url, n) for e, n in names.items()}
    envs: list[host.Environment] = []
    try:
        for e in ("staging", "prod"):
            host.restore(dump, urls[e])
        root = tmp_path / "superset-deploy"
        _, sha = _deployment_repo(root)
        (root / ".venv").symlink_to(release)  # the release's virtualenv: its migrations are the ones released
        secret_key, prod_secret_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        staging_env = host.superset_env(root, urls["staging"], broker, redis_url, queues[0], secret_key, FRONTEND)
        prod_env = host.superset_env(root, urls["prod"], broker, redis_url, queues[1], prod_secret_key,
                                     "https://dashboard.example.org")
        (root / "production.env").write_text("".join(f"{k}={prod_env[k]}\n" for k in (
            "SUPERSET_DATABASE_URL", "SUPERSET_BROKER_URL", "SUPERSET_CELERY_QUEUE", "SUPERSET_REDIS_URL",
            "SUPERSET_SECRET_KEY", "SUPERSET_CORS_ORIGINS",
        )))

        # CI deployed main (the 6.1.0 pin) to staging, its schema still 6.0.0's until B2;
        # production runs 6.0.0
        staging = host.Environment("staging", tmp_path / "hosts", staging_env, unused_port())
        production = host.Environment("production", tmp_path / "hosts", prod_env, unused_port())
        envs += [staging, production]
        staging.start(release, host.RELEASE)
        production.start(previous, host.PREVIOUS)
        _configure(root, staging.url, production.url, aws, queues)
        tokens = {"staging": host.login(staging.url, password), "production": host.login(production.url, password)}
        smoke_db = {
            "staging": host.register_database(staging.url, tokens["staging"], "relnb-smoke", urls["staging"]),
            "production": host.register_database(production.url, tokens["production"], "relnb-smoke", urls["prod"]),
        }

        for key in ("SUPERSET_CONFIG_PATH", "SUPERSET_DATABASE_URL", "SUPERSET_BROKER_URL", "SUPERSET_CELERY_QUEUE",
                    "SUPERSET_REDIS_URL", "SUPERSET_SECRET_KEY", "SUPERSET_CORS_ORIGINS"):
            monkeypatch.setenv(key, staging_env[key])
        monkeypatch.setenv("SUPERSET_STAGING_TOKEN", tokens["staging"])
        monkeypatch.setenv("SUPERSET_PROD_TOKEN", tokens["production"])
        monkeypatch.setenv("SUPERSET_PROD_DATABASE_URL", urls["prod"])
        monkeypatch.setenv("SUPERSET_PROD_BROKER_URL", broker)
        monkeypatch.setenv("SUPERSET_SHADOW_DATABASE_URL", pg_admin_url)
        monkeypatch.setenv("SUPERSET_RESTORE_TEST_DATABASE_URL", urls["scratch"])
        monkeypatch.setenv("BACKUP_AWS_ACCESS_KEY_ID", "testing-access-key")
        monkeypatch.setenv("BACKUP_AWS_SECRET_ACCESS_KEY", "testing-secret-key")
        # the production host: deploy/upgrade.sh reads its env file and restarts its services
        monkeypatch.setenv("SUPERSET_ENV_FILE", str(root / "production.env"))
        monkeypatch.setenv("SUPERSET_RESTART", production.restart_command(root / ".venv"))
        # C3 runs `superset db upgrade --sql` where alembic.ini is: the release's virtualenv first on PATH
        monkeypatch.setenv("PATH", f"{release}/bin:{os.environ['PATH']}")
        host.nightly_backup(urls["prod"], s3, "superset-backups", f"nightly/{datetime.now(UTC):%Y-%m-%d}.dump")

        r = relnb.Release.create(host.RELEASE, root=root)
        try:
            results = _release(r, staging, production, tokens, smoke_db)
        finally:
            r.close()
        journal = (root / "releases" / host.RELEASE / "journal.jsonl").read_text()
        tagged = subprocess.run(["git", "-C", str(root), "rev-list", "-n", "1", f"v{host.RELEASE}"],
                                capture_output=True, text=True, check=False).stdout.strip()
    finally:
        for env in envs:
            env.stop()
        host.drop_databases(pg_admin_url, *names.values())
        host.delete_queues(broker, list(queues))

    report = "\n".join(f"{g}: {res.status}: {res.summary}" for g, res in results.items())
    expected = _expected_statuses()
    got = {g: results[g].status for g in expected}
    assert got == expected, report
    assert tagged == sha  # F1 tagged the commit that was deployed
    # the release's five revisions: listed for A3's reviewer, applied by B2 and D3, proven by the ledger
    a3 = json.dumps(results["A3 check"].evidence)
    assert all(m in a3 for m in host.MIGRATIONS_ADDED), results["A3 check"].evidence
    for gate in ("B2", "D3"):
        assert results[gate].evidence["ledger"]["ledger"]["pending"] == [], results[gate].evidence
    assert results["B1"].evidence["deployed"] == host.RELEASE
    assert [f["flow"] for f in results["B5"].evidence["flows"]] == ["health", "api_lifecycle"]
    assert [f["flow"] for f in results["D5"].evidence["flows"]] == ["health", "api_lifecycle"]
    # C3 could not render Superset's revisions offline (they inspect the live schema): it captured the
    # SQL `superset db upgrade` sent on a scratch copy of production's schema and judged that
    c3 = results["C3 check"].evidence
    assert "cannot render" not in results["C3 check"].summary, results["C3 check"].summary
    assert "captured online" in c3["rendering"]["how"] and c3["rendering"]["not_seen"] == [], c3["rendering"]
    assert sorted(m["name"] for m in c3["migrations"]) == sorted(host.MIGRATIONS_ADDED), c3["migrations"]
    # E1 on evidence: requirements.txt as tagged v6.0.0, each pin looked up on PyPI and one file fetched
    assert results["E1"].summary.startswith("previous release v6.0.0: 6 pinned package(s) available on"), results["E1"].summary
    assert results["E1"].evidence["packages"]["apache-superset"]["version"] == host.PREVIOUS
    # the queue's name is a setting (secrets.public): D7's evidence names it, unredacted
    assert queues[1] in journal and "[redacted:SUPERSET_CELERY_QUEUE]" not in journal
    for canary in (tokens["staging"], tokens["production"], secret_key, prod_secret_key, password):
        assert canary not in journal
    assert sha in journal


def _expected_statuses() -> dict[str, Status]:
    P, S = Status.PASSED, Status.SKIPPED
    return {
        "A1": P, "A2": P, "A3": P, "A4": P, "A5": P, "A6": P,
        "B1": P, "B2": P, "B3": S, "B4": P, "B5": P, "B6": P, "B7": P, "B8": P, "B9": P,
        "C1": P, "C2": P, "C3": P, "C4": P, "C5": P,
        "E1": P, "E2": P, "E3": P,
        "D1": S, "D2": P, "D3": P, "D4": P, "D5": P, "D6": S, "D7": P,
        "F1": P, "F2": P, "F3": P,
    }


def _release(r: relnb.Release, staging: host.Environment, production: host.Environment,
             tokens: dict[str, str], smoke_db: dict[str, int]) -> dict[str, relnb.GateResult]:
    """What the release lead's notebook does, section by section in its order (A, B, C, E, D, F):
    each check, the sign-offs, skips with reasons, and every action confirmed."""
    out: dict[str, relnb.GateResult] = {}
    skips = {
        "B3": "Superset is installed from PyPI: there is no image to build",
        "D1": "Superset has no safe mode; 6.1.0's revisions add columns and tables that 6.0.0 ignores",
        "D6": "D5's declarative flows already run with the smoke user's token; no scripted smoke",
    }
    waivers: dict[str, str] = {}
    watched = {"B6": "staging", "B7": "staging", "B8": "staging", "C1": "staging", "D7": "production"}
    for section in ("A", "B", "C", "E", "D", "F"):
        for spec in (g for g in relnb.GATES if g.section == section):
            gate = spec.id
            if gate in skips:
                out[gate] = r.skip(gate, reason=skips[gate])
                continue
            if gate in watched:
                env = staging if watched[gate] == "staging" else production
                name = watched[gate]
                with host.traffic(env.url, tokens[name], smoke_db[name]):
                    out[gate] = r.check(gate)
            elif spec.kind is relnb.Kind.ACTION:
                out[gate] = r.act(gate, confirmed=True)
            else:
                out[gate] = r.check(gate)
            out[f"{gate} check"] = out[gate]
            if gate in NOTES and out[gate].status is Status.PENDING:
                out[gate] = r.sign_off(gate, by=SIGNER, note=NOTES[gate])
            elif gate in waivers and out[gate].status in (Status.FAILED, Status.INCONCLUSIVE):
                out[gate] = r.waive(gate, approver=SIGNER, reason=waivers[gate])
    return out
