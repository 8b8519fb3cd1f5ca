"""B5/D5 smoke flows, and D6 / B5's scripted smoke (`scripts/smoke/api-smoke.sh`).

A flow is an `async def flow(s: FlowSession)` that talks to the API through `s.call(...)` and
`s.poll(...)`: every request is timed and recorded (method, path, status, ms), tokens are added
at the point of use and never recorded, and a step that gets the wrong answer raises
`StepFailed` carrying the response status and a scrubbed, truncated body. Flows run concurrently
(each flow creates what it needs, so none waits for another), which keeps a smoke run as long as
its slowest flow instead of the sum of all of them.

Users add flows with `@smoke_flow("name")`; the checklist's five are registered here, as are
`health` and the production selection used by D5.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ...redact import Secret, scrub
from ...results import Outcome

if TYPE_CHECKING:
    import httpx

BODY_LIMIT = 400
_SECRET_PARAM = re.compile(r"(?i)token|secret|password|passwd|key|signature|auth|code")

Flow = Callable[["FlowSession"], Awaitable[Mapping[str, Any] | None]]
FLOWS: dict[str, Flow] = {}

# The checklist's B5 flows, in checklist order.
CHECKLIST_FLOWS = (
    "login_me",
    "create_workspace",
    "invite_accept",
    "upload_extraction",
    "analytics_summary",
)
# D5: health endpoint, login, one workspace operation, one queue job end to end.
PRODUCTION_FLOWS = ("health", "login_me", "create_workspace", "upload_extraction")


def smoke_flow(name: str | None = None) -> Callable[[Flow], Flow]:
    """Register a flow under `name` (default: the function's name) so runs can select it by name."""

    def register(fn: Flow) -> Flow:
        FLOWS[name or fn.__name__] = fn
        return fn

    return register


class StepFailed(Exception):
    """A step did not get the answer the flow needs. The message and `step` are already scrubbed."""

    def __init__(self, message: str, step: Mapping[str, Any] | None = None) -> None:
        self.step = dict(step or {})
        super().__init__(scrub(message))


class FlowInconclusive(Exception):
    """The flow cannot run as configured (e.g. no member token); not a verdict on the API."""


@dataclass
class SmokeContext:
    """What every flow may use. Tokens are `Secret`s; revealed only into request headers."""

    base_url: str
    owner_token: Secret
    member_token: Secret | None = None
    request_timeout_s: float = 10.0
    poll_deadline_s: float = 60.0
    poll_interval_s: float = 0.5
    # Free-form settings for user flows (e.g. the file to upload: {"upload": (name, bytes, type)}).
    extra: dict[str, Any] = field(default_factory=dict)


def _body_excerpt(resp: httpx.Response) -> str:
    try:
        text = resp.text
    except Exception:
        return "<undecodable body>"
    text = scrub(text)
    return text[:BODY_LIMIT] + ("…" if len(text) > BODY_LIMIT else "")


def _safe_path(path: str, params: Mapping[str, Any] | None) -> str:
    """The path as recorded: scrubbed, with secret-looking query values masked."""
    if params:
        shown = {k: ("***" if _SECRET_PARAM.search(k) else str(v)) for k, v in params.items()}
        path = f"{path}?{urlencode(shown)}"
    return scrub(path)


class FlowSession:
    """One flow's view of the API: records each step it takes, in order."""

    def __init__(self, ctx: SmokeContext, client: httpx.AsyncClient, flow: str) -> None:
        self.ctx = ctx
        self.flow = flow
        self.steps: list[dict[str, Any]] = []
        self._client = client

    def _headers(self, as_: str | None) -> dict[str, str]:
        if as_ is None:
            return {}
        token = {"owner": self.ctx.owner_token, "member": self.ctx.member_token}.get(as_)
        if token is None:
            if as_ == "member":
                raise FlowInconclusive("no member token configured (MEMBER_TOKEN) for this flow")
            raise ValueError(f"unknown identity {as_!r}: use 'owner', 'member' or None")
        return {"Authorization": f"Bearer {token.reveal()}"}

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = "owner",
        expect: Iterable[int] = (200,),
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        retries: int = 0,
        retry_delay_s: float = 0.5,
        name: str | None = None,
    ) -> httpx.Response:
        """One request. Retried only when the flow declares `retries` (transport errors and 5xx)."""
        import httpx

        expect = tuple(expect)
        step: dict[str, Any] = {
            "step": name or f"{method} {path}",
            "method": method,
            "path": _safe_path(path, params),
            "as": as_ or "anonymous",
        }
        headers = self._headers(as_)
        t0 = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._client.request(
                    method, path, headers=headers, json=json, data=data, files=files, params=params
                )
            except httpx.HTTPError as exc:
                if attempt <= retries:
                    await asyncio.sleep(retry_delay_s)
                    continue
                step.update(
                    status=None,
                    ms=round((time.perf_counter() - t0) * 1000, 1),
                    attempts=attempt,
                    error=f"{type(exc).__name__}: {scrub(str(exc))[:200]}",
                )
                self.steps.append(step)
                raise StepFailed(f"{method} {step['path']} → {step['error']}", step) from None
            if resp.status_code >= 500 and resp.status_code not in expect and attempt <= retries:
                await asyncio.sleep(retry_delay_s)
                continue
            break
        step.update(
            status=resp.status_code,
            ms=round((time.perf_counter() - t0) * 1000, 1),
            attempts=attempt,
        )
        self.steps.append(step)
        if resp.status_code not in expect:
            step["body"] = _body_excerpt(resp)
            want = "/".join(str(c) for c in expect)
            raise StepFailed(
                f"{method} {step['path']} → HTTP {resp.status_code} (expected {want})", step
            )
        return resp

    async def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """`call` and require a JSON object back."""
        resp = await self.call(method, path, **kwargs)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            step = self.steps[-1]
            step["body"] = _body_excerpt(resp)
            raise StepFailed(f"{method} {step['path']} → not a JSON object", step)
        return body

    def require(self, ok: bool, message: str) -> None:
        """Fail the last step with `message` unless `ok` (for checks on a response's content)."""
        if not ok:
            step = self.steps[-1] if self.steps else {}
            step["problem"] = scrub(message)
            raise StepFailed(f"{step.get('method', '')} {step.get('path', '')}: {message}", step)

    async def poll(
        self,
        path: str,
        *,
        until: Callable[[dict[str, Any]], bool],
        fail_if: Callable[[dict[str, Any]], str | None] | None = None,
        as_: str | None = "owner",
        deadline_s: float | None = None,
        interval_s: float | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:
        """GET `path` until `until(body)`; `fail_if(body)` returning a reason stops early as failed."""
        import httpx

        deadline_s = self.ctx.poll_deadline_s if deadline_s is None else deadline_s
        interval_s = self.ctx.poll_interval_s if interval_s is None else interval_s
        step: dict[str, Any] = {
            "step": name or f"poll GET {path}",
            "method": "GET",
            "path": _safe_path(path, None),
            "as": as_ or "anonymous",
            "deadline_s": deadline_s,
        }
        headers = self._headers(as_)
        t0 = time.perf_counter()
        end = time.monotonic() + deadline_s
        polls = 0
        last: Any = None
        problem = None
        while True:
            polls += 1
            try:
                resp = await self._client.get(path, headers=headers)
                status: int | None = resp.status_code
                try:
                    last = resp.json() if status == 200 else None
                except ValueError:
                    last = None
                if status != 200 or not isinstance(last, dict):
                    problem = f"HTTP {status}: {_body_excerpt(resp)}"
                else:
                    problem = None
            except httpx.HTTPError as exc:
                status, problem = None, f"{type(exc).__name__}: {scrub(str(exc))[:200]}"
            step.update(status=status, polls=polls)
            if problem is None and isinstance(last, dict):
                reason = fail_if(last) if fail_if else None
                if reason:
                    step.update(ms=self._ms(t0), last=scrub_json(last))
                    self.steps.append(step)
                    raise StepFailed(f"GET {step['path']}: {reason}", step)
                if until(last):
                    step.update(ms=self._ms(t0), last=scrub_json(last))
                    self.steps.append(step)
                    return last
            if time.monotonic() + interval_s > end:
                step.update(ms=self._ms(t0), last=scrub_json(last) if last else None)
                if problem:
                    step["error"] = problem
                self.steps.append(step)
                seen = problem or f"last answer {scrub_json(last)}"
                raise StepFailed(
                    f"GET {step['path']}: condition not reached within {deadline_s:g} s ({seen})",
                    step,
                )
            await asyncio.sleep(interval_s)

    @staticmethod
    def _ms(t0: float) -> float:
        return round((time.perf_counter() - t0) * 1000, 1)


def scrub_json(obj: Any, limit: int = BODY_LIMIT) -> Any:
    """A short, scrubbed rendering of a JSON answer for evidence."""
    import json as _json

    text = scrub(_json.dumps(obj, default=str, sort_keys=True))
    return text[:limit] + ("…" if len(text) > limit else "")


# ---------------------------------------------------------------------------------------------
# The flows (DEMO-API.md contract)


def _unique(prefix: str) -> str:
    return f"relnb-smoke-{prefix}-{uuid.uuid4().hex[:8]}"


async def _new_workspace(s: FlowSession, what: str) -> str:
    name = _unique(what)
    ws = await s.json(
        "POST", "/workspaces", json={"name": name}, expect=(201,), name="create workspace"
    )
    s.require(
        isinstance(ws.get("id"), str | int) and ws.get("name") == name,
        f"workspace answer lacks id or name {name!r}: {scrub_json(ws)}",
    )
    return str(ws["id"])


@smoke_flow("health")
async def health(s: FlowSession) -> dict[str, Any]:
    body = await s.json("GET", "/health", as_=None, name="health")
    checks = body.get("checks") if isinstance(body.get("checks"), dict) else {}
    bad = {k: v for k, v in checks.items() if v != "ok"}
    s.require(
        body.get("status") == "ok" and not bad,
        f"health is {body.get('status')!r}, failing dependencies: {bad or 'none listed'}",
    )
    return {"checks": sorted(checks)}


@smoke_flow("login_me")
async def login_me(s: FlowSession) -> dict[str, Any]:
    """Login bootstrap: `/me` answers for the owner's token and refuses a request without one."""
    await s.call("GET", "/me", as_=None, expect=(401,), name="/me without token is refused")
    me = await s.json("GET", "/me", name="/me as owner")
    s.require(isinstance(me.get("sub"), str) and me["sub"] != "", "/me has no 'sub'")
    s.require(isinstance(me.get("workspaces"), list), "/me has no 'workspaces' list")
    return {"workspaces": len(me["workspaces"])}


@smoke_flow("create_workspace")
async def create_workspace(s: FlowSession) -> dict[str, Any]:
    ws_id = await _new_workspace(s, "ws")
    me = await s.json("GET", "/me", name="/me lists the new workspace")
    ids = [str(w) for w in me.get("workspaces") or []]
    s.require(ws_id in ids, f"new workspace {ws_id} missing from /me workspaces")
    return {"workspace_id": ws_id}


@smoke_flow("invite_accept")
async def invite_accept(s: FlowSession) -> dict[str, Any]:
    if s.ctx.member_token is None:
        raise FlowInconclusive("no member token configured (MEMBER_TOKEN): cannot accept an invite")
    member = await s.json("GET", "/me", as_="member", name="/me as member")
    email = member.get("email")
    s.require(isinstance(email, str) and "@" in email, "member's /me has no email")
    ws_id = await _new_workspace(s, "invite")
    inv = await s.json(
        "POST",
        f"/workspaces/{ws_id}/invites",
        json={"email": email},
        expect=(201,),
        name="invite member",
    )
    token = inv.get("token")
    s.require(isinstance(token, str) and token != "", "invite answer has no token")
    Secret("invite-token", token)  # registered so the accept path is scrubbed in evidence
    acc = await s.json(
        "POST", f"/invites/{token}/accept", as_="member", expect=(200,), name="member accepts"
    )
    s.require(
        str(acc.get("workspace_id")) == ws_id,
        f"accept answered workspace {acc.get('workspace_id')!r}, expected {ws_id}",
    )
    me = await s.json("GET", "/me", as_="member", name="member sees the workspace")
    s.require(
        ws_id in [str(w) for w in me.get("workspaces") or []],
        f"workspace {ws_id} missing from the member's /me after accepting",
    )
    return {"workspace_id": ws_id}


@smoke_flow("upload_extraction")
async def upload_extraction(s: FlowSession) -> dict[str, Any]:
    ws_id = await _new_workspace(s, "doc")
    upload = s.ctx.extra.get("upload") or (
        "relnb-smoke.txt",
        b"relnb smoke document\nPage one.\f\nPage two.\n",
        "text/plain",
    )
    doc = await s.json(
        "POST",
        "/documents",
        files={"file": upload},
        data={"workspace_id": ws_id},
        expect=(202,),
        name="upload document",
    )
    s.require(
        doc.get("id") is not None and doc.get("status") == "queued",
        f"upload answer is not a queued document: {scrub_json(doc)}",
    )
    doc_id = doc["id"]
    t0 = time.perf_counter()

    def failed(body: dict[str, Any]) -> str | None:
        if body.get("status") == "failed":
            return f"extraction failed: {scrub(str(body.get('error')))[:200]}"
        return None

    done = await s.poll(
        f"/documents/{doc_id}",
        until=lambda b: b.get("status") == "extracted",
        fail_if=failed,
        name="extraction completes",
    )
    return {
        "document_id": str(doc_id),
        "pages": done.get("pages"),
        "extraction_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


@smoke_flow("analytics_summary")
async def analytics_summary(s: FlowSession) -> dict[str, Any]:
    ws_id = await _new_workspace(s, "analytics")
    body = await s.json(
        "GET", "/analytics/summary", params={"workspace_id": ws_id}, name="analytics summary"
    )
    docs = body.get("documents")
    s.require(isinstance(body.get("workspaces"), int), "summary lacks integer 'workspaces'")
    s.require(isinstance(body.get("members"), int), "summary lacks integer 'members'")
    s.require(
        isinstance(docs, dict)
        and all(isinstance(docs.get(k), int) for k in ("queued", "extracted", "failed")),
        "summary 'documents' lacks integer queued/extracted/failed",
    )
    return {"workspaces": body["workspaces"], "members": body["members"], "documents": docs}


# ---------------------------------------------------------------------------------------------
# The runner


def _resolve(flows: Sequence[str | Flow] | None) -> list[tuple[str, Flow]]:
    out: list[tuple[str, Flow]] = []
    for f in flows if flows is not None else CHECKLIST_FLOWS:
        if isinstance(f, str):
            if f not in FLOWS:
                raise ValueError(
                    f"unknown smoke flow {f!r}; registered: {', '.join(sorted(FLOWS))}"
                )
            out.append((f, FLOWS[f]))
        else:
            out.append((getattr(f, "__name__", "flow"), f))
    return out


async def _run_one(
    name: str, fn: Flow, ctx: SmokeContext, client: httpx.AsyncClient, flow_timeout_s: float
) -> dict[str, Any]:
    s = FlowSession(ctx, client, name)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"flow": name}
    try:
        result = await asyncio.wait_for(fn(s), timeout=flow_timeout_s)
        rec.update(status="passed", result=scrub_json(dict(result or {})))
    except StepFailed as exc:
        rec.update(status="failed", error=str(exc))
    except FlowInconclusive as exc:
        rec.update(status="inconclusive", error=scrub(str(exc)))
    except TimeoutError:
        rec.update(status="failed", error=f"flow did not finish within {flow_timeout_s:g} s")
    except Exception as exc:  # a bug in a user flow is reported, not raised through the gate
        rec.update(status="failed", error=f"{type(exc).__name__}: {scrub(str(exc))[:200]}")
    rec["ms"] = round((time.perf_counter() - t0) * 1000, 1)
    rec["steps"] = s.steps
    return rec


async def run_flows_async(
    ctx: SmokeContext,
    flows: Sequence[str | Flow] | None = None,
    *,
    concurrent: bool = True,
    flow_timeout_s: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Outcome:
    """Run flows (default: the checklist's five) against `ctx.base_url`; passed only if all pass."""
    import httpx

    selected = _resolve(flows)
    if flow_timeout_s is None:
        flow_timeout_s = ctx.poll_deadline_s + 6 * ctx.request_timeout_s
    limits = httpx.Limits(max_connections=max(10, 4 * len(selected)))
    t0 = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=ctx.base_url.rstrip("/"),
        timeout=ctx.request_timeout_s,
        limits=limits,
        transport=transport,
        follow_redirects=False,
    ) as client:
        if concurrent:
            records = list(
                await asyncio.gather(
                    *(_run_one(n, f, ctx, client, flow_timeout_s) for n, f in selected)
                )
            )
        else:
            records = [await _run_one(n, f, ctx, client, flow_timeout_s) for n, f in selected]
    wall_ms = round((time.perf_counter() - t0) * 1000, 1)
    return _verdict(ctx.base_url, records, wall_ms, concurrent)


def _verdict(
    base_url: str, records: list[dict[str, Any]], wall_ms: float, concurrent: bool
) -> Outcome:
    slowest = max(records, key=lambda r: r["ms"], default=None)
    ev = {
        "base_url": scrub(base_url),
        "mode": "concurrent" if concurrent else "sequential",
        "wall_ms": wall_ms,
        "sum_of_flows_ms": round(sum(r["ms"] for r in records), 1),
        "slowest_flow": slowest["flow"] if slowest else None,
        "flows": records,
    }
    failed = [r for r in records if r["status"] == "failed"]
    unsure = [r for r in records if r["status"] == "inconclusive"]
    n = len(records)
    if failed:
        first = "; ".join(f"{r['flow']}: {r['error']}" for r in failed[:3])
        return Outcome.failed(f"{len(failed)} of {n} smoke flows failed — {first}", **ev)
    if unsure:
        first = "; ".join(f"{r['flow']}: {r['error']}" for r in unsure[:3])
        return Outcome.inconclusive(
            f"{len(unsure)} of {n} smoke flows could not run — {first}", **ev
        )
    if not records:
        return Outcome.inconclusive("no smoke flows selected", **ev)
    return Outcome.passed(
        f"{n}/{n} smoke flows passed against {scrub(base_url)} in {wall_ms / 1000:.1f} s "
        f"(slowest {slowest['flow']} {slowest['ms'] / 1000:.1f} s)",
        **ev,
    )


def _run_sync(factory: Callable[[], Awaitable[Outcome]]) -> Outcome:
    """asyncio.run, also from inside a running loop (Jupyter) by using a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = asyncio.run(factory())  # type: ignore[arg-type]
        except BaseException as exc:
            box["err"] = exc

    t = threading.Thread(target=target, name="relnb-smoke", daemon=True)
    t.start()
    t.join()
    if "err" in box:
        raise box["err"]
    return box["out"]


def run_flows(
    base_url: str,
    owner_token: Secret,
    member_token: Secret | None = None,
    *,
    flows: Sequence[str | Flow] | None = None,
    concurrent: bool = True,
    request_timeout_s: float = 10.0,
    poll_deadline_s: float = 60.0,
    poll_interval_s: float = 0.5,
    flow_timeout_s: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Outcome:
    """B5 (default flows) / D5 (`flows=PRODUCTION_FLOWS`) core step, callable from sync code."""
    ctx = SmokeContext(
        base_url=base_url,
        owner_token=owner_token,
        member_token=member_token,
        request_timeout_s=request_timeout_s,
        poll_deadline_s=poll_deadline_s,
        poll_interval_s=poll_interval_s,
        extra=dict(extra or {}),
    )
    return _run_sync(
        lambda: run_flows_async(ctx, flows, concurrent=concurrent, flow_timeout_s=flow_timeout_s)
    )


def run_smoke_script(
    script: str | Path,
    *,
    base_url: str,
    owner_token: Secret,
    cwd: str | Path | None = None,
    timeout_s: float = 300.0,
    extra_env: Mapping[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Outcome:
    """B5/D6 scripted smoke: `BASE_URL=… OWNER_TOKEN=… script`; output scrubbed, exit code decides."""
    from ...actions.command import run_command

    path = Path(script)
    resolved = path if path.is_absolute() or cwd is None else Path(cwd) / path
    if not resolved.is_file():
        return Outcome.failed(
            f"smoke script {script} not found" + (f" in {cwd}" if cwd else ""), script=str(script)
        )
    cmd = (
        shlex.quote(str(script))
        if resolved.stat().st_mode & 0o111
        else f"bash {shlex.quote(str(script))}"
    )
    env = {**(extra_env or {}), "BASE_URL": base_url, "OWNER_TOKEN": owner_token.reveal()}
    out = run_command(cmd, cwd=cwd, env=env, timeout_s=timeout_s, on_line=on_line, what=path.name)
    return Outcome(out.status, out.summary, {**out.evidence, "base_url": scrub(base_url)})
