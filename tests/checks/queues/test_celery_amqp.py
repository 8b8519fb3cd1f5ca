"""Celery on RabbitMQ: messages sent by the real `celery` to the machine's RabbitMQ, consumed by a
real worker subprocess; the inspector asks the broker over AMQP only (no management API)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import pytest

from relnb.checks.queues import QueueUnreachable, check_dlq, check_queues_processing, dlq_depth
from relnb.checks.queues.amqp import _parse
from relnb.metrics.sources import QueueDepthSource
from relnb.results import Status

from ...conftest import unused_port

pytestmark = pytest.mark.integration
KIND = "celery-amqp"


@pytest.fixture
def names(amqp_url: str) -> Iterator[tuple[str, str]]:
    """A fresh queue with its dead-letter queue, declared as the app declares them; deleted after."""
    q = f"relnb-{uuid.uuid4().hex[:8]}"
    dlq = f"{q}.dlq"
    conn = amqp.Connection(**_parse(amqp_url))
    conn.connect()
    ch = conn.channel()
    ch.queue_declare(dlq, durable=True, auto_delete=False)
    args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
    ch.queue_declare(q, durable=True, auto_delete=False, arguments=args)
    try:
        yield q, dlq
    finally:
        ch = conn.channel()
        for name in (q, dlq):
            ch.queue_delete(name)
        ch.exchange_delete(q)
        conn.close()


def producer(url: str, q: str, dlq: str) -> Any:
    from celery import Celery
    from kombu import Exchange, Queue

    app = Celery("producer", broker=url)
    app.conf.task_default_queue = q
    app.conf.task_queues = [
        Queue(q, Exchange(q), routing_key=q,
              queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}),
    ]  # fmt: skip
    return app


def consumers(url: str, q: str) -> int:
    conn = amqp.Connection(**_parse(url))
    conn.connect()
    try:
        return int(conn.channel().queue_declare(q, passive=True)[2])
    finally:
        conn.close()


def started_worker(url: str, q: str, dlq: str, start: Callable[..., Any], wait_until: Callable[..., None]) -> None:
    start(url, q, dlq)
    wait_until(lambda: consumers(url, q) > 0, timeout_s=60, step_s=0.3)


def test_passes_while_a_worker_consumes(
    amqp_url: str, names: tuple[str, str], start_celery_amqp_worker: Callable[..., Any], wait_until: Callable[..., None]
) -> None:
    q, dlq = names
    started_worker(amqp_url, q, dlq, start_celery_amqp_worker, wait_until)
    app = producer(amqp_url, q, dlq)
    for _ in range(12):
        app.send_task("t.sleep", args=[0.4], queue=q)
    out = check_queues_processing(amqp_url, KIND, q, interval_s=3, samples=4, dlq=dlq)
    assert out.status is Status.PASSED, out
    assert out.evidence["queues"][q]["completed_in_interval"] >= 2
    assert out.evidence["queues"][q]["failed_in_interval"] == 0
    assert out.evidence["broker"] == "amqp://127.0.0.1:5672 (vhost /)"


def test_waiting_without_worker_fails_b6(amqp_url: str, names: tuple[str, str]) -> None:
    q, dlq = names
    app = producer(amqp_url, q, dlq)
    for _ in range(3):
        app.send_task("t.sleep", args=[0], queue=q)
    out = check_queues_processing(amqp_url, KIND, q, interval_s=0.4, dlq=dlq)
    assert out.status is Status.FAILED, out
    assert "3 message(s) waiting and no consumer attached" in out.summary


def test_job_waiting_past_the_age_limit_fails_b7_rule(
    amqp_url: str, names: tuple[str, str], start_celery_amqp_worker: Callable[..., Any], wait_until: Callable[..., None]
) -> None:
    """A consumer is attached but busy on one long task: the others wait past max_job_age."""
    q, dlq = names
    started_worker(amqp_url, q, dlq, start_celery_amqp_worker, wait_until)
    app = producer(amqp_url, q, dlq)
    for _ in range(4):
        app.send_task("t.sleep", args=[8], queue=q)
    time.sleep(0.5)
    out = check_queues_processing(amqp_url, KIND, q, interval_s=1.5, samples=3, max_job_age_s=1.0, dlq=dlq)
    assert out.status is Status.FAILED, out
    assert "has waited at least" in out.summary


def test_wrong_queue_name_says_it_does_not_exist(amqp_url: str, names: tuple[str, str]) -> None:
    out = check_queues_processing(amqp_url, KIND, "no-such-queue-relnb", interval_s=0.2)
    assert out.status is Status.INCONCLUSIVE
    assert "'no-such-queue-relnb' does not exist on the broker" in out.summary
    b7 = check_dlq(amqp_url, KIND, "no-such-queue-relnb", interval_s=0.2, dlq="{queue}.dlq")
    assert b7.status is Status.INCONCLUSIVE and "does not exist" in b7.summary
    with pytest.raises(ValueError, match="does not exist"):  # the window's metric: not "depth 0"
        dlq_depth(amqp_url, KIND, "no-such-queue-relnb", dlq="{queue}.dlq")


def test_unreachable_broker_is_inconclusive_in_one_line_without_password() -> None:
    url = f"amqp://guest:s3cret-pw@127.0.0.1:{unused_port()}//"
    for out in (
        check_queues_processing(url, KIND, "celery", interval_s=0.1),
        check_dlq(url, KIND, "celery", interval_s=0.1, dlq="dead"),
    ):
        assert out.status is Status.INCONCLUSIVE, out
        assert "\n" not in out.summary and "unreachable" in out.summary
        assert "s3cret-pw" not in repr(out)
    with pytest.raises(QueueUnreachable) as err:
        dlq_depth(url, KIND, "celery", dlq="dead")
    assert "s3cret-pw" not in str(err.value)
    gap = QueueDepthSource(lambda: dlq_depth(url, KIND, "celery", dlq="dead")).poll(0.0)
    assert not gap.ok and "dlq_depth" not in gap.values  # a gap in the window, never depth 0


def test_dead_lettered_jobs_fail_b6_ratio_and_b7_and_feed_the_dlq_metric(
    amqp_url: str, names: tuple[str, str], start_celery_amqp_worker: Callable[..., Any], wait_until: Callable[..., None]
) -> None:
    q, dlq = names
    started_worker(amqp_url, q, dlq, start_celery_amqp_worker, wait_until)
    app = producer(amqp_url, q, dlq)
    window = QueueDepthSource(lambda: dlq_depth(amqp_url, KIND, q, dlq=dlq))  # what D7's window polls
    assert window.poll(0.0).values["dlq_increase"] == 0
    for _ in range(5):
        app.send_task("t.sleep", args=[0.3], queue=q)
        app.send_task("t.dead", args=["boom"], queue=q)
    b6 = check_queues_processing(amqp_url, KIND, q, interval_s=3, samples=4, dlq="{queue}.dlq")
    assert b6.status is Status.FAILED, b6
    assert "failed" in b6.summary and "limit 10%" in b6.summary
    for _ in range(3):  # a second each: dead-lettered one by one during B7's watch
        app.send_task("t.dead", args=["boom", 1.0], queue=q)
    b7 = check_dlq(amqp_url, KIND, q, interval_s=4, samples=3, dlq=dlq)
    assert b7.status is Status.FAILED and "DLQ grew" in b7.summary, b7
    wait_until(lambda: dlq_depth(amqp_url, KIND, q, dlq=dlq) == 8, timeout_s=15)
    assert window.poll(1.0).values["dlq_increase"] == 8
    stable = check_dlq(amqp_url, KIND, q, interval_s=0.4, dlq=dlq)
    assert stable.status is Status.PASSED and "holds 8 dead job(s), not growing" in stable.summary
    strict = check_dlq(amqp_url, KIND, q, interval_s=0.4, dlq=dlq, allow_nonzero_stable=False)
    assert strict.status is Status.FAILED


def test_no_dead_letter_queue_configured_is_inconclusive(amqp_url: str, names: tuple[str, str]) -> None:
    q, _ = names
    out = check_dlq(amqp_url, KIND, q, interval_s=0.2)
    assert out.status is Status.INCONCLUSIVE and "no dead-letter" in out.summary
