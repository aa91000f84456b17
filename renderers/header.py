"""The turn header, built and parsed side by side: ``role · #12 · 2024-05-01 09:30 UTC``.

The renderer draws it above each turn; re-expansion and excerpt widening read it back from a
page's text (the archived source, or an OCR read) to know which turn a passage belongs to. One
module owns the format so the writer and the readers cannot drift apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

SEPARATOR = " · "
CONTINUED = " (continued)"
ROLE_MAX_CHARS = 200  # a role is a label; longer ones are cut before building the header
ELLIPSIS = "…"

# A header line: the role (no separator in it), "#", the turn number; a timestamp may follow.
_HEADER_LINE = re.compile(r"^(?P<role>[^\n·]{1,%d}?)\s*·\s*#(?P<number>\d{1,18})\b" % (ROLE_MAX_CHARS + 1), re.MULTILINE)
_SEPARATOR_READ = re.compile(r"\s*·\s*")


def format_timestamp(ts: object) -> str:
    """Header form of a timestamp: strings as given; epoch seconds and datetimes in UTC (never the
    machine's local zone, which would make the same page differ between machines). Total: a value
    outside the calendar is written as the number, so no stored timestamp can break a page."""
    if isinstance(ts, datetime):
        if ts.tzinfo is not None:
            ts = ts.astimezone(timezone.utc)
        return ts.strftime("%Y-%m-%d %H:%M") + (" UTC" if ts.tzinfo is not None else "")
    if isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts):
        try:
            return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        except (OverflowError, OSError, ValueError):
            return repr(ts)
    return str(ts)


def format_header(role: str, number: int, timestamp: object = None, *, continued: bool = False) -> str:
    """The header text drawn above turn ``number`` (``continued``: on a page after its first)."""
    if len(role) > ROLE_MAX_CHARS:
        role = role[:ROLE_MAX_CHARS] + ELLIPSIS
    parts = [role, f"#{number}"]
    if timestamp is not None:
        parts.append(format_timestamp(timestamp))
    return SEPARATOR.join(parts) + (CONTINUED if continued else "")


def normalize_separators(header: str) -> str:
    """A header as read back by OCR, with its separators respaced the way format_header writes
    them (recognisers drop the spaces around ``·``)."""
    return _SEPARATOR_READ.sub(SEPARATOR, header)


@dataclass(frozen=True)
class HeaderMatch:
    start: int  # offset of the header line in the text searched
    role: str
    number: int


def find_headers(text: str, start: int = 0, end: int | None = None) -> Iterator[HeaderMatch]:
    """Every turn header in ``text[start:end]``, in order."""
    end = len(text) if end is None else end
    for m in _HEADER_LINE.finditer(text, start, end):
        yield HeaderMatch(m.start(), m.group("role"), int(m.group("number")))
