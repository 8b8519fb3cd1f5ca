"""The queue-kind registry and what the queue checks share (target naming, verdict merging).

Each kind is one `QueueInspector` factory: a Redis kind's is `factory(client, queues, prefix,
**options)`; a kind on another broker sets `factory.connects = "url"` and opens its own connection
(see `connection`). relnb's own kinds register exactly as a plug-in's do (entry point group
`relnb.queue_inspectors`, see relnb.plugins).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...errors import UsageError
from ...plugins import Registry, callable_shape
from ...results import Status
from .amqp import CeleryAMQPInspector
from .bullmq import BullMQInspector
from .celery import CeleryInspector
from .connection import OpenInspector, open_inspector
from .model import QueueInspector
from .procrastinate import ProcrastinateInspector
from .rq import RQInspector
from .sqs import SQSInspector
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


def open_queue_inspector(
    kind: str,
    url: str,
    queues: Sequence[str],
    prefix: str | None = None,
    *,
    socket_timeout_s: float = 5.0,
    **options: Any,
) -> OpenInspector:
    """The kind's inspector connected to `url` (Redis client or the kind's own connection)."""
    return open_inspector(INSPECTORS.get, kind, url, queues, prefix, socket_timeout_s, options)


for _kind, _factory in (
    ("bullmq", BullMQInspector),
    ("rq", RQInspector),
    ("celery", CeleryInspector),
    ("redis-streams", StreamsInspector),
    ("celery-amqp", CeleryAMQPInspector),
    ("procrastinate", ProcrastinateInspector),
    ("sqs", SQSInspector),
):
    register_inspector(_kind, _factory)


def queue_names(queues: str | Sequence[str]) -> list[str]:
    names = [queues] if isinstance(queues, str) else list(queues)
    if not names or not all(isinstance(q, str) and q for q in names):
        raise UsageError("no queue names given", fix="pass queues=['name', ...]")
    return names


def combine(verdicts: Mapping[str, tuple[Status, str]]) -> tuple[Status, str]:
    for status in (Status.FAILED, Status.INCONCLUSIVE):
        bad = [msg for s, msg in verdicts.values() if s is status]
        if bad:
            return status, "; ".join(bad)
    return Status.PASSED, "; ".join(msg for _, msg in verdicts.values())


def fmt_s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
