"""NetBox, a real app relnb did not write, released with relnb's staging gates A1–B9 and C1–C4.

NetBox 4.7.0 → 4.7.1 from PyPI: two real versions three migrations apart, gunicorn and the
django-rq worker on this machine's Postgres and Redis, backups in moto's S3 server. The
deployment repository is examples/netbox (its relnb.toml, flows and deploy files), committed as
a team would: pin 4.7.0 (tagged v4.7.0), then the bump to 4.7.1 on main, which CI deployed to
staging. The relnb side uses only the public API, as a release notebook would.
"""

from __future__ import annotations

import json
import secrets
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

import relnb
from relnb import Status

from ..conftest import unused_port
from ..core.helpers import Repo
from . import netbox_host as host

# first run on a machine: two pip installs of NetBox (~2 min each) and ~300 migrations (~7 min)
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(2400)]

TOKEN = "5f1e0c9a7b3d4e2f8a6c1b0d9e7f3a5c2b4d6e8f"  # a v1 NetBox token is 40 characters
FRONTEND = "https://dashboard.staging.example.org"
SIGNER = "Dana Reviewer <dana@example.org>"
STAGING_GATES = [g.id for g in relnb.GATES if g.section in "AB"] + ["C1", "C2", "C3", "C4"]


def _database(admin_url: str, name: str, template: str | None = None) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    return make_conninfo(**params) if "host=/" in admin_url else (
        f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}"
        f":{params.get('port', '5432')}/{name}"
    )


def _drop(admin_url: str, *names: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'drop database if exists "{name}" with (force)')


def _has_ltree(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create extension if not exists ltree")
    except psycopg.Error as exc:
        return str(exc).splitlines()[0]
    return None


def _deployment_repo(root: Path, spec_previous: Path, spec_release: Path) -> tuple[Repo, str]:
    """examples/netbox as its team's repository: the 4.7.0 pin, tagged, then the bump on main."""
    shutil.copytree(
        host.EXAMPLE, root,
        ignore=shutil.ignore_patterns(".venv", "releases", "production.env", "__pycache__", "notebooks"),
    )
    repo = Repo(root)
    changelog = (root / "CHANGELOG.md").read_text()
    assert f"## {host.RELEASE}" in changelog and (root / "requirements.txt").read_text().strip() == f"netbox=={host.RELEASE}"
    files = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}
    files.update({
        "requirements.txt": f"netbox=={host.PREVIOUS}\n",
        "openapi.json": spec_previous.read_text(),
        "CHANGELOG.md": "# Changelog\n\n" + changelog.split(f"## {host.PREVIOUS}", 1)[0].split("\n\n", 1)[0] + "\n"
        + f"## {host.PREVIOUS}" + changelog.split(f"## {host.PREVIOUS}", 1)[1],
    })
    repo.commit(files, f"Deploy NetBox {host.PREVIOUS}", tag=f"v{host.PREVIOUS}", executable=("deploy/upgrade.sh",))
    sha = repo.commit(
        {"requirements.txt": f"netbox=={host.RELEASE}\n", "openapi.json": spec_release.read_text(), "CHANGELOG.md": changelog},
        f"Bump NetBox to {host.RELEASE}",
    )
    return repo, sha


def _configure(root: Path, staging_url: str, s3_url: str) -> None:
    """The example's relnb.toml with this run's ports and a soak short enough for a test."""
    text = (root / "relnb.toml").read_text()
    for old, new in [
        ("http://127.0.0.1:8101", staging_url),
        ("http://127.0.0.1:8102", s3_url),
        ('soak = "2h"', 'soak = "20s"'),
        ('interval = "15s"', 'interval = "2s"'),
        # one gunicorn thread pool on a shared two-core machine: the rule is under test, not NetBox's speed
        ("latency_p95_max = 1.0", "latency_p95_max = 3.0"),
    ]:
        assert old in text, f"examples/netbox/relnb.toml no longer has {old!r}"
        text = text.replace(old, new)
    (root / "relnb.toml").write_text(text)


def test_netbox_release_passes_the_staging_gates_on_the_real_app(
    pg_admin_url: str, redis_url: str, aws: str, s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = host.python312()
    if python is None:
        pytest.skip("NetBox 4.7 needs Python >= 3.12: none on PATH (python3.12) or under ~/.pyenv")
    run_id = uuid.uuid4().hex[:8]
    staging_db, prod_db = f"relnb_netbox_staging_{run_id}", f"relnb_netbox_prod_{run_id}"
    scratch_db = f"relnb_netbox_scratch_{run_id}"
    staging_url = _database(pg_admin_url, staging_db)
    services = None
    try:
        if (why := _has_ltree(staging_url)) is not None:
            pytest.skip(f"NetBox needs PostgreSQL's ltree extension, which {pg_admin_url.split('@')[-1]} lacks: {why}")
        root = tmp_path / "netbox-deploy"
        secret_key, pepper = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        shutil.copytree(host.EXAMPLE / "conf", tmp_path / "conf-root" / "conf")
        env = host.netbox_env(tmp_path / "conf-root", staging_url, redis_url, secret_key, pepper, FRONTEND)

        # the staging host before the release: NetBox 4.7.0's schema, and both versions' schemas
        with ThreadPoolExecutor(1) as pool:
            release_venv = pool.submit(host.netbox_venv, python, host.RELEASE)
            previous = host.netbox_venv(python, host.PREVIOUS)
            how = host.migrated_database(previous, host.PREVIOUS, env)
            specs = {v: host.cache_dir() / f"openapi-{v}.json" for v in (host.PREVIOUS, host.RELEASE)}
            if not specs[host.PREVIOUS].exists():
                host.openapi_json(previous, env, specs[host.PREVIOUS])
            release = release_venv.result()
        if not specs[host.RELEASE].exists():
            host.openapi_json(release, env, specs[host.RELEASE])
        prod_url = _database(pg_admin_url, prod_db, template=staging_db)

        _, sha = _deployment_repo(root, specs[host.PREVIOUS], specs[host.RELEASE])
        (root / ".venv").symlink_to(release)  # the release's virtualenv: its migrations are the ones released
        (root / "production.env").write_text("".join(f"{k}={v}\n" for k, v in {
            "NETBOX_DATABASE_URL": prod_url, "NETBOX_REDIS_URL": redis_url, "NETBOX_CACHE_REDIS_URL": redis_url,
            "NETBOX_SECRET_KEY": secret_key, "NETBOX_API_TOKEN_PEPPER": pepper,
            "NETBOX_ALLOWED_HOSTS": "netbox.example.org", "NETBOX_CORS_ORIGINS": "https://dashboard.example.org",
        }.items()))

        # CI deployed main (the 4.7.1 pin) to staging; the schema is still 4.7.0's until B2
        env = {**env, "NETBOX_ROOT": str(root)}
        port = unused_port()
        logs = tmp_path / "logs"
        logs.mkdir()
        host.create_api_user(release, env, TOKEN)
        services = host.Services(release, env, port, logs)
        services.start(TOKEN)
        _configure(root, services.url, aws)
        source_dir = tmp_path / "datasource"
        source_dir.mkdir()
        (source_dir / "README.txt").write_text("synced by the worker_sync smoke flow\n")

        for key in ("NETBOX_ROOT", "NETBOX_DATABASE_URL", "NETBOX_REDIS_URL", "NETBOX_CACHE_REDIS_URL",
                    "NETBOX_SECRET_KEY", "NETBOX_API_TOKEN_PEPPER", "NETBOX_CORS_ORIGINS"):
            monkeypatch.setenv(key, env[key])
        monkeypatch.setenv("NETBOX_STAGING_TOKEN", TOKEN)
        monkeypatch.setenv("NETBOX_SMOKE_SOURCE_DIR", str(source_dir))
        monkeypatch.setenv("NETBOX_PROD_DATABASE_URL", prod_url)
        monkeypatch.setenv("NETBOX_RESTORE_TEST_DATABASE_URL", _database(pg_admin_url, scratch_db))
        monkeypatch.setenv("BACKUP_AWS_ACCESS_KEY_ID", "testing-access-key")
        monkeypatch.setenv("BACKUP_AWS_SECRET_ACCESS_KEY", "testing-secret-key")
        host.nightly_backup(prod_url, s3, "netbox-backups", f"nightly/{datetime.now(UTC):%Y-%m-%d}.dump")

        r = relnb.Release.create(host.RELEASE, root=root)
        try:
            results = _release_staging(r, source_dir)
            # the next nightly, of a database at 4.7.1 (staging after B2): its triggers restore
            host.nightly_backup(staging_url, s3, "netbox-backups", f"nightly/{datetime.now(UTC):%Y-%m-%d}T23.dump")
            after = r.check("C2", rerun=True, reason="the first 4.7.1 nightly is there")
        finally:
            r.close()
    finally:
        if services is not None:
            services.stop()
        _drop(pg_admin_url, staging_db, prod_db, scratch_db)

    report = {g: f"{res.status}: {res.summary}" for g, res in results.items()}
    assert how in ("migrated", f"restored db-{host.PREVIOUS}.dump")
    # C3 replays Django's SQL on a shadow copy of production's schema: this example names no shadow
    # database, so C3 says which key to set (one line), never "passed"
    assert results["C3"].status is Status.INCONCLUSIVE and "shadow_database_url_env" in results["C3"].summary
    assert "\n" not in results["C3"].summary
    assert results["B3"].status is Status.SKIPPED
    # production's nightly is a 4.7.0 dump: the restore test finds NetBox #23130, an approver waives
    assert results["C2 check"].status is Status.FAILED, report["C2"]
    assert "operator does not exist: public.ltree = public.ltree" in results["C2 check"].summary
    assert results["C2"].status is Status.WAIVED
    assert after.status is Status.PASSED and after.summary.endswith("restore test passed"), after.summary
    for gate in STAGING_GATES:
        if gate not in ("B3", "C3"):
            assert results[gate].status.ok_for_promotion, "\n".join(report.values())
    # the release's three migrations: listed for A3's reviewer, applied by B2, proven by the ledger
    a3 = json.dumps(results["A3"].evidence)
    assert all(m in a3 for m in host.MIGRATIONS_ADDED), results["A3"].evidence
    b2 = results["B2"].evidence
    assert b2["ledger"]["ledger"]["pending"] == [] and all(m in json.dumps(b2["migrate"]) for m in host.MIGRATIONS_ADDED)
    assert results["B1"].evidence["deployed"] == host.RELEASE
    assert [f["flow"] for f in results["B5"].evidence["flows"]] == ["status", "site_lifecycle", "worker_sync"]
    journal = (root / "releases" / host.RELEASE / "journal.jsonl").read_text()
    for canary in (TOKEN, TOKEN[:12], secret_key, pepper):
        assert canary not in journal
    assert sha in journal


def _release_staging(r: relnb.Release, sync_dir: Path) -> dict[str, relnb.GateResult]:
    """What the release lead's notebook does for A–C: each check, the sign-offs, B2 confirmed."""
    from . import netbox_host as host

    out: dict[str, relnb.GateResult] = {}
    notes = {
        "A2": "openapi.json regenerated from 4.7.1 with `netbox spectacular`; the diff is the release's",
        "A3": "NetBox 4.7.1's three ltree trigger migrations: read in the release notes",
        "A4": "upstream release, no API removal in the schema diff",
        "A5": "no feature flag: a patch release",
        "A6": "runbooks in the wiki, reviewed",
    }
    for gate in STAGING_GATES:
        spec = relnb.get_gate(gate)
        if gate == "B3":
            out[gate] = r.skip(gate, reason="NetBox is installed from PyPI: there is no image to build")
        elif spec.kind is relnb.Kind.ACTION:
            out[gate] = r.act(gate, confirmed=True)
        elif gate in ("B6", "B7", "B8", "C1"):
            with host.traffic(r.config.env("staging")["base_url"], TOKEN, sync_dir=sync_dir):
                out[gate] = r.check(gate)
        elif gate == "C2":
            out["C2 check"] = out[gate] = r.check(gate)
            if out[gate].status is Status.FAILED:
                out[gate] = r.waive(gate, approver=SIGNER, reason=(
                    "4.7.0 dumps cannot recreate the ltree cascade triggers (NetBox #23130); a restore "
                    "then `netbox migrate` to 4.7.1 reinstalls them, and the first 4.7.1 nightly is restore-tested"
                ))
        else:
            out[gate] = r.check(gate)
        if gate in notes and out[gate].status is not Status.FAILED:
            out[gate] = r.sign_off(gate, by=SIGNER, note=notes[gate])
    return out
