"""The PostgreSQL client tools and S3 plumbing a snapshot and a restore share.

pg_dump/pg_restore must be at least the server's major version (and pg_restore at least the
dump's): the tool is chosen among the machine's PostgreSQL installs and named in evidence.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


MAX_COUNT_TABLES = 500


def tool_dirs() -> list[Path]:
    dirs: list[Path] = []
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        dirs.append(d)
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.origin:  # pgserver bundles PostgreSQL; located without importing it
        dirs.append(Path(spec.origin).parent / "pginstall" / "bin")
    return dirs


def tool_major(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\(PostgreSQL\)\s+(\d+)", out.stdout)
    return int(m.group(1)) if m else None


def find_pg_tool(tool: str, min_major: int, explicit: str | None = None) -> tuple[str, int] | None:
    """The installed `tool` with the smallest major version ≥ `min_major` (or the explicit one)."""
    if explicit:
        major = tool_major(explicit)
        return (explicit, major) if major is not None and major >= min_major else None
    seen: dict[str, int] = {}
    candidates = [shutil.which(tool)] + [str(d / tool) for d in tool_dirs()]
    for c in candidates:
        if not c or not os.access(c, os.X_OK):
            continue
        real = os.path.realpath(c)
        if real in seen:
            continue
        major = tool_major(c)
        if major is not None:
            seen[c] = major
    fits = sorted(((m, p) for p, m in seen.items() if m >= min_major))
    return (fits[0][1], fits[0][0]) if fits else None


def libpq_args(db_url: str) -> tuple[str, dict[str, str]]:
    """A keyword conninfo without the password, and the env that carries the password."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(db_url)
    password = params.pop("password", None)
    env = {"PGPASSWORD": str(password)} if password else {}
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _tables(conn: Any) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select schemaname, tablename from pg_tables "
        "where schemaname not in ('pg_catalog', 'information_schema') "
        "and schemaname not like 'pg_toast%' order by 1, 2"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def count_rows(conn: Any, limit: int = MAX_COUNT_TABLES) -> dict[str, int]:
    from psycopg import sql

    out: dict[str, int] = {}
    for schema, table in _tables(conn)[:limit]:
        q = sql.SQL("select count(*) from {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        out[f"{schema}.{table}"] = int(conn.execute(q).fetchone()[0])
    return out


def s3_client(client: Any, endpoint_url: str | None, region_name: str | None) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name)


def drain(stream: Any, sink: list[bytes]) -> threading.Thread:
    def run() -> None:
        for chunk in iter(lambda: stream.read(65536), b""):
            sink.append(chunk)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def download(s3: Any, bucket: str, key: str, dest: Path | None) -> tuple[str, int]:
    """Stream an object, hashing it; written to `dest` when given. Returns (sha256, size)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    size = 0
    with open(dest, "wb") if dest else NullFile() as fh:
        for chunk in iter(lambda: body.read(MIB), b""):
            digest.update(chunk)
            size += len(chunk)
            fh.write(chunk)
    return digest.hexdigest(), size


class NullFile:
    def __enter__(self) -> NullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> int:
        return len(data)
