"""C2 against moto's real S3/RDS HTTP server, with a restore test into the real Postgres."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import psycopg
import pytest

from relnb.actions import snapshot
from relnb.actions.pgtools import find_pg_tool, libpq_args
from relnb.checks.ops.backups import check_rds_snapshots, check_s3_backup
from relnb.results import Status


def test_s3_newest_backup_age_and_size(s3) -> None:
    s3.create_bucket(Bucket="bk1")
    s3.put_object(Bucket="bk1", Key="prod/db/2026-12-01.dump", Body=b"x" * 10)
    s3.put_object(Bucket="bk1", Key="prod/db/2026-12-02.dump", Body=b"y" * 2048)
    s3.put_object(Bucket="bk1", Key="prod/db/2026-12-02.dump.sha256", Body=b"zz")
    s3.put_object(Bucket="bk1", Key="staging/db/other.dump", Body=b"w" * 99999)
    out = check_s3_backup("bk1", "prod/db/", client=s3, max_age_hours=1)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["newest"]["key"] == "prod/db/2026-12-02.dump"
    assert out.evidence["backups_found"] == 2
    later = datetime.now(UTC) + timedelta(hours=30)
    out = check_s3_backup("bk1", "prod/db/", client=s3, max_age_hours=26, now=later)
    assert out.status is Status.FAILED and "h old (limit 26 h)" in out.summary
    out = check_s3_backup("bk1", "prod/db/", client=s3, min_size_bytes=4096)
    assert out.status is Status.FAILED and "minimum 4096" in out.summary


def test_s3_empty_object_missing_prefix_missing_bucket(s3, dead_url) -> None:
    s3.create_bucket(Bucket="bk1")
    s3.put_object(Bucket="bk1", Key="p/empty.dump", Body=b"")
    out = check_s3_backup("bk1", "p/", client=s3)
    assert out.status is Status.FAILED and "0 bytes" in out.summary
    out = check_s3_backup("bk1", "nothing/", client=s3)
    assert out.status is Status.FAILED and "no backup under s3://bk1/nothing/" in out.summary
    out = check_s3_backup("nope", "p/", client=s3)
    assert out.status is Status.FAILED and "NoSuchBucket" in out.summary
    out = check_s3_backup("bk1", "p/", endpoint_url=dead_url, region_name="us-east-1")
    assert out.status is Status.INCONCLUSIVE and "cannot list" in out.summary


@pytest.fixture
def scratch(pg_url: str, pg_admin_url: str) -> Iterator[str]:
    """A second database for the restore test (the embedded server's keyword/unix URI cannot be
    renamed: there the source database is the scratch one, which --clean replaces)."""
    if not pg_url.startswith("postgresql://"):
        yield pg_url
        return
    url = pg_url + "_scratch"
    with psycopg.connect(pg_admin_url, autocommit=True) as c:
        c.execute(f'create database "{url.rsplit("/", 1)[1]}"')
    try:
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as c:
            c.execute(f'drop database if exists "{url.rsplit("/", 1)[1]}" with (force)')


def test_s3_restore_test_into_scratch_database(pg_url, scratch, s3) -> None:
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("create table t (id int)")
        c.execute("insert into t select generate_series(1, 77)")
    s3.create_bucket(Bucket="bk1")
    d2 = snapshot.take_snapshot_s3(pg_url, "bk1", "prod", client=s3, verify="head")
    assert d2.status is Status.PASSED
    out = check_s3_backup("bk1", "prod/", client=s3, restore_test_db_url=scratch)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["restore_test"]["restored_rows"] == {"public.t": 77}
    # a corrupted newest dump fails the restore test (its recorded checksum no longer matches)
    s3.put_object(Bucket="bk1", Key=d2.evidence["key"], Body=b"PGDMP garbage")
    out = check_s3_backup("bk1", "prod/", client=s3, restore_test_db_url=scratch)
    assert out.status is Status.FAILED and "restore test" in out.summary


def _nightly_dump(url: str) -> bytes:
    """A team's own cron job: pg_dump -Fc straight to the bucket, no checksum beside it."""
    with psycopg.connect(url) as c:
        major = c.info.server_version // 10000
    tool = find_pg_tool("pg_dump", major)
    assert tool is not None, f"no pg_dump >= {major} on this machine"
    conninfo, env = libpq_args(url)
    return subprocess.run([tool[0], "-Fc", "--dbname", conninfo], env={**os.environ, **env},
                          capture_output=True, check=True, timeout=120).stdout


def test_restore_test_of_a_nightly_dump_without_checksum(pg_url, scratch, s3) -> None:
    """A nightly dump restores on its own merits; one that only restores with the app's
    search_path fails with Postgres's reason. The second is NetBox 4.7.0's (#23130): a trigger's
    `IS DISTINCT FROM` resolved an extension's `=` through search_path, which pg_dump empties."""
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("create table t (id int, label text)")
        c.execute("insert into t select g, g::text from generate_series(1, 5) g")
    s3.create_bucket(Bucket="nightly")
    s3.put_object(Bucket="nightly", Key="db/1.dump", Body=_nightly_dump(pg_url))
    out = check_s3_backup("nightly", "db/", client=s3, restore_test_db_url=scratch)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["restore_test"]["checksum_from"] is None
    assert out.evidence["restore_test"]["restored_rows"] == {"public.t": 5}

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("create function public.int_eq_text(int, text) returns bool language sql "
                  "immutable as 'select $1::text = $2'")
        c.execute("create operator public.= (leftarg = int, rightarg = text, function = public.int_eq_text)")
        c.execute("create function public.noop() returns trigger language plpgsql as 'begin return new; end'")
        c.execute("create trigger t_changed after update on public.t for each row "
                  "when (old.id is distinct from new.label) execute function public.noop()")
    s3.put_object(Bucket="nightly", Key="db/2.dump", Body=_nightly_dump(pg_url))
    out = check_s3_backup("nightly", "db/", client=s3, restore_test_db_url=scratch)
    assert out.status is Status.FAILED, out.summary
    assert "failed: C2:" not in out.summary
    assert "pg_restore exited 1: operator does not exist: integer = text" in out.summary, out.summary
    assert "\n" not in out.summary


def test_rds_automated_snapshot_filter_and_age(aws) -> None:
    rds = boto3.client("rds", endpoint_url=aws, region_name="us-east-1")
    rds.create_db_instance(
        DBInstanceIdentifier="prod-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="password123",
    )
    rds.create_db_snapshot(DBSnapshotIdentifier="manual-1", DBInstanceIdentifier="prod-db")
    out = check_rds_snapshots("prod-db", client=rds, max_age_hours=1)
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["newest"]["id"].startswith("rds:")
    later = datetime.now(UTC) + timedelta(hours=48)
    out = check_rds_snapshots("prod-db", client=rds, max_age_hours=26, now=later)
    assert out.status is Status.FAILED and "limit 26 h" in out.summary
    manual = check_rds_snapshots("prod-db", client=rds, snapshot_type="manual")
    assert manual.status is Status.PASSED and manual.evidence["newest"]["id"] == "manual-1"
    out = check_rds_snapshots("other-db", client=rds)
    assert out.status is Status.FAILED
