"""relnb: a notebook-driven release journal.

The public API is what this module exports; the CLI and the release templates use nothing else.
Heavy libraries (pandas, altair, boto3, psycopg, marimo) are imported only by the functions that
need them, so `import relnb` stays fast in CI and in notebooks.
"""

from . import redact, ui
from ._version import __version__
from .checklist import register_check
from .config import Config, find_config, load_config, parse_duration
from .errors import (
    ActionRefused,
    ConfigError,
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalSealed,
    PromotionRefused,
    ReleaseNotFound,
    RelnbError,
    SecretMissing,
    UsageError,
)
from .gatecontext import GateContext
from .gates import GATE_IDS, GATES, SECTIONS, GateSpec, Kind, get_gate
from .identity import Identity, whoami
from .journal import Event, VerifyReport, verify_file
from .redact import Secret, scrub
from .release import Release, RunContext, find_root, read_state
from .results import GateResult, Outcome, Status, StatusTable
from .state import ReleaseState

__all__ = [
    "GATES",
    "GATE_IDS",
    "SECTIONS",
    "ActionRefused",
    "Config",
    "ConfigError",
    "Event",
    "GateContext",
    "GateResult",
    "GateSpec",
    "Identity",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalSealed",
    "Kind",
    "Outcome",
    "PromotionRefused",
    "Release",
    "ReleaseNotFound",
    "ReleaseState",
    "RelnbError",
    "RunContext",
    "Secret",
    "SecretMissing",
    "Status",
    "StatusTable",
    "UsageError",
    "VerifyReport",
    "__version__",
    "archive",
    "find_config",
    "find_root",
    "get_gate",
    "load_config",
    "parse_duration",
    "read_state",
    "redact",
    "register_check",
    "scrub",
    "ui",
    "verify_file",
    "whoami",
]


def __dir__() -> list[str]:
    return list(__all__)


def __getattr__(name: str) -> object:
    """`relnb.archive` is loaded on first use: the template's last cell needs it, `import relnb` does not."""
    if name == "archive":
        import importlib

        return importlib.import_module(".archive", __name__)
    raise AttributeError(f"module 'relnb' has no attribute {name!r}")
