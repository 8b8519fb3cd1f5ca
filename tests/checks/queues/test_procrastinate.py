"""Procrastinate (PostgreSQL-backed queue): jobs deferred by the real library into a fresh
database, processed by a real `procrastinate` worker subprocess, read from its tables."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from relnb.checks.queues import (
    QueueUnreachable,
    check_dlq,
    check_queues_processing,
    dlq_depth,
    wait_for_job,
)
from relnb.metrics.sources import QueueDepthSource
from relnb.results import Status

from ...conftest import unused_port

pytestmark = pytest.mark.integration
KIND = "procrastinate"


def test_passes_while_a_worker_processes(procrastinate_app: Any, wait_until: Callable[..., None]) -> None:
    p = procrastinate_app()
    p.defer("t.sleep", 12, s=0.3)
    p.worker()
    wait_until(p.started, timeout_s=30)  # B6's interval starts once the worker works
    out = check_queues_processing(p.url, KIND, p.queue, interval_s=3, samples=4)
    assert out.status is Status.PASSED, out
    q = out.evidence["queues"][p.queue]
    assert q["completed_in_interval"] >= 2 and q["failed_in_interval"] == 0
    assert "relnb_t_" in out.evidence["broker"]  # the database, never the URL's credentials


def test_waiting_without_worker_fails_b6(procrastinate_app: Any) -> None:
    p = procrastinate_app()
    p.defer("t.sleep", 3, s=0)
    out = check_queues_processing(p.url, KIND, p.queue, interval_s=0.4)
    assert out.status is Status.FAILED, out
    assert "no job completed in" in out.summary and "while 3 waiting" in out.summary
    time.sleep(0.5)
    old = check_queues_processing(p.url, KIND, p.queue, interval_s=0.3, max_job_age_s=0.4)
    assert old.status is Status.FAILED and "has waited" in old.summary and "at least" not in old.summary


def test_killed_worker_leaves_a_stalled_job(procrastinate_app: Any, wait_until: Callable[..., None]) -> None:
    import psycopg

    p = procrastinate_app()
    p.defer("t.sleep", 1, s=60)
    worker = p.worker()
    with psycopg.connect(p.url, autocommit=True) as conn:
        wait_until(
            lambda: conn.execute("select count(*) from procrastinate_jobs where status='doing'").fetchone()[0] == 1,
            timeout_s=60, step_s=0.2,
        )  # fmt: skip
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    time.sleep(2.2)
    out = check_queues_processing(p.url, KIND, p.queue, interval_s=0.4, stalled_after_s=2)
    assert out.status is Status.FAILED, out
    assert "last heartbeat" in out.summary and "stalled after 2 s" in out.summary


def test_wrong_queue_or_database_says_it_does_not_exist(procrastinate_app: Any, pg_admin_url: str) -> None:
    p = procrastinate_app()
    p.defer("t.sleep", 1, s=0)
    out = check_queues_processing(p.url, KIND, "no-such-queue", interval_s=0.2)
    assert out.status is Status.INCONCLUSIVE
    assert "'no-such-queue' does not exist" in out.summary
    b7 = check_dlq(p.url, KIND, "no-such-queue", interval_s=0.2)
    assert b7.status is Status.INCONCLUSIVE and "does not exist" in b7.summary
    empty = check_queues_processing(pg_admin_url, KIND, p.queue, interval_s=0.2)
    assert empty.status is Status.INCONCLUSIVE and "no procrastinate tables" in empty.summary


def test_unreachable_database_is_inconclusive_in_one_line_without_password() -> None:
    url = f"postgresql://relnb:s3cret-pw@127.0.0.1:{unused_port()}/jobs"
    for out in (
        check_queues_processing(url, KIND, "q", interval_s=0.1),
        check_dlq(url, KIND, "q", interval_s=0.1),
        wait_for_job(url, KIND, "q", "1", timeout_s=0.1),
    ):
        assert out.status is Status.INCONCLUSIVE, out
        assert "\n" not in out.summary and "unreachable" in out.summary
        assert "s3cret-pw" not in repr(out)
    with pytest.raises(QueueUnreachable) as err:
        dlq_depth(url, KIND, "q")
    assert "s3cret-pw" not in str(err.value)
    gap = QueueDepthSource(lambda: dlq_depth(url, KIND, "q")).poll(0.0)
    assert not gap.ok and "dlq_depth" not in gap.values  # a gap in the window, never depth 0


def test_failures_fail_b6_ratio_and_b7_feed_the_dlq_metric_and_d5(
    procrastinate_app: Any, wait_until: Callable[..., None]
) -> None:
    p = procrastinate_app()
    with pytest.raises(ValueError, match="does not exist"):  # no job yet: not "DLQ depth 0"
        dlq_depth(p.url, KIND, p.queue)
    ok = p.defer("t.sleep", 4, s=0.3)
    window = QueueDepthSource(lambda: dlq_depth(p.url, KIND, p.queue))  # what D7's window polls
    assert window.poll(0.0).values["dlq_increase"] == 0
    bad = p.defer("t.fail", 4, msg="boom")
    p.worker()
    wait_until(p.started, timeout_s=30)  # B6's interval starts once the worker works
    b6 = check_queues_processing(p.url, KIND, p.queue, interval_s=3, samples=4)
    assert b6.status is Status.FAILED, b6
    assert "limit 10%" in b6.summary
    p.defer("t.fail", 2, in_s=2, msg="again")  # due during B7's watch
    b7 = check_dlq(p.url, KIND, p.queue, interval_s=4, samples=3)
    assert b7.status is Status.FAILED and "DLQ" in b7.summary, b7
    wait_until(lambda: dlq_depth(p.url, KIND, p.queue) == 6, timeout_s=20, step_s=0.3)
    assert window.poll(1.0).values["dlq_increase"] == 6
    stable = check_dlq(p.url, KIND, p.queue, interval_s=0.4)
    assert stable.status is Status.PASSED and "holds 6 dead job(s), not growing" in stable.summary
    newest = stable.evidence["queues"][p.queue]["newest"]
    assert newest and newest[0]["reason"] == "failed after 2 attempt(s)"
    done = wait_for_job(p.url, KIND, p.queue, str(ok[0]), timeout_s=5)
    assert done.status is Status.PASSED, done
    dead = wait_for_job(p.url, KIND, p.queue, str(bad[0]), timeout_s=5)
    assert dead.status is Status.FAILED and "failed after 2 attempt(s)" in dead.summary
