"""Docs are generated from the code they describe, and tests keep them current."""

import os
import subprocess
import sys
from pathlib import Path

from relnb.cli import build_parser
from relnb.configschema import reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width
    parser = build_parser()
    out = ["# CLI reference", "", "Generated from `relnb --help`; a test keeps it current.", ""]
    out += ["```text", parser.format_help().strip(), "```", ""]
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        out += [f"## relnb {name}", "", "```text", p.format_help().strip(), "```", ""]
    return "\n".join(out)


def test_config_reference_is_current():
    assert (ROOT / "docs" / "config.md").read_text() == reference_markdown()


def test_cli_reference_is_current_and_every_command_documented():
    text = (ROOT / "docs" / "cli.md").read_text()
    assert text == cli_reference(), "regenerate: python -m tests.core.test_docs"
    for cmd in ("new", "run", "status", "verify", "list"):
        assert f"## relnb {cmd}" in text


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "relnb.cli", "--help"], capture_output=True, text=True, check=True)
    assert "relnb" in out.stdout and "run" in out.stdout


if __name__ == "__main__":
    (ROOT / "docs" / "cli.md").write_text(cli_reference())
    (ROOT / "docs" / "config.md").write_text(reference_markdown())


def doc_commands() -> list[tuple[str, list[str]]]:
    """Every `relnb ...` command line in the docs' bash blocks, split as a shell would."""
    import re
    import shlex

    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                for part in line.split("&&"):
                    words = shlex.split(part, comments=True)
                    if words and (words[0] == "relnb" or words[0].endswith("/relnb")):
                        found.append((f"{doc.name}: {part.strip()}", words[1:]))
    return found


def test_every_relnb_command_in_the_docs_parses():
    """A command shown in the docs uses sub-commands and options the CLI really has."""
    commands = doc_commands()
    assert len(commands) >= 8, commands
    parser = build_parser()
    for where, argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"{where}: rejected by the CLI") from exc


def test_every_module_the_docs_name_exists():
    """docs/ name modules (`relnb/checks/http/smoke.py`, `rules.py` in a row of its package):
    each must be a file of that package, so a move or split shows up as a failing doc."""
    import re

    missing = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        for path in re.findall(r"`((?:relnb|relnb_demo|tests)/[\w/.-]+)`", text):
            if not (ROOT / path).exists():
                missing.append(f"{doc.name}: {path}")
        for row in re.findall(r"^\|.*$", text, re.M):  # a table row naming a package and its modules
            package = re.search(r"`((?:relnb|relnb_demo)/[\w/]+)/`", row)
            if package:
                for name in re.findall(r"`(\w+\.py)`", row):
                    if not (ROOT / package.group(1) / name).exists():
                        missing.append(f"{doc.name}: {package.group(1)}/{name}")
    assert missing == []
