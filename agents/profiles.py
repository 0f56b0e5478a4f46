"""Model profiles: how much simulated time one model call costs.

A call costs ``overhead_s + prompt_tokens / prefill_tps + completion_tokens / decode_tps``
simulated seconds, from the real token counts of the answer. The profiles below are
single-stream figures (one request at a time, as an agent waits for its own answer):

- ``embedded-cpu``: SmolLM2-135M-Instruct on vLLM's CPU engine, measured on this project's
  2-core CI machine (``replisim bench llm``).
- ``70b-*``: 70B-class models (Llama3.1-70B-Instruct, Qwen2.5-72B-Instruct) in bf16 under
  vLLM with tensor parallelism over the named GPUs. Order-of-magnitude figures from public
  vLLM benchmarks, not measurements of ours; override them in YAML with your own.

In a scenario, ``model.profile`` is a name, or a mapping that starts from a named profile
(``base``, default ``embedded-cpu``) and overrides some of its figures::

    model: {profile: {base: 70b-a100x4, decode_tps: 30}}
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import Field, model_validator

from sim.schema import Model

__all__ = ["PROFILES", "Cost", "ModelProfile", "resolve_profile"]


class Cost(NamedTuple):
    """The figures of a resolved profile."""

    prefill_tps: float
    decode_tps: float
    overhead_s: float

    def seconds(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Simulated seconds of one call with these token counts."""
        return (
            self.overhead_s + prompt_tokens / self.prefill_tps + completion_tokens / self.decode_tps
        )


PROFILES: dict[str, Cost] = {
    "embedded-cpu": Cost(prefill_tps=700.0, decode_tps=40.0, overhead_s=0.05),
    "70b-a100x2": Cost(prefill_tps=2500.0, decode_tps=20.0, overhead_s=0.1),
    "70b-a100x4": Cost(prefill_tps=4500.0, decode_tps=32.0, overhead_s=0.1),
    "70b-a100x8": Cost(prefill_tps=7000.0, decode_tps=40.0, overhead_s=0.1),
    "70b-h100x2": Cost(prefill_tps=5000.0, decode_tps=35.0, overhead_s=0.08),
    "70b-h100x4": Cost(prefill_tps=9000.0, decode_tps=50.0, overhead_s=0.08),
}
"""Built-in profiles by name."""


class ModelProfile(Model):
    """A named profile with some of its figures overridden."""

    base: str = Field(default="embedded-cpu", description="the profile this one starts from")
    prefill_tps: float | None = Field(default=None, gt=0, description="prompt tokens per second")
    decode_tps: float | None = Field(default=None, gt=0, description="generated tokens per second")
    overhead_s: float | None = Field(default=None, ge=0, description="seconds per call")

    @model_validator(mode="after")
    def _known_base(self) -> ModelProfile:
        if self.base not in PROFILES:
            raise ValueError(f"unknown profile {self.base!r}; known: {', '.join(PROFILES)}")
        return self


def resolve_profile(profile: str | ModelProfile) -> Cost:
    """The figures of a profile given by name or as overrides of a named one.

    Raises:
        KeyError: an unknown profile name (scenario validation catches it first).
    """
    if isinstance(profile, str):
        return PROFILES[profile]
    base = PROFILES[profile.base]
    return Cost(
        profile.prefill_tps if profile.prefill_tps is not None else base.prefill_tps,
        profile.decode_tps if profile.decode_tps is not None else base.decode_tps,
        profile.overhead_s if profile.overhead_s is not None else base.overhead_s,
    )
