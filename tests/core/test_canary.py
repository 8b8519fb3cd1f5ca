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
# a secret a person typed (letters and digits only): scrubbed as a whole token, so a name that merely
# contains it stays intact; this proves that matching opens no leak (issue 19 item 16)
WORD_CANARY = "CanaryWord2718"

# the word canary where command output carries it: alone, in URLs, escaped, coloured, glued, encoded
WORDS_SH = r"""echo "$MEMBER_TOKEN"
echo "member=$MEMBER_TOKEN"
echo "https://m:$MEMBER_TOKEN@api.test/x?t=$MEMBER_TOKEN&p=1"
printf '%s\n' "escaped: a\\n$MEMBER_TOKEN"
printf '\033[1m%s\033[0m\n' "$MEMBER_TOKEN"
echo "+ mysql -u root -p$MEMBER_TOKEN app"
printf '%s' "$MEMBER_TOKEN" | base64
printf '%s' "user:$MEMBER_TOKEN" | base64
"""


def leaks(text: str) -> list[str]:
    forms = {
        "raw": CANARY,
        "url": quote(CANARY, safe=""),
        "url+": quote_plus(CANARY),
        "b64": base64.b64encode(CANARY.encode()).decode(),
        "b64-basic": base64.b64encode(f"user:{CANARY}".encode()).decode(),
        "db-raw": DB_CANARY,
        "word-raw": WORD_CANARY,
        "word-b64": base64.b64encode(WORD_CANARY.encode()).decode().rstrip("="),
        "word-b64-basic": base64.b64encode(f"user:{WORD_CANARY}".encode()).decode().rstrip("="),
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
command = "echo token=$OWNER_TOKEN; echo enc={quote(CANARY, safe='')} b64={b64} basic={basic}; echo url=postgres://app:$DB_PASSWORD@db/x >&2; sh words.sh; exit 1"
[environments.staging]
base_url = "http://127.0.0.1:9"
database_url_env = "DB_PASSWORD"
[environments.staging.auth]
token_env = "OWNER_TOKEN"
member_token_env = "MEMBER_TOKEN"
[environments.production]
base_url = "http://127.0.0.1:9"
[environments.staging.commands]
migrate = "python -c \\"import os; raise SystemExit('cannot connect with ' + os.environ['OWNER_TOKEN'])\\""
"""
    )
    monkeypatch.setenv("OWNER_TOKEN", CANARY)
    monkeypatch.setenv("DB_PASSWORD", DB_CANARY)
    monkeypatch.setenv("MEMBER_TOKEN", WORD_CANARY)
    (root / "words.sh").write_text(WORDS_SH)
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

    res = r.run("C5", boom)
    assert res.status is relnb.Status.FAILED
    word = {"alone": WORD_CANARY, "escaped": repr(f"a\n{WORD_CANARY}"), "url": f"https://u:{WORD_CANARY}@h/"}
    r.run("E1", lambda: Outcome.failed(f"bad {quote_plus(CANARY)}", body={"token": CANARY, CANARY: 1}, word=word))
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
    journal = outputs[str(project / "releases" / "1.0.0" / "journal.jsonl")]
    assert "[redacted:" in journal
    # the word canary's disguises reached the journal, each one scrubbed
    for form in ("member=[redacted:MEMBER_TOKEN]", "https://m:[redacted:MEMBER_TOKEN]@api.test/x?t=[redacted:MEMBER_TOKEN]&p=1",
                 "a\\\\n[redacted:MEMBER_TOKEN]", "[1m[redacted:MEMBER_TOKEN]", "-p[redacted:MEMBER_TOKEN] app",
                 "'https://u:[redacted:MEMBER_TOKEN]@h/'"):
        assert form in journal or form.replace("'", '"') in journal, form
