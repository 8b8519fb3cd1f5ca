"""Approvals that cannot be forged: SSH-signed sign-offs, waivers, skips, forced re-runs,
promotions and the seal, verified against the repository's allowed_signers at the release SHA.

Design (see statement.py for the signed bytes, keys.py for keys and roles, policy.py for the
rules, verify.py for the audit, approve.py for signing at the moment of the event, and
approvals_file.py for pre-signed approvals and `relnb sign`):

- A person signs an *approval statement*, not the event: pre-signed approvals exist before their
  event, so they cannot cover seq/ts/prev. The statement binds release id + release SHA + kind +
  gate + text + principal; interactive ones add `prev` (the journal head), pinning all history.
- The event payload stores `{"approval": {statement, signature, principal, fingerprint}}`;
  verification rebuilds the statement from the event and compares bytes before asking
  `ssh-keygen -Y verify` with the allowed_signers committed at the release SHA.
- Unsigned mode stays available; every unsigned approval is labelled UNSIGNED wherever it is
  shown (`approval_label`), and fails verification when `[signing] required = true`.
- Private keys never pass through relnb: only their paths go to ssh-keygen.

This package imports nothing heavy; ssh-keygen and git run as subprocesses when needed.
"""

from __future__ import annotations

from ..eventtext import approval_label, short_fingerprint
from .approve import Grant, SigningRefused, SigningSettings, approve
from .keys import Approval, SigningError, allowed_signers_at, sign_statement, verify_approval
from .policy import Policy, Violation
from .statement import make_statement
from .verify import SignatureReport, verify_release_signatures

__all__ = [
    "Approval",
    "Grant",
    "Policy",
    "SignatureReport",
    "SigningError",
    "SigningRefused",
    "SigningSettings",
    "Violation",
    "allowed_signers_at",
    "approval_label",
    "approve",
    "make_statement",
    "short_fingerprint",
    "sign_statement",
    "verify_approval",
    "verify_release_signatures",
]
