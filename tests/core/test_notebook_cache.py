"""The marimo session cache relnb writes for a release notebook's header (relnb/notebook_cache.py).

What marimo shows on open is read back here with marimo's own reader (SessionCacheManager, the
code `marimo edit` runs when auto_instantiate is off), so a marimo that matches its cache
differently fails these tests instead of leaving the header silently blank.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import relnb
from relnb import notebook_cache

from .helpers import make_project
from .test_cli import CONFIG

LEAD = "Lead <lead@example.org>"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELNB_USER": LEAD}
    env.pop("RELNB_ROOT", None)
    return subprocess.run([sys.executable, "-m", "relnb.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def marimo_reads(nb: Path) -> dict[str, tuple[str, str]]:
    """{cell code: (mimetype, data)} of the outputs `marimo edit` would show on opening `nb`."""
    import marimo
    from marimo._session.notebook import load_notebook
    from marimo._session.state.serialize import SessionCacheKey, SessionCacheManager
    from marimo._session.state.session_view import SessionView
    from marimo._utils.inline_script_metadata import script_metadata_hash_from_filename

    manager = load_notebook(nb).app.cell_manager
    code = {cid: c.code for cid, c in zip(manager.cell_ids(), manager.cell_data(), strict=True)}
    key = SessionCacheKey(
        codes=tuple(code.values()),
        marimo_version=marimo.__version__,
        cell_ids=tuple(code),
        script_metadata_hash=script_metadata_hash_from_filename(str(nb)),
    )
    cache = SessionCacheManager(session_view=SessionView(), document=None, path=str(nb), interval=1)  # type: ignore[arg-type]
    view = cache.read_session_view(key)
    return {code[cid]: (n.output.mimetype, n.output.data) for cid, n in view.cell_notifications.items() if n.output}


def bold_line(html: str) -> str:
    found = re.search(r"<strong>(.*?)</strong>", html)
    assert found, html[:300]
    return found.group(1)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj", '[project]\nname = "demo"\n')


def test_relnb_new_writes_the_header_marimo_shows_on_open(project: Path) -> None:
    out = cli("new", "1.0.0", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    nb = project / "notebooks" / "release-1.0.0.py"
    file = project / "notebooks" / "__marimo__" / "session" / "release-1.0.0.py.json"
    assert notebook_cache.cache_file(nb) == file
    data = json.loads(file.read_text())
    import marimo

    assert data["version"] == "1"
    assert data["metadata"] == {"marimo_version": marimo.__version__, "script_metadata_hash": None}
    with_output = [c for c in data["cells"] if c["outputs"]]
    assert len(with_output) == 1 and len(data["cells"]) > 60  # every cell listed, one output
    assert all(c["code_hash"] for c in data["cells"])

    shown = marimo_reads(nb)
    assert list(shown) == ["relnb.ui.summary(release, header_tick)"]  # the header cell, and only it
    mime, html = shown["relnb.ui.summary(release, header_tick)"]
    assert mime == "text/html"
    assert bold_line(html) == "Release 1.0.0: pending — 33 pending"
    assert html.count('data-status="pending"') == 33


def test_the_header_is_relnb_ui_summary_and_follows_the_journal(project: Path) -> None:
    assert cli("new", "1.0.0", cwd=project).returncode == 0
    nb = project / "notebooks" / "release-1.0.0.py"
    release = relnb.Release.open("1.0.0", root=project)
    try:
        release.run("A1", lambda: relnb.Outcome.passed("CI green"))
        release.run("A2", lambda: relnb.Outcome.failed("no OpenAPI diff"))
        release.skip("B3", reason="no images", by=LEAD)
        config = release.config
        line = str(relnb.ui.summary(release))  # the header cell's words, from relnb.ui itself
    finally:
        release.close()
    assert line == "Release 1.0.0: failed — 1 passed, 1 skipped, 1 failed, 30 pending"
    stale = marimo_reads(nb)["relnb.ui.summary(release, header_tick)"][1]
    assert bold_line(stale) != line  # the journal moved on; nothing refreshed yet

    assert relnb.refresh_header_cache("1.0.0", config=config) == notebook_cache.cache_file(nb)
    html = marimo_reads(nb)["relnb.ui.summary(release, header_tick)"][1]
    assert bold_line(html) == line
    assert 'data-gate="A2" data-status="failed"' in html and 'data-gate="B3" data-status="skipped"' in html


def test_other_cells_cached_outputs_are_kept_and_a_stale_cache_is_replaced(project: Path) -> None:
    assert cli("new", "1.0.0", cwd=project).returncode == 0
    nb = project / "notebooks" / "release-1.0.0.py"
    file = notebook_cache.cache_file(nb)
    data = json.loads(file.read_text())
    # a person's last session left an output on the release cell
    data["cells"][2]["outputs"] = [{"type": "data", "data": {"text/plain": "kept"}}]
    file.write_text(json.dumps(data))
    config = relnb.load_config(start=project)
    notebook_cache.refresh_header_cache("1.0.0", config=config)
    shown = marimo_reads(nb)
    assert shown['release = relnb.Release.open("1.0.0")'] == ("text/plain", "kept")
    assert "relnb.ui.summary(release, header_tick)" in shown

    # the notebook was edited since: the old outputs belong to other code, so only the header stays
    nb.write_text(nb.read_text().replace('release = relnb.Release.open("1.0.0")', 'release = relnb.Release.open("1.0.0")  # ours'))
    notebook_cache.refresh_header_cache("1.0.0", config=config)
    shown = marimo_reads(nb)
    assert list(shown) == ["relnb.ui.summary(release, header_tick)"]


def test_headless_run_and_seal_refresh_the_header(project: Path) -> None:
    (project / "relnb.toml").write_text(CONFIG.format(log=project / "actions.log"))
    assert cli("new", "1.0.0", cwd=project).returncode == 0
    nb = project / "notebooks" / "release-1.0.0.py"
    run = cli("run", str(nb), "--sign-off", f"A2={LEAD}:documented", cwd=project)
    assert run.returncode == 2, run.stdout + run.stderr
    line = bold_line(marimo_reads(nb)["relnb.ui.summary(release, header_tick)"][1])
    assert line.startswith("Release 1.0.0: pending — 2 passed, ") and "pending" in line.rsplit(", ", 1)[1]

    abandon = cli("abandon", "1.0.0", "--reason", "superseded by 1.0.1", "--by", LEAD, cwd=project)
    assert abandon.returncode == 0, abandon.stdout + abandon.stderr
    line = bold_line(marimo_reads(nb)["relnb.ui.summary(release, header_tick)"][1])
    assert " · sealed — " in line, line


def test_no_marimo_notebook_no_marimo_installed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("new", "1.0.0", "--format", "ipynb", cwd=project).returncode == 0
    config = relnb.load_config(start=project)
    assert notebook_cache.refresh_header_cache("1.0.0", config=config) is None  # Jupyter keeps its own
    assert not list(project.rglob("__marimo__"))

    assert cli("new", "2.0.0", cwd=project).returncode == 0
    (project / "notebooks" / "__marimo__" / "session" / "release-2.0.0.py.json").unlink()
    notes: list[str] = []
    monkeypatch.setattr(notebook_cache, "find_spec", lambda name: None if name == "marimo" else Any)
    assert notebook_cache.refresh_header_cache("2.0.0", config=config, note=notes.append) is None
    assert len(notes) == 1 and "marimo is not installed" in notes[0]
    assert not (project / "notebooks" / "__marimo__" / "session" / "release-2.0.0.py.json").exists()


def test_import_relnb_does_not_import_marimo() -> None:
    code = "import sys, relnb; relnb.refresh_header_cache; print('marimo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


MINI = '''import marimo

app = marimo.App()


@app.cell
def _():
    import relnb
    return (relnb,)


@app.cell
def _(relnb):
    release = relnb.Release.open("1.0.0")
    return (release,)


@app.cell
def _(release, relnb):
    relnb.ui.summary(release, None)
    return


if __name__ == "__main__":
    app.run()
'''


def test_the_cached_header_is_what_the_header_cell_renders_in_a_kernel(project: Path) -> None:
    """`marimo export session` runs relnb.ui.summary in a real kernel: its output is the cache's."""
    assert cli("new", "1.0.0", cwd=project).returncode == 0
    release = relnb.Release.open("1.0.0", root=project)
    try:
        release.run("A1", lambda: relnb.Outcome.passed("CI green"))
    finally:
        release.close()
    mini = project / "mini.py"
    mini.write_text(MINI)
    env = {**os.environ, "HOME": str(project / "home"), "MARIMO_SKIP_UPDATE_CHECK": "1"}
    out = subprocess.run([sys.executable, "-m", "marimo", "export", "session", str(mini)],
                         cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    kernel = json.loads(notebook_cache.cache_file(mini).read_text())["cells"][2]["outputs"][0]["data"]
    state = relnb.read_state("1.0.0", root=project)
    assert kernel == {"text/html": notebook_cache.header_html("1.0.0", state)}
    assert "1 passed, 32 pending" in kernel["text/html"]
