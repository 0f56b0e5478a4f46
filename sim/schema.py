"""The base of every configuration model: unknown fields are errors, defaults validated."""

from pydantic import BaseModel, ConfigDict

__all__ = ["Model"]


class Model(BaseModel):
    """A strict configuration object: ``extra="forbid"`` and validated defaults."""

    # Infinite capacities and horizons must survive a JSON round trip (sweeps, manifests).
    model_config = ConfigDict(extra="forbid", validate_default=True, ser_json_inf_nan="strings")
