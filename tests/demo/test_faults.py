"""Every demo fault, observed at its source (the thing the matching gate inspects), in one stack.

The two faults that break the rollback (the previous images pruned, the previous version unable
to start) get a second, small stack, since the first one rolls production back. Also checks the
isolation promise: with the tenant-scoped faults on, the scripted smoke flows on a fresh
workspace still pass on staging and on production after the deploy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from relnb_demo import repo as rf
from relnb_demo.faults import FAULT_DEFAULT_ENV, FAULTS, Fault, fault_matrix
from relnb_demo.stack import DemoStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# these break the rollback the first stack's last test does; they get the second stack
ROLLBACK_BREAKERS = ["rollback-fails", "missing-previous-image"]
ALL_FAULTS = [f for f in FAULT_DEFAULT_ENV if f not in ROLLBACK_BREAKERS]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo_components) -> Iterator[DemoStack]:
    workdir = Path(tmp_path_factory.mktemp("demo-faults"))
    with DemoStack(workdir, faults=ALL_FAULTS, with_registry=False) as s:
        print(f"demo stack (all faults) startup: {s.startup_seconds} s")
        yield s


@pytest.fixture(scope="module")
def rollback_stack(tmp_path_factory: pytest.TempPathFactory, demo_components) -> Iterator[DemoStack]:
    workdir = Path(tmp_path_factory.mktemp("demo-rollback-faults"))
    with DemoStack(
        workdir, faults=ROLLBACK_BREAKERS, with_prometheus=False, traffic=False, seed_documents=200
    ) as s:
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
    # a fault of one shared system, or of the release's commits, has no other place
    with pytest.raises(ValueError, match="must be production"):
        Fault.parse("truncated-backup@staging")
    with pytest.raises(ValueError, match="release's commits"):
        Fault.parse("undocumented-route@staging")


def test_every_fault_names_the_gates_it_turns() -> None:
    """Issue 19: one table says which gates each fault must turn; every gate ID in it is real,
    every gate the demo can turn is covered, and `relnb demo --list-faults` prints exactly it
    without starting anything."""
    from relnb import GATE_IDS

    matrix = fault_matrix()
    assert all(gates and set(gates) <= set(GATE_IDS) for gates in matrix.values()), matrix
    for key in matrix:
        Fault.parse(key)  # every listed fault is runnable as written
    turned = {g for gates in matrix.values() for g in gates}
    # A3, A4, A5 are sign-offs and B2, B3, B5, D1-D6, F1, F3 follow from the system's own
    # answers; every other gate has a fault that turns it
    for gate in ("A2", "B1", "B4", "B6", "B7", "B8", "B9", "C1", "C2", "C3", "C4", "C5", "D7", "E1", "E2", "E3", "F2"):
        assert gate in turned, gate
    listed = subprocess.run(
        [sys.executable, "-m", "relnb.cli", "demo", "--list-faults", "--workdir", "/nonexistent/never-made"],
        capture_output=True, text=True, timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert {name: tuple(gates.split(",")) for name, gates in lines} == matrix
    assert [name for name, _ in lines if "@" not in name] == list(FAULTS)  # each at its default place
    assert not Path("/nonexistent/never-made").exists()  # listing starts nothing


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
        "undocumented-route",
        "truncated-backup@production",
        "no-alert-rules@production",
        "destructive-migration",
        "worker-crash@staging",
    }


def test_wrong_sha_on_staging(d: dict) -> None:
    v = httpx.get(d["environments"]["staging"]["base_url"] + "/version").json()
    parent = subprocess.run(["git", "rev-parse", "HEAD~1"], cwd=d["repo"], capture_output=True, text=True).stdout.strip()
    assert v["sha"] == parent != d["head_sha"]


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


def test_destructive_migration_breaks_the_previous_release(d: dict, stack: DemoStack) -> None:
    """Issue 19 (E2/E3): once the release's migrations ran, 1.0.0 can no longer accept an invite
    (it writes invites.accepted_by, which the release dropped): "redeploy the old version" is no
    rollback for this release. Production runs 1.0.0 here (rolled back, or never deployed)."""
    prod = d["environments"]["production"]
    assert httpx.get(prod["base_url"] + "/version").json()["version"] == "1.0.0"
    env = {**os.environ, prod["env_var_names"]["database_url"]: prod["database_url"]}
    migrated = subprocess.run(prod["commands"]["migrate"], shell=True, env=env, capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(prod["database_url"]) as conn:
        cols = {r[0] for r in conn.execute("select column_name from information_schema.columns where table_name = 'invites'")}
    assert "accepted_by" not in cols
    owner = {"Authorization": f"Bearer {prod['owner_token']}"}
    member = {"Authorization": f"Bearer {prod['member_token']}"}
    with httpx.Client(base_url=prod["base_url"], timeout=10) as c:
        ws = c.post("/workspaces", json={"name": "rollback-check"}, headers=owner).json()["id"]
        token = c.post(f"/workspaces/{ws}/invites", json={"email": "m@docflow.test"}, headers=owner).json()["token"]
        accepted = c.post(f"/invites/{token}/accept", headers=member)
    assert accepted.status_code == 500, accepted.text


def test_undocumented_route_is_served_on_staging_only(d: dict) -> None:
    """Issue 19 (A2): staging runs the release, whose routing table has PATCH /documents/{id};
    openapi.yaml at the release does not document it; production (1.0.0) does not serve it."""
    import yaml

    st, prod = d["environments"]["staging"], d["environments"]["production"]
    assert "PATCH /documents/{id}" in st["routes"] and "PATCH /documents/{id}" not in prod["routes"]
    spec = yaml.safe_load((Path(d["repo"]) / "openapi.yaml").read_text())
    assert "patch" not in spec["paths"]["/documents/{id}"]
    owner = {"Authorization": f"Bearer {st['owner_token']}"}
    served = httpx.patch(st["base_url"] + "/documents/1", json={}, headers=owner)
    assert served.status_code == 400 and "language is required" in served.text  # its handler answered
    pprod = httpx.patch(prod["base_url"] + "/documents/1", json={}, headers={"Authorization": f"Bearer {prod['owner_token']}"})
    assert pprod.status_code == 405


def test_truncated_backup_does_not_restore(d: dict, stack: DemoStack) -> None:
    """Issue 19 (C2): production's newest backup is a cut-off pg_dump: recent and not empty, but
    C2's restore test fails on it; staging's nightly (whole) restores."""
    from relnb.checks.ops.backups import check_s3_backup

    client = stack.s3.client()
    scratch = d["environments"]["production"]["s3"]["restore_test_database_url"]
    for env, ok in (("production", False), ("staging", True)):
        out = check_s3_backup(stack.s3.bucket, f"{env}/", client=client, restore_test_db_url=scratch)
        assert out.status.ok_for_promotion is ok, (env, out.summary)
        assert out.evidence["newest"]["size_bytes"] > 1000
    bad = check_s3_backup(stack.s3.bucket, "production/", client=client, restore_test_db_url=scratch)
    assert "restore test" in bad.summary and "failed" in bad.summary, bad.summary


def test_no_alert_rules_loaded(d: dict, stack: DemoStack) -> None:
    """Issue 19 (C5): Prometheus runs, scrapes both APIs and sends to Alertmanager, but its
    rule_files glob matches no file (the rules were saved as .yaml): no alert rule is loaded."""
    from relnb.checks.ops.observability import check_observability

    prod = d["environments"]["production"]
    m = prod["metrics"]
    rules = httpx.get(m["prometheus_url"] + "/api/v1/rules").json()["data"]["groups"]
    assert rules == []
    assert [p.name for p in (stack.workdir / "prometheus" / "rules").iterdir()] == ["docflow-alerts.yaml"]
    # everything else C5 follows is there: targets up, Alertmanager wired, the error tracking
    targets = httpx.get(m["prometheus_url"] + "/api/v1/targets").json()["data"]["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == {"docflow-api-staging", "docflow-api-production"}
    dsn = httpx.URL(prod["error_tracking_dsn"])
    ingest = f"http://{dsn.host}:{dsn.port}/api{dsn.path}/store/"
    assert httpx.post(ingest, json={"message": "x"}, params={"sentry_key": dsn.username}).status_code == 200
    assert httpx.post(ingest, json={"message": "x"}, params={"sentry_key": "wrong"}).status_code == 401
    out = check_observability(
        m["prometheus_url"], expected_alerts=m["alert_rules"], alertmanager_url=m["alertmanager_url"],
        error_tracking_dsn=prod["error_tracking_dsn"], settle_s=20,
    )
    assert not out.status.ok_for_promotion, out.summary
    assert "rule" in out.summary, out.summary


def test_worker_crash_restarted_and_reported(d: dict, stack: DemoStack, tmp_path: Path) -> None:
    """Issue 19 (F2): one staging worker crashed while starting and the restart policy brought it
    back (both replicas run); the demo's on-call records it as an incident, which links no test,
    so F2 cannot pass."""
    from relnb import Release, load_config
    from relnb.archive import evaluate_incidents, incidents_from_events
    from relnb_demo.driver import record_crash

    (crash,) = d["crashes"]
    assert crash["environment"] == "staging" and crash["process"].startswith("worker-staging-")
    assert crash["exit_code"] == 1 and "font cache" in crash["log_tail"]
    assert all(w.alive() for w in stack.envs["staging"].workers)
    (tmp_path / "relnb.toml").write_text(f'[project]\nname = "docflow"\nrepo = "{d["repo"]}"\n')
    release = Release.create("9.9.9", config=load_config(tmp_path / "relnb.toml"), author="Dana <dana@docflow.test>")
    try:
        record_crash(release, crash, "Dana <dana@docflow.test>")
        out = evaluate_incidents(incidents_from_events(release.journal.events), Path(d["repo"]))
    finally:
        release.close()
    assert not out.status.ok_for_promotion and "links no test" in out.summary, out.summary


def test_previous_images_pruned_from_the_registry(rollback_stack: DemoStack) -> None:
    """Issue 19 (E1): the registry has 1.1.0's images but no longer 1.0.0's; a deploy of 1.0.0
    would stop at the pull."""
    from relnb_demo.images import MANIFEST_ACCEPT

    reg = rollback_stack.registry
    assert reg is not None
    for repo in ("docflow-api", "docflow-worker"):
        for tag, code in (("1.0.0", 404), ("1.1.0", 200)):
            r = httpx.head(f"{reg.url}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
            assert r.status_code == code, (repo, tag, r.status_code)
    with pytest.raises(RuntimeError, match=r"docflow-api:1\.0\.0: manifest unknown"):
        rollback_stack.pull_images("1.0.0")


def test_rollback_fails_because_the_previous_version_cannot_start(rollback_stack: DemoStack) -> None:
    """Issue 19 (the failing rollback): after the 1.1.0 deploy production errs, and the deploy
    rewrote the issuer variable under 1.1.0's name; with 1.0.0's images back in the registry,
    redeploying 1.0.0 still fails: it cannot start without OIDC_ISSUER (restarted, then given up)."""
    from relnb_demo.services import ProcessExited

    s = rollback_stack
    d = s.describe()
    prod = d["environments"]["production"]
    env = {**os.environ, prod["env_var_names"]["database_url"]: prod["database_url"]}
    migrated = subprocess.run(prod["commands"]["migrate"], shell=True, env=env, capture_output=True, timeout=300)
    assert migrated.returncode == 0
    s.deploy("production", "1.1.0", d["head_sha"])
    faults = httpx.get(prod["base_url"] + "/_admin/faults", headers={"X-Admin-Token": prod["admin_token"]}).json()
    assert faults["error_rate"] == 0.5
    assert "OIDC_ISSUER" not in s._child_env(s.envs["production"])
    s.push_images("1.0.0", d["previous_sha"])  # not the registry's doing this time
    before = len(s.crashes)
    with pytest.raises(ProcessExited, match="OIDC_ISSUER is required"):
        s.rollback("production")
    assert [c["process"] for c in s.crashes[before:]] == ["api-production"] * 2
    # the same through the repo's deploy script, as relnb's rollback step runs it
    out = subprocess.run(prod["commands"]["rollback"], shell=True, capture_output=True, text=True, timeout=180)
    assert out.returncode == 1 and "OIDC_ISSUER is required" in out.stderr, out.stderr
