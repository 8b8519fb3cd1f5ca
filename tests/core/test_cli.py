"""The CLI end to end: new → run (twice) → status → verify, exit codes, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import make_project

RELNB = [sys.executable, "-m", "relnb.cli"]

CONFIG = """
[project]
name = "demo"
migrations_kind = "none"
[gates]
manual = ["A2", "A3", "A4", "A6", "B1", "B4", "B5", "B6", "B7", "B8", "B9", "C1", "C2", "C3", "C4", "C5", "D5", "D7", "E1", "E2", "E3", "F2"]
[ci]
command = "echo '3 passed'"
[environments.staging]
base_url = "http://127.0.0.1:9"
version_timeout = "3s"
[environments.staging.commands]
migrate = "echo migrated-staging >> {log}"
[environments.production]
base_url = "http://127.0.0.1:9"
version_timeout = "3s"
[environments.production.commands]
deploy = "echo deployed >> {log}"
snapshot = "echo snapshot >> {log}"
migrate = "echo migrated-production >> {log}"
"""


def relnb(*args, cwd, env=None, check=False):
    e = {**os.environ, "RELNB_USER": "Lead <lead@example.org>", **(env or {})}
    e.pop("RELNB_ROOT", None)
    proc = subprocess.run([*RELNB, *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def project(tmp_path):
    root = make_project(tmp_path / "proj")
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log"))
    return root


def test_new_run_twice_status_verify(project):
    out = relnb("new", "1.4.0", cwd=project, check=True)
    nb = project / "notebooks" / "release-1.4.0.py"
    assert nb.exists() and "marimo edit" in out.stdout
    journal = project / "releases" / "1.4.0" / "journal.jsonl"
    created = json.loads(journal.read_text().splitlines()[0])
    assert created["type"] == "release-created" and len(created["payload"]["template_sha256"]) == 64
    assert created["payload"]["git_sha"]

    junit = project / "out" / "junit.xml"
    b1 = ["--sign-off", "B1=Lead <lead@example.org>:staging shows main"]
    first = relnb("run", str(nb), "--junit", str(junit), "--confirm", "B2", *b1, cwd=project)
    assert first.returncode in (1, 2), first.stdout + first.stderr
    assert "A1   PASSED" in first.stdout
    second = relnb("run", str(nb), "--confirm", "B2", cwd=project)
    assert second.returncode == first.returncode
    log = (project / "actions.log").read_text().splitlines()
    assert log.count("migrated-staging") == 1
    started = [json.loads(ln) for ln in journal.read_text().splitlines()]
    b2 = [e for e in started if e["type"] == "action-started" and e["payload"].get("action") == "B2"]
    assert len(b2) == 1 and b2[0]["payload"]["confirmed_by"]["email"] == "lead@example.org"

    xml = junit.read_text()
    assert xml.count("<testcase") == 33
    assert 'name="A1 All CI checks green' in xml

    status = relnb("status", "1.4.0", cwd=project, check=True)
    assert "A1  PASS" in status.stdout
    assert relnb("verify", "1.4.0", cwd=project).returncode == 0
    assert relnb("verify", "--all", cwd=project).returncode == 0
    lst = relnb("list", cwd=project, check=True)
    assert "1.4.0" in lst.stdout


def test_actions_run_exactly_once_across_headless_runs(project):
    """With A–C settled by sign-offs and skips, D4 deploys once however often the notebook runs."""
    relnb("new", "2.0.0", cwd=project, check=True)
    nb = project / "notebooks" / "release-2.0.0.py"
    from relnb import GATES, Kind

    args = []
    for g in GATES:
        if g.section in "ABC" and not g.optional and g.id not in ("A1", "B2"):
            args += ["--sign-off", f"{g.id}=Reviewer <r@example.org>:checked by hand"]
    for _ in range(2):
        relnb("run", str(nb), *args, "--confirm", "B2,D", "--skip", "D1=no risky migration", "--skip", "D6=no tokens", "--skip", "B3=no images", cwd=project)
    log = (project / "actions.log").read_text().splitlines()
    assert log.count("migrated-staging") == 1
    for line in ("snapshot", "migrated-production", "deployed"):
        assert log.count(line) == 1, log
    assert Kind.ACTION  # the registry drives which gates are actions


@pytest.mark.parametrize(
    "setup, args, needle",
    [
        ("bad-toml", ["status", "1.0.0"], "not valid TOML"),
        ("unknown-key", ["status", "1.0.0"], "unknown key"),
        ("ok", ["run", "notebooks/nope.py"], "does not exist"),
        ("ok", ["status", "9.9.9"], "no release '9.9.9'"),
        ("ok", ["run", "NB", "--sign-off", "Z9=a:b"], "unknown gate ID 'Z9'"),
        ("secret", ["run", "NB"], "MISSING_TOKEN_VAR"),
    ],
)
def test_bad_input_exits_3_with_one_line_and_journal_untouched(project, setup, args, needle):
    relnb("new", "1.0.0", cwd=project, check=True)
    journal = project / "releases" / "1.0.0" / "journal.jsonl"
    before = journal.read_bytes()
    cfg = project / "relnb.toml"
    if setup == "bad-toml":
        cfg.write_text("[project\nname=")
    elif setup == "unknown-key":
        cfg.write_text('[project]\nnmae = "x"\n')
    elif setup == "secret":
        cfg.write_text(cfg.read_text() + '[environments.production.auth]\ntoken_env = "MISSING_TOKEN_VAR"\n')
    args = [a.replace("NB", str(project / "notebooks" / "release-1.0.0.py")) for a in args]
    proc = relnb(*args, cwd=project)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert journal.read_bytes() == before


def test_ipynb_format_runs_headless(project):
    relnb("new", "3.0.0", "--format", "ipynb", cwd=project, check=True)
    nb = project / "notebooks" / "release-3.0.0.ipynb"
    proc = relnb("run", str(nb), cwd=project)
    assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert "A1   PASSED" in proc.stdout


def test_reexecuting_cells_in_one_kernel_runs_actions_once(project, monkeypatch):
    """marimo's app.run() twice in one process: the same kernel re-executing every cell."""
    relnb("new", "4.0.0", cwd=project, check=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("RELNB_ROOT", str(project))
    monkeypatch.setenv("RELNB_HEADLESS", "1")
    monkeypatch.setenv("RELNB_CONFIRM", "B2")
    import importlib.util

    monkeypatch.setenv("RELNB_SKIPS", "{}")
    so = project / "so.json"
    # a sign-off names a reachable person (issue 19 item 7): a bare "Lead" would leave B1 pending
    so.write_text('{"B1": {"by": "Lead <lead@example.org>", "note": "main on staging"}}')
    monkeypatch.setenv("RELNB_SIGNOFFS", str(so))
    spec = importlib.util.spec_from_file_location("nb4", project / "notebooks" / "release-4.0.0.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.app.run()
    mod.app.run()
    log = (project / "actions.log").read_text().splitlines()
    assert log.count("migrated-staging") == 1
    from relnb.journal import JournalWriter

    JournalWriter.open(project / "releases" / "4.0.0").close()


def test_import_is_light():
    code = "import sys, relnb; print(sorted(m for m in ('pandas','altair','boto3','psycopg','marimo','httpx','redis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # nor relnb's own leaves: signing, archive, checks and metrics load when a release uses them
    leaves = ("relnb.signing", "relnb.archive", "relnb.checks", "relnb.metrics")
    code = f"import sys, relnb; print(sorted(m for m in sys.modules if m.startswith({leaves!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    code = "import sys, relnb.signing; print('relnb.signing.keys' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "True"


def test_public_api_is_sorted_and_complete():
    import relnb as pkg

    assert pkg.__all__ == sorted(pkg.__all__, key=lambda s: (not s.isupper(), s))
    for name in pkg.__all__:
        assert hasattr(pkg, name), name
    assert Path(pkg.__file__).name == "__init__.py"
