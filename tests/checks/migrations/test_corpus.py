"""C3 on the migration corpus: every case's verdict and findings against a real PostgreSQL."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from relnb.checks.migrations.safety import check_migration_safety
from relnb.results import Status

CORPUS = Path(__file__).parent / "corpus"
EXPECT = tomllib.loads((CORPUS / "expectations.toml").read_text())
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith("_"))

pytestmark = pytest.mark.integration


def test_corpus_is_complete():
    assert len(CASES) >= 25
    assert set(CASES) == set(EXPECT), "every corpus case needs exactly one expectation"
    verdicts = {EXPECT[c]["verdict"] for c in CASES}
    assert verdicts == {"passed", "failed"}


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case, prisma_dir, pg_admin_url, prod_url):
    exp = EXPECT[case]
    root = prisma_dir(case)
    name = f"20261101000001_{case}"
    out = check_migration_safety(root, pg_admin_url, pending=[name], production_url=prod_url)
    assert str(out.status) == exp["verdict"], out.summary
    (mig,) = out.evidence["migrations"]
    findings = mig["findings"]
    rules = {f["rule"] for f in findings}
    errors = {f["rule"] for f in findings if f["severity"] == "error" and not f["waived"]}
    assert errors == set(exp["errors"]), findings
    assert set(exp.get("findings", [])) <= rules, rules
    assert not set(exp.get("absent", [])) & rules, rules
    if "summary" in exp:
        assert exp["summary"] in out.summary
    if out.status is Status.FAILED:
        assert out.summary.startswith(name + ": ")
    # Every finding names its rule and, where it has one, the statement and its line.
    for f in findings:
        if f["source"] in ("trace", "squawk") or f["rule"] in ("drop-column", "rename-column"):
            assert f["statement"] and f["line"], f
    # Production was read through a read-only, time-bounded session, and that is on record.
    session = out.evidence["production"]["session"]
    assert session["transaction_read_only"] == "on"
    assert session["default_transaction_read_only"] == "on"
    assert session["statement_timeout"] != "0"
    assert session["lock_timeout"] != "0"
