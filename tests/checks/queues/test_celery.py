"""Celery inspector against messages sent by the real `celery` (send_task to the Redis broker)
and a real worker subprocess (acks_late, solo pool), including one killed mid-task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from relnb.checks.queues import check_dlq, check_queues_processing, dlq_depth, wait_for_job
from relnb.errors import UsageError
from relnb.results import Status

from .conftest import watch_while_starting

pytestmark = pytest.mark.integration
Q = "celery"


def app(url: str) -> Any:
    from celery import Celery

    return Celery("producer", broker=url, backend=url)


def test_passes_while_a_worker_acks_tasks(
    redis_url: str, start_celery_worker: Callable[[str], Any], wait_until: Callable[..., None]
) -> None:
    producer = app(redis_url)
    for _ in range(12):
        producer.send_task("t.sleep", args=[0.2])
    start_celery_worker(redis_url)
    # the watch starts once the worker consumes: its start-up takes seconds under CPU load
    r = redis.Redis.from_url(redis_url)
    wait_until(lambda: r.llen(Q) < 12, timeout_s=60, step_s=0.1)
    out = check_queues_processing(redis_url, "celery", Q, interval_s=2.5, samples=4)
    assert out.status is Status.PASSED, out
    assert out.evidence["queues"][Q]["completed_in_interval"] >= 2


def test_waiting_without_worker_fails_and_counts_priority_queues(redis_url: str) -> None:
    producer = app(redis_url)
    producer.send_task("t.sleep", args=[0])
    producer.send_task("t.sleep", args=[0], priority=6)
    r = redis.Redis.from_url(redis_url)
    assert r.llen("celery\x06\x166") == 1  # kombu's priority sub-queue
    out = check_queues_processing(redis_url, "celery", Q, interval_s=0.4)
    assert out.status is Status.FAILED
    assert "no job completed in" in out.summary and "while 2 waiting" in out.summary
    old = check_queues_processing(redis_url, "celery", Q, interval_s=0.6, max_job_age_s=0.3)
    assert old.status is Status.FAILED and "has waited at least" in old.summary


def test_killed_worker_leaves_unacked_past_visibility_timeout(
    redis_url: str,
    start_celery_worker: Callable[[str], Any],
    procs: Any,
    wait_until: Callable[..., None],
) -> None:
    r = redis.Redis.from_url(redis_url)
    task = app(redis_url).send_task("t.sleep", args=[30])
    worker = start_celery_worker(redis_url)
    wait_until(lambda: r.zcard("unacked_index") == 1, timeout_s=15)
    procs.kill(worker)
    ok = check_queues_processing(
        redis_url, "celery", Q, interval_s=0.2, visibility_timeout_s=3600, accept_idle=True
    )
    assert ok.status is Status.INCONCLUSIVE and "running, none completed" in ok.summary
    out = check_queues_processing(redis_url, "celery", Q, interval_s=0.3, visibility_timeout_s=0.2)
    assert out.status is Status.FAILED, out
    assert f"stuck job {task.id}: unacked for" in out.summary
    assert "past the visibility timeout" in out.summary


def test_dlq_needs_a_configured_key_and_detects_growth(
    redis_url: str, start_celery_worker: Callable[[str], Any]
) -> None:
    producer = app(redis_url)
    producer.send_task("t.sleep", args=[0])
    out = check_dlq(redis_url, "celery", Q, interval_s=0.1)
    assert out.status is Status.INCONCLUSIVE and "no dead-letter key configured" in out.summary
    with pytest.raises(UsageError):
        dlq_depth(redis_url, "celery", Q)
    keys = {"dlq_keys": {Q: "dead:celery"}}
    zero = check_dlq(redis_url, "celery", Q, interval_s=0.1, **keys)
    assert zero.status is Status.PASSED and "DLQ empty" in zero.summary

    bad = [
        producer.send_task("t.fail", args=[f"parse error, api_key=k-{i}xyzsecret"])
        for i in range(3)
    ]
    grew = watch_while_starting(
        lambda: check_dlq(redis_url, "celery", Q, interval_s=8, samples=5, **keys),
        lambda: start_celery_worker(redis_url),
    )
    assert grew.status is Status.FAILED, grew
    assert "DLQ grew 0 →" in grew.summary
    newest = grew.evidence["queues"][Q]["newest"]
    assert newest and all("api_key=***" in j["reason"] for j in newest)
    assert "xyzsecret" not in repr(grew)
    assert dlq_depth(redis_url, "celery", Q, dlq_keys={Q: "dead:celery"}) >= 1

    failed = wait_for_job(redis_url, "celery", Q, bad[-1].id, 10, poll_s=0.2)
    assert failed.status is Status.FAILED and "RuntimeError: parse error" in failed.summary
    ok = producer.send_task("t.sleep", args=[0])
    done = wait_for_job(redis_url, "celery", Q, ok.id, 10, poll_s=0.2)
    assert done.status is Status.PASSED, done
