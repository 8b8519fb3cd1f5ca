"""How big production's tables are: what decides whether a lock or a rewrite in a migration is a
risk (a table rewrite on ten rows is nothing; on ten million it is an outage).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .ledger import readonly_connect, session_proof

DEFAULT_LARGE_ROWS = 10_000


DEFAULT_LARGE_BYTES = 256 * 1024 * 1024


def table_sizes(
    production_url: str,
    tables: Iterable[str],
    *,
    statement_timeout_ms: int = 5000,
    lock_timeout_ms: int = 1000,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Rows (planner estimate) and bytes of each table in production, from a read-only session."""
    sizes: dict[str, dict[str, Any]] = {}
    with readonly_connect(
        production_url, statement_timeout_ms=statement_timeout_ms, lock_timeout_ms=lock_timeout_ms
    ) as conn:
        proof = session_proof(conn)
        for t in sorted(set(tables)):
            row = conn.execute(
                "select c.reltuples::int8, pg_total_relation_size(c.oid)::int8"
                " from pg_class c where c.oid = to_regclass(%s)",
                [t],
            ).fetchone()
            if row is None or row[1] is None:
                sizes[t] = {"exists": False, "rows": 0, "bytes": 0}
            else:
                # reltuples is -1 (PG 14+) or 0 before the first ANALYZE: unknown, not empty.
                rows = int(row[0]) if row[0] is not None and row[0] > 0 else None
                if rows is None and row[1] > 0:
                    got = conn.execute(
                        "select count(*) from (select 1 from "
                        + quote_ident_path(t)
                        + " limit 1000001) s"
                    ).fetchone()
                    rows = int(got[0]) if got else None
                sizes[t] = {"exists": True, "rows": rows, "bytes": int(row[1])}
    return sizes, proof


def quote_ident_path(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def bare_name(name: str) -> str:
    return name.removeprefix("public.").strip('"')


def is_large(size: dict[str, Any] | None, large_rows: int | None, large_bytes: int | None) -> bool:
    if not size:
        return False
    rows, nbytes = size.get("rows"), size.get("bytes") or 0
    if large_rows is not None and rows is not None and rows >= large_rows:
        return True
    return large_bytes is not None and nbytes >= large_bytes


def size_text(size: dict[str, Any]) -> str:
    rows = size.get("rows")
    parts = [f"{rows:,} rows" if rows is not None else "rows unknown"]
    if size.get("bytes"):
        parts.append(fmt_bytes(size["bytes"]))
    return ", ".join(parts)
