"""Built-in guardrail policies, each registered by name in :data:`policies.POLICIES`."""
