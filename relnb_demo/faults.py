"""Faults the demo can inject, the gates each must turn, and where the running app and worker read them.

`FAULTS` is the one table of faults: a defect of docflow's systems per name, where it sits and the
gates that must catch it; `relnb demo --list-faults`, the stack and the demo's tests read it. A
runtime fault is switched on per environment in a Redis hash the API and the worker poll (so a
test or `relnb demo --fault NAME` changes behaviour without a restart); the counters next to it
are what the worker reports about its jobs. The others live in what the stack builds: the
release's commits, the backups, Prometheus's config, the registry, the deploy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class FaultSpec:
    """One fault: a defect of docflow's systems, where it sits, and the gates that must catch it.

    `gates` are the gates a `relnb demo --fault NAME` run must end with failed or inconclusive
    (every other gate passes, or waits or is skipped because an earlier failure stopped the
    release); `elsewhere` gives the same for the other environments the fault is known to turn.
    """

    name: str
    env: str  # where it goes by default: staging | production | release (the release's commits)
    gates: tuple[str, ...]
    defect: str
    elsewhere: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # environments `NAME@ENV` may name; a fault of one shared system (the registry, Prometheus,
    # the backups of production) has only the one
    envs: tuple[str, ...] = ENVIRONMENTS


# A failed window records an incident, but F2 (which depends on D7) then waits, pending: the
# faults that fail D7 turn D7 alone; worker-crash is the incident F2 itself must catch.
_D7 = ("D7",)

# The one table of faults: `relnb demo --fault`, `--list-faults`, the stack and the demo's tests
# all read it (DESIGN.md, "The demo target").
FAULTS: dict[str, FaultSpec] = {
    f.name: f
    for f in (
        # C1's soak counts from when B1 saw staging serve the release: it waits (pending) for B1
        FaultSpec("wrong-sha", "staging", ("B1",), "the deploy of main's last commit never reached staging"),
        FaultSpec("stalled-worker", "staging", ("B6",), "a worker replica hangs holding its job"),
        # half the uploads are the big tenant's: B6's failed-job ratio sees them fail too
        FaultSpec(
            "dlq", "staging", ("B6", "B7"), "extraction fails for the big tenant: jobs land in the DLQ",
            elsewhere={"production": _D7},
        ),
        FaultSpec("cors", "staging", ("B9",), "the API stops allowing the web frontend's origin"),
        FaultSpec("redirect-uri", "staging", ("B9",), "the IdP client lost staging's redirect URI"),
        FaultSpec(
            "unsafe-migration", "release", ("C3",),
            "the release's migration rewrites the 50k-row documents table", envs=(),
        ),
        FaultSpec(
            "missing-secret", "production", ("B4", "C4"), "production's env file lacks S3_SECRET_ACCESS_KEY"
        ),
        FaultSpec(
            "error-rate", "production", _D7, "1.1.0 answers half the big tenant's requests with 500",
            elsewhere={"staging": ("B8", "C1")},
        ),
        FaultSpec("latency", "production", _D7, "1.1.0 is 900 ms slower for the big tenant"),
        FaultSpec("metrics-down", "production", ("D7",), "1.1.0's /metrics stops answering mid-window"),
        FaultSpec(
            "undocumented-route", "release", ("A2",),
            "the release adds PATCH /documents/{id} without documenting it in openapi.yaml", envs=(),
        ),
        FaultSpec(
            "truncated-backup", "production", ("C2",),
            "production's nightly pg_dump was cut off mid-way and uploaded anyway", envs=("production",),
        ),
        FaultSpec(
            "no-alert-rules", "production", ("C5",),
            "Prometheus's rule_files glob matches no file: no alert rule is loaded", envs=("production",),
        ),
        FaultSpec(
            "missing-previous-image", "production", ("E1",),
            "the registry's retention pruned the images of 1.0.0 (the rollback target)",
            envs=("production",),
        ),
        FaultSpec(
            "destructive-migration", "release", ("C3", "E2", "E3"),
            "the release drops invites.accepted_by, which 1.0.0 still writes: redeploying it breaks invites",
            envs=(),
        ),
        FaultSpec(
            "worker-crash", "staging", ("F2",),
            "a staging worker crashed on start (restarted); the on-call's incident has no test",
            envs=("staging",),
        ),
        FaultSpec(
            "rollback-fails", "production", ("D7", "E3"),
            "1.1.0 fails in production, and its deploy renamed OIDC_ISSUER, so 1.0.0 cannot start again",
            envs=("production",),
        ),
    )
}

FAULT_DEFAULT_ENV: dict[str, str] = {name: f.env for name, f in FAULTS.items()}
RELEASE_FAULTS = {name for name, f in FAULTS.items() if f.env == "release"}


def fault_matrix() -> dict[str, tuple[str, ...]]:
    """`--fault` argument -> the gates that run must turn: each fault at its default place, then
    each other environment it is known to turn (what `relnb demo --list-faults` prints)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, f in FAULTS.items():
        out[name] = f.gates
        for env, gates in f.elsewhere.items():
            out[f"{name}@{env}"] = gates
    return out


def list_faults(emit: Callable[[str], None] = print) -> None:
    """One line per fault: its name, then the gate IDs it must turn, comma separated."""
    matrix = fault_matrix()
    width = max(len(k) for k in matrix)
    for key, gates in matrix.items():
        emit(f"{key:<{width}}  {','.join(gates)}")


# What each fault sets in the environment's fault hash (see app.py / worker.py).
RUNTIME_FAULTS: dict[str, dict[str, Any]] = {
    "stalled-worker": {"stalled": True},
    "dlq": {"fail_extraction": True},
    "cors": {"cors_drop_origin": True},
    "error-rate": {"error_rate": 0.5},
    "latency": {"latency_ms": 900},
    "worker-crash": {"crash_on_start": True},
    # production fails after the deploy as with error-rate; what breaks the rollback is the
    # deploy's rename of the issuer variable (processes.Processes._child_env)
    "rollback-fails": {"error_rate": 0.5},
}


# On production these switch on only when the new version is deployed (they are bugs of it).
AFTER_DEPLOY = {"wrong-sha", "stalled-worker", "dlq", "error-rate", "latency", "metrics-down", "rollback-fails"}


# `metrics-down`: the app's /metrics stops answering this long after the deploy, i.e. after the
# monitoring window has its first samples (the source going away mid-window, not a missing one)
METRICS_DOWN_AFTER_S = 12


@dataclass(frozen=True)
class Fault:
    name: str
    env: str

    @classmethod
    def parse(cls, text: str) -> Fault:
        name, at, env = text.strip().partition("@")
        spec = FAULTS.get(name)
        if spec is None:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)} (see --list-faults)")
        if not at:
            return cls(name, spec.env)
        if not spec.envs:
            raise ValueError(f"fault {text!r}: {name} is in the release's commits, not in an environment")
        if env not in spec.envs:
            where = "staging or production" if spec.envs == ENVIRONMENTS else " or ".join(spec.envs)
            raise ValueError(f"fault {text!r}: environment must be {where}")
        return cls(name, env)

    def __str__(self) -> str:
        return self.name if self.env == "release" else f"{self.name}@{self.env}"
