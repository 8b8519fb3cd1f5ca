"""D2 fresh DB snapshot (pg_dump → S3, or an RDS snapshot); E3's restore is relnb.actions.restore.

The dump is streamed: pg_dump's stdout is hashed and uploaded in multipart parts as it is
produced, so no local copy of a production database is ever written. Row counts are taken in
the very snapshot pg_dump reads (`pg_export_snapshot()` + `pg_dump --snapshot`), which lets the
restore prove "rows back" exactly rather than approximately. The checksum is recorded in the
outcome (the journal) and in a `<key>.sha256` object next to the dump; E3 refuses a dump whose
bytes no longer match.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from ..redact import connect_error, scrub
from ..results import Outcome
from .pgtools import MIB, count_rows, download, drain, find_pg_tool, libpq_args, s3_client

DEFAULT_PART_SIZE = 16 * MIB  # S3 minimum part size is 5 MiB (except the last part)
UPLOAD_WORKERS = 3


# --------------------------------------------------------------------------------------------
# D2: pg_dump → S3


def take_snapshot_s3(
    db_url: str,
    bucket: str,
    prefix: str,
    *,
    label: str = "snapshot",
    endpoint_url: str | None = None,
    region_name: str | None = None,
    client: Any = None,
    part_size: int = DEFAULT_PART_SIZE,
    verify: str = "download",
    with_row_counts: bool = True,
    pg_dump: str | None = None,
    timeout_s: float = 3600.0,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """Dump `db_url` (custom format) straight into s3://bucket/prefix/<label>-<UTC>.dump.

    Passed only when the upload completed and the stored object has the streamed size and (with
    `verify="download"`) hashes to the streamed SHA-256. Evidence carries what E3 needs:
    bucket, key, sha256, size, the dump tool's major version and the row counts.
    """
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError

    if part_size < 5 * MIB:
        raise ValueError("part_size must be at least 5 MiB (S3 multipart minimum)")
    if verify not in ("download", "head"):
        raise ValueError("verify must be 'download' or 'head'")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    key = f"{prefix.strip('/')}/{label}-{stamp}.dump".lstrip("/")
    ev: dict[str, Any] = {"bucket": bucket, "key": key, "endpoint_url": endpoint_url}
    t0 = time.perf_counter()
    try:
        conn = psycopg.connect(db_url, connect_timeout=10)
    except psycopg.Error as exc:
        return Outcome.failed(f"D2: {connect_error(exc, db_url)}", **ev)
    try:
        server_num = conn.info.server_version
        ev["server_version"] = f"{server_num // 10000}.{server_num % 10000}"
        tool = find_pg_tool("pg_dump", server_num // 10000, pg_dump)
        if tool is None:
            return Outcome.failed(
                f"D2: no pg_dump with major version ≥ {server_num // 10000} found "
                "(install postgresql-client of that version or pass pg_dump=)",
                **ev,
            )
        ev["pg_dump"] = {"path": tool[0], "major": tool[1]}
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snap = conn.execute("select pg_export_snapshot()").fetchone()[0]
        if with_row_counts:
            ev["row_counts"] = count_rows(conn)
        conninfo, pwenv = libpq_args(db_url)
        s3 = s3_client(client, endpoint_url, region_name)
        result = _stream_dump_to_s3(
            [tool[0], "--format=custom", "--no-owner", f"--snapshot={snap}", "--dbname", conninfo],
            {**os.environ, **pwenv},
            s3,
            bucket,
            key,
            part_size,
            timeout_s,
            progress,
        )
    except (ClientError, BotoCoreError) as exc:
        return Outcome.failed(f"D2: S3 error: {scrub(str(exc))[:200]}", **ev)
    except (psycopg.Error, OSError) as exc:
        return Outcome.failed(f"D2: {type(exc).__name__}: {scrub(str(exc))[:200]}", **ev)
    finally:
        conn.close()
    ev.update(result)
    ev["duration_s"] = round(time.perf_counter() - t0, 2)
    if "error" in result:
        return Outcome.failed(f"D2: {result['error']}", **ev)
    size, digest = result["size_bytes"], result["sha256"]
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key + ".sha256",
            Body=f"{digest}  {key.rsplit('/', 1)[-1]}\n".encode(),
        )
        head = s3.head_object(Bucket=bucket, Key=key)
        ev["stored_size_bytes"] = head["ContentLength"]
        if head["ContentLength"] != size:
            return Outcome.failed(
                f"D2: stored object is {head['ContentLength']} bytes, streamed {size}", **ev
            )
        if verify == "download":
            got, _ = download(s3, bucket, key, None)
            ev["verified"] = "download sha256"
            if got != digest:
                return Outcome.failed(
                    "D2: downloaded dump's SHA-256 differs from the streamed one", **ev
                )
        else:
            ev["verified"] = "size only"
    except (ClientError, BotoCoreError) as exc:
        return Outcome.failed(f"D2: verifying the upload failed: {scrub(str(exc))[:200]}", **ev)
    ev["duration_s"] = round(time.perf_counter() - t0, 2)
    ev["throughput_mib_s"] = round(size / MIB / max(ev["duration_s"], 1e-6), 1)
    if size == 0:
        return Outcome.failed("D2: pg_dump produced an empty dump", **ev)
    return Outcome.passed(
        f"snapshot s3://{bucket}/{key}: {size / MIB:.1f} MiB, sha256 {digest[:12]}…, "
        f"{len(ev.get('row_counts', {}))} tables counted, {ev['verified']} ({ev['duration_s']} s)",
        **ev,
    )


def _stream_dump_to_s3(
    argv: list[str],
    env: Mapping[str, str],
    s3: Any,
    bucket: str,
    key: str,
    part_size: int,
    timeout_s: float,
    progress: Callable[[str], None] | None,
) -> dict[str, Any]:
    """Run pg_dump and upload its stdout as it comes; abort the multipart upload on any failure."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    err_chunks: list[bytes] = []
    err_thread = drain(proc.stderr, err_chunks)
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    digest = hashlib.sha256()
    size = 0
    buf = bytearray()
    upload_id: str | None = None
    parts: list[dict[str, Any]] = []
    in_flight: list[tuple[int, Future[Any]]] = []
    pool = ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="relnb-d2-upload")
    try:
        while True:
            chunk = proc.stdout.read(1024 * 1024)
            if chunk:
                digest.update(chunk)
                size += len(chunk)
                buf.extend(chunk)
            if len(buf) >= part_size or (not chunk and upload_id is not None and buf):
                if upload_id is None:
                    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
                body = bytes(buf)
                buf.clear()
                n = len(in_flight) + len(parts) + 1
                # parts upload while pg_dump keeps producing; at most UPLOAD_WORKERS parts in memory
                in_flight.append(
                    (
                        n,
                        pool.submit(
                            s3.upload_part,
                            Bucket=bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=n,
                            Body=body,
                        ),
                    )
                )
                while len(in_flight) >= UPLOAD_WORKERS:
                    _finish_part(in_flight, parts)
                if progress:
                    progress(f"D2: part {n} queued ({size / MIB:.0f} MiB dumped)")
            if not chunk:
                break
        while in_flight:
            _finish_part(in_flight, parts)
        proc.wait()
        err_thread.join(5)
        timed_out = not timer.is_alive() and proc.returncode != 0
        stderr = scrub(b"".join(err_chunks).decode(errors="replace")).strip()
        if proc.returncode != 0:
            if upload_id:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            why = f"timed out after {timeout_s:g} s" if timed_out else f"exited {proc.returncode}"
            return {"error": f"pg_dump {why}: {stderr[-300:]}", "stderr_tail": stderr[-1000:]}
        if upload_id is None:
            s3.put_object(Bucket=bucket, Key=key, Body=bytes(buf))
            mode = "single put"
        else:
            s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            mode = f"multipart ({len(parts)} parts of ≤{part_size // MIB} MiB)"
    except BaseException:
        proc.kill()
        proc.wait()
        pool.shutdown(wait=True, cancel_futures=True)
        if upload_id:
            # Best effort: the upload's own error is the one to report, not a failed abort.
            with suppress(Exception):
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    finally:
        timer.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return {
        "size_bytes": size,
        "sha256": digest.hexdigest(),
        "upload": mode,
        "stderr_tail": stderr[-500:] if stderr else "",
    }


def _finish_part(in_flight: list[tuple[int, Future[Any]]], parts: list[dict[str, Any]]) -> None:
    n, fut = in_flight.pop(0)
    parts.append({"PartNumber": n, "ETag": fut.result()["ETag"]})


# --------------------------------------------------------------------------------------------
# D2: RDS


def take_snapshot_rds(
    instance_id: str,
    snapshot_id: str,
    *,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    client: Any = None,
    timeout_s: float = 3600.0,
    poll_s: float = 15.0,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """`create_db_snapshot`, then wait until it is `available` and has a non-zero size."""
    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        import boto3

        client = boto3.client("rds", endpoint_url=endpoint_url, region_name=region_name)
    ev: dict[str, Any] = {"instance": instance_id, "snapshot_id": snapshot_id}
    t0 = time.monotonic()
    try:
        snap = client.create_db_snapshot(
            DBSnapshotIdentifier=snapshot_id, DBInstanceIdentifier=instance_id
        )["DBSnapshot"]
        statuses = [snap.get("Status")]
        while snap.get("Status") != "available":
            if snap.get("Status") in ("failed", "error", "deleted", "incompatible-restore"):
                break
            if time.monotonic() - t0 + poll_s > timeout_s:
                break
            if progress:
                progress(f"D2: RDS snapshot {snapshot_id} is {snap.get('Status')}")
            time.sleep(poll_s)
            snap = client.describe_db_snapshots(DBSnapshotIdentifier=snapshot_id)["DBSnapshots"][0]
            if snap.get("Status") != statuses[-1]:
                statuses.append(snap.get("Status"))
    except (ClientError, BotoCoreError) as exc:
        return Outcome.failed(
            f"D2: RDS snapshot of {instance_id} failed: {scrub(str(exc))[:200]}", **ev
        )
    ev.update(
        arn=snap.get("DBSnapshotArn"),
        status=snap.get("Status"),
        statuses=statuses,
        created=str(snap.get("SnapshotCreateTime")),
        allocated_gb=snap.get("AllocatedStorage"),
        engine=f"{snap.get('Engine')} {snap.get('EngineVersion')}",
        encrypted=snap.get("Encrypted"),
        waited_s=round(time.monotonic() - t0, 1),
    )
    if snap.get("Status") != "available":
        return Outcome.failed(
            f"D2: RDS snapshot {snapshot_id} is {snap.get('Status')!r} after {ev['waited_s']} s",
            **ev,
        )
    if not snap.get("AllocatedStorage"):
        return Outcome.failed(f"D2: RDS snapshot {snapshot_id} reports no allocated storage", **ev)
    return Outcome.passed(
        f"RDS snapshot {snapshot_id} of {instance_id} available ({snap['AllocatedStorage']} GiB)",
        **ev,
    )



