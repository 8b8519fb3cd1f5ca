"""The README's two set-up commands are real: CI runs the test one; tests/demo runs the main one."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one(readme_commands):
    main, tests = readme_commands
    assert main.endswith("relnb demo") and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_ci_runs_the_test_command_in_a_new_users_environment():
    """Issue 19 item 0: a variable of the build machine (PYTHONDONTWRITEBYTECODE, a git identity in
    HOME) hid failures a new user meets; CI passes only PATH, a new HOME and CI."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert '\nenv -i PATH="$PATH" HOME="$home" CI="${CI:-true}" bash -c "$readme_command" </dev/null || rc=$?' in ci
    assert 'home="$(mktemp -d' in ci
    assert ci.rstrip().endswith('exit "$rc"'), "the test command's exit status must be .ci/run's"
