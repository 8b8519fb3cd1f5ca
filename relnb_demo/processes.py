"""The demo stack's child processes: launching docflow's API and workers with their environment,
waiting for them to be healthy, recording their pids for the reaper, and stopping everything
(also on SIGTERM, and within a bound, so a stuck child never hangs `relnb demo`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .faults import faults_key
from .services import (
    ManagedProcess,
    ProcessExited,
    wait_until,
)
from .topology import (
    WORKER_REPLICAS,
    EnvState,
    frontends_for,
)


def _bounded(fn: Any, timeout: float) -> None:
    """Run a stop step in a daemon thread and give up waiting after `timeout` (never hang stop())."""
    t = threading.Thread(target=_quiet, args=(fn,), daemon=True)
    t.start()
    t.join(timeout)


def _quiet(fn: Any) -> None:
    with contextlib.suppress(Exception):
        fn()


RESTARTS = 2  # a process that exits while an environment comes up is started again this often


class Processes:
    """Mixed into DemoStack: the processes it owns."""

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
            self.errors_server,
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
                st.issuer_var: self.oidc.issuer,
                "ADMIN_TOKEN": st.admin_token,
                "CORS_ORIGINS": ",".join(fe["origin"] for fe in frontends_for(st.name)),
            }
        )
        return env

    def _launch(self, st: EnvState, version: str, sha: str, faults: dict[str, Any]) -> None:
        import redis

        from .repo import routes_at

        assert self.repo
        routes = routes_at(self.repo.path, sha)  # what the image built from `sha` serves

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
                "--routes",
                json.dumps(routes),
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
        """Wait until the API answers with the SHA and every worker is ready. A process that
        exits meanwhile is started again, RESTARTS times at most (the compose file's `restart:
        unless-stopped`, bounded so that a crash loop fails the deploy); each crash is kept in
        `self.crashes`, as a container runtime's restart count and last logs would be."""
        import httpx

        restarts: dict[str, int] = {}

        def revive(p: ManagedProcess) -> ManagedProcess:
            if p.alive():
                return p
            code = p.proc.returncode
            n = restarts.get(p.name, 0)
            what = f"API {st.name}" if p is st.api else f"worker {p.name}"
            if n >= RESTARTS:
                times = f" ({n + 1} times; exit {code})" if n else ""
                raise ProcessExited(f"{what} exited{times}: {p.log_tail(600).strip()}")
            restarts[p.name] = n + 1
            self.crashes.append(
                {
                    "environment": st.name,
                    "process": p.name,
                    "version": st.version,
                    "exit_code": code,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "log_tail": p.log_tail(600),
                }
            )
            fresh = p.respawn()
            self._record_pids()
            return fresh

        def ready() -> bool:
            if st.api:
                st.api = revive(st.api)
            st.workers = [revive(w) for w in st.workers]
            r = httpx.get(f"{st.base_url}/version", timeout=2)
            return (
                r.status_code == 200
                and r.json().get("sha") == st.sha
                and all("ready" in w.log_tail() for w in st.workers)
            )

        wait_until(f"docflow {st.name}", ready, timeout, 0.1)

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
            self.errors_server,
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
