"""Dead-letter keys an application keeps itself (Celery and Redis Streams have no built-in DLQ).

The caller names one key per queue; its depth is read by type (list LLEN, zset ZCARD, set SCARD,
stream XLEN) and its newest entries are shown with any reason-like field scrubbed. Lists are
assumed LPUSH'd (newest at the head), the common convention; streams and zsets are ordered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .model import DeadLetters, JobInfo, scrub_reason, text

if TYPE_CHECKING:
    import redis

_REASON_FIELDS = ("reason", "error", "failedReason", "exception", "exc", "exc_message", "traceback")
_ID_FIELDS = ("id", "job_id", "jobId", "task_id", "message_id")


def _describe(raw: Any) -> tuple[str | None, str | None]:
    """(id, reason) from a dead-letter entry: a JSON object, a Celery message, or plain text."""
    if isinstance(raw, dict):
        data: Any = {text(k): text(v) for k, v in raw.items()}
    else:
        try:
            data = json.loads(text(raw))
        except ValueError:
            return None, scrub_reason(text(raw), 200)
    if isinstance(data, dict):
        headers = data.get("headers") if isinstance(data.get("headers"), dict) else {}
        ident = next((str(data[f]) for f in _ID_FIELDS if data.get(f)), None)
        ident = ident or (str(headers["id"]) if headers.get("id") else None)
        reason = next((str(data[f]) for f in _REASON_FIELDS if data.get(f)), None)
        if reason is None and headers.get("task"):
            reason = f"task {headers['task']}"
        return ident, scrub_reason(reason, 300) if reason else None
    return None, scrub_reason(text(raw), 200)


def read_dead_letter_keys(
    client: redis.Redis, keys: Mapping[str, str], newest: int = 5
) -> DeadLetters:
    depth: dict[str, int] = {}
    latest: dict[str, tuple[JobInfo, ...]] = {}
    for queue, key in keys.items():
        kind = text(client.type(key))
        entries: list[tuple[str | None, Any]] = []
        n = max(0, newest - 1)
        if kind == "list":
            depth[queue] = int(client.llen(key))
            entries = [(None, e) for e in client.lrange(key, 0, n)] if newest else []
        elif kind == "zset":
            depth[queue] = int(client.zcard(key))
            entries = [(None, e) for e in client.zrevrange(key, 0, n)] if newest else []
        elif kind == "set":
            depth[queue] = int(client.scard(key))
            entries = [(None, e) for e in client.srandmember(key, newest)] if newest else []
        elif kind == "stream":
            depth[queue] = int(client.xlen(key))
            entries = (
                [(text(i), f) for i, f in client.xrevrange(key, "+", "-", count=newest)]
                if newest
                else []
            )
        elif kind == "none":
            depth[queue] = 0
        else:
            raise ValueError(
                f"dead-letter key {key!r} is a Redis {kind}; expected list/zset/set/stream"
            )
        jobs = []
        for i, (entry_id, raw) in enumerate(entries):
            ident, reason = _describe(raw)
            jobs.append(JobInfo(ident or entry_id or f"#{i}", "dead", reason=reason))
        latest[queue] = tuple(jobs)
    return DeadLetters(depth, latest, dict(keys))
