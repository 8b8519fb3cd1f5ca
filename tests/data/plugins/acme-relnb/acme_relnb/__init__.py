"""Acme's relnb plug-ins (a test fixture shaped like a real third-party package)."""
