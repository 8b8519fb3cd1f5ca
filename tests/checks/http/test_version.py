"""B1: polling a real /version endpoint until it reports main's SHA."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relnb.checks.http.version import check_version, sha_matches
from relnb.results import Status

MAIN = "9fceb02d0ae598e95dc970b74767f19372d61af8"
OLD = "e83c5163316f89bfbde7d9ab23ca2e25604af290"


class Staging:
    def __init__(self) -> None:
        self.sha = OLD
        self.switch_after: float | None = None
        self.mode = "ok"
        self.started = time.monotonic()
        self.hits = 0
        self.extra: dict = {}  # further fields of the answer (a start time, an uptime)

    async def version(self, request):
        self.hits += 1
        if self.mode == "500":
            return JSONResponse({"error": "boom"}, status_code=500)
        if self.mode == "malformed":
            return Response("{sha:", media_type="application/json")
        if self.mode == "slow":
            await asyncio.sleep(2)
        if self.mode == "nofield":
            return JSONResponse({"version": "1.1.0"})
        if self.switch_after is not None and time.monotonic() - self.started >= self.switch_after:
            self.sha = MAIN
        return JSONResponse(
            {
                "sha": self.sha,
                "version": "1.1.0",
                "image_tag": "1.1.0",
                "environment": "staging",
                "build": {"commit": self.sha[:7]},
                **self.extra,
            }
        )


@pytest.fixture
def staging(serve):
    s = Staging()
    s.url = serve(Starlette(routes=[Route("/version", s.version), Route("/api/meta", s.version)]))
    return s


def test_passes_when_staging_reports_main(staging):
    staging.sha = MAIN
    out = check_version(staging.url, MAIN, timeout_s=5, poll_interval_s=0.2)
    assert out.status is Status.PASSED, out
    assert out.evidence["deployed"] == MAIN and out.evidence["attempts"] == 1
    assert out.evidence["reported"]["environment"] == "staging"


def test_polls_until_the_deploy_lands(staging):
    staging.started = time.monotonic()
    staging.switch_after = 0.8
    ticks = []
    out = check_version(staging.url, MAIN, timeout_s=10, poll_interval_s=0.2, progress=ticks.append)
    assert out.status is Status.PASSED
    assert out.evidence["attempts"] > 1 and ticks
    assert [h["deployed"] for h in out.evidence["history"]] == [OLD, MAIN]
    json.dumps(out.evidence)  # JSON-able as the journal needs


def test_wrong_sha_at_deadline_fails(staging):
    t0 = time.monotonic()
    out = check_version(staging.url, MAIN, timeout_s=1, poll_interval_s=0.2)
    assert out.status is Status.FAILED
    assert out.evidence["deployed"] == OLD and out.evidence["expected"] == MAIN
    assert OLD[:12] in out.summary and MAIN[:12] in out.summary
    assert time.monotonic() - t0 < 3


def test_configurable_path_and_nested_field_with_short_sha(staging):
    staging.sha = MAIN
    out = check_version(
        staging.url, MAIN, path="api/meta", field="build.commit", timeout_s=2, poll_interval_s=0.2
    )
    assert out.status is Status.PASSED and out.evidence["deployed"] == MAIN[:7]
    staging.sha = OLD
    out = check_version(
        staging.url, MAIN, path="api/meta", field="build.commit", timeout_s=0.5, poll_interval_s=0.2
    )
    assert out.status is Status.FAILED


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("500", "HTTP 500"),
        ("malformed", "malformed JSON"),
        ("slow", "timeout"),
        ("nofield", "no string field 'sha'"),
    ],
)
def test_unusable_answers_are_inconclusive(staging, mode, words):
    staging.mode = mode
    out = check_version(
        staging.url, MAIN, timeout_s=0.6, poll_interval_s=0.2, request_timeout_s=0.5
    )
    assert out.status is Status.INCONCLUSIVE, out
    assert words in out.summary


def test_target_down_is_inconclusive(dead_url):
    out = check_version(dead_url, MAIN, timeout_s=0.5, poll_interval_s=0.2)
    assert out.status is Status.INCONCLUSIVE and "unreachable" in out.summary


def test_bad_expected_sha():
    assert check_version("http://127.0.0.1:9", "main", timeout_s=0).status is Status.INCONCLUSIVE


def test_sha_matching_rules():
    assert sha_matches(MAIN, MAIN.upper())
    assert sha_matches(MAIN[:7], MAIN)
    assert not sha_matches(MAIN[:6], MAIN)
    assert not sha_matches(OLD, MAIN)
    assert not sha_matches("", MAIN)


def test_a_pass_says_since_when_staging_serves_it_first_observed(staging):
    """issue 19 item 9: B1 records when it first saw staging serve the SHA (C1's soak starts there)."""
    staging.sha = MAIN
    before = time.time()
    out = check_version(staging.url, MAIN, timeout_s=5, poll_interval_s=0.2)
    since = out.evidence["serving_since"]
    assert before <= since["ts"] <= time.time()
    assert since["ts"] == since["first_observed_ts"] and since["source"] == "first-observed"
    assert "reports no start time" in since["basis"] and "reported" not in since
    json.dumps(out.evidence)


@pytest.mark.parametrize(
    "extra",
    [{"uptime_s": 600}, {"uptime_ms": 600_000}, {"started_at": None}, {"startTime": None}],
)
def test_a_start_reported_by_the_endpoint_is_used_and_named(staging, extra):
    """issue 19 item 9: an endpoint's uptime or start time says when staging began serving."""
    field = next(iter(extra))
    if extra[field] is None:  # absolute: ISO 8601 with a timezone, and epoch seconds
        from datetime import UTC, datetime

        start = time.time() - 600
        extra = {field: datetime.fromtimestamp(start, UTC).isoformat() if field == "started_at" else start}
    staging.sha, staging.extra = MAIN, extra
    out = check_version(staging.url, MAIN, timeout_s=5, poll_interval_s=0.2)
    since = out.evidence["serving_since"]
    assert since["source"] == "reported" and since["basis"] == f"reported by the endpoint ({field})"
    assert since["first_observed_ts"] - since["ts"] == pytest.approx(600, abs=2)
    assert since["reported"]["field"] == field


def test_a_reported_start_that_contradicts_the_polls_is_not_used(staging):
    """issue 19 item 9: the endpoint's clock ahead, an unusable value, or a start before a poll that
    still saw the old version: the first observation is the soak's start, and the evidence says why."""
    staging.sha = MAIN
    staging.extra = {"started_at": "2999-01-01T00:00:00+00:00"}
    since = check_version(staging.url, MAIN, timeout_s=5, poll_interval_s=0.2).evidence["serving_since"]
    assert since["source"] == "first-observed" and "clock is ahead" in since["basis"]
    staging.extra = {"started_at": "2024-01-01T00:00:00"}  # no timezone: ambiguous
    since = check_version(staging.url, MAIN, timeout_s=5, poll_interval_s=0.2).evidence["serving_since"]
    assert since["source"] == "first-observed" and "unusable" in since["basis"]
    # the old version answered, then the new one claims to have been up for an hour
    staging.sha, staging.extra = OLD, {"uptime_s": 3600}
    staging.started, staging.switch_after = time.monotonic(), 0.5
    out = check_version(staging.url, MAIN, timeout_s=10, poll_interval_s=0.2)
    since = out.evidence["serving_since"]
    assert out.status is Status.PASSED and out.evidence["attempts"] > 1
    assert since["source"] == "first-observed" and "another version" in since["basis"]
