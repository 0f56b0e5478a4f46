"""Quantities in scenario files: numbers with units, and distributions.

Any time, size, bandwidth or probability in a scenario may be a constant (``30``,
``"140GB"``, ``"10Gbit/s"``, ``"5m"``) or a distribution
(``{exponential: {mean: 60}}``, ``{uniform: [1, 5]}``, ...). Units are converted to
seconds, bytes and bytes per second when the file is read, so the world only ever sees
plain floats and samplers.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "Bandwidth",
    "Choice",
    "Constant",
    "Dist",
    "Duration",
    "Exponential",
    "LogNormal",
    "Normal",
    "Probability",
    "Sampler",
    "Size",
    "Uniform",
    "as_dist",
    "parse_bandwidth",
    "parse_duration",
    "parse_size",
    "positive_mean",
    "qfield",
    "sampler",
    "support",
]

Sampler = Callable[[], float]

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}
_TIME_UNITS = {"": 1, "ms": 1e-3, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_BIT_RATE = {"bit": 1 / 8, "kbit": 1e3 / 8, "mbit": 1e6 / 8, "gbit": 1e9 / 8, "tbit": 1e12 / 8}
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_UNIT_RE = re.compile(rf"^\s*{_NUMBER}\s*([a-zA-Z/]*)\s*$")
_INFINITE = {"inf", "+inf", "infinity", "infinite", "unbounded", "unlimited"}


def _split(text: str, what: str) -> tuple[float, str]:
    if text.strip().lower() in _INFINITE:
        return math.inf, ""
    match = _UNIT_RE.match(text)
    if not match:
        raise ValueError(f"cannot read {text!r} as a {what}")
    return float(match.group(1)), match.group(2).lower()


def parse_size(value: float | str) -> float:
    """Return a size in bytes from ``1024``, ``"140GB"``, ``"16GiB"`` or ``"inf"``."""
    if isinstance(value, int | float):
        return float(value)
    number, unit = _split(value, "size")
    if unit not in _SIZE_UNITS:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}; use B, KB, MB, GB, TB, GiB…")
    return number * _SIZE_UNITS[unit]


def parse_duration(value: float | str) -> float:
    """Return seconds from ``30``, ``"250ms"``, ``"5m"``, ``"2h"`` or ``"inf"``."""
    if isinstance(value, int | float):
        return float(value)
    number, unit = _split(value, "duration")
    if unit not in _TIME_UNITS:
        raise ValueError(f"unknown time unit {unit!r} in {value!r}; use ms, s, m, h, d")
    return number * _TIME_UNITS[unit]


_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def parse_bandwidth(value: float | str) -> float:
    """Return bytes per second from ``1e9``, ``"10Gbit/s"``, ``"10Gbps"``, ``"2GB/s"``.

    As in networking, a lower-case ``b`` is a bit and an upper-case ``B`` a byte:
    ``10Gb/s`` and ``10Gbps`` are 1.25e9 bytes/s, ``2GB/s`` and ``2GiB/s`` are bytes.
    """
    if isinstance(value, int | float):
        return float(value)
    if value.strip().lower() in _INFINITE:
        return math.inf
    match = _UNIT_RE.match(value)
    if not match:
        raise ValueError(f"cannot read {value!r} as a bandwidth")
    number, unit = float(match.group(1)), match.group(2)
    for suffix in ("/s", "ps"):
        if unit.endswith(suffix):
            unit = unit[: -len(suffix)]
            break
    else:
        if unit:
            raise ValueError(
                f"unknown bandwidth unit in {value!r}: a bandwidth is per second, "
                "e.g. 10Gbit/s, 10Gbps or 2GB/s"
            )
    if unit.lower() in _BIT_RATE:
        return number * _BIT_RATE[unit.lower()]
    if unit.endswith("b") and unit[:-1].lower() in _PREFIX:
        return number * _PREFIX[unit[:-1].lower()] / 8
    if unit.lower() in _SIZE_UNITS:
        return number * _SIZE_UNITS[unit.lower()]
    raise ValueError(f"unknown bandwidth unit in {value!r}; use e.g. 10Gbit/s, 10Gbps or 2GB/s")


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    def sampler(self, rng: random.Random) -> Sampler:
        """Return a function drawing one value per call from ``rng``."""
        raise NotImplementedError

    def expected(self) -> float:
        """Return the distribution's mean."""
        raise NotImplementedError


class Constant(_Dist):
    """Always the same value."""

    kind: Literal["constant"] = "constant"
    value: float

    @model_validator(mode="after")
    def _a_number(self) -> Constant:
        if math.isnan(self.value):
            raise ValueError("constant needs a number, got nan")
        return self

    def sampler(self, rng: random.Random) -> Sampler:
        value = self.value
        return lambda: value

    def expected(self) -> float:
        return self.value


class Exponential(_Dist):
    """Exponential with the given mean (memoryless waiting times)."""

    kind: Literal["exponential"] = "exponential"
    mean: float = Field(gt=0, allow_inf_nan=False)

    def sampler(self, rng: random.Random) -> Sampler:
        return functools.partial(rng.expovariate, 1.0 / self.mean)  # C-level: hot path

    def expected(self) -> float:
        return self.mean


class Uniform(_Dist):
    """Uniform on [low, high]."""

    kind: Literal["uniform"] = "uniform"
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError("uniform needs low <= high")
        return self

    def sampler(self, rng: random.Random) -> Sampler:
        low, high = self.low, self.high
        return functools.partial(rng.uniform, low, high)

    def expected(self) -> float:
        return (self.low + self.high) / 2


class Normal(_Dist):
    """Normal with mean and standard deviation, truncated at zero for times and sizes."""

    kind: Literal["normal"] = "normal"
    mean: float = Field(allow_inf_nan=False)
    std: float = Field(ge=0, allow_inf_nan=False)

    def sampler(self, rng: random.Random) -> Sampler:
        mu, sigma = self.mean, self.std
        # A negative duration or size means nothing in the world; clamp rather than fail.
        return lambda: max(0.0, rng.gauss(mu, sigma))

    def expected(self) -> float:
        return self.mean


class LogNormal(_Dist):
    """Log-normal: ``exp(N(mu, sigma))``; heavy-tailed task durations."""

    kind: Literal["lognormal"] = "lognormal"
    mu: float = Field(allow_inf_nan=False)
    sigma: float = Field(ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _finite_mean(self) -> LogNormal:
        # exp() overflows past about 709: such a draw is no number the world can use.
        if self.mu + self.sigma**2 / 2 > 700 or self.mu + 40 * self.sigma > 700:
            raise ValueError(
                f"lognormal [{self.mu:g}, {self.sigma:g}] draws values too large to compute "
                "(mu + sigma^2/2 and mu + 40 sigma must stay below 700)"
            )
        return self

    def sampler(self, rng: random.Random) -> Sampler:
        mu, sigma = self.mu, self.sigma
        return functools.partial(rng.lognormvariate, mu, sigma)

    def expected(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)


class Choice(_Dist):
    """One of a list of values, optionally weighted."""

    kind: Literal["choice"] = "choice"
    values: list[float] = Field(min_length=1)
    weights: list[Annotated[float, Field(allow_inf_nan=False)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> Choice:
        if any(math.isnan(v) for v in self.values):
            raise ValueError("choice values must be numbers, got nan")
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError("choice needs one weight per value")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError("choice weights must be >= 0 with a positive sum")
        return self

    def sampler(self, rng: random.Random) -> Sampler:
        values, weights = self.values, self.weights
        if weights is None:
            return lambda: rng.choice(values)
        return lambda: rng.choices(values, weights)[0]

    def expected(self) -> float:
        w = self.weights or [1.0] * len(self.values)
        return sum(v * x for v, x in zip(self.values, w, strict=True)) / sum(w)


Dist = Annotated[
    Constant | Exponential | Uniform | Normal | LogNormal | Choice, Field(discriminator="kind")
]
_DIST_TYPES: dict[str, type[_Dist]] = {
    "constant": Constant,
    "exponential": Exponential,
    "uniform": Uniform,
    "normal": Normal,
    "lognormal": LogNormal,
    "choice": Choice,
}
_POSITIONAL = {
    "exponential": ("mean",),
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("mu", "sigma"),
    "choice": ("values",),
    "constant": ("value",),
}


def _normalise_dist(value: Any, parse: Callable[[Any], float]) -> Any:
    """Turn the short YAML spellings into the tagged form and apply units.

    ``{exponential: 60}``, ``{exponential: {mean: 5m}}``, ``{uniform: [1, 5]}`` and
    ``{kind: exponential, mean: 60}`` are all accepted.
    """
    if isinstance(value, _Dist):
        return value
    if isinstance(value, dict):
        if "kind" in value:
            kind, body = value["kind"], {k: v for k, v in value.items() if k != "kind"}
        elif len(value) == 1:
            kind, body = next(iter(value.items()))
        else:
            raise PydanticCustomError(
                "dist", "a distribution is one key naming it, e.g. {exponential: {mean: 60}}"
            )
        if kind not in _DIST_TYPES:
            known = ", ".join(_DIST_TYPES)
            raise PydanticCustomError("dist_kind", f"unknown distribution {kind!r}; known: {known}")
        names = _POSITIONAL[kind]
        if kind == "choice" and isinstance(body, list):
            body = {"values": body}
        elif isinstance(body, list):
            if len(body) != len(names):
                raise PydanticCustomError("dist_args", f"{kind} takes {', '.join(names)}")
            body = dict(zip(names, body, strict=True))
        elif not isinstance(body, dict):
            body = {names[0]: body}
        # Units apply to location parameters, not to shapes like sigma or weights.
        unit_fields = {"mean", "low", "high", "std", "value"}
        body = {
            k: (parse(v) if k in unit_fields and isinstance(v, str) else v) for k, v in body.items()
        }
        if kind == "choice":
            body["values"] = [parse(v) if isinstance(v, str) else v for v in body["values"]]
        return _DIST_TYPES[kind].model_validate(body)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return Constant(value=parse(value))
        except ValueError as err:
            raise PydanticCustomError("quantity", str(err)) from None
    raise PydanticCustomError(
        "quantity", "expected a number, a number with a unit, or a distribution"
    )


def _quantity(
    parse: Callable[[Any], float], low: float | None, high: float | None, what: str
) -> Any:
    def validate(value: Any) -> Any:
        dist = _normalise_dist(value, parse)
        _check_range(dist, low, high, what)
        return dist

    return BeforeValidator(validate)


def support(dist: _Dist) -> tuple[float, float]:
    """The smallest and largest value a distribution can draw (as its sampler draws them)."""
    if isinstance(dist, Constant):
        return dist.value, dist.value
    if isinstance(dist, Uniform):
        return dist.low, dist.high
    if isinstance(dist, Choice):
        return min(dist.values), max(dist.values)
    if isinstance(dist, Normal):  # clamped at 0 by its sampler
        if dist.std == 0:
            return max(0.0, dist.mean), max(0.0, dist.mean)
        return 0.0, math.inf
    if isinstance(dist, LogNormal):
        if dist.sigma == 0:
            return math.exp(dist.mu), math.exp(dist.mu)
        return 0.0, math.inf
    if isinstance(dist, Exponential):
        return 0.0, math.inf
    raise TypeError(f"unknown distribution {dist!r}")


def positive_mean(dist: _Dist) -> bool:
    """Whether draws of ``dist`` average more than zero (as drawn: a normal is clamped at 0),
    so that a process that waits one draw per step moves the clock on."""
    if isinstance(dist, Normal) and dist.std > 0:
        z = dist.mean / dist.std
        clamped = dist.mean * 0.5 * math.erfc(-z / math.sqrt(2)) + dist.std * math.exp(
            -z * z / 2
        ) / math.sqrt(2 * math.pi)
        return clamped > 1e-9 * max(1.0, abs(dist.mean))
    if isinstance(dist, Choice) and dist.weights is not None:
        return any(v > 0 and w > 0 for v, w in zip(dist.values, dist.weights, strict=True))
    return support(dist)[1] > 0


def _check_range(dist: _Dist, low: float | None, high: float | None, what: str) -> None:
    """Every value the distribution can draw must lie in [low, high] (its whole support)."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(dist, Choice | Constant | Uniform):
        points = list(dist.values) if isinstance(dist, Choice) else list(support(dist))
        for x in points:
            if math.isnan(x) or (low is not None and x < low) or (high is not None and x > high):
                raise PydanticCustomError("range", f"{what} must be {bounds}, got {x:g}")
        return
    lo, hi = support(dist)
    if (low is not None and lo < low) or (high is not None and hi > high):
        kind = type(dist).__name__.lower()
        raise PydanticCustomError(
            "range",
            f"{what} must be {bounds}, and {kind} draws values in [{lo:g}, {hi:g}]"
            + (" (use uniform or choice)" if high is not None else ""),
        )


Duration = Annotated[Dist, _quantity(parse_duration, 0.0, None, "a duration")]
"""A time in seconds (``30``, ``"5m"``) or a distribution of times."""
Size = Annotated[Dist, _quantity(parse_size, 0.0, None, "a size")]
"""A size in bytes (``"140GB"``) or a distribution of sizes."""
Bandwidth = Annotated[Dist, _quantity(parse_bandwidth, 0.0, None, "a bandwidth")]
"""A rate in bytes per second (``"10Gbit/s"``) or a distribution of rates."""
Probability = Annotated[Dist, _quantity(float, 0.0, 1.0, "a probability")]
"""A probability in [0, 1], or a distribution of them."""


def as_dist(value: Any) -> Any:
    """A distribution model from a number or any YAML spelling of a distribution (no units)."""
    return _normalise_dist(value, float)


def qfield(default: Any, **kwargs: Any) -> Any:
    """A pydantic ``Field`` for a quantity whose default is written as in YAML (``"64GB"``).

    The default is validated like any input (``validate_default``), so it becomes a
    distribution model; typed ``Any`` because type checkers cannot see that conversion.
    """
    return Field(default=default, **kwargs)


def sampler(dist: Any, rng: random.Random) -> Sampler:
    """Return a draw function for a quantity (a distribution model or a plain number)."""
    if isinstance(dist, int | float):
        value = float(dist)
        return lambda: value
    return dist.sampler(rng)
