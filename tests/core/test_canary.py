"""Secrets never appear in any output: journal, notebooks, JUnit, stdout, stderr, tracebacks."""

import base64
import os
import subprocess
import sys
from urllib.parse import quote, quote_plus

import pytest

import relnb
from relnb import Outcome, Release
from relnb.redact import REDACTOR

from .helpers import make_project

CANARY = "cAnArY-7f3e9b21-s3cr3t/+=value"
DB_CANARY = "pgPw-CANARY-41d8cd98"


def leaks(text: str) -> list[str]:
    forms = {
        "raw": CANARY,
        "url": quote(CANARY, safe=""),
        "url+": quote_plus(CANARY),
        "b64": base64.b64encode(CANARY.encode()).decode(),
        "b64-basic": base64.b64encode(f"user:{CANARY}".encode()).decode(),
        "db-raw": DB_CANARY,
    }
    return [name for name, form in forms.items() if form in text]


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    b64 = base64.b64encode(CANARY.encode()).decode()
    basic = base64.b64encode(f"user:{CANARY}".encode()).decode()
    (root / "relnb.toml").write_text(
        f"""
[gates]
manual = ["A2", "A6", "B1", "B4", "B9"]
[project]
migrations_kind = "none"
[ci]
command = "echo token=$OWNER_TOKEN; echo enc={quote(CANARY, safe='')} b64={b64} basic={basic}; echo url=postgres://app:$DB_PASSWORD@db/x >&2; exit 1"
[environments.staging]
base_url = "http://127.0.0.1:9"
database_url_env = "DB_PASSWORD"
[environments.staging.auth]
token_env = "OWNER_TOKEN"
[environments.staging.commands]
migrate = "python -c \\"import os; raise SystemExit('cannot connect with ' + os.environ['OWNER_TOKEN'])\\""
"""
    )
    monkeypatch.setenv("OWNER_TOKEN", CANARY)
    monkeypatch.setenv("DB_PASSWORD", DB_CANARY)
    yield root
    REDACTOR.forget_all()


def test_canary_never_leaks(project, monkeypatch):
    env = {**os.environ, "RELNB_USER": "Lead <l@example.org>"}
    env.pop("RELNB_ROOT", None)
    new = subprocess.run([sys.executable, "-m", "relnb.cli", "new", "1.0.0"], cwd=project, env=env, capture_output=True, text=True)
    assert new.returncode == 0, new.stderr
    nb = project / "notebooks" / "release-1.0.0.py"
    run = subprocess.run(
        [sys.executable, "-m", "relnb.cli", "run", str(nb), "--junit", "junit.xml", "--confirm", "B2",
         "--sign-off", f"B1=Lead <l@example.org>:token is {CANARY}"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "A1   FAILED" in run.stdout and "[redacted:OWNER_TOKEN]" in run.stdout

    # in-process: a failing check, a raised exception with a traceback, evidence, an incident
    monkeypatch.chdir(project)
    monkeypatch.setenv("RELNB_ROOT", str(project))
    r = Release.open("1.0.0")
    secret = r.config.secret("OWNER_TOKEN", key="environments.staging.auth.token_env")
    assert repr(secret) == "Secret(OWNER_TOKEN)" and CANARY not in f"{secret}"

    def boom():
        raise RuntimeError(f"auth failed for https://x:{CANARY}@api/ with Authorization: Bearer {CANARY}")

    res = r.run("A6", boom)
    assert res.status is relnb.Status.FAILED
    r.run("A2", lambda: Outcome.failed(f"bad {quote_plus(CANARY)}", body={"token": CANARY, CANARY: 1}))
    r.incident(f"saw {CANARY}", evidence={"header": f"Bearer {CANARY}"})
    r.note(base64.b64encode(CANARY.encode()).decode())
    table = repr(r.status()) + r.status()._repr_html_() + res._repr_html_() + repr(res)
    r.close()

    outputs = {"stdout": run.stdout + new.stdout, "stderr": run.stderr + new.stderr, "render": table}
    for path in list((project / "releases").rglob("*")) + list((project / "notebooks").rglob("*")) + [project / "junit.xml"]:
        if path.is_file():
            outputs[str(path)] = path.read_text(errors="replace")
    found = {name: leaks(text) for name, text in outputs.items() if leaks(text)}
    assert not found, found
    assert "[redacted:" in outputs[str(project / "releases" / "1.0.0" / "journal.jsonl")]
