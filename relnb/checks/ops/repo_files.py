"""A6 and B4: files the release depends on exist in the commit being released.

Everything is read from git objects at the release SHA (`git cat-file`), never from a working
tree that may hold uncommitted or ignored files. Env templates are parsed for key names only;
values are never read into evidence. Which keys the target environment defines is the caller's
to say, from a source that is the target's: relnb's own process environment is not one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ... import git
from ...redact import scrub
from ...results import Outcome

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def _commit(repo: str | os.PathLike[str], sha: str) -> str | None:
    got = git.run(repo, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}")
    return got.stdout.strip() if got.returncode == 0 else None


def web_url(repo: str | os.PathLike[str]) -> str | None:
    """Browser URL of the `origin` remote when it is a GitHub/GitLab-style host, else None."""
    got = git.run(repo, "remote", "get-url", "origin")
    if got.returncode != 0:
        return None
    url = got.stdout.strip()
    m = re.match(r"^(?:git@|ssh://git@)([^:/]+)[:/](.+?)(?:\.git)?/?$", url)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    m = re.match(r"^https?://(?:[^@/]+@)?([^/]+)/(.+?)(?:\.git)?/?$", url)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    return None


def _file_at(repo: str | os.PathLike[str], sha: str, path: str) -> dict[str, Any]:
    """Existence, type, mode and size of `sha:path` (from `git ls-tree`)."""
    path = path.lstrip("/")
    if git.run(repo, "cat-file", "-e", f"{sha}:{path}").returncode != 0:
        return {"path": path, "exists": False}
    tree = git.run(repo, "ls-tree", "-l", sha, "--", path).stdout.strip()
    # "<mode> <type> <object> <size>\t<path>"
    info: dict[str, Any] = {"path": path, "exists": True}
    if tree:
        meta = tree.split("\t", 1)[0].split()
        if len(meta) >= 4:
            info.update(
                mode=meta[0],
                type=meta[1],
                object=meta[2],
                size=int(meta[3]) if meta[3].isdigit() else None,
            )
    return info


def _link(base: str | None, sha: str, path: str) -> str | None:
    if not base:
        return None
    if "{" in base:
        return base.format(sha=sha, path=path)
    return f"{base.rstrip('/')}/blob/{sha}/{path}"


def check_runbooks(
    repo: str | os.PathLike[str],
    sha: str,
    paths: Sequence[str],
    *,
    link_base: str | None = None,
) -> Outcome:
    """Every runbook exists (non-empty file) at `sha`; evidence carries links pinned to that SHA.

    `link_base` is a web URL of the repository or a template with `{sha}` and `{path}`; by
    default it is derived from the `origin` remote.
    """
    if not paths:
        return Outcome.inconclusive("no runbooks configured: set project.runbooks")
    full = _commit(repo, sha)
    if full is None:
        return Outcome.inconclusive(f"release SHA {sha!r} is not a commit in {repo}", sha=sha)
    base = link_base or web_url(repo)
    files = []
    for p in paths:
        info = _file_at(repo, full, p)
        info["url"] = _link(base, full, info["path"]) if info["exists"] else None
        files.append(info)
    missing = [f["path"] for f in files if not f["exists"]]
    not_files = [f["path"] for f in files if f["exists"] and f.get("type") != "blob"]
    empty = [f["path"] for f in files if f.get("type") == "blob" and f.get("size") == 0]
    ev = {"sha": full, "files": files, "missing": missing, "not_files": not_files, "empty": empty}
    if missing:
        return Outcome.failed(f"runbook(s) missing at {full[:12]}: {', '.join(missing)}", **ev)
    if not_files or empty:
        bad = not_files + empty
        return Outcome.failed(
            f"runbook(s) not a non-empty file at {full[:12]}: {', '.join(bad)}", **ev
        )
    return Outcome.passed(f"{len(files)} runbook(s) present at {full[:12]}", **ev)


def env_template_keys(text: str) -> list[str]:
    """Key names of a dotenv-style template (`KEY=`, `export KEY=`); comments ignored."""
    keys: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if m and m.group(1) not in keys:
            keys.append(m.group(1))
    return keys


def dotenv_keys(path: str | os.PathLike[str]) -> set[str]:
    """Key names defined in a dotenv file on disk (values are not kept)."""
    return set(env_template_keys(Path(path).read_text(encoding="utf-8", errors="replace")))


def template_keys_at(repo: str | os.PathLike[str], sha: str, env_templates: Sequence[str]) -> list[str]:
    """Every key the env templates name at `sha` (templates that do not exist add none)."""
    keys: list[str] = []
    for tpl in env_templates:
        shown = git.run(repo, "show", f"{sha}:{tpl.lstrip('/')}")
        if shown.returncode == 0:
            keys += [k for k in env_template_keys(shown.stdout) if k not in keys]
    return keys


def check_deploy_artifacts(
    repo: str | os.PathLike[str],
    sha: str,
    paths: Sequence[str],
    env_templates: Sequence[str],
    provided_keys: Iterable[str] | Mapping[str, Any] | None,
    *,
    environment: str | None = None,
    optional_keys: Iterable[str] = (),
    required_keys: Iterable[str] = (),
    key_source: str | None = None,
    keys_unavailable: str | None = None,
) -> Outcome:
    """Compose templates/scripts/env templates exist at `sha`; the templates list every
    `required_keys` name (the secrets the environment must have); every template key is provided.

    `provided_keys` are the names the target environment defines, read from a source that is the
    target's (its dotenv, a listing command, its secret store; `key_source` says which); a mapping
    is accepted and only its keys are looked at. None means they could not be read
    (`keys_unavailable` says why): the artifacts are still checked, the verdict is inconclusive.
    """
    if not paths and not env_templates:
        return Outcome.inconclusive(
            "no deploy artifacts configured: set project.deploy_artifacts/env_templates"
        )
    full = _commit(repo, sha)
    if full is None:
        return Outcome.inconclusive(f"release SHA {sha!r} is not a commit in {repo}", sha=sha)
    files = [_file_at(repo, full, p) for p in [*paths, *env_templates]]
    missing = [f["path"] for f in files if not f["exists"]]
    notes = [
        f"{f['path']} is not executable (mode {f.get('mode')})"
        for f in files
        if f["exists"] and f["path"].endswith(".sh") and f.get("mode") not in ("100755", None)
    ]
    provided = set(
        provided_keys.keys() if isinstance(provided_keys, Mapping) else provided_keys or []
    )
    optional = set(optional_keys)
    templates: dict[str, dict[str, Any]] = {}
    missing_keys: dict[str, list[str]] = {}
    for tpl in env_templates:
        shown = git.run(repo, "show", f"{full}:{tpl.lstrip('/')}")
        if shown.returncode != 0:
            continue
        keys = env_template_keys(shown.stdout)
        absent = [k for k in keys if k not in provided and k not in optional]
        templates[tpl] = {"keys": keys, "missing": absent}
        if absent:
            missing_keys[tpl] = absent
    target = f" for {environment}" if environment else ""
    listed = {k for t in templates.values() for k in t["keys"]}
    unlisted = [k for k in dict.fromkeys(required_keys) if k not in listed] if env_templates else []
    ev: dict[str, Any] = {
        "sha": full,
        "environment": environment,
        "files": files,
        "missing_files": missing,
        "env_templates": templates,
        "required_keys_not_in_templates": unlisted,
        "missing_keys": missing_keys,
        "key_source": key_source if provided_keys is not None else None,
        "keys_unavailable": keys_unavailable if provided_keys is None else None,
        "provided_key_count": len(provided) if provided_keys is not None else None,
        "notes": notes,
    }
    if missing:
        return Outcome.failed(
            f"deploy artifact(s) missing at {full[:12]}: {', '.join(missing)}", **ev
        )
    if unlisted:
        return Outcome.failed(
            f"required secret(s){target} not listed in any env template at {full[:12]}: "
            f"{', '.join(scrub(n) for n in unlisted[:10])}",
            **ev,
        )
    if env_templates and provided_keys is None:
        why = keys_unavailable or "no key source to compare them with: configure the environment's secrets"
        return Outcome.inconclusive(
            f"{len(files)} deploy artifact(s) present at {full[:12]}; env template keys not "
            f"compared{target}: {why}",
            **ev,
        )
    if missing_keys:
        names = sorted({k for ks in missing_keys.values() for k in ks})
        return Outcome.failed(
            f"{len(names)} env key(s) not provided{target}: {', '.join(scrub(n) for n in names[:10])}",
            **ev,
        )
    total = sum(len(t["keys"]) for t in templates.values())
    if not env_templates:
        return Outcome.passed(f"{len(files)} deploy artifact(s) present at {full[:12]}", **ev)
    source = f" ({key_source})" if key_source else ""
    return Outcome.passed(
        f"{len(files)} deploy artifact(s) present at {full[:12]}; {total} env key(s) provided{target}{source}",
        **ev,
    )
