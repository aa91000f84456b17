"""Context: the ordered segments optmem puts in front of a reader, priced in that reader's tokens.

The reader (``optmem.reader.Reader``, from the config's model profile) says what each part costs:
a DeepSeek-OCR decoder reads ``[BOS]`` and each segment (a page as its image slots, every text
segment tokenised on its own); an API reader reads the chat messages the exports write. Each
segment carries its cost and the context its request overhead, so ``positions`` is the request's
input tokens, and :func:`assemble` never returns a context over its budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from PIL import Image

from optmem.allocation import PageOption, Rung, legibility
from optmem.codec.segments import ImageSegment, TextSegment
from optmem.ledger import format_ledger
from optmem.reader import Reader, format_turn
from optmem.schedule import PageCost, fit_pages
from renderers import Tier

DEFAULT_READER = "deepseek-ocr"
DEFAULT_COMPRESSION = 10.0  # text tokens per image token assumed for a page whose text was not counted


class BudgetError(ValueError):
    """The parts of a context that may never be cut do not fit in the budget."""


def format_page_ledger(page: int, strings: Sequence[str]) -> str:
    return f"[memory page {page}, {format_ledger(strings)}]\n"


def format_expanded(page: int, first_turn: int, last_turn: int, text: str, *, excerpt: bool = False) -> str:
    return f"[memory page {page}, turns {first_turn}-{last_turn}{', excerpt' if excerpt else ''}]\n{text}\n"


@dataclass(frozen=True)
class TurnSegment:
    turn_id: int
    role: str
    body: str
    text: str
    positions: int
    kind: Literal["turn"] = "turn"


@dataclass(frozen=True)
class PageSegment:
    page: int  # the page's number, as pages() and the context's text name it (the open page: the next one)
    tier: str  # the page's age class (the schedule's tier)
    first_turn: int
    last_turn: int
    positions: int  # the image (and, for chat readers, its label) in the reader's tokens
    image_source: "PageImageSource" = field(repr=False, compare=False)
    side: int = 0  # pixels of the square image the reader is sent (priced as its profile's rung for the tier)
    detail: str | None = None  # the rung's detail, for APIs that take one
    label: str = ""  # the text part that names the image for a chat reader
    kind: Literal["page"] = "page"
    crop: int = 0  # px of blank margin cut from each edge of the tier's view to make it (optmem.reader.SentImage)

    def load_png(self) -> bytes:
        """The image the reader is sent, as image bytes (PNG or WebP, the profile's media type),
        made once per page and kept."""
        return self.image_source.png(self.side, self.crop)

    def load_image(self) -> Image.Image:
        """The image the reader is sent (square, ``side`` px)."""
        return self.image_source.image(self.side, self.crop)


@dataclass(frozen=True)
class LedgerSegment:
    page: int
    strings: tuple[str, ...]
    text: str
    positions: int
    kind: Literal["ledger"] = "ledger"


@dataclass(frozen=True)
class ExpandedSegment:
    page: int
    tier: str
    first_turn: int
    last_turn: int
    body: str
    source: Literal["verbatim", "ocr"]
    text: str
    positions: int
    kind: Literal["expanded"] = "expanded"
    excerpt: bool = False  # a part of the page (first_turn..last_turn are the excerpt's); its image may stay


Segment = TurnSegment | PageSegment | LedgerSegment | ExpandedSegment


# -- inputs to assemble() --------------------------------------------------------------------------

@dataclass(frozen=True)
class RecentTurn:
    turn_id: int
    role: str
    text: str


class PageImageSource(Protocol):
    """Where a page's image comes from, at any side up to the one it is stored at: resized to
    ``side``, or (``crop`` > 0) its view at ``side + 2 * crop`` px with ``crop`` px cut from each edge."""

    def png(self, side: int, crop: int = 0) -> bytes: ...

    def image(self, side: int, crop: int = 0) -> Image.Image: ...


@dataclass(frozen=True)
class MemoryPage:
    """A page the schedule keeps in context, oldest first, as the assembler needs it."""

    number: int
    tier: str | None  # None: out of the context unless re-expanded
    first_turn: int
    last_turn: int
    ledger: tuple[str, ...]
    image_source: PageImageSource
    pinned: bool = False
    text_tokens: int | None = None  # DeepSeek tokens of the page's text; None: not known (the open page)
    reader_text_tokens: int | None = None  # the same text in the reader's tokens, where counted (else from text_tokens)


@dataclass(frozen=True)
class Expansion:
    """A page, or with ``excerpt`` (its first and last turn) a part of one, re-expanded to text
    because the query needs it. A whole page replaces the page's image; an excerpt goes beside it."""

    page: int
    text: str
    source: Literal["verbatim", "ocr"]
    tier: str
    excerpt: tuple[int, int] | None = None
    heading: str | None = None  # the line that introduces it instead of the page's (a run of whole turns)
    # A run's own heading, where ``heading`` is "" because the run before dates it: shown when
    # that run is not in the context after all.
    dated: str | None = None


@dataclass
class Context:
    segments: list[Segment]
    budget: int
    reader: Reader = field(repr=False)
    overhead: int = 0  # the request's tokens beyond its segments (BOS; message framing, opener, system)
    system: str | None = None  # the system prompt the budget paid for

    @property
    def positions(self) -> int:
        """The reader's input tokens for this context's request (exact where ``exact``)."""
        return self.overhead + sum(s.positions for s in self.segments)

    @property
    def exact(self) -> bool:
        """Whether ``positions`` is exact (the profile's rules are) rather than an upper bound."""
        return self.reader.exact

    def page_tiers(self) -> dict[int, str]:
        """Page number -> tier of every page in the context as an image."""
        return {s.page: s.tier for s in self.segments if s.kind == "page"}

    def expanded_pages(self) -> list[int]:
        """Pages re-expanded whole (not those with only excerpts in the context)."""
        return [s.page for s in self.segments if s.kind == "expanded" and not s.excerpt]

    def codec_segments(self) -> list[TextSegment | ImageSegment]:
        """The context as the DeepSeek-OCR codec takes it (``codec.splice(ctx.codec_segments())``):
        one ImageSegment per page at its tier, one TextSegment per text segment, in order."""
        return [ImageSegment(s.load_image(), s.tier) if s.kind == "page" else TextSegment(s.text) for s in self.segments]

    def to_text(self) -> str:
        """Everything a text-only model can read: re-expanded pages, ledgers, recent turns.
        Page images are named by a one-line marker so the reader knows memory exists there."""
        parts = []
        for s in self.segments:
            if s.kind == "page":
                parts.append(f"[memory page {s.page}, turns {s.first_turn}-{s.last_turn}: image at {s.tier} tier]\n")
            else:
                parts.append(s.text)
        return "".join(parts)

    def to_messages(self, system: str | None = None) -> list[dict]:
        """OpenAI Chat Completions messages (optmem.exports.to_openai_messages): the system prompt
        given to ``context()`` (or here: then it is outside the budget), memory as user content."""
        from optmem.exports import to_openai_messages

        return to_openai_messages(self, system=self.system if system is None else system)

    def to_anthropic(self, system: str | None = None) -> dict:
        """Anthropic Messages ``{"system", "messages"}`` (optmem.exports.to_anthropic)."""
        from optmem.exports import to_anthropic

        return to_anthropic(self, system=self.system if system is None else system)


def _turn_segments(recent: Sequence[RecentTurn], reader: Reader) -> list[TurnSegment]:
    return [TurnSegment(t.turn_id, t.role, t.text, format_turn(t.role, t.text), reader.cost(reader.turn_text(t.role, t.text)))
            for t in recent]


def fixed_cost(recent: Sequence[RecentTurn], reader: Reader, system: str | None) -> int:
    """What a context costs before any memory: the recent turns and the request's framing, counted
    as if memory goes in (it is never less than without; see Reader.overhead)."""
    roles = [t.role for t in recent if reader.turn_text(t.role, t.text)]
    return reader.overhead(roles, memory=True, system=system) + sum(s.positions for s in _turn_segments(recent, reader))


def page_text_worth(page: MemoryPage, reader: Reader) -> int | None:
    """The page's text in the reader's tokens; None: not known."""
    if page.reader_text_tokens is not None:
        return page.reader_text_tokens
    return None if page.text_tokens is None else reader.page_text_tokens(page.text_tokens)


def price_pages(pages: Sequence[MemoryPage], reader: Reader, ledger: bool
                ) -> tuple[dict[int, LedgerSegment], dict[int, str], list[PageCost]]:
    """Each page's ledger segment and label, and its cost as the budget controller sees it: the
    text that rides with its image, and the tiers whose image would cost more than its text."""
    ledgers, labels, costs = {}, {}, []
    for p in pages:
        if ledger and p.ledger:
            text = format_page_ledger(p.number, p.ledger)
            ledgers[p.number] = LedgerSegment(p.number, p.ledger, text, reader.cost(text))
        labels[p.number] = reader.page_label(p.number, p.first_turn, p.last_turn)
        worth = page_text_worth(p, reader)
        barred = frozenset() if worth is None else frozenset(t for t in Tier if (reader.image_tokens(t) or 0) > worth)
        extra = (ledgers[p.number].positions if p.number in ledgers else 0) + reader.cost(labels[p.number])
        costs.append(PageCost(p.tier, extra, p.pinned, barred))
    return ledgers, labels, costs


def page_options(pages: Sequence[MemoryPage], reader: Reader, ledger: bool) -> list[PageOption]:
    """The in-context ``pages`` as optmem.allocation prices them in the reader's tokens: the tiers
    each may be sent at, from the blurriest up to its own (a pinned page: its own only), each
    image with the ledger and label that ride with it, and how legible its text is there."""
    _, _, costs = price_pages(pages, reader, ledger)
    out = []
    for p, cost in zip(pages, costs):
        worth = page_text_worth(p, reader)
        rungs = []
        tier: Tier | None = Tier(p.tier)
        while tier is not None:
            tokens = reader.image_tokens(tier)
            if tokens is not None and tier not in cost.barred:
                compression = DEFAULT_COMPRESSION if worth is None else worth / max(tokens, 1)
                rungs.append(Rung(tier.value, tokens + cost.extra_positions, legibility(compression)))
            tier = None if p.pinned and rungs else tier.blurrier()  # pinned: its own tier, or the first sendable
        out.append(PageOption(p.number, tuple(reversed(rungs)), p.first_turn, p.last_turn, p.pinned))
    return out


def assemble(*, pages: Sequence[MemoryPage], recent: Sequence[RecentTurn], expansions: Sequence[Expansion],
             budget: int, ledger: bool, reader: Reader | None = None, system: str | None = None) -> Context:
    """Fit memory into ``budget`` of the reader's tokens (default reader: the DeepSeek-OCR decoder).

    Priority: recent turns and the request's framing (never cut: if they alone do not fit,
    BudgetError), then re-expanded pages and excerpts in the order given (most relevant first; one
    that does not fit is skipped), then page images with their ledgers, degraded oldest first and
    evicted when even the blurriest tier does not fit. A page is never sent at a tier whose image
    costs the reader more than the page's text. An excerpt follows its page's image.
    """
    reader = reader or Reader(DEFAULT_READER)
    turn_segments = _turn_segments(recent, reader)
    roles = [t.role for t in recent if reader.turn_text(t.role, t.text)]
    fixed = fixed_cost(recent, reader, system)
    if fixed > budget:
        raise BudgetError(f"the newest {len(recent)} turns alone need {fixed} positions, over the budget of {budget}; "
                          "raise the budget or lower recent_turns")

    by_number = {p.number: p for p in pages}
    expanded: dict[int, ExpandedSegment] = {}
    excerpts: dict[int, list[ExpandedSegment]] = {}
    seen_excerpts: set[tuple[int, str]] = set()
    used = fixed
    run_before = False  # whether the last run of whole turns before this one went in
    for e in expansions:
        page = by_number.get(e.page)
        is_run = e.heading is not None
        if page is None or e.page in expanded or (e.page, e.text) in seen_excerpts:
            run_before = run_before and not is_run
            continue
        first, last = e.excerpt or (page.first_turn, page.last_turn)
        if is_run:
            heading = e.heading if run_before or not e.dated else e.dated
            text = f"{heading}\n{e.text}\n" if heading else f"{e.text}\n"
        else:
            text = format_expanded(page.number, first, last, e.text, excerpt=e.excerpt is not None)
        cost = reader.cost(text)
        if used + cost > budget:
            run_before = run_before and not is_run
            continue
        run_before = run_before or is_run
        segment = ExpandedSegment(page.number, e.tier, first, last, e.text, e.source, text, cost,
                                  excerpt=e.excerpt is not None)
        used += cost
        if e.excerpt is None:
            expanded[e.page] = segment
            used -= sum(x.positions for x in excerpts.pop(e.page, []))  # the whole page says it all
        else:
            seen_excerpts.add((e.page, e.text))
            excerpts.setdefault(e.page, []).append(segment)

    imaged = [p for p in pages if p.number not in expanded and p.tier is not None]
    ledgers, labels, costs = price_pages(imaged, reader, ledger)
    tiers = dict(zip((p.number for p in imaged), fit_pages(costs, budget - used, reader.image_tokens)))

    segments: list[Segment] = []
    for p in pages:
        if p.number in expanded:
            segments.append(expanded[p.number])
        elif tiers.get(p.number) is not None:
            tier = tiers[p.number]
            rung, sent = reader.rung(tier), reader.sent_image(tier)
            label = labels[p.number]
            segments.append(PageSegment(p.number, tier, p.first_turn, p.last_turn,
                                        reader.image_tokens(tier) + reader.cost(label), p.image_source,
                                        side=sent.side, crop=sent.crop, detail=rung.detail, label=label))
            if p.number in ledgers:
                segments.append(ledgers[p.number])
        if p.number not in expanded:
            segments.extend(sorted(excerpts.get(p.number, ()), key=lambda x: (x.first_turn, x.last_turn)))
    memory = len(segments) > 0
    segments.extend(turn_segments)
    ctx = Context(segments, budget, reader, reader.overhead(roles, memory=memory, system=system), system)
    assert ctx.positions <= budget, (ctx.positions, budget)  # the invariant fit_pages guarantees
    return ctx
