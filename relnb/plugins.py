"""Named implementations that relnb and installed packages contribute the same way.

Every place where teams differ (a gate's check, a queue library, a migration ledger, a metrics
source, a backup store, a deploy target) is one `Registry`: relnb registers its own
implementations into it exactly as a plug-in would, and packages add theirs through the
registry's entry point group, e.g. in the plug-in's pyproject.toml:

    [project.entry-points."relnb.queue_inspectors"]
    sidekiq = "acme_relnb.sidekiq:SidekiqInspector"

Entry points are read the first time a registry is asked for a name, so `import relnb` stays
fast and a broken plug-in only matters when it is used. A plug-in that fails to load, or whose
object does not have the registry's shape, is an error naming the entry point and the
distribution, never a traceback from deep inside relnb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import ConfigError, UsageError
from .redact import scrub

T = TypeVar("T")
RELNB = "relnb"  # the origin of relnb's own registrations
CODE = "code"  # registered by the project's own code (e.g. register_check in the notebook)

# Every entry point group relnb reads, with what one entry point contributes.
GROUPS = {
    "relnb.checks": "gate check (entry point name: the gate ID)",
    "relnb.queue_inspectors": "queue kind",
    "relnb.migration_ledgers": "migration ledger kind",
    "relnb.metric_sources": "metrics source kind",
    "relnb.deploy_providers": "deploy provider (environments.<env>.deploy_provider)",
    "relnb.backup_stores": "backup store kind",
    "relnb.flows": "smoke flows",
}


@dataclass(frozen=True)
class Installed:
    group: str
    name: str
    value: str
    distribution: str

    def __str__(self) -> str:
        return f"{self.group}: {self.name} = {self.value} ({self.distribution})"


def installed() -> list[Installed]:
    """The plug-ins installed packages declare, without importing any of them (for `relnb status`)."""
    from importlib.metadata import entry_points

    out = []
    for group in GROUPS:
        for ep in entry_points(group=group):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown distribution"
            out.append(Installed(group, ep.name, ep.value, dist))
    return sorted(out, key=lambda i: (i.group, i.name))


@dataclass(frozen=True)
class Registration(Generic[T]):
    name: str
    value: T
    origin: str  # "relnb", or "<distribution> <version> (entry point <group>:<name>)"


class Registry(Generic[T]):
    """One kind of plug-in: a name → implementation table filled by relnb and by entry points.

    `shape(value)` returns why a value cannot serve (None when it can); it is how each registry
    states its Protocol at the door instead of failing later in the middle of a release.
    """

    def __init__(
        self,
        what: str,
        group: str,
        shape: Callable[[Any], str | None] | None = None,
        *,
        plugins_replace_relnb: bool = False,
    ) -> None:
        self.what = what
        self.group = group
        self._shape = shape
        # a plug-in may take over relnb's own implementation of a name (a team's check for a gate)
        self._plugins_replace = plugins_replace_relnb
        self._items: dict[str, Registration[T]] = {}
        self._loaded = False

    def register(self, name: str, value: T, *, origin: str = RELNB, replace: bool = False) -> None:
        problem = self._shape(value) if self._shape else None
        if problem:
            raise UsageError(f"{self.what} {name!r} from {origin}: {problem}")
        if name in self._items and not replace:
            raise UsageError(
                f"{self.what} {name!r} is registered twice: by {self._items[name].origin} and by {origin}",
                fix="uninstall one of them, or register with replace=True on purpose",
            )
        self._items[name] = Registration(name, value, origin)

    def unregister(self, name: str) -> None:
        """Take a name back out (a notebook or test that registered its own for a while)."""
        self._items.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            dist = ep.dist
            origin = (
                f"{dist.name} {dist.version} (entry point {self.group}:{ep.name})"
                if dist is not None
                else f"entry point {self.group}:{ep.name}"
            )
            try:
                value = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"{self.what} plug-in {origin} = {ep.value} failed to load: "
                    f"{type(exc).__name__}: {scrub(str(exc))[:200]}",
                    key=f"{self.group}:{ep.name}",
                    fix=f"fix or uninstall {dist.name if dist else 'the package providing it'}",
                ) from None
            current = self._items.get(ep.name)
            if current is not None and current.origin == CODE:
                continue  # the project's own code chose explicitly; it wins over what is installed
            replace = current is not None and current.origin == RELNB and self._plugins_replace
            try:
                self.register(ep.name, value, origin=origin, replace=replace)
            except UsageError as exc:
                raise ConfigError(str(exc), key=f"{self.group}:{ep.name}", fix=exc.fix) from None

    def origin_now(self, name: str) -> str | None:
        """Who registered `name` so far, without reading entry points (relnb filling in its own)."""
        reg = self._items.get(name)
        return reg.origin if reg else None

    def origin(self, name: str) -> str | None:
        self._load_entry_points()
        reg = self._items.get(name)
        return reg.origin if reg else None

    def get(self, name: str) -> T:
        self._load_entry_points()
        reg = self._items.get(name)
        if reg is None:
            raise UsageError(
                f"unknown {self.what} {name!r}",
                fix=f"use one of: {', '.join(self.names())} (or install the plug-in that provides it)",
            )
        return reg.value

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def registrations(self) -> Iterator[Registration[T]]:
        self._load_entry_points()
        yield from (self._items[n] for n in sorted(self._items))

    def plugins(self) -> list[Registration[T]]:
        """What installed packages added (for `relnb status` and the docs)."""
        return [r for r in self.registrations() if r.origin != RELNB]


def callable_shape(value: Any) -> str | None:
    return None if callable(value) else f"is a {type(value).__name__}, not callable"
