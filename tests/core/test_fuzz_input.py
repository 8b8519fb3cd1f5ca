"""Random relnb.toml and sign-off files through the CLI's parsing path: 0 tracebacks (issue 22,
"Bad input"). Every outcome is a verdict-free exit 0 or a one-line usage/config error (exit 3).

In-process (relnb.cli.main), with a notebook path that does not exist, so `relnb run` parses its
config, flows, secrets and sign-offs and then stops before any child process or journal event.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from relnb.cli import main
from relnb.configschema import ENVIRONMENTS, SCHEMA, Key, ListOf, MapOf, Table
from relnb.gates import GATE_IDS

from .helpers import make_project
from .test_cli import CONFIG

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_PATHS = re.compile(r"\S*/")

# env-var names that are never set: a fuzzed `*_env` key must not register a real variable's
# value (PATH, HOME) as a secret for the rest of the test session
_UNSET_VAR = st.from_regex(r"\ARELNB_FUZZ_[A-Z]{1,6}\Z")
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_WORDS = st.sampled_from(
    ["45m", "0", "0s", "-1m", "2h", "1e9d", "soon", "http://127.0.0.1:9", "htp:/bad url", "https://x", "",
     "http://[::1", "http://a:99999", "A3", "main", "/version", "none", "s3", "github", "scrape"]
)
_SCALAR = st.one_of(_WORDS, _TEXT, st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.booleans())
_VALUE = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3), st.dictionaries(_TEXT, _SCALAR, max_size=2))


def _value_for(name: str, spec: Any, depth: int) -> st.SearchStrategy[Any]:
    """Mostly well-typed values for the schema's keys (so the validator, not TOML, is exercised)."""
    if name.endswith("_env"):
        return st.one_of(_UNSET_VAR, st.integers(), st.just(""))
    if isinstance(spec, Table):
        return _table(spec, depth + 1)
    if isinstance(spec, ListOf):
        return st.lists(_table(spec.table, depth + 1), max_size=2)
    if isinstance(spec, MapOf):
        names = st.sampled_from(spec.names) if spec.names else _TEXT
        inner = _table(spec.value, depth + 1) if isinstance(spec.value, Table) else _value_for("", spec.value, depth)
        return st.dictionaries(st.one_of(names, _TEXT), inner, max_size=2)
    assert isinstance(spec, Key)
    if spec.choices:
        return st.one_of(st.sampled_from(spec.choices), _SCALAR)
    if list in spec.types:
        return st.one_of(st.lists(st.one_of(_WORDS, _TEXT), max_size=3), _SCALAR)
    return _VALUE if depth > 3 else st.one_of(_WORDS, _SCALAR)


def _table(schema: Table, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    if depth > 4:
        return st.just({})
    keys = list(schema.keys)
    return st.lists(st.one_of(st.sampled_from(keys), _TEXT), max_size=4, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries(
            {k: _value_for(k, schema.keys[k], depth) if k in schema.keys else _VALUE for k in chosen}
        )
    )


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes, minus what TOML refuses (surrogate escapes, raw DEL)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(k: str) -> str:
    return k if _BARE.match(k) else _string(k)


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    return json.dumps(v)  # integers, floats and booleans are written the same in TOML


def to_toml(data: dict[str, Any]) -> str:
    lines = [f"{_key(k)} = {_inline(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"[{_key(k)}]")
            lines.extend(f"{_key(kk)} = {_inline(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"


CONFIG_TEXT = st.one_of(
    _table(SCHEMA).map(to_toml),
    st.dictionaries(st.sampled_from(ENVIRONMENTS), _table(SCHEMA.keys["environments"].value), min_size=1, max_size=2)  # type: ignore[union-attr]
    .map(lambda envs: to_toml({"project": {"name": "x"}}) + "".join(
        f"[environments.{n}]\n" + "".join(f"{_key(k)} = {_inline(v)}\n" for k, v in e.items()) for n, e in envs.items()
    )),
    st.text(max_size=200),
)

_BY = st.one_of(
    _TEXT,
    st.text(alphabet="ab <>@.\n\t\x1b", max_size=16),
    st.builds(lambda n, e: f"{n} <{e}>", _TEXT, st.one_of(st.emails(), _TEXT)),
)
_ENTRY = st.one_of(st.fixed_dictionaries({"by": _BY, "note": st.one_of(_TEXT, _SCALAR)}), _VALUE)
SIGN_OFFS_TEXT = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(GATE_IDS), _TEXT), _ENTRY, max_size=3).map(json.dumps),
    st.fixed_dictionaries(
        {"format": st.just("relnb-approvals/1"), "release_id": st.one_of(st.just("1.0.0"), _TEXT),
         "release_sha": st.one_of(st.just("0" * 40), _SCALAR),
         "approvals": st.one_of(st.lists(st.dictionaries(
             st.sampled_from(["statement", "signature", "principal", "fingerprint"]),
             st.one_of(_VALUE, st.fixed_dictionaries({"kind": st.sampled_from(["sign-off", "skip", "x"]),
                                                      "gate": st.sampled_from(GATE_IDS), "text": _TEXT}))),
             max_size=2), _VALUE)},
    ).map(json.dumps),
    st.recursive(_SCALAR, lambda c: st.lists(c, max_size=3) | st.dictionaries(_TEXT, c, max_size=3)).map(
        lambda v: json.dumps(v, allow_nan=True)
    ),
    st.text(max_size=100),
)
_CLI_TEXT = st.one_of(_TEXT, st.builds(lambda g, b, n: f"{g}={b}:{n}", st.sampled_from(GATE_IDS), _BY, _TEXT))


@pytest.fixture
def project(tmp_path, monkeypatch):
    root = make_project(tmp_path / "proj")
    (root / "relnb.toml").write_text(CONFIG.format(log=root / "actions.log"))
    monkeypatch.chdir(root)
    monkeypatch.setenv("RELNB_USER", "Lead <lead@example.org>")
    for var in ("RELNB_ROOT", "RELNB_SIGNOFFS", "RELNB_CONFIRM"):
        monkeypatch.delenv(var, raising=False)
    assert main(["new", "1.0.0"]) == 0
    return root


def outcome(capsys, argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def assert_clean(code: int, text: str, allowed: tuple[int, ...]) -> None:
    # what each example reached (`pytest --hypothesis-show-statistics`): the validator, not only TOML
    last = text.strip().splitlines()[-1] if text.strip() else ""
    event(f"exit {code}: {_PATHS.sub('', last)[:40]}")
    assert code in allowed, text
    assert "Traceback" not in text, text
    if code == 3:
        errors = [ln for ln in text.splitlines() if "error:" in ln]
        assert len(errors) == 1, text


@FUZZ
@given(toml=CONFIG_TEXT)
def test_random_config_never_tracebacks(project, capsys, toml):
    """issue 22 item 7: random relnb.toml through `status` and `run`'s parsing: exit 0 or 3, no traceback."""
    cfg = project / "fuzz.toml"
    cfg.write_text(toml, encoding="utf-8")
    journal = project / "releases" / "1.0.0" / "journal.jsonl"
    before = journal.read_bytes()
    assert_clean(*outcome(capsys, ["--config", str(cfg), "status", "1.0.0"]), allowed=(0, 3))
    assert_clean(*outcome(capsys, ["--config", str(cfg), "run", "missing.py"]), allowed=(3,))
    assert_clean(*outcome(capsys, ["--config", str(cfg), "new", "2.0.0", "--format", "ipynb"]), allowed=(0, 3))
    assert journal.read_bytes() == before
    for created in (project / "notebooks" / "release-2.0.0.ipynb", project / "releases" / "2.0.0"):
        if created.is_dir():
            import shutil

            shutil.rmtree(created)
        elif created.exists():
            created.unlink()


@FUZZ
@given(sign_offs=SIGN_OFFS_TEXT, given_sign_offs=st.lists(_CLI_TEXT, max_size=2),
       window=st.one_of(_WORDS, _TEXT), with_window=st.integers(0, 3))
def test_random_sign_offs_never_traceback(project, capsys, sign_offs, given_sign_offs, window, with_window):
    """issue 22 item 7: random sign-off files, --sign-off texts and --window values: exit 3 or
    the missing notebook, never a traceback and never a journal event."""
    path = Path(project / "sign-offs.json")
    path.write_text(sign_offs, encoding="utf-8")
    argv = ["run", "missing.py", "--sign-offs", str(path)]
    for text in given_sign_offs:
        argv.append(f"--sign-off={text}")
    if with_window == 0:  # now and then: a bad --window stops argparse before the sign-offs are read
        argv.append(f"--window={window}")
    journal = project / "releases" / "1.0.0" / "journal.jsonl"
    before = journal.read_bytes()
    assert_clean(*outcome(capsys, argv), allowed=(3,))
    assert journal.read_bytes() == before
