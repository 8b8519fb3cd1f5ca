"""B6 (queues processing, no stuck jobs), B7 (DLQ stable or zero), D5's job follow-up, and the
monitoring window's DLQ metric.

Queues are inspected straight from their broker, never through the application's queue library:
Redis for BullMQ, RQ, Celery/kombu and Redis Streams groups (`bullmq`, `rq`, `celery`, `streams`),
AMQP for Celery on RabbitMQ (`amqp`, via py-amqp), PostgreSQL for procrastinate
(`procrastinate`, via psycopg) and SQS's API for Amazon SQS (`sqs`, via boto3). Each kind opens
its own connection from one URL (`connection`).
Verdicts:

B6, per queue, over `interval_s` with `samples` snapshots (Redis server clock):
- failed: a job the library itself would call stalled/abandoned (BullMQ active without lock or
  a `stalled` event, RQ wip deadline passed, Celery unacked past the visibility timeout, stream
  entry pending past `claim_idle_s`), or an active job older than `max_job_age_s`;
- failed: the oldest waiting job is older than `max_job_age_s`, or the queue is paused with work;
- failed: jobs were waiting and none completed during the interval (`require_completions`);
- failed: more than `max_failed_ratio` (default 10 %) of the jobs that finished during the
  interval failed (BullMQ, RQ; Celery and streams cannot count failures and say so);
- inconclusive: the queue does not exist (wrong name/prefix — never a silent pass), only long
  jobs were running and none finished, or the queue was idle (nothing waiting, running or
  finishing). An idle queue shows no evidence that workers process anything, so it passes only
  with `accept_idle=True`; enqueue a probe job (D5's `wait_for_job`) for positive evidence.
- passed: at least one job completed and nothing is stuck or too old.
B7, per queue: failed when the DLQ grew between samples or a dead job appeared during the
interval; a stable non-zero DLQ passes only with `allow_nonzero_stable`; zero passes.
A broker that does not answer (refused, timeout, auth) is inconclusive and names host:port/db,
never the password. `interval_s` is the whole span; snapshots are spread evenly across it.
"""

from __future__ import annotations

from .dlq import check_dlq, dlq_depth
from .model import (
    DeadLetters,
    JobInfo,
    JobState,
    QueueInspector,
    QueueSnapshot,
    QueueStats,
    QueueUnreachable,
)
from .processing import check_queues_processing, judge_queue, wait_for_job
from .registry import inspector_kinds, make_inspector, open_queue_inspector, register_inspector

__all__ = [
    "DeadLetters",
    "JobInfo",
    "JobState",
    "QueueInspector",
    "QueueSnapshot",
    "QueueStats",
    "QueueUnreachable",
    "check_dlq",
    "check_queues_processing",
    "dlq_depth",
    "inspector_kinds",
    "judge_queue",
    "make_inspector",
    "open_queue_inspector",
    "register_inspector",
    "wait_for_job",
]
