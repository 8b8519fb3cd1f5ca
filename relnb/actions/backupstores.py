"""Where a team's database backups live, as one protocol for the three gates that touch them.

C2 asks whether a recent backup exists, D2 takes a fresh one before the migrations, and the
rollback restores D2's when the plan says so. Those three questions are about one place, so a
backup store answers all of them: relnb's `s3` (pg_dump streamed into a bucket) and `rds`
(managed snapshots) are registered exactly like a plug-in's store (entry point group
`relnb.backup_stores`, name = `environments.production.backups.kind`).

A store that cannot answer one of them (an RDS snapshot is not restored by relnb) returns
failed or inconclusive with the reason; a missing setting raises `NotConfigured(key)` so the gate
names the key and D2 can fall back to the snapshot command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..config import parse_duration
from ..plugins import Registry
from ..results import Outcome

if TYPE_CHECKING:
    from ..gatecontext import GateContext


class NotConfigured(ValueError):
    """A store lacks a setting: `key` is its full config key (under environments.production)."""

    def __init__(self, key: str, fix: str = "") -> None:
        self.key = key if key.startswith("environments.") else f"{_TABLE}.{key}"
        self.fix = fix or f"set {self.key}"
        super().__init__(f"{self.key} is not set")


_TABLE = "environments.production.backups"


@runtime_checkable
class BackupStore(Protocol):
    def newest(self, *, max_age_hours: float) -> Outcome:
        """C2: passed when the newest backup is younger than max_age_hours (and restorable when checked)."""

    def snapshot(self, *, label: str) -> Outcome:
        """D2: take a backup now; the evidence must let `restore` find it again."""

    def restore(self, evidence: Mapping[str, Any]) -> Outcome:
        """Rollback: put the database back to the backup that `snapshot` recorded in `evidence`."""


# A factory gets the gate's context and the `[environments.production.backups]` table.
StoreFactory = Callable[["GateContext", Mapping[str, Any]], BackupStore]


class S3Store:
    """pg_dump (custom format) objects under s3://bucket/prefix; restores with pg_restore."""

    def __init__(self, ctx: GateContext, b: Mapping[str, Any]) -> None:
        if not b["bucket"]:
            raise NotConfigured("bucket", "name the S3 bucket holding the backups")
        self.ctx, self.b = ctx, b

    def _db_url(self) -> str:
        db = self.ctx.env_secret("production", "database_url_env")
        if db is None:
            raise NotConfigured(
                "environments.production.database_url_env", "name the env var with the production DB URL"
            )
        return db.reveal()

    def newest(self, *, max_age_hours: float) -> Outcome:
        from ..checks.ops.backups import check_s3_backup

        scratch = None
        if self.b["restore_test"]:
            var = self.b["restore_test_database_url_env"]
            if not var:
                raise NotConfigured(
                    "restore_test_database_url_env",
                    "name the env var with a scratch database URL, or set restore_test = false",
                )
            scratch = self.ctx.secret(var, f"{_TABLE}.restore_test_database_url_env").reveal()
        return check_s3_backup(
            self.b["bucket"], self.b["prefix"], max_age_hours=max_age_hours,
            client=self.ctx.aws_client(dict(self.b)), restore_test_db_url=scratch,
        )

    def snapshot(self, *, label: str) -> Outcome:
        from .snapshot import take_snapshot_s3

        prefix = (self.b["prefix"].rstrip("/") + "/relnb-snapshots").lstrip("/")
        return take_snapshot_s3(
            self._db_url(), self.b["bucket"], prefix, label=label,
            client=self.ctx.aws_client(dict(self.b)),
        )

    def restore(self, evidence: Mapping[str, Any]) -> Outcome:
        from .restore import restore_from_evidence

        return restore_from_evidence(
            self._db_url(), evidence, client=self.ctx.aws_client(dict(self.b))
        )


class RdsStore:
    """Amazon RDS snapshots of one instance; relnb takes and checks them, a restore is AWS's."""

    def __init__(self, ctx: GateContext, b: Mapping[str, Any]) -> None:
        if not b["instance"]:
            raise NotConfigured("instance", "name the RDS instance")
        self.ctx, self.b = ctx, b

    def _client(self) -> Any:
        return self.ctx.aws_client(dict(self.b), "rds")

    def newest(self, *, max_age_hours: float) -> Outcome:
        from ..checks.ops.backups import check_rds_snapshots

        return check_rds_snapshots(self.b["instance"], max_age_hours=max_age_hours, client=self._client())

    def snapshot(self, *, label: str) -> Outcome:
        from .snapshot import take_snapshot_rds

        return take_snapshot_rds(self.b["instance"], label.replace(".", "-"), client=self._client())

    def restore(self, evidence: Mapping[str, Any]) -> Outcome:
        snap = evidence.get("snapshot_id", "?")
        return Outcome.failed(
            f"relnb does not restore RDS snapshots: restore {snap} into a new instance "
            "(aws rds restore-db-instance-from-db-snapshot) and repoint the app",
            snapshot_id=snap,
        )


def _shape(value: Any) -> str | None:
    return None if callable(value) else f"is a {type(value).__name__}, not a store factory"


BACKUP_STORES: Registry[StoreFactory] = Registry("backup store", "relnb.backup_stores", _shape)
BACKUP_STORES.register("s3", S3Store)
BACKUP_STORES.register("rds", RdsStore)


def backup_store(ctx: GateContext) -> BackupStore:
    """The production backups' store; raises NotConfigured or UsageError (unknown kind)."""
    b = ctx.env("production")["backups"]
    store = BACKUP_STORES.get(b["kind"])(ctx, b)
    missing = [m for m in ("newest", "snapshot", "restore") if not callable(getattr(store, m, None))]
    if missing:
        from ..errors import ConfigError

        raise ConfigError(
            f"backup store {b['kind']!r} ({BACKUP_STORES.origin(b['kind'])}) has no {', '.join(missing)}",
            key=f"{_TABLE}.kind",
            fix="a store needs newest(max_age_hours=), snapshot(label=) and restore(evidence)",
        )
    return store


def with_store(
    ctx: GateContext, use: Callable[[BackupStore], Outcome], *, store: BackupStore | None = None
) -> Outcome:
    """`use(store)` as a gate's answer: a missing setting or a bad kind is inconclusive, naming the key."""
    from ..errors import RelnbError
    from ..gatecontext import config_error, not_configured

    try:
        return use(store if store is not None else backup_store(ctx))
    except NotConfigured as exc:
        return not_configured(exc.key, exc.fix)
    except RelnbError as exc:
        return config_error(exc)


def max_age_hours(ctx: GateContext) -> float:
    return parse_duration(ctx.env("production")["backups"]["max_age"]) / 3600
