"""Which code answers each gate: a registry from gate ID to a provider.

A provider takes a `GateContext` (the release, its config, the environment it looks at) and
returns an `Outcome`. relnb registers its own providers through the same `register_check` a team
would use to replace one, so the template's cells stay one line each (`release.check("B6")`).
Providers import their integration lazily: the registry is core, the checks are leaves.
"""

from __future__ import annotations

from .gatecontext import GateContext, Provider
from .gates import get_gate
from .results import Outcome

_PROVIDERS: dict[str, Provider] = {}
_MANUAL: set[str] = set()


def register_check(gate_id: str, provider: Provider, *, manual: bool = False) -> None:
    """Make `provider` answer `gate_id` (replacing relnb's own)."""
    gid = get_gate(gate_id).id
    _PROVIDERS[gid] = provider
    if manual:
        _MANUAL.add(gid)
    else:
        _MANUAL.discard(gid)


def provider_for(gate_id: str) -> tuple[Provider, bool]:
    """The provider answering a gate and whether it is a manual (sign-off) one."""
    if gate_id == "__manual__":
        return _manual(gate_id), True
    gid = get_gate(gate_id).id
    _load_builtin()
    return _PROVIDERS.get(gid, _manual(gid)), gid in _MANUAL or gid not in _PROVIDERS


def _manual(gate_id: str) -> Provider:
    def provider(ctx: GateContext) -> Outcome:
        return Outcome.pending(
            "manual item: confirm it by hand (sign-off records who and when)", manual=True
        )

    return provider


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import providers

    for gid, (fn, manual) in providers.BUILTIN.items():
        _PROVIDERS.setdefault(gid, fn)
        if manual:
            _MANUAL.add(gid)
