"""Conditions on the population, as written in scenarios: ``live >= 5``.

Injectors (``when:``) and the kill-switch policy read the same little language: a
quantity (``live``, ``replicas_total``, ``max_generation`` or ``time``), a comparison and
a number.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator

if TYPE_CHECKING:
    from sim.world import World

__all__ = ["Condition", "ConditionText", "parse_condition"]

_PATTERN = re.compile(
    r"^\s*(live|replicas_total|max_generation|time)\s*(>=|<=|==|>|<)\s*([0-9.eE+-]+)\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Condition:
    """A parsed condition: quantity, comparison, value."""

    quantity: str
    op: str
    value: float

    def watcher(self, world: World) -> Callable[[], bool]:
        """A cheap function telling whether the condition holds in ``world`` now."""
        # One call per check, not two: the kill-switch policy asks as each replica goes live.
        compare, value = _OPS[self.op], self.value
        quantity = self.quantity
        if quantity == "live":
            return lambda: compare(world.live, value)
        if quantity == "replicas_total":
            return lambda: compare(world.ever_live, value)  # as the metric: replicas ever live
        if quantity == "max_generation":
            return lambda: compare(world.max_generation, value)
        if quantity == "time":
            return lambda: compare(world.env.now, value)
        raise ValueError(f"unknown quantity {quantity!r}")


def parse_condition(text: str) -> Condition:
    """Parse ``"live >= 5"``.

    Raises:
        ValueError: not of that form; the message says what is.
    """
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(
            f"cannot read condition {text!r}; write e.g. 'live >= 5' "
            "(live, replicas_total, max_generation or time)"
        )
    return Condition(match.group(1), match.group(2), float(match.group(3)))


def _check(text: str) -> str:
    parse_condition(text)
    return text


ConditionText = Annotated[str, AfterValidator(_check)]
"""A condition field of a configuration model: validated, kept as written."""
