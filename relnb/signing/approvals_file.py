"""Detached signed approvals for headless runs: `relnb sign` writes them, `relnb run --sign-offs` reads them.

The file is JSON, and several people can add to the same file one after another:

    {"format": "relnb-approvals/1", "release_id": "1.4.0", "release_sha": "<40 hex>",
     "approvals": [{"statement": {...}, "signature": "-----BEGIN SSH SIGNATURE-----...",
                    "principal": "alice@example.com", "fingerprint": "SHA256:..."}, ...]}

A pre-signed statement has no `prev` (the event does not exist yet); it is bound to release id,
release SHA, kind, gate and text instead, and each one may be consumed once. It holds public data
only, so it can be passed around in CI artifacts or committed to a release branch.

`sign_offs_for_run()` turns the file into the `{gate: {"by", "note", "approval"}}` mapping the
release's RunContext already understands, so sign-off gates pick their pre-signed approval up.
`preflight()` tells a headless run, before anything executes, which required approvals are
missing (gate and role) or invalid, so it can stop with the pending exit code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import git
from ..errors import UsageError
from .keys import (
    Approval,
    SigningError,
    allowed_signers_at,
    fingerprint,
    parse_allowed_signers,
    principal_for,
    resolve_key,
    sign_statement,
    verify_approval,
)
from .policy import Policy
from .statement import PRESIGNABLE, make_statement, mismatch

FORMAT = "relnb-approvals/1"
EXIT_OK, EXIT_FAILED, EXIT_PENDING = 0, 1, 2


@dataclass
class ApprovalsFile:
    release_id: str
    release_sha: str
    approvals: list[Approval] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "release_id": self.release_id,
            "release_sha": self.release_sha,
            "approvals": [a.to_dict() for a in self.approvals],
        }

    def find(self, kind: str, gate: str) -> list[Approval]:
        return [
            a
            for a in self.approvals
            if a.statement.get("kind") == kind and a.statement.get("gate") == gate
        ]

    def add(self, approval: Approval) -> None:
        st = approval.statement
        if st.get("release_id") != self.release_id or st.get("release_sha") != self.release_sha:
            raise UsageError(
                f"approval is for release {st.get('release_id')} at {str(st.get('release_sha'))[:12]}, "
                f"this file is for {self.release_id} at {self.release_sha[:12]}"
            )
        self.approvals = [
            a
            for a in self.approvals
            if not (
                a.principal == approval.principal
                and a.statement.get("kind") == st.get("kind")
                and a.statement.get("gate") == st.get("gate")
            )
        ]
        self.approvals.append(approval)


def is_approvals_file(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def read_approvals(path: str | os.PathLike[str]) -> ApprovalsFile:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"approvals file {path} does not exist", path=str(path)) from None
    except ValueError as exc:
        raise UsageError(f"approvals file {path} is not JSON: {exc}", path=str(path)) from None
    if not is_approvals_file(data):
        raise UsageError(
            f"{path} is not a signed approvals file (format {FORMAT})",
            path=str(path),
            fix="create it with `relnb sign`",
        )
    # the shape `relnb sign` writes, checked field by field: bad input is a usage error naming the
    # field, never a TypeError from inside the reader (issue 22: 0 tracebacks on bad input)
    fix = "create it with `relnb sign`, or pass a plain sign-offs file"
    entries = data.get("approvals", [])
    if not isinstance(entries, list):
        raise UsageError(f"approvals file {path}: approvals must be a list", path=str(path), key="approvals", fix=fix)
    approvals = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("statement"), dict):
            raise UsageError(
                f"approvals file {path}: approvals[{i}] is not a signed approval (no statement object)",
                path=str(path), key=f"approvals[{i}]", fix=fix,
            )
        try:
            approvals.append(Approval.from_dict(entry))
        except SigningError as exc:
            raise UsageError(f"approvals file {path}: approvals[{i}]: {exc.message}", path=str(path)) from None
    for key in ("release_id", "release_sha"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise UsageError(f"approvals file {path}: {key} is missing or not a string", path=str(path), key=key, fix=fix)
    return ApprovalsFile(data["release_id"], data["release_sha"], approvals)


def write_approvals(path: str | os.PathLike[str], file: ApprovalsFile) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(file.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def sign_offs_for_run(file: ApprovalsFile) -> dict[str, dict[str, Any]]:
    """`{gate: {"by", "note", "approval"}}` for RunContext.sign_offs (one sign-off per gate)."""
    out: dict[str, dict[str, Any]] = {}
    for a in file.approvals:
        st = a.statement
        if st.get("kind") == "sign-off" and st.get("gate"):
            out[str(st["gate"])] = {
                "by": a.principal,
                "note": st.get("text", ""),
                "approval": a.to_dict(),
            }
    return out


def skips_for_run(file: ApprovalsFile) -> dict[str, str]:
    """`{gate: reason}` of the file's skip approvals: a pre-signed skip is the decision to skip,
    and its reason is the signed text verbatim (any other wording would not match the signature)."""
    return {
        str(a.statement["gate"]): str(a.statement.get("text", ""))
        for a in file.approvals
        if a.statement.get("kind") == "skip" and a.statement.get("gate")
    }


@dataclass
class Preflight:
    missing: list[str] = field(
        default_factory=list
    )  # "A3 needs a signed sign-off by a principal with role db-reviewer"
    invalid: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.invalid:
            return EXIT_FAILED
        return EXIT_PENDING if self.missing else EXIT_OK

    def lines(self) -> list[str]:
        return [f"invalid approval: {m}" for m in self.invalid] + [
            f"pending: {m}" for m in self.missing
        ]


def preflight(
    file: ApprovalsFile | None,
    *,
    release_id: str,
    release_sha: str,
    allowed_signers_text: str | None,
    policy: Policy,
    needed: Iterable[tuple[str, str]],
) -> Preflight:
    """Which needed (gate, kind) approvals the file covers validly, by a principal the policy accepts.

    `needed` is e.g. every sign-off gate of the release that is not settled yet, plus
    ("D", "promote") × min_production_approvers when production is part of the run.
    """
    result = Preflight()
    allowed = parse_allowed_signers(allowed_signers_text or "")
    good: list[dict[str, Any]] = []
    for a in file.approvals if file else []:
        st = a.statement
        what = f"{st.get('kind')} of {st.get('gate')} by {a.principal}"
        probe = {"type": _type(str(st.get("kind"))), "payload": _payload(st)}
        problem = None
        if st.get("kind") not in PRESIGNABLE:
            problem = f"{st.get('kind')} cannot be pre-signed"
        else:
            problem = mismatch(probe, st, release_id, release_sha)
        if problem is None and "prev" in st:
            problem = "a pre-signed approval must not carry prev"
        if problem is None:
            if allowed_signers_text is None:
                problem = "allowed_signers is not in the repository at the release SHA"
            else:
                res = verify_approval(a, allowed_signers_text)
                problem = None if res.ok else res.reason
        if problem is None:
            v = policy.check(
                str(st["kind"]),
                st.get("gate"),
                a.principal,
                allowed.roles_of(a.principal),
                policy.release_lead,
                good,
            )
            problem = "; ".join(x.message for x in v) or None
        if problem is not None:
            result.invalid.append(f"{what}: {problem}")
            continue
        good.append({"kind": st["kind"], "gate": st.get("gate"), "principal": a.principal})
    for gate, kind in needed:
        have = [g for g in good if g["kind"] == kind and g["gate"] == gate]
        if kind == "promote":
            if policy.check_promotion(good):
                result.missing.append(policy.check_promotion(good)[0].message)
            continue
        if not have:
            result.missing.append(policy.describe_need(gate, kind))
    return result


def _type(kind: str) -> str:
    return {"force": "gate-started", "promote": "promotion-approved"}.get(kind, kind)


def _payload(st: Mapping[str, Any]) -> dict[str, Any]:
    kind, gate, text = st.get("kind"), st.get("gate"), st.get("text", "")
    if kind in ("sign-off", "promote"):
        return {"gate": gate, "note": text}
    if kind == "force":
        return {"gate": gate, "forced": True, "reason": text}
    return {"gate": gate, "reason": text}


def presign(
    release_id: str,
    gate: str,
    *,
    kind: str,
    text: str,
    repo: Path,
    settings: Any,
    out: Path,
    sha: str | None = None,
    key: str | None = None,
    principal: str | None = None,
    created: Mapping[str, Any] | None = None,
    project_release_lead: str | None = None,
) -> Approval:
    """Sign one approval in advance and add it to the approvals file `out`.

    Refuses (SigningRefused, nothing written) when the signer's key is not in allowed_signers at
    the release SHA, or the policy forbids this principal (role, four eyes) — checked now, and
    again when the run consumes it and at verify.
    """
    from ..gates import get_gate
    from .approve import SigningRefused

    gate = "D" if gate.upper() == "D" else get_gate(gate).id
    if kind not in PRESIGNABLE:
        raise UsageError(f"{kind} cannot be pre-signed", fix=f"use one of {', '.join(PRESIGNABLE)}")
    if kind == "promote" and gate != "D":
        raise UsageError(
            "a promotion approval is for gate D", fix="relnb sign <release> D --kind promote"
        )
    sha = sha or (created or {}).get("git_sha") or git.output(repo, "rev-parse", "HEAD")
    if not sha:
        raise UsageError("cannot tell the release SHA", fix="pass --sha")
    allowed_text = allowed_signers_at(repo, sha, settings.allowed_signers)
    if allowed_text is None:
        raise UsageError(
            f"{settings.allowed_signers} is not in the repository at {sha[:12]}",
            fix="commit it before the release SHA",
        )
    key = resolve_key(key, settings.key, repo=repo)
    if key is None:
        raise UsageError(
            "no signing key", fix="pass --key, or set RELNB_SIGNING_KEY / [signing] key"
        )
    allowed = parse_allowed_signers(allowed_text)
    who = principal_for(key, allowed, wanted=principal or settings.principal)
    policy = settings.policy(project_release_lead=project_release_lead, created=created or None)
    file = read_approvals(out) if out.exists() else ApprovalsFile(release_id, sha)
    earlier = [
        {"kind": a.statement.get("kind"), "gate": a.statement.get("gate"), "principal": a.principal}
        for a in file.approvals
        if a.principal != who
    ]
    violations = policy.check(
        kind,
        gate,
        who,
        allowed.roles_of(who),
        policy.release_lead,
        earlier,
        fingerprint=fingerprint(key),
    )
    if violations:
        raise SigningRefused(
            "; ".join(v.message for v in violations),
            violations,
            gate=gate,
            fix=policy.describe_need(gate, kind),
        )
    statement = make_statement(
        kind=kind, release_id=release_id, release_sha=sha, gate=gate, text=text, principal=who
    )
    approval = sign_statement(statement, key)
    file.add(approval)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_approvals(out, file)
    return approval
