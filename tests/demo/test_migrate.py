"""The demo's `prisma migrate deploy` equivalent against a real Postgres database."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from relnb_demo import migrate
from relnb_demo import repo as rf
from relnb_demo.repo import create_repo

pytestmark = pytest.mark.integration

# prisma-engines' Postgres connector creates exactly these columns (name, type, nullable).
PRISMA_COLUMNS = [
    ("id", "character varying", "NO", 36),
    ("checksum", "character varying", "NO", 64),
    ("finished_at", "timestamp with time zone", "YES", None),
    ("migration_name", "character varying", "NO", 255),
    ("logs", "text", "YES", None),
    ("rolled_back_at", "timestamp with time zone", "YES", None),
    ("started_at", "timestamp with time zone", "NO", None),
    ("applied_steps_count", "integer", "NO", None),
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory):
    return create_repo(tmp_path_factory.mktemp("mig") / "docflow")


def _columns(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select column_name, data_type, is_nullable, character_maximum_length"
            " from information_schema.columns where table_name = '_prisma_migrations'"
            " order by ordinal_position"
        ).fetchall()


def test_deploy_records_rows_like_prisma(pg_url: str, repo) -> None:
    mig_dir = repo.path / "prisma" / "migrations"
    applied = migrate.deploy(pg_url, mig_dir, log=lambda *_: None)
    assert applied == [
        rf.MIGRATION_INIT,
        rf.MIGRATION_INVITES,
        rf.MIGRATION_DROP_LEGACY,
        rf.MIGRATION_NEW,
    ]
    assert _columns(pg_url) == PRISMA_COLUMNS
    rows = migrate.ledger_rows(pg_url)
    assert [r["migration_name"] for r in rows] == applied
    for r in rows:
        script = (mig_dir / r["migration_name"] / "migration.sql").read_bytes()
        assert r["checksum"] == hashlib.sha256(script).hexdigest()
        assert r["finished_at"] is not None and r["rolled_back_at"] is None
        assert r["applied_steps_count"] == 1
        assert len(r["id"]) == 36
    # The schema really changed: the new column exists, the dropped one is gone.
    with psycopg.connect(pg_url) as conn:
        cols = {
            c[0]
            for c in conn.execute(
                "select column_name from information_schema.columns where table_name='documents'"
            )
        }
    assert "language" in cols and "legacy_path" not in cols
    # Idempotent, like prisma: nothing pending the second time.
    assert migrate.deploy(pg_url, mig_dir, log=lambda *_: None) == []


def test_failed_migration_leaves_unfinished_row_and_blocks(pg_url: str, tmp_path: Path) -> None:
    d = tmp_path / "migrations"
    (d / "20240101000000_ok").mkdir(parents=True)
    (d / "20240101000000_ok" / "migration.sql").write_text('CREATE TABLE "t" ("id" INTEGER);\n')
    (d / "20240102000000_bad").mkdir()
    (d / "20240102000000_bad" / "migration.sql").write_text(
        'CREATE TABLE "u" ("id" INTEGER);\nALTER TABLE "nope" ADD COLUMN "x" TEXT;\n'
    )
    with pytest.raises(migrate.MigrationError, match="20240102000000_bad"):
        migrate.deploy(pg_url, d, log=lambda *_: None)
    rows = {r["migration_name"]: r for r in migrate.ledger_rows(pg_url)}
    assert rows["20240101000000_ok"]["finished_at"] is not None
    bad = rows["20240102000000_bad"]
    assert bad["finished_at"] is None and bad["applied_steps_count"] == 0
    assert "nope" in bad["logs"]
    with psycopg.connect(pg_url) as conn:  # one implicit transaction: "u" was not left behind
        assert conn.execute("select to_regclass('u')").fetchone()[0] is None
    with pytest.raises(migrate.MigrationError, match="P3009"):
        migrate.deploy(pg_url, d, log=lambda *_: None)
    assert migrate.status(pg_url, d)["failed"] == ["20240102000000_bad"]


def test_down_reverts_reversible_and_refuses_irreversible(pg_url: str, repo) -> None:
    mig_dir = repo.path / "prisma" / "migrations"
    migrate.deploy(pg_url, mig_dir, log=lambda *_: None)
    assert migrate.down(pg_url, mig_dir, log=lambda *_: None) == rf.MIGRATION_NEW
    with psycopg.connect(pg_url) as conn:
        cols = {
            c[0]
            for c in conn.execute(
                "select column_name from information_schema.columns where table_name='documents'"
            )
        }
    assert "language" not in cols
    row = next(r for r in migrate.ledger_rows(pg_url) if r["migration_name"] == rf.MIGRATION_NEW)
    assert row["rolled_back_at"] is not None
    assert migrate.status(pg_url, mig_dir)["pending"] == [rf.MIGRATION_NEW]
    # Next newest is the column drop: no down.sql, so no rollback by migration.
    with pytest.raises(migrate.MigrationError, match="not reversible"):
        migrate.down(pg_url, mig_dir, log=lambda *_: None)
    # Re-deploy applies it again (a new row, as prisma does after a rollback).
    assert migrate.deploy(pg_url, mig_dir, log=lambda *_: None) == [rf.MIGRATION_NEW]


def test_cli_reads_url_from_named_env_var(pg_url: str, repo) -> None:
    env = {**os.environ, "DOCFLOW_TEST_DB": pg_url}
    env.pop("DATABASE_URL", None)
    mig_dir = str(repo.path / "prisma" / "migrations")
    missing = subprocess.run(
        [sys.executable, "-m", "relnb_demo.migrate", "deploy", "--dir", mig_dir],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "DATABASE_URL" in missing.stderr
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "relnb_demo.migrate",
            "deploy",
            "--dir",
            mig_dir,
            "--url-env",
            "DOCFLOW_TEST_DB",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "successfully applied (4)" in ok.stdout
    st = subprocess.run(
        [
            sys.executable,
            "-m",
            "relnb_demo.migrate",
            "status",
            "--dir",
            mig_dir,
            "--url-env",
            "DOCFLOW_TEST_DB",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert st.returncode == 0 and "pending: -" in st.stdout
