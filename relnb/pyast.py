"""Python source to syntax trees, from several threads at once.

CPython up to 3.11.7 (and 3.12.1) keeps the AST constructor's recursion depth in state that
every thread shares: two threads building trees at once, with a garbage collection switching
between them, end in "SystemError: AST constructor recursion depth mismatch"
(python/cpython#106905). relnb reads migrations and flows while side-by-side gates and the demo's
services run in threads, and anyio (from 4.16, imported by httpx and starlette) parses its own
source when it is first imported. So every parse relnb makes holds one lock, and the modules that
parse on import are imported, under that lock, before threads start.
"""

from __future__ import annotations

import ast
import importlib
import threading

_LOCK = threading.Lock()
PARSE_ON_IMPORT = ("anyio",)


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module:
    with _LOCK:
        return ast.parse(source, filename)


def import_parsers_early() -> None:
    """Call before starting threads that may import httpx or starlette for the first time."""
    with _LOCK:
        for name in PARSE_ON_IMPORT:
            try:
                importlib.import_module(name)
            except ImportError:
                continue
