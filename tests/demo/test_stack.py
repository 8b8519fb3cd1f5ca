"""The fault-free demo stack end to end: every route with a real JWT, the worker, OIDC, CORS,
metrics, backups, registry, Prometheus, migrate + deploy + rollback through the repo's scripts."""

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

from relnb.results import Status
from relnb_demo import repo as rf
from relnb_demo.images import MANIFEST_ACCEPT
from relnb_demo.migrate import LEDGER_COLUMNS, ledger_rows
from relnb_demo.stack import DemoStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_components) -> Iterator[DemoStack]:
    workdir = Path(tmp_path_factory.mktemp("demo-stack"))
    with DemoStack(workdir) as s:
        print(f"demo stack startup: {s.startup_seconds} s")
        yield s


@pytest.fixture(scope="module")
def d(stack: DemoStack) -> dict:
    return stack.describe()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(predicate, timeout: float, interval: float = 0.25):
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
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_startup_time_and_environments(stack: DemoStack, d: dict) -> None:
    assert stack.startup_seconds is not None and stack.startup_seconds < 60
    st, prod = d["environments"]["staging"], d["environments"]["production"]
    v = httpx.get(st["base_url"] + "/version").json()
    assert v == {
        "sha": d["head_sha"],
        "version": "1.1.0",
        "image_tag": "1.1.0",
        "environment": "staging",
    }
    v = httpx.get(prod["base_url"] + "/version").json()
    assert v["sha"] == d["previous_sha"] and v["version"] == "1.0.0"
    for e in (st, prod):
        h = httpx.get(e["base_url"] + "/health")
        assert h.status_code == 200 and h.json() == {
            "status": "ok",
            "checks": {"db": "ok", "redis": "ok"},
        }
    assert d["faults"] == []
    assert "secret_key" in prod["s3"]


def test_every_route_with_real_jwt(d: dict) -> None:
    st = d["environments"]["staging"]
    base, owner, member = st["base_url"], auth(st["owner_token"]), auth(st["member_token"])
    with httpx.Client(base_url=base, timeout=10) as c:
        assert c.get("/me").status_code == 401
        assert c.get("/me", headers=auth("not.a.jwt")).status_code == 401
        me = c.get("/me", headers=owner)
        assert me.status_code == 200 and me.json()["email"] == "owner@docflow.test"
        ws = c.post("/workspaces", json={"name": "route-test"}, headers=owner)
        assert ws.status_code == 201
        ws_id = ws.json()["id"]
        assert ws_id in c.get("/me", headers=owner).json()["workspaces"]
        # Only the owner may invite.
        assert (
            c.post(
                f"/workspaces/{ws_id}/invites", json={"email": "x@y.test"}, headers=member
            ).status_code
            == 404
        )
        inv = c.post(
            f"/workspaces/{ws_id}/invites", json={"email": "member@docflow.test"}, headers=owner
        )
        assert inv.status_code == 201 and inv.json()["workspace_id"] == ws_id
        acc = c.post(f"/invites/{inv.json()['token']}/accept", headers=member)
        assert acc.status_code == 200 and acc.json()["workspace_id"] == ws_id
        assert c.post(f"/invites/{inv.json()['token']}/accept", headers=member).status_code == 404
        assert ws_id in c.get("/me", headers=member).json()["workspaces"]
        up = c.post(
            "/documents",
            data={"workspace_id": str(ws_id)},
            files={"file": ("a.txt", b"one\ftwo\fthree")},
            headers=member,
        )
        assert up.status_code == 202 and up.json()["status"] == "queued"
        doc = up.json()["id"]
        final = wait_for(
            lambda: (
                (r := c.get(f"/documents/{doc}", headers=owner).json())["status"] == "extracted"
                and r
            ),
            30,
        )
        assert final and final["pages"] == 3 and final["workspace_id"] == ws_id
        summary = c.get(f"/analytics/summary?workspace_id={ws_id}", headers=owner)
        assert summary.status_code == 200
        assert summary.json() == {
            "workspaces": 1,
            "documents": {"queued": 0, "extracted": 1, "failed": 0},
            "members": 2,
        }
        assert c.get("/openapi.json").status_code == 404


def test_production_100_has_no_analytics(d: dict) -> None:
    prod = d["environments"]["production"]
    r = httpx.get(prod["base_url"] + "/analytics/summary", headers=auth(prod["owner_token"]))
    assert r.status_code == 404
    assert "GET /analytics/summary" not in prod["routes"]


def test_oidc_discovery_token_and_redirect_uris(d: dict) -> None:
    issuer = d["oidc"]["issuer"]
    disc = httpx.get(issuer + "/.well-known/openid-configuration").json()
    assert disc["issuer"] == issuer and "RS256" in disc["id_token_signing_alg_values_supported"]
    jwks = httpx.get(disc["jwks_uri"]).json()
    assert jwks["keys"][0]["kty"] == "RSA" and "d" not in jwks["keys"][0]
    fe = d["environments"]["staging"]["frontends"][0]
    params = {"client_id": "docflow-web", "response_type": "code", "scope": "openid", "state": "s"}
    ok = httpx.get(
        disc["authorization_endpoint"], params={**params, "redirect_uri": fe["redirect_uri"]}
    )
    assert ok.status_code == 200 and "kc-form-login" in ok.text
    bad = httpx.get(
        disc["authorization_endpoint"], params={**params, "redirect_uri": "http://evil.test/cb"}
    )
    assert bad.status_code == 400 and "Invalid parameter: redirect_uri" in bad.text
    unknown = httpx.get(
        disc["authorization_endpoint"],
        params={**params, "client_id": "nope", "redirect_uri": fe["redirect_uri"]},
    )
    assert unknown.status_code == 400 and "Client not found." in unknown.text
    bad_pw = httpx.post(
        disc["token_endpoint"],
        data={
            "grant_type": "password",
            "client_id": "docflow-web",
            "username": "owner",
            "password": "wrong",
        },
    )
    assert bad_pw.status_code == 401 and bad_pw.json()["error"] == "invalid_grant"
    admin = d["oidc"]["admin"]
    tok = httpx.post(
        f"{admin['base_url']}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": admin["username"],
            "password": admin["password"],
        },
    ).json()["access_token"]
    clients = httpx.get(
        f"{admin['base_url']}/admin/realms/demo/clients",
        params={"clientId": "docflow-web"},
        headers=auth(tok),
    ).json()
    assert (
        fe["redirect_uri"] in clients[0]["redirectUris"]
        and fe["origin"] in clients[0]["webOrigins"]
    )


def test_cors_preflight_echo_and_absent(d: dict) -> None:
    st = d["environments"]["staging"]
    origin = st["frontends"][0]["origin"]
    hdrs = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    ok = httpx.options(st["base_url"] + "/me", headers={"Origin": origin, **hdrs})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == origin
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in ok.headers["vary"]
    bad = httpx.options(st["base_url"] + "/me", headers={"Origin": "http://evil.test", **hdrs})
    assert "access-control-allow-origin" not in bad.headers and "Origin" in bad.headers["vary"]
    # Production's frontends are not staging's.
    other = httpx.options(
        st["base_url"] + "/me",
        headers={"Origin": d["environments"]["production"]["frontends"][0]["origin"], **hdrs},
    )
    assert "access-control-allow-origin" not in other.headers
    actual = httpx.get(
        st["base_url"] + "/me", headers={"Origin": origin, **auth(st["owner_token"])}
    )
    assert actual.headers["access-control-allow-origin"] == origin


def test_metrics_traffic_and_worker_counters(stack: DemoStack, d: dict) -> None:
    st = d["environments"]["staging"]

    def scraped():
        text = httpx.get(st["metrics"]["scrape_urls"][0]).text
        return (
            text if metric(text, "worker_jobs_completed_total", queue="extraction") >= 2 else None
        )

    text = wait_for(scraped, 30)
    assert text, "traffic uploads did not complete through the worker"
    assert metric(text, "http_requests_total", route="/health", status="200") > 0
    assert (
        "http_request_duration_seconds_bucket" in text
        and 'le="0.005"' in text
        and 'le="5.0"' in text
    )
    assert metric(text, "queue_dlq_depth", queue="extraction") == 0
    assert "queue_waiting" in text and "worker_jobs_failed_total" in text
    assert stack.traffic["staging"].stats.requests > 5


def test_admin_faults_endpoint(d: dict) -> None:
    st = d["environments"]["staging"]
    url = st["base_url"] + "/_admin/faults"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-Admin-Token": "wrong"}).status_code == 401
    admin = {"X-Admin-Token": st["admin_token"]}
    assert httpx.post(url, json={"bogus": 1}, headers=admin).status_code == 400
    try:
        assert (
            httpx.post(url, json={"error_rate": 1.0, "scope": "all"}, headers=admin).json()[
                "error_rate"
            ]
            == 1.0
        )
        time.sleep(1.1)  # fault cache
        assert httpx.get(st["base_url"] + "/me", headers=auth(st["owner_token"])).status_code == 500
        assert httpx.get(st["base_url"] + "/metrics").status_code == 200  # infra routes unaffected
    finally:
        httpx.post(url, json={"error_rate": 0.0, "scope": "tenant"}, headers=admin)
    time.sleep(1.1)
    assert httpx.get(st["base_url"] + "/me", headers=auth(st["owner_token"])).status_code == 200


def test_smoke_script_passes_and_never_prints_token(d: dict) -> None:
    st = d["environments"]["staging"]
    names = st["env_var_names"]
    env = {**os.environ, names["owner_token"]: st["owner_token"]}
    out = subprocess.run(
        st["commands"]["smoke"], shell=True, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all smoke checks passed" in out.stdout and "extraction pipeline completes" in out.stdout
    assert st["owner_token"] not in out.stdout + out.stderr
    # And it fails for real when the token is wrong.
    env[names["owner_token"]] = "invalid"
    bad = subprocess.run(
        st["commands"]["smoke"], shell=True, env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0 and "FAIL login bootstrap /me" in bad.stdout


def test_backups_in_s3(stack: DemoStack, d: dict) -> None:
    import boto3

    s3 = d["environments"]["production"]["s3"]
    client = boto3.client(
        "s3",
        endpoint_url=s3["endpoint_url"],
        aws_access_key_id=s3["access_key"],
        aws_secret_access_key=s3["secret_key"],
        region_name=s3["region"],
    )
    objs = client.list_objects_v2(Bucket=s3["bucket"], Prefix=s3["prefix"])["Contents"]
    assert len(objs) == 1 and objs[0]["Size"] > 10_000
    assert objs[0]["Key"] == s3["latest_backup_key"]
    body = client.get_object(Bucket=s3["bucket"], Key=objs[0]["Key"])["Body"].read()
    assert body[:5] == b"PGDMP"  # a real pg_dump custom-format archive


def test_registry_has_previous_and_new_tags(d: dict) -> None:
    reg = d["environments"]["production"]["registry"]
    for repo in reg["repositories"].values():
        for tag in ("1.0.0", "1.1.0"):
            r = httpx.head(
                f"{reg['url']}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
            )
            assert r.status_code == 200, (repo, tag)
            assert r.headers["docker-content-digest"].startswith("sha256:")
        assert (
            httpx.head(
                f"{reg['url']}/v2/{repo}/manifests/9.9.9", headers={"Accept": MANIFEST_ACCEPT}
            ).status_code
            == 404
        )


def test_prometheus_scrapes_both_apis(d: dict) -> None:
    prom = d["environments"]["staging"]["metrics"]["prometheus_url"]

    def up():
        r = httpx.get(f"{prom}/api/v1/query", params={"query": "up"}).json()
        jobs = {x["metric"]["job"]: x["value"][1] for x in r["data"]["result"]}
        return (
            jobs
            if jobs.get("docflow-api-staging") == "1" and jobs.get("docflow-api-production") == "1"
            else None
        )

    assert wait_for(up, 30, 1), "Prometheus targets never came up"


def test_alert_rules_loaded_and_sent_to_alertmanager(d: dict) -> None:
    """C5 itself, against the demo's Prometheus and Alertmanager: what the demo's release checks."""
    from relnb.checks.ops.observability import check_observability

    m = d["environments"]["production"]["metrics"]
    assert m["alert_rules"] and m["alertmanager_url"]
    out = check_observability(
        m["prometheus_url"],
        expected_alerts=m["alert_rules"],
        alertmanager_url=m["alertmanager_url"],
        require_dsn=False,
        settle_s=30,
    )
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["alertmanager"]["wired"] and out.evidence["alertmanager"]["ready"]
    assert out.evidence["rules"]["alerting_rules"] == len(m["alert_rules"])


def test_migrate_command_then_deploy_and_rollback_via_repo_scripts(
    stack: DemoStack, d: dict
) -> None:
    prod = d["environments"]["production"]
    names = prod["env_var_names"]
    env = {**os.environ, names["database_url"]: prod["database_url"]}
    before = [r["migration_name"] for r in ledger_rows(prod["database_url"])]
    assert before == [rf.MIGRATION_INIT, rf.MIGRATION_INVITES, rf.MIGRATION_DROP_LEGACY]
    mig = subprocess.run(
        prod["commands"]["migrate"],
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert mig.returncode == 0, mig.stderr
    rows = ledger_rows(prod["database_url"])
    assert rows[-1]["migration_name"] == rf.MIGRATION_NEW and rows[-1]["finished_at"] is not None
    assert set(rows[-1]) == set(LEDGER_COLUMNS)

    deploy_env = {**os.environ, "RELNB_VERSION": "1.1.0", "RELNB_SHA": d["head_sha"]}
    out = subprocess.run(
        prod["commands"]["deploy"],
        shell=True,
        env=deploy_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    v = httpx.get(prod["base_url"] + "/version").json()
    assert v["sha"] == d["head_sha"] and v["version"] == "1.1.0"
    r = httpx.get(prod["base_url"] + "/analytics/summary", headers=auth(prod["owner_token"]))
    assert r.status_code == 200 and r.json()["documents"]["extracted"] >= 50_000

    # Unknown commits are refused; production keeps running.
    bad = subprocess.run(
        prod["commands"]["deploy"],
        shell=True,
        env={**deploy_env, "RELNB_SHA": "f" * 40},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "not in the repository" in bad.stderr
    assert httpx.get(prod["base_url"] + "/version").json()["sha"] == d["head_sha"]

    rb = subprocess.run(
        prod["commands"]["rollback"], shell=True, capture_output=True, text=True, timeout=120
    )
    assert rb.returncode == 0, rb.stderr
    v = httpx.get(prod["base_url"] + "/version").json()
    assert v["sha"] == d["previous_sha"] and v["version"] == "1.0.0"
    # The 1.0.0 app still works on the expanded schema (backwards compatible migration).
    assert httpx.get(prod["base_url"] + "/me", headers=auth(prod["owner_token"])).status_code == 200

    down = subprocess.run(
        prod["commands"]["migrate_down"],
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 0, down.stderr
    with psycopg.connect(prod["database_url"]) as conn:
        cols = {
            c[0]
            for c in conn.execute(
                "select column_name from information_schema.columns where table_name='documents'"
            )
        }
    assert "language" not in cols


def test_build_script_pushes_images(d: dict) -> None:
    prod = d["environments"]["production"]
    if prod["commands"]["build"] is None:
        pytest.fail("docker-registry not installed: the build command needs it")
    out = subprocess.run(
        prod["commands"]["build"],
        shell=True,
        env={**os.environ, "RELNB_VERSION": "1.1.1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    reg = prod["registry"]
    r = httpx.head(
        f"{reg['url']}/v2/docflow-worker/manifests/1.1.1", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert r.status_code == 200


def test_queue_keys_are_bullmq_layout(d: dict) -> None:
    st = d["environments"]["staging"]
    client = redis.Redis.from_url(st["redis_url"])
    prefix = st["queue"]["prefix"]
    assert client.exists(f"{prefix}:extraction:meta") or client.exists(
        f"{prefix}:extraction:completed"
    )
    assert client.zcard(f"{prefix}:extraction:completed") > 0
