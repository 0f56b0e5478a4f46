"""replisim: simulate self-replicating AI agents, shutdown signals and guardrails."""

__version__ = "0.1.0"
