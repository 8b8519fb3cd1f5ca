"""What a queue inspector reports, and the Redis plumbing every inspector shares.

Inspectors read the job library's Redis layout directly (redis-py, imported lazily), so a
release check never needs the application's queue library installed. Times come from Redis'
own clock (`TIME`), because job timestamps were written by workers that share that server, not
the machine running the check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ...errors import RelnbError
from ...redact import connect_error, is_secret_bearing, scrub, url_endpoint

if TYPE_CHECKING:
    import redis

# How many job ids an inspector reads per list or set per snapshot: inspection must stay cheap on
# a production Redis, so detail is sampled; counts are always exact.
SAMPLE = 200
REASON_CHARS = 300

_CREDENTIAL_PAIR = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|authorization)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@")


class QueueUnreachable(RelnbError):
    """Redis could not be asked (refused, timed out, auth failed); raised by metric callables."""


@dataclass(frozen=True)
class JobInfo:
    """One job worth showing: the oldest waiting one, an active one, a stuck one."""

    id: str
    state: str
    age_s: float | None = None
    reason: str | None = None  # why the library would call it stalled / abandoned
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "state": self.state}
        if self.age_s is not None:
            out["age_s"] = round(self.age_s, 1)
        if self.reason:
            out["reason"] = self.reason
        out.update(self.detail)
        return out


@dataclass(frozen=True)
class QueueStats:
    """One queue at one instant. Counts are exact; job lists are samples (see `SAMPLE`)."""

    queue: str
    exists: bool
    waiting: int = 0
    active: int = 0
    delayed: int = 0
    failed: int | None = None  # the library's dead-job set, when it keeps one
    completed: int | None = None  # size of the completed/finished set, when it keeps one
    paused: bool = False
    oldest_waiting: JobInfo | None = None
    # Celery messages carry no enqueue time: their age is "seen waiting since the first snapshot".
    waiting_age_is_lower_bound: bool = False
    active_jobs: tuple[JobInfo, ...] = ()
    stuck: tuple[JobInfo, ...] = ()
    # Work finished since the previous snapshot (None on the first one, or when unknowable).
    completed_since_previous: int | None = None
    failed_since_previous: int | None = None
    # Inspector-private carry-over between snapshots (ids seen, first-seen times, cursors).
    state: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "queue": self.queue,
            "exists": self.exists,
            "waiting": self.waiting,
            "active": self.active,
            "delayed": self.delayed,
            "paused": self.paused,
        }
        if self.failed is not None:
            out["failed"] = self.failed
        if self.completed is not None:
            out["completed_set"] = self.completed
        if self.oldest_waiting is not None:
            out["oldest_waiting"] = self.oldest_waiting.to_dict()
            if self.waiting_age_is_lower_bound:
                out["oldest_waiting"]["age_is_lower_bound"] = True
        if self.completed_since_previous is not None:
            out["completed_since_previous"] = self.completed_since_previous
        if self.failed_since_previous is not None:
            out["failed_since_previous"] = self.failed_since_previous
        if self.stuck:
            out["stuck"] = [j.to_dict() for j in self.stuck[:10]]
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True)
class QueueSnapshot:
    """Every inspected queue at one instant of the Redis server's clock."""

    kind: str
    at_ms: int
    queues: tuple[QueueStats, ...]

    def by_name(self) -> dict[str, QueueStats]:
        return {q.queue: q for q in self.queues}


@dataclass(frozen=True)
class DeadLetters:
    """DLQ depth per queue plus the newest dead jobs (reasons already scrubbed and truncated)."""

    depth: Mapping[str, int]
    newest: Mapping[str, tuple[JobInfo, ...]]
    sources: Mapping[str, str]  # queue -> the Redis key that was counted
    missing: tuple[str, ...] = ()  # queues with no DLQ key configured

    @property
    def total(self) -> int:
        return sum(self.depth.values())


@dataclass(frozen=True)
class JobState:
    """Where one job is now: waiting | active | delayed | completed | failed | missing | unknown."""

    job_id: str
    state: str
    detail: Mapping[str, Any] = field(default_factory=dict)


class QueueInspector(Protocol):
    """Reads one job library's queues (in Redis, RabbitMQ or Postgres). Built by a factory registered per kind."""

    kind: str

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        """Counts and notable jobs now; with `previous`, also what finished since then."""
        ...

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        """The dead-letter depth of each queue and its newest entries."""
        ...

    def job_state(self, queue: str, job_id: str) -> JobState:
        """The current state of one job (used to follow a smoke-test job to completion)."""
        ...


# -- Redis plumbing -------------------------------------------------------------------------------


def describe_redis_url(url: str) -> str:
    """`redis://:pw@host:6380/2` → `redis://host:6380/2`: what evidence may show (no credentials)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable redis url>"
    scheme = parts.scheme or "redis"
    if scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"unix://{parts.path}?db={db}"
    # host, port and database read the way libpq reads a URL and kept only when they look like
    # one: a raw `#`, `?` or `@` in the password must not put a piece of it in the evidence
    ep = url_endpoint(url)
    return f"{scheme}://{ep['host'] or 'localhost'}:{ep['port'] or 6379}/{ep['dbname'] or '0'}"


def _url_password(url: str) -> str | None:
    try:
        pw = urlsplit(url).password
    except ValueError:
        return None
    return unquote(pw) if pw else None


def clean_error(exc: BaseException, url: str) -> str:
    """An exception message fit for evidence: scrubbed, and without the URL's password. A failure
    to connect to a URL with credentials is told in relnb's words, not the driver's (which may
    quote the password; issue 22 item 2)."""
    import redis

    connecting = redis.ConnectionError | redis.TimeoutError | OSError | ValueError
    if isinstance(exc, connecting) and is_secret_bearing(url):
        return scrub_reason(connect_error(exc, url, "Redis"), 200)
    text = f"{type(exc).__name__}: {exc}"
    pw = _url_password(url)
    if pw:
        text = text.replace(pw, "***")
    return scrub_reason(text, 200)


def scrub_reason(text: str | None, limit: int = REASON_CHARS) -> str:
    """A failure reason from a job (outside text): secrets scrubbed, credentials masked, truncated."""
    if not text:
        return ""
    out = scrub(text)
    out = _URL_USERINFO.sub(r"\1***@", out)
    out = _CREDENTIAL_PAIR.sub(r"\1\2***", out)
    out = out.strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"


def connect(url: str, socket_timeout_s: float = 5.0) -> redis.Redis:
    """A client with connect and read timeouts, so no inspection can hang."""
    import redis

    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        decode_responses=False,
        retry_on_timeout=False,
    )


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a target problem looks like from redis-py (unreachable, timeout, auth, wrong type)."""
    import redis

    return (redis.exceptions.RedisError, OSError)


def server_ms(client: redis.Redis) -> int:
    sec, usec = client.time()
    return int(sec) * 1000 + int(usec) // 1000


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def as_int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(float(text(value)))
    except (TypeError, ValueError):
        return default


def age_s(now_ms: int, then_ms: float | None) -> float | None:
    if then_ms is None:
        return None
    return max(0.0, (now_ms - then_ms) / 1000.0)


def oldest(jobs: Sequence[JobInfo]) -> JobInfo | None:
    aged = [j for j in jobs if j.age_s is not None]
    return max(aged, key=lambda j: j.age_s or 0.0) if aged else (jobs[0] if jobs else None)


class PerQueueInspector:
    """Shared shape of inspectors that read each queue on its own (BullMQ, RQ): one pipeline per
    queue per snapshot; subclasses set `kind` and `default_prefix` and implement `_queue`."""

    kind = ""
    default_prefix = ""

    def __init__(self, client: redis.Redis, queues: Sequence[str], prefix: str | None = None):
        self.client = client
        self.queues = tuple(queues)
        self.prefix = prefix or self.default_prefix

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        now = server_ms(self.client)
        prev = previous.by_name() if previous else {}
        since = previous.at_ms if previous else None
        stats = tuple(self._queue(q, now, prev.get(q), since) for q in self.queues)
        return QueueSnapshot(self.kind, now, stats)

    def _queue(self, q: str, now: int, prev: QueueStats | None, since: int | None) -> QueueStats:
        raise NotImplementedError

