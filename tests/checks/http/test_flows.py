"""B5/D5 with flows the app's team owns: declarative (TOML, YAML, inline) and Python flow files,
run through the real gate against a real server whose API looks nothing like docflow's."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

import relnb
from relnb import Status
from relnb.checks.http.flowfile import parse_path, read_flow_file
from relnb.checks.http.flows import ENTRY_POINT_GROUP, catalogue, smoke_outcome

from ...core.helpers import all_green, make_project
from .inventory_app import Knobs, inventory_app

DATA = Path(__file__).resolve().parents[2] / "data" / "inventory"
TOKEN = "inv-canary-token-7f3a9c1e5b"


@pytest.fixture
def inventory(serve, monkeypatch):
    knobs = Knobs()
    url = serve(inventory_app(TOKEN, knobs))
    monkeypatch.setenv("INVENTORY_TOKEN", TOKEN)
    return url, knobs


def project(tmp_path: Path, url: str, smoke: str) -> Path:
    root = make_project(tmp_path / "app")
    for f in ("relnb-flows.toml", "relnb-flows.yaml"):
        shutil.copy(DATA / f, root / f)
    shutil.copytree(DATA / "smoke", root / "smoke")
    env = f"""
    base_url = "{url}"
    version_path = ""
    [auth]
    token_env = "INVENTORY_TOKEN"
    scheme = "Token"
    """
    (root / "relnb.toml").write_text(
        textwrap.dedent(smoke)
        + "\n[environments.staging]"
        + textwrap.dedent(env).replace("[auth]", "[environments.staging.auth]")
        + "\n[environments.production]"
        + textwrap.dedent(env).replace("[auth]", "[environments.production.auth]")
    )
    return root


def gate(root: Path, gate_id: str = "B5") -> relnb.GateResult:
    r = relnb.Release.create("1.0.0", root=root)
    if gate_id.startswith("D"):  # production smoke runs after a green A–C and the deploy
        all_green(r)
        r.skip("D1", reason="no safe mode in this app")
        for action in ("D2", "D3", "D4"):
            r.action(action, lambda: relnb.Outcome.passed("done"), confirmed=True)
    try:
        return r.check(gate_id)
    finally:
        r.close()


def no_canary(result: relnb.GateResult) -> None:
    text = json.dumps(result.evidence, default=str) + result.summary
    assert TOKEN not in text and TOKEN[:12] not in text


SOURCES = {
    "toml": '[smoke]\nfiles = ["relnb-flows.toml"]\n',
    "yaml": '[smoke]\nfiles = ["relnb-flows.yaml"]\n',
    "python": '[smoke]\npython = ["smoke/flows.py"]\n',
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_b5_passes_with_the_apps_own_flows(tmp_path, inventory, source) -> None:
    url, _ = inventory
    result = gate(project(tmp_path, url, SOURCES[source]))
    assert result.status is Status.PASSED, result.summary
    flows = {f["flow"]: f for f in result.evidence["flows"]}
    assert set(flows) == {"status", "item_lifecycle"}
    assert set(result.evidence["flow_sources"].values()) == {SOURCES[source].split('"')[1]}
    steps = flows["item_lifecycle"]["steps"]
    assert "create an item" in [s["step"] for s in steps]
    poll = next(s for s in steps if s["step"] == "the worker makes it ready")
    assert poll["status"] == 200 and poll["polls"] >= 2 and '"ready"' in poll["last"]
    assert all({"method", "path", "status", "ms"} <= set(s) for s in steps)
    no_canary(result)


def test_inline_flows_and_selection_per_environment(tmp_path, inventory) -> None:
    url, _ = inventory
    smoke = """
    [smoke]
    files = ["relnb-flows.toml"]
    staging = ["item_lifecycle", "status"]
    production = ["version"]
    [smoke.flows.version]
    steps = [{ path = "/api/status/", as = "anonymous", require = { "$['netbox-version']" = "4.1.2" } }]
    """
    root = project(tmp_path, url, smoke)
    staged = gate(root)
    assert staged.status is Status.PASSED, staged.summary
    assert [f["flow"] for f in staged.evidence["flows"]] == ["item_lifecycle", "status"]
    out = smoke_outcome(relnb.load_config(root / "relnb.toml"), "production", None, None)
    assert out.status is Status.PASSED, out.summary
    assert [f["flow"] for f in out.evidence["flows"]] == ["version"]
    assert out.evidence["flow_sources"] == {"version": "relnb.toml [smoke.flows]"}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_broken_app_fails_naming_step_status_and_redacted_body(tmp_path, inventory, source) -> None:
    url, knobs = inventory
    knobs.fail["create"] = 500  # and the error page echoes the caller's Authorization header
    result = gate(project(tmp_path, url, SOURCES[source]))
    assert result.status is Status.FAILED
    assert "1 of 2 smoke flows failed" in result.summary
    assert "'create an item' (POST /api/items/) → HTTP 500 (expected 201)" in result.summary
    assert "internal error while handling Token [redacted:INVENTORY_TOKEN]" in result.summary
    failed = next(f for f in result.evidence["flows"] if f["flow"] == "item_lifecycle")
    assert failed["steps"][-1]["status"] == 500
    assert "[redacted:INVENTORY_TOKEN]" in failed["steps"][-1]["body"]
    no_canary(result)


def test_stalled_worker_fails_the_poll_with_the_last_answer(tmp_path, inventory) -> None:
    url, knobs = inventory
    knobs.stall = True
    result = gate(project(tmp_path, url, SOURCES["toml"]))
    assert result.status is Status.FAILED
    assert "'the worker makes it ready'" in result.summary
    assert "condition not reached within 5 s" in result.summary and '"pending"' in result.summary


def test_d5_runs_the_production_selection(tmp_path, inventory) -> None:
    url, _ = inventory
    root = project(tmp_path, url, '[smoke]\nfiles = ["relnb-flows.toml"]\nproduction = ["status"]\n')
    result = gate(root, "D5")
    assert result.status is Status.PASSED, result.summary
    assert [f["flow"] for f in result.evidence["flows"]] == ["status"]


def test_no_flows_is_inconclusive_not_passed(tmp_path, inventory) -> None:
    url, _ = inventory
    result = gate(project(tmp_path, url, ""))
    assert result.status is Status.INCONCLUSIVE
    assert "no smoke flows defined" in result.summary


@pytest.mark.parametrize(
    ("step", "field", "words"),
    [
        ('{ path = "/x", methd = "POST" }', "flows.f.steps[0].methd", "unknown step key"),
        ('{ path = "/x/{item_id}/" }', "flows.f.steps[0]", "uses {item_id}, which no earlier step captures"),
        ('{ path = "/x", capture = { id = "id" } }', "flows.f.steps[0].capture.id", "is not a JSON path"),
        ('{ path = "/x", expect = "201" }', "flows.f.steps[0].expect", "not a status code"),
        ('{ poll = "/x" }', "flows.f.steps[0]", "a poll step needs `until`"),
        ('{ path = "/x", require = [{ path = "$.a", equal = 1 }] }', "flows.f.steps[0].require[0]", "exactly one operator"),
        ('{ path = "x" }', "flows.f.steps[0].path", "is not a path"),
    ],
)
def test_a_broken_flow_file_names_file_field_and_fix(tmp_path, step, field, words) -> None:
    f = tmp_path / "flows.toml"
    f.write_text(f"[flows.f]\nsteps = [{step}]\n")
    with pytest.raises(relnb.ConfigError) as err:
        read_flow_file(f, "flows.toml")
    assert err.value.path == "flows.toml" and err.value.key == field
    assert words in str(err.value) and err.value.fix


def test_broken_flow_file_makes_the_gate_inconclusive_with_the_reason(tmp_path, inventory) -> None:
    url, _ = inventory
    root = project(tmp_path, url, SOURCES["toml"])
    (root / "relnb-flows.toml").write_text('[flows.f]\nsteps = [{ path = "/x/{nope}" }]\n')
    result = gate(root)
    assert result.status is Status.INCONCLUSIVE
    assert "relnb-flows.toml: flows.f.steps[0]: uses {nope}" in result.summary


def test_python_flow_module_errors_are_named(tmp_path, inventory) -> None:
    url, _ = inventory
    root = project(tmp_path, url, SOURCES["python"])
    (root / "smoke" / "flows.py").write_text("import not_installed_anywhere\n")
    result = gate(root)
    assert result.status is Status.INCONCLUSIVE
    assert "smoke.python[0]: importing smoke/flows.py failed: ModuleNotFoundError" in result.summary
    (root / "smoke" / "flows.py").write_text("def sync_helper(s):\n    pass\n")
    assert "smoke/flows.py defines no flow" in gate_again(root).summary


def gate_again(root: Path) -> relnb.GateResult:
    r = relnb.Release.open("1.0.0", root=root)
    try:
        return r.check("B5")
    finally:
        r.close()


def test_same_flow_name_in_two_sources_is_an_error(tmp_path, inventory) -> None:
    url, _ = inventory
    root = project(tmp_path, url, '[smoke]\nfiles = ["relnb-flows.toml"]\npython = ["smoke/flows.py"]\n')
    with pytest.raises(relnb.ConfigError, match=r"'status' is defined twice: in smoke/flows\.py and in relnb-flows\.toml"):
        catalogue(relnb.load_config(root / "relnb.toml"))


def test_flows_from_an_installed_package_entry_point(tmp_path, inventory, monkeypatch) -> None:
    """importlib.metadata finds distributions on sys.path: a real dist-info, no mocking."""
    url, _ = inventory
    site = tmp_path / "site"
    (site / "inventory_smoke").mkdir(parents=True)
    shutil.copy(DATA / "smoke" / "flows.py", site / "inventory_smoke" / "__init__.py")
    info = site / "inventory_smoke-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: inventory-smoke\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ninventory = inventory_smoke\n")
    monkeypatch.syspath_prepend(str(site))
    root = project(tmp_path, url, "")
    result = gate(root)
    assert result.status is Status.PASSED, result.summary
    assert result.evidence["flow_sources"]["status"].startswith("entry point inventory = inventory_smoke (inventory-smoke)")
    config = relnb.load_config(root / "relnb.toml")
    config.data["smoke"]["entry_points"] = False
    assert catalogue(config).entries == {}
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbad = inventory_smoke:missing\n")
    sys.modules.pop("inventory_smoke", None)
    with pytest.raises(relnb.ConfigError, match=r"entry point bad = inventory_smoke:missing \(inventory-smoke\): loading it failed"):
        catalogue(relnb.load_config(root / "relnb.toml"))


def test_json_paths() -> None:
    assert parse_path("$.a[0]['b c'].d", "f", "k") == ("a", 0, "b c", "d")
    assert parse_path("$", "f", "k") == ()
    with pytest.raises(relnb.ConfigError):
        parse_path("$.a..b", "f", "k")


def test_the_flows_guide_examples_are_valid(tmp_path) -> None:
    """docs/flows.md's examples: the config validates, the flows parse, the Python flow loads."""
    import re
    import tomllib

    from relnb.checks.http.flows import load_module, module_flows

    doc = (Path(__file__).resolve().parents[3] / "docs" / "flows.md").read_text()
    blocks = re.findall(r"```(toml|python)\n(.*?)```", doc, re.S)
    tomls = [b for kind, b in blocks if kind == "toml"]
    config, flows, entry_points = tomls
    (tmp_path / "relnb.toml").write_text(config)
    loaded = relnb.load_config(tmp_path / "relnb.toml")
    assert loaded.data["smoke"]["staging"] == ["status", "item_lifecycle"]
    assert loaded.env("staging")["auth"]["scheme"] == "Token"
    (tmp_path / "flows.toml").write_text(flows)
    declared = read_flow_file(tmp_path / "flows.toml", "flows.toml")
    assert [len(f.steps) for f in declared.values()] == [1, 3]
    assert "inventory" in tomllib.loads(entry_points)["project"]["entry-points"]["relnb.flows"]
    (python,) = [b for kind, b in blocks if kind == "python"]
    (tmp_path / "guide_flows.py").write_text(python)
    module = load_module("guide_flows.py", tmp_path, "relnb.toml", "smoke.python[0]")
    assert list(module_flows(module)) == ["item_lifecycle"]


def test_loading_a_flow_module_writes_nothing_into_the_repository(tmp_path, monkeypatch) -> None:
    """Issue 19 item 0: with Python's default (bytecode on) a flow module and the sibling it
    imports left __pycache__/ in the team's checkout, and the demo's repository then read a .pyc."""
    from relnb.checks.http.flows import load_module, module_flows

    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    repo = tmp_path / "repo"
    (repo / "smoke").mkdir(parents=True)
    (repo / "smoke_helpers.py").write_text("PATH = '/health'\n")
    (repo / "smoke" / "flows.py").write_text(
        "import smoke_helpers\n\nasync def health(s):\n    return smoke_helpers.PATH\n"
    )
    module = load_module("smoke/flows.py", repo, "relnb.toml", "smoke.python[0]")
    assert list(module_flows(module)) == ["health"]
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == [
        "smoke", "smoke/flows.py", "smoke_helpers.py",
    ]
    assert sys.dont_write_bytecode is False  # restored for the rest of the process
    sys.modules.pop("smoke_helpers", None)
