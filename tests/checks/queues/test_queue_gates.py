"""B6/B7 from relnb.toml: a broker that is not Redis is named by `queue.url_env`, its dead-letter
queue by `queue.dlq`; the Redis kinds keep `redis_url_env`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relnb import Release, Status
from relnb.checks.queues.gates import dlq_stable, queue_options, queue_url_field, queues_processing
from relnb.gatecontext import GateContext

from ...conftest import unused_port
from ...core.helpers import make_project


@pytest.fixture
def project(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Release]]:
    monkeypatch.setenv("RELNB_USER", "Lead Person <lead@example.org>")
    made: list[Release] = []

    def make(toml: str) -> Release:
        made.append(Release.create("1.4.0", root=make_project(tmp_path / f"p{len(made)}", toml)))
        return made[-1]

    yield make


def _toml(queue: str, extra: str = "") -> str:
    return (
        '[environments.staging]\nbase_url = "http://127.0.0.1:9"\n' + extra
        + f'[environments.staging.queue]\ncheck_interval = "0.3s"\n{queue}'
    )  # fmt: skip


def test_url_env_and_dlq_reach_the_amqp_inspector(project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGING_AMQP", f"amqp://guest:pw-secret@127.0.0.1:{unused_port()}//")
    r = project(_toml('kind = "celery-amqp"\nurl_env = "STAGING_AMQP"\nnames = ["jobs"]\ndlq = "{queue}.dlq"\n'))
    for gate, fn in (("B6", queues_processing), ("B7", dlq_stable)):
        out = fn(GateContext(r, gate))
        assert out.status is Status.INCONCLUSIVE, out
        assert "amqp://127.0.0.1" in out.summary and "pw-secret" not in repr(out)
    assert queue_options(r.config.env("staging")["queue"]) == {"dlq": "{queue}.dlq"}


def test_redis_kinds_keep_redis_url_env_and_map_dlq_to_keys(project: Any) -> None:
    r = project(_toml('kind = "celery"\nnames = ["a", "b"]\ndlq = "dead:{queue}"\n', 'redis_url_env = "R"\n'))
    env = r.config.env("staging")
    assert queue_url_field(env) == "redis_url_env"
    assert queue_options(env["queue"]) == {"dlq_keys": {"a": "dead:a", "b": "dead:b"}}


def test_no_queue_url_names_the_key_to_set(project: Any) -> None:
    r = project(_toml('kind = "procrastinate"\nnames = ["jobs"]\n'))
    out = queues_processing(GateContext(r, "B6"))
    assert out.status is Status.INCONCLUSIVE
    assert "environments.staging.queue.url_env" in out.summary
