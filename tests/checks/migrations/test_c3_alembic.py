"""C3 on Alembic: the SQL `alembic upgrade <from>:<to> --sql` renders in the app's environment,
replayed on a copy of production's schema (PostgreSQL, 52,000 documents) under Alembic's
transaction model: one transaction for the whole run by default, one per migration with
`transaction_per_migration`, none inside `autocommit_block()`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relnb.checks.migrations.changeset import release_migrations
from relnb.checks.migrations.release_safety import check_release_safety
from relnb.results import Outcome, Status

from ...core.helpers import commit
from .c3_apps import ALEMBIC_CMD, alembic_production, alembic_repo, alembic_revision

pytest.importorskip("alembic", reason="C3's Alembic tests run the real `alembic upgrade --sql`: pip install alembic")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prod(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from alembic_production(pg_admin_url, tmp_path_factory.mktemp("alembic-prod"))


def c3(tmp_path: Path, admin: str, prod: str, revisions: dict[str, str], *, per_migration: bool = False,
       production: bool = True, **kw) -> Outcome:
    root = alembic_repo(tmp_path / "app", prod, per_migration)
    commit(root, {f"alembic/versions/{name}.py": text for name, text in revisions.items()}, "the release")
    rs = release_migrations(root, "alembic", "alembic", "v1.0.0", "HEAD")
    return check_release_safety(
        rs, admin, repo=root, migrations_dir="alembic", production_url=prod if production else None,
        command=ALEMBIC_CMD, **kw,
    )


def errors(out: Outcome) -> set[str]:
    return {f["rule"] for m in out.evidence["migrations"] for f in m["findings"] if f["severity"] == "error" and not f["waived"]}


def one(body: str) -> dict[str, str]:
    return {"a2_change": alembic_revision("a2", "a1", body)}


FAILS = {
    "volatile default": ('op.add_column("documents", sa.Column("r", sa.Float, server_default=sa.text("random()")))', "rewrite"),
    "clock_timestamp default": (
        'op.add_column("documents", sa.Column("seen", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()")))',
        "rewrite",
    ),
    "int to bigint": ('op.alter_column("documents", "id", type_=sa.BigInteger)', "rewrite"),
    "plain index": ('op.create_index("documents_title_idx", "documents", ["title"])', "index-build-under-lock"),
    "validated fk": (
        'op.create_foreign_key("documents_ws_fk", "documents", "workspaces", ["workspace_id"], ["id"])',
        "scan-under-lock",
    ),
    "concurrently in the run's transaction": (
        'op.create_index("documents_title_idx", "documents", ["title"], postgresql_concurrently=True)',
        "non-transactional-in-transaction",
    ),
}

PASSES = {
    "constant default": 'op.add_column("documents", sa.Column("n", sa.Integer, server_default="0"))',
    "nullable column": 'op.add_column("documents", sa.Column("note", sa.Text))',
    "concurrently in autocommit_block": (
        "with op.get_context().autocommit_block():\n"
        '    op.create_index("documents_title_idx", "documents", ["title"], postgresql_concurrently=True)'
    ),
    "fk not valid": (
        'op.execute("ALTER TABLE documents ADD CONSTRAINT documents_ws_fk FOREIGN KEY (workspace_id)'
        ' REFERENCES workspaces (id) NOT VALID")'
    ),
}


@pytest.mark.parametrize("case", sorted(FAILS))
def test_unsafe_alembic_migration_fails(case: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    body, rule = FAILS[case]
    out = c3(tmp_path, pg_admin_url, prod, one(body))
    assert out.status is Status.FAILED, out.summary
    assert rule in errors(out), out.evidence["migrations"]
    assert out.summary.startswith("a2: ")
    assert "alembic upgrade a1:a2 --sql" in out.evidence["rendering"]["rendered_by"]
    assert out.evidence["shadow"]["schema_from"].startswith("production")
    assert "one transaction" in out.evidence["transaction_model"]


@pytest.mark.parametrize("case", sorted(PASSES))
def test_safe_alembic_migration_passes(case: str, tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, one(PASSES[case]))
    assert out.status is Status.PASSED, out.summary
    (mig,) = out.evidence["migrations"]
    assert mig["rendered_by"] == f"`{ALEMBIC_CMD.format(range='a1:a2')}`"
    assert "-- Running upgrade a1 -> a2" in mig["sql"]
    if case.startswith("concurrently"):
        # outside the run's transaction (COMMIT … BEGIN around it), applied for real, and it worked
        (nontx,) = mig["transaction"]["non_transactional"]
        assert nontx["in_transaction"] is False and mig["transaction"]["will_fail"] is False
        assert mig["trace"]["apply"]["ok"] is True
        assert "1 statement(s) outside any transaction" in out.evidence["transaction_model"]
    else:
        # the trace ran against the real rendered SQL, with production's sizes in hand
        assert out.evidence["production"]["sizes"]["documents"]["rows"] == 52_000


NOT_VALID = ('op.execute("ALTER TABLE documents ADD CONSTRAINT documents_ws_fk FOREIGN KEY (workspace_id)'
             ' REFERENCES workspaces (id) NOT VALID")')
VALIDATE = 'op.execute("ALTER TABLE documents VALIDATE CONSTRAINT documents_ws_fk")'


def test_not_valid_then_validate_depends_on_transaction_per_migration(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    """Two revisions in one run: Alembic's default one transaction keeps the ADD's SHARE ROW
    EXCLUSIVE during the VALIDATE's scan; with transaction_per_migration they commit apart."""
    revs = {"a2_fk": alembic_revision("a2", "a1", NOT_VALID), "a3_validate": alembic_revision("a3", "a2", VALIDATE)}
    out = c3(tmp_path / "one", pg_admin_url, prod, revs)
    assert out.status is Status.FAILED, out.summary
    assert out.summary.startswith("a3: ") and "scans every row" in out.summary
    assert "one transaction for the whole run (transaction_per_migration = False)" in out.evidence["transaction_model"]

    out = c3(tmp_path / "per", pg_admin_url, prod, revs, per_migration=True)
    assert out.status is Status.PASSED, out.summary
    assert "one transaction per migration (transaction_per_migration = True)" in out.evidence["transaction_model"]
    assert [m["name"] for m in out.evidence["migrations"]] == ["a2", "a3"]


def test_without_production_the_schema_is_rendered_from_base(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path, pg_admin_url, prod, one(FAILS["int to bigint"][0]), production=False)
    # the rewrite is traced on the schema `alembic upgrade a1 --sql` rebuilt, but without sizes: never green
    assert out.status is Status.INCONCLUSIVE, out.summary
    assert "size unknown" in out.summary
    assert out.evidence["shadow"]["schema_from"] == "1 earlier migration(s) replayed"


def test_drop_column_needs_a4s_expand_contract_plan(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    revs = one('op.drop_column("documents", "body")')
    out = c3(tmp_path / "a", pg_admin_url, prod, revs)
    assert out.status is Status.FAILED and "destructive-without-plan" in errors(out), out.summary
    out = c3(tmp_path / "b", pg_admin_url, prod, revs,
             expand_contract="documents.body: 1.4 stopped reading it (expand), this release drops it (contract)")
    assert out.status is Status.PASSED, out.summary


def test_unreadable_or_unrenderable_revisions_are_inconclusive(tmp_path: Path, pg_admin_url: str, prod: str) -> None:
    out = c3(tmp_path / "syntax", pg_admin_url, prod, {"a2_broken": "revision = 'a2'\ndef upgrade(:\n"})
    assert out.status is Status.INCONCLUSIVE and "cannot read" in out.summary, out.summary
    # a revision that reads data back needs a live connection: it cannot render offline; said, not passed
    body = 'if op.get_bind().execute(sa.text("select count(*) from documents")).scalar():\n    op.drop_column("documents", "body")'
    out = c3(tmp_path / "bind", pg_admin_url, prod, one(body))
    assert out.status is Status.INCONCLUSIVE and "cannot render" in out.summary, out.summary
