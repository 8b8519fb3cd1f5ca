"""Checks: the core step of each automatic gate (explicit parameters in, `Outcome` out)."""
