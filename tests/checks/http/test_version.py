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
