"""Which smoke flows a project has, collected from wherever the app's team keeps them.

Flows belong to the application, not to relnb: an API relnb never saw must be smoke-tested with
per-step evidence without editing relnb. Four sources, all equal, checked for name clashes:

- Python flow modules in the app's repository (`smoke.python`: a path relative to project.repo
  or a dotted module name): every public top-level `async def name(s)` defined there is a flow
  named `name`, run with a `FlowSession`. The module needs nothing from relnb to be written.
- declarative flow files (`smoke.files`, TOML or YAML, relative to project.repo) and
- declarative flows inline in relnb.toml (`[smoke.flows.<name>]`), both read by `flowfile`;
- installed packages, through the `relnb.flows` entry point group: an entry point naming a
  module contributes its flows as above; one naming a coroutine function is the flow called
  like the entry point.

`smoke.staging` and `smoke.production` choose which of them B5 and D5 run (default: all).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ...config import Config, parse_duration
from ...errors import ConfigError, RelnbError
from ...redact import Secret, scrub
from ...results import Outcome
from .flowfile import parse_flows, read_flow_file
from .smoke import Flow, run_flows

ENTRY_POINT_GROUP = "relnb.flows"


@dataclass(frozen=True)
class FlowEntry:
    name: str
    flow: Flow
    source: str  # where it was defined, as the evidence and the clash message say it


def module_flows(module: ModuleType) -> dict[str, Flow]:
    """The public coroutine functions a module defines itself (imported helpers are not flows)."""
    out: dict[str, Flow] = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(obj):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        out[name] = obj
    return out


@contextmanager
def _on_path(directory: Path) -> Iterator[None]:
    """The app's repository importable while its flow module loads (so it may import siblings),
    and left as it was found."""
    entry = str(directory)
    sys.path.insert(0, entry)
    # Importing writes __pycache__/ beside the source: that would change the team's working
    # tree (a dirty checkout, files their own tools then trip over), so nothing is written.
    writes_bytecode = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.dont_write_bytecode = writes_bytecode
        with suppress(ValueError):  # the module itself may have removed it
            sys.path.remove(entry)


def load_module(spec: str, repo: Path, file: str, where: str) -> ModuleType:
    """`smoke/flows.py` (a file in the app's repository) or `myapp.smoke` (a module name)."""
    is_file = spec.endswith(".py") or "/" in spec
    try:
        with _on_path(repo):
            if not is_file:
                return importlib.import_module(spec)
            path = (repo / spec).resolve()
            if not path.is_file():
                raise ConfigError(
                    f"{file}: {where}: {spec} does not exist in {repo}",
                    path=file, key=where, fix="give the flow module's path relative to project.repo",
                )
            digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
            name = f"relnb_flows_{path.stem}_{digest}"
            loader_spec = importlib.util.spec_from_file_location(name, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module  # dataclasses and pickling look a module up by name
            loader_spec.loader.exec_module(module)
            return module
    except RelnbError:
        raise
    except Exception as exc:  # the team's module is broken: say where, not a traceback
        raise ConfigError(
            f"{file}: {where}: importing {spec} failed: {type(exc).__name__}: {scrub(str(exc))[:200]}",
            path=file, key=where, fix="fix the flow module (run `python -c 'import …'` to see the traceback)",
        ) from None


def entry_point_flows() -> Iterator[FlowEntry]:
    """Flows that installed packages publish under `relnb.flows`."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep.dist, "name", None) or "an unknown distribution"
        source = f"entry point {ep.name} = {ep.value} ({dist})"
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(
                f"{source}: loading it failed: {type(exc).__name__}: {scrub(str(exc))[:200]}",
                key=f"{ENTRY_POINT_GROUP}:{ep.name}", fix=f"fix or uninstall {dist}",
            ) from None
        if isinstance(obj, ModuleType):
            found = module_flows(obj)
            if not found:
                raise ConfigError(
                    f"{source}: the module defines no flow", key=f"{ENTRY_POINT_GROUP}:{ep.name}",
                    fix="define `async def name(s):` functions at its top level",
                )
            for name, fn in found.items():
                yield FlowEntry(name, fn, source)
        elif inspect.iscoroutinefunction(obj):
            yield FlowEntry(ep.name, obj, source)
        else:
            raise ConfigError(
                f"{source}: it is a {type(obj).__name__}, not a module or an `async def` flow",
                key=f"{ENTRY_POINT_GROUP}:{ep.name}", fix=f"point the entry point at a module or a coroutine function in {dist}",
            )


class FlowCatalogue:
    """Every flow the project defines, by name, with where each came from."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.entries: dict[str, FlowEntry] = {}

    def add(self, entry: FlowEntry) -> None:
        if entry.name in self.entries:
            raise ConfigError(
                f"{self.file}: smoke flow {entry.name!r} is defined twice: in "
                f"{self.entries[entry.name].source} and in {entry.source}",
                path=self.file, key="smoke", fix="rename one of them",
            )
        self.entries[entry.name] = entry

    def select(self, names: list[str], key: str) -> dict[str, FlowEntry]:
        if not names:
            return dict(self.entries)
        unknown = [n for n in names if n not in self.entries]
        if unknown:
            raise ConfigError(
                f"{self.file}: {key}: no flow named {', '.join(map(repr, unknown))}",
                path=self.file, key=key,
                fix=f"defined flows: {', '.join(sorted(self.entries)) or 'none'}",
            )
        return {n: self.entries[n] for n in names}


def catalogue(config: Config) -> FlowCatalogue:
    """All flows of the project; a broken source is a ConfigError naming it, never a silent gap."""
    smoke = config.data["smoke"]
    repo = config.repo_path()
    cat = FlowCatalogue(config.file)
    if smoke["entry_points"]:
        for entry in entry_point_flows():
            cat.add(entry)
    for i, spec in enumerate(smoke["python"]):
        module = load_module(spec, repo, config.file, f"smoke.python[{i}]")
        found = module_flows(module)
        if not found:
            raise ConfigError(
                f"{config.file}: smoke.python[{i}]: {spec} defines no flow",
                path=config.file, key=f"smoke.python[{i}]",
                fix="define `async def name(s):` functions at its top level",
            )
        for name, fn in found.items():
            cat.add(FlowEntry(name, fn, spec))
    for spec in smoke["files"]:
        for name, flow in read_flow_file(repo / spec, spec).items():
            cat.add(FlowEntry(name, flow, spec))
    if smoke["flows"]:
        for name, flow in parse_flows(smoke["flows"], config.file, "smoke.flows").items():
            cat.add(FlowEntry(name, flow, f"{Path(config.file).name} [smoke.flows]"))
    return cat


def smoke_outcome(
    config: Config,
    env_name: str,
    owner: Secret | None,
    member: Secret | None,
) -> Outcome:
    """B5 (staging) / D5 (production): the configured flows against that environment's API."""
    try:
        cat = catalogue(config)
        selected = cat.select(config.data["smoke"][env_name], f"smoke.{env_name}")
    except RelnbError as exc:
        return Outcome.inconclusive(str(exc), config_error=str(exc))
    if not selected:
        return Outcome.inconclusive(
            "no smoke flows defined: set smoke.python, smoke.files or [smoke.flows.<name>] "
            "(docs/flows.md)"
        )
    smoke = config.data["smoke"]
    env = config.env(env_name)
    out = run_flows(
        env["base_url"],
        owner,
        member,
        flows={n: e.flow for n, e in selected.items()},
        auth_scheme=env["auth"]["scheme"],
        request_timeout_s=parse_duration(smoke["request_timeout"]),
        poll_deadline_s=parse_duration(smoke["poll_timeout"]),
        poll_interval_s=parse_duration(smoke["poll_interval"]),
    )
    sources = {n: e.source for n, e in selected.items()}
    return Outcome(out.status, out.summary, {**out.evidence, "flow_sources": sources})
