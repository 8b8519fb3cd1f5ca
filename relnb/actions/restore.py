"""E3: restore a D2 snapshot (S3 → pg_restore) and prove it: the dump's checksum must still match,
and the row counts pg_dump saw must come back, table by table.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..redact import connect_error, scrub
from ..results import Outcome
from .pgtools import count_rows, download, find_pg_tool, libpq_args, s3_client


def restore_snapshot_s3(
    db_url: str,
    bucket: str,
    key: str,
    *,
    expected_sha256: str | None = None,
    expected_rows: Mapping[str, int] | None = None,
    dump_major: int | None = None,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    client: Any = None,
    pg_restore: str | None = None,
    timeout_s: float = 3600.0,
    require_checksum: bool = True,
    gate: str = "E3",
) -> Outcome:
    """Download the dump, check its SHA-256, `pg_restore --clean --if-exists` into `db_url`, and
    compare row counts with the ones recorded at snapshot time. Without `expected_sha256` the
    `<key>.sha256` object is used; a dump with no checksum at all is not restored into
    production. A restore test into a scratch database (C2, `require_checksum=False`) accepts a
    team's nightly dump that has no checksum beside it: there the restore itself is the proof."""
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError

    ev: dict[str, Any] = {"bucket": bucket, "key": key}
    s3 = s3_client(client, endpoint_url, region_name)
    t0 = time.perf_counter()
    try:
        if not expected_sha256:
            try:
                side = s3.get_object(Bucket=bucket, Key=key + ".sha256")["Body"].read().decode()
                expected_sha256 = side.split()[0]
                ev["checksum_from"] = f"{key}.sha256"
            except ClientError:
                if require_checksum:
                    return Outcome.failed(
                        f"{gate}: no recorded checksum for s3://{bucket}/{key}; refusing to restore",
                        **ev,
                    )
                ev["checksum_from"] = None
        with tempfile.TemporaryDirectory(prefix="relnb-restore-") as tmp:
            dump = Path(tmp) / "db.dump"
            got, size = download(s3, bucket, key, dump)
            ev.update(size_bytes=size, sha256=got)
            if expected_sha256 and got != expected_sha256:
                return Outcome.failed(
                    f"{gate}: dump checksum {got[:12]}… differs from recorded {expected_sha256[:12]}…; not restored",
                    **ev,
                )
            try:
                with psycopg.connect(db_url, connect_timeout=10) as conn:
                    server_major = conn.info.server_version // 10000
            except psycopg.Error as exc:
                return Outcome.failed(
                    f"{gate}: {connect_error(exc, db_url, 'the target database')}", **ev
                )
            need = max(server_major, dump_major or 0)
            tool = find_pg_tool("pg_restore", need, pg_restore)
            if tool is None:
                return Outcome.failed(f"{gate}: no pg_restore with major version ≥ {need} found", **ev)
            ev["pg_restore"] = {"path": tool[0], "major": tool[1]}
            conninfo, pwenv = libpq_args(db_url)
            argv = [
                tool[0],
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",
                "--dbname",
                conninfo,
                str(dump),
            ]
            try:
                proc = subprocess.run(
                    argv,
                    capture_output=True,
                    env={**os.environ, **pwenv},
                    timeout=timeout_s,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                return Outcome.failed(f"{gate}: pg_restore timed out after {timeout_s:g} s", **ev)
            stderr = scrub(proc.stderr.decode(errors="replace")).strip()
            ev["pg_restore_exit"] = proc.returncode
            if proc.returncode != 0:
                ev["stderr_tail"] = stderr[-1000:]
                return Outcome.failed(
                    f"{gate}: pg_restore exited {proc.returncode}: {_first_error(stderr)}", **ev
                )
    except (ClientError, BotoCoreError) as exc:
        return Outcome.failed(f"{gate}: S3 error: {scrub(str(exc))[:200]}", **ev)
    with psycopg.connect(db_url, connect_timeout=10) as conn:
        restored = count_rows(conn)
    ev["restored_rows"] = restored
    ev["duration_s"] = round(time.perf_counter() - t0, 2)
    if expected_rows is not None:
        diff = {
            t: {"expected": n, "restored": restored.get(t)}
            for t, n in expected_rows.items()
            if restored.get(t) != n
        }
        ev["row_mismatches"] = diff
        if diff:
            first = ", ".join(
                f"{t} {d['restored']}≠{d['expected']}" for t, d in list(diff.items())[:3]
            )
            return Outcome.failed(
                f"{gate}: restored, but row counts differ from the snapshot: {first}", **ev
            )
        verdict = f"all {len(expected_rows)} tables' row counts match the snapshot"
    else:
        if not restored:
            return Outcome.failed(f"{gate}: restore finished but the database has no tables", **ev)
        verdict = f"{len(restored)} tables restored (no recorded counts to compare)"
    total = sum(restored.values())
    return Outcome.passed(f"restored s3://{bucket}/{key} ({total} rows): {verdict}", **ev)


def _first_error(stderr: str) -> str:
    """pg_restore's first ERROR line: with --exit-on-error it is the cause, and the tail after
    it is the whole statement it was running (a CREATE TRIGGER runs to hundreds of characters)."""
    for line in stderr.splitlines():
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip()[:200]
    return stderr[-200:]


def restore_from_evidence(db_url: str, d2_evidence: Mapping[str, Any], **kwargs: Any) -> Outcome:
    """E3 from D2's recorded evidence (bucket, key, sha256, row counts, dump tool major)."""
    for k in ("bucket", "key", "sha256"):
        if not d2_evidence.get(k):
            return Outcome.inconclusive(
                f"E3: D2 evidence has no {k!r}; was the snapshot taken to S3?"
            )
    kwargs.setdefault("endpoint_url", d2_evidence.get("endpoint_url"))
    return restore_snapshot_s3(
        db_url,
        d2_evidence["bucket"],
        d2_evidence["key"],
        expected_sha256=d2_evidence["sha256"],
        expected_rows=d2_evidence.get("row_counts"),
        dump_major=(d2_evidence.get("pg_dump") or {}).get("major"),
        **kwargs,
    )
