"""A1 GitHub provider against a local server replaying GitHub's documented REST payloads.

The client is the production code; only GitHub is replaced (it cannot be reached from here).
Pagination uses real Link headers, errors use GitHub's documented statuses and headers.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from relnb.checks.ops.ci import check_ci_github
from relnb.redact import REDACTOR, Secret
from relnb.results import Status

SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
REPO = "acme/docflow"
PAGE = 2  # the replay server pages small so pagination is always exercised


def run(id_: int, name: str, status: str = "completed", conclusion: str | None = "success") -> dict:
    return {
        "id": id_,
        "name": name,
        "head_sha": SHA,
        "status": status,
        "conclusion": conclusion,
        "html_url": f"https://github.com/{REPO}/runs/{id_}",
        "app": {"slug": "github-actions"},
    }


def status(context: str, state: str) -> dict:
    return {
        "context": context,
        "state": state,
        "target_url": "https://ci.example.com/1",
        "description": f"{context} {state}",
    }


class GitHubReplay:
    def __init__(self) -> None:
        self.runs: list[dict] = []
        self.statuses: list[dict] = []
        self.combined: str | None = None
        self.protection: dict | None = None
        self.rules: list[dict] = []
        self.fail: tuple[int, dict, Any] | None = None
        self.delay = 0.0
        self.malformed = False
        self.auth_headers: list[str | None] = []
        self.paths: list[str] = []

    def _page(self, request: Request, items: list, wrap) -> Response:
        page = int(request.query_params.get("page", "1"))
        chunk = items[(page - 1) * PAGE : page * PAGE]
        headers = {}
        last = max(1, -(-len(items) // PAGE))
        if page < last:
            base = str(request.url.remove_query_params("page"))
            headers["Link"] = (
                f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
            )
        return JSONResponse(wrap(chunk), headers=headers)

    async def _common(self, request: Request) -> Response | None:
        self.auth_headers.append(request.headers.get("authorization"))
        self.paths.append(request.url.path)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail and "check-runs" in request.url.path:
            code, headers, body = self.fail
            return JSONResponse(body, status_code=code, headers=headers)
        if self.malformed:
            return Response("{not json", media_type="application/json")
        return None

    async def check_runs(self, request: Request) -> Response:
        return await self._common(request) or self._page(
            request, self.runs, lambda c: {"total_count": len(self.runs), "check_runs": c}
        )

    async def combined_status(self, request: Request) -> Response:
        state = self.combined or ("pending" if not self.statuses else "success")
        return await self._common(request) or self._page(
            request,
            self.statuses,
            lambda c: {
                "state": state,
                "sha": SHA,
                "total_count": len(self.statuses),
                "statuses": c,
            },
        )

    async def protection_ep(self, request: Request) -> Response:
        if (r := await self._common(request)) is not None:
            return r
        if self.protection is None:
            return JSONResponse(
                {
                    "message": "Branch not protected",
                    "documentation_url": "https://docs.github.com/rest",
                },
                status_code=404,
            )
        return JSONResponse(self.protection)

    async def rules_ep(self, request: Request) -> Response:
        return await self._common(request) or self._page(request, self.rules, lambda c: c)

    def app(self) -> Starlette:
        routes = [
            Route("/repos/{o}/{n}/commits/{sha}/check-runs", self.check_runs),
            Route("/repos/{o}/{n}/commits/{sha}/status", self.combined_status),
            Route(
                "/repos/{o}/{n}/branches/{b}/protection/required_status_checks", self.protection_ep
            ),
            Route("/repos/{o}/{n}/rules/branches/{b}", self.rules_ep),
        ]
        return Starlette(routes=[*routes, Mount("/api/v3", routes=routes)])


@pytest.fixture
def gh(serve):
    replay = GitHubReplay()
    replay.url = serve(replay.app())
    return replay


@pytest.fixture
def token():
    yield Secret("GITHUB_TOKEN", "ghp_test0123456789abcdefSECRET")
    REDACTOR.forget_all()


def check(gh, token=None, **kw):
    kw.setdefault("api_url", gh.url)
    kw.setdefault("required", [])
    return check_ci_github(REPO, SHA, token=token, timeout_s=kw.pop("timeout_s", 5), **kw)


def test_all_green_across_pages_with_actions_only_pending_status(gh, token):
    gh.runs = [run(i, f"job-{i}") for i in range(1, 6)]  # 3 pages
    gh.runs.append(run(6, "lint", conclusion="skipped"))
    gh.runs.append(run(7, "docs", conclusion="neutral"))
    out = check(gh, token)
    assert out.status is Status.PASSED, out
    assert out.evidence["check_runs"] == 7
    assert out.evidence["combined_state"] == "pending" and out.evidence["statuses"] == 0
    assert any("Actions-only" in n for n in out.evidence["notes"])
    assert {p for p in gh.auth_headers} == {f"Bearer {token.reveal()}"}
    assert token.reveal() not in json.dumps(out.evidence)
    assert out.evidence["api_requests"] >= 5  # 4 pages of runs + 1 of statuses


def test_one_failure_on_a_later_page_fails(gh):
    gh.runs = [run(i, f"job-{i}") for i in range(1, 6)] + [run(9, "e2e", conclusion="failure")]
    out = check(gh)
    assert out.status is Status.FAILED
    assert out.evidence["failed"] == ["e2e"] and "e2e" in out.summary


@pytest.mark.parametrize(
    "conclusion", ["cancelled", "timed_out", "action_required", "startup_failure", "weird"]
)
def test_bad_conclusions_fail(gh, conclusion):
    gh.runs = [run(1, "unit"), run(2, "integration", conclusion=conclusion)]
    assert check(gh).status is Status.FAILED


def test_rerun_supersedes_failed_run(gh):
    gh.runs = [run(1, "unit", conclusion="failure"), run(2, "unit", conclusion="success")]
    out = check(gh)
    assert out.status is Status.PASSED, out


def test_running_check_is_inconclusive(gh):
    gh.runs = [run(1, "unit"), run(2, "e2e", status="in_progress", conclusion=None)]
    out = check(gh)
    assert out.status is Status.INCONCLUSIVE and "still running" in out.summary


def test_commit_statuses_count(gh):
    gh.runs = [run(1, "unit")]
    gh.statuses = [
        status("ci/jenkins", "failure"),
        status("ci/jenkins", "success"),
        status("deploy", "success"),
    ]
    gh.combined = "failure"
    out = check(gh)
    # newest status per context comes first: ci/jenkins is failing now
    assert out.status is Status.FAILED and out.evidence["failed"] == ["ci/jenkins"]
    gh.statuses = [status("ci/jenkins", "success"), status("ci/jenkins", "failure")]
    gh.combined = "success"
    assert check(gh).status is Status.PASSED


def test_pending_status_with_statuses_is_running(gh):
    gh.runs = [run(1, "unit")]
    gh.statuses = [status("ci/external", "pending")]
    assert check(gh).status is Status.INCONCLUSIVE


def test_no_ci_at_all_is_inconclusive(gh):
    out = check(gh)
    assert out.status is Status.INCONCLUSIVE and "no check runs" in out.summary


def test_required_checks_from_branch_protection_and_rulesets(gh):
    gh.runs = [run(1, "unit"), run(2, "integration")]
    gh.protection = {
        "strict": True,
        "contexts": ["unit"],
        "checks": [{"context": "unit", "app_id": 15368}],
    }
    gh.rules = [
        {"type": "pull_request", "parameters": {}},
        {"type": "deletion"},
        {
            "type": "required_status_checks",
            "parameters": {
                "strict_required_status_checks_policy": False,
                "required_status_checks": [{"context": "e2e", "integration_id": 15368}],
            },
        },
    ]
    out = check(gh, required=None)
    assert out.status is Status.FAILED
    assert out.evidence["required"] == ["e2e", "unit"] and out.evidence["missing_required"] == [
        "e2e"
    ]
    assert out.evidence["required_source"] == "branch protection/rulesets"
    gh.runs.append(run(3, "e2e", conclusion="skipped"))
    assert check(gh, required=None).status is Status.PASSED


def test_unprotected_branch_has_no_required_checks(gh):
    gh.runs = [run(1, "unit")]
    out = check(gh, required=None)
    assert out.status is Status.PASSED
    assert any("HTTP 404" in n for n in out.evidence["notes"])


def test_configured_required_check_missing_fails(gh):
    gh.runs = [run(1, "unit")]
    out = check(gh, required=["migrations"])
    assert out.status is Status.FAILED and "migrations" in out.summary


def test_github_api_url_env_is_respected_for_enterprise(gh, monkeypatch):
    gh.runs = [run(1, "unit")]
    monkeypatch.setenv("GITHUB_API_URL", gh.url + "/api/v3")
    out = check_ci_github(REPO, SHA, required=[], timeout_s=5)
    assert out.status is Status.PASSED
    assert out.evidence["api_url"].endswith("/api/v3")
    assert all(p.startswith("/api/v3/") for p in gh.paths)


@pytest.mark.parametrize(
    ("code", "headers", "body", "expected", "words"),
    [
        (401, {}, {"message": "Bad credentials"}, Status.FAILED, "401"),
        (403, {}, {"message": "Resource not accessible by integration"}, Status.FAILED, "403"),
        (404, {}, {"message": "Not Found"}, Status.FAILED, "404"),
        (422, {}, {"message": "No commit found for SHA: nope"}, Status.FAILED, "422"),
        (
            403,
            {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-limit": "60",
                "x-ratelimit-reset": str(int(time.time()) + 600),
            },
            {"message": "API rate limit exceeded for 127.0.0.1."},
            Status.INCONCLUSIVE,
            "rate limit",
        ),
        (
            429,
            {"retry-after": "30"},
            {"message": "secondary rate limit"},
            Status.INCONCLUSIVE,
            "rate limit",
        ),
        (500, {}, {"message": "Server Error"}, Status.INCONCLUSIVE, "HTTP 500"),
    ],
)
def test_error_statuses(gh, token, code, headers, body, expected, words):
    gh.runs = [run(1, "unit")]
    gh.fail = (code, headers, body)
    out = check(gh, token)
    assert out.status is expected, out
    assert words in out.summary
    assert out.evidence["http_status"] == code
    if code == 401:
        assert "GITHUB_TOKEN" in out.summary  # names the env var to fix, never the value


def test_rate_limit_evidence(gh):
    reset = int(time.time()) + 600
    gh.fail = (
        403,
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        {"message": "API rate limit exceeded"},
    )
    out = check(gh)
    assert out.evidence["ratelimit_remaining"] == "0" and out.evidence["ratelimit_reset"] == str(
        reset
    )
    assert "resets in" in out.summary


def test_malformed_json_is_inconclusive(gh):
    gh.malformed = True
    out = check(gh)
    assert out.status is Status.INCONCLUSIVE and "malformed JSON" in out.summary


def test_slow_api_times_out(gh):
    gh.runs = [run(1, "unit")]
    gh.delay = 2.0
    t0 = time.monotonic()
    out = check(gh, timeout_s=0.5)
    assert out.status is Status.INCONCLUSIVE and "timed out" in out.summary
    assert time.monotonic() - t0 < 2.0


def test_api_down_is_inconclusive(dead_url):
    out = check_ci_github(REPO, SHA, api_url=dead_url, required=[], timeout_s=2)
    assert out.status is Status.INCONCLUSIVE and "unreachable" in out.summary


def test_bad_inputs_do_not_pass(gh):
    assert check_ci_github(REPO, None, api_url=gh.url).status is Status.INCONCLUSIVE
    assert check_ci_github("not-a-repo", SHA, api_url=gh.url).status is Status.INCONCLUSIVE
