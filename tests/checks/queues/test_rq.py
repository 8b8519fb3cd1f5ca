"""RQ inspector against jobs made by the real `rq` package (Queue.enqueue, SimpleWorker in a
subprocess, including one killed mid-job)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq import Queue

from relnb.checks.queues import check_dlq, check_queues_processing, dlq_depth, wait_for_job
from relnb.results import Status

from .conftest import watch_while_starting

pytestmark = pytest.mark.integration
Q = "reports"


def queue(url: str) -> Queue:
    return Queue(Q, connection=redis.Redis.from_url(url))


def test_passes_while_a_worker_completes_jobs(
    redis_url: str, start_rq_worker: Callable[..., Any], wait_until: Callable[..., None]
) -> None:
    q = queue(redis_url)
    jobs = [q.enqueue("time.sleep", 0.25) for _ in range(12)]
    start_rq_worker(redis_url, Q)
    # the watch starts once the worker works: its start-up under load is not part of B6's interval
    wait_until(lambda: jobs[0].get_status(refresh=True) != "queued", timeout_s=30)
    out = check_queues_processing(redis_url, "rq", Q, interval_s=1.5)
    assert out.status is Status.PASSED, out
    assert out.evidence["queues"][Q]["completed_in_interval"] >= 2


def test_a_queue_no_job_used_yet_exists_while_a_worker_listens(
    redis_url: str, start_rq_worker: Callable[..., Any]
) -> None:
    """RQ writes a queue's keys with its first job; the worker's registration says it is real."""
    conn = redis.Redis.from_url(redis_url)
    before = check_queues_processing(redis_url, "rq", Q, interval_s=0.2)
    assert before.evidence["queues"][Q]["last"]["exists"] is False and "wrong name?" in before.summary
    start_rq_worker(redis_url, Q, "listen")
    deadline = time.monotonic() + 30
    while not conn.scard(f"rq:workers:{Q}") and time.monotonic() < deadline:
        time.sleep(0.2)
    out = check_queues_processing(redis_url, "rq", Q, interval_s=0.4)
    queue_ev = out.evidence["queues"][Q]["last"]
    assert queue_ev["exists"] is True, out
    assert any("1 worker(s) listen" in n for n in queue_ev["notes"]), queue_ev
    assert out.status is Status.INCONCLUSIVE and "no evidence of processing" in out.summary


def test_fails_when_jobs_wait_and_none_completes(redis_url: str) -> None:
    q = queue(redis_url)
    for _ in range(3):
        q.enqueue("time.sleep", 0)
    out = check_queues_processing(redis_url, "rq", Q, interval_s=0.4)
    assert out.status is Status.FAILED
    assert "no job completed in" in out.summary and "while 3 waiting" in out.summary
    old = check_queues_processing(redis_url, "rq", Q, interval_s=0.4, max_job_age_s=0.3)
    assert old.status is Status.FAILED and "oldest waiting job" in old.summary


def test_killed_worker_leaves_an_abandoned_wip_entry(
    redis_url: str,
    start_rq_worker: Callable[..., Any],
    procs: Any,
    wait_until: Callable[..., None],
) -> None:
    r = redis.Redis.from_url(redis_url)
    job = queue(redis_url).enqueue("time.sleep", 30)
    worker = start_rq_worker(redis_url, Q, "short-heartbeat")
    wait_until(lambda: r.zcard(f"rq:wip:{Q}") == 1)
    procs.kill(worker)  # SIGKILL mid-job: the wip entry stays with its deadline
    deadline = r.zrange(f"rq:wip:{Q}", 0, 0, withscores=True)[0][1]
    wait_until(lambda: r.time()[0] > deadline + 0.05, timeout_s=4)
    out = check_queues_processing(redis_url, "rq", Q, interval_s=0.3)
    assert out.status is Status.FAILED, out
    assert f"stuck job {job.id}: wip heartbeat deadline passed" in out.summary
    stuck = out.evidence["queues"][Q]["last"]["stuck"][0]
    assert stuck["execution"].startswith(job.id + ":") and stuck["deadline_passed_s"] >= 0


def test_running_job_within_deadline_is_not_stuck_but_old_is(
    redis_url: str, start_rq_worker: Callable[..., Any], wait_until: Callable[..., None]
) -> None:
    r = redis.Redis.from_url(redis_url)
    queue(redis_url).enqueue("time.sleep", 4)
    start_rq_worker(redis_url, Q)
    wait_until(lambda: r.zcard(f"rq:wip:{Q}") == 1)
    out = check_queues_processing(redis_url, "rq", Q, interval_s=0.3)
    assert out.status is Status.INCONCLUSIVE, out  # running, nothing finished yet
    assert "1 job(s) running, none completed" in out.summary
    time.sleep(0.6)
    old = check_queues_processing(redis_url, "rq", Q, interval_s=0.2, max_job_age_s=0.5)
    assert old.status is Status.FAILED and "active for" in old.summary


def test_dlq_and_job_follow_up(
    redis_url: str, start_rq_worker: Callable[..., Any], wait_until: Callable[..., None]
) -> None:
    q = queue(redis_url)
    ok = q.enqueue("math.sqrt", 4)
    bad = q.enqueue("int", "token=abc123secretvalue")
    start_rq_worker(redis_url, Q)
    # the jobs' end, not the burst worker's exit: rq 3.0 can hang at exit, joining its pubsub
    # thread, after the work is done (seen under CPU load)
    wait_until(lambda: (ok.get_status(refresh=True), bad.get_status(refresh=True)) == ("finished", "failed"),
               timeout_s=30, step_s=0.1)  # fmt: skip
    assert dlq_depth(redis_url, "rq", Q) == 1

    done = wait_for_job(redis_url, "rq", Q, ok.id, 3, poll_s=0.1)
    assert done.status is Status.PASSED
    failed = wait_for_job(redis_url, "rq", Q, bad.id, 3, poll_s=0.1)
    assert failed.status is Status.FAILED
    assert "ValueError: invalid literal for int()" in failed.summary
    assert "abc123secretvalue" not in repr(failed)

    stable = check_dlq(redis_url, "rq", Q, interval_s=0.3)
    assert stable.status is Status.PASSED and "holds 1 dead job(s)" in stable.summary
    newest = stable.evidence["queues"][Q]["newest"][0]
    assert newest["id"] == bad.id and "token=***" in newest["reason"]
    assert stable.evidence["queues"][Q]["dlq_key"] == f"rq:failed:{Q}"

    for i in range(3):
        q.enqueue("math.sqrt", -1 - i)
    waiting = wait_for_job(redis_url, "rq", Q, q.job_ids[0], 0.3, poll_s=0.1)
    assert waiting.status is Status.FAILED and "still waiting" in waiting.summary
    grew = watch_while_starting(
        lambda: check_dlq(redis_url, "rq", Q, interval_s=8, samples=5),
        lambda: start_rq_worker(redis_url, Q),
    )
    assert grew.status is Status.FAILED, grew
    assert "DLQ grew 1 → 4" in grew.summary or "new dead job" in grew.summary
    assert len(grew.evidence["queues"][Q]["new_during_interval"]) >= 1
