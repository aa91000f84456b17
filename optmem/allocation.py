"""Budget allocation for an image reader: retrieved turns as text and page images share the budget
by expected value per token, not by fixed shares.

The unit of value is the expected number of evidence turns the reader gets to read. A turn as text
is worth the chance that a turn at its retrieval rank is evidence (:func:`evidence_prior`); a page
image is worth the chances of the turns on it that are not already in text, times the share of its
text the reader makes out at that tier (:func:`legibility`). Greedy by value per token, the next
item is the better of the next retrieved turn (the text stream, in rank order) and the best page
step: a page entering at its cheapest allowed tier, or sharpening one tier towards the tier its age
allows (the schedule's tier is the ceiling: pages still fade as they age). Pinned pages are paid
first. Nothing is left idle while an item that fits is left out.

Pure: costs come from the reader's profile, relevance from the caller's ranking.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# P(a turn is a question's evidence | its rank in the fused dense + keyword turn ranking), fitted
# on LoCoMo conversations 0-1 of shared/data (302 questions, 411 evidence turns; /tmp script in
# the landing note): 0.21 at ranks 0 and 1, then ~ rank^-1.3 (0.044 at 4-7, 0.0075 at 16-31,
# 0.0017 at 64-127, 0.0008 at 128-255).
TOP_PRIOR = 0.2
PRIOR_DECAY = 1.3

# DeepSeek-OCR's OCR precision by compression (text tokens per vision token), arXiv 2510.18234
# Table 2 as docs/deepseek-ocr-spec.md gives it: ~97 % below 10x, ~90 % at 10-12x, ~60 % near 20x.
# Past 20x the 12x -> 20x slope goes on, to nothing at 36x. An upper bound on what a reader makes
# of a page: it is what OCR reads back, not what a model answers from.
_LEGIBILITY = ((0.0, 0.99), (10.0, 0.97), (12.0, 0.90), (20.0, 0.60), (36.0, 0.0))


def evidence_prior(rank: int | None) -> float:
    """The chance that the turn at ``rank`` (0: best) is evidence; None: a turn no ranking saw,
    valued as the tail of the ranking."""
    if rank is None:
        rank = 1 << 12
    return TOP_PRIOR * min(1.0, ((rank + 1) / 2) ** -PRIOR_DECAY)


def legibility(compression: float) -> float:
    """The share of a page's text made out at ``compression`` text tokens per image token."""
    points = _LEGIBILITY
    if compression >= points[-1][0]:
        return 0.0
    i = bisect_right([x for x, _ in points], compression)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (compression - x0) / (x1 - x0)


@dataclass(frozen=True)
class Rung:
    tier: str
    positions: int  # the image and what rides with it (ledger, label), in the reader's tokens
    legibility: float


@dataclass(frozen=True)
class PageOption:
    """An in-context page as the allocator sees it: the tiers it may be sent at, cheapest first
    and up to the one its age allows, and the turns it shows."""

    number: int
    rungs: tuple[Rung, ...]
    first_turn: int
    last_turn: int
    pinned: bool = False  # sent at its (single) rung before anything else


@dataclass(frozen=True)
class TextItem:
    """The text stream's next offer: its cost now, what it is worth, the turns it covers, and the
    page it replaces as a whole (a page read back to text), if any."""

    positions: int
    value: float
    turns: tuple[int, ...]
    replaces_page: int | None = None


class TextStream(Protocol):
    """Retrieved text, best first. ``offer(left)`` is the next item (None: nothing more), priced
    given what was taken so far; the allocator answers with ``take`` or ``skip`` before asking again."""

    def offer(self, left: int) -> TextItem | None: ...

    def take(self, item: TextItem) -> None: ...

    def skip(self, item: TextItem) -> None: ...


@dataclass
class Allocation:
    tiers: dict[int, str | None]  # page number -> tier it is sent at (None: out)
    text_positions: int
    image_positions: int
    value: float


def allocate(pages: Sequence[PageOption], text: TextStream, budget: int,
             turn_value: Callable[[int], float]) -> Allocation:
    """Share ``budget`` between ``text`` and the page images of ``pages`` by value per token."""
    covered: set[int] = set()
    at: dict[int, int] = {}  # page -> index of the rung it is sent at
    by_number = {p.number: p for p in pages}
    left = budget
    image_positions = text_positions = 0
    value = 0.0
    for p in pages:
        if p.pinned and p.rungs and p.rungs[0].positions <= left:
            at[p.number] = 0
            left -= p.rungs[0].positions
            image_positions += p.rungs[0].positions
    replaced: set[int] = set()
    # What each page's turns not in text are worth, kept as text covers them.
    worth = {p.number: sum(turn_value(t) for t in range(p.first_turn, p.last_turn + 1)) for p in pages}
    ordered = sorted(pages, key=lambda p: p.first_turn)
    firsts = [p.first_turn for p in ordered]

    def cover(turn: int) -> None:
        if turn in covered:
            return
        covered.add(turn)
        i = bisect_right(firsts, turn) - 1
        if i >= 0 and turn <= ordered[i].last_turn:
            worth[ordered[i].number] -= turn_value(turn)

    def page_worth(p: PageOption) -> float:
        return max(worth[p.number], 0.0)

    def step(p: PageOption) -> tuple[float, int, Rung] | None:
        """The page's next step: (density, positions it adds, the rung it goes to)."""
        i = at.get(p.number, -1) + 1
        if p.pinned or p.number in replaced or i >= len(p.rungs):
            return None
        rung = p.rungs[i]
        added = rung.positions - (p.rungs[i - 1].positions if i else 0)
        gain = (rung.legibility - (p.rungs[i - 1].legibility if i else 0.0)) * page_worth(p)
        return (gain / max(added, 1), added, rung)

    heap: list[tuple[float, int]] = []
    for p in pages:
        s = step(p)
        if s is not None:
            heapq.heappush(heap, (-s[0], p.number))
    offer = text.offer(left)
    while left > 0 and (offer is not None or heap):
        # The best page step, re-priced: text taken since it was pushed may have lowered it.
        best = None
        while heap:
            density, number = heap[0]
            s = step(by_number[number])
            if s is None or s[1] > left:
                heapq.heappop(heap)
                continue
            if -density > s[0] + 1e-12:
                heapq.heapreplace(heap, (-s[0], number))
                continue
            best = (s, number)
            break
        if offer is not None and offer.positions > left:
            text.skip(offer)
            offer = text.offer(left)
            continue
        text_density = offer.value / max(offer.positions, 1) if offer is not None else -1.0
        if best is not None and best[0][0] > text_density:
            (density, added, rung), number = best
            p = by_number[number]
            value += density * max(added, 1)
            at[number] = at.get(number, -1) + 1
            left -= added
            image_positions += added
            heapq.heappop(heap)
            if (s := step(p)) is not None:
                heapq.heappush(heap, (-s[0], number))
            continue
        if offer is None:
            break
        text.take(offer)
        left -= offer.positions
        text_positions += offer.positions
        value += offer.value
        for turn in offer.turns:
            cover(turn)
        if offer.replaces_page is not None and offer.replaces_page in by_number:
            replaced.add(offer.replaces_page)
            if offer.replaces_page in at:  # its image gives way to its text
                freed = by_number[offer.replaces_page].rungs[at.pop(offer.replaces_page)].positions
                left += freed
                image_positions -= freed
        offer = text.offer(left)
    tiers = {p.number: (p.rungs[at[p.number]].tier if p.number in at else None) for p in pages}
    return Allocation(tiers, text_positions, image_positions, value)
