"""Which code answers each gate: a registry from gate ID to a provider.

A provider takes a `GateContext` (the release, its config, the environment it looks at) and
returns an `Outcome`. relnb's own providers, a plug-in package's (entry point group
`relnb.checks`, named by gate ID: `C5 = "acme_relnb.checks:grafana"`) and the project's own
(`register_check` in the notebook) go into one registry; the project's code wins, then an
installed plug-in, then relnb. The template's cells stay one line each (`release.check("B6")`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .gatecontext import GateContext, Provider
from .gates import Kind, get_gate
from .plugins import CODE, RELNB, Registry, callable_shape
from .results import Outcome

CHECKS: Registry[Provider] = Registry("gate check", "relnb.checks", callable_shape, plugins_replace_relnb=True)
_MANUAL: set[str] = set()


def register_check(gate_id: str, provider: Provider, *, manual: bool = False) -> None:
    """Make `provider` answer `gate_id` (replacing relnb's own and any plug-in's)."""
    gid = get_gate(gate_id).id
    CHECKS.register(gid, provider, origin=CODE, replace=True)
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
    if gid not in CHECKS:
        return _manual(gid), True
    plugin = CHECKS.origin(gid) not in (RELNB, CODE)
    return CHECKS.get(gid), gid in _MANUAL and not plugin


def takes_sign_off(gate_id: str, manual: Iterable[str] = ()) -> bool:
    """Is a person's sign-off what settles this gate? A sign-off gate, a check the project lists
    as manual (`[gates] manual`), or an item with no automated provider. Everything else is
    settled by its own evidence, and accepting it without that evidence is a waiver."""
    spec = get_gate(gate_id)
    if spec.kind is Kind.SIGN_OFF:
        return True
    if spec.kind is not Kind.ACTION and spec.id in {g.upper() for g in manual}:
        return True
    return provider_for(spec.id)[1]


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
        if CHECKS.origin_now(gid) is None:
            CHECKS.register(gid, fn)
            if manual:
                _MANUAL.add(gid)
