"""The demo's two people who approve things, with real SSH keys made for this run.

`relnb demo` signs its approvals the way a team does: each person has an ed25519 key, the public
halves (with roles) are committed to the app repository as `.relnb/allowed_signers` before the
release SHA, and approvals are signed with `ssh-keygen -Y sign`. The keys are generated fresh per
run, without a passphrase, in the stack's working directory (never in the project or its
releases directory, which get archived), and disappear with the stack.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ALLOWED_SIGNERS = ".relnb/allowed_signers"
NAMESPACE = "relnb"


@dataclass(frozen=True)
class DemoSigner:
    name: str
    principal: str  # the allowed_signers principal, an email
    roles: tuple[str, ...]
    key: Path  # private key file (a path only; relnb hands it to ssh-keygen, never reads it)
    public: str  # "ssh-ed25519 AAAA…"

    @property
    def identity(self) -> str:
        return f"{self.name} <{self.principal}>"


# (name, principal, roles): the lead runs the release; the reviewer holds the role A3 needs.
LEAD = ("Dana Release", "lead@docflow.test", ("release-lead",))
REVIEWER = ("Rui Reviewer", "reviewer@docflow.test", ("db-reviewer",))
DB_REVIEWER_ROLE = "db-reviewer"


def generate(directory: str | os.PathLike[str]) -> tuple[DemoSigner, DemoSigner]:
    """Make the lead's and the reviewer's keys in `directory` (created, mode 0700)."""
    if not shutil.which("ssh-keygen"):
        raise RuntimeError(
            "relnb demo signs its approvals with ssh-keygen, which is not installed "
            "(apt-get install openssh-client)"
        )
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    out = []
    for name, principal, roles in (LEAD, REVIEWER):
        key = d / principal.split("@")[0]
        for stale in (key, key.with_name(key.name + ".pub")):
            stale.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
            check=True,
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        public = " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])
        out.append(DemoSigner(name, principal, roles, key, public))
    return out[0], out[1]


def allowed_signers(signers: tuple[DemoSigner, ...] | list[DemoSigner]) -> str:
    """The `.relnb/allowed_signers` file the demo repository commits (public keys and roles)."""
    lines = ["# Who may sign relnb approvals for docflow (OpenSSH allowed_signers format)."]
    lines += [f"# relnb-roles: {s.principal} {','.join(s.roles)}" for s in signers if s.roles]
    lines += [f'{s.principal} namespaces="{NAMESPACE}" {s.public}' for s in signers]
    return "\n".join(lines) + "\n"
