"""The pager: turns past the recent window → page layouts → sealed page records.

Turns are packed, in order, onto the open page; when it fills it is sealed: drawn, encoded at
the first tier of the schedule, and described by a record the store keeps. The open page itself
is never stored: it is laid out again from the turns whenever it is needed, so the store stays
the one source of truth and a killed writer leaves nothing to repair.

Everything here is pure computation over the turns it is given (no store, no clock): the memory
calls it outside the store's write lock, then writes the records in one short transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from PIL import Image

from optmem.ledger import extract_exact_strings
from optmem.store import TurnPos, TurnRow
from renderers import Line, PageLayout, RenderConfig, Tier, TurnInput, downsample, encode_png, layout_pages
from renderers.canvas import Canvas
from renderers.config import line_pitch
from renderers.layout import WrapCache

# Characters a page holds at most, as a first guess (dense English is ~5.4k, Chinese ~2.6k); a
# longer prefix is laid out when pages turn out to hold more.
PAGE_CHARS_GUESS = 8000
CHARS_PER_TURN_MIN = 64  # a page holds at most ~60 rows, and every turn has at least a row


@dataclass(frozen=True)
class OpenPageFill:
    """How far the open page starting at ``start`` is known to be filled: every turn through
    ``laid_out_through`` fits on it, its last line ending at ``bottom_px``. Lets a new turn be
    laid out alone instead of the whole open page again (pagination is greedy: appending turns
    never moves the lines already placed)."""

    start: TurnPos
    laid_out_through: int
    bottom_px: int


@dataclass(frozen=True)
class SealedPage:
    """A full page, ready to be stored."""

    first: TurnPos
    last: TurnPos  # the char offset is where the page ends within that turn (exclusive)
    last_timestamp: float
    layout_json: str
    source_text: str  # the page's text as the renderer laid it out (headers included)
    text_tokens: int
    ledger: tuple[str, ...]  # exact strings of the page's turn bodies (the verbatim guard)
    png: bytes  # the page at ``tier``
    image: Image.Image  # its pixels, so that the sent image and tier moves need not decode them
    tier: Tier


@dataclass(frozen=True)
class Packed:
    sealed: list[SealedPage]
    next_start: TurnPos  # where the open page starts after these seals
    fill: OpenPageFill | None


def turn_inputs(turns: Sequence[TurnRow], first_char: int) -> list[TurnInput]:
    """What the renderer is given for these stored turns (the first one from ``first_char``).
    Timestamps go in as numbers: the renderer formats every value, even one outside the calendar."""
    return [TurnInput(t.role, t.text or "", number=t.seq, timestamp=t.timestamp, start=first_char if i == 0 else 0)
            for i, t in enumerate(turns)]


def line_json(line: Line) -> dict:
    return {"box": list(line.box), "text": line.text, "drawn": line.drawn, "span": list(line.span), "kind": line.kind}


def line_from_json(d: dict) -> Line:
    return Line(box=tuple(d["box"]), text=d["text"], drawn=d["drawn"], span=tuple(d["span"]), kind=d["kind"])


def _prefix(inputs: list[TurnInput], limit: int) -> tuple[list[TurnInput], bool]:
    """The turns cut after ``limit`` characters (or ``limit / CHARS_PER_TURN_MIN`` turns: every
    turn takes a row) of text to lay out, and whether anything was cut."""
    max_turns = max(1, limit // CHARS_PER_TURN_MIN)
    if len(inputs) > max_turns:
        return _prefix(inputs[:max_turns], limit)[0], True
    out, room = [], limit
    for turn in inputs:
        length = len(turn.text) - turn.start
        if length > room:
            out.append(replace(turn, text=turn.text[: turn.start + room]))
            return out, True
        out.append(turn)
        room -= length
    return out, False


def _content_bottom(layout: PageLayout) -> int:
    return max((p.line.box[3] for p in layout.placed), default=layout.margin_px)


class Pager:
    def __init__(self, render: RenderConfig, *, first_tier: Tier, max_ledger_strings: int,
                 count_tokens: Callable[[str], int], view_sides: Iterable[int] = ()):
        """``view_sides``: the sides the open page is viewed at for its reader (Reader.view_sides),
        kept up to date as lines join it so that no export resamples a whole page at a new side."""
        self.render = render
        self.first_tier = first_tier
        self.max_ledger_strings = max_ledger_strings
        self._count = count_tokens
        self._wrapped = WrapCache()  # the open page's turns are laid out again on every turn
        self.canvas = Canvas(keep=view_sides)  # the open page as last drawn, which the page that seals extends

    def still_fits(self, fill: OpenPageFill | None, start: TurnPos, new_turns: Sequence[TurnRow]) -> OpenPageFill | None:
        """The open page's fill after ``new_turns`` (the turns after ``fill.laid_out_through``), if
        they surely fit on it with two lines to spare for rounding; None when in doubt (the
        caller then lays out the whole open page)."""
        if fill is None or fill.start != start:
            return None
        if not new_turns:
            return fill
        layouts = layout_pages(turn_inputs(new_turns, 0), self.render, wrapped=self._wrapped)
        if len(layouts) != 1:
            return None
        cfg = self.render
        bottom = fill.bottom_px + cfg.turn_gap_px + _content_bottom(layouts[0]) - cfg.margin_px
        if bottom > cfg.page_px - cfg.margin_px - 2 * line_pitch(cfg.font_px, cfg.line_spacing):
            return None
        return OpenPageFill(start, new_turns[-1].seq, bottom)

    def pack(self, turns: Sequence[TurnRow], start: TurnPos, *, max_seals: int) -> Packed:
        """Lay out ``turns`` (the first from ``start.char``) and seal up to ``max_seals`` full
        pages; the rest stays for the next call. Only a prefix of the text that yields those pages
        is laid out (pagination is greedy, so a prefix gives the same first pages), which bounds
        one call's work however long the turns are."""
        limit = PAGE_CHARS_GUESS * (max_seals + 2)
        while True:
            inputs, cut = _prefix(turn_inputs(turns, start.char), limit)
            layouts = layout_pages(inputs, self.render, wrapped=self._wrapped)
            if not cut or len(layouts) > max_seals + 1:
                break
            limit *= 2  # pages held more characters than guessed
        sealed = [self._seal(layout, inputs, turns) for layout in layouts[:-1][:max_seals]]
        rest = layouts[len(sealed)]
        next_start = TurnPos(inputs[rest.start.turn_index].number, rest.start.char)
        complete = not cut and len(sealed) == len(layouts) - 1
        fill = OpenPageFill(next_start, turns[-1].seq, _content_bottom(rest)) if complete else None
        return Packed(sealed, next_start, fill)

    def layout_open(self, turns: Sequence[TurnRow], start: TurnPos) -> PageLayout:
        """The open page's layout as it would be sealed now."""
        inputs, _ = _prefix(turn_inputs(turns, start.char), 2 * PAGE_CHARS_GUESS)
        return layout_pages(inputs, self.render, wrapped=self._wrapped)[0]

    def _seal(self, layout: PageLayout, inputs: Sequence[TurnInput], turns: Sequence[TurnRow]) -> SealedPage:
        # The page sealing is the open page the canvas last drew, with the lines that filled it.
        image = self.canvas.draw(layout)
        (ti0, c0), (ti1, c1) = layout.start, layout.end
        if c1 == 0:  # the page ends where turn ti1 - 1 ended
            ti1 -= 1
            c1 = len(inputs[ti1].text)
        body = "\n".join(inputs[seg.turn_index].text[seg.start:seg.end] for seg in layout.segments)
        tier = self.first_tier
        # Resampled as a tier move does it: page.at() knows only the view tiers, not Gundam's 1280 px.
        if tier.side != layout.side:
            image = downsample(image, tier.side)
        return SealedPage(
            first=TurnPos(inputs[ti0].number, c0), last=TurnPos(inputs[ti1].number, c1),
            last_timestamp=turns[ti1].timestamp,
            layout_json=json.dumps([line_json(line) for line in layout.lines], ensure_ascii=False),
            source_text=layout.source_text, text_tokens=self._count(layout.source_text),
            ledger=tuple(extract_exact_strings(body)[: self.max_ledger_strings]), png=encode_png(image), image=image,
            tier=tier)
