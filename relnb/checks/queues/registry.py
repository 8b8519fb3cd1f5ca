"""The queue-kind registry and what the queue checks share (target naming, verdict merging).

Each kind is one `QueueInspector` factory, `factory(client, queues, prefix, **options)`;
relnb's own four register exactly as a plug-in's do (entry point group
`relnb.queue_inspectors`, see relnb.plugins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...errors import UsageError
from ...plugins import Registry, callable_shape
from ...results import Outcome, Status
from .bullmq import BullMQInspector
from .celery import CeleryInspector
from .model import QueueInspector, clean_error
from .rq import RQInspector
from .streams import StreamsInspector

InspectorFactory = Callable[..., QueueInspector]
INSPECTORS: Registry[InspectorFactory] = Registry("queue kind", "relnb.queue_inspectors", callable_shape)


def register_inspector(kind: str, factory: InspectorFactory, *, replace: bool = False) -> None:
    """Add a queue kind from code (a plug-in package uses the entry point group instead)."""
    INSPECTORS.register(kind, factory, replace=replace)


def inspector_kinds() -> list[str]:
    return INSPECTORS.names()


def make_inspector(
    kind: str, client: Any, queues: Sequence[str], prefix: str | None = None, **options: Any
) -> QueueInspector:
    factory = INSPECTORS.get(kind)
    try:
        return factory(client, queues, prefix, **options)
    except TypeError as exc:
        raise UsageError(f"bad options for queue kind {kind!r}: {exc}") from exc


for _kind, _factory in (
    ("bullmq", BullMQInspector),
    ("rq", RQInspector),
    ("celery", CeleryInspector),
    ("redis-streams", StreamsInspector),
):
    register_inspector(_kind, _factory)


def queue_names(queues: str | Sequence[str]) -> list[str]:
    names = [queues] if isinstance(queues, str) else list(queues)
    if not names or not all(isinstance(q, str) and q for q in names):
        raise UsageError("no queue names given", fix="pass queues=['name', ...]")
    return names


def redis_problem(target: str, url: str, exc: BaseException, **evidence: Any) -> Outcome:
    import redis

    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError):
        what = "unreachable"
        fix = "check the URL, network and auth"
    else:  # it answered, but not as the layout expects (wrong key type, unsupported command)
        what = "answered with an error"
        fix = "check the queue kind, names and prefix"
    return Outcome.inconclusive(
        f"Redis at {target} {what} ({clean_error(exc, url)}); {fix}",
        **{**evidence, "redis": target, "error": clean_error(exc, url)},
    )


def combine(verdicts: Mapping[str, tuple[Status, str]]) -> tuple[Status, str]:
    for status in (Status.FAILED, Status.INCONCLUSIVE):
        bad = [msg for s, msg in verdicts.values() if s is status]
        if bad:
            return status, "; ".join(bad)
    return Status.PASSED, "; ".join(msg for _, msg in verdicts.values())


def fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
