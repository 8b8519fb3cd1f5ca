"""Names and byte-level helpers shared by archiving, verification and replay.

An archive is the release directory itself: the journal stays where it was written and the
exports are placed beside it, so a release never has two copies of its record that could drift.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

FORMAT = "relnb-archive/1"
MANIFEST = "manifest.json"
JOURNAL = "journal.jsonl"
HTML = "release.html"
IPYNB = "release.ipynb"
SAMPLES = "samples.jsonl"
INCIDENTS = "incidents.json"
CHANGELOG = "CHANGELOG-section.md"
JUNIT = "junit.xml"
SUMMARY = "summary.json"
NOTEBOOK_STEM = "notebook"  # notebook.py or notebook.ipynb: the source the release ran
CONFIG_DIR = "config"
# allowed_signers as of the release SHA: signatures verify from the archive alone, anywhere
ALLOWED_SIGNERS = "signing/allowed_signers"
STAGING = ".archive-staging"
INDEX = "index.json"

# Files in a release directory that the manifest does not list: the lock is rewritten by every
# writer (it holds a pid), the journal is covered by its own chain and the sealed event, and the
# manifest is covered by the hash in the sealed event.
NOT_IN_MANIFEST = frozenset({".lock", JOURNAL, MANIFEST})


def sha256_file(path: Path, *, limit: int | None = None) -> str:
    h = hashlib.sha256()
    remaining = limit
    with path.open("rb") as fh:
        while True:
            size = 1 << 20 if remaining is None else min(1 << 20, remaining)
            if size == 0:
                break
            chunk = fh.read(size)
            if not chunk:
                break
            h.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file under the name."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(raw)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def archive_files(directory: Path, *, include_staging: bool = False) -> list[str]:
    """Every file under a release directory, as POSIX paths relative to it (sorted).

    Sealing leaves its staging directory out (it is being built); verification includes it, so
    a file planted under `.archive-staging/` after sealing is named, not ignored (issue 22).
    Symlinks are listed too (a symlinked directory is not followed): see `symlinks`.
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        if not include_staging:
            dirnames[:] = [d for d in dirnames if d != STAGING]
        rel = Path(dirpath).relative_to(directory)
        links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
        for name in [*filenames, *links]:
            out.append((rel / name).as_posix() if rel.parts else name)
    return sorted(out)


def symlinks(directory: Path) -> list[str]:
    """Entries under a release directory that are symlinks: an archive holds its bytes itself,
    so a link (which can point anywhere and change after sealing) is refused, never followed."""
    return [
        n for n in archive_files(directory, include_staging=True) if (directory / n).is_symlink()
    ]
