"""The smoke runner with docflow's own flows (relnb_demo's app repository, loaded the way B5 loads
any team's flow module) against a real HTTP server implementing the DEMO-API contract."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from relnb.checks.http import smoke
from relnb.checks.http.flows import load_module, module_flows
from relnb.redact import Secret
from relnb.results import Status
from relnb_demo.driver import PRODUCTION_FLOWS, STAGING_FLOWS
from relnb_demo.repo import SMOKE_FLOWS

DOCFLOW = module_flows(load_module(SMOKE_FLOWS.name, SMOKE_FLOWS.parent, "relnb.toml", "smoke.python[0]"))


def pick(*names: str) -> dict[str, smoke.Flow]:
    return {n: DOCFLOW[n] for n in names}


def _no_tokens(outcome, *tokens) -> None:
    text = json.dumps(outcome.evidence) + outcome.summary
    for t in tokens:
        assert t.reveal() not in text
        assert t.reveal()[:12] not in text


def test_five_flows_pass_with_per_step_timing(docflow) -> None:
    out = smoke.run_flows(
        docflow.url, docflow.owner, docflow.member, flows=pick(*STAGING_FLOWS), poll_deadline_s=10, poll_interval_s=0.05
    )
    assert out.status is Status.PASSED, out.summary
    flows = {f["flow"]: f for f in out.evidence["flows"]}
    assert list(flows) == list(STAGING_FLOWS)
    for f in flows.values():
        assert f["status"] == "passed"
        for step in f["steps"]:
            assert {"method", "path", "status", "ms"} <= set(step)
    me_steps = flows["login_me"]["steps"]
    assert me_steps[0]["status"] == 401 and me_steps[0]["as"] == "anonymous"
    accept = next(s for s in flows["invite_accept"]["steps"] if s["step"] == "member accepts")
    assert accept["path"].startswith("/invites/[redacted:invite-token]")
    poll = flows["upload_extraction"]["steps"][-1]
    assert poll["polls"] >= 2 and '"extracted"' in poll["last"]
    _no_tokens(out, docflow.owner, docflow.member)


def test_production_selection_includes_health(docflow) -> None:
    out = smoke.run_flows(
        docflow.url,
        docflow.owner,
        flows=pick(*PRODUCTION_FLOWS),
        poll_deadline_s=10,
        poll_interval_s=0.05,
    )
    assert out.status is Status.PASSED, out.summary
    assert [f["flow"] for f in out.evidence["flows"]] == list(PRODUCTION_FLOWS)


def test_failing_step_has_status_and_scrubbed_body(docflow) -> None:
    docflow.knobs.fail["invites"] = 500
    docflow.knobs.leak_token = True  # the API echoes the Authorization header in its error body
    out = smoke.run_flows(
        docflow.url, docflow.owner, docflow.member, flows=pick(*STAGING_FLOWS), poll_deadline_s=5, poll_interval_s=0.05
    )
    assert out.status is Status.FAILED
    assert "invite_accept" in out.summary and "HTTP 500" in out.summary
    inv = next(f for f in out.evidence["flows"] if f["flow"] == "invite_accept")
    step = inv["steps"][-1]
    assert step["status"] == 500 and "injected fault" in step["body"]
    assert "[redacted:OWNER_TOKEN]" in step["body"]
    others = [f for f in out.evidence["flows"] if f["flow"] != "invite_accept"]
    assert all(f["status"] == "passed" for f in others)
    _no_tokens(out, docflow.owner, docflow.member)


def test_extraction_failure_and_stall(docflow) -> None:
    docflow.knobs.extraction = "fail"
    out = smoke.run_flows(
        docflow.url,
        docflow.owner,
        flows=pick("upload_extraction"),
        poll_deadline_s=5,
        poll_interval_s=0.05,
    )
    assert out.status is Status.FAILED and "extraction failed: pdf parser crashed" in out.summary
    docflow.knobs.extraction = "stall"
    out = smoke.run_flows(
        docflow.url,
        docflow.owner,
        flows=pick("upload_extraction"),
        poll_deadline_s=1.0,
        poll_interval_s=0.1,
    )
    assert out.status is Status.FAILED
    assert "not reached within 1 s" in out.summary and "processing" in out.summary


def test_retries_only_where_declared(docflow) -> None:
    calls = {"n": 0}

    async def flaky(s: smoke.FlowSession):
        calls["n"] += 1
        if calls["n"] == 1:
            docflow.knobs.fail["health"] = 503
        r = await s.call("GET", "/health", as_=None, expect=(200, 503), name="probe")
        docflow.knobs.fail.pop("health", None)
        assert r.status_code == 503
        # the declared retry: a 503 followed by a 200 passes
        docflow.knobs.fail["health"] = 503

        async def heal() -> None:
            import asyncio

            await asyncio.sleep(0.15)
            docflow.knobs.fail.pop("health", None)

        import asyncio

        task = asyncio.create_task(heal())
        await s.call("GET", "/health", as_=None, retries=5, retry_delay_s=0.1, name="retried")
        await task
        return {"attempts": s.steps[-1]["attempts"]}

    out = smoke.run_flows(docflow.url, docflow.owner, flows={"flaky_health_test": flaky})
    assert out.status is Status.PASSED, out.summary
    assert out.evidence["flows"][0]["steps"][-1]["attempts"] >= 2
    # undeclared: the same 503 fails at once, one attempt
    docflow.knobs.fail["health"] = 503
    before = docflow.knobs.requests
    out = smoke.run_flows(docflow.url, docflow.owner, flows=pick("health"))
    assert out.status is Status.FAILED and "HTTP 503" in out.summary
    assert docflow.knobs.requests - before == 1


def test_missing_member_token_is_inconclusive(docflow) -> None:
    out = smoke.run_flows(docflow.url, docflow.owner, None, flows=pick("invite_accept"))
    assert out.status is Status.INCONCLUSIVE and "MEMBER_TOKEN" in out.summary


def test_bad_token_and_unreachable_fail(docflow, dead_url) -> None:
    wrong = Secret("OWNER_TOKEN_WRONG", "eyJwrong-token-value-123456")
    out = smoke.run_flows(docflow.url, wrong, flows=pick("login_me"))
    assert out.status is Status.FAILED and "HTTP 401" in out.summary
    out = smoke.run_flows(
        dead_url, docflow.owner, flows=pick("health", "login_me"), request_timeout_s=2
    )
    assert out.status is Status.FAILED and "ConnectError" in out.summary
    _no_tokens(out, docflow.owner)


def test_user_flow_bug_is_reported_not_raised(docflow) -> None:
    async def broken(s: smoke.FlowSession):
        await s.json("GET", "/health", as_=None)
        raise KeyError("oops")

    out = smoke.run_flows(docflow.url, docflow.owner, flows=[broken])
    assert out.status is Status.FAILED and "KeyError" in out.summary


def test_concurrent_wall_is_close_to_slowest_flow(docflow) -> None:
    docflow.knobs.latency_ms = 150
    conc = smoke.run_flows(docflow.url, docflow.owner, docflow.member, flows=pick(*STAGING_FLOWS), poll_interval_s=0.05)
    seq = smoke.run_flows(
        docflow.url, docflow.owner, docflow.member, flows=pick(*STAGING_FLOWS), poll_interval_s=0.05, concurrent=False
    )
    assert conc.status is Status.PASSED and seq.status is Status.PASSED
    slowest = max(f["ms"] for f in conc.evidence["flows"])
    assert conc.evidence["wall_ms"] <= 1.3 * slowest + 100
    assert seq.evidence["wall_ms"] > 1.8 * conc.evidence["wall_ms"]


def test_smoke_script_gets_env_and_output_is_scrubbed(docflow, tmp_path: Path) -> None:
    script = tmp_path / "api-smoke.sh"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        'echo "using token $OWNER_TOKEN"\n'
        'curl -fsS -H "Authorization: Bearer $OWNER_TOKEN" "$BASE_URL/me"\necho\n'
        'curl -fsS "$BASE_URL/health"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    out = smoke.run_smoke_script(script, base_url=docflow.url, owner_token=docflow.owner)
    assert out.status is Status.PASSED, out.summary
    text = "\n".join(out.evidence["output_tail"])
    assert "[redacted:OWNER_TOKEN]" in text and '"sub":"u-owner"' in text
    _no_tokens(out, docflow.owner)
    bad = Secret("OWNER_TOKEN_BAD", "not-a-valid-token-" + os.urandom(4).hex())
    out = smoke.run_smoke_script(script, base_url=docflow.url, owner_token=bad)
    assert out.status is Status.FAILED and "exited 22" in out.summary
    _no_tokens(out, bad)
    out = smoke.run_smoke_script(tmp_path / "missing.sh", base_url=docflow.url, owner_token=bad)
    assert out.status is Status.FAILED and "not found" in out.summary


def test_each_flow_has_its_own_cookies(serve) -> None:
    """A flow that signs in gets a session cookie; a flow running beside it stays anonymous (on a
    shared jar the second flow sent the first one's session, and a CSRF token tied to one
    session failed the other's requests)."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def login(request: Request) -> JSONResponse:
        resp = JSONResponse({"ok": True})
        resp.set_cookie("session", "signed-in")
        return resp

    async def me(request: Request) -> JSONResponse:
        if request.cookies.get("session"):
            return JSONResponse({"user": "admin"})
        return JSONResponse({"user": None}, status_code=401)

    url = serve(Starlette(routes=[Route("/login", login, methods=["POST"]), Route("/me", me)]))

    async def signs_in(s: smoke.FlowSession) -> None:
        await s.call("POST", "/login", as_=None)
        await s.call("GET", "/me", as_=None, expect=(200,))

    async def anonymous(s: smoke.FlowSession) -> None:
        await asyncio.sleep(0.5)  # after the other flow signed in
        await s.call("GET", "/me", as_=None, expect=(401,))

    out = smoke.run_flows(url, None, flows={"signs_in": signs_in, "anonymous": anonymous})
    assert out.status is Status.PASSED, out.summary
