"""The smoke-flow runner behind B5/D5, and D6 / B5's scripted smoke (`commands.smoke`).

A flow is an `async def flow(s: FlowSession)` that talks to the API through `s.call(...)` and
`s.poll(...)`: every request is timed and recorded (method, path, status, ms), tokens are added
at the point of use and never recorded, and a step that gets the wrong answer raises
`StepFailed` carrying the response status and a scrubbed, truncated body. Flows run concurrently
(each flow creates what it needs, so none waits for another), which keeps a smoke run as long as
its slowest flow instead of the sum of all of them.

relnb ships no flows: they belong to the application's repository (Python flow modules or
declarative flow files) and are collected by `relnb.checks.http.flows`, the same way for the
demo app as for any other.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ...redact import Secret, scrub
from ...results import Outcome
from ...tls import async_http_client

if TYPE_CHECKING:
    import httpx

BODY_LIMIT = 400
# how much of a failing answer's body the gate's one-line summary quotes (the step keeps BODY_LIMIT)
SUMMARY_BODY = 120
_SECRET_PARAM = re.compile(r"(?i)token|secret|password|passwd|key|signature|auth|code")

Flow = Callable[["FlowSession"], Awaitable[Mapping[str, Any] | None]]


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
    owner_token: Secret | None
    member_token: Secret | None = None
    # the Authorization scheme the API expects for these tokens (NetBox/DRF say "Token")
    auth_scheme: str = "Bearer"
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
    """One flow's view of the API: records each step it takes, in order.

    `s.Inconclusive` is here so a flow module in the app's repository can say "cannot run as
    configured" without importing relnb's internals.
    """

    Inconclusive = FlowInconclusive

    def __init__(self, ctx: SmokeContext, client: httpx.AsyncClient, flow: str) -> None:
        self.ctx = ctx
        self.flow = flow
        self.steps: list[dict[str, Any]] = []
        self._client = client

    def _headers(self, as_: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if as_ is None:
            return headers
        if as_ not in ("owner", "member"):
            raise ValueError(f"unknown identity {as_!r}: use 'owner', 'member' or None")
        token = self.ctx.owner_token if as_ == "owner" else self.ctx.member_token
        if token is None:
            which = "member_token_env" if as_ == "member" else "token_env"
            raise FlowInconclusive(f"no {as_} token configured (auth.{which}) for this flow")
        headers.setdefault("Authorization", f"{self.ctx.auth_scheme} {token.reveal()}")
        return headers

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
        headers: Mapping[str, str] | None = None,
        retries: int = 0,
        retry_delay_s: float = 0.5,
        name: str | None = None,
    ) -> httpx.Response:
        """One request. Retried only when the flow declares `retries` (transport errors and 5xx).

        `headers` are sent but never recorded: they are where API keys go.
        """
        import httpx

        expect = tuple(expect)
        step: dict[str, Any] = {
            "step": name or f"{method} {path}",
            "method": method,
            "path": _safe_path(path, params),
            "as": as_ or "anonymous",
        }
        headers = self._headers(as_, headers)
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
                raise StepFailed(f"{_label(step)} → {step['error']}", step) from None
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
                f"{_label(step)} → HTTP {resp.status_code} (expected {want}): "
                f"{_short(step['body'])}",
                step,
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
            raise StepFailed(f"{_label(step)} → not a JSON object: {_short(step['body'])}", step)
        return body

    def require(self, ok: bool, message: str) -> None:
        """Fail the last step with `message` unless `ok` (for checks on a response's content)."""
        if not ok:
            step = self.steps[-1] if self.steps else {}
            step["problem"] = scrub(message)
            raise StepFailed(f"{_label(step)}: {message}", step)

    async def poll(
        self,
        path: str,
        *,
        until: Callable[[dict[str, Any]], bool],
        fail_if: Callable[[dict[str, Any]], str | None] | None = None,
        as_: str | None = "owner",
        headers: Mapping[str, str] | None = None,
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
        headers = self._headers(as_, headers)
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
                    raise StepFailed(f"{_label(step)}: {reason}", step)
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
                    f"{_label(step)}: condition not reached within {deadline_s:g} s ({seen})",
                    step,
                )
            await asyncio.sleep(interval_s)

    @staticmethod
    def _ms(t0: float) -> float:
        return round((time.perf_counter() - t0) * 1000, 1)


def _label(step: Mapping[str, Any]) -> str:
    """How a summary names a step: its name, then the request when the name does not say it."""
    request = f"{step.get('method', '')} {step.get('path', '')}".strip()
    name = step.get("step") or request
    return name if name in (request, f"poll {request}") else f"{name!r} ({request})"


def _short(body: str) -> str:
    return body[:SUMMARY_BODY] + ("…" if len(body) > SUMMARY_BODY else "")


def scrub_json(obj: Any, limit: int = BODY_LIMIT) -> Any:
    """A short, scrubbed rendering of a JSON answer for evidence."""
    import json as _json

    text = scrub(_json.dumps(obj, default=str, sort_keys=True))
    return text[:limit] + ("…" if len(text) > limit else "")


# ---------------------------------------------------------------------------------------------
# The runner


Flows = Mapping[str, Flow] | Sequence[Flow]


def _resolve(flows: Flows) -> list[tuple[str, Flow]]:
    """(name, flow) pairs: a mapping keeps its names, bare callables are named after themselves."""
    if isinstance(flows, Mapping):
        return list(flows.items())
    return [(getattr(f, "__name__", "flow"), f) for f in flows]


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
    flows: Flows,
    *,
    concurrent: bool = True,
    flow_timeout_s: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Outcome:
    """Run `flows` against `ctx.base_url`, all at once unless `concurrent=False`; passed only if all pass."""
    import httpx

    selected = _resolve(flows)
    if flow_timeout_s is None:
        flow_timeout_s = ctx.poll_deadline_s + 6 * ctx.request_timeout_s
    async def one(name: str, flow: Flow) -> dict[str, Any]:
        # a client, so a cookie jar, per flow: a flow that signs in (a session cookie, a CSRF
        # token tied to it) must not change what another flow running beside it sends
        async with async_http_client(
            base_url=ctx.base_url.rstrip("/"),
            timeout=ctx.request_timeout_s,
            limits=httpx.Limits(max_connections=10),
            transport=transport,
            follow_redirects=False,
        ) as client:
            return await _run_one(name, flow, ctx, client, flow_timeout_s)

    t0 = time.perf_counter()
    if concurrent:
        records = list(await asyncio.gather(*(one(n, f) for n, f in selected)))
    else:
        records = [await one(n, f) for n, f in selected]
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
    owner_token: Secret | None,
    member_token: Secret | None = None,
    *,
    flows: Flows,
    auth_scheme: str = "Bearer",
    concurrent: bool = True,
    request_timeout_s: float = 10.0,
    poll_deadline_s: float = 60.0,
    poll_interval_s: float = 0.5,
    flow_timeout_s: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Outcome:
    """B5/D5's core step, callable from sync code (and from inside Jupyter's running loop)."""
    ctx = SmokeContext(
        base_url=base_url,
        owner_token=owner_token,
        member_token=member_token,
        auth_scheme=auth_scheme,
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
