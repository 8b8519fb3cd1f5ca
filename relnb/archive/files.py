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
NOTEBOOK_SUFFIX = ".ipynb"
# JupyterLab writes a checkpoint copy of every notebook it opens here; it is not part of the
# record, so verification leaves it out of the file list and names it in a note instead.
JUPYTER_CHECKPOINTS = ".ipynb_checkpoints"

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
        dirnames[:] = [d for d in dirnames if d != JUPYTER_CHECKPOINTS]  # see `jupyter_notes`
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


# -- notebooks are verified by content ------------------------------------------------------------
#
# Opening an archived notebook in JupyterLab saves it again: the same cells and outputs, with the
# JSON re-indented, sources split into lines and kernel metadata added. That is not a change of
# the record, so for notebooks the manifest also keeps a hash of what the record is (each cell's
# type, source, execution count and outputs, and relnb's own metadata), and a notebook whose
# bytes differ but whose content hash matches is reported in a note, not as tampering.


def _text(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else value


def _output_content(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    out = {k: v for k, v in output.items() if k != "metadata" or v}
    if "text" in out:
        out["text"] = _text(out["text"])
    if isinstance(out.get("data"), dict):
        out["data"] = {mime: _text(v) for mime, v in out["data"].items()}
    return out


def _cell_content(cell: Any) -> Any:
    if not isinstance(cell, dict):
        return cell
    out: dict[str, Any] = {"cell_type": cell.get("cell_type"), "source": _text(cell.get("source", ""))}
    if cell.get("attachments"):
        out["attachments"] = cell["attachments"]
    if cell.get("cell_type") == "code":
        out["execution_count"] = cell.get("execution_count")
        out["outputs"] = [_output_content(o) for o in cell.get("outputs") or []]
    return out


def notebook_content_sha256(data: bytes) -> str | None:
    """The sha256 of a notebook's content (cells, sources, outputs, relnb's metadata), the same
    however the JSON is formatted or whatever kernel metadata an editor added; None when `data`
    is not a notebook."""
    try:
        nb = json.loads(data)
    except ValueError:
        return None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    canon = {
        "nbformat": nb.get("nbformat"),
        "relnb": meta.get("relnb"),
        "cells": [_cell_content(c) for c in nb["cells"]],
    }
    return sha256_bytes(json.dumps(canon, sort_keys=True, ensure_ascii=False).encode("utf-8"))


def manifest_entry(path: Path) -> dict[str, Any]:
    """A file's manifest entry: its bytes' sha256 and size, and for a notebook its content hash."""
    entry: dict[str, Any] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    if path.suffix == NOTEBOOK_SUFFIX:
        content = notebook_content_sha256(path.read_bytes())
        if content is not None:
            entry["content_sha256"] = content
    return entry


def resaved(path: Path, entry: dict[str, Any]) -> bool:
    """A notebook whose bytes differ from the manifest but whose content is the same (an editor
    such as JupyterLab saved it again)."""
    want = entry.get("content_sha256")
    return bool(want) and path.suffix == NOTEBOOK_SUFFIX and notebook_content_sha256(path.read_bytes()) == want


def changed(path: Path, entry: dict[str, Any]) -> bool:
    """Does a listed file differ from its manifest entry? By bytes; for a notebook sealed with a
    content hash, by content (cells and outputs), so opening it in JupyterLab is not tampering."""
    if path.stat().st_size == entry.get("bytes") and sha256_file(path) == entry.get("sha256"):
        return False
    return not resaved(path, entry)


def jupyter_notes(directory: Path, listed: dict[str, dict[str, Any]]) -> list[str]:
    """What Jupyter left in a sealed release directory, for `relnb verify` to say without calling
    it tampering: checkpoint directories (not part of the record, not checked) and notebooks
    saved again with the same content."""
    notes = []
    for dirpath, dirnames, _files in os.walk(directory):
        if JUPYTER_CHECKPOINTS in dirnames:
            rel = (Path(dirpath) / JUPYTER_CHECKPOINTS).relative_to(directory).as_posix()
            notes.append(f"{rel}/: Jupyter's checkpoints, not part of the archive (ignored)")
        dirnames[:] = [d for d in dirnames if d != JUPYTER_CHECKPOINTS]
    for name in sorted(listed):
        path = directory / name
        if path.is_file() and not path.is_symlink():
            entry = listed[name]
            if sha256_file(path) != entry.get("sha256") and resaved(path, entry):
                notes.append(f"{name}: saved again by an editor; same cells and outputs as sealed")
    return notes
