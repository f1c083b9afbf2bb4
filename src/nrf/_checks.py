"""Argument checks shared by the whole package.

Every public function validates its arguments up front and raises an error that names
the argument, the expected value and the actual value, instead of failing deep inside
numpy or torch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (not 0 / 1 or another truthy value)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")
    return value


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is finite and > 0 (>= 0 with ``allow_zero``);
    numpy scalars are accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    v = float(value)
    bound_ok = v >= 0 if allow_zero else v > 0
    if not math.isfinite(v) or not bound_ok:
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return v


def check_positive_int(name: str, value: int, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an ``int`` if it is an integer > 0 (>= 0 with ``allow_zero``);
    numpy integers are accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < 0 or (value == 0 and not allow_zero):
        expected = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be an int {expected}, got {value!r}")
    return int(value)


def check_int_sequence(name: str, values: Sequence[int], *, allow_empty: bool = True) -> tuple[int, ...]:
    """Return ``values`` as a tuple of positive ints."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of ints, got {type(values).__name__}")
    if not allow_empty and len(values) == 0:
        raise ValueError(f"{name} must not be empty")
    return tuple(check_positive_int(f"{name}[{i}]", v) for i, v in enumerate(values))


def check_probability(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_finite_tensor(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise if ``x`` holds NaN or inf, with the count and the first offending index."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        count = int(bad.sum())
        first = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"{name} holds {count} non-finite values (first at index {first})")
    return x


def check_input_shape(name: str, x: torch.Tensor, event_shape: Sequence[int]) -> None:
    """Raise if ``x`` is not a batch of tensors of shape ``event_shape``."""
    expected = tuple(event_shape)
    if x.dim() != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{name} must have shape (batch, {', '.join(map(str, expected))}), got {tuple(x.shape)}"
        )


def check_box(name: str, value: Any) -> tuple[float, float]:
    """``value`` as ``(low, high)`` floats with finite low < high (a pair of real numbers)."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok or not value[0] < value[1]:
        raise ValueError(f"{name} must be (low, high) with finite low < high, got {value!r}")
    return float(value[0]), float(value[1])
