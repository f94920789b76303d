"""Small argument checks shared by the model and config classes.

Each check returns the (possibly converted) value or raises the error class it
is given, with a message that names the field and the bad value.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import LimitExceededError
from .limits import MAX_COUNT, MAX_ID_LENGTH

__all__ = [
    "MAX_COUNT",
    "MAX_ID_LENGTH",
    "check_bool",
    "check_choice",
    "check_id",
    "check_int",
    "check_number",
    "check_optional_id",
    "check_size",
    "check_text",
    "limit_error",
]


def limit_error(error: type[Exception]) -> type[Exception]:
    """The error to raise for a value past a documented limit: ``LimitExceededError``
    where ``error`` is the node/job error it refines, else ``error`` itself."""
    return LimitExceededError if issubclass(LimitExceededError, error) else error


def check_size(size: int, limit: int, field: str, error: type[Exception], what: str = "entries") -> None:
    """Raise (the limit form of) ``error`` when ``size`` exceeds ``limit``."""
    if size > limit:
        raise limit_error(error)(f"{field}: at most {limit} {what}, got {size}")


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
    try:
        number = float(value)
    except OverflowError:
        raise error(f"{field} must be finite, got an integer of {value.bit_length()} bits") from None
    if not math.isfinite(number):
        raise error(f"{field} must be finite, got {value!r}")
    if low is not None and (number <= low if low_open else number < low):
        raise error(f"{field} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and number > high:
        raise error(f"{field} must be <= {high}, got {value!r}")
    return number


def check_id(value: Any, field: str, error: type[Exception], *, max_length: int = MAX_ID_LENGTH) -> str:
    """A non-empty printable identifier of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise error(f"{field} must be a string, got {value!r}")
    if not value or not value.strip():
        raise error(f"{field} must not be empty, got {value!r}")
    if len(value) > max_length:
        raise limit_error(error)(f"{field} must be at most {max_length} characters, got {len(value)}")
    if not value.isprintable():  # also rejects lone surrogates (category Cs)
        raise error(f"{field} must be printable, got {value!r}")
    return value


def check_text(value: Any, field: str, error: type[Exception], *, max_length: int) -> str:
    """A string of at most ``max_length`` characters that encodes as UTF-8
    (no lone surrogates: hashes and the wire format take its UTF-8 bytes)."""
    if not isinstance(value, str):
        raise error(f"{field} must be a string, got {value!r:.200}")
    if len(value) > max_length:
        raise limit_error(error)(f"{field} must be at most {max_length} characters, got {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"{field} is not encodable as UTF-8 ({exc.reason} at index {exc.start}): {value!r:.200}") from None
    return value


def check_optional_id(value: Any, field: str, error: type[Exception]) -> str | None:
    return None if value is None else check_id(value, field, error)


def check_choice(value: Any, field: str, choices: tuple[str, ...], error: type[Exception]) -> str:
    if value not in choices:
        raise error(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value
