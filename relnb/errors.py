"""One exception tree, so the CLI can map every failure to an exit code in one place.

    RelnbError                      exit 3 unless a subclass says otherwise
    ├── ConfigError                 relnb.toml / [tool.relnb] is wrong (names file and key)
    ├── SecretMissing               a secret's env var is not set (names the var and the key)
    ├── UsageError                  bad CLI/API input (unknown gate, missing notebook, ...)
    ├── ReleaseNotFound             no releases/<id>/journal.jsonl
    ├── JournalError                the journal cannot be used as asked
    │   ├── JournalLocked           another process is the writer (names its pid)
    │   ├── JournalCorrupt          the hash chain is broken (names the first bad seq)
    │   └── JournalSealed           the release is archived; appends are refused
    ├── PromotionRefused            a production gate ran before A–C were green (names blockers)
    └── ActionRefused               an action needs confirmation / a reason / a resume decision

Errors carry structured fields (gate, path, key) so callers never parse messages.
"""

from __future__ import annotations

from collections.abc import Sequence


class RelnbError(Exception):
    """Root of every error relnb raises on purpose."""

    exit_code: int = 3

    def __init__(
        self,
        message: str,
        *,
        gate: str | None = None,
        path: str | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.gate = gate
        self.path = path
        self.key = key
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message
        if self.fix:
            text = f"{text} — {self.fix}"
        return text


class ConfigError(RelnbError):
    """The configuration file is malformed or has unknown keys or wrong types."""


class SecretMissing(ConfigError):
    """A secret is referenced by env-var name but the variable is not set."""


class UsageError(RelnbError):
    """The caller asked for something that does not exist or does not make sense."""


class ReleaseNotFound(UsageError):
    """No journal exists for the release id."""


class JournalError(RelnbError):
    """The journal cannot be read or written as asked."""


class JournalLocked(JournalError):
    """Another process holds the single-writer lock of this release."""

    def __init__(self, message: str, *, pid: int | None, path: str | None = None, fix: str | None = None) -> None:
        self.pid = pid
        super().__init__(message, path=path, fix=fix)


class JournalCorrupt(JournalError):
    """The hash chain or the file layout is broken; `seq` names the first bad event.

    Exit 3 like every input relnb cannot use: `relnb verify` reports a broken chain itself (exit 1),
    while a command that needs the journal (run, status, new) stops on it before doing anything."""

    def __init__(self, message: str, *, seq: int | None, path: str | None = None) -> None:
        self.seq = seq
        super().__init__(message, path=path)


class JournalSealed(JournalError):
    """The release was sealed by `relnb archive`; the record is closed."""


class PromotionRefused(RelnbError):
    """Section D may not start while an A–C gate is not passed, skipped or waived."""

    exit_code = 1

    def __init__(self, gate: str, blockers: Sequence[tuple[str, str]]) -> None:
        self.blockers = list(blockers)
        names = ", ".join(f"{g} ({s})" for g, s in self.blockers[:8])
        if len(self.blockers) > 8:
            names += f" and {len(self.blockers) - 8} more"
        super().__init__(
            f"{gate} refused: production steps need A–C passed, skipped or waived; blocking: {names}",
            gate=gate,
            fix="fix or waive the blocking gates, then run this cell again",
        )


class ActionRefused(RelnbError):
    """An action was asked to run without what its contract requires."""
