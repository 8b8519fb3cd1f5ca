"""Redis Streams consumer groups (XADD / XGROUP / XREADGROUP / XACK) on Redis 7 and 6.2."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from relnb.checks.queues import check_dlq, check_queues_processing, wait_for_job
from relnb.results import Status

pytestmark = pytest.mark.integration
S, G = "jobs", "workers"


def seed(url: str, n: int) -> tuple[redis.Redis, list[str]]:
    r = redis.Redis.from_url(url)
    r.flushdb()
    r.xgroup_create(S, G, id="0", mkstream=True)
    ids = [r.xadd(S, {"doc": str(i)}).decode() for i in range(n)]
    return r, ids


def consume(r: redis.Redis, count: int, ack: bool) -> list[str]:
    got = r.xreadgroup(G, "c1", {S: ">"}, count=count) or []
    ids = [i.decode() for _, entries in got for i, _ in entries]
    if ack and ids:
        r.xack(S, G, *ids)
    return ids


@pytest.fixture(params=["redis7", "redis62"])
def url(request: pytest.FixtureRequest) -> str:
    """The machine's Redis 7 (XINFO lag) and the embedded 6.2 (lag counted by XRANGE)."""
    return request.getfixturevalue("redis_url" if request.param == "redis7" else "redis62_url")


def test_acks_during_the_interval_pass(url: str) -> None:
    r, _ = seed(url, 6)

    def work() -> None:
        for _ in range(6):
            time.sleep(0.1)
            consume(r, 1, ack=True)

    t = threading.Thread(target=work)
    t.start()
    out = check_queues_processing(url, "redis-streams", S, interval_s=1.0, samples=3)
    t.join(5)
    assert out.status is Status.PASSED, out
    assert out.evidence["queues"][f"{S}/{G}"]["completed_in_interval"] >= 3


def test_waiting_entries_without_consumer_fail(url: str) -> None:
    seed(url, 4)
    out = check_queues_processing(url, "redis-streams", S, interval_s=0.3)
    assert out.status is Status.FAILED
    assert "no job completed in" in out.summary and "while 4 waiting" in out.summary


def test_pending_idle_past_limit_is_stuck(url: str) -> None:
    r, ids = seed(url, 3)
    consume(r, 1, ack=False)
    time.sleep(0.6)
    out = check_queues_processing(url, "redis-streams", S, interval_s=0.2, claim_idle_s=0.5)
    assert out.status is Status.FAILED
    assert f"stuck job {ids[0]}: pending" in out.summary and "claim idle time" in out.summary
    aged = check_queues_processing(url, "redis-streams", S, interval_s=0.2, max_job_age_s=0.5)
    assert aged.status is Status.FAILED and "active for" in aged.summary


def test_missing_group_is_inconclusive_and_job_states(url: str) -> None:
    r, ids = seed(url, 2)
    out = check_queues_processing(
        url, "redis-streams", S, interval_s=0.1, groups=["nobody"], accept_idle=True
    )
    assert out.status is Status.INCONCLUSIVE and "no consumer group" in out.summary
    waiting = wait_for_job(url, "redis-streams", S, ids[0], 0.2, poll_s=0.1)
    assert waiting.status is Status.FAILED and "still waiting" in waiting.summary
    consume(r, 1, ack=False)
    active = wait_for_job(url, "redis-streams", S, ids[0], 0.2, poll_s=0.1)
    assert "still active" in active.summary
    r.xack(S, G, ids[0])
    done = wait_for_job(url, "redis-streams", S, ids[0], 0.2, poll_s=0.1)
    assert done.status is Status.PASSED


def test_dead_letter_stream_growth(url: str) -> None:
    r, _ = seed(url, 1)
    r.xadd("jobs:dead", {"id": "1-0", "reason": "bad pdf password=pa55word"})

    def fail_more() -> None:
        time.sleep(0.3)
        r.xadd("jobs:dead", {"id": "2-0", "reason": "timeout"})

    t = threading.Thread(target=fail_more)
    t.start()
    out = check_dlq(url, "redis-streams", S, interval_s=0.8, dlq_keys={S: "jobs:dead"})
    t.join(5)
    assert out.status is Status.FAILED and "DLQ grew 1 → 2" in out.summary
    reasons = [j["reason"] for j in out.evidence["queues"][S]["newest"]]
    assert reasons == ["timeout", "bad pdf password=***"]
    r.flushdb()
