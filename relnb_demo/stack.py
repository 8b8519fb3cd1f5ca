"""DemoStack: the whole docflow system on one machine, with faults, for `relnb demo`.

Start order: Postgres, Redis, S3 (moto), the git repository, the OIDC issuer and the control
endpoint (in parallel); then per environment a database migrated to v1.0.0's migrations and
seeded with a big tenant (50k documents, enough for C3's lock check to matter), a pg_dump backup
in S3, the API and two worker replicas as subprocesses; then Prometheus and the OCI registry
when installed, and synthetic traffic. Production runs the previous release (1.0.0 at the tag's
SHA); staging runs main's HEAD (1.1.0) but its schema is still at 1.0.0, so B2's `migrate
deploy` has real work to do.

Deploys go through the control endpoint (HTTP on 127.0.0.1, token in `control.json`), which the
repo's `scripts/release/deploy-vps.sh` reaches via `python -m relnb_demo.deploy`; a deploy pulls
the version's images from the registry first, and a process that exits while an environment
comes up is restarted (twice at most, kept in `crashes`), as the compose file's restart policy
does. Each API serves its commit's routing table (src/docflow/routes.py). `stop()` ends
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
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import repo as demo_repo
from . import signers as demo_signers
from .debian import AlertmanagerService, PrometheusService, RegistryService
from .description import Description
from .errortracking import ErrorTracker
from .faults import AFTER_DEPLOY, METRICS_DOWN_AFTER_S, RUNTIME_FAULTS, Fault
from .migrate import deploy as migrate_deploy
from .oidc import OidcIssuer, demo_clients
from .operations import Operations
from .processes import Processes
from .services import (
    STOP_SIGNALS,
    ManagedProcess,
    PostgresService,
    RedisService,
    S3Service,
    UvicornThread,
    free_port,
)
from .topology import (
    ENVIRONMENTS,
    SEED_DOCUMENTS,
    EnvState,
    frontends_for,
)


class DemoStack(Processes, Operations, Description):
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
        # docflow's error tracking (C5 follows each environment's DSN to it)
        self.error_tracker = ErrorTracker({env: i + 1 for i, env in enumerate(ENVIRONMENTS)})
        self.errors_server: UvicornThread | None = None
        self.control_token = secrets.token_urlsafe(24)
        self.traffic: dict[str, Any] = {}
        self.images: dict[str, dict[str, str]] = {}
        # processes that exited while an environment came up and were started again
        self.crashes: list[dict[str, Any]] = []
        # a scratch database C2's restore test may overwrite (never an environment's)
        self.restore_test_url = ""
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

        # anyio (from 4.16) parses its own source on first import; with _make_repo parsing routes in
        # another thread, CPython <= 3.11.7 fails one of them (relnb.pyast says why): import it here
        import anyio  # noqa: F401

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
        self.errors_server = UvicornThread(self.error_tracker.app(), "error-tracking")
        self.errors_server.start()
        self.error_tracker.base_url = self.errors_server.url
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
        self.restore_test_url = self.postgres.create_database(f"docflow_restore_test_{self.run_id}")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(self._prepare_database, self.envs.values()))

        staging = self.envs["staging"]
        # wrong-sha: the deploy of main's last commit never reached staging, which still runs
        # the build before it (the release's features are there, its SHA is not main's)
        staging_sha = (
            self.repo.parent_sha if self.has_fault("wrong-sha", "staging") else self.repo.head_sha
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
            if self.has_fault("missing-previous-image"):
                self.delete_images(prev)
        if self.want_prometheus:
            self.alertmanager = AlertmanagerService(self.workdir)
            self.alertmanager.start()
            self.prometheus = PrometheusService(
                self.workdir,
                {env: f"127.0.0.1:{st.port}" for env, st in self.envs.items()},
                alertmanager=self.alertmanager.address,
                rules_suffix=".yaml" if self.has_fault("no-alert-rules") else ".yml",
            )
            self.prometheus.start()
        self._record_pids()
        self._write_secret_files()
        if self.want_traffic:
            self._start_traffic()
        self.startup_seconds = round(time.monotonic() - t0, 2)

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
            variants=[f.name for f in self.faults if f.env == "release"],
            allowed_signers=demo_signers.allowed_signers(self.signers),
            # the release's commits are dated before this run, so the review's lead time is
            # days, not the years since the history's fixed 2024 dates
            now=datetime.now(UTC),
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


    # -- deploys ----------------------------------------------------------------------------


    # -- secrets files + describe -------------------------------------------------------------


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
