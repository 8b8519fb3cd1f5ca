"""A project's dotenv file: where its `*_env` variables live between runs.

relnb reads secrets from environment variables named in relnb.toml. A release lead who opens a new
shell (or the demo's project after `relnb demo --keep`) would otherwise meet `SecretMissing` for
every one of them; `[project] env_file` names a file relnb loads into its own environment — which
the notebook it runs inherits — without overriding what the shell already set. Values are never
printed: the variables the config references as secrets are registered with the redactor when the
release opens, like any other.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .errors import ConfigError


def parse_dotenv(text: str) -> dict[str, str]:
    """KEY=VALUE lines; `export`, comments, single/double quotes. No interpolation (on purpose)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().split("=", 1)[1].strip().startswith('"'):
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        out[key] = value
    return out



def load_env_file(path: Path, *, config_file: str) -> list[str]:
    """Set the file's variables that are not set yet; the names it set. A missing or unreadable
    file is a config error naming the key, so a run never starts with half its secrets."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{config_file}: project.env_file: cannot read {path} ({exc.strerror or exc})",
            path=config_file,
            key="project.env_file",
            fix="create the file (KEY=value lines, mode 0600) or remove project.env_file",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{config_file}: project.env_file: {path} is not UTF-8 text",
            path=config_file,
            key="project.env_file",
            fix="write it as KEY=value lines",
        ) from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{config_file}: project.env_file: {path} is readable by other users (mode {mode:o})",
            path=config_file,
            key="project.env_file",
            fix=f"chmod 600 {path}",
        )
    set_now = []
    for key, value in parse_dotenv(text).items():
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) and key not in os.environ:
            os.environ[key] = value
            set_now.append(key)
    return set_now
