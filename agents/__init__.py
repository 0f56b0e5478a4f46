"""Agents: scripted agents now; the paper's LLM scaffold and model backends plug in here."""
