"""E2/E3: can a release's migrations be undone, and so what is the rollback plan?

A migration is reversible when a non-empty down step exists and its up step destroys no data;
the plan follows from that: run the down migrations, or restore the D2 snapshot, or (for a
non-reversible change) redeploy the old app and fix forward.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...results import Outcome
from .included import discover_migrations
from .sqlrisk import SqlParseError, destructive_changes, parse_statements

# --------------------------------------------------------------------------- E2 / E3


def _sql_has_statements(path: str | None) -> bool:
    if not path or not Path(path).is_file():
        return False
    try:
        return bool(parse_statements(Path(path).read_text(encoding="utf-8")))
    except SqlParseError:
        return True  # something is there; a broken down migration is still a claim to review


def _alembic_downgrade_nonempty(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "downgrade":
            body = [
                b
                for b in node.body
                if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))
                and not isinstance(b, ast.Pass)
            ]
            return bool(body)
    return False


def classify_reversibility(
    migrations_dir: str | Path, layout: str = "prisma", names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Per migration: reversible (a non-empty down step exists and the up step destroys no data)."""
    out: list[dict[str, Any]] = []
    if layout == "alembic":
        d = Path(migrations_dir)
        versions = d / "versions" if (d / "versions").is_dir() else d
        for f in sorted(versions.glob("*.py")):
            if names is not None and f.stem not in names and not any(n in f.stem for n in names):
                continue
            try:
                down = _alembic_downgrade_nonempty(f)
            except SyntaxError:
                down = False
            out.append(
                {
                    "name": f.stem,
                    "reversible": down,
                    "down": "downgrade()" if down else None,
                    "reason": "non-empty downgrade()" if down else "downgrade() is empty",
                }
            )
        return out
    for m in discover_migrations(migrations_dir, layout):
        if names is not None and m.name not in names:
            continue
        has_down = _sql_has_statements(m.down_path)
        try:
            destructive = [
                f
                for f in destructive_changes(m.sql)
                if f.rule.startswith(("drop-", "truncate", "delete-"))
            ]
        except SqlParseError:
            destructive = []
        if not has_down:
            reason = "no down migration" if not m.down_path else "down migration is empty"
        elif destructive:
            reason = (
                f"down migration exists, but the up step destroys data ({destructive[0].message})"
            )
        else:
            reason = "down migration present"
        out.append(
            {
                "name": m.name,
                "reversible": has_down and not destructive,
                "down": m.down_path,
                "reason": reason,
            }
        )
    return out


def rollback_plan(
    migrations_dir: str | Path,
    names: Sequence[str],
    layout: str = "prisma",
    snapshot: str | None = None,
) -> Outcome:
    """E2/E3: the rollback this release needs, from its migrations' reversibility."""
    rev = classify_reversibility(migrations_dir, layout, names)
    found = {r["name"] for r in rev}
    missing = [n for n in names if n not in found and layout != "alembic"]
    if missing:
        return Outcome.failed(
            f"release migration(s) not on disk: {', '.join(missing)}", migrations=rev
        )
    snap = f" (snapshot {snapshot})" if snapshot else ""
    if not rev:
        return Outcome.passed(
            "no migrations in this release: rollback = redeploy the previous image",
            plan="redeploy previous app",
            gate="E2/E3",
            migrations=[],
        )
    irreversible = [r for r in rev if not r["reversible"]]
    if irreversible:
        return Outcome.passed(
            f"{len(irreversible)} non-reversible migration(s) ({', '.join(r['name'] for r in irreversible[:3])}):"
            " rollback = redeploy previous app + hotfix forward",
            plan="redeploy previous app + hotfix forward",
            gate="E2",
            migrations=rev,
        )
    return Outcome.passed(
        f"all {len(rev)} migration(s) reversible: rollback = run the down migration(s) in reverse"
        f" order, or restore the D2 snapshot{snap}",
        plan="run down migration(s) or restore the D2 snapshot",
        down_order=[r["down"] for r in reversed(rev)],
        gate="E3",
        migrations=rev,
    )
