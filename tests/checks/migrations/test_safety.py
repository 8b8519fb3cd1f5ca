"""C3 beyond single corpus cases: unknown sizes, waivers, thresholds, pending selection, traces."""

from __future__ import annotations

import subprocess
import uuid
from contextlib import contextmanager

import psycopg
import pytest

from relnb.checks.migrations.ondisk import prisma_checksum
from relnb.checks.migrations.safety import check_migration_safety
from relnb.results import Status

pytestmark = pytest.mark.integration
WIDEN = "20261101000001_int_to_bigint"


def _trace(out, name=WIDEN):
    mig = next(m for m in out.evidence["migrations"] if m["name"] == name)
    return mig["trace"]["statements"]


def test_lock_trace_records_locks_rewrite_and_rollback(prisma_dir, pg_admin_url, prod_url, monkeypatch):
    from psycopg.conninfo import conninfo_to_dict

    from relnb.checks.migrations import safety

    made: list[str] = []
    real = safety.shadow_database

    @contextmanager
    def spy(*args, **kwargs):
        with real(*args, **kwargs) as url:
            made.append(conninfo_to_dict(url)["dbname"])
            yield url

    monkeypatch.setattr(safety, "shadow_database", spy)
    root = prisma_dir("int_to_bigint")
    out = check_migration_safety(root, pg_admin_url, pending=[WIDEN], production_url=prod_url)
    (st,) = _trace(out)
    assert {"table": "documents", "mode": "ACCESS EXCLUSIVE"} in st["locks"]
    assert st["held"] == {"documents": "ACCESS EXCLUSIVE"}
    assert st["rewritten"] == ["documents"]
    assert out.evidence["production"]["sizes"]["documents"]["rows"] == 52000
    # No shadow database is left behind: its own, by name (other runs share this server).
    assert len(made) == 1 and made[0].startswith("relnb_shadow_"), made
    with psycopg.connect(pg_admin_url) as conn:
        left = conn.execute("select count(*) from pg_database where datname = %s", (made[0],))
        assert left.fetchone()[0] == 0


def test_without_production_stats_heavy_work_is_inconclusive(prisma_dir, pg_admin_url):
    root = prisma_dir("int_to_bigint")
    out = check_migration_safety(root, pg_admin_url, pending=[WIDEN])
    assert out.status is Status.INCONCLUSIVE
    assert "size unknown" in out.summary
    # ...while a catalog-only change needs no sizes to pass.
    root = prisma_dir("add_nullable_column")
    name = "20261101000001_add_nullable_column"
    out = check_migration_safety(root, pg_admin_url, pending=[name])
    assert out.status is Status.PASSED, out.summary


def test_waiver_and_threshold(prisma_dir, pg_admin_url, prod_url):
    root = prisma_dir("int_to_bigint")
    out = check_migration_safety(
        root, pg_admin_url, pending=[WIDEN], production_url=prod_url, allow=[f"{WIDEN}:rewrite"]
    )
    assert out.status is Status.PASSED and "1 finding(s) waived" in out.summary
    waived = [f for f in out.evidence["migrations"][0]["findings"] if f["waived"]]
    assert [f["rule"] for f in waived] == ["rewrite"]
    out = check_migration_safety(
        root, pg_admin_url, pending=[WIDEN], production_url=prod_url, large_rows=100_000
    )
    assert out.status is Status.PASSED, out.summary
    out = check_migration_safety(
        root, pg_admin_url, pending=[WIDEN], production_url=prod_url, large_bytes=1024
    )
    assert out.status is Status.FAILED


def test_dependent_pending_migrations_are_traced_in_order(prisma_dir, pg_admin_url, prod_url):
    root = prisma_dir(
        **{
            "20261101000001_tags": "CREATE TABLE tags (id int PRIMARY KEY, name text);",
            "20261101000002_tags_idx": "CREATE INDEX tags_name_idx ON tags (name);",
        }
    )
    out = check_migration_safety(
        root,
        pg_admin_url,
        pending=["20261101000001_tags", "20261101000002_tags_idx"],
        production_url=prod_url,
    )
    assert out.status is Status.PASSED, out.summary
    (st,) = _trace(out, "20261101000002_tags_idx")
    assert st["executed"] and {"table": "tags", "mode": "SHARE"} in st["locks"]


def test_concurrently_alone_applies_like_prisma(prisma_dir, pg_admin_url, prod_url):
    root = prisma_dir("create_index_concurrently")
    name = "20261101000001_create_index_concurrently"
    out = check_migration_safety(root, pg_admin_url, pending=[name], production_url=prod_url)
    mig = out.evidence["migrations"][0]
    (st,) = mig["trace"]["statements"]
    assert "cannot run inside a transaction block" in st["not_traced"]
    assert mig["trace"]["apply"]["ok"] is True
    assert mig["transaction"]["runs_in_transaction"] is False
    # Under a tool that wraps every file, the same migration fails.
    out = check_migration_safety(
        root, pg_admin_url, pending=[name], production_url=prod_url, tool="transaction"
    )
    assert out.status is Status.FAILED
    rules = {f["rule"] for f in out.evidence["migrations"][0]["findings"]}
    assert {"non-transactional-in-transaction", "apply-fails"} <= rules


def test_pending_from_production_ledger(prisma_dir, pg_admin_url, prod_url):
    root = prisma_dir("int_to_bigint")
    base = root / "20261001000000_base" / "migration.sql"
    with psycopg.connect(prod_url, autocommit=True) as conn:
        conn.execute(
            "create table if not exists _prisma_migrations (id varchar(36) primary key,"
            " checksum varchar(64) not null, finished_at timestamptz, migration_name"
            " varchar(255) not null, logs text, rolled_back_at timestamptz, started_at"
            " timestamptz not null default now(), applied_steps_count int not null default 0)"
        )
        conn.execute("delete from _prisma_migrations")
        conn.execute(
            "insert into _prisma_migrations (id, checksum, finished_at, migration_name)"
            " values (%s, %s, now(), '20261001000000_base')",
            [str(uuid.uuid4()), prisma_checksum(base.read_bytes())],
        )
    try:
        out = check_migration_safety(root, pg_admin_url, production_url=prod_url)
        assert out.evidence["pending"] == [WIDEN]
        assert out.evidence["pending_from"].startswith("ledger at ")
        assert out.status is Status.FAILED
    finally:
        with psycopg.connect(prod_url, autocommit=True) as conn:
            conn.execute("drop table _prisma_migrations")


def test_pending_from_git_tag(prisma_dir, pg_admin_url, prod_url, tmp_path):
    root = prisma_dir()
    repo = tmp_path / "prisma"

    def git(*a):
        subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "base")
    git("tag", "v1.0.0")
    new = root / "20261101000001_backfill"
    new.mkdir()
    (new / "migration.sql").write_text("UPDATE documents SET body = '';\n")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "backfill")
    out = check_migration_safety(
        root, pg_admin_url, repo=repo, since_tag="v1.0.0", production_url=prod_url
    )
    assert out.evidence["pending"] == ["20261101000001_backfill"]
    assert out.status is Status.FAILED
    assert "locks every row" in out.summary


def test_no_pending_and_bad_inputs(prisma_dir, pg_admin_url, tmp_path):
    root = prisma_dir()
    assert check_migration_safety(root, pg_admin_url, pending=[]).status is Status.PASSED
    out = check_migration_safety(root, pg_admin_url, pending=["nope"])
    assert out.status is Status.FAILED and "not on disk" in out.summary
    assert check_migration_safety(root, pg_admin_url).status is Status.INCONCLUSIVE
    assert check_migration_safety(tmp_path / "x", pg_admin_url, pending=[]).status is (
        Status.INCONCLUSIVE
    )
