"""The store contract: what optical memory keeps, and the errors a backend raises.

A backend keeps conversations, their turns, sealed pages with their current tier image,
embeddings, keyword chunks, a persisted vector index and the re-expansion cache. It knows
nothing of rendering or models: it keeps bytes, text and numbers.

Rules every backend follows (the shared suite in tests/test_store.py checks them):

- Every query is scoped by conversation id: a page number or turn from another conversation is
  unknown, never returned.
- Pages are identified by their number within the conversation (1, 2, 3 ... in sealing order),
  the number users and the context text see. Whatever key a backend uses inside never leaves it.
- :meth:`Store.write` is one atomic step; nested calls join the outer one. A process killed at
  any instant either committed a whole step or nothing of it.
- Text and images are returned only if they still match the sha256 recorded when they were
  written; otherwise :class:`TamperedData`.
- A store opened read-only serves every read and raises :class:`ReadOnlyStore` on any write.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np


class StoreError(Exception):
    """Base class of the store's errors."""


class NotAnOptmemDatabase(StoreError):
    """The target is not a database (a directory, a file that is not SQLite) or is another
    application's database: optmem neither reads nor writes it."""


class DatabaseNotFound(StoreError, FileNotFoundError):
    """Opening with ``create=False`` (or read-only) a database that does not exist."""


class MissingDirectory(StoreError, FileNotFoundError):
    """The directory that should hold a new database does not exist."""


class StorePermissionError(StoreError, PermissionError):
    """The operating system denies reading the database, or creating it in its directory."""


class ReadOnlyStore(StoreError):
    """A write where none can happen: the store is read-only (asked for, or the file is not
    writable), or a new database would be created on a read-only file system."""


class StoreFull(StoreError):
    """The disk (or the database's size limit) is full; the write step was rolled back whole."""


class SchemaTooNew(StoreError):
    """The database was written by a newer optmem, with a schema this version does not know."""


class SchemaMismatch(StoreError):
    """The database claims an optmem schema version but lacks tables or columns it must have
    (a table dropped outside optmem, a damaged file)."""


class UnknownConversation(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would print the repr
        return str(self.args[0])


class UnknownPage(StoreError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class NoTurnToPop(StoreError, LookupError):
    """``pop_turn`` on a conversation that has no turns."""


class TurnOnSealedPage(StoreError):
    """``pop_turn`` on a turn that a sealed page already shows: its image, embeddings and keyword
    chunks were made from it, and older pages may have been resampled since, so removing the turn
    would leave the memory showing text that is gone. Nothing was changed."""


class TamperedData(StoreError):
    """Stored text or an image no longer matches the hash recorded when it was written."""


def check_poppable(conversation: str, turn: int, sealed_page: int | None, open_start: TurnPos | None) -> None:
    """TurnOnSealedPage unless ``turn`` is on no sealed page: none holds it (``sealed_page``: the
    first that does) and the open page does not start after its beginning (the pages it was on
    may have been deleted since)."""
    if sealed_page is not None:
        raise TurnOnSealedPage(f"conversation {conversation!r}: turn {turn} is on sealed page {sealed_page}; "
                               "only a turn no sealed page shows can be popped")
    if open_start is not None and (open_start.turn, open_start.char) > (turn, 0):
        raise TurnOnSealedPage(f"conversation {conversation!r}: turn {turn} was on a sealed page, deleted since "
                               f"(the open page starts at turn {open_start.turn}); only a turn no sealed page "
                               "shows can be popped")


class TurnPos(NamedTuple):
    """A place in a conversation: turn number (1, 2, 3 ...) and character offset in its text."""

    turn: int
    char: int


@dataclass(frozen=True)
class TurnRow:
    seq: int  # turn number within the conversation
    role: str
    text: str | None  # None once an optical archive dropped it
    timestamp: float


@dataclass(frozen=True)
class PageRow:
    number: int  # 1, 2, 3 ... within the conversation, in sealing order
    first_turn: int
    first_char: int
    last_turn: int
    last_char: int
    last_timestamp: float
    tier: str | None  # None: out of the context, still recallable
    pinned_tier: str | None
    image_tier: str  # resolution of the stored image
    text_tokens: int
    ledger: tuple[str, ...]
    indexed: bool

    @property
    def first(self) -> TurnPos:
        return TurnPos(self.first_turn, self.first_char)

    @property
    def last(self) -> TurnPos:
        return TurnPos(self.last_turn, self.last_char)


class OpenedStore:
    """What every backend shares once open: the context manager, and read-only and the schema
    version as the state it was opened in (``_readonly_because``: why, or None)."""

    _readonly_because: str | None
    _version: int

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def readonly(self) -> bool:
        return self._readonly_because is not None

    @property
    def schema_version(self) -> int:
        return self._version


@runtime_checkable
class Store(Protocol):
    """What optical memory needs from a database. ``conv`` is the id from :meth:`conversation_id`."""

    @property
    def readonly(self) -> bool:
        """Whether writes are refused (asked for at open, or the database is not writable)."""
        ...

    def close(self) -> None: ...

    def write(self) -> AbstractContextManager[None]:
        """One atomic write step. Nested calls join the outer step."""
        ...

    # -- conversations

    def conversation_id(self, name: str, *, create: bool) -> int:
        """The id of conversation ``name``; created if ``create``, else :class:`UnknownConversation`."""
        ...

    def conversation_names(self) -> list[str]:
        """Every conversation, oldest first."""
        ...

    def delete_conversation(self, conv: int) -> None:
        """Forget a conversation whole: its turns, pages, embeddings, keyword chunks, vector index,
        cached reads and its name (a later ``conversation_id(name, create=True)`` starts afresh)."""
        ...

    # -- turns

    def add_turn(self, conv: int, role: str, text: str, timestamp: float) -> int:
        """Append a turn; returns its number (1, 2, 3 ...)."""
        ...

    def last_turn(self, conv: int) -> int:
        """Number of the newest turn, 0 when there is none."""
        ...

    def pop_turn(self, conv: int) -> TurnRow:
        """Remove the newest turn and return it, in one write step: :class:`NoTurnToPop` when there
        is none, :class:`TurnOnSealedPage` (nothing removed) when a sealed page holds any of it.
        The next ``add_turn`` reuses its number."""
        ...

    def last_timestamp(self, conv: int) -> float | None: ...

    def turns(self, conv: int, first: int = 1, last: int | None = None) -> list[TurnRow]:
        """Turns ``first`` to ``last`` (default: the newest) in order, each text hash-checked."""
        ...

    def turns_at(self, conv: int, seqs: Sequence[int]) -> list[TurnRow]:
        """The turns with ids ``seqs`` that exist, in id order, each text hash-checked: one read
        for turns scattered over the conversation (a ranking's best)."""
        ...

    def drop_turn_texts(self, conv: int, first: int, last: int) -> None:
        """Forget the text of turns ``first`` to ``last`` (they live on in page images)."""
        ...

    # -- the open page

    def open_page_start(self, conv: int) -> TurnPos | None: ...

    def set_open_page_start(self, conv: int, start: TurnPos | None) -> None: ...

    # -- sealed pages

    def add_page(self, conv: int, *, first: TurnPos, last: TurnPos, last_timestamp: float, tier: str | None,
                 layout_json: str, source_text: str | None, text_tokens: int, ledger: Sequence[str], png: bytes,
                 image_tier: str) -> int:
        """Store a sealed page; returns its number."""
        ...

    def pages(self, conv: int, *, in_context_only: bool = False) -> list[PageRow]:
        """Sealed pages in number order (only those with a tier when ``in_context_only``)."""
        ...

    def page(self, conv: int, number: int) -> PageRow: ...

    def page_spans(self, conv: int) -> list[tuple[int, int, int]]:
        """(number, first turn, last turn) of every sealed page, oldest first: which page shows a
        turn, without reading the pages."""
        ...

    def sealed_text_tokens(self, conv: int) -> int:
        """The DeepSeek tokens of the text on every sealed page, out of context ones included
        (the sum of their ``text_tokens``; 0 when there is none)."""
        ...

    def last_page_number(self, conv: int) -> int:
        """Number of the newest sealed page, 0 when there is none."""
        ...

    def page_image(self, conv: int, number: int) -> tuple[bytes, str]:
        """(PNG bytes, their tier), hash-checked."""
        ...

    def page_layout(self, conv: int, number: int) -> list: ...

    def page_source_text(self, conv: int, number: int) -> str | None: ...

    def set_page_tier(self, conv: int, number: int, tier: str | None, png: bytes | None = None,
                      image_tier: str | None = None) -> None:
        """Move a page to ``tier``; when ``png`` is given it replaces the image in the same step."""
        ...

    def pin_page(self, conv: int, number: int, tier: str | None) -> None: ...

    def delete_page(self, conv: int, number: int) -> None:
        """Forget a page with its embeddings, keyword chunks and cached reads; the conversation's
        persisted vector index, which held its vectors, goes too."""
        ...

    # -- embeddings, keyword chunks, the vector index

    def unindexed_pages(self, conv: int) -> list[tuple[int, str | None]]:
        """(number, source text) of the pages not embedded yet, in number order."""
        ...

    def put_embeddings(self, conv: int, number: int, vectors: np.ndarray, *, drop_source_text: bool,
                       lexical_chunks: Sequence[str] = ()) -> None:
        """Store a page's chunk vectors (and, when given, its chunk texts for keyword search)."""
        ...

    def keyword_search(self, conv: int, terms: Sequence[str], limit: int) -> list[int]:
        """Page numbers ranked by their best BM25 chunk for any of ``terms``."""
        ...

    def keyword_chunks(self, conv: int, terms: Sequence[str], limit: int) -> list[tuple[int, str]]:
        """(page number, chunk text) of the best BM25 chunks for any of ``terms``, best first.
        Terms are matched as plain words: user text never becomes query syntax."""
        ...

    def chunk_vectors(self, conv: int, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """The stored vectors of the given (page number, chunk) pairs that exist."""
        ...

    def embeddings(self, conv: int, pages: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(page number of each chunk, vectors) of every chunk (of ``pages`` only, when given),
        ordered by page then chunk."""
        ...

    def embedding_count(self, conv: int) -> int: ...

    def vector_index(self, conv: int) -> tuple[int, bytes] | None:
        """(number of vectors it holds, serialised index), or None."""
        ...

    def put_vector_index(self, conv: int, n_vectors: int, blob: bytes) -> None: ...

    def delete_vector_index(self, conv: int) -> None: ...

    # -- turn units: what a text reader's memory is ranked by

    def turn_units_through(self, conv: int) -> int:
        """The newest turn id with stored units (0: none). Turns are indexed in order."""
        ...

    def put_turn_units(self, conv: int, vectors: Sequence[tuple[int, int, np.ndarray]],
                       words: Sequence[tuple[int, str]]) -> None:
        """Store (turn id, part, vector) rows and (turn id, words) rows for keyword search, where
        words are the turn's index words (``retrieval.keywords.index_words``), not its text."""
        ...

    def turn_vectors(self, conv: int) -> tuple[np.ndarray, np.ndarray]:
        """(turn id of each part, vectors), ordered by turn then part."""
        ...

    def keyword_turns(self, conv: int, terms: Sequence[str], limit: int) -> list[int]:
        """Turn ids best matching any of ``terms``, best first; terms are plain words."""
        ...

    def delete_turn_units(self, conv: int, first: int, last: int) -> None:
        """Forget the units of turns ``first``..``last``."""
        ...

    # -- re-expansion cache

    def cached_text(self, conv: int, number: int, tier: str, engine: str) -> str | None: ...

    def put_cached_text(self, conv: int, number: int, tier: str, engine: str, text: str) -> None: ...
