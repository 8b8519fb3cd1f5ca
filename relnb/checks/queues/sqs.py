"""Amazon SQS queues (or an SQS-compatible endpoint), read through SQS's own API with boto3.

SQS answers with approximate counts only (`GetQueueAttributes`): messages visible (waiting),
in flight (received, not yet deleted: active) and delayed. It keeps no history, names no
consumer and shows no message age outside CloudWatch, so, as for AMQP:

- jobs finished between two snapshots are counted from the fall of waiting + in flight (a lower
  bound: messages sent during the watch hide deletions; a level count with messages present is
  "not countable", never zero);
- the oldest waiting message's age is a lower bound: how long the count has stayed positive
  without falling;
- the dead-letter queue is the one the queue's `RedrivePolicy` names (or `dlq`, a queue name or
  a `{queue}` pattern, when the app moves failed messages itself), and its growth is the number
  of jobs that failed for good. Its messages are never received: receiving one would change it.

The URL is the SQS endpoint (`https://sqs.eu-west-1.amazonaws.com`, an SQS-compatible server's
`http://host:port`) or `sqs://REGION` for AWS's own; credentials come from boto3's usual chain
(environment, profile, instance role), never from the URL.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from .connection import URL_FACTORY
from .levels import count_by_level, dead_letter_names
from .model import (
    DeadLetters,
    JobState,
    QueueSnapshot,
    QueueStats,
    QueueUnreachable,
    scrub_reason,
)

_AWS_HOST = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def endpoint(url: str) -> tuple[str | None, str]:
    """(endpoint URL for boto3 or None for AWS's default, region) from the configured URL."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise QueueUnreachable(
            "the SQS URL carries credentials: give them to boto3 (AWS_ACCESS_KEY_ID, a profile or a role) instead"
        )
    env_region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if parts.scheme == "sqs":
        region = parts.hostname or env_region
        if not region:
            raise QueueUnreachable("sqs:// names no region: use sqs://eu-west-1 or set AWS_REGION")
        return None, region
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise QueueUnreachable(
            f"not an SQS endpoint URL (scheme {parts.scheme or 'missing'!r}; want https://sqs.REGION.amazonaws.com or sqs://REGION)"
        )
    aws = _AWS_HOST.match(parts.hostname)
    region = aws.group(1) if aws else env_region or "us-east-1"
    return f"{parts.scheme}://{parts.netloc}", region


class SQSInspector:
    """Queues on Amazon SQS; see the module docstring."""

    kind = "sqs"
    connects = URL_FACTORY

    def __init__(
        self,
        url: str,
        queues: Sequence[str],
        prefix: str | None = None,
        *,
        socket_timeout_s: float = 5.0,
        dlq: str | Mapping[str, str] | None = None,
    ):
        import boto3
        from botocore.config import Config

        self.queues = tuple(queues)
        endpoint_url, self.region = endpoint(url)
        self.target = f"{endpoint_url} ({self.region})" if endpoint_url else f"sqs://{self.region}"
        self._dlq_names = dead_letter_names(self.queues, dlq)
        config = Config(
            connect_timeout=socket_timeout_s, read_timeout=socket_timeout_s, retries={"max_attempts": 1}
        )
        # a session of its own: boto3's default one is shared by threads and keeps credentials it found once
        self._client = boto3.session.Session().client("sqs", endpoint_url=endpoint_url, region_name=self.region, config=config)
        self._urls: dict[str, str | None] = {}
        for q in self.queues:  # asks the endpoint once, so an unreachable one is said up front
            self._url(q)

    def close(self) -> None:
        self._client.close()

    def _why(self, exc: BaseException) -> str:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            text = f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
        else:
            first = (str(exc).splitlines() or [""])[0]
            text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        return scrub_reason(text, 200)

    def _call(self, method: str, **kw: Any) -> dict[str, Any] | None:
        """SQS's answer, or None when SQS says the queue does not exist; QueueUnreachable when it
        cannot be asked (connection, timeout, no credentials, access denied, bad signature)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, method)(**kw)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise QueueUnreachable(f"{self.target}: {self._why(exc)}") from None
        except (BotoCoreError, OSError, ValueError) as exc:
            raise QueueUnreachable(f"{self.target}: {self._why(exc)}") from None

    def _url(self, name: str, owner: str | None = None) -> str | None:
        """The queue's URL, or None when SQS says it does not exist."""
        if name not in self._urls:
            kw = {"QueueName": name, **({"QueueOwnerAWSAccountId": owner} if owner else {})}
            got = self._call("get_queue_url", **kw)
            self._urls[name] = got["QueueUrl"] if got is not None else None
        return self._urls[name]

    def _attributes(self, url: str, names: Sequence[str]) -> dict[str, str] | None:
        """The queue's attributes, or None when it was deleted since its URL was read."""
        got = self._call("get_queue_attributes", QueueUrl=url, AttributeNames=list(names))
        return got.get("Attributes", {}) if got is not None else None

    def _missing(self, q: str) -> str:
        return f"queue {q!r} does not exist on {self.target}: check the queue name and region"

    def _dlq_of(self, q: str, attrs: Mapping[str, str]) -> str | None:
        """The dead-letter queue's name: configured, else the RedrivePolicy's target."""
        if q in self._dlq_names:
            return self._dlq_names[q]
        try:
            arn = json.loads(attrs.get("RedrivePolicy") or "{}").get("deadLetterTargetArn") or ""
        except ValueError:
            return None
        parts = arn.split(":")
        if len(parts) == 6 and parts[2] == "sqs":
            if parts[5] not in self._urls:  # the DLQ may belong to another account
                self._url(parts[5], owner=parts[4])
            return parts[5]
        return None

    def _depth(self, name: str) -> int | None:
        url = self._url(name)
        attrs = self._attributes(url, ["ApproximateNumberOfMessages"]) if url else None
        return int(attrs["ApproximateNumberOfMessages"]) if attrs is not None else None

    # -- snapshot ---------------------------------------------------------------------------------

    def snapshot(self, previous: QueueSnapshot | None = None) -> QueueSnapshot:
        now = int(time.time() * 1000)
        prev = previous.by_name() if previous else {}
        return QueueSnapshot(self.kind, now, tuple(self._queue(q, now, prev.get(q)) for q in self.queues))

    def _queue(self, q: str, now: int, prev: QueueStats | None) -> QueueStats:
        url = self._url(q)
        attrs = self._attributes(url, [*_COUNTS, "RedrivePolicy"]) if url else None
        if attrs is None:
            return QueueStats(q, exists=False, notes=(self._missing(q),))
        waiting, in_flight, delayed = (int(attrs.get(k, 0)) for k in _COUNTS)
        dlq = self._dlq_of(q, attrs)
        dead = self._depth(dlq) if dlq else None
        notes = ["SQS counts are approximate; message ages and consumers are not visible"]
        counted = count_by_level(
            prev, level=waiting + in_flight, previous_level=prev.waiting + prev.active if prev else None,
            waiting=waiting, dead=dead, idle=waiting + in_flight == 0 and prev is not None
            and prev.waiting + prev.active == 0, now_ms=now,
            counted_as="deletions (fall of waiting + in flight)",
        )  # fmt: skip
        notes += [counted.note] if counted.note else []
        return QueueStats(
            q,
            exists=True,
            waiting=waiting,
            active=in_flight,
            delayed=delayed,
            failed=dead,
            oldest_waiting=counted.oldest,
            waiting_age_is_lower_bound=True,
            completed_since_previous=counted.done,
            failed_since_previous=counted.failed,
            state={"waiting_since": counted.waiting_since},
            notes=tuple(notes),
        )

    # -- dead letters -----------------------------------------------------------------------------

    def dead_letters(self, newest: int = 5) -> DeadLetters:
        depth: dict[str, int] = {}
        sources: dict[str, str] = {}
        for q in self.queues:
            url = self._url(q)
            attrs = self._attributes(url, ["RedrivePolicy"]) if url else None
            if attrs is None:  # a metric of 0 for a misspelt queue would watch nothing
                raise ValueError(self._missing(q))
            name = self._dlq_of(q, attrs)
            if not name:
                continue
            found = self._depth(name)
            if found is None:
                raise ValueError(f"dead-letter queue {name!r} of {q!r} does not exist on {self.target}")
            depth[q] = found
            sources[q] = name
        missing = tuple(q for q in self.queues if q not in sources)
        return DeadLetters(depth, {}, sources, missing)

    # -- one job ----------------------------------------------------------------------------------

    def job_state(self, queue: str, job_id: str) -> JobState:
        if self._url(queue) is None:
            return JobState(job_id, "missing", {"note": self._missing(queue)})
        return JobState(job_id, "unknown", {"note": "SQS cannot follow one message; follow the job in the app's own store"})
