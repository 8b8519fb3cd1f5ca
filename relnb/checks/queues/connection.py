"""Opening a queue inspector from a URL, whatever the broker.

Two shapes of factory serve a queue kind. Redis kinds (relnb's first four, and older plug-ins)
are `factory(client, queues, prefix, **options)`: relnb opens the Redis client for them. A kind
whose broker is not Redis sets `factory.connects = "url"` and is called as
`factory(url, queues, prefix, socket_timeout_s=..., **options)`: it opens its own connection,
names its endpoint in `target` (no credentials), releases it in `close()`, and reports a broker
it cannot ask by raising `QueueUnreachable` with a one-line reason. The checks then treat every
kind alike: an unanswering broker is inconclusive, never passed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import UsageError
from ...redact import url_endpoint
from ...results import Outcome
from .model import (
    QueueInspector,
    QueueUnreachable,
    clean_error,
    connect,
    describe_redis_url,
    redis_errors,
)

URL_FACTORY = "url"


def describe_url(url: str, default_scheme: str = "url") -> str:
    """`amqp://u:pw@host:5672/vh` → `amqp://host:5672/vh`: an endpoint evidence may show."""
    ep = url_endpoint(url)
    scheme = url.split("://", 1)[0] if "://" in url else default_scheme
    port = f":{ep['port']}" if ep["port"] else ""
    return f"{scheme}://{ep['host'] or 'localhost'}{port}/{ep['dbname']}"


@dataclass
class OpenInspector:
    """An inspector with its connection, the endpoint to name, and how its failures look."""

    inspector: QueueInspector
    target: str
    target_key: str  # the evidence key naming the endpoint: "redis" or "broker"
    errors: tuple[type[BaseException], ...]
    close: Callable[[], None]
    url: str

    def reason(self, exc: BaseException) -> str:
        if isinstance(exc, QueueUnreachable):
            return str(exc)
        return clean_error(exc, self.url)

    def problem(self, exc: BaseException, **evidence: Any) -> Outcome:
        """Inconclusive, with one line saying which broker did not answer and why."""
        if isinstance(exc, QueueUnreachable):
            return Outcome.inconclusive(
                f"queue broker at {self.target}: {exc}",
                **{**evidence, self.target_key: self.target, "error": str(exc)},
            )
        return redis_problem(self.target, self.url, exc, **evidence)


def open_inspector(
    factory_for: Callable[[str], Callable[..., QueueInspector]],
    kind: str,
    url: str,
    queues: Sequence[str],
    prefix: str | None,
    socket_timeout_s: float,
    options: dict[str, Any],
) -> OpenInspector:
    factory = factory_for(kind)
    if getattr(factory, "connects", None) == URL_FACTORY:
        try:
            inspector = factory(url, queues, prefix, socket_timeout_s=socket_timeout_s, **options)
        except TypeError as exc:
            raise UsageError(f"bad options for queue kind {kind!r}: {exc}") from exc
        target = str(getattr(inspector, "target", "") or describe_url(url))
        close = getattr(inspector, "close", None) or (lambda: None)
        return OpenInspector(inspector, target, "broker", (QueueUnreachable,), close, url)
    client = connect(url, socket_timeout_s)
    try:
        inspector = factory(client, queues, prefix, **options)
    except TypeError as exc:
        client.close()
        raise UsageError(f"bad options for queue kind {kind!r}: {exc}") from exc
    return OpenInspector(
        inspector, describe_redis_url(url), "redis", (*redis_errors(), QueueUnreachable), client.close, url
    )


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
