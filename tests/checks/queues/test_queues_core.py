"""The parts of the queue checks that need no job library: URLs, redaction, the kind registry."""

from __future__ import annotations

from typing import Any

import pytest

from relnb.checks.queues import (
    check_queues_processing,
    inspector_kinds,
    judge_queue,
    make_inspector,
    open_queue_inspector,
    register_inspector,
)
from relnb.checks.queues.model import (
    JobInfo,
    QueueStats,
    describe_redis_url,
    scrub_reason,
)
from relnb.errors import UsageError
from relnb.results import Status, last_line


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw-123456@cache.internal:6380/2", "redis://cache.internal:6380/2"),
        ("rediss://user:pw-123456@cache.internal/0", "rediss://cache.internal:6379/0"),
        ("redis://127.0.0.1", "redis://127.0.0.1:6379/0"),
        ("unix:///run/redis.sock?db=3", "unix:///run/redis.sock?db=3"),
    ],
)
def test_describe_redis_url_drops_credentials(url: str, shown: str) -> None:
    assert describe_redis_url(url) == shown


def test_scrub_reason_masks_credentials_and_truncates() -> None:
    text = "connect redis://app:hunter22@db:5432/x failed; token=abc.def password: 'p w'"
    out = scrub_reason(text)
    assert "hunter22" not in out and "abc.def" not in out and "p w" not in out
    assert "redis://***@db:5432/x" in out
    assert len(scrub_reason("x" * 1000, 50)) == 50
    assert last_line("Traceback...\n  File x\nValueError: bad\n\n") == "ValueError: bad"


def test_registry_rejects_unknown_kinds_and_options() -> None:
    assert inspector_kinds() == ["bullmq", "celery", "celery-amqp", "procrastinate", "redis-streams", "rq", "sqs"]
    with pytest.raises(UsageError, match="use one of: bullmq, celery, celery-amqp, procrastinate, redis-streams, rq"):
        make_inspector("kafka", None, ["q"])
    with pytest.raises(UsageError, match="bad options"):
        make_inspector("bullmq", None, ["q"], visibility_timeout_s=3)
    with pytest.raises(UsageError, match="bad options for queue kind 'celery-amqp'"):  # before connecting
        open_queue_inspector("celery-amqp", "amqp://127.0.0.1:9//", ["q"], visibility_timeout_s=3)
    with pytest.raises(UsageError, match="registered twice"):
        register_inspector("rq", lambda *a, **k: None)


def _stats(**kw: Any) -> QueueStats:
    return QueueStats("q", exists=True, **kw)


def test_judge_queue_rules() -> None:
    """Each verdict rule on hand-built stats (the integration tests produce the same with real
    libraries); pins the precedence: stuck > too old > paused > throughput > idle."""
    rules = {"max_job_age_s": 60, "require_completions": True, "accept_idle": False}
    stuck = JobInfo("7", "active", 1.0, reason="active without its lock")
    old = JobInfo("8", "waiting", 120.0)
    cases = [
        ([_stats(), _stats(stuck=(stuck,), completed_since_previous=5)], Status.FAILED, "stuck job 7"),
        ([_stats(), _stats(waiting=1, oldest_waiting=old, completed_since_previous=3)],
         Status.FAILED, "has waited 120 s"),
        ([_stats(), _stats(waiting=2, paused=True, completed_since_previous=0)], Status.FAILED, "paused"),
        ([_stats(waiting=4), _stats(waiting=4, completed_since_previous=0)], Status.FAILED,
         "no job completed in 10 s while 4 waiting"),
        ([_stats(), _stats(waiting=1, completed_since_previous=None)], Status.INCONCLUSIVE,
         "could not be counted"),
        ([_stats(), _stats(completed_since_previous=0)], Status.INCONCLUSIVE, "idle"),
        ([_stats(), _stats(completed_since_previous=2)], Status.PASSED, "2 job(s) completed"),
        # found by the RabbitMQ tests: one job done, then the worker hung; 4 wait, nothing runs
        ([_stats(waiting=5), _stats(waiting=4, completed_since_previous=1),
          _stats(waiting=4, completed_since_previous=0)], Status.FAILED, "the worker stopped taking jobs"),
        # ... but a job running, or the queue draining, or jobs that only just arrived, is not that
        ([_stats(waiting=5), _stats(waiting=4, completed_since_previous=1),
          _stats(waiting=4, active=1, completed_since_previous=0)], Status.PASSED, "1 job(s) completed"),
        ([_stats(waiting=5), _stats(waiting=0, completed_since_previous=5),
          _stats(waiting=3, completed_since_previous=0)], Status.PASSED, "5 job(s) completed"),
        ([QueueStats("q", exists=False, notes=("nope",))], Status.INCONCLUSIVE, "q: nope"),
    ]  # fmt: skip
    for series, status, text in cases:
        got, message = judge_queue(series, 10.0, **rules)
        assert got is status and text in message, (message, status)


def test_judge_queue_failures_during_the_interval() -> None:
    """issue 19 item 12: failures during the watch count against B6, at max_failed_ratio of the
    jobs that finished (default 10 %); the summary says the numbers either way."""
    rules = {"max_job_age_s": 60, "require_completions": True, "accept_idle": False}

    def judge(done: int, failed: int | None, **more: Any) -> tuple[Status, str]:
        series = [_stats(), _stats(completed_since_previous=done, failed_since_previous=failed)]
        return judge_queue(series, 10.0, **{**rules, **more})

    assert judge(1, 50) == (
        Status.FAILED,
        "q: 50 of 51 job(s) finished in 10 s failed (98%, limit 10%); 1 completed; 0 waiting, 0 active",
    )
    assert judge(9, 1) == (Status.PASSED, "q: 9 job(s) completed in 10 s, 1 failed; 0 waiting, 0 active")
    assert judge(8, 2)[0] is Status.FAILED  # 20 % > 10 %
    assert judge(8, 2, max_failed_ratio=0.25)[0] is Status.PASSED
    assert judge(5, 0, max_failed_ratio=0.0)[1] == "q: 5 job(s) completed in 10 s, 0 failed; 0 waiting, 0 active"
    assert judge(5, 1, max_failed_ratio=0.0)[0] is Status.FAILED
    assert judge(0, 3, accept_idle=True)[0] is Status.FAILED  # only failures is not idle
    # an inspector that cannot tell failures from acknowledgements (Celery, streams) says so
    assert judge(4, None)[1].endswith("completed in 10 s (failures not counted); 0 waiting, 0 active")
    with pytest.raises(UsageError, match="max_failed_ratio must be between 0 and 1") as err:
        check_queues_processing("redis://127.0.0.1:1/0", "bullmq", "q", max_failed_ratio=10)
    assert err.value.fix and "environments.staging.queue.max_failed_ratio" in err.value.fix


def test_level_counting_counts_dead_letters_while_the_level_holds() -> None:
    """Seen on RabbitMQ under load: a worker busy with prefetched messages left the ready count
    unchanged for one interval, and the DLQ's growth (its own level) went uncounted with it, so
    B6's evidence said "failures not counted" although the DLQ showed none or some."""
    from relnb.checks.queues.levels import count_by_level
    from relnb.checks.queues.model import QueueStats

    prev = QueueStats("q", exists=True, waiting=5, failed=1)
    for dead, failed in ((1, 0), (3, 2)):
        held = count_by_level(
            prev, level=5, previous_level=5, waiting=5, dead=dead, idle=False, now_ms=1000, counted_as="deliveries"
        )  # fmt: skip
        assert held.done is None  # a level that did not fall while work was present: not countable
        assert held.failed == failed
    fell = count_by_level(prev, level=1, previous_level=5, waiting=1, dead=3, idle=False, now_ms=1000, counted_as="d")
    assert (fell.done, fell.failed) == (2, 2)  # 4 left the queue: 2 to the DLQ, 2 finished
    unknown = count_by_level(prev, level=5, previous_level=5, waiting=5, dead=None, idle=False, now_ms=1000, counted_as="d")
    assert unknown.failed is None
