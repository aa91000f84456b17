"""How a turn is written as text: optmem's assembler's format, so the baselines pay the same
positions for the same turn."""

from __future__ import annotations

from typing import Sequence

from optmem.reader import format_turn
from optmem.tokens import count_tokens

from .haystack import DialogTurn

__all__ = ["format_query", "format_turn", "turn_costs"]


def format_query(query: str) -> str:
    """The question, last, as a user turn."""
    return format_turn("user", query)


def turn_costs(turns: Sequence[DialogTurn]) -> list[int]:
    """The positions each turn costs as text."""
    return [count_tokens(format_turn(t.role, t.text)) for t in turns]
