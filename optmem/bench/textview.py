"""How a turn is written as text: optmem's assembler's format, so the baselines pay the same
positions for the same turn."""

from __future__ import annotations

from optmem.reader import format_turn

__all__ = ["format_query", "format_turn"]


def format_query(query: str) -> str:
    """The question, last, as a user turn."""
    return format_turn("user", query)
