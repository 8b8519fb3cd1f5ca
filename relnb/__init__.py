"""relnb: a notebook-driven release journal.

The public API is what this module exports; the CLI and the release templates use nothing else.
Heavy libraries (pandas, altair, boto3, psycopg, marimo) are imported only by the functions that
need them, so `import relnb` stays fast in CI and in notebooks; the names in `_LAZY` (the headless
runner, templates, signing, archive) load their module on first use.

The demo (`relnb demo`) is a separate package, relnb_demo, installed with the `demo` extra; it uses
this API like any team's code, and the library never imports it.
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
from .plugins import installed as installed_plugins
from .redact import Secret, scrub
from .release import ENV_SIGNOFFS, ROLLBACK_ON_FAILURE, Release, RunContext, find_root, read_state
from .results import GateResult, Outcome, Status, StatusTable
from .state import ReleaseState

# Loaded on first use (PEP 562): each pulls in subprocess, nbclient, signing or archive code that
# a notebook's `import relnb` never needs. name → (module, attribute; None = the module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    "archive": (".archive", None),
    "RunOptions": (".headless", "RunOptions"),
    "run_notebook": (".headless", "run_notebook"),
    "parse_sign_off": (".headless", "parse_sign_off"),
    "load_sign_offs_file": (".headless", "load_sign_offs_file"),
    "approvals_file_at": (".headless", "approvals_file_at"),
    "check_declared_flows": (".headless", "check_declared_flows"),
    "template_path": (".template", "template_path"),
    "instantiate_template": (".template", "instantiate"),
    "review_notebook": (".template", "review_notebook"),
    "refresh_header_cache": (".notebook_cache", "refresh_header_cache"),
    "SigningSettings": (".signing", "SigningSettings"),
    "presign": (".signing.approvals_file", "presign"),
    "skips_for_run": (".signing.approvals_file", "skips_for_run"),
    "PRESIGNABLE_KINDS": (".signing.statement", "PRESIGNABLE"),
}

__all__ = [
    "ENV_SIGNOFFS",
    "GATES",
    "GATE_IDS",
    "PRESIGNABLE_KINDS",
    "ROLLBACK_ON_FAILURE",
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
    "RunOptions",
    "Secret",
    "SecretMissing",
    "SigningSettings",
    "Status",
    "StatusTable",
    "UsageError",
    "VerifyReport",
    "__version__",
    "approvals_file_at",
    "archive",
    "check_declared_flows",
    "find_config",
    "find_root",
    "get_gate",
    "installed_plugins",
    "instantiate_template",
    "load_config",
    "load_sign_offs_file",
    "parse_duration",
    "parse_sign_off",
    "presign",
    "read_state",
    "redact",
    "refresh_header_cache",
    "register_check",
    "review_notebook",
    "run_notebook",
    "scrub",
    "skips_for_run",
    "template_path",
    "ui",
    "verify_file",
    "whoami",
]


def __dir__() -> list[str]:
    return list(__all__)


def __getattr__(name: str) -> object:
    """A lazy export on first use (PEP 562), then cached in the module's globals.

    The CLI and relnb_demo reach the headless runner, templates, signing and archive code through
    these names (they are in `__all__`, so they are the API), while a notebook's `import relnb`
    loads none of those modules.
    """
    if name not in _LAZY:
        raise AttributeError(f"module 'relnb' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    loaded = importlib.import_module(module, __name__)
    value = loaded if attr is None else getattr(loaded, attr)
    globals()[name] = value
    return value
