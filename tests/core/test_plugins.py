"""Plug-ins: one registry per kind, relnb's own registered the same way, installed packages found
through entry points (real `importlib.metadata` distributions, and a real pip-installed package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

import pytest

import relnb
from relnb.plugins import CODE, RELNB, Registry, callable_shape

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tests" / "data" / "plugins" / "acme-relnb"


def dist_on_path(tmp_path: Path, monkeypatch, name: str, entry_points: str, module: str = "") -> None:
    """A distribution importlib.metadata finds on sys.path: dist-info + module, no mocking."""
    site = tmp_path / f"site-{name}"
    site.mkdir()
    if module:
        (site / f"{name.replace('-', '_')}.py").write_text(module)
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    monkeypatch.syspath_prepend(str(site))


def test_relnb_registers_like_a_plugin_and_a_plugin_may_take_over(tmp_path, monkeypatch) -> None:
    dist_on_path(tmp_path, monkeypatch, "team-kit", "[relnb.test_things]\nalpha = team_kit:better\n", "def better(): return 'team'\n")
    reg: Registry = Registry("thing", "relnb.test_things", callable_shape, plugins_replace_relnb=True)
    reg.register("alpha", lambda: "relnb")
    reg.register("beta", lambda: "relnb")
    assert reg.get("alpha")() == "team" and reg.origin("alpha") == "team-kit 1.0 (entry point relnb.test_things:alpha)"
    assert reg.get("beta")() == "relnb" and reg.origin("beta") == RELNB
    assert [r.name for r in reg.plugins()] == ["alpha"]
    reg.register("alpha", lambda: "notebook", origin=CODE, replace=True)
    assert reg.get("alpha")() == "notebook"


def test_two_plugins_claiming_one_name_and_broken_plugins_are_named(tmp_path, monkeypatch) -> None:
    dist_on_path(tmp_path, monkeypatch, "kit-one", "[relnb.test_clash]\nq = kit_one:f\n", "def f(): pass\n")
    dist_on_path(tmp_path, monkeypatch, "kit-two", "[relnb.test_clash]\nq = kit_two:f\n", "def f(): pass\n")
    with pytest.raises(relnb.ConfigError, match=r"thing 'q' is registered twice: by kit-\w+ 1\.0 .* and by kit-\w+ 1\.0"):
        Registry("thing", "relnb.test_clash").names()
    dist_on_path(tmp_path, monkeypatch, "kit-bad", "[relnb.test_bad]\nz = kit_bad:missing\n", "x = 1\n")
    with pytest.raises(relnb.ConfigError) as err:
        Registry("thing", "relnb.test_bad").get("z")
    assert "kit-bad 1.0 (entry point relnb.test_bad:z) = kit_bad:missing failed to load: AttributeError" in str(err.value)
    assert "fix or uninstall kit-bad" in str(err.value)
    dist_on_path(tmp_path, monkeypatch, "kit-shape", "[relnb.test_shape]\nn = kit_shape:x\n", "x = 1\n")
    with pytest.raises(relnb.ConfigError, match="is a int, not callable"):
        Registry("thing", "relnb.test_shape", callable_shape).get("n")


def test_unknown_name_lists_what_exists() -> None:
    reg: Registry = Registry("queue kind", "relnb.test_none")
    reg.register("bullmq", object())
    with pytest.raises(relnb.UsageError, match=r"unknown queue kind 'kafka' — use one of: bullmq"):
        reg.get("kafka")


def _venv_with_relnb(home: Path) -> Path:
    """A fresh venv that sees this checkout's relnb and dependencies, where pip installs for real."""
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "relnb_dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return venv


@pytest.mark.slow
@pytest.mark.integration
def test_an_installed_plugin_package_answers_gates_and_shows_in_status(redis_url) -> None:
    home = Path(tempfile.mkdtemp(prefix="relnb-plugin-", dir="/tmp"))
    try:
        venv = _venv_with_relnb(home)
        py = str(venv / "bin" / "python")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELNB_", "VIRTUAL_ENV"))}
        env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", ACME_REDIS_URL=redis_url)
        pip = subprocess.run(
            [py, "-m", "pip", "install", "-q", "--no-deps", str(ACME)],
            capture_output=True, text=True, env=env, cwd=home,
        )
        assert pip.returncode == 0, pip.stderr
        project = home / "app"
        (project / "ops").mkdir(parents=True)
        (project / "ops" / "alerts.yml").write_text(
            "groups:\n  - name: app\n    rules:\n      - alert: HighErrorRate\n        expr: up == 0\n"
        )
        (project / "relnb.toml").write_text(textwrap.dedent("""
            [environments.staging]
            base_url = "http://127.0.0.1:9"
            redis_url_env = "ACME_REDIS_URL"
            [environments.staging.queue]
            kind = "sidekiq"
            names = ["default"]
            prefix = ""  # Sidekiq keys have no namespace unless configured
            check_interval = "3s"
            [environments.production]
            base_url = "http://127.0.0.1:9"
            [environments.production.observability]
            expected_alerts = ["HighErrorRate"]
        """))
        git = ["git", "-c", "user.name=T", "-c", "user.email=t@example.org"]
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
        subprocess.run([*git, "add", "-A"], cwd=project, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "app"], cwd=project, check=True)
        relnb_cli = [py, "-m", "relnb.cli"]
        assert subprocess.run([*relnb_cli, "new", "1.0.0"], cwd=project, env=env, capture_output=True).returncode == 0

        script = textwrap.dedent("""
            import json, os, threading, time
            import redis, relnb
            r = relnb.Release.open("1.0.0")
            out = {"C5": r.check("C5")}
            q = redis.Redis.from_url(os.environ["ACME_REDIS_URL"])
            q.sadd("queues", "default")
            for i in range(4):  # what Sidekiq's client writes, and a worker taking them
                q.lpush("queue:default", json.dumps({"jid": f"j{i}", "queue": "default", "enqueued_at": time.time()}))
            def work():
                for _ in range(4):
                    time.sleep(0.4)
                    q.rpop("queue:default")
                    q.incr("stat:processed")
            threading.Thread(target=work, daemon=True).start()
            out["B6"] = r.check("B6")
            out["B7"] = r.check("B7")
            print(json.dumps({g: [res.status.value, res.summary] for g, res in out.items()}))
        """)
        ran = subprocess.run([py, "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        got = json.loads(ran.stdout.strip().splitlines()[-1])
        assert got["C5"] == ["passed", "all 1 expected alerts defined in ops/alerts.yml"]
        assert got["B6"][0] == "passed", got["B6"]
        assert got["B7"][0] == "passed", got["B7"]

        status = subprocess.run([*relnb_cli, "status", "1.0.0"], cwd=project, env=env, capture_output=True, text=True)
        assert status.returncode == 0, status.stderr
        assert "plug-ins installed:" in status.stdout
        assert "relnb.checks: C5 = acme_relnb.alerts:alert_rules_in_repo (acme-relnb 0.1.0)" in status.stdout
        assert "relnb.queue_inspectors: sidekiq = acme_relnb.sidekiq:SidekiqInspector (acme-relnb 0.1.0)" in status.stdout
        assert "C5" in status.stdout and "all 1 expected alerts defined" in status.stdout

        # the same project without the package: C5 is relnb's own again (no Prometheus: not configured)
        subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", "acme-relnb"], env=env, check=True, capture_output=True)
        again = subprocess.run(
            [py, "-c", "import relnb; r = relnb.Release.open('1.0.0'); print(r.check('C5', rerun=True, reason='plug-in removed').summary)"],
            cwd=project, env=env, capture_output=True, text=True,
        )
        assert "not configured: environments.production.observability.prometheus_url" in again.stdout, again.stderr
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_plugins_guide_matches_the_package_and_its_check_works(tmp_path, monkeypatch) -> None:
    """docs/plugins.md: its entry points are the fixture package's, its queue config validates, and
    its C5 check, registered the way a notebook would, decides a real release's gate."""
    import re
    import tomllib

    doc = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```(toml|python)\n(.*?)```", doc, re.S)
    tomls = [b for kind, b in blocks if kind == "toml"]
    shown = tomllib.loads(tomls[0])["project"]["entry-points"]
    real = tomllib.loads((ACME / "pyproject.toml").read_text())["project"]["entry-points"]
    assert shown == real

    root = tmp_path / "app"
    (root / "ops").mkdir(parents=True)
    (root / "ops" / "alerts.yml").write_text("groups:\n  - name: app\n    rules:\n      - alert: HighErrorRate\n        expr: up == 0\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "init"], cwd=root, check=True)
    (root / "relnb.toml").write_text(
        tomls[1] + '\n[environments.production]\nbase_url = "https://acme.example"\n'
        '[environments.production.observability]\nexpected_alerts = ["HighErrorRate", "QueueBacklog"]\n'
    )
    monkeypatch.setenv("STAGING_REDIS_URL", "redis://127.0.0.1:6379/0")
    config = relnb.load_config(root / "relnb.toml")
    assert config.env("staging")["queue"]["kind"] == "sidekiq"

    (python,) = [b for kind, b in blocks if kind == "python"]
    (tmp_path / "guide_check.py").write_text(python)
    script = (
        "import guide_check, relnb\n"
        "relnb.register_check('C5', guide_check.alert_rules_in_repo)\n"
        "result = relnb.Release.create('1.0.0').check('C5')\n"
        "print(result.status.value, result.summary, sep='|')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    ran = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "failed|1 expected alert(s) not defined in ops/alerts.yml: QueueBacklog"


def test_metric_source_ledger_deploy_provider_and_backup_store_plugins_are_found(tmp_path) -> None:
    """The other registries read their entry point groups the same way (fresh process: entry
    points are read once per process)."""
    site = tmp_path / "site"
    (site / "kit_more-1.0.dist-info").mkdir(parents=True)
    (site / "kit_more-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: kit-more\nVersion: 1.0\n")
    (site / "kit_more-1.0.dist-info" / "entry_points.txt").write_text(
        "[relnb.metric_sources]\nsynthetic = kit_more:source\n[relnb.migration_ledgers]\nsqitch = kit_more:SQITCH\n"
        "[relnb.deploy_providers]\nnomad = kit_more:nomad\n[relnb.backup_stores]\nnas = kit_more:NasStore\n"
    )
    (site / "kit_more.py").write_text(textwrap.dedent("""
        from relnb.checks.migrations.ledger import LedgerKind, LedgerReport
        from relnb.metrics import FunctionSource
        def source(metrics):
            return FunctionSource({"error_rate": lambda t: 0.0}, name=f"synthetic {metrics['url']}")
        SQITCH = LedgerKind(read_disk=lambda d: [], compare=lambda conn, disk, apps: LedgerReport("sqitch", []))
        def nomad(ctx, target):
            return None
        class NasStore:
            def __init__(self, ctx, backups):
                pass
    """))
    script = textwrap.dedent("""
        from relnb.checks.migrations.ledger import LEDGERS
        from relnb.metrics.sources import METRIC_SOURCES
        from relnb.actions.backupstores import BACKUP_STORES
        from relnb.actions.deployers import DEPLOY_PROVIDERS
        src = METRIC_SOURCES.get("synthetic")({"url": "x", "urls": [], "token_env": None, "queries": {}})
        print(src.name, METRIC_SOURCES.origin("synthetic"), "sqitch" in LEDGERS.names())
        print(DEPLOY_PROVIDERS.origin("nomad"), BACKUP_STORES.names())
    """)
    ran = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "synthetic x kit-more 1.0 (entry point relnb.metric_sources:synthetic) True",
        "kit-more 1.0 (entry point relnb.deploy_providers:nomad) ['nas', 'rds', 's3']",
    ]
