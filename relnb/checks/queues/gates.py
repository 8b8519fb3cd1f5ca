"""Providers of the queue gates: B6 queues processing, B7 dead-letter queue stable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...config import parse_duration
from ...gatecontext import GateContext, not_configured
from ...results import Outcome

# kinds whose dead letters live in keys the application chooses (queue.dlq → dlq_keys)
_DLQ_KEY_KINDS = ("celery", "redis-streams")


def queue_url_field(env: Mapping[str, Any]) -> str | None:
    """Which `_env` key of an environment names the queue broker's URL: `queue.url_env`, else
    `redis_url_env` (the Redis kinds' historical key); None when neither is set."""
    if env["queue"]["url_env"]:
        return "queue.url_env"
    return "redis_url_env" if env["redis_url_env"] else None


def queue_options(queue: Mapping[str, Any]) -> dict[str, Any]:
    """The inspector options that `[environments.X.queue]` sets (today: the dead-letter queue)."""
    dlq = queue["dlq"]
    if not dlq:
        return {}
    if queue["kind"] in _DLQ_KEY_KINDS:
        return {"dlq_keys": {q: dlq.replace("{queue}", q) for q in queue["names"]}}
    return {"dlq": dlq}


def queue_url(ctx: GateContext, env_name: str) -> str | Outcome:
    env = ctx.env(env_name)
    field = queue_url_field(env)
    if field is None:
        return not_configured(
            f"environments.{env_name}.queue.url_env",
            "name the env var holding the queue broker's URL (or redis_url_env for a Redis queue)",
        )
    var = env["queue"]["url_env"] if field == "queue.url_env" else env["redis_url_env"]
    return ctx.secret(var, f"environments.{env_name}.{field}").reveal()


def _queue_args(ctx: GateContext, env_name: str) -> tuple[str, dict] | Outcome:
    url = queue_url(ctx, env_name)
    if isinstance(url, Outcome):
        return url
    q = ctx.env(env_name)["queue"]
    return url, {"kind": q["kind"], "queues": q["names"], "prefix": q["prefix"] or None, **queue_options(q)}


def queues_processing(ctx: GateContext) -> Outcome:
    from . import check_queues_processing

    args = _queue_args(ctx, "staging")
    if isinstance(args, Outcome):
        return args
    url, kw = args
    q = ctx.env("staging")["queue"]
    return check_queues_processing(
        url, kw.pop("kind"), kw.pop("queues"),
        interval_s=parse_duration(q["check_interval"]), max_job_age_s=parse_duration(q["max_job_age"]),
        max_failed_ratio=q["max_failed_ratio"], **kw,
    )  # fmt: skip


def dlq_stable(ctx: GateContext) -> Outcome:
    from . import check_dlq

    args = _queue_args(ctx, "staging")
    if isinstance(args, Outcome):
        return args
    url, kw = args
    interval = parse_duration(ctx.env("staging")["queue"]["check_interval"])
    return check_dlq(url, kw.pop("kind"), kw.pop("queues"), samples=3, interval_s=interval, **kw)
