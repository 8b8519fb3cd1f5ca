"""C3 lock trace: what each statement of a migration really does to a copy of the schema.

A shadow database is created on an admin URL and given the current schema (replay.py), and
each group of statements that share a transaction under the tool's model (txmodel.py) is then
run statement by statement inside one transaction that is rolled back. After every statement the session's own relation locks
(`pg_locks` where `pid = pg_backend_pid()`) and every table's `pg_relation_filenode` are read:
a new lock mode is what the statement took, a changed filenode is a table rewrite. Locks stay
held to the end of the transaction, which is exactly what a wrapped migration does in
production, so "held after the statement" is the lock a reader or writer would queue behind.

Statements that cannot run inside a transaction block (CREATE INDEX CONCURRENTLY, ...) are
not executed in the trace; they are flagged, and the statements are then applied for real the
way the tool applies them (Prisma before 7.4: one simple-query message), which proves whether the
tool can run them at all. The shadow holds no data: sizes come from production statistics (safety.py).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...redact import scrub
from .sqlrisk import (
    TOOL_MODES,
    Statement,
    is_transaction_control,
    non_transactional_reason,
    referenced_tables,
)

if TYPE_CHECKING:
    import psycopg

# Weakest to strongest; the conflict table in the PostgreSQL docs ("Table-Level Lock Modes").
LOCK_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
LOCK_TITLES = {
    "AccessShareLock": "ACCESS SHARE",
    "RowShareLock": "ROW SHARE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}


def lock_rank(mode: str | None) -> int:
    return LOCK_MODES.index(mode) if mode in LOCK_MODES else -1


def blocks_writes(mode: str | None) -> bool:
    """SHARE and stronger conflict with ROW EXCLUSIVE (INSERT/UPDATE/DELETE)."""
    return lock_rank(mode) >= lock_rank("ShareLock")


def blocks_reads(mode: str | None) -> bool:
    return mode == "AccessExclusiveLock"


@dataclass
class StatementTrace:
    index: int
    line: int
    statement: str
    kind: str
    executed: bool = False
    not_traced: str | None = None
    error: dict[str, Any] | None = None
    locks: list[dict[str, str]] = field(default_factory=list)  # new (table, mode) pairs
    held: dict[str, str] = field(default_factory=dict)  # strongest mode held per table after
    rewritten: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    proven_not_null: list[str] = field(default_factory=list)
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["duration_ms"] = round(self.duration_ms, 2)
        out["held"] = {t: LOCK_TITLES.get(m, m) for t, m in self.held.items()}
        out["locks"] = [
            {"table": lk["table"], "mode": LOCK_TITLES.get(lk["mode"], lk["mode"])}
            for lk in self.locks
        ]
        for k in ("not_traced", "error", "proven_not_null", "created", "dropped", "rewritten"):
            if not out[k]:
                out.pop(k)
        return out


@dataclass
class MigrationTrace:
    name: str
    statements: list[StatementTrace] = field(default_factory=list)
    tables_before: list[str] = field(default_factory=list)
    apply: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statements": [s.to_dict() for s in self.statements],
            "apply": self.apply,
            "duration_ms": round(self.duration_ms, 1),
        }


# --------------------------------------------------------------------------- shadow database


def _with_dbname(url: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@contextmanager
def shadow_database(admin_url: str, *, connect_timeout_s: int = 10) -> Iterator[str]:
    """A fresh, empty database on the admin URL's server, dropped afterwards (even on error)."""
    import psycopg

    name = f"relnb_shadow_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=connect_timeout_s) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield _with_dbname(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=connect_timeout_s) as c:
            c.execute(f'drop database if exists "{name}" with (force)')


# --------------------------------------------------------------------------- probes

_RELATIONS = """
select c.oid::int8, n.nspname, c.relname, c.relkind, pg_relation_filenode(c.oid)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'm')
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%'
"""

_LOCKS = """
select relation::int8, mode from pg_locks
where pid = pg_backend_pid() and locktype = 'relation' and granted
"""


def _strip(name: str) -> str:
    return name.removeprefix("public.").replace('"', "")


def qualname(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def _relations(conn: psycopg.Connection) -> dict[int, tuple[str, Any]]:
    return {r[0]: (qualname(r[1], r[2]), r[4]) for r in conn.execute(_RELATIONS).fetchall()}


def _locks(conn: psycopg.Connection) -> set[tuple[int, str]]:
    return {(r[0], r[1]) for r in conn.execute(_LOCKS).fetchall()}


def _check_proves_not_null(conn: psycopg.Connection, table: str, column: str) -> bool:
    """PG 12+ skips SET NOT NULL's scan when a valid CHECK (col IS NOT NULL) exists."""
    rows = conn.execute(
        "select pg_get_constraintdef(oid) from pg_constraint"
        " where conrelid = to_regclass(%s) and contype = 'c' and convalidated",
        [table],
    ).fetchall()
    pat = re.compile(rf'^CHECK \(\(?"?{re.escape(column)}"? IS NOT NULL\)?\)$', re.I)
    return any(pat.match(r[0]) for r in rows)


def db_error(exc: Exception) -> dict[str, Any]:
    return {
        "sqlstate": getattr(exc, "sqlstate", None),
        "message": scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)),
    }


# --------------------------------------------------------------------------- trace / apply


def trace_statements(
    conn: psycopg.Connection,
    name: str,
    statements: Sequence[Statement],
    *,
    pg_major: int,
    statement_timeout_ms: int = 60_000,
) -> MigrationTrace:
    """Run the statements in one transaction on `conn` (autocommit mode), record, roll back."""
    from .sqlrisk import size_proportional_work

    trace = MigrationTrace(name)
    t_all = time.perf_counter()
    first = _relations(conn)
    trace.tables_before = sorted(v[0] for v in first.values())
    conn.execute("begin")
    try:
        conn.execute(f"set local statement_timeout = {int(statement_timeout_ms)}")
        conn.execute("set local lock_timeout = 10000")
        for s in statements:
            st = StatementTrace(s.index, s.line, s.preview, s.kind)
            trace.statements.append(st)
            if is_transaction_control(s):
                st.not_traced = (
                    "transaction control: the trace runs the file in its own transaction"
                )
                continue
            reason = non_transactional_reason(s, pg_major)
            if reason:
                st.not_traced = reason
                continue
            for w in size_proportional_work(s):
                if w.column and "SET NOT NULL" in w.why:
                    # A savepoint, so a lookup that errors cannot abort the trace's transaction;
                    # without proof the statement simply keeps its full-scan finding.
                    with suppress(Exception), conn.transaction():
                        if _check_proves_not_null(conn, w.table, w.column):
                            st.proven_not_null.append(w.column)
            rel_before, locks_before = _relations(conn), _locks(conn)
            conn.execute("savepoint relnb_trace")
            t0 = time.perf_counter()
            try:
                conn.execute(s.text)
            except Exception as exc:
                st.duration_ms = (time.perf_counter() - t0) * 1000
                st.error = db_error(exc)
                conn.execute("rollback to savepoint relnb_trace")
                continue
            st.duration_ms = (time.perf_counter() - t0) * 1000
            st.executed = True
            rel_after, locks_after = _relations(conn), _locks(conn)
            conn.execute("release savepoint relnb_trace")
            names = {oid: v[0] for oid, v in {**rel_before, **rel_after}.items()}
            st.locks = [
                {"table": names[oid], "mode": mode}
                for oid, mode in sorted(locks_after - locks_before)
                if oid in names
            ]
            st.rewritten = sorted(
                rel_before[oid][0]
                for oid in rel_before.keys() & rel_after.keys()
                if rel_before[oid][1] != rel_after[oid][1]
            )
            st.created = sorted(rel_after[o][0] for o in rel_after.keys() - rel_before.keys())
            st.dropped = sorted(rel_before[o][0] for o in rel_before.keys() - rel_after.keys())
            named = {_strip(t) for t in referenced_tables(s)}
            touched = {lk["table"] for lk in st.locks} | set(st.rewritten)
            touched |= {n for n in names.values() if _strip(n) in named}
            for oid, mode in locks_after:
                t = names.get(oid)
                if t in touched and lock_rank(mode) > lock_rank(st.held.get(t)):
                    st.held[t] = mode
    finally:
        conn.execute("rollback")
    trace.duration_ms = (time.perf_counter() - t_all) * 1000
    return trace


def apply_like_tool(
    conn: psycopg.Connection, sql: str, statements: Sequence[Statement], tool: str
) -> dict[str, Any]:
    """Apply for real, as the tool would; on failure fall back to statement by statement."""
    mode = TOOL_MODES[tool]
    t0 = time.perf_counter()
    result: dict[str, Any] = {"tool": tool, "mode": mode}
    try:
        if mode == "single-message":
            conn.execute(sql)  # no parameters ⇒ psycopg sends one simple-query message
        elif mode == "wrapped":
            with conn.transaction():
                conn.execute(sql)
        else:
            errors = []
            for s in statements:
                try:
                    conn.execute(s.text)
                except Exception as exc:
                    errors.append({"line": s.line, **db_error(exc)})
            result["ok"] = not errors
            if errors:
                result["error"] = errors[0]
                result["errors"] = errors
            result["duration_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            return result
        result["ok"] = True
    except Exception as exc:
        result["ok"] = False
        result["error"] = db_error(exc)
        # Bring the shadow to the post-migration schema anyway so later migrations can be traced.
        fallback_errors = []
        for s in statements:
            if is_transaction_control(s):
                continue
            try:
                conn.execute(s.text)
            except Exception as inner:
                fallback_errors.append({"line": s.line, **db_error(inner)})
        result["fallback"] = "applied statement by statement in autocommit"
        if fallback_errors:
            result["fallback_errors"] = fallback_errors
    result["duration_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return result


def server_major(conn: psycopg.Connection) -> int:
    row = conn.execute("select current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0]) // 10000
