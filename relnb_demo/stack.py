"""DemoStack: the whole docflow system on one machine, with faults, for `relnb demo`.

Start order: Postgres, Redis, S3 (moto), the git repository, the OIDC issuer and the control
endpoint (in parallel); then per environment a database migrated to v1.0.0's migrations and
seeded with a big tenant (50k documents, enough for C3's lock check to matter), a pg_dump backup
in S3, the API and two worker replicas as subprocesses; then Prometheus and the OCI registry
when installed, and synthetic traffic. Production runs the previous release (1.0.0 at the tag's
SHA); staging runs main's HEAD (1.1.0) but its schema is still at 1.0.0, so B2's `migrate
deploy` has real work to do.

Deploys go through the control endpoint (HTTP on 127.0.0.1, token in `control.json`), which the
repo's `scripts/release/deploy-vps.sh` reaches via `python -m relnb_demo.deploy`. `stop()` ends
everything this stack started; it runs on normal exit, on exceptions and on SIGINT (context
manager), and children also exit on their own if the stack process dies.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import repo as demo_repo
from . import signers as demo_signers
from .app import QUEUE_NAME, faults_key, served_routes
from .migrate import deploy as migrate_deploy
from .oidc import API_AUDIENCE, CLIENT_ID, REALM, OidcIssuer, demo_clients
from .repo_files import ENV_KEYS
from .services import (
    ALERT_RULES,
    STOP_SIGNALS,
    AlertmanagerService,
    ManagedProcess,
    PostgresService,
    PrometheusService,
    RedisService,
    RegistryService,
    S3Service,
    UvicornThread,
    free_port,
    push_image,
    wait_until,
)

ENVIRONMENTS = ("staging", "production")
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
IMAGE_REPOSITORIES = {"api": "docflow-api", "worker": "docflow-worker"}
WORKER_REPLICAS = 2
SEED_DOCUMENTS = 50_000


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


def _bounded(fn: Any, timeout: float) -> None:
    """Run a stop step in a daemon thread and give up waiting after `timeout` (never hang stop())."""
    t = threading.Thread(target=_quiet, args=(fn,), daemon=True)
    t.start()
    t.join(timeout)


def _quiet(fn: Any) -> None:
    with contextlib.suppress(Exception):
        fn()


def frontends_for(env: str) -> list[dict[str, str]]:
    host = "staging-web.docflow.test" if env == "staging" else "app.docflow.test"
    return [
        {"origin": f"http://{host}", "redirect_uri": f"http://{host}/auth/callback"},
        {"origin": f"http://admin.{host}", "redirect_uri": f"http://admin.{host}/auth/callback"},
    ]


@dataclass
class EnvState:
    name: str
    port: int
    database_name: str
    database_url: str = ""
    redis_url: str = ""
    queue_prefix: str = "bull"
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    version: str = ""
    sha: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)
    api: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)
    big_workspace_id: int = 0
    big_doc_range: tuple[int, int] = (0, 0)
    backup_key: str = ""
    deploys: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class DemoStack:
    """The demo system; use as a context manager, or call start() and stop() (always)."""

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        faults: Iterable[str | Fault] = (),
        postgres_url: str | None = None,
        redis_url: str | None = None,
        with_prometheus: bool = True,
        with_registry: bool = True,
        traffic: bool = True,
        seed_documents: int = SEED_DOCUMENTS,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.faults = [f if isinstance(f, Fault) else Fault.parse(f) for f in faults]
        self.postgres = PostgresService(self.workdir, postgres_url)
        self.redis = RedisService(self.workdir, redis_url)
        self.run_id = uuid.uuid4().hex[:8]
        # moto keeps S3 state per process: a bucket of our own, removed again on stop.
        self.s3 = S3Service(bucket=f"docflow-backups-{self.run_id}")
        # Prometheus comes with its Alertmanager: C5 asks whether alerts reach someone.
        self.want_prometheus = with_prometheus
        self.want_registry = with_registry
        self.prometheus: PrometheusService | None = None
        self.alertmanager: AlertmanagerService | None = None
        self.registry: RegistryService | None = None
        self.want_traffic = traffic
        self.seed_documents = seed_documents
        self.envs: dict[str, EnvState] = {}
        self.repo: demo_repo.DemoRepo | None = None
        self.signers: tuple[demo_signers.DemoSigner, ...] = ()
        self.oidc: OidcIssuer | None = None
        self.oidc_server: UvicornThread | None = None
        self.control: UvicornThread | None = None
        self.control_token = secrets.token_urlsafe(24)
        self.traffic: dict[str, Any] = {}
        self.images: dict[str, dict[str, str]] = {}
        self.startup_seconds: float | None = None
        self._lock = threading.RLock()
        self._reaper: ManagedProcess | None = None
        self._started = False
        self._stopped = False

    # -- faults -----------------------------------------------------------------------------

    def has_fault(self, name: str, env: str | None = None) -> bool:
        return any(f.name == name and (env is None or f.env == env) for f in self.faults)

    def runtime_faults(self, env: str, *, new_version_on_production: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.faults:
            if f.env != env or f.name not in RUNTIME_FAULTS:
                continue
            if env == "production" and f.name in AFTER_DEPLOY and not new_version_on_production:
                continue
            out.update(RUNTIME_FAULTS[f.name])
        if self.has_fault("metrics-down", env) and (env != "production" or new_version_on_production):
            out["metrics_down_at"] = int(time.time() + METRICS_DOWN_AFTER_S)
        return out

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> DemoStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._install_sigterm()
        # Threads inherit the signal mask of their creator. With SIGINT/SIGTERM blocked while the
        # stack creates its threads (servers, pools, traffic), the kernel delivers those signals
        # to the main thread only, so a main thread blocked in sleep()/wait() is woken and
        # KeyboardInterrupt/SystemExit reach the context manager. A Ctrl-C during start is
        # handled when start returns (it is bounded).
        main = threading.current_thread() is threading.main_thread()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if main else None
        try:
            self._start()
        finally:
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _start(self) -> None:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        runtime = self.workdir / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
        prev = demo_repo.PREVIOUS_VERSION
        for env in ENVIRONMENTS:
            self.envs[env] = EnvState(env, free_port(), f"docflow_{env}_{self.run_id}")
        self._start_reaper()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(self.postgres.start),
                pool.submit(self.redis.start),
                pool.submit(self.s3.start),
                pool.submit(self._make_repo),
                pool.submit(self._start_oidc),
            ]
            try:
                for fut in futures:
                    fut.result()
            finally:
                self._record_pids()
        self._start_control()
        assert self.repo and self.oidc

        for idx, (env, st) in enumerate(self.envs.items()):
            st.database_url = self.postgres.create_database(st.database_name)
            if self.redis.external:
                st.redis_url = self.redis.url or ""
                st.queue_prefix = f"bull-{env}"
            else:
                base = (self.redis.url or "").rsplit("/", 1)[0]
                st.redis_url = f"{base}/{idx + 1}"
                st.queue_prefix = "bull"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(self._prepare_database, self.envs.values()))

        staging = self.envs["staging"]
        staging_sha = (
            self.repo.previous_sha if self.has_fault("wrong-sha", "staging") else self.repo.head_sha
        )
        self._launch(
            staging,
            demo_repo.NEW_VERSION,
            staging_sha,
            self.runtime_faults("staging", new_version_on_production=False),
        )
        production = self.envs["production"]
        self._launch(
            production,
            prev,
            self.repo.previous_sha,
            self.runtime_faults("production", new_version_on_production=False),
        )
        self._record_pids()
        for st in self.envs.values():
            self._wait_healthy(st)

        if self.want_registry:
            self.registry = RegistryService(self.workdir)
            self.registry.start()
            for version, sha in (
                (prev, self.repo.previous_sha),
                (demo_repo.NEW_VERSION, self.repo.head_sha),
            ):
                self.push_images(version, sha)
        if self.want_prometheus:
            self.alertmanager = AlertmanagerService(self.workdir)
            self.alertmanager.start()
            self.prometheus = PrometheusService(
                self.workdir,
                {env: f"127.0.0.1:{st.port}" for env, st in self.envs.items()},
                alertmanager=self.alertmanager.address,
            )
            self.prometheus.start()
        self._record_pids()
        self._write_secret_files()
        if self.want_traffic:
            self._start_traffic()
        self.startup_seconds = round(time.monotonic() - t0, 2)

    def _install_sigterm(self) -> None:
        """Turn SIGTERM into SystemExit (main thread only), so `kill` also runs stop()."""
        self._old_sigterm: Any = None
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the host program handles SIGTERM itself

        def on_term(signum: int, frame: Any) -> None:
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, on_term)

    def stop(self) -> None:
        """Stop everything that was started (idempotent; safe after a failed start)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        main = threading.current_thread() is threading.main_thread()
        if main and getattr(self, "_old_sigterm", None) is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
        # A second Ctrl-C must not abandon half the processes: finish stopping first.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self._stop_all()
        finally:
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)

    def _stop_all(self) -> None:
        for gen in self.traffic.values():
            with contextlib.suppress(Exception):
                gen.stop()
        with (
            self._lock,
            concurrent.futures.ThreadPoolExecutor(6) as pool,
        ):  # waits for a running deploy
            steps: list[Any] = []
            for st in self.envs.values():
                # A hung (fault) worker ignores SIGTERM while blocked; don't wait long for it here.
                steps += [lambda w=w: w.stop(timeout=4) for w in st.workers]
                if st.api:
                    steps.append(st.api.stop)
            for fut in [pool.submit(s) for s in steps]:
                with contextlib.suppress(Exception):
                    fut.result()
        for svc in (
            self.prometheus,
            self.alertmanager,
            self.registry,
            self.control,
            self.oidc_server,
            self.s3,
        ):
            if svc is not None:
                _bounded(svc.stop, 20)
        if self.redis.external:
            self._clean_external_redis()
        for svc2 in (self.redis, self.postgres):
            with contextlib.suppress(Exception):
                svc2.stop()
        if self._reaper is not None:
            self._reaper.stop()

    def _start_reaper(self) -> None:
        env = self._base_env()
        self._reaper = ManagedProcess(
            "reaper",
            [
                sys.executable,
                "-m",
                "relnb_demo.reaper",
                "--parent",
                str(os.getpid()),
                "--pids-file",
                str(self.workdir / "pids.json"),
            ],
            self.workdir / "logs" / "reaper.log",
            env=env,
        )

    def _record_pids(self) -> None:
        """Tell the reaper what to end if this process dies without stop()."""
        import psutil

        from .reaper import write_pids

        entries: list[dict[str, object]] = []
        for pid in self.child_pids():
            with contextlib.suppress(psutil.Error):
                entries.append({"pid": pid, "create_time": psutil.Process(pid).create_time()})
        tmp = getattr(self.postgres, "_tmp", None)
        if tmp:
            entries.append({"cleanup_dir": str(tmp)})
        write_pids(self.workdir / "pids.json", entries)

    def _clean_external_redis(self) -> None:
        import redis

        for env, st in self.envs.items():
            if not st.redis_url:
                continue
            with contextlib.suppress(Exception):
                client = redis.Redis.from_url(st.redis_url, socket_timeout=3)
                for pattern in (f"{st.queue_prefix}:*", f"docflow:{env}:*"):
                    keys = list(client.scan_iter(match=pattern, count=500))
                    for i in range(0, len(keys), 500):
                        client.delete(*keys[i : i + 500])
                client.close()

    # -- pieces -----------------------------------------------------------------------------

    def _make_repo(self) -> None:
        # The approvers' keys live in the stack's workdir (never in the project, which is
        # archived); only their public halves go into the repository.
        self.signers = demo_signers.generate(self.workdir / "signing-keys")
        self.repo = demo_repo.create_repo(
            self.workdir / "docflow",
            unsafe_migration=self.has_fault("unsafe-migration"),
            allowed_signers=demo_signers.allowed_signers(self.signers),
        )

    def _start_oidc(self) -> None:
        frontends = {env: frontends_for(env) for env in ENVIRONMENTS}
        drop = [
            frontends_for(f.env)[0]["redirect_uri"] for f in self.faults if f.name == "redirect-uri"
        ]
        self.oidc = OidcIssuer(demo_clients(frontends, drop))
        self.oidc_server = UvicornThread(self.oidc.app(), "oidc")
        self.oidc_server.start()
        self.oidc.base_url = self.oidc_server.url

    def _start_control(self) -> None:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        def authorized(request: Request) -> bool:
            return secrets.compare_digest(
                request.headers.get("x-control-token", "").encode(), self.control_token.encode()
            )

        async def deploy_endpoint(request: Request) -> Response:
            from starlette.concurrency import run_in_threadpool

            if not authorized(request):
                return JSONResponse({"error": "control token required"}, 401)
            try:
                body = await request.json()
                if body.get("rollback"):
                    result = await run_in_threadpool(self.rollback, str(body.get("env")))
                else:
                    result = await run_in_threadpool(
                        self.deploy,
                        str(body.get("env")),
                        str(body.get("version")),
                        str(body.get("sha")),
                    )
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            except Exception as exc:
                return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, 500)
            return JSONResponse(result)

        async def state_endpoint(request: Request) -> Response:
            if not authorized(request):
                return JSONResponse({"error": "control token required"}, 401)
            return JSONResponse(
                {
                    env: {"version": st.version, "sha": st.sha, "deploys": st.deploys}
                    for env, st in self.envs.items()
                }
            )

        app = Starlette(
            routes=[
                Route("/deploy", deploy_endpoint, methods=["POST"]),
                Route("/state", state_endpoint),
            ]
        )
        self.control = UvicornThread(app, "control")
        self.control.start()
        path = self.control_file
        path.write_text(json.dumps({"url": self.control.url, "token": self.control_token}))
        path.chmod(0o600)

    @property
    def control_file(self) -> Path:
        return self.workdir / "control.json"

    def _prepare_database(self, st: EnvState) -> None:
        """Schema at v1.0.0's migrations, the big tenant seeded, a backup in S3."""
        import psycopg

        assert self.repo and self.oidc
        mig_dir = demo_repo.migrations_at(
            self.repo.path, self.repo.previous_tag, self.workdir / f"migrations-{st.name}"
        )
        migrate_deploy(st.database_url, mig_dir, log=lambda *_: None)
        owner = self.oidc.users["owner"]
        with psycopg.connect(st.database_url, autocommit=True) as conn, conn.transaction():
            ws = conn.execute(
                "insert into workspaces (name, owner_sub) values ('acme-corp', %s) returning id",
                (owner.sub,),
            ).fetchone()[0]
            conn.execute(
                "insert into memberships (workspace_id, user_sub, email, role) values (%s, %s, %s, 'owner')",
                (ws, owner.sub, owner.email),
            )
            conn.execute(
                "insert into memberships (workspace_id, user_sub, email, role)"
                " select %s, 'seed-user-' || g, 'user' || g || '@acme.test', 'member' from generate_series(1, 25) g",
                (ws,),
            )
            lo, hi = conn.execute(
                "with ins as (insert into documents (workspace_id, filename, size_bytes, status, pages, created_at, updated_at)"
                " select %s, 'invoice-' || g || '.pdf', 1000 + g %% 9000, 'extracted', 1 + g %% 12,"
                " now() - make_interval(secs => g), now() - make_interval(secs => g)"
                " from generate_series(1, %s) g returning id) select min(id), max(id) from ins",
                (ws, self.seed_documents),
            ).fetchone()
        with psycopg.connect(st.database_url, autocommit=True) as conn:
            conn.execute("analyze")
        st.big_workspace_id = int(ws)
        st.big_doc_range = (int(lo or 0), int(hi or 0))
        st.backup_key = self.backup(st.name)

    def backup(self, env: str) -> str:
        """pg_dump (custom format) of the environment's database into the S3 backup bucket."""
        st = self.envs[env]
        dump = subprocess.run(
            [
                str(PostgresService.bin_dir() / "pg_dump"),
                "--format=custom",
                "--no-owner",
                "-d",
                st.database_url,
            ],
            capture_output=True,
            timeout=300,
            check=True,
        )
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        key = f"{env}/docflow-{env}-{stamp}-{uuid.uuid4().hex[:6]}.dump"
        self.s3.upload(key, dump.stdout)
        return key

    def _base_env(self) -> dict[str, str]:
        import relnb

        pkg_root = str(Path(relnb.__file__).resolve().parent.parent)
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "XDG_RUNTIME_DIR", "TMPDIR")
        }
        env.update({"PYTHONPATH": pkg_root, "PYTHONUNBUFFERED": "1"})
        return env

    def _child_env(self, st: EnvState) -> dict[str, str]:
        assert self.oidc
        env = self._base_env()
        env.update(
            {
                "DATABASE_URL": st.database_url,
                "REDIS_URL": st.redis_url,
                "QUEUE_PREFIX": st.queue_prefix,
                "OIDC_ISSUER": self.oidc.issuer,
                "ADMIN_TOKEN": st.admin_token,
                "CORS_ORIGINS": ",".join(fe["origin"] for fe in frontends_for(st.name)),
            }
        )
        return env

    def _launch(self, st: EnvState, version: str, sha: str, faults: dict[str, Any]) -> None:
        import redis

        client = redis.Redis.from_url(st.redis_url, socket_timeout=3)
        try:
            client.delete(faults_key(st.name))
            if faults:
                client.hset(
                    faults_key(st.name), mapping={k: json.dumps(v) for k, v in faults.items()}
                )
        finally:
            client.close()
        env = self._child_env(st)
        logs = self.workdir / "logs"
        n = st.deploys
        st.api = ManagedProcess(
            f"api-{st.name}",
            [
                sys.executable,
                "-m",
                "relnb_demo.app",
                "--env",
                st.name,
                "--port",
                str(st.port),
                "--version",
                version,
                "--sha",
                sha,
                "--parent-pid",
                str(os.getpid()),
            ],
            logs / f"api-{st.name}-{n}.log",
            env=env,
            cwd=self.workdir,
        )
        st.workers = [
            ManagedProcess(
                f"worker-{st.name}-{r}",
                [
                    sys.executable,
                    "-m",
                    "relnb_demo.worker",
                    "--env",
                    st.name,
                    "--replica",
                    str(r),
                    "--parent-pid",
                    str(os.getpid()),
                ],
                logs / f"worker-{st.name}-{r}-{n}.log",
                env=env,
                cwd=self.workdir,
            )
            for r in range(WORKER_REPLICAS)
        ]
        st.version, st.sha = version, sha

    def _wait_healthy(self, st: EnvState, timeout: float = 60) -> None:
        import httpx

        def ready() -> bool:
            if st.api and not st.api.alive():
                raise RuntimeError(f"API {st.name} exited: {st.api.log_tail()}")
            for w in st.workers:
                if not w.alive():
                    raise RuntimeError(f"worker {w.name} exited: {w.log_tail()}")
            r = httpx.get(f"{st.base_url}/version", timeout=2)
            return (
                r.status_code == 200
                and r.json().get("sha") == st.sha
                and all("ready" in w.log_tail() for w in st.workers)
            )

        wait_until(f"docflow {st.name}", ready, timeout, 0.1)

    def _start_traffic(self) -> None:
        from .traffic import TrafficGenerator

        assert self.oidc
        for env, st in self.envs.items():
            gen = TrafficGenerator(
                st.base_url,
                self.oidc.token_for("owner"),
                big_workspace_id=st.big_workspace_id,
                big_doc_ids=st.big_doc_range,
                name=f"traffic-{env}",
            )
            gen.start()
            self.traffic[env] = gen

    def push_images(self, version: str, sha: str) -> dict[str, str]:
        """Push api and worker images tagged `version` to the registry; returns repo -> digest."""
        if self.registry is None:
            raise RuntimeError("no registry running (this stack was made with with_registry=False)")
        out = {
            repo: push_image(self.registry.url, repo, version, sha=sha, version=version)
            for repo in IMAGE_REPOSITORIES.values()
        }
        self.images[version] = out
        return out

    # -- deploys ----------------------------------------------------------------------------

    def deploy(self, env: str, version: str, sha: str) -> dict[str, Any]:
        """Replace the environment's API + workers with `version` at `sha` (same URL)."""
        if env not in self.envs:
            raise ValueError(f"unknown environment {env!r}")
        version = version.removeprefix("v")
        if version not in (demo_repo.PREVIOUS_VERSION, demo_repo.NEW_VERSION):
            raise ValueError(f"no image for version {version!r} (have 1.0.0, 1.1.0)")
        assert self.repo
        full = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"],
            cwd=self.repo.path,
            capture_output=True,
            text=True,
            check=False,
        )
        if full.returncode != 0:
            raise ValueError(f"commit {sha!r} is not in the repository")
        sha = full.stdout.strip()
        with self._lock:
            if self._stopped:
                raise RuntimeError("the demo stack is stopping")
            st = self.envs[env]
            is_new = version == demo_repo.NEW_VERSION
            faults = self.runtime_faults(
                env, new_version_on_production=(env == "production" and is_new)
            )
            if env == "production" and is_new and self.has_fault("wrong-sha", "production"):
                sha = (
                    self.repo.previous_sha
                )  # the deploy "succeeds" but the old build keeps running
            previous = (st.version, st.sha)
            old = [*st.workers, st.api]
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda p: p and p.stop(), old))
            st.deploys += 1
            st.history.append(previous)
            self._launch(st, version, sha, faults)
            self._record_pids()
            self._wait_healthy(st)
            return {
                "env": env,
                "version": version,
                "sha": st.sha,
                "previous": {"version": previous[0], "sha": previous[1]},
            }

    def rollback(self, env: str) -> dict[str, Any]:
        """Redeploy what ran before the last deploy of `env`."""
        st = self.envs.get(env)
        if st is None:
            raise ValueError(f"unknown environment {env!r}")
        if not st.history:
            raise ValueError(f"{env} has no previous deploy to roll back to")
        version, sha = st.history[-1]
        result = self.deploy(env, version, sha)
        st.history = st.history[:-2] if len(st.history) >= 2 else []
        return result

    def set_faults(self, env: str, **changes: Any) -> dict[str, Any]:
        """Change an environment's runtime faults through its admin endpoint (as an operator would)."""
        import httpx

        st = self.envs[env]
        r = httpx.post(
            f"{st.base_url}/_admin/faults",
            json=changes,
            headers={"X-Admin-Token": st.admin_token},
            timeout=10,
        )
        r.raise_for_status()
        return r.json()

    def freeze_worker(self, env: str, replica: int = 0) -> int:
        """SIGSTOP one worker replica (a hung process); returns its pid. stop() still ends it."""
        w = self.envs[env].workers[replica]
        os.kill(w.pid, signal.SIGSTOP)
        return w.pid

    def child_pids(self) -> list[int]:
        pids = [p.pid for st in self.envs.values() for p in [st.api, *st.workers] if p]
        for svc in (self.postgres, self.redis, self.prometheus, self.alertmanager, self.registry):
            proc = getattr(svc, "process", None) if svc else None
            if proc:
                pids.append(proc.pid)
        return pids

    def listening_ports(self) -> list[int]:
        ports = [st.port for st in self.envs.values()]
        for svc in (
            self.postgres,
            self.redis,
            self.prometheus,
            self.alertmanager,
            self.registry,
            self.oidc_server,
            self.control,
            self.s3,
        ):
            port = getattr(svc, "port", None) if svc else None
            if (
                port
                and not (svc is self.postgres and self.postgres.external_url)
                and not (svc is self.redis and self.redis.external)
            ):
                ports.append(port)
        return ports

    # -- secrets files + describe -------------------------------------------------------------

    def _missing_secret(self, env: str) -> bool:
        return self.has_fault("missing-secret", env)

    def env_var_names(self, env: str) -> dict[str, str]:
        e = env.upper()
        return {
            "owner_token": f"DOCFLOW_{e}_OWNER_TOKEN",
            "member_token": f"DOCFLOW_{e}_MEMBER_TOKEN",
            "database_url": f"DOCFLOW_{e}_DATABASE_URL",
            "redis_url": f"DOCFLOW_{e}_REDIS_URL",
            "s3_access_key": f"DOCFLOW_{e}_S3_ACCESS_KEY",
            "s3_secret_key": f"DOCFLOW_{e}_S3_SECRET_KEY",
            "admin_token": f"DOCFLOW_{e}_ADMIN_TOKEN",
        }

    def _write_secret_files(self) -> None:
        """Per-environment dotenv with the keys of infra/docker/env.vps.example (C4 reads it)."""
        assert self.oidc
        for env, st in self.envs.items():
            values = {
                "DATABASE_URL": st.database_url,
                "REDIS_URL": st.redis_url,
                "S3_ENDPOINT": self.s3.endpoint_url,
                "S3_BUCKET": self.s3.bucket,
                "S3_ACCESS_KEY_ID": self.s3.access_key,
                "S3_SECRET_ACCESS_KEY": self.s3.secret_key,
                "KEYCLOAK_ISSUER_URL": self.oidc.issuer,
                "KEYCLOAK_CLIENT_ID": CLIENT_ID,
                "CORS_ORIGINS": ",".join(fe["origin"] for fe in frontends_for(env)),
                "TAG": st.version,
                "IMAGE_PREFIX": self.registry.url if self.registry else "registry.docflow.test",
            }
            if self._missing_secret(env):
                values.pop("S3_SECRET_ACCESS_KEY")
            path = self.workdir / f"{env}.env"
            path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            path.chmod(0o600)
        assert set(ENV_KEYS) <= {
            "DATABASE_URL",
            "REDIS_URL",
            "S3_ENDPOINT",
            "S3_BUCKET",
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
            "KEYCLOAK_ISSUER_URL",
            "KEYCLOAK_CLIENT_ID",
            "CORS_ORIGINS",
        }

    def describe(self) -> dict[str, Any]:
        """Everything the lead needs for relnb.toml and the environment (secrets in plain keys)."""
        assert self.repo and self.oidc and self.control
        py = sys.executable
        repo = str(self.repo.path)
        out_envs: dict[str, Any] = {}
        env_vars: dict[str, str] = {}
        for env, st in self.envs.items():
            names = self.env_var_names(env)
            owner = self.oidc.token_for("owner")
            member = self.oidc.token_for("member")
            s3: dict[str, Any] = {
                "endpoint_url": self.s3.endpoint_url,
                "bucket": self.s3.bucket,
                "prefix": f"{env}/",
                "access_key": self.s3.access_key,
                "secret_key": self.s3.secret_key,
                "region": self.s3.region,
                "latest_backup_key": st.backup_key,
            }
            values = {
                "owner_token": owner,
                "member_token": member,
                "database_url": st.database_url,
                "redis_url": st.redis_url,
                "s3_access_key": self.s3.access_key,
                "s3_secret_key": self.s3.secret_key,
                "admin_token": st.admin_token,
            }
            if self._missing_secret(env):
                del s3["secret_key"]
                del values["s3_secret_key"]
            for key, value in values.items():
                env_vars[names[key]] = value
            control = f"env DOCFLOW_CONTROL_FILE={self.control_file} DOCFLOW_PYTHON={py}"
            out_envs[env] = {
                "base_url": st.base_url,
                "version_path": "/version",
                "version_field": "sha",
                "running": {"version": st.version, "sha": st.sha},
                "routes": served_routes(st.version),
                "frontends": frontends_for(env),
                "oidc": {
                    "issuer": self.oidc.issuer,
                    "client_id": CLIENT_ID,
                    "audience": API_AUDIENCE,
                },
                "database_url": st.database_url,
                "redis_url": st.redis_url,
                "queue": {"kind": "bullmq", "prefix": st.queue_prefix, "names": [QUEUE_NAME]},
                "s3": s3,
                "metrics": {
                    "scrape_urls": [f"{st.base_url}/metrics"],
                    "prometheus_url": self.prometheus.url if self.prometheus else None,
                    "alertmanager_url": self.alertmanager.url if self.alertmanager else None,
                    "alert_rules": sorted(ALERT_RULES) if self.prometheus else [],
                    "prometheus_job": f"docflow-api-{env}",
                },
                "registry": (
                    {"url": self.registry.url, "repositories": dict(IMAGE_REPOSITORIES)}
                    if self.registry
                    else None
                ),
                "admin_token": st.admin_token,
                "owner_token": owner,
                "member_token": member,
                "env_var_names": names,
                "dotenv": str(self.workdir / f"{env}.env"),
                "required_secrets": [
                    names[k]
                    for k in ("database_url", "redis_url", "s3_access_key", "s3_secret_key")
                ],
                "commands": {
                    "deploy": f"{control} bash {repo}/scripts/release/deploy-vps.sh {env}",
                    "rollback": f"{control} {py} -m relnb_demo.deploy --env {env} --rollback",
                    "migrate": f"{py} -m relnb_demo.migrate deploy --dir {repo}/prisma/migrations --url-env {names['database_url']}",
                    "migrate_down": f"{py} -m relnb_demo.migrate down --dir {repo}/prisma/migrations --url-env {names['database_url']}",
                    "smoke": f"env BASE_URL={st.base_url} OWNER_TOKEN_ENV={names['owner_token']} PYTHON={py} bash {repo}/scripts/smoke/api-smoke.sh",
                    "build": (
                        f"env IMAGE_PREFIX={self.registry.url} DOCFLOW_PYTHON={py} bash {repo}/scripts/release/build-images.sh"
                        if self.registry
                        else None
                    ),
                },
            }
        env_vars["DOCFLOW_KEYCLOAK_ADMIN_PASSWORD"] = self.oidc.admin_password
        return {
            "workdir": str(self.workdir),
            "repo": repo,
            "main_branch": "main",
            "previous_tag": self.repo.previous_tag,
            "previous_sha": self.repo.previous_sha,
            "head_sha": self.repo.head_sha,
            "previous_version": demo_repo.PREVIOUS_VERSION,
            "new_version": demo_repo.NEW_VERSION,
            "new_migration": self.repo.new_migration,
            "ci_command": f"{py} -m pytest -q",
            "openapi": "openapi.yaml",
            "migrations_dir": "prisma/migrations",
            "runbooks": [
                "ApplicationDevDocuments/DeploymentRunbook.MD",
                "ApplicationDevDocuments/RollbackRunbook.MD",
            ],
            "deploy_artifacts": [
                "infra/docker/docker-compose.deploy.example.yml",
                "infra/docker/env.vps.example",
                "scripts/release/deploy-vps.sh",
                "infra/docker/docker-compose.infra.example.yml",
                "infra/docker/env.infra.example",
                "infra/docker/docker-compose.coolify.example.yml",
                "infra/docker/env.coolify.example",
                "ApplicationDevDocuments/BeginnerDeployCoolify.MD",
            ],
            "env_templates": ["infra/docker/env.vps.example"],
            "smoke_script": "scripts/smoke/api-smoke.sh",
            "oidc": {
                "issuer": self.oidc.issuer,
                "client_id": CLIENT_ID,
                "realm": REALM,
                "admin": {
                    "base_url": self.oidc.base_url,
                    "realm": REALM,
                    "username": self.oidc.admin_username,
                    "password": self.oidc.admin_password,
                },
            },
            "control": {"url": self.control.url, "file": str(self.control_file)},
            "environments": out_envs,
            "env_vars": env_vars,
            "faults": [str(f) for f in self.faults],
            "startup_seconds": self.startup_seconds,
            # who approves: principal, roles and the *path* of each private key (never its bytes)
            "signing": {
                "allowed_signers": demo_repo.ALLOWED_SIGNERS,
                "signers": [
                    {
                        "name": sg.name,
                        "principal": sg.principal,
                        "roles": list(sg.roles),
                        "key": str(sg.key),
                    }
                    for sg in self.signers
                ],
            },
        }


def main(argv: list[str] | None = None) -> int:
    """`python -m relnb_demo.stack [--fault NAME[@env]]... --describe-out FILE`: run until Ctrl-C."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m relnb_demo.stack")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--fault", action="append", default=[])
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument(
        "--describe-out", default=None, help="write describe() JSON here (mode 0600)"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="relnb-demo-", dir="/tmp")
    with DemoStack(
        workdir, args.fault, postgres_url=args.postgres_url, redis_url=args.redis_url
    ) as stack:
        desc = stack.describe()
        if args.describe_out:
            out = Path(args.describe_out)
            out.touch(mode=0o600)
            out.write_text(json.dumps(desc, indent=2))
        for env, e in desc["environments"].items():
            print(
                f"{env}: {e['base_url']} running {e['running']['version']} ({e['running']['sha'][:12]})"
            )
        print(
            f"repo {desc['repo']}; faults {desc['faults'] or 'none'}; started in {stack.startup_seconds} s"
        )
        print("Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
