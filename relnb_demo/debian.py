"""The demo's services that come from Debian packages, not pip: Prometheus with docflow's alert
rules, Alertmanager, and the OCI registry (docker-registry). Each runs the packaged binary
(see relnb_demo.provision) on a free port in the stack's work directory.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from .services import ManagedProcess, free_port, wait_until


def _binary(name: str) -> str:
    """The installed program, or an error that says how the demo gets it."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} is not installed: `relnb demo` installs it (apt-get, as root), "
            f"or: apt-get install -y {name}"
        )
    return found


class BinaryService:
    """A server from a Debian package, run as our child on a free 127.0.0.1 port until stop().

    Subclasses write their config and give the argv; this owns the process, the readiness
    probe (an HTTP path answering 200) and the stop.
    """

    binary = ""  # the program on PATH (its Debian package installs it; see relnb_demo.provision)
    ready_path = "/-/ready"
    ready_timeout = 30.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: ManagedProcess | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _launch(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start `binary argv...` (port already chosen) and wait until it answers ready_path."""
        import httpx

        self.process = ManagedProcess(
            self.binary,
            [_binary(self.binary), *argv],
            self.workdir / "logs" / f"{self.binary}.log",
            env=env,
        )

        def ready() -> bool:
            if self.process and not self.process.alive():
                raise RuntimeError(f"{self.binary} exited: {self.process.log_tail()}")
            return httpx.get(self.url + self.ready_path, timeout=1).status_code == 200

        wait_until(self.binary, ready, self.ready_timeout, 0.1)

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None


# What a docflow on-call expects to be paged for; C5 checks that each is loaded and evaluates.
ALERT_RULES = {
    "DocflowApiDown": ('up{job=~"docflow-api-.*"} == 0', "1m"),
    "DocflowHighErrorRate": (
        'sum by (environment) (rate(http_requests_total{status=~"5.."}[1m]))'
        " / sum by (environment) (rate(http_requests_total[1m])) > 0.05",
        "2m",
    ),
    "DocflowHighLatencyP95": (
        "histogram_quantile(0.95, sum by (environment, le)"
        " (rate(http_request_duration_seconds_bucket[1m]))) > 1",
        "2m",
    ),
    "DocflowDlqGrowing": ("delta(queue_dlq_depth[5m]) > 0", "5m"),
}


class PrometheusService(BinaryService):
    """Prometheus scraping both APIs' /metrics every second, with docflow's alert rules, sending
    alerts to the Alertmanager at `alertmanager` (host:port) when given."""

    binary = "prometheus"

    def __init__(
        self,
        workdir: Path,
        targets: Mapping[str, str],
        alertmanager: str | None = None,
        rules_suffix: str = ".yml",
    ) -> None:
        super().__init__(workdir)
        self.targets = dict(targets)  # environment -> host:port
        self.alertmanager = alertmanager
        # prometheus.yml loads rules/*.yml; a rules file saved as .yaml (no-alert-rules) matches
        # no pattern, and Prometheus then starts with no alert rule at all, without an error
        self.rules_suffix = rules_suffix

    def rules_text(self) -> str:
        rules = "".join(
            f"      - alert: {name}\n        expr: {json.dumps(expr)}\n        for: {hold}\n"
            f"        labels: {{severity: page}}\n"
            for name, (expr, hold) in ALERT_RULES.items()
        )
        return f"groups:\n  - name: docflow\n    rules:\n{rules}"

    def config_text(self, rules_glob: Path | None = None) -> str:
        jobs = []
        for env, target in self.targets.items():
            jobs.append(
                f"  - job_name: docflow-api-{env}\n"
                f"    metrics_path: /metrics\n"
                f"    static_configs:\n"
                f"      - targets: ['{target}']\n"
                f"        labels: {{environment: {env}, service: api}}\n"
            )
        text = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        if rules_glob is not None:
            text += f"rule_files:\n  - {json.dumps(str(rules_glob))}\n"
        if self.alertmanager:
            text += (
                "alerting:\n  alertmanagers:\n    - static_configs:\n"
                f"        - targets: ['{self.alertmanager}']\n"
            )
        return text + "scrape_configs:\n" + "".join(jobs)

    def start(self) -> None:
        root = self.workdir / "prometheus"
        (root / "rules").mkdir(parents=True, exist_ok=True)
        (root / "rules" / f"docflow-alerts{self.rules_suffix}").write_text(self.rules_text())
        cfg = root / "prometheus.yml"
        cfg.write_text(self.config_text(root / "rules" / "*.yml"))
        self.port = free_port()
        self._launch(
            [
                f"--config.file={cfg}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address={self.address}",
                "--storage.tsdb.retention.time=1d",
            ]
        )


class AlertmanagerService(BinaryService):
    """Debian's Alertmanager, clustering off, one receiver (the on-call rota) with no integration:
    the demo proves that alerts reach it, not that a pager rings."""

    binary = "prometheus-alertmanager"

    def start(self) -> None:
        root = self.workdir / "alertmanager"
        (root / "data").mkdir(parents=True, exist_ok=True)
        cfg = root / "alertmanager.yml"
        cfg.write_text(
            "route:\n  receiver: docflow-oncall\n  group_wait: 5s\n"
            "receivers:\n  - name: docflow-oncall\n"
        )
        self.port = free_port()
        self._launch(
            [
                f"--config.file={cfg}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",
            ]
        )


class RegistryService(BinaryService):
    """Debian's docker-registry (distribution 2.8) with its own config: 127.0.0.1, no auth."""

    binary = "docker-registry"
    ready_path = "/v2/"
    ready_timeout = 20.0

    def start(self) -> None:
        root = self.workdir / "registry"
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg = root / "config.yml"
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n  secret: {uuid.uuid4().hex}\n"
        )
        self._launch(["serve", str(cfg)], env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
