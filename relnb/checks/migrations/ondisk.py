"""What each migration tool keeps on disk: the migrations a release brings, read the way the tool
itself reads them (Prisma folders, Alembic revision files, Django migration modules, Flyway and
golang-migrate SQL files), with the checksums the tools record in their ledgers.
"""

from __future__ import annotations

import ast
import hashlib
import re
import zlib
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...pyast import parse as parse_python


def prisma_checksum(script: str | bytes) -> str:
    data = script.encode() if isinstance(script, str) else script
    return hashlib.sha256(data).hexdigest()


def prisma_checksum_matches(script: bytes, recorded: str) -> bool:
    variants = (script, script.replace(b"\r\n", b"\n"), script.replace(b"\n", b"\r\n"))
    for v in variants:
        digest = hashlib.sha256(v).digest()
        if len(recorded) == 64:
            if digest.hex() == recorded:
                return True
        elif "".join(f"{b:x}" for b in digest) == recorded:
            return True
    return False


def flyway_checksum(script: bytes) -> int:
    text = script.decode("utf-8")
    crc = 0
    for i, line in enumerate(re.split(r"\r\n|\r|\n", text)):
        if i == 0:
            line = line.removeprefix("\ufeff")
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= (1 << 31) else crc


@dataclass(frozen=True)
class DiskMigration:
    name: str  # the ledger's identifier: prisma dir, alembic revision, "app.name", flyway version
    path: str
    checksum: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _prisma_disk(d: Path) -> list[DiskMigration]:
    out = []
    for sub in sorted(p for p in d.iterdir() if p.is_dir()):
        f = sub / "migration.sql"
        if f.is_file():
            out.append(DiskMigration(sub.name, str(f), f.read_bytes()))
    return out


def py_assign(tree: ast.Module, name: str) -> tuple[bool, Any]:
    for node in tree.body:
        targets: list[ast.expr] = []
        value = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for t in targets:
            if isinstance(t, ast.Name) and t.id == name and value is not None:
                try:
                    return True, ast.literal_eval(value)
                except ValueError:
                    return True, None
    return False, None


def _alembic_disk(d: Path) -> list[DiskMigration]:
    versions = d / "versions" if (d / "versions").is_dir() else d
    out = []
    for f in sorted(versions.glob("*.py")):
        try:
            tree = parse_python(f.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        found, rev = py_assign(tree, "revision")
        if not found or not isinstance(rev, str):
            continue
        _, down = py_assign(tree, "down_revision")
        downs = [down] if isinstance(down, str) else list(down or ())
        out.append(DiskMigration(rev, str(f), extra={"down_revisions": downs}))
    return out


def alembic_heads(migrations: Sequence[DiskMigration]) -> list[str]:
    downs = {d for m in migrations for d in m.extra.get("down_revisions", ())}
    return sorted(m.name for m in migrations if m.name not in downs)


def _django_disk(d: Path) -> list[DiskMigration]:
    out = []
    for f in sorted(d.rglob("migrations/*.py")):
        # a virtualenv inside the repository is someone else's code; a migrations_dir that is
        # itself a site-packages (an app installed from PyPI) is the app's
        if f.name == "__init__.py" or any(
            part in ("site-packages", ".venv", "venv", "node_modules") for part in f.relative_to(d).parts
        ):
            continue
        app = f.parent.parent.name
        replaces: list[list[str]] = []
        # An unparsable file still counts as a migration on disk (Django would refuse to load it,
        # and the ledger comparison then shows it unapplied); only its squash links are unknown.
        with suppress(SyntaxError, ValueError):
            tree = parse_python(f.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name == "Migration":
                    found, val = py_assign(ast.Module(body=node.body, type_ignores=[]), "replaces")
                    if found and val:
                        replaces = [list(x) for x in val]
        out.append(DiskMigration(f"{app}.{f.stem}", str(f), extra={"replaces": replaces}))
    return out


_FLYWAY_V = re.compile(r"^V([0-9][0-9._]*)__(.+)\.sql$")


_FLYWAY_R = re.compile(r"^R__(.+)\.sql$")


def flyway_version(raw: str) -> str:
    parts = [p for p in re.split(r"[._]", raw) if p != ""]
    while len(parts) > 1 and int(parts[-1]) == 0:
        parts.pop()
    return ".".join(str(int(p)) for p in parts)


def _flyway_disk(d: Path) -> list[DiskMigration]:
    out = []
    for f in sorted(d.rglob("*.sql")):
        if m := _FLYWAY_V.match(f.name):
            out.append(
                DiskMigration(
                    flyway_version(m.group(1)),
                    str(f),
                    flyway_checksum(f.read_bytes()),
                    {"script": f.name, "repeatable": False},
                )
            )
        elif _FLYWAY_R.match(f.name):
            out.append(
                DiskMigration(f.name, str(f), flyway_checksum(f.read_bytes()), {"repeatable": True})
            )
    return out


_GOLANG = re.compile(r"^([0-9]+)_(.+)\.up\.sql$")


def _golang_disk(d: Path) -> list[DiskMigration]:
    out = [
        DiskMigration(str(int(m.group(1))), str(f), extra={"version": int(m.group(1))})
        for f in d.iterdir()
        if (m := _GOLANG.match(f.name))
    ]
    return sorted(out, key=lambda m: m.extra["version"])


DISK_READERS = {
    "prisma": _prisma_disk,
    "alembic": _alembic_disk,
    "django": _django_disk,
    "flyway": _flyway_disk,
    "golang-migrate": _golang_disk,
}
