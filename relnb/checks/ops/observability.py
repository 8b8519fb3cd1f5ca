"""C5: dashboards and alerts are working — asked of Prometheus and Alertmanager themselves.

"Working" means: every scrape job the release depends on has targets and all are up; the alert
rules the runbook relies on are loaded and evaluate without errors; Prometheus actually sends
to the Alertmanager that is reachable and ready; and an error-tracking DSN is configured.
A target or rule that has not been evaluated yet (just after a restart) is waited for up to
`settle_s`, then counts as inconclusive rather than green.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ...redact import Secret, scrub
from ...results import Outcome


def _get(client: Any, url: str) -> tuple[Any, str | None]:
    """(parsed JSON or text, problem)."""
    import httpx

    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {scrub(str(exc))[:160]}"
    if resp.status_code != 200:
        return None, f"HTTP {resp.status_code}: {scrub(resp.text[:160])}"
    try:
        return resp.json(), None
    except ValueError:
        return resp.text, None


def _prom_data(client: Any, base: str, path: str) -> tuple[Any, str | None]:
    body, problem = _get(client, base + path)
    if problem:
        return None, problem
    if not isinstance(body, dict) or body.get("status") != "success":
        return None, f"unexpected answer from {path}: {scrub(str(body))[:160]}"
    return body.get("data"), None


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
    value = dsn.reveal() if isinstance(dsn, Secret) else (dsn or "")
    if not value.strip():
        return {"configured": False}
    parts = urlsplit(value.strip())
    ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    sentry_like = bool(parts.username) and parts.path.strip("/").split("/")[-1].isdigit()
    return {"configured": True, "well_formed": ok, "sentry_style": sentry_like}


def _host_port(url: str) -> str:
    p = urlsplit(url)
    host = {"localhost": "127.0.0.1"}.get(p.hostname or "", p.hostname or "")
    return f"{host}:{p.port or (443 if p.scheme == 'https' else 80)}"


def check_observability(
    prometheus_url: str,
    *,
    expected_jobs: Iterable[str] | None = None,
    expected_alerts: Iterable[str] = (),
    alertmanager_url: str | None = None,
    error_tracking_dsn: Secret | str | None = None,
    require_dsn: bool = True,
    require_alertmanager_wiring: bool = True,
    settle_s: float = 0.0,
    poll_s: float = 1.0,
    timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> Outcome:
    """C5 core step. `expected_jobs=None` means every configured scrape job must be up."""
    import httpx

    expected_jobs = list(expected_jobs) if expected_jobs is not None else None
    expected_alerts = list(expected_alerts)
    prom = prometheus_url.rstrip("/")
    deadline = time.monotonic() + max(0.0, settle_s)
    with httpx.Client(timeout=timeout_s, headers=dict(headers or {})) as client:
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
    if require_dsn and not dsn["configured"]:
        failures.append("no error-tracking DSN configured")
    elif dsn["configured"] and not dsn["well_formed"]:
        failures.append("error-tracking DSN is not a URL")
    if failures:
        return Outcome.failed("C5: " + "; ".join(failures[:4]), **ev)
    if unsure:
        return Outcome.inconclusive(
            "C5: " + "; ".join(unsure[:4]) + f" (after {settle_s:g} s)", **ev
        )
    t, r = ev["targets"], ev["rules"]
    n_targets = sum(j["up"] for j in t["jobs"].values())
    return Outcome.passed(
        f"{len(t['expected'])} scrape jobs up ({n_targets} targets), {r['alerting_rules']} alert rules "
        f"loaded without errors"
        + (", Alertmanager ready and wired" if alertmanager_url else "")
        + (", error tracking configured" if dsn["configured"] else ""),
        **ev,
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
    data, problem = _prom_data(client, prom, "/api/v1/targets")
    if problem:
        failures.append(f"Prometheus targets unavailable ({problem})")
    else:
        t = _targets(data, expected_jobs)
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
    data, problem = _prom_data(client, prom, "/api/v1/rules")
    if problem:
        failures.append(f"Prometheus rules unavailable ({problem})")
    else:
        r = _rules(data, expected_alerts)
        ev["rules"] = r
        if r["missing"]:
            failures.append(f"alert rules not loaded: {', '.join(r['missing'])}")
        if r["errors"]:
            e = r["errors"][0]
            failures.append(f"rule {e['rule']} fails to evaluate: {e['error'][:120]}")
        if r["not_yet_evaluated"]:
            unsure.append(f"rules not evaluated yet: {', '.join(r['not_yet_evaluated'][:5])}")
    if alertmanager_url:
        am = alertmanager_url.rstrip("/")
        info: dict[str, Any] = {"url": scrub(am)}
        _body, problem = _get(client, am + "/-/ready")
        info["ready"] = problem is None
        if problem:
            failures.append(f"Alertmanager not ready ({problem})")
        status, problem = _get(client, am + "/api/v2/status")
        if problem or not isinstance(status, dict):
            failures.append(f"Alertmanager status unavailable ({problem or 'not JSON'})")
        else:
            info["version"] = (status.get("versionInfo") or {}).get("version")
            info["cluster"] = (status.get("cluster") or {}).get("status")
            info["uptime"] = status.get("uptime")
            original = (status.get("config") or {}).get("original") or ""
            info["receivers_configured"] = (
                original.count("- name:") if isinstance(original, str) else None
            )
        data, problem = _prom_data(client, prom, "/api/v1/alertmanagers")
        if problem:
            failures.append(f"Prometheus alertmanagers unavailable ({problem})")
        else:
            active = [str(a.get("url")) for a in data.get("activeAlertmanagers") or []]
            info["prometheus_sends_to"] = [scrub(u) for u in active]
            wired = any(_host_port(u) == _host_port(am) for u in active)
            info["wired"] = wired
            if require_wiring and not wired:
                (transient if not active else failures).append(
                    f"Prometheus does not send alerts to {scrub(am)} (sends to {active or 'none'})"
                )
        ev["alertmanager"] = info
    return ev, failures, unsure, transient
