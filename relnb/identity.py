"""Who did something: a structured identity, not free text.

Sign-offs, waivers, skips and forced re-runs record `{name, email, key}`; `key` is the signing key's
fingerprint once approvals are signed. The four-eyes rule compares identities, so they are parsed
the way git writes them (`Name <email>`) and compared by email when both have one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from . import git
from .errors import UsageError

_FORM = re.compile(r"^\s*(?P<name>[^<>]+?)\s*(?:<(?P<email>[^<>@\s]+@[^<>\s]+)>)?\s*$")


@dataclass(frozen=True)
class Identity:
    name: str
    email: str | None = None
    key: str | None = None  # signing key fingerprint, when the approval is signed

    @classmethod
    def parse(cls, text: str | Identity | dict[str, Any]) -> Identity:
        if isinstance(text, Identity):
            return text
        if isinstance(text, dict):
            return cls(text["name"], text.get("email"), text.get("key"))
        m = _FORM.match(text or "")
        if not m:
            raise UsageError(
                f"cannot read identity {text!r}", fix="write it as `Name <email>` or just `Name`"
            )
        return cls(m.group("name"), m.group("email"))

    def same_person(self, other: Identity) -> bool:
        if self.email and other.email:
            return self.email.lower() == other.email.lower()
        return self.name.strip().lower() == other.name.strip().lower()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "key": self.key}

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.email else self.name


def whoami() -> Identity:
    """The person running relnb: $RELNB_USER, else git's user.name/user.email, else the OS user."""
    env = os.environ.get("RELNB_USER")
    if env:
        return Identity.parse(env)
    name = git.output(os.curdir, "config", "--get", "user.name", timeout=5)
    email = git.output(os.curdir, "config", "--get", "user.email", timeout=5)
    if name:
        return Identity(name, email)
    import getpass

    return Identity(getpass.getuser())


def require_email(who: Identity, what: str) -> Identity:
    """A decision that settles a gate names a person reachable afterwards: name and email, the way
    git writes them (a bare name such as "nobody" identifies no one)."""
    if not who.email:
        raise UsageError(
            f"{what} by {who.name!r} names no email",
            fix="write the identity as `Name <email>` (for yourself: RELNB_USER or git config user.email)",
        )
    return who
