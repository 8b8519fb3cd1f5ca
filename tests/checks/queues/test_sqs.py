"""Amazon SQS: queues on moto's real HTTP server (with its redrive to a dead-letter queue), jobs
consumed by a worker subprocess that polls SQS with boto3, as an SQS-fed app's worker does; the
inspector asks only SQS's API."""

from __future__ import annotations

import json
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relnb.checks.queues import QueueUnreachable, check_dlq, check_queues_processing, dlq_depth
from relnb.checks.queues.sqs import endpoint
from relnb.metrics.sources import QueueDepthSource
from relnb.results import Status

from ...conftest import unused_port
from .conftest import Procs

pytestmark = pytest.mark.integration
KIND = "sqs"

# receives one message at a time; "sleep:S" is done after S seconds and deleted, "dead" is given
# back at once (visibility 0) until SQS's redrive moves it to the dead-letter queue
WORKER = textwrap.dedent(
    """
    import os, time
    import boto3

    sqs = boto3.client("sqs", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=os.environ["QUEUE"])["QueueUrl"]
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0)  # connected
    open("ready", "w").close()
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
        for m in got:
            body = m["Body"]
            if body.startswith("sleep:"):
                time.sleep(float(body.split(":", 1)[1]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            else:
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    """
)


@pytest.fixture
def sqs(aws: str) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=aws, region_name="us-east-1")


@pytest.fixture
def names(sqs: Any) -> Iterator[tuple[str, str]]:
    """A fresh queue whose RedrivePolicy sends a message received twice to its dead-letter queue."""
    q = f"relnb-{uuid.uuid4().hex[:8]}"
    dlq = f"{q}-dlq"
    dlq_url = sqs.create_queue(QueueName=dlq)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"})
    sqs.create_queue(QueueName=q, Attributes={"RedrivePolicy": policy, "VisibilityTimeout": "30"})
    yield q, dlq


def send(sqs: Any, q: str, *bodies: str) -> None:
    url = sqs.get_queue_url(QueueName=q)["QueueUrl"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)


@pytest.fixture
def worker(aws: str, procs: Procs, tmp_path: Path, wait_until: Callable[..., None]) -> Callable[[str], Any]:
    """Starts the worker and returns once it polls SQS (a loaded machine may take seconds)."""
    (tmp_path / "sqs_worker.py").write_text(WORKER)

    def start(q: str) -> None:
        procs.start([sys.executable, "sqs_worker.py"], tmp_path, {"ENDPOINT": aws, "QUEUE": q})
        wait_until((tmp_path / "ready").exists, timeout_s=90, step_s=0.2)

    return start


def test_endpoint_reads_region_from_the_aws_host_and_refuses_credentials_in_the_url() -> None:
    assert endpoint("https://sqs.eu-west-1.amazonaws.com") == ("https://sqs.eu-west-1.amazonaws.com", "eu-west-1")
    assert endpoint("sqs://ap-south-1") == (None, "ap-south-1")
    with pytest.raises(QueueUnreachable, match="credentials"):
        endpoint("https://AKIA:s3cret@sqs.eu-west-1.amazonaws.com")
    with pytest.raises(QueueUnreachable, match="not an SQS endpoint"):
        endpoint("amqp://127.0.0.1:5672")


def test_passes_while_a_worker_consumes(aws: str, sqs: Any, names: tuple[str, str], worker: Callable[[str], Any]) -> None:
    q, _ = names
    worker(q)
    send(sqs, q, *["sleep:0.3"] * 12)
    out = check_queues_processing(aws, KIND, q, interval_s=3, samples=4)
    assert out.status is Status.PASSED, out
    assert out.evidence["queues"][q]["completed_in_interval"] >= 2
    assert out.evidence["queues"][q]["failed_in_interval"] == 0
    assert out.evidence["broker"] == f"{aws} (us-east-1)"


def test_waiting_without_worker_fails_b6_on_age(aws: str, sqs: Any, names: tuple[str, str]) -> None:
    q, _ = names
    send(sqs, q, "sleep:0", "sleep:0", "sleep:0")
    out = check_queues_processing(aws, KIND, q, interval_s=2, samples=3, max_job_age_s=1.0)
    assert out.status is Status.FAILED, out
    assert "has waited at least" in out.summary and "3 waiting" in out.summary


def test_waiting_without_worker_is_never_passed_within_the_age_limit(aws: str, sqs: Any, names: tuple[str, str]) -> None:
    q, _ = names
    send(sqs, q, "sleep:0", "sleep:0")
    out = check_queues_processing(aws, KIND, q, interval_s=0.6, samples=3)
    assert out.status in (Status.FAILED, Status.INCONCLUSIVE), out


def test_wrong_queue_name_says_it_does_not_exist(aws: str, names: tuple[str, str]) -> None:
    out = check_queues_processing(aws, KIND, "no-such-queue-relnb", interval_s=0.2)
    assert out.status is Status.INCONCLUSIVE
    assert "'no-such-queue-relnb' does not exist" in out.summary
    b7 = check_dlq(aws, KIND, "no-such-queue-relnb", interval_s=0.2)
    assert b7.status is Status.INCONCLUSIVE and "does not exist" in b7.summary
    with pytest.raises(ValueError, match="does not exist"):  # the window's metric: not "depth 0"
        dlq_depth(aws, KIND, "no-such-queue-relnb")


def test_unreachable_endpoint_is_inconclusive_in_one_line(aws: str) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    for out in (check_queues_processing(url, KIND, "jobs", interval_s=0.1), check_dlq(url, KIND, "jobs", interval_s=0.1)):
        assert out.status is Status.INCONCLUSIVE, out
        assert "\n" not in out.summary and "unreachable" in out.summary
    with pytest.raises(QueueUnreachable):
        dlq_depth(url, KIND, "jobs")
    gap = QueueDepthSource(lambda: dlq_depth(url, KIND, "jobs")).poll(0.0)
    assert not gap.ok and "dlq_depth" not in gap.values  # a gap in the window, never depth 0


def test_refused_credentials_are_inconclusive_without_the_secret(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    out = check_queues_processing(aws, KIND, "jobs", interval_s=0.1)
    assert out.status is Status.INCONCLUSIVE and "credentials" in out.summary.lower(), out


def test_dead_lettered_jobs_fail_b6_ratio_and_b7_and_feed_the_dlq_metric(
    aws: str, sqs: Any, names: tuple[str, str], worker: Callable[[str], Any], wait_until: Callable[..., None]
) -> None:
    q, _ = names
    window = QueueDepthSource(lambda: dlq_depth(aws, KIND, q))  # what D7's window polls
    assert window.poll(0.0).values["dlq_increase"] == 0
    worker(q)
    send(sqs, q, *["sleep:0.2", "dead"] * 4)
    b6 = check_queues_processing(aws, KIND, q, interval_s=4, samples=5)
    assert b6.status is Status.FAILED, b6
    assert "failed" in b6.summary and "limit 10%" in b6.summary
    assert b6.evidence["queues"][q]["failed_in_interval"] >= 1
    wait_until(lambda: dlq_depth(aws, KIND, q) == 4, timeout_s=20, step_s=0.3)

    def dead_later() -> None:
        time.sleep(1.0)
        send(sqs, q, "dead", "dead")

    import threading

    threading.Thread(target=dead_later, daemon=True).start()
    b7 = check_dlq(aws, KIND, q, interval_s=5, samples=3)
    assert b7.status is Status.FAILED and "DLQ grew" in b7.summary, b7
    wait_until(lambda: dlq_depth(aws, KIND, q) == 6, timeout_s=20, step_s=0.3)
    assert window.poll(1.0).values["dlq_increase"] == 6
    stable = check_dlq(aws, KIND, q, interval_s=0.4)
    assert stable.status is Status.PASSED and "holds 6 dead job(s), not growing" in stable.summary


def test_no_redrive_policy_and_no_dlq_is_inconclusive(aws: str, sqs: Any) -> None:
    sqs.create_queue(QueueName="plain-relnb")
    out = check_dlq(aws, KIND, "plain-relnb", interval_s=0.2)
    assert out.status is Status.INCONCLUSIVE and "no dead-letter" in out.summary
    sqs.create_queue(QueueName="plain-relnb-dead")
    named = check_dlq(aws, KIND, "plain-relnb", interval_s=0.2, dlq="{queue}-dead")
    assert named.status is Status.PASSED, named
