"""Actions: the core step of each side effect (run once per release through the journal)."""
