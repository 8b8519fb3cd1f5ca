"""Faults the demo can inject, and where the running app and worker read them.

A fault is switched on per environment in a Redis hash the API and the worker poll (so a test or
`relnb demo --fault NAME` changes behaviour without a restart); the counters next to it are
what the worker reports about its jobs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .settings import FAULT_DEFAULTS, QUEUE_NAME
from .topology import ENVIRONMENTS


def parse_faults(raw: dict[str, Any]) -> dict[str, Any]:
    """Validated fault settings; unknown keys or wrong types raise ValueError."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in FAULT_DEFAULTS:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(FAULT_DEFAULTS)})")
        default = FAULT_DEFAULTS[key]
        if isinstance(default, bool):
            if isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            out[key] = bool(value)
        elif isinstance(default, float):
            v = float(value)
            if not 0.0 <= v <= 1.0:
                raise ValueError("error_rate must be between 0 and 1")
            out[key] = v
        elif isinstance(default, int):
            out[key] = max(0, int(value))
        else:
            if value not in ("tenant", "all"):
                raise ValueError("scope must be 'tenant' or 'all'")
            out[key] = value
    return out


def faults_key(env: str) -> str:
    return f"docflow:{env}:faults"


def counter_key(env: str, kind: str, queue_name: str = QUEUE_NAME) -> str:
    return f"docflow:{env}:worker:{kind}:{queue_name}"


class FaultStore:
    """Faults in Redis, read at most once a second per process (the worker shares them)."""

    def __init__(self, client: Any, env: str) -> None:
        self.client = client
        self.key = faults_key(env)
        self._cache: tuple[float, dict[str, Any]] = (0.0, dict(FAULT_DEFAULTS))

    def get(self, max_age: float = 1.0) -> dict[str, Any]:
        at, value = self._cache
        if time.monotonic() - at < max_age:
            return value
        try:
            raw = self.client.hgetall(self.key)
            decoded = {
                (k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()
            }
            value = {**FAULT_DEFAULTS, **parse_faults(decoded)}
        except Exception:
            value = self._cache[1]
        self._cache = (time.monotonic(), value)
        return value

    def set(self, changes: dict[str, Any]) -> dict[str, Any]:
        clean = parse_faults(changes)
        if clean:
            self.client.hset(self.key, mapping={k: json.dumps(v) for k, v in clean.items()})
        self._cache = (0.0, self._cache[1])
        return self.get(max_age=0)


FAULT_DEFAULT_ENV: dict[str, str] = {
    "wrong-sha": "staging",
    "stalled-worker": "staging",
    "dlq": "staging",
    "cors": "staging",
    "redirect-uri": "staging",
    "unsafe-migration": "release",
    "missing-secret": "production",
    "error-rate": "production",
    "latency": "production",
    "metrics-down": "production",
}


# What each fault sets in the environment's fault hash (see app.py / worker.py).
RUNTIME_FAULTS: dict[str, dict[str, Any]] = {
    "stalled-worker": {"stalled": True},
    "dlq": {"fail_extraction": True},
    "cors": {"cors_drop_origin": True},
    "error-rate": {"error_rate": 0.5},
    "latency": {"latency_ms": 900},
}


# On production these switch on only when the new version is deployed (they are bugs of it).
AFTER_DEPLOY = {"wrong-sha", "stalled-worker", "dlq", "error-rate", "latency", "metrics-down"}


# `metrics-down`: the app's /metrics stops answering this long after the deploy, i.e. after the
# monitoring window has its first samples (the source going away mid-window, not a missing one)
METRICS_DOWN_AFTER_S = 12


@dataclass(frozen=True)
class Fault:
    name: str
    env: str

    @classmethod
    def parse(cls, text: str) -> Fault:
        name, _, env = text.strip().partition("@")
        if name not in FAULT_DEFAULT_ENV:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_DEFAULT_ENV)}")
        env = env or FAULT_DEFAULT_ENV[name]
        if name != "unsafe-migration" and env not in ENVIRONMENTS:
            raise ValueError(f"fault {text!r}: environment must be staging or production")
        return cls(name, env)

    def __str__(self) -> str:
        return self.name if self.name == "unsafe-migration" else f"{self.name}@{self.env}"
