"""OpticalMemory: the object a chat loop holds.

It composes four parts, each built from the config or passed in: the pager (turns → sealed
pages), the tier planner (``schedule.plan_moves``: page ages → tier moves), the retriever
(dense + keyword search over the pages) and the re-expander (a page back to text). The store
keeps everything; this class reads it, asks the parts what to do, and writes the result.

``add`` stores a turn and ages the conversation: turns past the newest k are packed onto the
open page, full pages are sealed at the schedule's first tier and moved down the tiers as they
age. Rendering, encoding and resampling happen before the store's write lock is taken; the
write then checks that nobody else wrote meanwhile (else it plans again), so a step is still
all or nothing. ``context`` assembles recent turns, re-expanded pages and page images inside a
hard budget.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image

from optmem.allocation import TextItem, allocate, evidence_prior
from optmem.assembler import (Context, Expansion, MemoryPage, RecentTurn, assemble, fixed_cost, format_expanded,
                              page_options)
from optmem.config import MemoryConfig, load_config
from optmem.errors import InvalidArgument, check_count, check_text
from optmem.excerpts import excerpt_turns, whole_turns
from optmem.ledger import extract_exact_strings
from optmem.pager import PAGE_CHARS_GUESS, OpenPageFill, Pager, SealedPage
from optmem.profiles.tokenizers import tokenizer
from optmem.reader import LONG_COUNTS_KEPT, Reader
from optmem.reexpand import ReexpandEngine
from optmem.image_jobs import ImageJob
from optmem.reexpander import Reexpander, open_image
from optmem.retrieval import Embedder, IndexWork, Retriever, chunk_spans
from optmem.schedule import Clock, TierMove, age_of, plan_moves
from optmem.store import PageRow, Store, TurnPos, TurnRow, open_store
from optmem.tokens import count_tokens
from optmem.turn_units import MAX_MISSES_IN_A_ROW, RankedTurns, fill, turn_line
from optmem.turns import InvalidTurn, Turn, check_role, check_timestamp, check_turn_text
from renderers import (PageLayout, Tier, TurnInput, decode_page_image, downsample, draw_layout, encode_page_image,
                       encode_png, encoding_for_side, layout_pages, reader_image, sent_view)
from renderers.canvas import Canvas

__all__ = ["CompactionWork", "InvalidTurn", "OpticalMemory", "PageInfo", "PinError", "Recall", "Turn"]

MAX_SEALS_PER_ADD = 8  # bounds one add()'s work however long a turn is; the rest seals on the next adds
COMPACTED_PER_ADD = 2  # fast-made sent images an add re-encodes compactly (60-90 ms each)
WRITE_ATTEMPTS = 3  # plans made outside the lock before planning under it (another writer kept winning)


class PinError(InvalidArgument):
    """A pin that cannot be honoured (pages are never sharpened once blurred)."""


@dataclass(frozen=True)
class PageInfo:
    number: int  # as the context's text names it ("memory page 3"); the open page has the next number
    first_turn: int
    last_turn: int
    tier: str | None  # None: out of the context (still recallable)
    age: float
    positions: int
    sealed: bool
    pinned: str | None
    text_tokens: int | None = None  # DeepSeek tokens of the text on the page (sealed pages)
    image_tier: str | None = None  # resolution of the stored image; an evicted page keeps its last one
    first_char: int = 0  # where the page starts in its first turn (> 0: that turn began on an earlier page)
    last_char: int | None = None  # where it ends in its last turn (sealed pages)


@dataclass(frozen=True)
class Recall:
    page: int
    tier: str | None
    text: str
    score: float
    source: Literal["verbatim", "ocr"]


RANKED_FOR_ALLOCATION = 1024  # past this rank a turn's prior is the tail's (6e-5): no need to rank it
ALLOCATION_MISSES = 32  # turns in a row that do not fit before an allocation stops looking for text
TURNS_READ_TOGETHER = 64  # turns a text memory reads from the store at once
TURNS_PRICED_TOGETHER = 1024  # turns warm_up() reads from the store at once to count them


@lru_cache(maxsize=4096)
def _count_short(text: str) -> int:
    return count_tokens(text)


def _count(text: str) -> int:
    # Headers, ledgers and short turns repeat from context to context; a long text (the open page,
    # growing turn by turn) is counted line by line, each line's count kept by digest.
    return _count_short(text) if len(text) <= 2048 else tokenizer("deepseek")(text)


@dataclass(frozen=True)
class _State:
    """What a write was planned from; the write goes ahead only if the store still says this."""

    last_turn: int
    last_page: int
    open_start: TurnPos | None
    in_context: tuple[PageRow, ...]


@dataclass(frozen=True)
class _Plan:
    state: _State
    turn: TurnRow | None  # the turn to add
    sealed: list[SealedPage]
    open_start: TurnPos | None  # where the open page starts after the seals
    fill: OpenPageFill | None
    # each move with its resampled image (PNG and pixels) where it needs one
    moves: list[tuple[TierMove, bytes | None, Image.Image | None]]
    sent: list[tuple[tuple, int, int, bytes]]  # (page key, side, crop, bytes) the reader will be sent
    moves_planned: bool  # False: the schedule's moves were left for settle() (tier_moves = "later")


@dataclass(frozen=True)
class CompactionWork:
    """Sent images made fast, to re-encode compactly (``done``: pure, safe on any thread) and give
    back to ``OpticalMemory.store_compacted``."""

    items: tuple[tuple[tuple, bytes, str], ...]  # (cache key, fast bytes, the compact encoding)
    compact: tuple[bytes, ...] | None = None  # once done, each item's compact bytes

    @property
    def empty(self) -> bool:
        return not self.items

    def done(self) -> CompactionWork:
        return replace(self, compact=tuple(encode_page_image(decode_page_image(data), encoding)
                                           for _, data, encoding in self.items))


class _SentImages:
    """The bytes a reader is sent for a page image, made once per (page, stored tier, side, crop)
    and kept for the next contexts (bounded). The store keeps each page lossless, at 8 bits, so the
    next tier down is made from the full greys; what goes out is the tier's view, cropped or
    resized as the reader's profile needs (optmem.reader.SentImage), kept at the grey levels
    measured to read back as well (renderers.TIER_ENCODINGS), in the profile's container.

    ``defer``: the bytes a write makes (``written``) are fast-encoded and marked, and ``compact()``
    later re-encodes the marked ones compactly (MemoryConfig.sent_images = "fast"). Bytes made
    fast on a request (``png(fast=True)``) are marked whatever ``defer`` says."""

    def __init__(self, container: Literal["png", "webp"], max_images: int = 256, *, defer: bool = False,
                 max_bytes: int = 16 << 20):
        # Bounded by bytes too: fast-made images run to 100-400 KB, and optmem serve keeps 64
        # memories open (16 MiB holds a context's 10-20 images several times over).
        self._container = container
        self._max = max_images
        self._max_bytes = max_bytes
        self._bytes = 0
        self._defer = defer
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._awaiting: set[tuple] = set()  # entries of _cache made fast, to be compacted

    def png(self, key: tuple, side: int, crop: int, load: Callable[[], Image.Image], *, fast: bool = False) -> bytes:
        data = self.cached(key, side, crop)
        if data is None:
            data = self.made(key, side, crop, self.make(load(), side, crop, fast=fast), fast=fast)
        return data

    def cached(self, key: tuple, side: int, crop: int) -> bytes | None:
        full = (*key, side, crop)
        if full in self._cache:
            self._cache.move_to_end(full)
            return self._cache[full]
        return None

    def made(self, key: tuple, side: int, crop: int, data: bytes, *, fast: bool) -> bytes:
        """Keep bytes made for a request (``fast``: compacted like the written ones, by compact())."""
        self.put(key, side, crop, data)
        if fast:
            self._awaiting.add((*key, side, crop))
        return data

    def make(self, image: Image.Image, side: int, crop: int, *, fast: bool = False) -> bytes:
        return reader_image(image, side, crop=crop, container=self._container, fast=fast)

    def written(self, image: Image.Image, side: int, crop: int) -> bytes:
        """The bytes for a page a write stores a new image of (put them with ``written=True``)."""
        return self.make(image, side, crop, fast=self._defer)

    def put(self, key: tuple, side: int, crop: int, data: bytes, *, written: bool = False) -> None:
        full = (*key, side, crop)
        self._bytes += len(data) - len(self._cache.get(full, b""))
        self._cache[full] = data
        self._cache.move_to_end(full)
        if written and self._defer:
            self._awaiting.add(full)
        else:
            self._awaiting.discard(full)
        while len(self._cache) > 1 and (len(self._cache) > self._max or self._bytes > self._max_bytes):
            evicted, old = self._cache.popitem(last=False)
            self._bytes -= len(old)
            self._awaiting.discard(evicted)

    def forget(self, prefix: tuple) -> None:
        """Drop the entries whose key starts with ``prefix``: a page stored anew at a blurrier tier
        is never sent at the sharper one again, so its bytes would only hold a place (and be
        compacted for nothing)."""
        for full in [k for k in self._cache if k[:len(prefix)] == prefix]:
            self._bytes -= len(self._cache.pop(full))
            self._awaiting.discard(full)

    def compact(self, limit: int | None = None) -> int:
        """Re-encode the fast-made entries compactly (at most ``limit``, newest first); how many.
        Lossless both ways: the reader decodes the same pixels from either."""
        return self.store(self.work(limit).done())

    def work(self, limit: int | None = None) -> CompactionWork:
        """The fast-made entries, newest first, to re-encode (``CompactionWork.done``: no cache)."""
        keys = [full for full in reversed(self._cache) if full in self._awaiting][:limit]
        return CompactionWork(tuple((full, self._cache[full], self._encoding(*full[-2:])) for full in keys))

    def _encoding(self, side: int, crop: int) -> str:
        return encoding_for_side(side + 2 * crop, self._container)  # as reader_image chose it

    def store(self, work: CompactionWork) -> int:
        """Put re-encoded ``work`` back where its entry still holds the bytes it was made from."""
        stored = 0
        for (full, fast, _), compact in zip(work.items, work.compact or ()):
            if full in self._awaiting and self._cache.get(full) is fast:
                self._bytes += len(compact) - len(fast)
                self._cache[full] = compact
                self._awaiting.discard(full)
                stored += 1
        return stored

    def clear(self) -> None:
        self._cache.clear()
        self._awaiting.clear()
        self._bytes = 0


# What add_many() keeps of the pixels it stores: every page a later move of the default schedule
# resamples (2 Large, 4 Base and 10 Small pages, 11.6M px), so that no move decodes its PNG again.
BULK_INGEST_PIXELS = 12 << 20
# How many turns that left the recent window add_many() embeds together (a verbatim archive keeps
# their text, so they need not be embedded before their page seals). Length-sorted batches of a
# few hundred pad little: on 2 cores MiniLM took 11.6 ms a turn so, 16-17 in a page's 6.
BULK_EMBED_TURNS = 256


class _RecentPixels:
    """The pixels of the pages stored last (by conversation, page and stored tier), so that a view
    of one the budget shows below its tier, or gives DeepSeek-OCR's decoder, is made without
    reading and decoding its PNG again (4-6 ms of the ~15 a view below the tier costs). Pages
    moved by a write are those the next contexts squeeze first. Bounded by pixels: the pages one
    seal stores at every tier fit (3.4 MB), and optmem serve keeps 64 memories open."""

    def __init__(self, max_pixels: int = 4 << 20):
        self._max = max_pixels
        self._images: OrderedDict[tuple, Image.Image] = OrderedDict()

    def put(self, key: tuple, image: Image.Image) -> None:
        self._images[key] = image
        self._images.move_to_end(key)
        self._trim()

    def _trim(self) -> None:
        while len(self._images) > 1 and sum(i.width * i.height for i in self._images.values()) > self._max:
            self._images.popitem(last=False)

    @contextmanager
    def widened(self, max_pixels: int) -> Iterator[None]:
        """Keep up to ``max_pixels`` meanwhile (a bulk ingest: the pages later moves resample)."""
        kept, self._max = self._max, max(self._max, max_pixels)
        try:
            yield
        finally:
            self._max = kept
            self._trim()

    def peek(self, key: tuple) -> Image.Image | None:
        return self._images.get(key)

    def get(self, key: tuple, load: Callable[[], Image.Image]) -> Image.Image:
        image = self._images.get(key)
        if image is None:
            image = load()
            self.put(key, image)
        return image

    def clear(self) -> None:
        self._images.clear()


def pixels_key(conversation: int, number: int, last_turn: int, tier: str) -> tuple:
    """A stored page's key in _RecentPixels. Its last turn is in it because a page number comes
    back once every page was evicted, maybe by another instance this one never hears from, and
    the new page ends on a later turn: its moves must not resample the old page's pixels."""
    return conversation, number, last_turn, Tier(tier).value


class _StoredImage:
    """A sealed page's image at a side: the stored bytes when it is stored at that side."""

    def __init__(self, store: Store, conversation: int, row: PageRow, sent: _SentImages, pixels: _RecentPixels):
        self._store, self._conv, self._row, self._sent, self._pixels = store, conversation, row, sent, pixels
        self._key = (conversation, row.number, row.image_tier)  # in _SentImages
        self._pixels_key = pixels_key(conversation, row.number, row.last_turn, row.image_tier)

    def _stored(self) -> Image.Image:
        return self._pixels.get(self._pixels_key, lambda: open_image(self._store.page_image(self._conv, self._row.number)[0]))

    def png(self, side: int, crop: int = 0) -> bytes:
        got = self.png_job(side, crop)
        return got if isinstance(got, bytes) else got.finish(got.make())

    def png_job(self, side: int, crop: int = 0) -> bytes | ImageJob:
        """The bytes the reader is sent, or the job that makes them, on another thread if the
        caller likes (optmem.image_jobs): the store is read here, the decode, resample and encode
        are the job's. Bytes no write made (a view below the page's tier that the budget asked
        for, DeepSeek-OCR's decoder, which is given pixels, or bytes evicted) are made fast."""
        data = self._sent.cached(self._key, side, crop)
        if data is not None:
            return data
        image = self._pixels.peek(self._pixels_key)
        stored = None if image is not None else self._store.page_image(self._conv, self._row.number)[0]
        sent = self._sent

        def make() -> tuple[Image.Image, bytes]:
            pixels = image if image is not None else open_image(stored)
            return pixels, sent.make(pixels, side, crop, fast=True)

        def finish(made: tuple[Image.Image, bytes]) -> bytes:
            self._pixels.put(self._pixels_key, made[0])
            return sent.made(self._key, side, crop, made[1], fast=True)

        return ImageJob(make, finish)

    def image(self, side: int, crop: int = 0) -> Image.Image:
        stored = self._stored()
        view = sent_view(stored, side, crop)
        return view.copy() if view is stored else view  # the kept pixels are never handed out


class _OpenDrawing:
    """The conversation's open page as last drawn: its layout, the canvas that redraws only what
    the turns joining it add (renderers.canvas), and the bytes sent of it, all for one key."""

    def __init__(self, container: Literal["png", "webp"], canvas: Canvas):
        self._container = container
        self._canvas = canvas
        self._key: tuple | None = None
        self._layout: PageLayout | None = None
        self._bytes: dict[tuple[int, int], bytes] = {}

    def at(self, key: tuple, layout: Callable[[], PageLayout]) -> Canvas:
        if key != self._key:
            self._layout = layout()
            self._key, self._bytes = key, {}
        if self._canvas.layout is not self._layout:  # first, or the pager drew a sealing page on it since
            self._canvas.draw(self._layout)
        return self._canvas

    def encoded(self, key: tuple, layout: Callable[[], PageLayout], side: int, crop: int) -> bytes:
        canvas = self.at(key, layout)
        if (side, crop) not in self._bytes:
            # Encoded for time, not bytes: the next turn that joins the page makes it stale.
            self._bytes[side, crop] = reader_image(canvas.view(side + 2 * crop), side, crop=crop,
                                                   container=self._container, fast=True)
        return self._bytes[side, crop]


class _OpenImage:
    """The open page, drawn when first asked for (it is not stored) and kept until its turns
    change: consecutive contexts between two seals show the same open page."""

    def __init__(self, key: tuple, layout: Callable[[], PageLayout], drawing: _OpenDrawing):
        self._key, self._layout, self._drawing = key, layout, drawing

    def image(self, side: int, crop: int = 0) -> Image.Image:
        return sent_view(self._drawing.at(self._key, self._layout).view(side + 2 * crop), side, crop)

    def png(self, side: int, crop: int = 0) -> bytes:
        return self._drawing.encoded(self._key, self._layout, side, crop)

    def draw(self) -> None:
        self._drawing.at(self._key, self._layout)


class OpticalMemory:
    def __init__(self, store: Store, config: MemoryConfig | str | Path | dict | None = None, *,
                 conversation: str = "default", create: bool = True, embedder: Embedder | None = None,
                 ocr: ReexpandEngine | None = None):
        """Memory of ``conversation`` in ``store``. ``embedder`` and ``ocr`` replace the ones the
        config would build (MiniLM, the configured OCR engine)."""
        check_text(conversation, "conversation")
        if not conversation:
            raise InvalidArgument("conversation must be a non-empty string")
        self.config = load_config(config)
        self.conversation = conversation
        self._store = store
        self._conv = store.conversation_id(conversation, create=create)
        self._owns_store = False
        cfg = self.config
        self.reader = Reader(cfg.model, cfg.render)
        self._pager = Pager(cfg.render, first_tier=Tier(cfg.schedule.steps[0].tier),
                            max_ledger_strings=cfg.ledger.max_strings_per_page, count_tokens=_count,
                            view_sides=self.reader.view_sides())
        self._embedder = embedder
        self._retriever: Retriever | None = None
        self._reexpander = Reexpander(store, self._conv, cfg, engine=ocr)
        self._sent = _SentImages(self.reader.profile.container, defer=cfg.sent_images == "fast")
        self._pixels = _RecentPixels()
        self._reader_tokens: dict[int, int | None] = {}  # page number -> its text in the reader's tokens
        self._open_drawn = _OpenDrawing(self.reader.profile.container, self._pager.canvas)
        self._open_text: dict[tuple, tuple] = {}  # its ledger and token counts, by the same key
        self._fill: OpenPageFill | None = None
        self._replan = True  # tier moves must be planned on the next write (set again by pin())
        self._moves_due = True  # a write may have left moves for settle() (tier_moves = "later")

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, conversation: str = "default", config: MemoryConfig | str | Path | dict | None = None,
             *, create: bool = True, readonly: bool = False, embedder: Embedder | None = None,
             ocr: ReexpandEngine | None = None) -> "OpticalMemory":
        """Open (or create) ``conversation`` in the database at ``path`` (``":memory:"`` works)."""
        cfg = load_config(config)
        store = open_store(path, create=create, readonly=readonly)
        try:
            memory = cls(store, cfg, conversation=conversation, create=create and not readonly,
                         embedder=embedder, ocr=ocr)
        except BaseException:
            store.close()
            raise
        memory._owns_store = True
        return memory

    def close(self) -> None:
        try:
            if self._retriever is not None and not self._store.readonly:
                self._retriever.save()  # stores a seal's vectors still on a worker, then the index
        finally:
            if self._owns_store:
                self._store.close()  # even when that embedding failed: its pages stay unembedded, not lost

    def __enter__(self) -> "OpticalMemory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def add(self, role: str, text: str | bytes, timestamp: datetime | float | None = None) -> int:
        """Store a turn; returns its id (1, 2, 3 ... within the conversation)."""
        return self._add(role, text, timestamp, embed_beside=False)

    def add_many(self, turns: Iterable[tuple]) -> list[int]:
        """Store (role, text) or (role, text, timestamp) turns in order, as ``add`` would; their ids.

        For bulk ingest: what a query searches is embedded as it goes: the turns that left the
        recent window ``BULK_EMBED_TURNS`` at a time (an optical archive's, a page at a time, before
        the page drops their text); with ``reexpand.unit`` page or excerpt, the pages as they seal,
        on a worker while the next turns are rendered (torch, Pillow and zlib let go of the GIL).
        Moved pages are resampled from the pixels it kept, not decoded again. When it returns
        everything is stored, byte for byte, as after ``add`` one by one; after a crash what was
        not embedded yet is embedded by the next write or query. ``add`` itself embeds before it
        returns, so a chat loop's next query never waits for an embedding."""
        ids = []
        try:
            with self._pixels.widened(BULK_INGEST_PIXELS):
                ids = self._add_each(turns)
            if self._ranks_turns and self._embeds_on_seal:
                self._index_memory_turns()  # the rest, as add() would have
        finally:
            if self._retriever is not None:
                self._retriever.finish_pending()
        return ids

    def _add_each(self, turns: Iterable[tuple]) -> list[int]:
        ids = []
        # A verbatim archive's turns are embedded BULK_EMBED_TURNS at a time; an optical archive's
        # before their page seals and drops their text, as add() does.
        together = self._ranks_turns and self.config.archive == "verbatim" and self._embeds_on_seal
        for i, turn in enumerate(turns):
            if not isinstance(turn, tuple) or len(turn) not in (2, 3):
                raise InvalidArgument(f"add_many: turns[{i}] is not a (role, text[, timestamp]) tuple")
            ids.append(self._add(*turn, embed_beside=True, index_turns=not together))
            if together and len(ids) % BULK_EMBED_TURNS == 0:
                self._index_memory_turns()
        return ids

    def _add(self, role: str, text: str | bytes, timestamp: datetime | float | None = None, *,
             embed_beside: bool, index_turns: bool = True) -> int:
        role = check_role(role)
        text = check_turn_text(text, self.config.max_turn_chars)
        ts = check_timestamp(timestamp)
        turn_units = self._ranks_turns
        if turn_units and self.config.archive == "optical":
            self._index_memory_turns()  # before a seal drops the text of the turns it holds
        plan = self._write(lambda state: TurnRow(state.last_turn + 1, role, text, ts))
        if self.config.sent_images == "compact":
            # What exports made fast since (views below a page's tier, a decoder reader's bytes), a
            # few per add so that none waits long behind a context that showed many.
            self._sent.compact(limit=COMPACTED_PER_ADD)
        if self._embeds_on_seal:
            # Their own transactions: a crash here loses no turn, and what was not embedded yet is
            # embedded on the next seal or query. A turn that leaves the recent window is embedded
            # by the add() that pushes it out, so a chat loop's query finds nothing to embed;
            # add_many() embeds them a page at a time, or a few hundred at a time (index_turns).
            if turn_units and index_turns and (plan.sealed or not embed_beside):
                self._index_memory_turns()
            if plan.sealed and embed_beside:
                self._retrieval().index_pending_soon()
            elif plan.sealed:
                self._retrieval().index_pending()
        return plan.turn.seq

    def flush(self) -> None:
        """Seal every full page now (``add`` seals at most a few per call, so a very long turn
        is paged over the next adds)."""
        while self._write(None, max_seals=4 * MAX_SEALS_PER_ADD).sealed:
            pass
        if self._embeds_on_seal:
            self._retrieval().index_pending()

    def index(self) -> None:
        """Embed what a query would search and is not embedded yet: the sealed pages and, for a
        reader given turns as text, the turns that left the recent window. A query does this
        first unless ``retrieval.embed_on_query`` is false; then call this off the request path."""
        work = self.index_work()
        if work is not None and not work.empty:
            self._retrieval().store_work(work.embedded(self._retrieval().embedder))

    def index_work(self) -> IndexWork | None:
        """What ``index()`` would embed, read from the store (None with retrieval disabled). A
        server embeds it on a thread of its own (``IndexWork.embedded(embedder)``: no store) and
        hands it back to ``store_index``, so that the memory's thread is free meanwhile."""
        if not self.config.retrieval.enabled:
            return None
        turns = self._unindexed_memory_turns() if self._ranks_turns else []
        return self._retrieval().pending_work(turns)

    @property
    def _embeds_on_seal(self) -> bool:
        return self.config.retrieval.enabled and self.config.retrieval.embed_on_seal

    @property
    def _ranks_turns(self) -> bool:
        """Whether a query ranks this memory's turns (a reader without eyes, or reexpand.unit =
        "turns"): their units are then made as they leave the recent window, at seal time with
        ``embed_on_seal``, and before an optical archive drops their text."""
        return self.config.retrieval.enabled and (not self.reader.profile.takes_images
                                                  or self.config.reexpand.unit == "turns")

    def store_index(self, work: IndexWork) -> None:
        """Store embedded ``work`` (from ``index_work``): what of it is still not indexed."""
        self._retrieval().store_work(work)

    def compact_images(self) -> int:
        """Re-encode in the profile's compact encoding the sent images made fast: by writes with
        ``sent_images = "fast"``, and by exports that showed a page below its tier (with
        ``"compact"`` the next ``add`` does this). The same pixels in fewer bytes for the exports
        after it. Returns how many; 0 when none wait."""
        return self._sent.compact()

    def compaction_work(self) -> CompactionWork:
        """What ``compact_images()`` would re-encode, for a caller that does it on a thread of its
        own (``CompactionWork.done()``) and gives it back to ``store_compacted``."""
        return self._sent.work()

    def store_compacted(self, work: CompactionWork) -> int:
        """Use the compact bytes of done ``work`` where the fast ones are still kept; how many."""
        return self._sent.store(work)

    def settle(self) -> int:
        """Apply the tier moves the forgetting schedule asks for now: with ``tier_moves = "later"``
        writes store turns and seal pages but leave the moves (resampling older pages down) to this
        call, which optmem serve makes after the response, so pages fade one request late. Returns
        how many moves it wrote."""
        if not self._moves_due:
            return 0  # no write since the last settle left a move: no lock taken for nothing
        self._replan = True
        moved = len(self._write(None, moves=True).moves)
        self._moves_due = False
        return moved

    def warm_up(self) -> None:
        """Load now what the first context would otherwise wait for: MiniLM (about 3 s in a fresh
        process), this conversation's vector index, the tokenizers that count text (DeepSeek's
        for pages, the reader's) and the renderer's font tables (a throwaway page is laid out and
        drawn). It stores nothing but what the first query would store too: the vectors of pages
        not embedded yet, when ``retrieval.embed_on_query``. Optional; a chat loop calls it once
        after open so that its first reply does not wait on the loads."""
        if self.config.retrieval.enabled:
            self._retrieval().warm_up()
        _count("warm up")
        self.reader.count("warm up")
        if self._ranks_turns:
            self._price_memory_turns()
        throwaway = [TurnInput("user", "warm up: 0123456789 the quick brown fox 记忆"),
                     TurnInput("assistant", "warm up")]
        draw_layout(layout_pages(throwaway, self.config.render)[0])

    def draw_open_page(self) -> bool:
        """Draw the open page now, as a context that shows it would. The page that seals next is
        the open page plus the lines that fill it, so its write then stamps only those lines, not
        every line of a page nobody has drawn yet (a history that fits in context as text shows no
        page image). optmem serve does it in the upkeep after each request. Pixels and bytes are
        the same either way. False when there is no open page."""
        page = self._open_page()
        if page is None:
            return False
        page.image_source.draw()
        return True

    def pop_turn(self) -> Turn:
        """Remove the newest turn and return it (undo of the last ``add``); its number is given to
        the next turn added. Only a turn no sealed page shows can go: with ``recent_turns`` >= 1
        that is the newest turn until pops reach back past the recent window, after which the
        store raises TurnOnSealedPage and changes nothing (sealed pages are never rewritten).
        NoTurnToPop when the conversation is empty. Until the next ``add``, the recent window
        reaches one turn further back, so that turn may show both as text and on its page."""
        row = self._store.pop_turn(self._conv)
        self._forget_drawings()  # the open page and its layout may have shown the popped turn
        return Turn(row.seq, row.role, row.text, row.timestamp)

    def clear(self) -> None:
        """Forget this conversation whole (turns, pages, embeddings, keyword chunks, cached reads,
        in one write step; other conversations are untouched) and carry on with it empty: the
        next turn is turn 1, the next sealed page page 1."""
        with self._store.write():
            self._store.delete_conversation(self._conv)
            conv = self._store.conversation_id(self.conversation, create=True)
        self._conv = conv
        # Every part bound to the old id goes; the retriever is dropped unsaved, its index held
        # the forgotten pages.
        self._retriever = None
        self._reexpander = self._reexpander.for_conversation(conv)
        self._forget_drawings()

    def _forget_drawings(self) -> None:
        self._sent.clear()
        self._pixels.clear()
        self._open_drawn = _OpenDrawing(self.reader.profile.container, self._pager.canvas)
        self._open_text.clear()
        self._fill = None
        self._replan = self._moves_due = True

    def pin(self, page: int, tier: str | None) -> None:
        """Hold sealed page ``page`` at ``tier`` whatever its age (None unpins). Pages are never
        sharpened: pin a page before it ages past the tier you want."""
        page = check_count(page, "page")
        if tier is not None:
            try:
                tier = Tier.parse(tier)
            except ValueError as e:
                raise PinError(str(e)) from None
        with self._store.write():
            row = self._store.page(self._conv, page)
            if tier is not None and tier.side > Tier(row.image_tier).side:
                raise PinError(f"page {page} is stored at {row.image_tier}; it cannot be pinned at the sharper {tier}")
            self._store.pin_page(self._conv, page, tier)
        self._replan = True
        self._write(None, moves=True)

    def _write(self, new_turn, *, max_seals: int = MAX_SEALS_PER_ADD, moves: bool | None = None) -> _Plan:
        """Plan outside the write lock, then write the plan if the store is as it was planned
        from; after WRITE_ATTEMPTS lost races, plan under the lock. ``moves``: plan the schedule's
        tier moves too (default: unless ``tier_moves = "later"``)."""
        if moves is None:
            moves = self.config.tier_moves == "on_write"
        for _ in range(WRITE_ATTEMPTS):
            plan = self._plan(self._state(), new_turn, max_seals, moves)
            with self._store.write():
                if self._state() == plan.state:
                    self._apply(plan)
                    return plan
            self._fill = None
        with self._store.write():
            plan = self._plan(self._state(), new_turn, max_seals, moves)
            self._apply(plan)
            return plan

    def _state(self) -> _State:
        return _State(self._store.last_turn(self._conv), self._store.last_page_number(self._conv),
                      self._store.open_page_start(self._conv), tuple(self._store.pages(self._conv, in_context_only=True)))

    def _plan(self, state: _State, new_turn, max_seals: int, moves: bool) -> _Plan:
        turn = new_turn(state) if new_turn is not None else None
        newest = turn.seq if turn is not None else state.last_turn
        sealed, open_start, fill = self._plan_pages(state, turn, newest, max_seals)
        planned = self._plan_moves(state, turn, sealed) if moves else []
        return _Plan(state, turn, sealed, open_start, fill, planned, self._plan_sent(state, sealed, planned), moves)

    def _plan_sent(self, state: _State, sealed: list[SealedPage], moves) -> list[tuple[tuple, int, int, bytes]]:
        """The images the reader will be sent for the pages this write stores a new image of, made
        now (outside the lock, like the rest of the plan) so that the next export only reuses bytes.
        A caller whose write holds a lock others wait on (optmem serve: SQLite has one for every
        conversation) has them made fast and compacted after it (``sent_images = "fast"``).
        DeepSeek-OCR's own decoder is given pixels (codec_segments), not bytes: none are made for it
        ahead, so ingest does not pay an encode per page per tier (a to_messages() makes them then,
        fast, and the next adds compact them)."""
        if self.reader.decoder:
            return []
        new_images = {state.last_page + i + 1: (page.tier, page.image) for i, page in enumerate(sealed)}
        for move, _, image in moves:
            if move.delete:
                new_images.pop(move.number, None)
            elif image is not None:
                new_images[move.number] = (move.tier, image)
        out = []
        for number, (tier, image) in new_images.items():
            sent = self.reader.sent_image(Tier(tier).value)
            if sent is not None:
                key = (self._conv, number, Tier(tier).value)
                out.append((key, sent.side, sent.crop, self._sent.written(image, sent.side, sent.crop)))
        return out

    def _turns(self, first: int, last: int, pending: TurnRow | None) -> list[TurnRow]:
        rows = self._store.turns(self._conv, first, last)
        if pending is not None and first <= pending.seq <= last:
            rows.append(pending)
        return rows

    def _plan_pages(self, state: _State, turn: TurnRow | None, newest: int, max_seals: int):
        last_memory_turn = newest - self.config.recent_turns
        start = state.open_start or TurnPos(1, 0)
        if last_memory_turn < start.turn:
            return [], state.open_start, self._fill
        if self._fill is not None and self._fill.start == start and self._fill.laid_out_through <= last_memory_turn:
            new_turns = self._turns(self._fill.laid_out_through + 1, last_memory_turn, turn)
            fill = self._pager.still_fits(self._fill, start, new_turns)
            if fill is not None:
                return [], start, fill
        packed = self._pager.pack(self._turns(start.turn, last_memory_turn, turn), start, max_seals=max_seals)
        return packed.sealed, packed.next_start, packed.fill

    def _plan_moves(self, state: _State, turn: TurnRow | None,
                    sealed: list[SealedPage]) -> list[tuple[TierMove, bytes | None, Image.Image | None]]:
        schedule = self.config.schedule
        if schedule.age_unit == "pages" and not sealed and not self._replan:
            return []  # ages in pages only move when a page is sealed
        rows: list = list(state.in_context)
        new_rows = [_NewPage(state.last_page + i + 1, s) for i, s in enumerate(sealed)]
        stamps = [t for t in (self._store.last_timestamp(self._conv), turn.timestamp if turn else None) if t is not None]
        clock = Clock(newest_turn=turn.seq if turn else state.last_turn, newest_page=state.last_page + len(sealed),
                      now=max(stamps, default=0.0))
        planned = []
        images = {r.number: r.sealed.image for r in new_rows}
        stored = {r.number: r for r in rows}
        for move in plan_moves(rows + new_rows, schedule, clock):
            png = image = None
            if move.resample:
                source = images.get(move.number) or self._stored_pixels(stored[move.number])
                image = downsample(source, move.tier.side)
                png = encode_png(image)
            planned.append((move, png, image))
        return planned

    def _stored_pixels(self, row: PageRow) -> Image.Image:
        """A sealed page's stored image: from the pixels the last writes kept, else decoded."""
        return self._pixels.peek(pixels_key(self._conv, row.number, row.last_turn, row.image_tier)) or open_image(
            self._store.page_image(self._conv, row.number)[0])

    def _apply(self, plan: _Plan) -> None:
        conv, store = self._conv, self._store
        if plan.turn is not None:
            t = plan.turn
            store.add_turn(conv, t.role, t.text, t.timestamp)
        for page in plan.sealed:
            keep_source = self.config.archive == "verbatim" or self.config.retrieval.enabled
            store.add_page(conv, first=page.first, last=page.last, last_timestamp=page.last_timestamp, tier=page.tier,
                           layout_json=page.layout_json, source_text=page.source_text if keep_source else None,
                           text_tokens=page.text_tokens, ledger=page.ledger, png=page.png, image_tier=page.tier)
        for i, page in enumerate(plan.sealed):
            self._pixels.put(pixels_key(conv, plan.state.last_page + i + 1, page.last.turn, page.tier), page.image)
        if plan.open_start != plan.state.open_start:
            store.set_open_page_start(conv, plan.open_start)
            old = plan.state.open_start or TurnPos(1, 0)
            if self.config.archive == "optical" and plan.sealed and plan.open_start.turn > old.turn:
                # Turns wholly on sealed pages now live only in the images (earlier ones already do).
                store.drop_turn_texts(conv, old.turn, plan.open_start.turn - 1)
        deleted = False
        # Each planned page's last turn, which keys the pixels kept of a moved one (pixels_key)
        last_turns = {r.number: r.last_turn for r in plan.state.in_context}
        last_turns.update((plan.state.last_page + i + 1, page.last.turn) for i, page in enumerate(plan.sealed))
        for move, png, image in plan.moves:
            if move.delete:
                store.delete_page(conv, move.number)
                deleted = True
            elif png is not None:
                store.set_page_tier(conv, move.number, move.tier, png, move.tier)
                self._sent.forget((conv, move.number))
                self._pixels.put(pixels_key(conv, move.number, last_turns[move.number], move.tier), image)
            else:
                store.set_page_tier(conv, move.number, move.tier)
        if deleted:
            # Forget every turn that lived only on deleted pages (pages are deleted oldest first).
            remaining = store.pages(conv)
            keep_from = remaining[0].first_turn if remaining else (store.open_page_start(conv) or TurnPos(1, 0)).turn
            if keep_from > 1:
                store.drop_turn_texts(conv, 1, keep_from - 1)
                store.delete_turn_units(conv, 1, keep_from - 1)
            if self._retriever is not None:
                self._retriever.forget_index()
            self._sent.clear()  # a page number can come back once every page was deleted
            self._pixels.clear()
            self._reader_tokens.clear()
        for key, side, crop, data in plan.sent:
            self._sent.put(key, side, crop, data, written=True)
        self._fill = plan.fill
        if plan.moves_planned:
            self._replan = False
        elif plan.sealed or self.config.schedule.age_unit != "pages":
            self._moves_due = True  # ages moved on: settle() has moves to plan

    # -- reading ---------------------------------------------------------------------------------

    def history(self) -> list[Turn]:
        return [Turn(r.seq, r.role, r.text, r.timestamp) for r in self._store.turns(self._conv)]

    def pages(self) -> list[PageInfo]:
        """Every page, oldest first; the last one is the open page when turns are waiting on it."""
        clock = self._clock()
        infos = [PageInfo(row.number, row.first_turn, row.last_turn, row.tier, age_of(row, self.config.schedule, clock),
                          Tier(row.tier).slots if row.tier else 0, True, row.pinned_tier, row.text_tokens, row.image_tier,
                          row.first_char, row.last_char)
                 for row in self._store.pages(self._conv)]
        open_page = self._open_page()
        if open_page is not None:
            infos.append(PageInfo(open_page.number, open_page.first_turn, open_page.last_turn, open_page.tier, 0.0,
                                  Tier(open_page.tier).slots, False, None, image_tier=open_page.tier,
                                  first_char=(self._store.open_page_start(self._conv) or TurnPos(1, 0)).char))
        return infos

    def _clock(self) -> Clock:
        return Clock(self._store.last_turn(self._conv), self._store.last_page_number(self._conv),
                     self._store.last_timestamp(self._conv) or 0.0)

    def page_image(self, page: int) -> Image.Image:
        """A sealed page as stored now: at its current tier (or its last one, once out of context)."""
        page = check_count(page, "page")
        return open_image(self._store.page_image(self._conv, page)[0])

    def page_text(self, page: int) -> str | None:
        """A sealed page's text as the renderer laid it out, from the archive; None once an
        optical archive dropped it."""
        return self._store.page_source_text(self._conv, check_count(page, "page"))

    def read_page(self, page: int) -> str:
        """Read a sealed page back from its stored image with the configured OCR engine, whatever
        the archive policy: what the page still says at the tier it has faded to."""
        return self._reexpander.ocr(self._store.page(self._conv, check_count(page, "page")))

    def _open_page(self) -> MemoryPage | None:
        last_memory_turn = self._store.last_turn(self._conv) - self.config.recent_turns
        start = self._store.open_page_start(self._conv) or TurnPos(1, 0)
        if start.turn > last_memory_turn:
            return None
        turns = self._store.turns(self._conv, start.turn, last_memory_turn)
        key = ("open", self._conv, start, last_memory_turn)
        if key not in self._open_text:
            self._open_text.clear()  # one open page per conversation: the older one is stale
            self._open_text[key] = self._open_page_text(turns, start.char)
        strings, tokens, reader_tokens = self._open_text[key]
        return MemoryPage(number=self._store.last_page_number(self._conv) + 1, tier=self.config.schedule.steps[0].tier,
                          first_turn=start.turn, last_turn=last_memory_turn, ledger=strings,
                          image_source=_OpenImage(key, lambda: self._pager.layout_open(turns, start), self._open_drawn),
                          text_tokens=tokens, reader_text_tokens=reader_tokens)

    def _open_page_text(self, turns: list[TurnRow], first_char: int) -> tuple[tuple[str, ...], int, int | None]:
        """The open page's ledger strings and its text's tokens (DeepSeek's, and the reader's where
        they differ), so that a nearly empty open page is never sent as an image dearer than its text."""
        text = "\n".join((t.text or "")[first_char:] if i == 0 else (t.text or "") for i, t in enumerate(turns))
        text = text[: 2 * PAGE_CHARS_GUESS]  # what the open page can show (it is one page, even with a backlog)
        strings: tuple[str, ...] = ()
        if self.config.ledger.enabled:
            strings = tuple(extract_exact_strings(text)[: self.config.ledger.max_strings_per_page])
        return strings, _count(text), None if self.reader.counts_from_deepseek else self.reader.count(text)

    def context(self, query: str | None = None, budget: int | None = None, *, system: str | None = None) -> Context:
        """Recent turns as text, pages relevant to ``query`` re-expanded to text, the other memory
        pages as images, within ``budget`` of the reader's input tokens (default: config.budget),
        a ``system`` prompt included (``to_messages()`` then sends it)."""
        budget = self.config.budget if budget is None else check_count(budget, "budget")
        if query is not None:
            check_text(query, "query")
        if system is not None:
            check_text(system, "system")
        newest = self._store.last_turn(self._conv)
        first_recent = max(1, newest - self.config.recent_turns + 1)
        # A turn without text lives only on its sealed page's image (the window reached back over
        # it after a pop_turn).
        recent = [RecentTurn(r.seq, r.role, r.text) for r in self._store.turns(self._conv, first_recent, newest)
                  if r.text is not None]
        fixed = fixed_cost(recent, self.reader, system)

        rows = {r.number: r for r in self._store.pages(self._conv, in_context_only=True)}
        open_page = self._open_page()
        expansions: list[Expansion] = []
        tiers: dict[int, str | None] = {}  # an allocation's tiers, where it chose them
        retrieval = self.config.retrieval
        as_text = not self.reader.profile.takes_images or self._fits_as_text(open_page, budget - fixed)
        if as_text:
            # Every page, those out of context too: memory as text holds them all.
            expansions = self._text_memory(query, rows, open_page, budget - fixed)
        elif query and retrieval.enabled and self.config.reexpand.unit == "excerpt":
            expansions = self._excerpts(query, rows)
        elif query and retrieval.enabled and self.config.reexpand.unit == "turns":
            if self.config.reexpand.text_share is None:
                expansions, tiers = self._allocated_memory(query, rows, open_page, budget - fixed)
            else:
                share = int(self.config.reexpand.text_share * (budget - fixed))
                expansions = self._text_memory(query, rows, open_page, share, newest=False)
        elif query and retrieval.enabled and self.config.reexpand.max_pages > 0:
            for hit in self._retrieval().pages(query, self.config.reexpand.max_pages):
                if hit.score < retrieval.min_score and not hit.best_keyword_match:
                    continue
                row = rows.setdefault(hit.page, self._store.page(self._conv, hit.page))
                read = self._reexpander.text(row)
                expansions.append(Expansion(hit.page, read.text, read.source, read.tier))

        ledger = self.config.ledger.enabled
        # Memory given as text leaves no page to show as an image.
        pages = [self._memory_page(r, None if as_text else tiers.get(r.number, r.tier))
                 for r in sorted(rows.values(), key=lambda r: r.number)]
        if open_page is not None:
            pages.append(replace(open_page, tier=None if as_text else tiers.get(open_page.number, open_page.tier)))
        return assemble(pages=pages, recent=recent, expansions=expansions, budget=budget, ledger=ledger,
                        reader=self.reader, system=system)

    def _memory_page(self, row: PageRow, tier: str | None) -> MemoryPage:
        return MemoryPage(row.number, tier, row.first_turn, row.last_turn, row.ledger if self.config.ledger.enabled else (),
                          _StoredImage(self._store, self._conv, row, self._sent, self._pixels),
                          pinned=row.pinned_tier is not None,
                          text_tokens=row.text_tokens, reader_text_tokens=self._page_reader_tokens(row.number))

    def _page_reader_tokens(self, number: int) -> int | None:
        """A sealed page's text in the reader's own tokens, counted once (pages do not change); None
        where the DeepSeek count stored with the page gives it, or the archive no longer has the text."""
        if self.reader.counts_from_deepseek:
            return None
        if number not in self._reader_tokens:
            text = self._store.page_source_text(self._conv, number)
            self._reader_tokens[number] = None if text is None else self.reader.count(text)
        return self._reader_tokens[number]

    def _text_memory(self, query: str | None, rows: dict[int, PageRow], open_page: MemoryPage | None, budget: int,
                     *, newest: bool = True) -> list[Expansion]:
        """Memory as text, as much of it as ``budget`` holds, in whole turns: those retrieval ranks
        for ``query`` first (turn by turn, dense and keyword), then (``newest``) the newest. A turn
        an optical archive keeps only as an image is read back with its page by OCR (at most
        ``max_pages`` pages). ``rows`` gains the pages the turns are on."""
        last = self._store.last_turn(self._conv) - self.config.recent_turns
        if last < 1 or budget <= 0:
            return []
        turns = _MemoryTurns(self, rows, open_page, last)
        if turns.empty:
            return []
        ranked = self._ranked_memory_turns(query, last)
        stream = turns.stream([*ranked, *(range(last, 0, -1) if newest else ())])
        fill(stream, budget)
        return turns.expansions(stream, budget, rows)

    def _ranked_memory_turns(self, query: str | None, last: int, limit: int | None = None) -> list[int]:
        """The memory turns (through ``last``) ranked for ``query``, best first: the ``limit``
        best (default: all)."""
        if not query or not self.config.retrieval.enabled:
            return []
        if self.config.retrieval.embed_on_query:
            self._index_memory_turns()
        return [h.seq for h in self._retrieval().rank_turns(query, limit or last) if h.seq <= last]

    def _allocated_memory(self, query: str, rows: dict[int, PageRow], open_page: MemoryPage | None,
                          budget: int) -> tuple[list[Expansion], dict[int, str | None]]:
        """Retrieved turns as text and the in-context pages as images, sharing ``budget`` by value
        per token (optmem.allocation): the expansions, and each in-context page's tier (None: out).
        ``rows`` gains the pages the turns are on."""
        last = self._store.last_turn(self._conv) - self.config.recent_turns
        if last < 1 or budget <= 0:
            return [], {}
        turns = _MemoryTurns(self, rows, open_page, last)
        if turns.empty:
            return [], {}
        ranked = self._ranked_memory_turns(query, last, RANKED_FOR_ALLOCATION)
        rank_of = {seq: i for i, seq in enumerate(ranked)}
        tail = evidence_prior(len(ranked))

        def value(seq: int) -> float:
            rank = rank_of.get(seq)
            return tail if rank is None else evidence_prior(rank)

        in_context = [self._memory_page(r, r.tier) for r in sorted(rows.values(), key=lambda r: r.number)
                      if r.tier is not None]
        if open_page is not None and open_page.tier is not None:
            in_context.append(open_page)
        options = page_options(in_context, self.reader, self.config.ledger.enabled)
        # Page steps take what text leaves: the ranking's tail is not searched as long for a turn
        # that fits (each miss may be a store read).
        stream = turns.stream(ranked, value=value, max_misses=ALLOCATION_MISSES)
        allocation = allocate(options, stream, budget, value)
        return turns.expansions(stream, budget - allocation.image_positions, rows), allocation.tiers

    def _index_memory_turns(self) -> None:
        """Give the turns that left the recent window their units (text readers rank by them)."""
        turns = self._unindexed_memory_turns()
        if turns:
            self._retrieval().index_turns(turns)
            for turn in turns:
                # Priced now, off the query path: a context prices every turn a query ranks, and
                # counting them there was a third of a query's time at 10k turns.
                if turn.text is not None:
                    self.reader.cost(turn_line(turn) + "\n")

    def _price_memory_turns(self) -> None:
        """Count the lines of the newest memory turns, as many as half the reader's counts keep: a context prices
        every turn a query ranks, and in a process that did not add them that was 15 ms of a
        query's 55 at 10k turns (the first queries after a restart, until each turn was ranked once)."""
        last = min(self._store.turn_units_through(self._conv), self._store.last_turn(self._conv) - self.config.recent_turns)
        first = max(1, last - LONG_COUNTS_KEPT // 2 + 1)
        for start in range(first, last + 1, TURNS_PRICED_TOGETHER):
            for turn in self._store.turns(self._conv, start, min(last, start + TURNS_PRICED_TOGETHER - 1)):
                if turn.text is not None:
                    self.reader.cost(turn_line(turn) + "\n")

    def _unindexed_memory_turns(self) -> list[TurnRow]:
        """The turns that left the recent window and have no units yet."""
        last = self._store.last_turn(self._conv) - self.config.recent_turns
        through = self._store.turn_units_through(self._conv)
        return self._store.turns(self._conv, through + 1, last) if through < last else []

    def _fits_as_text(self, open_page: MemoryPage | None, budget: int) -> bool:
        """Whether all of memory fits in ``budget`` as text: then it goes in as text, which any
        reader reads better than images. Counted from the pages' rendered text, which holds more
        than the turn lines it becomes; an optical archive's dropped turns would need OCR, so no."""
        if self.config.archive != "verbatim" or not self.config.reexpand.text_when_it_fits:
            return False
        sealed = self._store.sealed_text_tokens(self._conv)
        if not sealed and open_page is None:
            return False
        tokens = sealed + (open_page.text_tokens or 0 if open_page is not None else 0)
        return self.reader.page_text_tokens(tokens) <= budget

    def _excerpts(self, query: str, rows: dict[int, PageRow]) -> list[Expansion]:
        """The chunks most related to ``query``, each widened to the whole turns it touches (up to
        three chunks long) and cut from its page's text (the archive, or the page read back by
        OCR: from at most ``max_pages`` pages), with the turns it shows; ``rows`` gains the pages
        they are on."""
        out: list[Expansion] = []
        size = self.config.retrieval.chunk_chars
        read = {}
        for hit in self._retrieval().chunks(query, self.config.reexpand.max_excerpts):
            if hit.page not in read:
                if self.config.archive == "optical" and len(read) >= self.config.reexpand.max_pages:
                    continue  # each new page is an OCR read: max_pages bounds the latency as in page mode
                row = rows.setdefault(hit.page, self._store.page(self._conv, hit.page))
                read[hit.page] = self._reexpander.text(row)
            row, page_text = rows[hit.page], read[hit.page]
            text = page_text.text
            spans = chunk_spans(text, size)
            if not spans:
                continue
            span = None
            if hit.text is not None and page_text.source == "verbatim":
                at = text.find(hit.text)
                span = (at, at + len(hit.text)) if at >= 0 else None
            if span is None:
                # An OCR read cuts into about the same chunks as the archived text did.
                span = spans[min(hit.chunk or 0, len(spans) - 1)]
            span = whole_turns(text, *span, limit=3 * size)
            first, last = excerpt_turns(text, *span, row.first_turn, row.last_turn)
            out.append(Expansion(row.number, text[span[0]:span[1]], page_text.source, page_text.tier, excerpt=(first, last)))
        return out

    def recall(self, query: str, k: int = 3) -> list[Recall]:
        """The k sealed pages most related to ``query``, read back to text at their current tier."""
        check_text(query, "query")
        k = check_count(k, "k")
        if not self.config.retrieval.enabled:
            raise RuntimeError("retrieval is disabled in this memory's config (retrieval.enabled = false)")
        results = []
        if self._ranks_turns and self.config.retrieval.embed_on_query:
            self._index_memory_turns()
        for hit in self._retrieval().pages(query, k):
            row = self._store.page(self._conv, hit.page)
            read = self._reexpander.text(row)
            results.append(Recall(hit.page, row.tier, read.text, hit.score, read.source))
        return results

    def _retrieval(self) -> Retriever:
        if self._retriever is None:
            if self._embedder is None:
                from optmem.retrieval import default_embedder

                self._embedder = default_embedder()
            self._retriever = Retriever(self._store, self._conv, self.config.retrieval, archive=self.config.archive,
                                        embedder=self._embedder, pages_from_turns=self._ranks_turns)
        return self._retriever


@dataclass(frozen=True)
class _NewPage:
    """A page about to be sealed, as the tier planner sees it."""

    number: int
    sealed: SealedPage
    pinned_tier: None = None

    @property
    def last_turn(self) -> int:
        return self.sealed.last.turn

    @property
    def last_timestamp(self) -> float:
        return self.sealed.last_timestamp

    @property
    def tier(self) -> str:
        return self.sealed.tier

    @property
    def image_tier(self) -> str:
        return self.sealed.tier


class _MemoryTurns:
    """The turns that left the recent window, as a text memory reads them: in the order a stream
    asks for them, a batch per store read, each with its page, and a textless turn's page read back
    whole by OCR (at most ``max_pages`` pages per context)."""

    def __init__(self, memory: OpticalMemory, rows: dict[int, PageRow], open_page: MemoryPage | None, last: int):
        self._memory, self._last, self._open = memory, last, open_page
        self._spans = memory._store.page_spans(memory._conv)  # read whole only where a turn needs its page
        if open_page is not None:
            self._spans.append((open_page.number, open_page.first_turn, open_page.last_turn))
        self._firsts = [first for _, first, _ in self._spans]
        self._pages: dict[int, PageRow] = dict(rows)
        self._rows: dict[int, TurnRow | None] = {}
        self._order: list[int] = []
        self._at: dict[int, int] = {}
        self._read: dict[int, Expansion] = {}  # pages read back, taken or not: each was an OCR read

    @property
    def empty(self) -> bool:
        return not self._spans

    def page_of(self, seq: int) -> PageRow | MemoryPage:
        number = self._spans[max(0, bisect_right(self._firsts, seq) - 1)][0]
        if self._open is not None and number == self._open.number:
            return self._open
        if number not in self._pages:
            m = self._memory
            self._pages[number] = m._store.page(m._conv, number)
        return self._pages[number]

    def fetch(self, seq: int) -> TurnRow | None:
        # A read per batch of the turns asked for next, not per turn: on PostgreSQL each read is a
        # round trip, and a ranking's turns are scattered over the conversation.
        if seq not in self._rows:
            at = self._at.get(seq)
            batch = [s for s in (self._order[at:at + TURNS_READ_TOGETHER] if at is not None else [seq])
                     if s not in self._rows and 1 <= s <= self._last]
            m = self._memory
            found = {t.seq: t for t in m._store.turns_at(m._conv, batch)} if batch else {}
            for s in batch:
                self._rows[s] = found.get(s)
        return self._rows.get(seq)

    def stream(self, order: Iterable[int], *, value: Callable[[int], float] = lambda seq: 0.0,
               max_misses: int = MAX_MISSES_IN_A_ROW) -> RankedTurns:
        def read_back(turn: TurnRow, left: int) -> TextItem | None:
            page, m = self.page_of(turn.seq), self._memory
            if (not isinstance(page, PageRow) or page.number in self._read
                    or len(self._read) >= m.config.reexpand.max_pages):
                return None
            read = m._reexpander.text(page)
            self._read[page.number] = Expansion(page.number, read.text, read.source, read.tier)
            cost = m.reader.cost(format_expanded(page.number, page.first_turn, page.last_turn, read.text))
            shown = tuple(range(page.first_turn, page.last_turn + 1))
            return TextItem(cost, sum(value(t) for t in shown), shown, replaces_page=page.number)

        self._order = list(dict.fromkeys(order))
        self._at = {seq: i for i, seq in enumerate(self._order)}
        return RankedTurns(self._order, self.fetch, self._memory.reader.cost, value=value, textless=read_back,
                           max_misses=max_misses)

    def expansions(self, stream: RankedTurns, budget: int, rows: dict[int, PageRow]) -> list[Expansion]:
        """What ``stream`` took, as expansions within ``budget``: the pages read back, then the runs
        of turns. ``rows`` gains the pages they are on."""
        out = []
        for item in stream.elsewhere:
            page = self.page_of(item.turns[0])
            rows.setdefault(page.number, page)
            out.append(self._read[item.replaces_page])
        for run in stream.runs(budget):
            page = self.page_of(run.first)
            if isinstance(page, PageRow):
                rows.setdefault(page.number, page)
            tier = page.image_tier if isinstance(page, PageRow) else page.tier
            out.append(Expansion(page.number, run.body, "verbatim", tier, excerpt=(run.first, run.last),
                                 heading=run.heading, dated=run.dated))
        return out
