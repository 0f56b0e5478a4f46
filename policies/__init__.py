"""Guardrail policies: the interface and the built-ins register in :data:`POLICIES`."""
