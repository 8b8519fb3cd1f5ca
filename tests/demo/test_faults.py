"""Every demo fault, observed at its source (the thing the matching gate inspects), in one stack.

Also checks the isolation promise: with the tenant-scoped faults on, the scripted smoke flows on a
fresh workspace still pass on staging and on production after the deploy.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from relnb_demo import repo as rf
from relnb_demo.faults import FAULT_DEFAULT_ENV, Fault
from relnb_demo.stack import DemoStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL_FAULTS = list(FAULT_DEFAULT_ENV)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    workdir = Path(tmp_path_factory.mktemp("demo-faults"))
    with DemoStack(workdir, faults=ALL_FAULTS, with_prometheus=False, with_registry=False) as s:
        print(f"demo stack (all faults) startup: {s.startup_seconds} s")
        yield s


@pytest.fixture(scope="module")
def d(stack: DemoStack) -> dict:
    return stack.describe()


def wait_for(predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_fault_parsing() -> None:
    assert str(Fault.parse("dlq")) == "dlq@staging"
    assert str(Fault.parse("dlq@production")) == "dlq@production"
    assert str(Fault.parse("unsafe-migration")) == "unsafe-migration"
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.parse("meteor")
    with pytest.raises(ValueError, match="staging or production"):
        Fault.parse("dlq@qa")


def test_describe_lists_faults(d: dict) -> None:
    assert set(d["faults"]) == {
        "wrong-sha@staging",
        "stalled-worker@staging",
        "dlq@staging",
        "cors@staging",
        "redirect-uri@staging",
        "unsafe-migration",
        "missing-secret@production",
        "error-rate@production",
        "latency@production",
        "metrics-down@production",
    }


def test_wrong_sha_on_staging(d: dict) -> None:
    v = httpx.get(d["environments"]["staging"]["base_url"] + "/version").json()
    assert v["sha"] == d["previous_sha"] != d["head_sha"]


def test_cors_drops_staging_frontend(d: dict) -> None:
    st = d["environments"]["staging"]
    hdrs = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    dropped = httpx.options(
        st["base_url"] + "/me", headers={"Origin": st["frontends"][0]["origin"], **hdrs}
    )
    assert "access-control-allow-origin" not in dropped.headers
    kept = httpx.options(
        st["base_url"] + "/me", headers={"Origin": st["frontends"][1]["origin"], **hdrs}
    )
    assert kept.headers.get("access-control-allow-origin") == st["frontends"][1]["origin"]


def test_redirect_uri_unregistered_for_staging(d: dict) -> None:
    auth_ep = httpx.get(d["oidc"]["issuer"] + "/.well-known/openid-configuration").json()[
        "authorization_endpoint"
    ]
    params = {"client_id": "docflow-web", "response_type": "code", "scope": "openid"}
    st_uri = d["environments"]["staging"]["frontends"][0]["redirect_uri"]
    prod_uri = d["environments"]["production"]["frontends"][0]["redirect_uri"]
    r = httpx.get(auth_ep, params={**params, "redirect_uri": st_uri})
    assert r.status_code == 400 and "Invalid parameter: redirect_uri" in r.text
    assert httpx.get(auth_ep, params={**params, "redirect_uri": prod_uri}).status_code == 200


def test_missing_secret_in_production_only(d: dict, stack: DemoStack) -> None:
    prod, st = d["environments"]["production"], d["environments"]["staging"]
    assert "secret_key" not in prod["s3"] and "secret_key" in st["s3"]
    assert prod["env_var_names"]["s3_secret_key"] not in d["env_vars"]
    assert st["env_var_names"]["s3_secret_key"] in d["env_vars"]
    assert prod["env_var_names"]["s3_secret_key"] in prod["required_secrets"]
    assert "S3_SECRET_ACCESS_KEY=" not in Path(prod["dotenv"]).read_text()
    assert "S3_SECRET_ACCESS_KEY=" in Path(st["dotenv"]).read_text()
    assert oct(Path(prod["dotenv"]).stat().st_mode & 0o777) == "0o600"


def test_unsafe_migration_rewrites_the_big_table(d: dict) -> None:
    mig = Path(d["repo"]) / "prisma" / "migrations" / rf.MIGRATION_NEW / "migration.sql"
    sql = mig.read_text()
    assert 'ALTER COLUMN "id" SET DATA TYPE BIGINT' in sql
    url = d["environments"]["production"]["database_url"]
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from documents").fetchone()[0] >= 50_000
        before = conn.execute("select pg_relation_filenode('documents')").fetchone()[0]
        conn.execute('ALTER TABLE "documents" ALTER COLUMN "id" SET DATA TYPE BIGINT')
        modes = {
            r[0]
            for r in conn.execute(
                "select l.mode from pg_locks l join pg_class c on c.oid = l.relation"
                " where l.pid = pg_backend_pid() and c.relname = 'documents'"
            )
        }
        after = conn.execute("select pg_relation_filenode('documents')").fetchone()[0]
        conn.rollback()
    assert "AccessExclusiveLock" in modes and before != after


def test_dlq_grows_on_staging(d: dict) -> None:
    st = d["environments"]["staging"]
    client = redis.Redis.from_url(st["redis_url"], decode_responses=True)
    key = f"{st['queue']['prefix']}:extraction:failed"
    first = wait_for(lambda: client.zcard(key), 40)
    assert first >= 1, "no job reached the DLQ"
    job_id = client.zrange(key, 0, 0)[0]
    job = client.hgetall(f"{st['queue']['prefix']}:extraction:{job_id}")
    assert job["atm"] == "2" and "extraction failed" in job["failedReason"]
    assert wait_for(lambda: client.zcard(key) > first, 40), "DLQ did not keep growing"
    text = httpx.get(st["base_url"] + "/metrics").text
    assert metric(text, "queue_dlq_depth", queue="extraction") >= 2
    assert metric(text, "worker_jobs_failed_total", queue="extraction") >= 4


def test_stalled_worker_holds_a_job_without_lock(d: dict) -> None:
    st = d["environments"]["staging"]
    client = redis.Redis.from_url(st["redis_url"], decode_responses=True)
    prefix = f"{st['queue']['prefix']}:extraction"

    def lockless():
        return [
            j
            for j in client.lrange(f"{prefix}:active", 0, -1)
            if not client.exists(f"{prefix}:{j}:lock")
        ]

    assert wait_for(lockless, 75, 1), "no active job lost its lock"


def test_smoke_passes_on_staging_despite_tenant_faults(d: dict) -> None:
    st = d["environments"]["staging"]
    env = {**os.environ, st["env_var_names"]["owner_token"]: st["owner_token"]}
    out = subprocess.run(
        st["commands"]["smoke"], shell=True, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_error_rate_and_latency_switch_on_with_the_production_deploy(
    stack: DemoStack, d: dict
) -> None:
    prod = d["environments"]["production"]
    client = redis.Redis.from_url(prod["redis_url"], decode_responses=True)
    assert client.hgetall("docflow:production:faults") == {}
    text = httpx.get(prod["base_url"] + "/metrics").text
    assert metric(text, "http_requests_total", status="500") == 0

    env = {**os.environ, prod["env_var_names"]["database_url"]: prod["database_url"]}
    assert (
        subprocess.run(
            prod["commands"]["migrate"], shell=True, env=env, capture_output=True, timeout=300
        ).returncode
        == 0
    )
    stack.deploy("production", "1.1.0", d["head_sha"])
    assert httpx.get(prod["base_url"] + "/version").json()["version"] == "1.1.0"

    def degraded():
        t = httpx.get(prod["base_url"] + "/metrics").text
        errors = metric(t, "http_requests_total", status="500")
        slow = metric(t, "http_request_duration_seconds_count", route="/documents/{id}") - metric(
            t, "http_request_duration_seconds_bucket", route="/documents/{id}", le="0.5"
        )
        return (errors, slow) if errors >= 2 and slow >= 2 else None

    assert wait_for(degraded, 40, 1), "no 500s / slow requests after the deploy"
    smoke_env = {**os.environ, prod["env_var_names"]["owner_token"]: prod["owner_token"]}
    out = subprocess.run(
        prod["commands"]["smoke"],
        shell=True,
        env=smoke_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout

    stack.rollback("production")
    assert httpx.get(prod["base_url"] + "/version").json()["version"] == "1.0.0"
    faults = httpx.get(
        prod["base_url"] + "/_admin/faults", headers={"X-Admin-Token": prod["admin_token"]}
    ).json()
    assert faults["error_rate"] == 0 and faults["latency_ms"] == 0
