"""SSH signing keys, the allowed_signers file, and `ssh-keygen -Y sign/verify`, the way git does it.

relnb never reads, copies or prints private key material: it passes the key's *path* to
`ssh-keygen`, which reads it itself (or asks ssh-agent when the path is a `.pub` and
SSH_AUTH_SOCK is set). Only public keys, fingerprints and armored signatures come back. Keys with
a passphrase and no agent fail fast (ssh-keygen runs without a terminal), never hang.

allowed_signers (default `.relnb/allowed_signers`, kept in the application repository) uses
OpenSSH's format, plus one relnb convention for roles, on comment lines ssh-keygen ignores:

    # relnb-roles: alice@example.com db-reviewer,prod-approver
    alice@example.com namespaces="relnb" ssh-ed25519 AAAA...

Roles live there (not in relnb.toml) so that verification reads keys *and* roles as of the
release's SHA: neither a key nor a role granted later can approve the past.

Key resolution (first that is set): an explicit path, $RELNB_SIGNING_KEY, `[signing] key` in
relnb.toml, git's `user.signingkey` when `gpg.format = ssh` (a path, or `key::ssh-ed25519 AAAA…`
for an agent-held key).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import git
from ..errors import RelnbError
from .statement import NAMESPACE, statement_bytes

ENV_KEY = "RELNB_SIGNING_KEY"
ENV_PRINCIPAL = "RELNB_SIGNING_PRINCIPAL"
ROLES_MARK = "relnb-roles:"
_TIMEOUT_S = 30
_GOOD = re.compile(
    r'Good "(?P<ns>[^"]+)" signature (?:for (?P<principal>\S+) )?with (?P<type>\S+) key (?P<fp>SHA256:\S+)'
)


class SigningError(RelnbError):
    """A key cannot be used, ssh-keygen is missing, or allowed_signers cannot be read."""


@dataclass(frozen=True)
class Approval:
    """A signed approval as stored in an event payload under "approval" (public data only)."""

    statement: dict[str, Any]
    signature: str  # armored "-----BEGIN SSH SIGNATURE-----" block
    principal: str
    fingerprint: str  # SHA256:… of the key that made the signature

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "signature": self.signature,
            "principal": self.principal,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Approval:
        try:
            statement = data["statement"]
            if not isinstance(statement, dict):
                raise TypeError("statement is not an object")
            return cls(
                dict(statement),
                str(data["signature"]),
                str(data["principal"]),
                str(data["fingerprint"]),
            )
        except (KeyError, TypeError) as exc:
            raise SigningError(f"malformed approval ({exc})") from None


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str
    fingerprint: str | None = None


def ssh_keygen() -> str:
    path = shutil.which("ssh-keygen")
    if not path:
        raise SigningError(
            "ssh-keygen is not installed; signed approvals need it",
            fix="install OpenSSH (apt-get install openssh-client), or set [signing] required = false",
        )
    return path


def _run(
    args: list[str], data: bytes = b"", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """ssh-keygen without a controlling terminal (no passphrase prompt can hang), time-bounded."""
    try:
        return subprocess.run(
            [ssh_keygen(), *args],
            input=data,
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    except subprocess.TimeoutExpired:
        raise SigningError(
            f"ssh-keygen {args[0]} {args[1] if len(args) > 1 else ''} timed out after {_TIMEOUT_S} s"
        ) from None


def _err(proc: subprocess.CompletedProcess[bytes]) -> str:
    """ssh-keygen's own message (it never prints key material; scrubbed anyway by callers)."""
    text = (proc.stderr or b"").decode(errors="replace") + (proc.stdout or b"").decode(
        errors="replace"
    )
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Signing data")
    ]
    return "; ".join(lines)[:300] or f"exit {proc.returncode}"


# -- keys ------------------------------------------------------------------------------------------


def resolve_key(
    explicit: str | os.PathLike[str] | None = None,
    configured: str | None = None,
    *,
    repo: Path | None = None,
) -> str | None:
    """The signing key to use (a path, or `key::<public key>`), or None when none is set up."""
    for candidate in (explicit, os.environ.get(ENV_KEY), configured):
        if candidate:
            return str(candidate)
    if (git.output(repo or os.curdir, "config", "--get", "gpg.format", timeout=5) or "").lower() == "ssh":
        return git.output(repo or os.curdir, "config", "--get", "user.signingkey", timeout=5)
    return None


@dataclass
class _KeyRef:
    """A usable `-f` argument for ssh-keygen, with a temp dir to clean up for literal keys."""

    path: str
    tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def _key_ref(key: str) -> _KeyRef:
    if key.startswith("key::"):
        tmp = tempfile.TemporaryDirectory(prefix="relnb-key-")
        pub = Path(tmp.name) / "key.pub"
        pub.write_text(key[5:].strip() + "\n")
        return _KeyRef(str(pub), tmp)
    path = Path(os.path.expanduser(key))
    if not path.is_file():
        raise SigningError(
            f"signing key {path} does not exist",
            fix=f"set {ENV_KEY} or [signing] key to your SSH key",
        )
    return _KeyRef(str(path))


def public_key(key: str) -> str:
    """`type base64` of a key: from the .pub itself, the .pub beside it, or `ssh-keygen -y`."""
    ref = _key_ref(key)
    try:
        path = Path(ref.path)
        pub = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
        if pub.is_file():
            text = pub.read_text(errors="replace").split()
        else:
            proc = _run(["-y", "-f", str(path)])
            if proc.returncode != 0:
                raise SigningError(f"cannot read the public half of {path}: {_err(proc)}")
            text = proc.stdout.decode().split()
        if len(text) < 2 or not text[0].startswith(("ssh-", "ecdsa-", "sk-")):
            raise SigningError(f"{pub} is not an SSH public key")
        return f"{text[0]} {text[1]}"
    finally:
        ref.close()


def fingerprint(key: str) -> str:
    """SHA256 fingerprint (as `ssh-keygen -l` prints it) of a key's public half."""
    with tempfile.TemporaryDirectory(prefix="relnb-fp-") as tmp:
        pub = Path(tmp) / "k.pub"
        pub.write_text(public_key(key) + "\n")
        proc = _run(["-l", "-E", "sha256", "-f", str(pub)])
    if proc.returncode != 0:
        raise SigningError(f"cannot fingerprint the key: {_err(proc)}")
    return proc.stdout.decode().split()[1]


def sign_statement(statement: Mapping[str, Any], key: str | os.PathLike[str]) -> Approval:
    """Sign the statement's canonical bytes with `ssh-keygen -Y sign -n relnb`.

    `key` is a private key file, or a `.pub` (or `key::…`) whose private half is in ssh-agent.
    """
    key = str(key)
    ref = _key_ref(key)
    try:
        if ref.path.endswith(".pub") and not os.environ.get("SSH_AUTH_SOCK"):
            raise SigningError(
                f"{key} is a public key, so its private half must be in ssh-agent, but SSH_AUTH_SOCK is not set",
                fix="start ssh-agent and ssh-add the key, or point to the private key file",
            )
        data = statement_bytes(statement)
        proc = _run(["-Y", "sign", "-n", NAMESPACE, "-f", ref.path], data)
        if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
            raise SigningError(
                f"ssh-keygen could not sign with {key}: {_err(proc)}",
                fix="a key with a passphrase must be loaded into ssh-agent (ssh-add) first",
            )
        signature = proc.stdout.decode()
    finally:
        ref.close()
    checked = check_signature(signature, data)
    if not checked.ok or not checked.fingerprint:
        raise SigningError(f"the signature ssh-keygen produced does not check: {checked.reason}")
    return Approval(
        dict(statement), signature, str(statement.get("principal")), checked.fingerprint
    )


def check_signature(signature: str, data: bytes) -> VerifyResult:
    """Is the signature intact over `data` (any key)? Gives the signing key's fingerprint."""
    with tempfile.TemporaryDirectory(prefix="relnb-sig-") as tmp:
        sig = Path(tmp) / "sig"
        sig.write_text(signature)
        proc = _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], data)
    m = _GOOD.search(proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace"))
    if proc.returncode == 0 and m:
        return VerifyResult(True, "signature intact", m.group("fp"))
    return VerifyResult(False, _err(proc))


# -- allowed_signers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    principals: tuple[str, ...]
    options: str
    key: str  # "type base64"


@dataclass
class AllowedSigners:
    text: str
    signers: list[Signer] = field(default_factory=list)
    roles: dict[str, set[str]] = field(default_factory=dict)

    def principals_for_key(self, key: str) -> list[str]:
        kt = " ".join(key.split()[:2])
        out: list[str] = []
        for s in self.signers:
            if s.key == kt:
                out.extend(p for p in s.principals if not any(c in p for c in "*?!"))
        return out

    def keys_of(self, principal: str) -> list[str]:
        return [s.key for s in self.signers if principal in s.principals]

    def roles_of(self, principal: str | None) -> set[str]:
        return set(self.roles.get((principal or "").lower(), set()))


def _split_fields(line: str) -> list[str]:
    """Whitespace-separated fields, keeping quoted option values (namespaces="a,b") whole."""
    out, cur, quoted = [], "", False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch.isspace() and not quoted:
            if cur:
                out.append(cur)
                cur = ""
            continue
        cur += ch
    if cur:
        out.append(cur)
    return out


def parse_allowed_signers(text: str) -> AllowedSigners:
    result = AllowedSigners(text)
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.startswith(ROLES_MARK):
                parts = body[len(ROLES_MARK) :].split()
                if len(parts) >= 2:
                    roles = {r.strip() for r in ",".join(parts[1:]).split(",") if r.strip()}
                    result.roles.setdefault(parts[0].lower(), set()).update(roles)
            continue
        fields = _split_fields(line)
        if len(fields) < 3:
            continue
        principals = tuple(p for p in fields[0].split(",") if p)
        if fields[1].startswith(("ssh-", "ecdsa-", "sk-")):
            options, keytype, b64 = "", fields[1], fields[2]
        elif len(fields) >= 4:
            options, keytype, b64 = fields[1], fields[2], fields[3]
        else:
            continue
        result.signers.append(Signer(principals, options, f"{keytype} {b64}"))
    return result


def allowed_signers_at(repo: str | os.PathLike[str], sha: str, path: str) -> str | None:
    """The allowed_signers file as committed at `sha` (None when it did not exist there)."""
    if not sha:
        raise SigningError("the release has no git SHA, so its allowed signers cannot be pinned")
    rel = path[2:] if path.startswith("./") else path
    proc = git.run(repo, "show", f"{sha}:{rel}", timeout=15)
    if proc.returncode == 0:
        return proc.stdout
    if proc.returncode == 124:  # git itself could not run or answer
        raise SigningError(f"cannot run git in {repo}: {proc.stderr}")
    exists = git.run(repo, "cat-file", "-e", f"{sha}^{{commit}}", timeout=15)
    if exists.returncode != 0:
        raise SigningError(
            f"commit {sha[:12]} is not in the repository at {repo}", fix="fetch it (git fetch)"
        )
    return None


def verify_approval(approval: Approval, allowed_signers_text: str) -> VerifyResult:
    """`ssh-keygen -Y verify` of the approval's statement for its principal; on failure, say why."""
    data = statement_bytes(approval.statement)
    if str(approval.statement.get("principal")) != approval.principal:
        return VerifyResult(
            False,
            f"approval names {approval.principal} but the signed statement names {approval.statement.get('principal')}",
        )
    if "BEGIN SSH SIGNATURE" not in approval.signature:
        return VerifyResult(False, "not an SSH signature")
    with tempfile.TemporaryDirectory(prefix="relnb-verify-") as tmp:
        allowed = Path(tmp) / "allowed_signers"
        allowed.write_text(allowed_signers_text)
        sig = Path(tmp) / "sig"
        sig.write_text(approval.signature)
        proc = _run(
            [
                "-Y",
                "verify",
                "-f",
                str(allowed),
                "-I",
                approval.principal,
                "-n",
                NAMESPACE,
                "-s",
                str(sig),
            ],
            data,
        )
        good = _GOOD.search(
            proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        )
        if proc.returncode == 0 and good:
            if good.group("fp") != approval.fingerprint:
                return VerifyResult(
                    False,
                    f"recorded key {approval.fingerprint} but signed by {good.group('fp')}",
                    good.group("fp"),
                )
            return VerifyResult(
                True,
                f"good signature by {approval.principal} ({good.group('fp')})",
                good.group("fp"),
            )
        intact = check_signature(approval.signature, data)
        if not intact.ok:
            return VerifyResult(
                False, "signature does not match the signed statement (modified after signing)"
            )
        found = _run(["-Y", "find-principals", "-s", str(sig), "-f", str(allowed)])
        owners = [
            ln.strip() for ln in found.stdout.decode(errors="replace").splitlines() if ln.strip()
        ]
    if not owners:
        return VerifyResult(
            False, f"key {intact.fingerprint} is not in allowed_signers", intact.fingerprint
        )
    if approval.principal not in owners:
        return VerifyResult(
            False,
            f"key {intact.fingerprint} belongs to {', '.join(owners)}, not {approval.principal}",
            intact.fingerprint,
        )
    return VerifyResult(
        False,
        f"key {intact.fingerprint} is not allowed to sign {NAMESPACE!r} approvals ({_err(proc)})",
        intact.fingerprint,
    )


def principal_for(
    key: str, allowed: AllowedSigners, *, wanted: str | None = None, email: str | None = None
) -> str:
    """Which allowed_signers principal this key signs as (explicit, $RELNB_SIGNING_PRINCIPAL, or
    the key's only principal, or the one equal to the user's git email)."""
    owners = allowed.principals_for_key(public_key(key))
    wanted = wanted or os.environ.get(ENV_PRINCIPAL)
    fp = fingerprint(key)
    if not owners:
        raise SigningError(
            f"your key {fp} is not in allowed_signers (as of the release's commit)",
            fix='add `<your-email> namespaces="relnb" <public key>` to allowed_signers and commit it before the release SHA',
        )
    if wanted:
        if wanted not in owners:
            raise SigningError(f"key {fp} is allowed for {', '.join(owners)}, not {wanted}")
        return wanted
    if len(owners) == 1:
        return owners[0]
    if email and email in owners:
        return email
    raise SigningError(
        f"key {fp} is listed for several principals ({', '.join(owners)})",
        fix=f"choose one with --principal or ${ENV_PRINCIPAL}",
    )
