"""Secret registry and scrubbing.

Every secret relnb resolves is registered here, and every string relnb emits (results, evidence,
journal events, command output, tracebacks, exports, logs) passes through `scrub`. Secrets leak in
disguise, so each one is also registered URL-encoded and as the stable middle of its base64 form
at all three byte alignments (a token inside `user:token` encoded for Basic auth still matches).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

# Shorter values would redact ordinary words; such a "secret" is rejected at registration.
MIN_SECRET_LENGTH = 6
_MIN_B64_CORE = 8

# Token shapes that are secrets whatever their value (used by the archive's redaction scan).
TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "aws-access-key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "bearer-header": re.compile(r"(?i)\bauthorization:\s*bearer\s+[A-Za-z0-9._~+/-]{12,}=*"),
    "private-key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


class Secret:
    """A resolved secret that refuses to print itself; `.reveal()` is the one way out."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value
        REDACTOR.register(value, name)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("relnb.Secret", self.name))

    def __reduce__(self) -> Any:
        raise TypeError("relnb.Secret cannot be pickled")


def _b64_cores(raw: bytes) -> Iterable[str]:
    for pad in range(3):
        data = b"\x00" * pad + raw
        enc = base64.b64encode(data).decode()
        full_groups = len(data) // 3
        start = 4 if pad else 0
        core = enc[start : full_groups * 4]
        if len(core) >= _MIN_B64_CORE:
            yield core
            yield core.replace("+", "-").replace("/", "_")  # urlsafe alphabet


class Redactor:
    """Process-wide list of values that must never be emitted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._needles: dict[str, str] = {}  # needle -> label
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str, name: str = "secret") -> None:
        if not value:
            return
        if len(value) < MIN_SECRET_LENGTH:
            # Too short to scrub without mangling normal text; still refuse to leak it raw
            # by registering only when it stands alone is not possible, so we say so loudly.
            logging.getLogger("relnb").warning(
                "secret %s is shorter than %d characters; it cannot be scrubbed reliably",
                name,
                MIN_SECRET_LENGTH,
            )
            return
        label = f"[redacted:{name}]"
        variants = {value, quote(value, safe=""), quote_plus(value), quote(value)}
        variants.update(_b64_cores(value.encode()))
        with self._lock:
            for v in variants:
                if v and len(v) >= MIN_SECRET_LENGTH:
                    self._needles.setdefault(v, label)
            self._pattern = None

    def forget_all(self) -> None:
        """Tests only: start from a clean registry."""
        with self._lock:
            self._needles.clear()
            self._pattern = None

    @property
    def names(self) -> list[str]:
        return sorted({label[10:-1] for label in self._needles.values()})

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._needles:
                # Longest first so a secret's URL-encoded form wins over a shorter overlap.
                alts = sorted(self._needles, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(a) for a in alts))
            return self._pattern

    def scrub(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(lambda m: self._needles[m.group(0)], text)

    def scrub_obj(self, obj: Any) -> Any:
        """Scrub every string inside JSON-like data (keys included)."""
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {self.scrub_obj(k): self.scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.scrub_obj(v) for v in obj]
        if isinstance(obj, Secret):
            return repr(obj)
        return obj

    def contains_secret(self, text: str) -> list[str]:
        """Names of registered secrets found in `text` (for scans that must block, not fix)."""
        pattern = self._compiled()
        if pattern is None:
            return []
        return sorted({self._needles[m.group(0)][10:-1] for m in pattern.finditer(text)})


REDACTOR = Redactor()


def register(value: str, name: str = "secret") -> None:
    REDACTOR.register(value, name)


def scrub(text: str) -> str:
    return REDACTOR.scrub(text)


def scrub_obj(obj: Any) -> Any:
    return REDACTOR.scrub_obj(obj)


def format_exception(exc: BaseException) -> str:
    """A traceback with every registered secret scrubbed, frame locals never included."""
    return scrub("".join(traceback.format_exception(exc)))


def find_token_shapes(text: str) -> list[str]:
    """Kinds of well-known token shapes present in `text`."""
    return [kind for kind, pat in TOKEN_PATTERNS.items() if pat.search(text)]


class ScrubbingFilter(logging.Filter):
    """Logging filter that scrubs messages and arguments before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = format_exception(record.exc_info[1])
            record.exc_info = None
        return True


def install_logging_filter(logger: logging.Logger | None = None) -> None:
    target = logger or logging.getLogger("relnb")
    if not any(isinstance(f, ScrubbingFilter) for f in target.filters):
        target.addFilter(ScrubbingFilter())
