"""A1: are the CI checks for the release SHA green?

Two providers. `github` reads check runs and the combined commit status from the GitHub REST API
(github.com or Enterprise via `GITHUB_API_URL`); `command` runs the project's own test command
here and records its summary. Both pass only on positive evidence: at least one result, none
failing, none still running, and every required check present.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ...actions.command import run_process
from ...redact import scrub
from ...results import Outcome, last_line
from ...tls import http_client

if TYPE_CHECKING:
    import httpx

    from ...redact import Secret

DEFAULT_API_URL = "https://api.github.com"
# Conclusions GitHub itself treats as satisfying a required check.
OK_CONCLUSIONS = {"success", "neutral", "skipped"}
BAD_CONCLUSIONS = {
    "failure",
    "cancelled",
    "timed_out",
    "action_required",
    "startup_failure",
    "stale",
}
MAX_PAGES = 20


class _ApiProblem(Exception):
    """A GitHub answer that stops the check; carries the verdict to return."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.summary)
        self.outcome = outcome


def _next_link(link_header: str | None) -> str | None:
    """The rel="next" URL of an RFC 8288 Link header (GitHub pagination)."""
    if not link_header:
        return None
    for part in link_header.split(","):
        m = re.match(r"\s*<([^>]+)>\s*;(.*)", part)
        if m and re.search(r'rel="?next"?', m.group(2)):
            return m.group(1)
    return None


def _api_error(resp: httpx.Response, what: str, token_name: str | None) -> Outcome:
    """Map GitHub's documented error statuses onto a verdict naming the fix."""
    status = resp.status_code
    try:
        message = str(resp.json().get("message", ""))
    except Exception:
        message = resp.text[:200]
    message = scrub(message)
    ev: dict[str, Any] = {"http_status": status, "what": what, "message": message}
    remaining = resp.headers.get("x-ratelimit-remaining")
    reset = resp.headers.get("x-ratelimit-reset")
    if status == 429 or (status == 403 and (remaining == "0" or "rate limit" in message.lower())):
        ev.update(
            ratelimit_remaining=remaining,
            ratelimit_reset=reset,
            retry_after=resp.headers.get("retry-after"),
        )
        when = ""
        if reset and reset.isdigit():
            when = f" (resets in {max(0, int(reset) - int(time.time()))} s)"
        return Outcome.inconclusive(
            f"GitHub rate limit hit reading {what}{when}; re-run later", **ev
        )
    if status == 401:
        fix = f"set a valid token in {token_name}" if token_name else "configure ci.token_env"
        return Outcome.failed(f"GitHub rejected the credentials (401) reading {what}: {fix}", **ev)
    if status == 403:
        return Outcome.failed(
            f"GitHub refused access (403) to {what}: the token needs read access to checks and statuses",
            **ev,
        )
    if status == 404:
        return Outcome.failed(
            f"GitHub answered 404 for {what}: repository or commit not found, or the token cannot see it",
            **ev,
        )
    if status == 422:
        return Outcome.failed(f"GitHub rejected the request for {what} (422): {message}", **ev)
    return Outcome.inconclusive(f"GitHub answered HTTP {status} for {what}; re-run later", **ev)


class _GitHub:
    def __init__(self, client: httpx.Client, api_url: str, token_name: str | None) -> None:
        self.client = client
        self.api_url = api_url.rstrip("/")
        self.token_name = token_name
        self.requests = 0

    def get(
        self, path_or_url: str, what: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        import httpx

        url = path_or_url if "://" in path_or_url else f"{self.api_url}{path_or_url}"
        try:
            resp = self.client.get(url, params=params)
        except httpx.TimeoutException:
            raise _ApiProblem(
                Outcome.inconclusive(f"GitHub API timed out reading {what}", url=url)
            ) from None
        except httpx.HTTPError as exc:
            raise _ApiProblem(
                Outcome.inconclusive(
                    f"GitHub API unreachable reading {what}: {scrub(str(exc))}", url=url
                )
            ) from None
        self.requests += 1
        return resp

    def json(self, resp: httpx.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise _ApiProblem(
                Outcome.inconclusive(
                    f"GitHub answered malformed JSON for {what}", url=str(resp.url)
                )
            ) from None

    def paged(self, path: str, what: str, key: str | None) -> tuple[list[Any], Any]:
        """All items of a paginated list (following Link: rel="next"), and the first page."""
        items: list[Any] = []
        first: Any = None
        url: str | None = path
        params: dict[str, Any] | None = {"per_page": 100}
        for _ in range(MAX_PAGES):
            assert url is not None
            resp = self.get(url, what, params)
            if resp.status_code != 200:
                raise _ApiProblem(_api_error(resp, what, self.token_name))
            data = self.json(resp, what)
            first = data if first is None else first
            page = data.get(key) if key and isinstance(data, dict) else data
            if not isinstance(page, list):
                raise _ApiProblem(
                    Outcome.inconclusive(
                        f"GitHub answer for {what} has no list {key or ''}".strip(), url=url
                    )
                )
            items.extend(page)
            url = _next_link(resp.headers.get("link"))
            params = None  # the next link carries its own query
            if not url:
                return items, first
        raise _ApiProblem(
            Outcome.inconclusive(
                f"more than {MAX_PAGES} pages of {what}; refusing to decide on a partial list"
            )
        )


def _required_from_protection(gh: _GitHub, repo: str, branch: str) -> tuple[list[str], list[str]]:
    """Required check names from classic branch protection and from rulesets, plus notes."""
    names: list[str] = []
    notes: list[str] = []
    resp = gh.get(
        f"/repos/{repo}/branches/{branch}/protection/required_status_checks", "branch protection"
    )
    if resp.status_code == 200:
        data = gh.json(resp, "branch protection")
        names.extend(str(c) for c in data.get("contexts") or [])
        names.extend(str(c.get("context")) for c in data.get("checks") or [] if c.get("context"))
        notes.append(f"branch protection of {branch}: {len(names)} required check(s)")
    elif resp.status_code in (403, 404):
        notes.append(
            f"branch protection of {branch} not readable or not configured (HTTP {resp.status_code})"
        )
    else:
        raise _ApiProblem(_api_error(resp, "branch protection", gh.token_name))
    try:
        rules, _ = gh.paged(f"/repos/{repo}/rules/branches/{branch}", "branch rules", None)
    except _ApiProblem as exc:
        if exc.outcome.evidence.get("http_status") in (403, 404):
            notes.append("rulesets not readable")
            rules = []
        else:
            raise
    found = 0
    for rule in rules:
        if isinstance(rule, dict) and rule.get("type") == "required_status_checks":
            for c in (rule.get("parameters") or {}).get("required_status_checks") or []:
                if c.get("context"):
                    names.append(str(c["context"]))
                    found += 1
    if rules:
        notes.append(f"rulesets: {found} required check(s)")
    return sorted(set(names)), notes


def _latest_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """One run per check name: re-runs create new runs, and only the newest counts."""
    latest: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        name = str(run.get("name"))
        prev = latest.get(name)
        if prev is None or (run.get("id") or 0) > (prev.get("id") or 0):
            latest[name] = run
    return latest


def check_ci_github(
    repo: str,
    sha: str | None,
    *,
    token: Secret | None = None,
    api_url: str | None = None,
    required: Sequence[str] | None = None,
    branch: str | None = "main",
    timeout_s: float = 15.0,
) -> Outcome:
    """Check runs + combined status of `sha`. `required=None` reads branch protection/rulesets."""
    if not sha or not re.fullmatch(r"[0-9a-fA-F]{7,40}", sha):
        return Outcome.inconclusive(f"no valid release SHA to look up CI for (got {sha!r})")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo or ""):
        return Outcome.inconclusive(f"ci.github_repo must be owner/name, got {repo!r}")
    base = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "relnb",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token.reveal()}"
    token_name = token.name if token is not None else None
    evidence: dict[str, Any] = {"repo": repo, "sha": sha, "api_url": base}
    with http_client(headers=headers, timeout=timeout_s, follow_redirects=True) as client:
        gh = _GitHub(client, base, token_name)
        try:
            runs, _ = gh.paged(
                f"/repos/{repo}/commits/{sha}/check-runs", "check runs", "check_runs"
            )
            statuses, first = gh.paged(
                f"/repos/{repo}/commits/{sha}/status", "combined status", "statuses"
            )
            combined = first.get("state") if isinstance(first, dict) else None
            notes: list[str] = []
            if required is None and branch:
                required_names, notes = _required_from_protection(gh, repo, branch)
                required_source = "branch protection/rulesets"
            else:
                required_names = sorted(set(required or []))
                required_source = "configuration" if required else "none"
        except _ApiProblem as exc:
            return Outcome(
                exc.outcome.status, exc.outcome.summary, {**evidence, **exc.outcome.evidence}
            )
        evidence["api_requests"] = gh.requests

    results: dict[str, dict[str, Any]] = {}
    for name, run in _latest_runs(runs).items():
        status = str(run.get("status"))
        conclusion = run.get("conclusion")
        if status != "completed":
            verdict = "running"
        elif conclusion in OK_CONCLUSIONS:
            verdict = "ok"
        elif conclusion in BAD_CONCLUSIONS:
            verdict = "failed"
        else:
            verdict = "failed"  # an unknown conclusion is not a pass
        results[name] = {
            "kind": "check_run",
            "status": status,
            "conclusion": conclusion,
            "verdict": verdict,
            "url": run.get("html_url"),
            "app": (run.get("app") or {}).get("slug"),
        }
    # Statuses are newest first; the first per context is the current one.
    for st in statuses:
        ctx = str(st.get("context"))
        if ctx in results and results[ctx]["kind"] == "status":
            continue
        state = st.get("state")
        verdict = {"success": "ok", "pending": "running"}.get(str(state), "failed")
        results.setdefault(
            ctx,
            {
                "kind": "status",
                "state": state,
                "verdict": verdict,
                "url": st.get("target_url"),
                "description": scrub(str(st.get("description") or ""))[:200],
            },
        )

    failed = sorted(n for n, r in results.items() if r["verdict"] == "failed")
    running = sorted(n for n, r in results.items() if r["verdict"] == "running")
    missing = sorted(n for n in required_names if n not in results)
    evidence.update(
        checks=results,
        check_runs=len(runs),
        statuses=len(statuses),
        combined_state=combined,
        required=required_names,
        required_source=required_source,
        notes=notes,
        failed=failed,
        running=running,
        missing_required=missing,
    )
    if combined == "pending" and not statuses:
        evidence["notes"] = [
            *notes,
            "combined status pending with zero statuses: Actions-only repository",
        ]
    short = sha[:12]
    if failed:
        return Outcome.failed(
            f"{len(failed)} CI check(s) failed for {short}: {', '.join(failed[:6])}", **evidence
        )
    if running:
        return Outcome.inconclusive(
            f"{len(running)} CI check(s) still running for {short}: {', '.join(running[:6])}; re-run when done",
            **evidence,
        )
    if missing:
        return Outcome.failed(
            f"required check(s) never reported for {short}: {', '.join(missing)}", **evidence
        )
    if not results:
        return Outcome.inconclusive(f"no check runs or statuses reported for {short}", **evidence)
    return Outcome.passed(
        f"{len(results)} CI check(s) green for {short}"
        + (f" ({len(required_names)} required)" if required_names else ""),
        **evidence,
    )


# --- command provider -------------------------------------------------------------------------

_PYTEST_COUNT = re.compile(
    r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|rerun)\b"
)
_PYTEST_FINAL = re.compile(
    r"(\d+ (passed|failed|errors?|skipped|xfailed|xpassed)|no tests ran)\b.* in [\d.]+s"
)


def parse_pytest_summary(output: str) -> dict[str, int] | None:
    """Counts from pytest's final summary line (`3 passed, 1 failed in 0.5s`), or None."""
    for line in reversed(output.splitlines()):
        if _PYTEST_FINAL.search(line):
            counts: dict[str, int] = {}
            for n, kind in _PYTEST_COUNT.findall(line):
                kind = {"error": "errors", "warning": "warnings"}.get(kind, kind)
                counts[kind] = counts.get(kind, 0) + int(n)
            return counts
    return None


def check_ci_command(
    command: str | Sequence[str],
    cwd: str | os.PathLike[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    tail_lines: int = 40,
) -> Outcome:
    """Run the project's test command here; pass on exit 0 without failures in its summary
    (relnb's one command runner: own process group, a timeout kills its children too)."""
    shown = command if isinstance(command, str) else " ".join(command)
    ran = run_process(command, cwd=cwd, env=env, timeout_s=timeout_s)
    if ran.start_error is not None:
        return Outcome.failed(
            f"CI command could not start: {ran.start_error}", command=scrub(shown), cwd=str(cwd)
        )
    code, duration, timed_out = ran.exit_code, ran.duration_s, ran.timed_out
    text = "\n".join(ran.lines)
    tail = "\n".join(ran.lines[-tail_lines:])
    summary = parse_pytest_summary(text)
    evidence: dict[str, Any] = {
        "command": scrub(shown),
        "cwd": str(cwd),
        "exit_code": code,
        "duration_s": duration,
        "output_tail": tail,
        "tests": summary,
    }
    if timed_out:
        return Outcome.failed(
            f"CI command timed out after {timeout_s:g} s and was killed", **evidence
        )
    counted = ""
    if summary:
        counted = ", ".join(f"{n} {k}" for k, n in summary.items())
    if code != 0:
        # Without a test summary the command itself broke (missing module, bad path): its last
        # line is the reason a release lead acts on, so it goes into the one-line summary.
        last = "" if counted else last_line(tail)
        return Outcome.failed(
            f"CI command exited {code}"
            + (f" ({counted})" if counted else "")
            + f" after {duration:.1f} s"
            + (f": {last[:160]}" if last else ""),
            **evidence,
        )
    if summary and (summary.get("failed") or summary.get("errors")):
        return Outcome.failed(f"CI command exited 0 but reported {counted}", **evidence)
    if summary is not None and not summary.get("passed"):
        return Outcome.failed(
            f"CI command ran no passing tests ({counted or 'no tests ran'})", **evidence
        )
    return Outcome.passed(
        f"CI command passed in {duration:.1f} s" + (f" ({counted})" if counted else ""), **evidence
    )
