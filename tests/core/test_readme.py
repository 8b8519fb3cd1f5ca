"""The README's two set-up commands are real: CI runs the test one; tests/demo runs the main one."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one(readme_commands):
    main, tests = readme_commands
    assert main.endswith("relnb demo") and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()
