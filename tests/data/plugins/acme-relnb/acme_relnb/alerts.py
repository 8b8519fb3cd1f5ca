"""C5 for teams whose alerting lives in their repository, not in a Prometheus relnb can reach:
the alert rules file (`ops/alerts.yml`, Prometheus rule format) at the release must define every
alert relnb.toml expects (`environments.production.observability.expected_alerts`)."""

from __future__ import annotations

from typing import Any

from relnb import Outcome


def alert_rules_in_repo(ctx: Any) -> Outcome:
    import yaml

    path = ctx.repo() / "ops" / "alerts.yml"
    if not path.is_file():
        return Outcome.failed(f"no alert rules file at {path}", path=str(path))
    try:
        data = yaml.safe_load(path.read_text()) or {}
        defined = [r["alert"] for g in data.get("groups", []) for r in g.get("rules", []) if "alert" in r]
    except (yaml.YAMLError, AttributeError, TypeError, KeyError) as exc:
        return Outcome.failed(f"{path} is not a Prometheus rules file: {exc}", path=str(path))
    expected = ctx.env("production")["observability"]["expected_alerts"]
    if not expected:
        return Outcome.inconclusive("no alerts expected: set environments.production.observability.expected_alerts")
    missing = [a for a in expected if a not in defined]
    if missing:
        return Outcome.failed(f"{len(missing)} expected alert(s) not defined in ops/alerts.yml: {', '.join(missing)}", defined=defined)
    return Outcome.passed(f"all {len(expected)} expected alerts defined in ops/alerts.yml", defined=defined)
