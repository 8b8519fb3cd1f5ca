"""Fixtures for the migration checks: a seeded "production" database and Prisma-layout dirs."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"
BASE_NAME = "20261001000000_base"


def _db_url(admin_url: str, name: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(admin_url)
    params["dbname"] = name
    return make_conninfo(**params)


@pytest.fixture(scope="module")
def prod_url(pg_admin_url: str) -> Iterator[str]:
    """The corpus base schema with production-like data: documents 52,000 rows, analyzed."""
    import psycopg

    name = f"relnb_prod_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = _db_url(pg_admin_url, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((CORPUS / "_base" / "migration.sql").read_text())
            conn.execute(
                "insert into workspaces (name) select 'w' || g from generate_series(1, 50) g"
            )
            conn.execute(
                "insert into documents (id, workspace_id, title, status)"
                " select g, 1 + g % 50, 'title ' || g, 'new' from generate_series(1, 52000) g"
            )
            conn.execute("insert into audit_log select g, 'n' from generate_series(1, 10) g")
            conn.execute("analyze")
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def prisma_dir(tmp_path: Path) -> Callable[..., Path]:
    """`prisma_dir(name=sql, ...)` → a prisma/migrations dir: the corpus base, then the given ones."""

    def make(*cases: str, **sql: str) -> Path:
        root = tmp_path / "prisma" / "migrations"
        root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(CORPUS / "_base", root / BASE_NAME, dirs_exist_ok=True)
        for i, case in enumerate(cases, 1):
            shutil.copytree(CORPUS / case, root / f"2026110100000{i}_{case}", dirs_exist_ok=True)
        for name, text in sql.items():
            (root / name).mkdir(exist_ok=True)
            (root / name / "migration.sql").write_text(text)
        (root / "migration_lock.toml").write_text('provider = "postgresql"\n')
        return root

    return make
