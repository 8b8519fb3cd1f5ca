"""D4 deploy: a provider does the deploy, then `/version` must show what was deployed.

Two providers: a command (e.g. `scripts/release/deploy-vps.sh`, output streamed and scrubbed,
time-limited) and Coolify's API (`/api/v1/deploy?uuid=|tag=`, then each queued deployment is
polled at `/api/v1/deployments/{uuid}` until `finished`, `failed` or `cancelled-by-user`).
A provider saying "done" is not the proof: `deploy_and_verify` then polls the app's version
endpoint (with B1's poller, relnb.checks.http.version) until it reports the new tag or SHA.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..redact import Secret, scrub
from ..results import Outcome, Status
from ..tls import http_client
from .command import run_command

if TYPE_CHECKING:
    from ..checks.http.version import VersionSource

COOLIFY_DONE = {"finished"}
COOLIFY_BAD = {"failed", "cancelled-by-user", "cancelled"}


def deploy_command(
    command: str,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 1800.0,
    on_line: Callable[[str], None] | None = None,
) -> Outcome:
    """Command provider: passed on exit 0 within `timeout_s`; output tail kept, scrubbed."""
    out = run_command(
        command, cwd=cwd, env=env, timeout_s=timeout_s, on_line=on_line, what="deploy"
    )
    return Outcome(out.status, out.summary, {"provider": "command", **out.evidence})


def _coolify_base(api_url: str) -> str:
    base = api_url.rstrip("/")
    return base if base.endswith("/api/v1") else base + "/api/v1"


def _message(resp: Any) -> str:
    try:
        body = resp.json()
        msg = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        msg = None
    return scrub(str(msg if msg is not None else resp.text))[:200]


def _log_tail(logs: Any, n: int = 5) -> list[str]:
    """Coolify keeps logs as a JSON string of entries with `output` (only with sensitive scope)."""
    if isinstance(logs, str):
        try:
            logs = json.loads(logs)
        except ValueError:
            return [scrub(logs)[-300:]]
    if not isinstance(logs, list):
        return []
    outs = [str(e.get("output", "")) for e in logs if isinstance(e, dict) and not e.get("hidden")]
    return [scrub(o)[-300:] for o in outs[-n:]]


def deploy_coolify(
    api_url: str,
    token: Secret,
    *,
    uuid: str | None = None,
    tag: str | None = None,
    force: bool = False,
    timeout_s: float = 1800.0,
    poll_s: float = 5.0,
    request_timeout_s: float = 30.0,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """Coolify provider: queue deployments for `uuid` or `tag` (comma lists allowed) and wait."""
    import httpx

    if bool(uuid) == bool(tag):
        return Outcome.failed("D4: give exactly one of uuid= or tag= for Coolify")
    base = _coolify_base(api_url)
    params = {"uuid": uuid} if uuid else {"tag": tag}
    params["force"] = "true" if force else "false"
    ev: dict[str, Any] = {"provider": "coolify", "api": scrub(base), "target": params}
    headers = {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json"}
    t0 = time.monotonic()
    with http_client(timeout=request_timeout_s, headers=headers) as client:
        try:
            resp = client.post(f"{base}/deploy", params=params)
        except httpx.HTTPError as exc:
            return Outcome.failed(
                f"D4: Coolify unreachable: {type(exc).__name__}: {scrub(str(exc))[:160]}", **ev
            )
        ev["deploy_http_status"] = resp.status_code
        if resp.status_code != 200:
            return Outcome.failed(
                f"D4: Coolify refused the deploy (HTTP {resp.status_code}: {_message(resp)})", **ev
            )
        try:
            body = resp.json()
        except ValueError:
            return Outcome.failed(f"D4: Coolify answered non-JSON: {_message(resp)}", **ev)
        # by uuid: {"deployments": [{message, resource_uuid, deployment_uuid?}]};
        # by tag (v4 beta): {"message": [...], "details": [{resource_uuid, deployment_uuid}]}
        entries = (
            (body.get("deployments") or body.get("details") or []) if isinstance(body, dict) else []
        )
        messages = body.get("message") if isinstance(body, dict) else None
        ev["messages"] = [
            scrub(str(m))[:200]
            for m in (messages if isinstance(messages, list) else [messages] if messages else [])
        ]
        ev["messages"] += [scrub(str(e.get("message")))[:200] for e in entries if e.get("message")]
        tracked = [e for e in entries if e.get("deployment_uuid")]
        ev["untracked_resources"] = [
            e.get("resource_uuid") for e in entries if not e.get("deployment_uuid")
        ]
        if not tracked:
            return Outcome.inconclusive(
                "D4: Coolify queued no trackable deployment (services/databases are only started); "
                "verify with /version",
                **ev,
            )
        deps = {
            e["deployment_uuid"]: {
                "resource_uuid": e.get("resource_uuid"),
                "deployment_uuid": e["deployment_uuid"],
                "statuses": [],
            }
            for e in tracked
        }
        ev["deployments"] = list(deps.values())
        pending = set(deps)
        while pending:
            for dep_uuid in sorted(pending):
                d = deps[dep_uuid]
                try:
                    r = client.get(f"{base}/deployments/{dep_uuid}")
                except httpx.HTTPError as exc:
                    d["last_error"] = f"{type(exc).__name__}: {scrub(str(exc))[:160]}"
                    continue
                if r.status_code != 200:
                    d["last_error"] = f"HTTP {r.status_code}: {_message(r)}"
                    if r.status_code in (401, 403, 404):
                        d["final"] = "unknown"
                        pending.discard(dep_uuid)
                    continue
                info = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                status = str(info.get("status", "?"))
                if not d["statuses"] or d["statuses"][-1] != status:
                    d["statuses"].append(status)
                for k in ("application_name", "commit", "server_name"):
                    if info.get(k):
                        d[k] = scrub(str(info[k]))[:100]
                if status in COOLIFY_DONE | COOLIFY_BAD:
                    d["final"] = status
                    d["seconds"] = round(time.monotonic() - t0, 1)
                    if status in COOLIFY_BAD:
                        d["log_tail"] = _log_tail(info.get("logs"))
                    pending.discard(dep_uuid)
            if not pending:
                break
            elapsed = time.monotonic() - t0
            if elapsed + poll_s > timeout_s:
                for dep_uuid in pending:
                    deps[dep_uuid]["final"] = (
                        f"timeout ({(deps[dep_uuid]['statuses'] or ['?'])[-1]})"
                    )
                break
            if progress:
                now = ", ".join(
                    f"{u[:8]} {(deps[u]['statuses'] or ['?'])[-1]}" for u in sorted(pending)
                )
                progress(f"D4: Coolify deployments {now} ({elapsed:.0f}/{timeout_s:.0f} s)")
            time.sleep(poll_s)
    ev["duration_s"] = round(time.monotonic() - t0, 1)
    bad = [d for d in deps.values() if d.get("final") != "finished"]
    if bad:
        d = bad[0]
        tail = (
            f": {d['log_tail'][-1]}"
            if d.get("log_tail")
            else (f" ({d['last_error']})" if d.get("last_error") else "")
        )
        return Outcome.failed(
            f"D4: Coolify deployment {d['deployment_uuid']} of {d.get('resource_uuid')} ended {d.get('final')}{tail}",
            **ev,
        )
    return Outcome.passed(
        f"D4: {len(deps)} Coolify deployment(s) finished in {ev['duration_s']} s", **ev
    )


def deploy_and_verify(
    deploy: Callable[[], Outcome],
    *,
    base_url: str,
    expected: str,
    path: str = "/version",
    fields: Sequence[str] = ("sha", "image_tag", "version"),
    timeout_s: float = 300.0,
    poll_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
    source: VersionSource | None = None,
) -> Outcome:
    """D4 core step: run the provider; when it passed, wait for `path` to show `expected`.

    `expected` is the released SHA, or the image tag for a deploy by tag; the poller is B1's, so a
    custom version endpoint configured for the environment means the same thing here. `source`
    (the environment's version_source: JSON, text, header or command) replaces `path`/`fields`.
    """
    from ..checks.http.version import check_version

    done = deploy()
    if done.status is not Status.PASSED and done.status is not Status.INCONCLUSIVE:
        return Outcome(done.status, done.summary, {"deploy": done.evidence})
    seen = check_version(
        base_url, expected, path=path, field=fields, timeout_s=timeout_s, poll_interval_s=poll_s,
        tags=True, gate="D4", fix="the new version is not serving: check the deploy's logs", headers=headers,
        source=source,
    )
    ev = {
        "deploy": {"status": str(done.status), "summary": done.summary, **done.evidence},
        "version": seen.evidence,
    }
    if seen.status is Status.PASSED:
        return Outcome.passed(f"{done.summary}; {seen.summary}", **ev)
    return Outcome(seen.status, f"deploy reported {done.status}, but {seen.summary}", ev)
