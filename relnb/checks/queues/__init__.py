"""Are the workers keeping up: jobs completing, nothing stuck, dead letters not growing?

The verdict rules are in `verdicts`' docstring.
"""

from __future__ import annotations

from .verdicts import (
    DeadLetters,
    JobInfo,
    JobState,
    QueueInspector,
    QueueSnapshot,
    QueueStats,
    QueueUnreachable,
    check_dlq,
    check_queues_processing,
    dlq_depth,
    inspector_kinds,
    judge_queue,
    make_inspector,
    register_inspector,
    wait_for_job,
)

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
    "register_inspector",
    "wait_for_job",
]
