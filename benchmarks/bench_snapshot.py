"""D2 snapshot+upload throughput on a ~100 MB database versus `pg_dump | upload` by hand.

Both dump the same database in custom format to the same moto S3 server in the same run:
  by hand — `pg_dump -Fc` piped into boto3's `upload_fileobj` (its managed multipart upload);
  relnb   — `take_snapshot_s3` (exported snapshot + row counts, streamed multipart upload,
            SHA-256, size check), once with verify="head" and once with verify="download".
Uses the machine's PostgreSQL (RELNB_BENCH_PG, default postgresql://postgres@127.0.0.1:5432/test)
or an embedded pgserver when that does not answer.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from relnb.actions import pgtools, snapshot

ADMIN = os.environ.get("RELNB_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
TARGET_MB = float(os.environ.get("RELNB_BENCH_DB_MB", "100"))


def _admin_url() -> tuple[str, object | None]:
    try:
        with psycopg.connect(ADMIN, connect_timeout=3) as c:
            c.execute("select 1")
        return ADMIN, None
    except psycopg.Error:
        import pgserver

        base = Path(tempfile.mkdtemp(prefix="relnb-bench-pg-", dir="/tmp"))
        os.chmod(base, 0o755)
        server = pgserver.get_server(base / "data", cleanup_mode="delete")
        return server.get_uri(), server


def main() -> None:
    from relnb_demo.services import start_moto

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    admin, server = _admin_url()
    name = f"relnb_bench_{uuid.uuid4().hex[:8]}"
    params = conninfo_to_dict(admin)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'create database "{name}"')
    params["dbname"] = name
    url = make_conninfo(**params)
    moto, port = start_moto()
    try:
        rows = int(TARGET_MB * 1024 * 1024 / 330)
        t0 = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("create table events (id bigint primary key, kind text, payload text)")
            c.execute(
                "insert into events select g, 'k' || (g %% 17), "
                "md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) "
                "|| md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) "
                "from generate_series(1, %s) g",
                (rows,),
            )
            c.execute("vacuum analyze events")
            size = c.execute("select pg_database_size(current_database())").fetchone()[0]
        print(
            f"database {size / 1048576:.0f} MiB ({rows} rows) built in {time.perf_counter() - t0:.1f} s"
        )
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        with psycopg.connect(url) as c:
            major = c.info.server_version // 10000
        tool = pgtools.find_pg_tool("pg_dump", major)
        assert tool, "no suitable pg_dump"

        t0 = time.perf_counter()
        proc = subprocess.Popen([tool[0], "-Fc", "--no-owner", "-d", url], stdout=subprocess.PIPE)
        s3.upload_fileobj(proc.stdout, "bench", "by-hand/db.dump")
        assert proc.wait() == 0
        hand_s = time.perf_counter() - t0
        hand_size = s3.head_object(Bucket="bench", Key="by-hand/db.dump")["ContentLength"]

        results = {}
        for verify in ("head", "download"):
            t0 = time.perf_counter()
            out = snapshot.take_snapshot_s3(
                url, "bench", f"relnb-{verify}", client=s3, verify=verify
            )
            results[verify] = (time.perf_counter() - t0, out)
            assert out.status.value == "passed", out.summary
        mib = hand_size / 1048576
        print(f"pg_dump used: {tool[0]} (major {tool[1]}, server {major}); dump {mib:.0f} MiB")
        print(
            f"by hand  pg_dump | upload_fileobj:       {hand_s:6.1f} s  {mib / hand_s:6.1f} MiB/s"
        )
        for verify, (secs, out) in results.items():
            dmib = out.evidence["size_bytes"] / 1048576
            print(
                f"relnb    take_snapshot_s3 verify={verify:<8}: {secs:6.1f} s  {dmib / secs:6.1f} MiB/s "
                f"({out.evidence['upload']}, ratio to by-hand {secs / hand_s:.2f}x)"
            )
            # relnb adds a consistent snapshot, row counts and a checksum; a verifying download
            # reads everything back: head ≤ 1.5×, download ≤ 2.5× what a person does by hand
            goal = 1.5 if verify == "head" else 2.5
            ok = secs / hand_s <= goal
            print(f"  verify={verify}: ratio {secs / hand_s:.2f}x (goal ≤ {goal}x: {'HOLDS' if ok else 'MISSED'})")
    finally:
        moto.stop()
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'drop database if exists "{name}" with (force)')
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
