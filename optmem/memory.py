"""OpticalMemory: the object a chat loop holds.

``add`` stores a turn and ages the conversation: turns past the newest k are packed into the open
page (laid out on every add, drawn only when sealed or shown), full pages are sealed, stored at the
tier their age calls for and moved down the tiers as they age. ``context`` assembles recent turns,
re-expanded pages and page images inside a hard budget.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from itertools import zip_longest
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from optmem.assembler import Context, Expansion, MemoryPage, RecentTurn, assemble
from optmem.config import MemoryConfig, load_config
from optmem.ledger import extract_exact_strings
from optmem.modes import TIER_NAMES, tier_side, tier_slots
from optmem.schedule import page_age, tier_for_age
from optmem.store import PageRow, Store, TurnPos, open_store
from optmem.tokens import count_tokens
from renderers import Line, TurnInput, downsample, draw_page, encode_png, layout_pages

ROLES = ("user", "assistant", "system", "tool")
STOPWORDS = frozenset("""a an and are as at be by can did do does for from had has have how i in is it its me my
of on or our that the their them they this to was we were what when where which who why will with you your""".split())
CHUNK_ID_STRIDE = 1024  # vector id = page id * stride + chunk number


class InvalidTurn(ValueError):
    """A turn that cannot be stored: unknown role, undecodable bytes, too long."""


class PinError(ValueError):
    """A pin that cannot be honoured (pages are never sharpened once blurred)."""


@dataclass(frozen=True)
class Turn:
    id: int
    role: str
    text: str | None
    timestamp: float


@dataclass(frozen=True)
class PageInfo:
    id: int | None  # None for the open page, which is not sealed yet
    first_turn: int
    last_turn: int
    tier: str | None  # None: out of the context (still recallable)
    age: float
    positions: int
    sealed: bool
    pinned: str | None
    text_tokens: int | None = None  # DeepSeek tokens of the text on the page (sealed pages)
    image_tier: str | None = None  # resolution of the stored image; an evicted page keeps its last one


@dataclass(frozen=True)
class Recall:
    page: int
    tier: str | None
    text: str
    score: float
    source: Literal["verbatim", "ocr"]


@dataclass(frozen=True)
class ChunkHit:
    page_id: int
    chunk: int | None  # the chunk's number on its page; None: known by its text only (keyword hit)
    text: str | None  # the chunk's text when the keyword index returned it
    score: float  # cosine similarity to the query


@dataclass(frozen=True)
class SearchHit:
    page_id: int
    score: float  # cosine similarity of the page's best chunk to the query
    best_keyword_match: bool  # the page BM25 ranks first for the query's words


@lru_cache(maxsize=65536)
def _count(text: str) -> int:
    return count_tokens(text)


def _epoch(timestamp: datetime | float | int | None) -> float:
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, datetime):
        return timestamp.timestamp()
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool) and math.isfinite(timestamp):
        return float(timestamp)
    raise InvalidTurn(f"timestamp must be a datetime, a finite number of seconds or None, got {timestamp!r}")


def _interleave(*rankings: Sequence[Hashable]) -> list[Hashable]:
    """Round-robin merge of rankings, first occurrence wins: [a1, b1, a2, b2, ...]."""
    merged: dict[Hashable, None] = {}
    for row in zip_longest(*rankings):
        merged.update((pid, None) for pid in row if pid is not None)
    return list(merged)


def _keywords(query: str) -> list[str]:
    seen = dict.fromkeys(w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS)
    return list(seen)


def _header_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def chunk_spans(text: str, size: int) -> list[tuple[int, int]]:
    """Where ``chunk_text`` cuts ``text``: (start, end) of each piece, whitespace trimmed."""
    spans, start, n = [], 0, len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            cut = text.rfind(" ", start + size // 2, end)
            end = cut + 1 if cut > start else end
        a, b = start, end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append((a, b))
        start = end
    return spans


def chunk_text(text: str, size: int) -> list[str]:
    """Cut text into pieces of about ``size`` characters at whitespace, so every piece fits the
    embedder's window (MiniLM reads 256 word pieces) and nothing on a page goes unindexed."""
    return [text[a:b] for a, b in chunk_spans(text, size)] or [""]


# A turn header as the renderer draws it and re-expansion reads it back: "user · #12 · ...".
_TURN_HEADER = re.compile(r"^(?:user|assistant|system|tool) · #(\d+)", re.MULTILINE)


def whole_turns(page_text: str, start: int, end: int, limit: int) -> tuple[int, int]:
    """``(start, end)`` widened to the whole turns it touches on the page, as long as that stays
    within ``limit`` characters (else widened evenly up to it): a chunk cut mid-turn often stops
    just before the sentence a question asks about."""
    heads = [m.start() for m in _TURN_HEADER.finditer(page_text)]
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
    for m in _TURN_HEADER.finditer(page_text, 0, end):
        number = int(m.group(1))
        if not first_turn <= number <= last_turn:
            continue  # a misread number (OCR) says nothing
        if m.start() <= start:
            first = number
        last = number
    return first, max(first, last)


class OpticalMemory:
    def __init__(self, store: Store, conversation_id: int, name: str, config: MemoryConfig, *, owns_store: bool):
        self._store = store
        self._conv = conversation_id
        self.conversation = name
        self.config = config
        self._owns_store = owns_store
        self._open_image: tuple[tuple, Image.Image] | None = None  # (open page key, its 1280 image)
        # (open page start, last turn laid out on it, bottom pixel of its last line): lets add()
        # skip re-laying out the whole open page while new turns surely fit (see _still_fits).
        self._open_fill: tuple[tuple[int, int], int, int] | None = None
        self._sealed_since_schedule = True
        self._index = None  # VectorIndex over this conversation's chunks, built on first use
        self._ocr_model = None  # DeepSeek-OCR codec, loaded on first use when reexpand.engine = "model"

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, conversation: str = "default", config: MemoryConfig | str | Path | dict | None = None,
             *, create: bool = True, readonly: bool = False) -> "OpticalMemory":
        """Open (or create) ``conversation`` in the database at ``path`` (``":memory:"`` works).
        ``create=False``: neither the file nor the conversation is created. ``readonly``: nothing
        is written (pages sealed since the last write are not searched)."""
        if not isinstance(conversation, str) or not conversation:
            raise ValueError("conversation must be a non-empty string")
        cfg = load_config(config)
        store = open_store(path, create=create, readonly=readonly)
        try:
            conv = store.conversation_id(conversation, create=create)
        except BaseException:
            store.close()
            raise
        return cls(store, conv, conversation, cfg, owns_store=True)

    def close(self) -> None:
        if self._index is not None and len(self._index) and not self._store.readonly:
            self._store.put_vector_index(self._conv, len(self._index), self._index.to_bytes())
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> "OpticalMemory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def add(self, role: str, text: str | bytes, timestamp: datetime | float | None = None) -> int:
        """Store a turn; returns its id (1, 2, 3 ... within the conversation)."""
        if role not in ROLES:
            raise InvalidTurn(f"role must be one of {ROLES}, got {role!r}")
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidTurn(f"turn text is not valid UTF-8 (byte {e.start}: {e.reason})") from None
        if not isinstance(text, str):
            raise InvalidTurn(f"turn text must be str or UTF-8 bytes, got {type(text).__name__}")
        if len(text) > self.config.max_turn_chars:
            raise InvalidTurn(f"turn has {len(text)} characters, over max_turn_chars={self.config.max_turn_chars}")
        ts = _epoch(timestamp)
        try:
            with self._store.write():
                seq = self._store.add_turn(self._conv, role, text, ts)
                self._pack(seq)
                self._apply_schedule()
        except BaseException:
            self._forget_caches()  # they may describe writes that were just rolled back
            raise
        return seq

    def _forget_caches(self) -> None:
        self._open_fill = None
        self._open_image = None
        self._sealed_since_schedule = True

    def pin(self, page_id: int, tier: str | None) -> None:
        """Hold a sealed page at ``tier`` whatever its age (None unpins). Pages are never sharpened:
        pin a page before it ages past the tier you want."""
        if tier is not None and tier not in TIER_NAMES:
            raise PinError(f"unknown tier {tier!r}; expected one of {TIER_NAMES}")
        with self._store.write():
            row = self._store.page(self._conv, page_id)
            if tier is not None and tier_side(tier) > tier_side(row.image_tier):
                raise PinError(f"page {page_id} is stored at {row.image_tier}; it cannot be pinned at the sharper {tier}")
            self._store.pin_page(self._conv, page_id, tier)
            self._sealed_since_schedule = True
            self._apply_schedule()

    def _memory_turns(self, first: int, last: int, first_char: int) -> tuple[list[TurnInput], list[float]]:
        rows = self._store.turns(self._conv, first, last)
        inputs = [TurnInput(r.role, r.text or "", number=r.seq, timestamp=_header_time(r.timestamp),
                            start=first_char if i == 0 else 0) for i, r in enumerate(rows)]
        return inputs, [r.timestamp for r in rows]

    def _pack(self, newest: int) -> None:
        """Age turns past the newest k into the open page, sealing every page that filled up."""
        last_memory_turn = newest - self.config.recent_turns
        if last_memory_turn < 1:
            return
        start = self._store.open_page_start(self._conv)
        if start is None:
            start = TurnPos(1, 0)
            self._store.set_open_page_start(self._conv, start)
        if self._still_fits(start, last_memory_turn):
            return
        inputs, timestamps = self._memory_turns(start[0], last_memory_turn, start[1])
        layouts = layout_pages(inputs, self.config.render)
        for layout in layouts[:-1]:
            self._seal(layout, inputs, timestamps)
        turn_index, char = layouts[-1].start
        next_start = TurnPos(inputs[turn_index].number, char)
        self._open_fill = (next_start, last_memory_turn, _content_bottom(layouts[-1]))
        if len(layouts) == 1:
            return
        self._sealed_since_schedule = True
        self._store.set_open_page_start(self._conv, next_start)
        if self.config.archive == "optical" and next_start[0] > start[0]:
            # Turns wholly on sealed pages now live only in the images (earlier ones already do).
            self._store.drop_turn_texts(self._conv, start[0], next_start[0] - 1)

    def _still_fits(self, start: tuple[int, int], last_memory_turn: int) -> bool:
        """Whether the turns aged since the last full layout surely still fit on the open page.

        Laying out the whole open page on every add would cost a page layout per turn. Pagination
        is greedy, so appending turns never moves the lines already placed: it is enough to lay out
        the new turns alone and check that their height fits under the open page's last line, with
        two lines to spare for rounding. When in doubt the caller lays out the whole page.
        """
        if self._open_fill is None or self._open_fill[0] != start:
            return False
        _, laid_out, bottom = self._open_fill
        if laid_out >= last_memory_turn:
            return laid_out == last_memory_turn
        inputs, _ = self._memory_turns(laid_out + 1, last_memory_turn, 0)
        layouts = layout_pages(inputs, self.config.render)
        if len(layouts) != 1:
            return False
        cfg = self.config.render
        height = _content_bottom(layouts[0]) - cfg.margin_px
        new_bottom = bottom + cfg.turn_gap_px + height
        if new_bottom > cfg.page_px - cfg.margin_px - 2 * round(cfg.font_px * cfg.line_spacing):
            return False
        self._open_fill = (start, last_memory_turn, new_bottom)
        return True

    def _seal(self, layout, inputs: Sequence[TurnInput], timestamps: Sequence[float]) -> None:
        page = draw_page(layout, self.config.render)
        (ti0, c0), (ti1, c1) = layout.start, layout.end
        if c1 == 0:  # the page ends where turn ti1 - 1 ended
            ti1 -= 1
            c1 = len(inputs[ti1].text)
        first, last = TurnPos(inputs[ti0].number, c0), TurnPos(inputs[ti1].number, c1)
        tier = self.config.schedule.steps[0].tier
        image_tier = tier
        png = page.png if tier_side(tier) == page.side else page.at(tier).png
        source = page.source_text
        body = "\n".join(inputs[seg.turn_index].text[seg.start:seg.end] for seg in layout.segments)
        strings = tuple(extract_exact_strings(body)[: self.config.ledger.max_strings_per_page])
        keep_source = self.config.archive == "verbatim" or self.config.retrieval.enabled
        self._store.add_page(
            self._conv, first=first, last=last, last_timestamp=timestamps[ti1], tier=tier,
            layout_json=json.dumps([_line_json(line) for line in page.lines], ensure_ascii=False),
            source_text=source if keep_source else None, text_tokens=_count(source),
            ledger=strings, png=png, image_tier=image_tier)

    def _apply_schedule(self) -> None:
        """Move every in-context page to the tier its age calls for (one transaction per add)."""
        schedule = self.config.schedule
        if schedule.age_unit == "pages" and not self._sealed_since_schedule:
            return  # ages in pages only move when a page is sealed
        self._sealed_since_schedule = False
        pages = self._store.pages(self._conv, in_context_only=True)
        if not pages:
            return
        newest = self._store.last_turn(self._conv)
        now = self._store.last_timestamp(self._conv) or 0.0
        newest_page = self._store.last_page_number(self._conv)
        for row in pages:
            age = page_age(schedule, pages_after=newest_page - row.number, turns_after=newest - row.last_turn,
                           seconds_since=now - row.last_timestamp)
            wanted = row.pinned_tier or tier_for_age(age, schedule)
            if wanted is None:
                if schedule.after_last == "delete":
                    self._delete_page(row)
                else:
                    self._store.set_page_tier(self._conv, row.number, None)
                continue
            image_side = tier_side(row.image_tier)
            if tier_side(wanted) > image_side:
                wanted = row.image_tier  # a blurred page is never sharpened
            if wanted == row.tier:
                continue
            if tier_side(wanted) < image_side:
                png, _ = self._store.page_image(self._conv, row.number)
                smaller = downsample(Image.open(io.BytesIO(png)), tier_side(wanted))
                self._store.set_page_tier(self._conv, row.number, wanted, encode_png(smaller), wanted)
            else:
                self._store.set_page_tier(self._conv, row.number, wanted)

    def _delete_page(self, row: PageRow) -> None:
        """Forget a page and every turn that lived only on pages deleted so far (pages go oldest first)."""
        self._store.delete_page(self._conv, row.number)
        self._index = None
        remaining = self._store.pages(self._conv)
        keep_from = remaining[0].first_turn if remaining else (self._store.open_page_start(self._conv) or (1, 0))[0]
        if keep_from > 1:
            self._store.drop_turn_texts(self._conv, 1, keep_from - 1)

    # -- reading ---------------------------------------------------------------------------------

    def history(self) -> list[Turn]:
        return [Turn(r.seq, r.role, r.text, r.timestamp) for r in self._store.turns(self._conv)]

    def pages(self) -> list[PageInfo]:
        schedule = self.config.schedule
        newest = self._store.last_turn(self._conv)
        now = self._store.last_timestamp(self._conv) or 0.0
        newest_page = self._store.last_page_number(self._conv)
        infos = []
        for row in self._store.pages(self._conv):
            age = page_age(schedule, pages_after=newest_page - row.number, turns_after=newest - row.last_turn,
                           seconds_since=now - row.last_timestamp)
            infos.append(PageInfo(row.number, row.first_turn, row.last_turn, row.tier, age,
                                  tier_slots(row.tier) if row.tier else 0, True, row.pinned_tier, row.text_tokens,
                                  row.image_tier))
        open_page = self._open_page()
        if open_page is not None:
            infos.append(PageInfo(None, open_page.first_turn, open_page.last_turn, open_page.tier, 0.0,
                                  tier_slots(open_page.tier), False, None, image_tier=open_page.tier))
        return infos

    def _open_page(self) -> MemoryPage | None:
        last_memory_turn = self._store.last_turn(self._conv) - self.config.recent_turns
        start = self._store.open_page_start(self._conv)
        if start is None or start[0] > last_memory_turn:
            return None
        tier = self.config.schedule.steps[0].tier
        key = (start, last_memory_turn)
        source_strings: tuple[str, ...] = ()
        if self.config.ledger.enabled:
            turns = self._store.turns(self._conv, start[0], last_memory_turn)
            text = "\n".join((t.text or "")[start[1]:] if i == 0 else (t.text or "") for i, t in enumerate(turns))
            source_strings = tuple(extract_exact_strings(text)[: self.config.ledger.max_strings_per_page])
        return MemoryPage(page_id=0, page_seq=self._store.last_page_number(self._conv) + 1, tier=tier,
                          first_turn=start[0], last_turn=last_memory_turn, ledger=source_strings,
                          load_image=lambda t, key=key: self._open_page_image(key, t))

    def _open_page_image(self, key: tuple, tier: str) -> Image.Image:
        if self._open_image is None or self._open_image[0] != key:
            start, last = key
            inputs, _ = self._memory_turns(start[0], last, start[1])
            page = draw_page(layout_pages(inputs, self.config.render)[0], self.config.render)
            self._open_image = (key, page.image)
        image = self._open_image[1]
        return image if tier_side(tier) == image.width else downsample(image, tier_side(tier))

    def page_image(self, page_id: int) -> Image.Image:
        """A sealed page as stored now: at its current tier (or its last one, once out of context)."""
        png, _ = self._store.page_image(self._conv, page_id)
        image = Image.open(io.BytesIO(png))
        image.load()
        return image

    def read_page(self, page_id: int) -> str:
        """Read a sealed page back from its stored image with the configured OCR engine, whatever
        the archive policy: what the page still says at the tier it has faded to."""
        return self._ocr(self._store.page(self._conv, page_id))

    def _page_image(self, page_id: int, tier: str) -> Image.Image:
        image = self.page_image(page_id)
        return image if tier_side(tier) == image.width else downsample(image, tier_side(tier))

    def context(self, query: str | None = None, budget: int | None = None) -> Context:
        """Recent turns as text, pages relevant to ``query`` re-expanded to text, the other memory
        pages as images, within ``budget`` decoder positions (default: config.budget)."""
        budget = self.config.budget if budget is None else budget
        if not isinstance(budget, int) or budget < 1:
            raise ValueError(f"budget must be a positive int, got {budget!r}")
        newest = self._store.last_turn(self._conv)
        first_recent = max(1, newest - self.config.recent_turns + 1)
        recent = [RecentTurn(r.seq, r.role, r.text or "") for r in self._store.turns(self._conv, first_recent, newest)]

        rows = {r.number: r for r in self._store.pages(self._conv, in_context_only=True)}
        expansions: list[Expansion] = []
        if query and self.config.retrieval.enabled and self.config.reexpand.unit == "excerpt":
            expansions = self._excerpts(query, rows)
        elif query and self.config.retrieval.enabled and self.config.reexpand.max_pages > 0:
            for hit in self._search(query, self.config.reexpand.max_pages):
                if hit.score < self.config.retrieval.min_score and not hit.best_keyword_match:
                    continue
                page_id = hit.page_id
                row = rows.get(page_id) or self._store.page(self._conv, page_id)
                rows[page_id] = row
                text, source, tier = self._reexpand(row)
                expansions.append(Expansion(page_id, text, source, tier))

        ledger = self.config.ledger.enabled
        pages = [MemoryPage(r.number, r.number, r.tier, r.first_turn, r.last_turn, r.ledger if ledger else (),
                            lambda t, number=r.number: self._page_image(number, t), pinned=r.pinned_tier is not None)
                 for r in sorted(rows.values(), key=lambda r: r.number)]
        open_page = self._open_page()
        if open_page is not None:
            pages.append(open_page)
        return assemble(pages=pages, recent=recent, expansions=expansions, budget=budget,
                        ledger=self.config.ledger.enabled, count=_count)

    def _excerpts(self, query: str, rows: dict[int, PageRow]) -> list[Expansion]:
        """The chunks most related to ``query``, each widened to the whole turns it touches (up to
        three chunks long) and cut from its page's text (the archive, or the page read back by
        OCR: from at most ``max_pages`` pages), with the turns it shows; ``rows`` gains the pages
        they are on."""
        out: list[Expansion] = []
        size = self.config.retrieval.chunk_chars
        read: dict[int, tuple[str, Literal["verbatim", "ocr"], str]] = {}
        for hit in self._search_chunks(query, self.config.reexpand.max_excerpts):
            if hit.page_id not in read:
                if self.config.archive == "optical" and len(read) >= self.config.reexpand.max_pages:
                    continue  # each new page is an OCR read: max_pages bounds the latency as in page mode
                row = rows.get(hit.page_id) or self._store.page(self._conv, hit.page_id)
                rows[hit.page_id] = row
                read[hit.page_id] = self._reexpand(row)
            row = rows[hit.page_id]
            text, source, tier = read[hit.page_id]
            spans = chunk_spans(text, size)
            if not spans:
                continue
            span = None
            if hit.text is not None and source == "verbatim":
                at = text.find(hit.text)
                span = (at, at + len(hit.text)) if at >= 0 else None
            if span is None:
                # An OCR read cuts into about the same chunks as the archived text did.
                span = spans[min(hit.chunk or 0, len(spans) - 1)]
            span = whole_turns(text, *span, limit=3 * size)
            first, last = excerpt_turns(text, *span, row.first_turn, row.last_turn)
            out.append(Expansion(row.number, text[span[0]:span[1]], source, tier, excerpt=(first, last)))
        return out

    def _search_chunks(self, query: str, n: int) -> list[ChunkHit]:
        """The n best chunks: dense (MiniLM) and keyword (BM25) hits in turns, as ``_search``
        does for pages. Dense hits need ``min_score``; keyword hits need it too, except the best."""
        index = self._vector_index()
        if n < 1 or index is None or not len(index):
            return []
        from optmem.retrieval import default_embedder

        vector = default_embedder().encode([query])[0]
        min_score = self.config.retrieval.min_score
        dense = [ChunkHit(int(v) // CHUNK_ID_STRIDE, int(v) % CHUNK_ID_STRIDE, None, float(score))
                 for v, score in index.search(vector, n) if score >= min_score]
        keyword = []
        size = self.config.retrieval.chunk_chars
        for rank, (page_id, text) in enumerate(self._store.keyword_chunks(self._conv, _keywords(query), n)):
            chunks = chunk_text(self._store.page_source_text(self._conv, page_id) or "", size)
            number = chunks.index(text) if text in chunks else None
            stored = self._store.chunk_vectors(self._conv, [(page_id, number)]) if number is not None else {}
            score = float(stored[(page_id, number)] @ vector) if stored else 0.0
            if rank == 0 or score >= min_score:
                keyword.append(ChunkHit(page_id, number, text, score))
        def key(hit: ChunkHit) -> tuple:
            return hit.page_id, hit.chunk if hit.chunk is not None else hit.text

        by_key: dict[tuple, ChunkHit] = {}
        for hit in dense + keyword:
            by_key.setdefault(key(hit), hit)
        ranked = _interleave([key(h) for h in dense], [key(h) for h in keyword])
        return [by_key[k] for k in ranked[:n]]

    def recall(self, query: str, k: int = 3) -> list[Recall]:
        """The k sealed pages most related to ``query``, read back to text at their current tier."""
        if not self.config.retrieval.enabled:
            raise RuntimeError("retrieval is disabled in this memory's config (retrieval.enabled = false)")
        results = []
        for hit in self._search(query, k):
            row = self._store.page(self._conv, hit.page_id)
            text, source, _ = self._reexpand(row)
            results.append(Recall(hit.page_id, row.tier, text, hit.score, source))
        return results

    # -- re-expansion and retrieval ---------------------------------------------------------------

    def _reexpand(self, row: PageRow) -> tuple[str, Literal["verbatim", "ocr"], str]:
        if self.config.archive == "verbatim":
            text = self._store.page_source_text(self._conv, row.number)
            if text is not None:
                return text, "verbatim", row.image_tier
        return self._ocr(row), "ocr", row.image_tier

    def _ocr(self, row: PageRow) -> str:
        engine_name = self.config.reexpand.engine
        cached = self._store.cached_text(self._conv, row.number, row.image_tier, engine_name)
        if cached is not None:
            return cached
        image = self.page_image(row.number)
        scale = image.width / self.config.render.page_px
        lines = [_line_from_json(d, scale) for d in self._store.page_layout(self._conv, row.number)]
        text = self._engine().read(image, lines)
        if not self._store.readonly:
            self._store.put_cached_text(self._conv, row.number, row.image_tier, engine_name, text)
        return text

    def _engine(self):
        from optmem.reexpand import get_engine

        cfg = self.config.reexpand
        if cfg.engine == "model":
            if cfg.model_dir is None:
                raise ValueError("reexpand.engine = 'model' needs reexpand.model_dir: a local DeepSeek-OCR weights directory")
            if self._ocr_model is None:
                from optmem.codec import DeepSeekOCR

                self._ocr_model = DeepSeekOCR.from_pretrained(cfg.model_dir)
            return get_engine("model", model=self._ocr_model)
        if cfg.engine == "ppocr-strips":
            return get_engine(cfg.engine, backend=cfg.ocr_backend)
        return get_engine(cfg.engine)

    def _search(self, query: str, k: int) -> list["SearchHit"]:
        """The k best pages for ``query``, each with the cosine of its best chunk.

        Dense retrieval (MiniLM) and keyword retrieval (BM25 over the same chunks, verbatim archive
        only) take turns: embeddings find paraphrases, keywords find the rare names and ids a
        question repeats verbatim, which a small embedder blurs. Rank fusion was tried first and
        buried keyword-only hits under pages both retrievers found mediocre.
        """
        index = self._vector_index()
        if index is None or not len(index):
            return []
        from optmem.retrieval import default_embedder

        vector = default_embedder().encode([query])[0]
        cosine: dict[int, float] = {}
        for vid, score in index.search(vector, k * 8):
            page_id = int(vid) // CHUNK_ID_STRIDE
            if score > cosine.get(page_id, -2.0):
                cosine[page_id] = float(score)
        dense = sorted(cosine, key=lambda pid: (-cosine[pid], pid))
        keyword = self._store.keyword_search(self._conv, _keywords(query), k)
        best = _interleave(dense, keyword)[:k]
        missing = [pid for pid in best if pid not in cosine]
        if missing:
            cosine.update(self._page_cosines(missing, vector))
        top_keyword = keyword[0] if keyword else None
        return [SearchHit(pid, cosine[pid], pid == top_keyword) for pid in best]

    def _page_cosines(self, page_ids: list[int], vector: np.ndarray) -> dict[int, float]:
        ids, vectors = self._store.embeddings(self._conv)
        scores = vectors @ vector if len(ids) else np.zeros(0)
        return {pid: float(scores[ids == pid].max()) if (ids == pid).any() else 0.0 for pid in page_ids}

    def _vector_index(self):
        """This conversation's faiss index: pages sealed since the last call are embedded first;
        the persisted index is used when it is current, rebuilt from the stored vectors if not."""
        from optmem.retrieval import VectorIndex, default_embedder

        pending = [] if self._store.readonly else self._store.unindexed_pages(self._conv)
        if pending:
            size = self.config.retrieval.chunk_chars
            chunks = [(pid, chunk_text(text or "", size)) for pid, text in pending]
            flat = [c for _, cs in chunks for c in cs]
            vectors = default_embedder().encode(flat)
            offset = 0
            with self._store.write():
                for pid, cs in chunks:
                    optical = self.config.archive == "optical"
                    self._store.put_embeddings(self._conv, pid, vectors[offset: offset + len(cs)],
                                               drop_source_text=optical, lexical_chunks=() if optical else cs)
                    offset += len(cs)
            if self._index is not None:
                ids = np.array([pid * CHUNK_ID_STRIDE + i for pid, cs in chunks for i in range(len(cs))], dtype=np.int64)
                self._index.add(ids, vectors)
        expected = self._store.embedding_count(self._conv)
        if self._index is not None and len(self._index) == expected:
            return self._index
        persisted = self._store.vector_index(self._conv)
        if persisted is not None and persisted[0] == expected:
            self._index = VectorIndex.from_bytes(persisted[1])
            return self._index
        page_ids, vectors = self._store.embeddings(self._conv)
        index = VectorIndex()
        if len(page_ids):
            chunk_numbers = np.zeros(len(page_ids), dtype=np.int64)
            for i in range(1, len(page_ids)):
                chunk_numbers[i] = chunk_numbers[i - 1] + 1 if page_ids[i] == page_ids[i - 1] else 0
            index.add(page_ids * CHUNK_ID_STRIDE + chunk_numbers, vectors)
        self._index = index
        return index


def _content_bottom(layout) -> int:
    return max((p.line.box[3] for p in layout.placed), default=layout.margin_px)


def _line_json(line: Line) -> dict:
    return {"box": list(line.box), "text": line.text, "drawn": line.drawn, "span": list(line.span), "kind": line.kind}


def _line_from_json(d: dict, scale: float) -> Line:
    line = Line(box=tuple(d["box"]), text=d["text"], drawn=d["drawn"], span=tuple(d["span"]), kind=d["kind"])
    if scale == 1:
        return line
    from renderers import scale_lines

    return scale_lines([line], scale)[0]
