"""optmem's own errors for bad arguments: each names the argument and what is accepted."""

from __future__ import annotations

import numbers
import operator


class InvalidArgument(ValueError):
    """An argument of a public call that optmem cannot accept (wrong type or out of range)."""


def check_text(value: object, name: str, error: type[InvalidArgument] = InvalidArgument) -> str:
    """``value`` as text: a str (or UTF-8 bytes where the caller allows it) that can be encoded."""
    if not isinstance(value, str):
        raise error(f"{name} must be a str, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise error(f"{name} is not valid Unicode: a lone surrogate {value[e.start]!r} at index {e.start}") from None
    return value


MAX_COUNT = 2**63 - 1  # the largest integer a store column holds; a larger page number cannot exist


def check_count(value: object, name: str, *, minimum: int = 1) -> int:
    """``value`` as a whole number in [``minimum``, MAX_COUNT]: ints and numpy integers, never
    bools or floats."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise InvalidArgument(f"{name} must be an integer >= {minimum}, got {value}")
    if value > MAX_COUNT:
        raise InvalidArgument(f"{name} must be an integer >= {minimum} and <= {MAX_COUNT}, got {value}")
    return value
