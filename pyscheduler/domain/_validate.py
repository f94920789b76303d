"""Small argument checks shared by the model and config classes.

Each check returns the (possibly converted) value or raises the error class it
is given, with a message that names the field and the bad value.
"""

from __future__ import annotations

import math
from typing import Any

MAX_ID_LENGTH = 256
MAX_COUNT = 1_000_000


def check_bool(value: Any, field: str, error: type[Exception]) -> bool:
    if not isinstance(value, bool):
        raise error(f"{field} must be a bool, got {value!r}")
    return value


def check_int(
    value: Any,
    field: str,
    error: type[Exception],
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{field} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise error(f"{field} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise error(f"{field} must be <= {high}, got {value!r}")
    return int(value)


def check_number(
    value: Any,
    field: str,
    error: type[Exception],
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{field} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise error(f"{field} must be finite, got {value!r}")
    if low is not None and (number <= low if low_open else number < low):
        raise error(f"{field} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and number > high:
        raise error(f"{field} must be <= {high}, got {value!r}")
    return number


def check_id(value: Any, field: str, error: type[Exception]) -> str:
    """A non-empty printable identifier of at most MAX_ID_LENGTH characters."""
    if not isinstance(value, str):
        raise error(f"{field} must be a string, got {value!r}")
    if not value or not value.strip():
        raise error(f"{field} must not be empty, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise error(f"{field} must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    if not value.isprintable():
        raise error(f"{field} must be printable, got {value!r}")
    return value


def check_optional_id(value: Any, field: str, error: type[Exception]) -> str | None:
    return None if value is None else check_id(value, field, error)


def check_choice(value: Any, field: str, choices: tuple[str, ...], error: type[Exception]) -> str:
    if value not in choices:
        raise error(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value
