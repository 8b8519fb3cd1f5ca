"""D2 snapshot → S3 (moto server) and E3 restore into the real Postgres: rows back, verified."""

from __future__ import annotations

import hashlib

import boto3
import psycopg
import pytest

from relnb.actions import pgtools, restore, snapshot
from relnb.results import Status


def _seed(url: str, blob_rows: int = 0) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("create table accounts (id serial primary key, email text not null)")
        c.execute(
            "insert into accounts (email) select 'u' || g || '@x.test' from generate_series(1, 250) g"
        )
        c.execute('create schema "Billing"')
        c.execute('create table "Billing"."Invoice" (id int primary key, amount numeric)')
        c.execute('insert into "Billing"."Invoice" select g, g * 1.5 from generate_series(1, 40) g')
        if blob_rows:
            c.execute("create table blobs (id int, data bytea)")
            c.execute(
                "insert into blobs select i, (select string_agg(decode(md5(random()::text || i || g), 'hex'), '') "
                "from generate_series(1, 64) g) from generate_series(1, %s) i",
                (blob_rows,),
            )


def test_d2_then_drop_then_e3_brings_rows_back(pg_url, s3) -> None:
    _seed(pg_url)
    s3.create_bucket(Bucket="backups")
    d2 = snapshot.take_snapshot_s3(pg_url, "backups", "prod/db", label="rel-1.1.0", client=s3)
    assert d2.status is Status.PASSED, d2.summary
    ev = d2.evidence
    assert ev["row_counts"] == {"Billing.Invoice": 40, "public.accounts": 250}
    assert ev["upload"] == "single put" and ev["verified"] == "download sha256"
    assert ev["pg_dump"]["major"] >= int(ev["server_version"].split(".")[0])
    body = s3.get_object(Bucket="backups", Key=ev["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == ev["sha256"] and len(body) == ev["size_bytes"]
    side = s3.get_object(Bucket="backups", Key=ev["key"] + ".sha256")["Body"].read().decode()
    assert side.startswith(ev["sha256"])

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("delete from accounts where id > 10")
        c.execute('drop table "Billing"."Invoice"')
        c.execute("create table stray (x int)")

    e3 = restore.restore_from_evidence(pg_url, ev, client=s3)
    assert e3.status is Status.PASSED, e3.summary
    with psycopg.connect(pg_url) as c:
        assert c.execute("select count(*) from accounts").fetchone()[0] == 250
        assert c.execute('select sum(amount) from "Billing"."Invoice"').fetchone()[0] == sum(
            g * 1.5 for g in range(1, 41)
        )
    assert e3.evidence["row_mismatches"] == {}
    assert e3.evidence["pg_restore"]["major"] >= ev["pg_dump"]["major"]


def test_e3_refuses_tampered_dump_and_reports_count_mismatch(pg_url, s3) -> None:
    _seed(pg_url)
    s3.create_bucket(Bucket="backups")
    d2 = snapshot.take_snapshot_s3(pg_url, "backups", "db", client=s3, verify="head")
    assert d2.status is Status.PASSED and d2.evidence["verified"] == "size only"
    ev = dict(d2.evidence)

    wrong_counts = {**ev["row_counts"], "public.accounts": 999}
    out = restore.restore_from_evidence(pg_url, {**ev, "row_counts": wrong_counts}, client=s3)
    assert out.status is Status.FAILED and "public.accounts 250≠999" in out.summary

    s3.put_object(Bucket="backups", Key=ev["key"], Body=b"PGDMP tampered")
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("delete from accounts")
    out = restore.restore_from_evidence(pg_url, ev, client=s3)
    assert (
        out.status is Status.FAILED and "checksum" in out.summary and "not restored" in out.summary
    )
    with psycopg.connect(pg_url) as c:  # nothing was touched
        assert c.execute("select count(*) from accounts").fetchone()[0] == 0
    # sidecar checksum is used when none is passed; a key without one is refused
    out = restore.restore_snapshot_s3(pg_url, "backups", ev["key"], client=s3)
    assert out.status is Status.FAILED and "differs from recorded" in out.summary
    s3.put_object(Bucket="backups", Key="db/orphan.dump", Body=b"PGDMP")
    out = restore.restore_snapshot_s3(pg_url, "backups", "db/orphan.dump", client=s3)
    assert out.status is Status.FAILED and "no recorded checksum" in out.summary
    assert restore.restore_from_evidence(pg_url, {"bucket": "b"}).status is Status.INCONCLUSIVE


@pytest.mark.slow
def test_large_dump_goes_multipart(pg_url, s3) -> None:
    _seed(pg_url, blob_rows=12000)  # ~12 MiB of incompressible bytes
    s3.create_bucket(Bucket="backups")
    d2 = snapshot.take_snapshot_s3(pg_url, "backups", "big", client=s3, part_size=5 * 1024 * 1024)
    assert d2.status is Status.PASSED, d2.summary
    assert d2.evidence["upload"].startswith("multipart (3 parts")
    assert d2.evidence["row_counts"]["public.blobs"] == 12000
    assert s3.list_multipart_uploads(Bucket="backups").get("Uploads", []) == []


def test_d2_failures_are_outcomes(pg_url, s3, pg_admin_url) -> None:
    s3.create_bucket(Bucket="backups")
    out = snapshot.take_snapshot_s3(pg_url, "backups", "x", client=s3, pg_dump="/bin/false")
    assert out.status is Status.FAILED and "no pg_dump with major version" in out.summary
    out = snapshot.take_snapshot_s3(pg_url, "no-such-bucket", "x", client=s3)
    assert out.status is Status.FAILED and "NoSuchBucket" in out.summary
    bad = pg_url.rsplit("/", 1)[0] + "/relnb_no_such_db"
    out = snapshot.take_snapshot_s3(bad, "backups", "x", client=s3)
    assert out.status is Status.FAILED and "cannot connect" in out.summary
    assert pgtools.find_pg_tool("pg_dump", 99) is None


def test_tool_choice_prefers_smallest_sufficient_major() -> None:
    found = pgtools.find_pg_tool("pg_dump", 1)
    assert found is not None
    majors = set()
    for d in pgtools.tool_dirs():
        m = pgtools.tool_major(str(d / "pg_dump"))
        if m:
            majors.add(m)
    assert found[1] == min(majors | {found[1]})


def test_rds_snapshot_waits_until_available(aws) -> None:
    rds = boto3.client("rds", endpoint_url=aws, region_name="us-east-1")
    rds.create_db_instance(
        DBInstanceIdentifier="prod-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="password123",
    )
    out = snapshot.take_snapshot_rds("prod-db", "relnb-1-1-0", client=rds, poll_s=0.1, timeout_s=10)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["allocated_gb"] == 20 and out.evidence["status"] == "available"
    out = snapshot.take_snapshot_rds("no-such-db", "relnb-x", client=rds, poll_s=0.1)
    assert out.status is Status.FAILED and "no-such-db" in out.summary
