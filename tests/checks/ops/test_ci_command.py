"""A1 command provider: runs a real test command (pytest on a tiny project) and judges it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from relnb.checks.ops.ci import check_ci_command, parse_pytest_summary
from relnb.redact import REDACTOR, Secret
from relnb.results import Status

PY = sys.executable


def project(tmp_path: Path, body: str) -> Path:
    (tmp_path / "test_demo.py").write_text(body)
    return tmp_path


def pytest_cmd() -> list[str]:
    return [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_demo.py"]


def test_green_suite_passes_with_parsed_summary(tmp_path):
    cwd = project(tmp_path, "def test_a():\n    assert 1\n\ndef test_b():\n    assert 2\n")
    out = check_ci_command(pytest_cmd(), cwd, timeout_s=120)
    assert out.status is Status.PASSED, out.evidence["output_tail"]
    assert out.evidence["tests"]["passed"] == 2
    assert out.evidence["exit_code"] == 0 and out.evidence["duration_s"] > 0
    assert "2 passed" in out.summary


def test_failing_suite_fails(tmp_path):
    cwd = project(tmp_path, "def test_a():\n    assert 1\n\ndef test_b():\n    assert 0, 'boom'\n")
    out = check_ci_command(pytest_cmd(), cwd, timeout_s=120)
    assert out.status is Status.FAILED
    assert out.evidence["tests"] == {"failed": 1, "passed": 1}
    assert "exited 1" in out.summary and "boom" in out.evidence["output_tail"]


def test_no_tests_collected_fails(tmp_path):
    cwd = project(tmp_path, "X = 1\n")
    out = check_ci_command(pytest_cmd(), cwd, timeout_s=120)
    assert out.status is Status.FAILED  # pytest exits 5


def test_exit_zero_without_passing_tests_fails(tmp_path):
    out = check_ci_command("echo '===== no tests ran in 0.01s ====='", tmp_path, timeout_s=30)
    assert out.status is Status.FAILED and "no passing tests" in out.summary


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "child-survived"
    # the shell starts a grandchild that would write the marker after 3 s
    cmd = f"(sleep 3 && touch {marker}) & sleep 30"
    t0 = time.monotonic()
    out = check_ci_command(cmd, tmp_path, timeout_s=1)
    assert out.status is Status.FAILED and "timed out" in out.summary
    assert time.monotonic() - t0 < 10
    time.sleep(3.5)
    assert not marker.exists()


def test_missing_command_fails(tmp_path):
    out = check_ci_command("definitely-not-a-command-xyz", tmp_path, timeout_s=30)
    assert out.status is Status.FAILED and out.evidence["exit_code"] == 127
    assert "definitely-not-a-command-xyz" in out.summary and "not found" in out.summary  # the shell's reason
    out = check_ci_command([PY, "-m", "no_such_test_runner"], tmp_path, timeout_s=30)
    assert out.summary.endswith("No module named no_such_test_runner"), out.summary
    out = check_ci_command(["/nonexistent/bin/tool"], tmp_path, timeout_s=30)
    assert out.status is Status.FAILED and "could not start" in out.summary


def test_secrets_in_output_are_scrubbed(tmp_path):
    secret = Secret("CI_TOKEN", "s3cr3t-token-value-123")
    try:
        out = check_ci_command(
            "echo token=$CI_TOKEN; echo '1 passed in 0.1s'",
            tmp_path,
            timeout_s=30,
            env={"CI_TOKEN": secret.reveal()},
        )
        assert out.status is Status.PASSED
        assert secret.reveal() not in out.evidence["output_tail"]
        assert "[redacted:CI_TOKEN]" in out.evidence["output_tail"]
    finally:
        REDACTOR.forget_all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("==== 3 passed, 1 skipped in 0.52s ====", {"passed": 3, "skipped": 1}),
        ("1 failed, 2 passed, 1 error in 1.01s", {"failed": 1, "passed": 2, "errors": 1}),
        ("===== 5 passed, 2 warnings in 0.30s =====", {"passed": 5, "warnings": 2}),
        ("no tests ran in 0.01s", {}),
        ("build ok", None),
    ],
)
def test_parse_pytest_summary(text, expected):
    assert parse_pytest_summary("collected\n" + text + "\n") == expected


def test_exit_zero_with_reported_failures_fails(tmp_path):
    out = check_ci_command("echo '=== 1 failed, 2 passed in 0.12s ==='", tmp_path, timeout_s=30)
    assert out.status is Status.FAILED and "reported" in out.summary
