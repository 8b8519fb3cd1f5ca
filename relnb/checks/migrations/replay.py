"""Replaying a release's migrations on a shadow database the way their tool runs them.

The run is cut into blocks by the tool's transaction model (txmodel.py). A block that shares a
transaction is traced as one (its statements' locks are held together, as in production) and
rolled back, then applied for real the way the tool sends it, so the next block starts from the
schema the tool would leave; a statement that runs alone is traced alone, then applied. Each
statement's trace is filed under the migration it came from, for the per-migration verdict.

The shadow starts from the current schema: copied from production with `pg_dump --schema-only`
through a read-only session when a production URL is given (the schema the release will really
meet, for any tool), else rebuilt from the earlier migrations' SQL.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...redact import scrub
from .locktrace import MigrationTrace, apply_like_tool, db_error, trace_statements
from .sqlrisk import is_transaction_control
from .txmodel import Block, RunModel

if TYPE_CHECKING:
    import psycopg


def replay_run(
    conn: psycopg.Connection,
    run: RunModel,
    names: Sequence[str],
    *,
    pg_major: int,
    statement_timeout_ms: int = 60_000,
) -> dict[str, MigrationTrace]:
    traces = {n: MigrationTrace(n) for n in names}
    for n in names:
        traces[n].apply = {"tool": run.tool, "mode": "autocommit", "ok": True}
    for block in run.blocks:
        owner = {st.stmt.index: st.migration for st in block.steps}
        for st in block.steps:
            if block.in_transaction:
                traces[st.migration].apply["mode"] = block.apply
        if block.in_transaction:
            _trace_into(conn, traces, owner, [st.stmt for st in block.steps], pg_major, statement_timeout_ms)
            _apply_block(conn, block, traces, run.tool)
        else:
            for st in block.steps:
                _trace_into(conn, traces, owner, [st.stmt], pg_major, statement_timeout_ms)
                try:
                    conn.execute(st.stmt.text)
                except Exception as exc:
                    _failed(traces[st.migration], st.stmt.line, exc)
    return traces


def _trace_into(
    conn: psycopg.Connection,
    traces: dict[str, MigrationTrace],
    owner: dict[int, str],
    stmts: list[Any],
    pg_major: int,
    timeout_ms: int,
) -> None:
    tr = trace_statements(conn, "block", stmts, pg_major=pg_major, statement_timeout_ms=timeout_ms)
    for st in tr.statements:
        mt = traces[owner[st.index]]
        if not mt.statements and not mt.tables_before:
            mt.tables_before = list(tr.tables_before)
        mt.statements.append(st)
        mt.duration_ms += st.duration_ms


def _failed(trace: MigrationTrace, line: int, exc: Exception) -> None:
    if trace.apply.get("ok"):
        trace.apply["ok"] = False
        trace.apply["error"] = {"line": line, **db_error(exc)}


def _apply_block(conn: psycopg.Connection, block: Block, traces: dict[str, MigrationTrace], tool: str) -> None:
    if block.apply == "single-message":
        name = block.steps[0].migration
        res = apply_like_tool(conn, block.sql or "", [st.stmt for st in block.steps], "prisma")
        res["tool"] = tool
        traces[name].apply = res
        return
    conn.execute("begin")
    failed_at: int | None = None
    for i, st in enumerate(block.steps):
        try:
            conn.execute(st.stmt.text)
        except Exception as exc:
            _failed(traces[st.migration], st.stmt.line, exc)
            failed_at = i
            break
    if failed_at is None:
        conn.execute("commit")
        return
    conn.execute("rollback")
    # the tool would stop here; the shadow moves on statement by statement so later ones can be traced
    for st in block.steps:
        if is_transaction_control(st.stmt):
            continue
        try:
            conn.execute(st.stmt.text)
        except Exception as exc:
            traces[st.migration].apply.setdefault("fallback_errors", []).append({"line": st.stmt.line, **db_error(exc)})
        traces[st.migration].apply["fallback"] = "applied statement by statement in autocommit"


# --------------------------------------------------------------------------- the current schema


def _client_dirs() -> list[str]:
    dirs = []
    found = shutil.which("pg_dump")
    if found:
        dirs.append(os.path.dirname(found))
    # pgserver's bundled client, found without importing pgserver (its import has side effects)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin:
        dirs.append(os.path.join(os.path.dirname(spec.origin), "pginstall", "bin"))
    return dirs


def _major(pg_dump: str) -> int:
    try:
        out = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return -1
    m = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(m.group(1)) if m else -1


def pg_client() -> tuple[str, str] | None:
    """(pg_dump, psql) of the newest client at hand: pg_dump refuses servers newer than itself."""
    best: tuple[int, str, str] | None = None
    for d in _client_dirs():
        dump, psql = os.path.join(d, "pg_dump"), os.path.join(d, "psql")
        if os.path.exists(dump) and os.path.exists(psql):
            v = _major(dump)
            if best is None or v > best[0]:
                best = (v, dump, psql)
    return (best[1], best[2]) if best else None


def _libpq_env(url: str, read_only: bool) -> dict[str, str]:
    """The URL as PG* variables: a password never appears on a command line (`ps`)."""
    from psycopg.conninfo import conninfo_to_dict

    keys = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE",
            "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for k, v in conninfo_to_dict(url).items():
        if k in keys and v is not None:
            env[keys[k]] = str(v)
    if read_only:
        env["PGOPTIONS"] = "-c default_transaction_read_only=on -c statement_timeout=60000"
    return env


def copy_schema(production_url: str, shadow_url: str, *, timeout_s: int = 300) -> dict[str, Any]:
    """Production's schema (no data) into the shadow: pg_dump --schema-only through a read-only
    session, restored with psql. Raises RuntimeError with a one-line, secret-free reason."""
    client = pg_client()
    if client is None:
        raise RuntimeError("pg_dump/psql not found (install postgresql-client, or pip install pgserver)")
    dump, psql = client
    got = subprocess.run(
        [dump, "--schema-only", "--no-owner", "--no-privileges", "--lock-wait-timeout=5000"],
        env=_libpq_env(production_url, True), capture_output=True, text=True, timeout=timeout_s, check=False,
    )
    if got.returncode != 0:
        raise RuntimeError(f"pg_dump of production failed: {scrub(got.stderr.strip())[:300]}")
    put = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        input=got.stdout, env=_libpq_env(shadow_url, False), capture_output=True, text=True, timeout=timeout_s,
        check=False,
    )
    if put.returncode != 0:
        raise RuntimeError(f"restoring production's schema into the shadow failed: {scrub(put.stderr.strip())[:300]}")
    return {"schema_from": "production (pg_dump --schema-only, read-only session)", "pg_dump": dump,
            "schema_bytes": len(got.stdout)}
