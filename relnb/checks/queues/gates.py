"""Providers of the queue gates: B6 queues processing, B7 dead-letter queue stable."""

from __future__ import annotations

from ...config import parse_duration
from ...gatecontext import GateContext, not_configured
from ...results import Outcome


def _queue_args(ctx: GateContext, env_name: str) -> tuple[str, dict] | Outcome:
    env = ctx.env(env_name)
    redis = ctx.env_secret(env_name, "redis_url_env")
    if redis is None:
        return not_configured(f"environments.{env_name}.redis_url_env", "name the env var holding the queue Redis URL")
    q = env["queue"]
    return redis.reveal(), {"kind": q["kind"], "queues": q["names"], "prefix": q["prefix"] or None}


def queues_processing(ctx: GateContext) -> Outcome:
    from . import check_queues_processing

    args = _queue_args(ctx, "staging")
    if isinstance(args, Outcome):
        return args
    url, kw = args
    q = ctx.env("staging")["queue"]
    return check_queues_processing(
        url, kw["kind"], kw["queues"], prefix=kw["prefix"],
        interval_s=parse_duration(q["check_interval"]), max_job_age_s=parse_duration(q["max_job_age"]),
        max_failed_ratio=q["max_failed_ratio"],
    )


def dlq_stable(ctx: GateContext) -> Outcome:
    from . import check_dlq

    args = _queue_args(ctx, "staging")
    if isinstance(args, Outcome):
        return args
    url, kw = args
    interval = parse_duration(ctx.env("staging")["queue"]["check_interval"])
    return check_dlq(url, kw["kind"], kw["queues"], prefix=kw["prefix"], samples=3, interval_s=interval)
