"""The import graph of relnb/ read from the code itself: no cycle, and no arrow pointing up.

Every import statement counts, at module level or inside a function (a lazy import is still a
dependency); only imports a type checker alone sees (`if TYPE_CHECKING:`) are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "relnb"

# Top first. A module may import modules of its own layer and of the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("relnb.cli", "relnb.demo"),
    ("relnb",),  # the public API (relnb/__init__.py)
    ("relnb.headless", "relnb.ui", "relnb._ipynb_runner"),
    ("relnb.archive",),
    (
        "relnb.release",
        "relnb.sidebyside",
        "relnb.runcontext",
        "relnb.steps",
        "relnb.promotion",
        "relnb.decisions",
        "relnb.effects",
        "relnb.providers",
        "relnb.state",
        "relnb.checklist",
        "relnb.watch",
        "relnb.template",
        "relnb.notebook_cache",
        "relnb.junit",
    ),
    # gatecontext: what a gate's provider gets; the providers sit next to their checks
    ("relnb.checks", "relnb.actions", "relnb.metrics", "relnb.signing", "relnb.gatecontext"),
    (
        "relnb.errors",
        "relnb.redact",
        "relnb.results",
        "relnb.config",
        "relnb.configschema",
        "relnb.envfile",
        "relnb.journal",
        "relnb.identity",
        "relnb.gates",
        "relnb.git",
        "relnb.plugins",
        "relnb.eventtext",
        "relnb.pyast",
        "relnb.tls",
        "relnb._version",
    ),
)


def modules(package: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in package.rglob("*.py"):
        parts = list(f.relative_to(package.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def layer_of(module: str) -> int:
    for i, names in enumerate(LAYERS):
        for n in names:  # "relnb" names the package's own __init__ only
            if module == n or (n != "relnb" and module.startswith(n + ".")):
                return i
    raise AssertionError(f"{module} is in no layer of tests/core/test_layers.py: place it")


def test_every_module_has_a_layer():
    for module in modules():
        layer_of(module)


def test_no_arrow_points_up():
    up = [
        f"{m} -> {d}"
        for m, deps in import_graph().items()
        for d in deps
        if layer_of(d) < layer_of(m)
    ]
    assert up == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return [*stack[stack.index(d):], d]
            if d not in state and (cycle := visit(d)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_cycles_and_upward_arrows(tmp_path):
    """The graph reader is real: a planted upward import and a lazy one are seen, a
    TYPE_CHECKING-only import is not."""
    fake = tmp_path / "relnb"
    (fake / "checks").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "cli.py").write_text("")
    (fake / "errors.py").write_text("from .release import Release\n")
    (fake / "release.py").write_text("def f():\n    from .errors import RelnbError\n")
    (fake / "checks" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli import x\n"
    )
    graph = import_graph(fake)
    assert graph["relnb.errors"] == {"relnb.release"}  # up: core -> release
    assert graph["relnb.release"] == {"relnb.errors"}  # and back: a cycle
    assert graph["relnb.checks"] == set()
    assert layer_of("relnb.release") < layer_of("relnb.errors")
    assert find_cycle(graph) == ["relnb.errors", "relnb.release", "relnb.errors"]


def test_no_module_imports_a_private_name_of_another():
    found = []
    for name, (path, _) in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                found += [
                    f"{name}: from {'.' * node.level}{node.module or ''} import {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert found == []


def test_only_the_cli_and_its_alias_import_the_demo():
    """relnb_demo is a separate package (the `demo` extra): the library never depends on it."""
    users = []
    for name, (path, _) in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            )
            if any(t == "relnb_demo" or t.startswith("relnb_demo.") for t in targets):
                users.append(name)
    assert sorted(set(users)) == ["relnb.cli", "relnb.demo"]
