"""issue 21: the Jupyter release notebook needs plain `relnb` only (no marimo), and asks a person
only for what can happen now: a typed `yes` for an action the promotion guard would let run, a
sign-off note for every gate settled by hand (sign-off gates and the project's hand-checked ones).
"""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import make_project
from .test_cli import CONFIG, relnb

LEAD = "Lead <lead@example.org>"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "proj")
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log"))
    return root


def _code_cells(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    return [c["source"] if isinstance(c["source"], str) else "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _no_marimo_env(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import marimo` fails in every Python process (the kernel too)."""
    block = tmp_path / "no-marimo"
    block.mkdir()
    (block / "sitecustomize.py").write_text("import sys\nsys.modules['marimo'] = None  # import marimo -> ImportError\n")
    path = os.pathsep.join(p for p in (str(block), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def test_generated_ipynb_uses_no_marimo(project):
    relnb("new", "3.1.0", "--format", "ipynb", cwd=project, check=True)
    code = "\n".join(_code_cells(project / "notebooks" / "release-3.1.0.ipynb"))
    assert "marimo" not in code
    assert "mo." not in code.replace("relnb.", "")  # no marimo helper (mo.md, mo.vstack, mo.ui)


def test_ipynb_runs_headless_where_marimo_cannot_be_imported(project, tmp_path):
    env = _no_marimo_env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import marimo"], env={**os.environ, **env}, capture_output=True, text=True)
    assert probe.returncode != 0, "the marimo blocker did not take effect"
    relnb("new", "3.2.0", "--format", "ipynb", cwd=project, check=True, env=env)
    nb = project / "notebooks" / "release-3.2.0.ipynb"
    proc = relnb("run", str(nb), "--confirm", "B2", "--sign-off", f"B1={LEAD}:staging shows main", cwd=project, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode in (1, 2), out  # pending gates remain: not a crash (which would be 3+)
    assert "A1   PASSED" in proc.stdout, out
    assert "marimo" not in out.lower(), out
    assert "migrated-staging" in (project / "actions.log").read_text()  # the confirmed action ran
    # the notebook ran to its last cell (the status table and archive cell), not stopped mid-way
    assert "Traceback" not in out, out


class Person:
    """Answers the notebook's prompts as a release lead at the keyboard would, and remembers them."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.prompts: list[str] = []

    def __call__(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        for key, answer in self.answers.items():
            if key in prompt:
                return answer
        return ""

    def asked(self, start: str) -> list[str]:
        """The gate IDs of the prompts that begin with `start` ("Run" or "Sign off")."""
        import re

        out = []
        for p in self.prompts:
            m = re.search(rf"(?:^|\n){start} ([A-F][0-9])\b", p)
            if m:
                out.append(m.group(1))
        return out


def _run_cells(nb: Path, person: Person, monkeypatch) -> dict[str, object]:
    """Execute the notebook's code cells in order in one namespace, as Jupyter's Run all does."""
    monkeypatch.setattr(builtins, "input", person)
    ns: dict[str, object] = {}
    for code in _code_cells(nb):
        exec(compile(code, str(nb), "exec"), ns)
    release = ns["release"]
    release.close()  # type: ignore[attr-defined]
    return ns


def _events(project: Path, rid: str) -> list[dict]:
    path = project / "releases" / rid / "journal.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()]


@pytest.fixture
def serving(project: Path):
    """Both environments answer /version with the project's HEAD, so the deploy step can verify."""
    import http.server
    import threading

    from .helpers import git

    sha = git(project, "rev-parse", "HEAD")

    class Version(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"sha": sha}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Version)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = project / "relnb.toml"
    cfg.write_text(cfg.read_text().replace("http://127.0.0.1:9", f"http://127.0.0.1:{server.server_port}"))
    yield project
    server.shutdown()


def test_jupyter_prompts_only_for_what_can_run_now_and_for_every_hand_checked_gate(serving, monkeypatch):
    project = serving
    relnb("new", "3.3.0", "--format", "ipynb", cwd=project, check=True)
    nb = project / "notebooks" / "release-3.3.0.ipynb"
    monkeypatch.chdir(project)
    monkeypatch.setenv("RELNB_ROOT", str(project))
    monkeypatch.setenv("RELNB_USER", LEAD)
    monkeypatch.delenv("RELNB_HEADLESS", raising=False)
    monkeypatch.setitem(sys.modules, "marimo", None)  # the kernel has no marimo

    # Run all, answering nothing: nothing is confirmed, nothing signed
    idle = Person({})
    _run_cells(nb, idle, monkeypatch)
    manual = ["A2", "A3", "A4", "A6", "B1"]  # sign-off gates and [gates] manual checks ready now
    for gid in manual:
        assert gid in idle.asked("Sign off"), (gid, idle.prompts)
    assert "A1" not in idle.asked("Sign off")  # an automatic check that passed asks nothing
    # production steps are refused while A–C are open: no "type yes" for them; nor for B2,
    # which waits for B1
    run_prompts = idle.asked("Run")
    assert not [g for g in run_prompts if g[0] in "DF" or g == "B2"], idle.prompts
    assert not [e for e in _events(project, "3.3.0") if e["type"] == "action-started"]
    assert not any("Seal release" in p or "Roll back" in p for p in idle.prompts), idle.prompts

    # Run all again, signing off what is asked and confirming every action offered
    lead = Person({"Sign off": "checked by hand", "Run D1": "skip: no safe mode needed", "Run B3": "skip: no images",
                   "Run D6": "skip: no tokens", "Run": "yes", "Roll back": "", "Seal release": "yes"})
    for _ in range(3):  # each pass settles what the previous one unblocked, as re-running cells does
        _run_cells(nb, lead, monkeypatch)
    events = _events(project, "3.3.0")
    started = [e["payload"]["gate"] for e in events if e["type"] == "action-started"]
    # every action the person was asked to run, and said yes to, did run: no yes was wasted
    for gid in set(lead.asked("Run")) - {"B3", "D1", "D6"}:
        assert gid in started, (gid, started)
    signed = {e["payload"]["gate"] for e in events if e["type"] == "sign-off"}
    assert {"A3", "B1", "D5", "D7", "F2"} <= signed, signed
    assert all(e["payload"]["by"]["email"] == "lead@example.org" for e in events if e["type"] == "sign-off")
    skipped = {e["payload"]["gate"] for e in events if e["type"] == "skip"}
    assert {"B3", "D1", "D6"} <= skipped
    log = (project / "actions.log").read_text().splitlines()
    assert log.count("deployed") == 1 and log.count("migrated-staging") == 1
    assert events[-1]["type"] == "sealed", [e["type"] for e in events[-5:]]
