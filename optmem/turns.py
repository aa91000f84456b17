"""What a turn is, and what the memory accepts as one."""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from optmem.errors import InvalidArgument, check_text

ROLES = ("user", "assistant", "system", "tool")

# Page headers show a turn's time as a calendar date, so a timestamp must be one: 0001-01-01 to
# 9999-12-31 UTC, the range Python's datetime can write.
MIN_TIMESTAMP = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
MAX_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()


class InvalidTurn(InvalidArgument):
    """A turn that cannot be stored: unknown role, undecodable text, too long, a bad timestamp."""


@dataclass(frozen=True)
class Turn:
    id: int
    role: str
    text: str | None  # None once an optical archive dropped it
    timestamp: float


def check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidTurn(f"role must be one of {ROLES}, got {role!r}")
    return role


def check_turn_text(text: object, max_chars: int) -> str:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidTurn(f"turn text is not valid UTF-8 (byte {e.start}: {e.reason})") from None
    if not isinstance(text, str):
        raise InvalidTurn(f"turn text must be str or UTF-8 bytes, got {type(text).__name__}")
    check_text(text, "turn text", InvalidTurn)
    if len(text) > max_chars:
        raise InvalidTurn(f"turn has {len(text)} characters, over max_turn_chars={max_chars}")
    return text


def check_timestamp(timestamp: object) -> float:
    """Seconds since the epoch for a datetime (naive means UTC), a number of seconds, or None (now)."""
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=timezone.utc)
        return timestamp.timestamp()
    if isinstance(timestamp, numbers.Real) and not isinstance(timestamp, bool):
        # Compare before converting: an int like 10**400 has no float.
        if MIN_TIMESTAMP <= timestamp <= MAX_TIMESTAMP and math.isfinite(float(timestamp)):
            return float(timestamp)
    raise InvalidTurn(f"timestamp must be a datetime, None, or seconds since the epoch between {MIN_TIMESTAMP:.0f} "
                      f"(year 1) and {MAX_TIMESTAMP:.0f} (year 9999), got {timestamp!r}")
