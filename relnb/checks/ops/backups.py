"""C2: a recent, non-empty database backup exists (S3 dumps or RDS automated snapshots).

"A backup exists" is only worth something when it is recent and has content, so the verdict
rests on the newest backup's age and size against the release's limit. For S3 an optional
restore test loads the newest dump into a scratch database: the strongest evidence there is
that the backup can be used (the checksum stored beside it by D2 is verified first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ...redact import scrub
from ...results import Outcome

_DUMP_SUFFIXES = (".dump", ".sql", ".sql.gz", ".dump.gz", ".backup", ".tar", ".gz", ".zst")


def _age_h(ts: datetime, now: datetime) -> float:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return round((now - ts).total_seconds() / 3600, 2)


def _aws_problem(exc: Exception) -> tuple[str, bool]:
    """(text, definite): definite errors (no such bucket/instance) fail; the rest are inconclusive."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        definite = code in ("NoSuchBucket", "DBInstanceNotFound", "DBInstanceNotFoundFault", "404")
        return f"{code}: {scrub(str(exc))[:200]}", definite
    return f"{type(exc).__name__}: {scrub(str(exc))[:200]}", False


def check_s3_backup(
    bucket: str,
    prefix: str,
    *,
    max_age_hours: float = 26.0,
    min_size_bytes: int = 1,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    client: Any = None,
    restore_test_db_url: str | None = None,
    now: datetime | None = None,
    suffixes: tuple[str, ...] = _DUMP_SUFFIXES,
    max_objects: int = 100_000,
) -> Outcome:
    """The newest object under s3://bucket/prefix must be younger than `max_age_hours` and at
    least `min_size_bytes`. With `restore_test_db_url` it is also restored there (scratch only:
    the target's tables are replaced)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name)
    now = now or datetime.now(UTC)
    where = f"s3://{bucket}/{prefix}"
    ev: dict[str, Any] = {
        "location": where,
        "max_age_hours": max_age_hours,
        "min_size_bytes": min_size_bytes,
    }
    newest: dict[str, Any] | None = None
    count = 0
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                if suffixes and not obj["Key"].endswith(suffixes):
                    continue  # e.g. the .sha256 sidecars, manifests
                count += 1
                # S3 times have one-second resolution: within a second, the later name wins
                # (nightly dumps are named by date)
                if newest is None or (obj["LastModified"], obj["Key"]) > (
                    newest["LastModified"], newest["Key"]
                ):
                    newest = obj
            if count >= max_objects:
                break
    except (ClientError, BotoCoreError) as exc:
        text, definite = _aws_problem(exc)
        ev["error"] = text
        verdict = Outcome.failed if definite else Outcome.inconclusive
        return verdict(f"C2: cannot list {where}: {text}", **ev)
    ev["backups_found"] = count
    if newest is None:
        return Outcome.failed(f"C2: no backup under {where}: configure automatic dumps there", **ev)
    age = _age_h(newest["LastModified"], now)
    ev.update(
        newest={
            "key": newest["Key"],
            "size_bytes": newest["Size"],
            "last_modified": newest["LastModified"].isoformat(),
            "age_hours": age,
        }
    )
    if newest["Size"] < max(1, min_size_bytes):
        return Outcome.failed(
            f"C2: newest backup {newest['Key']} is {newest['Size']} bytes (minimum {min_size_bytes})",
            **ev,
        )
    if age > max_age_hours:
        return Outcome.failed(
            f"C2: newest backup {newest['Key']} is {age:.1f} h old (limit {max_age_hours:g} h)",
            **ev,
        )
    summary = f"newest backup {newest['Key']}: {newest['Size'] / 1048576:.1f} MiB, {age:.1f} h old"
    if restore_test_db_url:
        from ...actions.restore import restore_snapshot_s3

        restored = restore_snapshot_s3(
            restore_test_db_url, bucket, newest["Key"], client=client,
            require_checksum=False, gate="C2",
        )
        ev["restore_test"] = {
            "status": str(restored.status),
            "summary": restored.summary,
            "restored_rows": restored.evidence.get("restored_rows"),
            "checksum_from": restored.evidence.get("checksum_from"),
        }
        if not restored.status.ok_for_promotion:
            return Outcome.failed(
                f"C2: restore test of {newest['Key']} failed: {restored.summary.removeprefix('C2: ')}",
                **ev,
            )
        summary += "; restore test passed"
    return Outcome.passed(summary, **ev)


def check_rds_snapshots(
    instance_id: str,
    *,
    max_age_hours: float = 26.0,
    snapshot_type: str = "automated",
    endpoint_url: str | None = None,
    region_name: str | None = None,
    client: Any = None,
    now: datetime | None = None,
) -> Outcome:
    """The newest `available` snapshot of `snapshot_type` (automated by default) must be recent."""
    from botocore.exceptions import BotoCoreError, ClientError

    if client is None:
        import boto3

        client = boto3.client("rds", endpoint_url=endpoint_url, region_name=region_name)
    now = now or datetime.now(UTC)
    ev: dict[str, Any] = {
        "instance": instance_id,
        "snapshot_type": snapshot_type,
        "max_age_hours": max_age_hours,
    }
    snaps: list[dict[str, Any]] = []
    try:
        kwargs = {"DBInstanceIdentifier": instance_id, "SnapshotType": snapshot_type}
        for page in client.get_paginator("describe_db_snapshots").paginate(**kwargs):
            snaps.extend(page.get("DBSnapshots", []))
    except (ClientError, BotoCoreError) as exc:
        text, definite = _aws_problem(exc)
        ev["error"] = text
        verdict = Outcome.failed if definite else Outcome.inconclusive
        return verdict(f"C2: cannot list RDS snapshots of {instance_id}: {text}", **ev)
    # Filter again: the type filter is what makes a manual snapshot not count as "automatic".
    snaps = [s for s in snaps if s.get("SnapshotType") == snapshot_type]
    available = [s for s in snaps if s.get("Status") == "available" and s.get("SnapshotCreateTime")]
    ev["snapshots_found"] = len(snaps)
    ev["statuses"] = sorted({str(s.get("Status")) for s in snaps})
    if not available:
        detail = f" ({len(snaps)} found, none available)" if snaps else ""
        return Outcome.failed(
            f"C2: no available {snapshot_type} RDS snapshot of {instance_id}{detail}", **ev
        )
    newest = max(available, key=lambda s: s["SnapshotCreateTime"])
    age = _age_h(newest["SnapshotCreateTime"], now)
    ev["newest"] = {
        "id": newest["DBSnapshotIdentifier"],
        "created": newest["SnapshotCreateTime"].isoformat(),
        "age_hours": age,
        "allocated_gb": newest.get("AllocatedStorage"),
        "engine": f"{newest.get('Engine')} {newest.get('EngineVersion')}",
    }
    if not newest.get("AllocatedStorage"):
        return Outcome.failed(
            f"C2: snapshot {newest['DBSnapshotIdentifier']} reports no storage", **ev
        )
    if age > max_age_hours:
        return Outcome.failed(
            f"C2: newest {snapshot_type} snapshot {newest['DBSnapshotIdentifier']} is {age:.1f} h old "
            f"(limit {max_age_hours:g} h)",
            **ev,
        )
    return Outcome.passed(
        f"{snapshot_type} snapshot {newest['DBSnapshotIdentifier']} available, {age:.1f} h old, "
        f"{newest.get('AllocatedStorage')} GiB",
        **ev,
    )
