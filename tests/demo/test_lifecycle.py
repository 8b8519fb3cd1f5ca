"""Nothing outlives the demo: normal exit, an exception, SIGINT and SIGTERM all stop every child
process and free every port. And the stack runs on the machine's own Postgres/Redis, leaving no
databases or keys behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
import redis

from relnb_demo.stack import DemoStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = textwrap.dedent(
    """
    import faulthandler, json, signal, sys, time
    from relnb_demo.stack import DemoStack

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for stacks on a hang

    workdir, mode = sys.argv[1], sys.argv[2]
    if mode == "start-fails":
        def boom(self):
            print(json.dumps({"pids": self.child_pids(), "ports": self.listening_ports()}), flush=True)
            raise RuntimeError("traffic failed to start")
        DemoStack._start_traffic = boom
    with DemoStack(workdir, seed_documents=2000) as s:
        print(json.dumps({"pids": s.child_pids(), "ports": s.listening_ports()}), flush=True)
        if mode == "exception":
            raise RuntimeError("boom")
        if mode in ("sigint", "sigterm"):
            time.sleep(120)
    """
)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _gone(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("mode", ["normal", "exception", "sigint", "sigterm", "start-fails"])
def test_no_leftover_processes_or_ports(mode: str, tmp_path: Path, demo_components) -> None:
    script = tmp_path / "run_stack.py"
    script.write_text(SCRIPT)
    workdir = tmp_path / "work"
    errlog = tmp_path / "stderr.log"
    with open(errlog, "w") as err:  # a file, not a pipe: a full pipe would block the stack
        proc = subprocess.Popen(
            [sys.executable, str(script), str(workdir), mode],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, errlog.read_text()
        info = json.loads(line)
        assert len(info["pids"]) >= 6 and len(info["ports"]) >= 6
        descendants = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert set(info["pids"]) <= descendants | {p for p in info["pids"] if _gone(p)}
        if mode != "start-fails":  # that stack is already tearing down when it reports its ports
            assert all(_listening(p) for p in info["ports"])
        if mode == "sigint":
            proc.send_signal(signal.SIGINT)
        elif mode == "sigterm":
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            pytest.fail(f"stack did not exit after {mode}: {errlog.read_text()[-6000:]}")
    finally:
        if proc.poll() is None:  # the test failed: don't let this stack's children haunt others
            proc.kill()
            proc.wait()
            for pid in locals().get("info", {}).get("pids", []):
                if not _gone(pid):
                    os.kill(pid, signal.SIGKILL)
    if mode == "normal":
        assert rc == 0
    else:
        assert rc != 0
    leftovers = [p for p in info["pids"] if not _gone(p)]
    assert leftovers == [], f"processes left running after {mode}: {leftovers}"
    strays = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(str(workdir) in part for part in (p.info["cmdline"] or []))
    ]
    assert strays == [], f"processes still using {workdir}: {strays}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_listening(p) for p in info["ports"]):
        time.sleep(0.2)
    assert [p for p in info["ports"] if _listening(p)] == []


def test_children_exit_when_the_stack_process_is_killed(tmp_path: Path) -> None:
    """Even SIGKILL (no cleanup possible in the stack): apps watch their parent, the reaper
    ends the daemons (Postgres, Redis, Prometheus, registry) and frees their ports."""
    script = tmp_path / "run_stack.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "work"), "sigint"],
        stdout=subprocess.PIPE,
        text=True,
    )
    info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    apps = [
        c.pid
        for c in psutil.Process(proc.pid).children()
        if any("relnb_demo.app" in x or "relnb_demo.worker" in x for x in c.cmdline())
    ]
    assert len(apps) == 6
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(_gone(p) for p in info["pids"]):
        time.sleep(0.3)
    leftovers = [p for p in info["pids"] if not _gone(p)]
    for pid in leftovers:  # don't haunt other tests, then fail
        os.kill(pid, signal.SIGKILL)
    assert leftovers == []
    assert all(_gone(p) for p in apps)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_listening(p) for p in info["ports"]):
        time.sleep(0.2)
    assert [p for p in info["ports"] if _listening(p)] == []


def test_stack_on_machine_postgres_and_redis(
    tmp_path: Path, pg_admin_url: str, redis_url: str
) -> None:
    stack = DemoStack(
        tmp_path / "work",
        postgres_url=pg_admin_url,
        redis_url=redis_url,
        traffic=False,
        with_prometheus=False,
        with_registry=False,
        seed_documents=2000,
    )
    with stack:
        d = stack.describe()
        st = d["environments"]["staging"]
        assert st["redis_url"] == redis_url and st["queue"]["prefix"] == "bull-staging"
        assert d["environments"]["production"]["queue"]["prefix"] == "bull-production"
        assert st["database_url"].endswith(f"/docflow_staging_{stack.run_id}")
        h = {"Authorization": f"Bearer {st['owner_token']}"}
        with httpx.Client(base_url=st["base_url"], headers=h, timeout=10) as c:
            ws = c.post("/workspaces", json={"name": "machine"}).json()["id"]
            doc = c.post(
                "/documents", data={"workspace_id": str(ws)}, files={"file": ("a", b"x")}
            ).json()["id"]
            deadline = time.monotonic() + 30
            while c.get(f"/documents/{doc}").json()["status"] != "extracted":
                assert time.monotonic() < deadline, "document not extracted on machine services"
                time.sleep(0.2)
        stack.deploy("production", "1.1.0", d["head_sha"])
        assert (
            httpx.get(d["environments"]["production"]["base_url"] + "/version").json()["version"]
            == "1.1.0"
        )
        client = redis.Redis.from_url(redis_url)
        assert client.zcard("bull-staging:extraction:completed") == 1
        assert client.exists("bull-production:extraction:completed") == 0
    with psycopg.connect(pg_admin_url) as conn:
        left = conn.execute(
            "select datname from pg_database where datname like %s", (f"docflow_%_{stack.run_id}",)
        ).fetchall()
    assert left == []
    assert (
        list(client.scan_iter(match="bull-*")) == []
        and list(client.scan_iter(match="docflow:*")) == []
    )
    client.close()
