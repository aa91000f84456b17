"""Excerpts: a retrieved chunk of a page's text widened to the whole turns it touches.

A chunk cut mid-turn often stops just before the sentence a question asks about, so an excerpt
is the chunk grown to its turns' headers (as long as that stays within a limit), and it names the
turns it shows. Works on the archived text and on an OCR read alike: the turn headers are found
by the renderer's own parser, and a header number outside the page's turns (a misread) is ignored.
"""

from __future__ import annotations

from optmem.turns import ROLES
from renderers import find_headers


def _headers(text: str, start: int = 0, end: int | None = None):
    return (h for h in find_headers(text, start, end) if h.role in ROLES)


def whole_turns(page_text: str, start: int, end: int, limit: int) -> tuple[int, int]:
    """``(start, end)`` widened to the whole turns it touches on the page, as long as that stays
    within ``limit`` characters (else widened evenly up to it), whitespace trimmed."""
    heads = [h.start for h in _headers(page_text)]
    block_start = max((h for h in heads if h <= start), default=0)
    block_end = min((h for h in heads if h >= end), default=len(page_text))
    if block_end - block_start > limit:
        spare = max(0, limit - (end - start)) // 2
        block_start, block_end = max(block_start, start - spare), min(block_end, end + spare)
    text = page_text[block_start:block_end]
    return block_start + (len(text) - len(text.lstrip())), block_start + len(text.rstrip())


def excerpt_turns(page_text: str, start: int, end: int, first_turn: int, last_turn: int) -> tuple[int, int]:
    """The turns an excerpt ``page_text[start:end]`` shows: the turn whose header comes last
    before it (the page's first turn when none does) through the last header inside it."""
    first = last = first_turn
    for h in _headers(page_text, 0, end):
        if not first_turn <= h.number <= last_turn:
            continue  # a misread number (OCR) says nothing
        if h.start <= start:
            first = h.number
        last = h.number
    return first, max(first, last)
