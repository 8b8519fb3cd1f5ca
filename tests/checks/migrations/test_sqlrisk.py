"""Static SQL analysis: statements and lines, transaction plans, destructive changes, squawk."""

from __future__ import annotations

import pytest

from relnb.checks.migrations.sqlrisk import (
    SqlParseError,
    destructive_changes,
    non_transactional_reason,
    parse_statements,
    squawk_lint,
    transaction_plan,
)

SQL = """-- é comment
ALTER TABLE documents
  ADD COLUMN summary text;

CREATE INDEX CONCURRENTLY documents_summary_idx ON documents (summary);
ALTER TYPE doc_kind ADD VALUE 'docx';
"""


def test_statements_keep_lines_and_text():
    stmts = parse_statements(SQL)
    assert [(s.line, s.end_line, s.kind) for s in stmts] == [
        (2, 3, "AlterTableStmt"),
        (5, 5, "IndexStmt"),
        (6, 6, "AlterEnumStmt"),
    ]
    assert stmts[0].preview == "ALTER TABLE documents ADD COLUMN summary text"
    with pytest.raises(SqlParseError):
        parse_statements("ALTER TABL x")


def test_non_transactional_statements_depend_on_version():
    s = parse_statements(SQL)
    assert "CONCURRENTLY" in non_transactional_reason(s[1])
    assert non_transactional_reason(s[2], pg_major=16) is None
    assert "before PostgreSQL 12" in non_transactional_reason(s[2], pg_major=11)
    for sql in ("VACUUM documents", "DROP INDEX CONCURRENTLY i", "REINDEX INDEX CONCURRENTLY i"):
        assert non_transactional_reason(parse_statements(sql)[0]), sql
    assert non_transactional_reason(parse_statements("ANALYZE documents")[0]) is None


def test_transaction_plans_per_tool():
    one = parse_statements("CREATE INDEX CONCURRENTLY i ON t (a);")
    two = parse_statements("ALTER TABLE t ADD COLUMN b int; CREATE INDEX CONCURRENTLY i ON t (b);")
    p = transaction_plan(one, "prisma")
    assert not p.runs_in_transaction and not p.will_fail
    p = transaction_plan(two, "prisma")
    assert p.runs_in_transaction and p.will_fail and "implicit transaction" in p.how
    assert transaction_plan(one, "transaction").will_fail
    assert not transaction_plan(two, "psql").will_fail
    wrapped = parse_statements("BEGIN; CREATE INDEX CONCURRENTLY i ON t (a); COMMIT;")
    assert transaction_plan(wrapped, "psql").will_fail
    assert transaction_plan(wrapped, "prisma").explicit_begin
    with pytest.raises(ValueError):
        transaction_plan(one, "liquibase")


def test_destructive_changes():
    sql = """
    ALTER TABLE documents DROP COLUMN body;
    ALTER TABLE documents RENAME COLUMN title TO name;
    ALTER TABLE documents RENAME TO docs;
    ALTER TABLE documents ALTER COLUMN status SET NOT NULL;
    ALTER TABLE documents ADD COLUMN owner int NOT NULL;
    ALTER TABLE documents ADD COLUMN prio int NOT NULL DEFAULT 0;
    ALTER TABLE documents ADD COLUMN n bigserial NOT NULL;
    ALTER TABLE documents ALTER COLUMN id TYPE bigint;
    ALTER TABLE documents DROP CONSTRAINT documents_pkey;
    DROP INDEX documents_title_idx;
    DROP TABLE audit_log;
    """
    got = [(f.rule, f.line) for f in destructive_changes(sql)]
    assert got == [
        ("drop-column", 2),
        ("rename-column", 3),
        ("rename-table", 4),
        ("set-not-null", 5),
        ("add-column-not-null-no-default", 6),
        ("column-type-change", 9),
        ("drop-constraint", 10),
        ("drop-index", 11),
        ("drop-table", 12),
    ]
    assert destructive_changes("CREATE TABLE t (id int); ALTER TABLE t ADD COLUMN x int;") == []


def test_squawk_findings_map_to_statements():
    sql = "-- header\nCREATE TABLE t (id int);\n\nCREATE INDEX t_idx ON t (id);\n"
    findings, err = squawk_lint(sql)
    assert err is None
    idx = [f for f in findings if f.rule == "squawk:require-concurrent-index-creation"]
    assert idx and idx[0].line == 4 and idx[0].statement == "CREATE INDEX t_idx ON t (id)"
    clean, err = squawk_lint("SELECT 1;")
    assert err is None and clean == []
