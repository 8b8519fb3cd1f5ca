"""Each tool's transaction model, without a database: which statements share a transaction."""

from __future__ import annotations

import pytest

from relnb.checks.migrations.sqlrisk import parse_statements
from relnb.checks.migrations.toolsql import RenderError, alembic_range, split_alembic
from relnb.checks.migrations.txmodel import ToolOptions, build_model, prisma_splits, reindex

IDX = "CREATE INDEX CONCURRENTLY i ON t (a);"
ADD = "ALTER TABLE t ADD COLUMN b int;"


def model(tool: str, files: dict[str, str], **opts):
    migs = reindex([(n, sql, parse_statements(sql)) for n, sql in files.items()])
    run = build_model(tool, migs, ToolOptions(**opts))
    shape = [(b.in_transaction, [st.migration for st in b.steps]) for b in run.blocks]
    plans = {n: run.plan_for(n, st, 16) for n, _, st in migs}
    return run, shape, plans


ALEMBIC_ONE_TX = """BEGIN;

-- Running upgrade a1 -> a2

ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID;

UPDATE alembic_version SET version_num='a2' WHERE alembic_version.version_num = 'a1';

-- Running upgrade a2 -> a3

ALTER TABLE t VALIDATE CONSTRAINT f;

UPDATE alembic_version SET version_num='a3' WHERE alembic_version.version_num = 'a2';

COMMIT;
"""


def test_alembic_default_run_is_one_transaction_across_revisions() -> None:
    parts = split_alembic(ALEMBIC_ONE_TX, ["a2", "a3"])
    run, shape, _plans = model("alembic", parts)
    assert shape == [(True, ["a2", "a2", "a3", "a3"])]
    assert "one transaction for the whole run (transaction_per_migration = False)" in run.model
    assert "shares with other migrations" in run.how["a3"]


def test_alembic_autocommit_block_puts_concurrently_outside() -> None:
    sql = f"BEGIN;\n\n-- Running upgrade a1 -> a2\n\n{ADD}\n\nCOMMIT;\n\n{IDX}\n\nBEGIN;\n\nUPDATE alembic_version SET version_num='a2';\n\nCOMMIT;\n"
    _run, shape, plans = model("alembic", split_alembic(sql, ["a2"]))
    assert shape == [(True, ["a2"]), (False, ["a2"]), (True, ["a2"])]
    assert plans["a2"].non_transactional[0]["in_transaction"] is False and not plans["a2"].will_fail
    with pytest.raises(RenderError, match="did not render revision"):
        split_alembic(sql, ["a2", "a9"])


def test_alembic_range() -> None:
    assert alembic_range([("a2", "a1"), ("a3", "a2")]) == ("a1", "a3")
    assert alembic_range([("a1", None)]) == (None, "a1")
    with pytest.raises(RenderError, match="2 heads"):
        alembic_range([("a2", "a1"), ("b2", "a1")])


def test_django_atomic_and_non_atomic() -> None:
    _run, shape, plans = model("django", {"docs.0002": f"BEGIN;\n{ADD}\nCOMMIT;", "docs.0003": IDX})
    assert shape == [(True, ["docs.0002"]), (False, ["docs.0003"])]
    assert not plans["docs.0003"].will_fail and plans["docs.0002"].runs_in_transaction


@pytest.mark.parametrize(("version", "in_tx"), [("5.22.0", True), ("7.3.9", True), ("7.4.0", False), ("^7.10.1", False), (None, True)])
def test_prisma_by_version(version: str | None, in_tx: bool) -> None:
    assert prisma_splits(version) is (not in_tx)
    _, _, plans = model("prisma", {"m": IDX + "\n" + ADD}, prisma_version=version)
    assert plans["m"].will_fail is in_tx


def test_flyway_models() -> None:
    run, shape, _ = model("flyway", {"V2": ADD, "V3": ADD})
    assert shape == [(True, ["V2"]), (True, ["V3"])]
    _, shape, _ = model("flyway", {"V2": ADD, "V3": ADD}, flyway_group=True)
    assert shape == [(True, ["V2", "V3"])]
    run, shape, _ = model("flyway", {"V2": IDX})
    assert shape == [(False, ["V2"])] and "only non-transactional" in run.how["V2"]
    run, _, _ = model("flyway", {"V2": IDX + ADD})
    assert "mixed = true" in run.refused["V2"]
    run, shape, _ = model("flyway", {"V2": IDX + ADD}, flyway_mixed=True)
    assert not run.refused and shape == [(False, ["V2"]), (False, ["V2"])]
    _, shape, _ = model("flyway", {"V2": ADD}, flyway_no_transaction=frozenset({"V2"}))
    assert shape == [(False, ["V2"])]


def test_golang_migrate_one_exec_or_multi_statement() -> None:
    _, shape, plans = model("golang-migrate", {"2_x": IDX + ADD})
    assert shape == [(True, ["2_x", "2_x"])] and plans["2_x"].will_fail
    _, shape, plans = model("golang-migrate", {"2_x": IDX + ADD}, golang_multi_statement=True)
    assert shape == [(False, ["2_x"]), (False, ["2_x"])] and not plans["2_x"].will_fail
