"""Step-size schedules: delta_t as a function of the transition index t."""

from __future__ import annotations

from typing import Any, Protocol

from nrf._checks import check_positive
from nrf.registry import Configurable, Registry


class Schedule(Protocol):
    """A step-size schedule: ``schedule(t) -> float`` plus its JSON ``config()`` (a number
    for a constant, else the spec table ``{"name": ..., ...}``)."""

    def __call__(self, t: int) -> float: ...

    def config(self) -> Any: ...


SCHEDULES: Registry[Any] = Registry("schedule")
"""Step-size schedules by name (a ``step_size`` table in a sampler spec)."""


@SCHEDULES.register("constant")
class Constant(Configurable):
    """delta_t = value."""

    def __init__(self, value: float) -> None:
        self.value = check_positive("step_size", value)

    def __call__(self, t: int) -> float:
        return self.value

    def config(self) -> Any:
        return self.value

    def config_args(self) -> dict[str, Any]:
        return {"value": self.value}

    def __repr__(self) -> str:
        return f"Constant({self.value})"


@SCHEDULES.register("polynomial")
class PolynomialDecay(Configurable):
    """delta_t = (a (1 + t / b)) ** (-c), the schedule of SGLD (Welling & Teh) used in
    Inclusive-NRF Fig. 2 with a = 10, b = 1000, c = 2.

    >>> PolynomialDecay(10, 1000, 2)(0)
    0.01
    """

    def __init__(self, a: float, b: float, c: float) -> None:
        self.a = check_positive("a", a)
        self.b = check_positive("b", b)
        self.c = check_positive("c", c)

    def __call__(self, t: int) -> float:
        return float((self.a * (1.0 + t / self.b)) ** (-self.c))

    def config(self) -> Any:
        return self.to_config()

    def config_args(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "c": self.c}

    def __repr__(self) -> str:
        return f"PolynomialDecay(a={self.a}, b={self.b}, c={self.c})"


def as_schedule(step_size: float | Schedule) -> Schedule:
    """A number becomes :class:`Constant`; a schedule is returned as is."""
    if isinstance(step_size, (int, float)) and not isinstance(step_size, bool):
        return Constant(float(step_size))
    if callable(step_size) and hasattr(step_size, "config"):
        return step_size
    raise TypeError(f"step_size must be a positive number or a schedule, got {step_size!r}")
