"""C5: dashboards and alerts are working — asked of Prometheus and Alertmanager themselves.

"Working" means: every scrape job the release depends on has targets and all are up; alert
rules are loaded (at least one, and every rule the runbook relies on) and evaluate without
errors; Prometheus actually sends to an Alertmanager that is reachable and ready; and the
error-tracking DSN is configured and its host answers. A target or rule that has not been
evaluated yet (just after a restart) is waited for up to `settle_s`, then counts as
inconclusive rather than green.

What counts as what: a service that answers and is wrong (a target down, no rules, Prometheus
sending to no Alertmanager, Alertmanager answering "not ready") is failed; a service relnb cannot
reach at all is inconclusive (relnb's network is not production's), as is an error-tracking DSN
checked for syntax only: a well-formed DSN is not evidence that errors arrive anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ...redact import Secret, scrub
from ...results import Outcome
from ...tls import http_client

# How the error-tracking DSN is tested (observability.error_tracking_probe).
DSN_PROBES = ("reachability", "none")
SYNTAX_ONLY = "error-tracking DSN: syntax only, not delivered"


@dataclass(frozen=True)
class _Answer:
    """One HTTP GET: the parsed body, a problem, and whether the server answered at all."""

    body: Any = None
    problem: str | None = None
    reached: bool = True


def _get(client: Any, url: str) -> _Answer:
    import httpx

    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        return _Answer(None, f"{type(exc).__name__}: {scrub(str(exc))[:160]}", reached=False)
    if resp.status_code != 200:
        return _Answer(None, f"HTTP {resp.status_code}: {scrub(resp.text[:160])}")
    try:
        return _Answer(resp.json())
    except ValueError:
        return _Answer(resp.text)


def _prom_data(client: Any, base: str, path: str) -> _Answer:
    got = _get(client, base + path)
    if got.problem:
        return got
    body = got.body
    if not isinstance(body, dict) or body.get("status") != "success":
        return _Answer(None, f"unexpected answer from {path}: {scrub(str(body))[:160]}")
    return _Answer(body.get("data"))


def _targets(data: Mapping[str, Any], expected: Iterable[str] | None) -> dict[str, Any]:
    jobs: dict[str, dict[str, Any]] = {}
    for t in data.get("activeTargets") or []:
        job = (t.get("labels") or {}).get("job") or t.get("scrapePool") or "?"
        j = jobs.setdefault(job, {"up": 0, "down": 0, "unknown": 0, "errors": []})
        health = t.get("health", "unknown")
        j[health if health in ("up", "down") else "unknown"] += 1
        if health == "down" and len(j["errors"]) < 3:
            instance = (t.get("labels") or {}).get("instance", "?")
            j["errors"].append(f"{instance}: {scrub(str(t.get('lastError') or 'down'))[:160]}")
    want = list(expected) if expected is not None else sorted(jobs)
    return {
        "jobs": jobs,
        "expected": want,
        "missing": [j for j in want if j not in jobs],
        "down": [j for j in want if j in jobs and jobs[j]["down"]],
        "unknown": [j for j in want if j in jobs and jobs[j]["unknown"] and not jobs[j]["down"]],
    }


def _rules(data: Mapping[str, Any], expected: Iterable[str]) -> dict[str, Any]:
    alerting: dict[str, str] = {}
    errors: list[dict[str, str]] = []
    unknown: list[str] = []
    recording = 0
    firing: list[str] = []
    for g in data.get("groups") or []:
        for r in g.get("rules") or []:
            name = str(r.get("name"))
            if r.get("type") == "alerting":
                alerting[name] = r.get("health", "unknown")
                if r.get("state") == "firing":
                    firing.append(name)
            else:
                recording += 1
            if r.get("health") == "err":
                errors.append(
                    {
                        "rule": name,
                        "group": str(g.get("name")),
                        "error": scrub(str(r.get("lastError") or ""))[:200],
                    }
                )
            elif r.get("health") not in ("ok", "err"):
                unknown.append(name)
    want = list(expected)
    return {
        "alerting_rules": len(alerting),
        "recording_rules": recording,
        "expected": want,
        "missing": [a for a in want if a not in alerting],
        "errors": errors,
        "not_yet_evaluated": unknown,
        "firing": firing,
    }


def _dsn(dsn: Secret | str | None) -> dict[str, Any]:
    """Shape of the DSN; `origin` (scheme://host:port, no key) is what a probe may contact."""
    value = dsn.reveal() if isinstance(dsn, Secret) else (dsn or "")
    if not value.strip():
        return {"configured": False}
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
        parts = parts._replace(scheme="")  # an unparseable port is not a usable URL
    ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    sentry_like = bool(parts.username) and parts.path.strip("/").split("/")[-1].isdigit()
    out: dict[str, Any] = {"configured": True, "well_formed": ok, "sentry_style": sentry_like}
    if ok:
        default = 443 if parts.scheme == "https" else 80
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        out["origin"] = f"{parts.scheme}://{host}:{port or default}"
    return out


def _probe_dsn(info: dict[str, Any], probe: str, timeout_s: float) -> tuple[str | None, str | None]:
    """(failure, unsure) after testing the DSN as configured; records what was proved in `info`.

    `reachability` sends one GET to the DSN's origin without its key: an HTTP answer below 500
    proves a server is there (not that events are accepted), a 5xx that it is broken.
    """
    import httpx

    info["probe"] = probe
    if probe == "none":
        info["proved"] = "syntax only, not delivered"
        return None, f"{SYNTAX_ONLY} (observability.error_tracking_probe = none)"
    origin = info["origin"]
    try:
        # its own client: the Prometheus credentials in `headers` must not go to another host
        with http_client(timeout=timeout_s, follow_redirects=False) as client:
            resp = client.get(origin + "/")
    except httpx.HTTPError as exc:
        info["proved"] = "nothing: the host did not answer"
        info["error"] = f"{type(exc).__name__}: {scrub(str(exc))[:160]}"
        return None, f"error-tracking host {origin} did not answer ({info['error']})"
    info["http_status"] = resp.status_code
    if resp.status_code >= 500:
        info["proved"] = f"the host answers HTTP {resp.status_code}: broken"
        return f"error-tracking host {origin} answers HTTP {resp.status_code}", None
    info["proved"] = f"host answers HTTP {resp.status_code} (reachability only, no event sent)"
    return None, None


def _host_port(url: str) -> str:
    p = urlsplit(url)
    host = {"localhost": "127.0.0.1"}.get(p.hostname or "", p.hostname or "")
    return f"{host}:{p.port or (443 if p.scheme == 'https' else 80)}"


def _am_base(url: str) -> str:
    """Prometheus lists an Alertmanager by its alerts endpoint (…/api/v2/alerts): its base URL."""
    return url.split("/api/v", 1)[0].rstrip("/")


def check_observability(
    prometheus_url: str,
    *,
    expected_jobs: Iterable[str] | None = None,
    expected_alerts: Iterable[str] = (),
    alertmanager_url: str | None = None,
    error_tracking_dsn: Secret | str | None = None,
    require_dsn: bool = True,
    dsn_probe: str = "reachability",
    require_alertmanager_wiring: bool = True,
    settle_s: float = 0.0,
    poll_s: float = 1.0,
    timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> Outcome:
    """C5 core step. `expected_jobs=None` means every configured scrape job must be up.

    Without `alertmanager_url`, the Alertmanagers Prometheus reports sending to are asked
    directly. `dsn_probe` is one of `DSN_PROBES`; `none` leaves C5 inconclusive at best.
    """
    if dsn_probe not in DSN_PROBES:
        raise ValueError(f"dsn_probe {dsn_probe!r} is not one of {DSN_PROBES}")
    expected_jobs = list(expected_jobs) if expected_jobs is not None else None
    expected_alerts = list(expected_alerts)
    prom = prometheus_url.rstrip("/")
    deadline = time.monotonic() + max(0.0, settle_s)
    with http_client(timeout=timeout_s, headers=dict(headers or {})) as client:
        while True:
            ev, failures, unsure, transient = _observe(
                client,
                prom,
                expected_jobs,
                expected_alerts,
                alertmanager_url,
                require_alertmanager_wiring,
            )
            if failures or not (unsure or transient) or time.monotonic() + poll_s > deadline:
                break
            time.sleep(poll_s)
    # Discovery not finished by the deadline is a plain failure: it will not finish by itself.
    failures = transient + failures
    dsn = _dsn(error_tracking_dsn)
    ev["error_tracking"] = dsn
    if not dsn["configured"]:
        if require_dsn:
            failures.append("no error-tracking DSN configured")
    elif not dsn["well_formed"]:
        failures.append("error-tracking DSN is not a URL")
    else:
        failure, doubt = _probe_dsn(dsn, dsn_probe, timeout_s)
        failures += [failure] if failure else []
        unsure += [doubt] if doubt else []
    if failures:
        return Outcome.failed("C5: " + "; ".join(failures[:4]), **ev)
    if unsure:
        return Outcome.inconclusive("C5: " + "; ".join(unsure[:4]), **ev)
    return Outcome.passed(_passed_summary(ev), **ev)


def _passed_summary(ev: Mapping[str, Any]) -> str:
    t, r, am, dsn = ev["targets"], ev["rules"], ev["alertmanager"], ev["error_tracking"]
    n_targets = sum(j["up"] for j in t["jobs"].values())
    ams = ", ".join(a["url"] for a in am["checked"])
    tracking = (
        f"error tracking: DSN {dsn['proved']}" if dsn["configured"] else "error tracking not checked"
    )
    return (
        f"{len(t['expected'])} scrape jobs up ({n_targets} targets), {r['alerting_rules']} alert "
        f"rules loaded without errors, Prometheus sends to ready Alertmanager {ams}; {tracking}"
    )


def _observe(
    client: Any,
    prom: str,
    expected_jobs: list[str] | None,
    expected_alerts: list[str],
    alertmanager_url: str | None,
    require_wiring: bool,
) -> tuple[dict[str, Any], list[str], list[str], list[str]]:
    """(evidence, failures, unsure, transient): transient = failures that discovery right after a
    (re)start also shows (no targets / no alertmanager discovered yet), retried while settling."""
    ev: dict[str, Any] = {"prometheus": scrub(prom)}
    failures: list[str] = []
    unsure: list[str] = []
    transient: list[str] = []

    def trouble(what: str, got: _Answer) -> None:
        (failures if got.reached else unsure).append(f"{what} ({got.problem})")

    got = _prom_data(client, prom, "/api/v1/targets")
    if got.problem:
        trouble("Prometheus targets unavailable", got)
    else:
        t = _targets(got.body, expected_jobs)
        ev["targets"] = t
        if not t["jobs"]:
            transient.append("Prometheus has discovered no scrape targets")
        elif t["missing"]:
            failures.append(f"scrape jobs not configured: {', '.join(t['missing'])}")
        if t["down"]:
            detail = t["jobs"][t["down"][0]]["errors"][:1]
            failures.append(
                f"targets down in jobs {', '.join(t['down'])}"
                + (f" ({detail[0]})" if detail else "")
            )
        if t["unknown"]:
            unsure.append(f"jobs not scraped yet: {', '.join(t['unknown'])}")
    got = _prom_data(client, prom, "/api/v1/rules")
    if got.problem:
        trouble("Prometheus rules unavailable", got)
    else:
        r = _rules(got.body, expected_alerts)
        ev["rules"] = r
        if not r["alerting_rules"]:
            failures.append("Prometheus has no alert rules loaded")
        elif r["missing"]:
            failures.append(f"alert rules not loaded: {', '.join(r['missing'])}")
        if r["errors"]:
            e = r["errors"][0]
            failures.append(f"rule {e['rule']} fails to evaluate: {e['error'][:120]}")
        if r["not_yet_evaluated"]:
            unsure.append(f"rules not evaluated yet: {', '.join(r['not_yet_evaluated'][:5])}")
    got = _prom_data(client, prom, "/api/v1/alertmanagers")
    if got.problem:
        trouble("Prometheus alertmanagers unavailable", got)
        return ev, failures, unsure, transient
    active = [str(a.get("url")) for a in got.body.get("activeAlertmanagers") or []]
    info: dict[str, Any] = {"prometheus_sends_to": [scrub(u) for u in active], "checked": []}
    ev["alertmanager"] = info
    if alertmanager_url:
        am = alertmanager_url.rstrip("/")
        info["url"] = scrub(am)
        info["wired"] = any(_host_port(u) == _host_port(am) for u in active)
        if require_wiring and not info["wired"]:
            (transient if not active else failures).append(
                f"Prometheus does not send alerts to {scrub(am)} (sends to {active or 'none'})"
            )
        bases = [am]
    elif not active:
        transient.append(
            "Prometheus sends alerts to no Alertmanager (none configured under alerting, or none "
            "discovered)"
        )
        bases = []
    else:
        bases = [_am_base(u) for u in active]
    for base in bases:
        checked = _check_alertmanager(client, base, failures, unsure)
        info["checked"].append(checked)
        if alertmanager_url:  # the configured one's details at the top, as before
            info.update({k: v for k, v in checked.items() if k != "url"})
    return ev, failures, unsure, transient


def _check_alertmanager(
    client: Any, base: str, failures: list[str], unsure: list[str]
) -> dict[str, Any]:
    """Ready and answering its status API; unreachable from relnb is inconclusive, not failed."""
    info: dict[str, Any] = {"url": scrub(base)}
    got = _get(client, base + "/-/ready")
    info["ready"] = got.problem is None
    if got.problem:
        if got.reached:
            failures.append(f"Alertmanager {scrub(base)} not ready ({got.problem})")
        else:
            unsure.append(f"Alertmanager {scrub(base)} unreachable from relnb ({got.problem})")
        return info
    status = _get(client, base + "/api/v2/status")
    if status.problem or not isinstance(status.body, dict):
        failures.append(f"Alertmanager {scrub(base)} status unavailable ({status.problem or 'not JSON'})")
        return info
    body = status.body
    info["version"] = (body.get("versionInfo") or {}).get("version")
    info["cluster"] = (body.get("cluster") or {}).get("status")
    info["uptime"] = body.get("uptime")
    original = (body.get("config") or {}).get("original") or ""
    info["receivers_configured"] = original.count("- name:") if isinstance(original, str) else None
    return info
