"""The header a marimo release notebook shows when it is opened, before any cell runs.

`marimo edit` runs no cell on open (`runtime.auto_instantiate` is off by default, and relnb must
not turn it on: running every cell would run gates and windows). What it shows instead is its
session cache, `__marimo__/session/<notebook>.json` next to the notebook (the file `marimo export
session` writes, format "1", a schema marimo keeps backwards compatible): every cached output
appears, marked stale, until a person runs cells. So wherever relnb changes what the header says
while the notebook is closed (`relnb new`, a headless `relnb run`, a seal), it writes the header
cell's output, folded from the journal, into that cache.

marimo 0.25.2 accepts the file only when it matches the notebook exactly (SessionCacheManager
.is_cache_hit in marimo/_session/state/serialize.py): one entry per cell, in the notebook's order,
each with the md5 of that cell's current code as `code_hash`; `metadata.marimo_version` equal to
the running marimo's; and `metadata.script_metadata_hash` present and equal to the hash of the
notebook's PEP 723 header (null without one). Outputs are then given to cells by code hash, not by
the stored cell id. So every cell is listed with its hash; only the header carries an output, and
other cells keep the outputs a still-valid cache already held (a person's last session). A cell
edited later, or another marimo version, is a cache miss: marimo then shows nothing, as before,
and rewrites the file itself once cells run.

marimo is imported only here, lazily; without it (or when its cache layout is not the one above)
this is a no-op with a one-line note. The cache is a convenience: failing to write it never fails
the command that asked for it.
"""

from __future__ import annotations

import html
import json
import os
import re
import sys
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .config import Config
from .errors import RelnbError
from .state import ReleaseState

# The header cell: the one that shows `relnb.ui.summary(release, ...)` (the template's, or a
# team's copy of it).
HEADER_CALL = re.compile(r"\brelnb\.ui\.summary\(")
SESSION_FORMAT = "1"
_ORDER = ("passed", "waived", "skipped", "failed", "inconclusive", "interrupted", "pending")


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def header_line(release_id: str, state: ReleaseState, sealed: bool | None = None) -> str:
    """The header's one line, for `relnb.ui.summary` in the kernel and the cache written here
    alike (`sealed`: the live journal's own flag, where the caller holds one)."""
    counts = state.table().counts()
    parts = [f"{counts[k]} {k}" for k in _ORDER if counts.get(k)]
    done = state.sealed is not None if sealed is None else sealed
    return f"Release {release_id}: {state.verdict()}{' · sealed' if done else ''} — " + ", ".join(parts)


def header_html(release_id: str, state: ReleaseState) -> str:
    """The HTML marimo shows for the header cell (its ticker aside, which only a kernel can run):
    the same `mo.vstack` of the bold line and the status table that `relnb.ui.summary` builds."""
    import marimo as mo

    head = mo.md(f"**{html.escape(header_line(release_id, state))}**")
    return str(mo.vstack([head, state.table()]).text)


def cache_file(notebook: Path) -> Path:
    """Where marimo looks for the notebook's session cache (beside it, or under a pycache prefix)."""
    from marimo._session.state.serialize import get_session_cache_file

    return Path(get_session_cache_file(Path(notebook)))


def refresh_header_cache(
    release_id: str,
    *,
    config: Config,
    notebook: str | os.PathLike[str] | None = None,
    note: Callable[[str], None] = _stderr,
    state: ReleaseState | None = None,
) -> Path | None:
    """Write the header's current output into the marimo session cache of the release's notebook.

    `notebook` defaults to the one the release recorded at creation. Returns the file written, or
    None when there is nothing to do (a Jupyter notebook, no header cell) or it cannot be done
    (then `note` says why in one line). `state`: the release's state where the caller has just
    folded it (else it is read from the journal).
    """
    from .release import read_state

    if state is None:
        try:
            state = read_state(release_id, config=config)
        except RelnbError as exc:
            note(f"relnb: the notebook's header cache is not updated: {exc}")
            return None
    if notebook is None:
        recorded = state.created.get("notebook")
        if not recorded:
            return None
        notebook = config.root / str(recorded)
    path = Path(notebook)
    if path.suffix != ".py" or not path.is_file():
        return None  # Jupyter keeps outputs in the .ipynb; marimo formats only
    if find_spec("marimo") is None:
        note(f"relnb: marimo is not installed, so {path.name} shows its header only once its cells run")
        return None
    try:
        session = _session(path, release_id, state)
    except (ImportError, AttributeError, TypeError, ValueError, SyntaxError, RuntimeError) as exc:
        note(f"relnb: the header of {path.name} is not cached for marimo (its session cache is not the one relnb knows: {exc})")
        return None
    if session is None:
        return None
    target = cache_file(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(session, indent=2), encoding="utf-8")
        os.replace(tmp, target)  # marimo's own writer may write the same file: never a half file
    except OSError as exc:
        note(f"relnb: the header of {path.name} is not cached for marimo: {exc}")
        return None
    return target


def _session(path: Path, release_id: str, state: ReleaseState) -> dict[str, Any] | None:
    """The session cache for the notebook at `path`: every cell's hash, the header's output, and
    the other outputs of an existing cache that still matches this notebook."""
    import marimo
    from marimo._session.notebook import load_notebook
    from marimo._utils.code import hash_code
    from marimo._utils.inline_script_metadata import script_metadata_hash_from_filename

    manager = load_notebook(path).app.cell_manager
    ids = [str(i) for i in manager.cell_ids()]
    codes = [c.code for c in manager.cell_data()]
    header = next((i for i, code in enumerate(codes) if HEADER_CALL.search(code)), None)
    if header is None:
        return None
    hashes = [hash_code(code) if code else None for code in codes]
    metadata = {
        "marimo_version": marimo.__version__,
        "script_metadata_hash": script_metadata_hash_from_filename(str(path)),
    }
    cells = [{"id": i, "code_hash": h, "outputs": [], "console": []} for i, h in zip(ids, hashes, strict=True)]
    for cell, kept in zip(cells, _still_valid(cache_file(path), metadata, hashes), strict=False):
        cell["outputs"], cell["console"] = kept.get("outputs", []), kept.get("console", [])
    cells[header]["outputs"] = [{"type": "data", "data": {"text/html": header_html(release_id, state)}}]
    cells[header]["console"] = []
    return {"version": SESSION_FORMAT, "metadata": metadata, "cells": cells}


def _still_valid(file: Path, metadata: dict[str, Any], hashes: list[str | None]) -> list[dict[str, Any]]:
    """The cells of an existing cache that marimo would still accept for this notebook, else []."""
    try:
        old = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict) or old.get("version") != SESSION_FORMAT or old.get("metadata") != metadata:
        return []
    cells = old.get("cells")
    if not isinstance(cells, list) or [c.get("code_hash") if isinstance(c, dict) else 0 for c in cells] != hashes:
        return []
    return cells
