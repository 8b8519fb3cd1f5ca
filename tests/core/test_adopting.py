"""docs/adopting.md is written from examples/netbox: every setting it shows is one the example
really has, and every example file it names exists, so the guide cannot drift from the release
that tests/examples/test_netbox.py runs."""

import re
import tomllib
from pathlib import Path

import relnb

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "adopting.md"
EXAMPLE = ROOT / "examples" / "netbox"


def _settings(text: str) -> set[str]:
    return {line.split("#")[0].strip() for line in text.splitlines() if "=" in line.split("#")[0]}


def test_every_setting_the_guide_shows_is_in_the_example():
    example = _settings((EXAMPLE / "relnb.toml").read_text())
    shown = [s for block in re.findall(r"```toml\n(.*?)```", GUIDE.read_text(), re.S) for s in _settings(block)]
    assert len(shown) >= 12
    assert [s for s in shown if s not in example] == []


def test_the_example_config_loads_and_names_what_exists():
    config = relnb.load_config(EXAMPLE / "relnb.toml")
    project = config.project
    for path in [*project["deploy_artifacts"], *project["env_templates"], *config.data["smoke"]["files"], "conf/configuration.py"]:
        assert (EXAMPLE / path).is_file(), path
    signoffs = relnb.load_sign_offs_file(EXAMPLE / "sign-offs.json")
    assert sorted(signoffs) == ["A2", "A3", "A4", "A5", "A6"]
    assert tomllib.loads((EXAMPLE / "relnb-flows.toml").read_text())["flows"].keys() >= set(config.data["smoke"]["staging"])
