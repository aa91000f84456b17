"""Hybrid retrieval over one conversation's pages: dense (MiniLM chunks in faiss) and keyword
(BM25 over the same chunks, SQLite FTS5 or PostgreSQL text search; an optical archive keeps only
each chunk's distinct words, and CJK runs are indexed as character pairs too).

The two rankings take turns (round-robin, first occurrence wins): embeddings find paraphrases,
keywords find the rare names and ids a question repeats verbatim, which a small embedder blurs.
Rank fusion was tried first and buried keyword-only hits under pages both retrievers found
mediocre. Pages are ranked from the same two chunk rankings the excerpt search uses.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from itertools import zip_longest
from typing import Literal, TypeVar

import numpy as np

from optmem import workers
from optmem.config import RetrievalConfig
from optmem.retrieval.chunks import ChunkKey, chunk_text
from optmem.retrieval.embedder import Embedder
from optmem.retrieval.index import CorruptIndex, VectorIndex
from optmem.retrieval.keywords import chunk_shown, index_words, keywords, searchable_chunk
from optmem.store import Store, TurnRow

_log = logging.getLogger(__name__)


# Keywords find the rare names and ids a question repeats; deeper in their ranking a common word
# matches half the conversation, and interleaving that tail displaced better dense hits. Tuned
# on LoCoMo conv-26 and conv-41 (10, 20 and 50 tried; 20 best at 4096 and 8192, all equal at
# 16384), confirmed on conv-43, 47 and 49 (benchmarks/results/text_reader/).
KEYWORD_TURNS = 20

T = TypeVar("T")


@dataclass(frozen=True)
class ChunkHit:
    page: int
    chunk: int | None  # the chunk's number on its page; None: known by its text only (keyword hit)
    text: str | None  # the chunk's text when the keyword index returned it
    score: float  # cosine similarity to the query


@dataclass(frozen=True)
class TurnHit:
    seq: int  # the turn's id
    score: float  # cosine similarity of the turn's best part to the query (0: found by keyword only)


@dataclass(frozen=True)
class PageHit:
    page: int
    score: float  # cosine similarity of the page's best chunk to the query
    best_keyword_match: bool  # the page BM25 ranks first for the query's words


@dataclass(frozen=True)
class IndexWork:
    """Text a conversation's indexing will embed: its unembedded pages' chunks and its unindexed
    turns' parts (with the turn's words for keyword search), and once ``embedded``, their vectors
    in that order."""

    pages: tuple[tuple[int, tuple[str, ...]], ...]  # (page number, chunks)
    turns: tuple[tuple[int, tuple[str, ...], str], ...]  # (turn id, parts, words)
    vectors: np.ndarray | None = None
    embed_pages: bool = True  # False: the pages' chunks go to the keyword index only (pages ranked by turns)

    @property
    def empty(self) -> bool:
        return not self.pages and not self.turns

    def texts(self) -> list[str]:
        chunks = [c for _, chunks in self.pages for c in chunks] if self.embed_pages else []
        return chunks + [p for _, parts, _ in self.turns for p in parts]

    def embedded(self, embedder: Embedder) -> IndexWork:
        """The same work with its vectors: pure, safe on any thread (Embedder is)."""
        return replace(self, vectors=embedder.encode(self.texts()))


def interleave(*rankings: Sequence[Hashable]) -> list[Hashable]:
    """Round-robin merge of rankings, first occurrence wins: [a1, b1, a2, b2, ...]."""
    merged: dict[Hashable, None] = {}
    for row in zip_longest(*rankings):
        merged.update((key, None) for key in row if key is not None)
    return list(merged)


class Retriever:
    """Embeds sealed pages (chunk by chunk) and answers queries over one conversation.

    With ``pages_from_turns`` (a memory that ranks its turns) pages are not embedded: their chunks
    go to the keyword index only, and a page's dense score is its best turn's, from the turn
    vectors that are embedded anyway. Embedding the same text twice halved the ingest rate."""

    def __init__(self, store: Store, conversation: int, config: RetrievalConfig, *,
                 archive: Literal["verbatim", "optical"], embedder: Embedder, pages_from_turns: bool = False):
        self._store = store
        self.pages_from_turns = pages_from_turns
        self._conv = conversation
        self.config = config
        self._archive = archive
        self._embedder = embedder
        self._index: VectorIndex | None = None  # built on first use
        self._turns: tuple[int, np.ndarray, np.ndarray] | None = None  # (indexed through, seqs, vectors)
        # index_pending_soon's work being embedded, and the process that asked (a fork's child has
        # no worker finishing it)
        self._soon: tuple[int, Future[IndexWork]] | None = None

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    # -- indexing ------------------------------------------------------------------------------

    def index_pending(self) -> None:
        """Embed the pages sealed since the last call and give their chunks to the keyword index
        (the text with its CJK pairs; an optical archive: the distinct words, and the page's source
        text is dropped)."""
        self.store_work(self.pending_work().embedded(self._embedder))

    def index_pending_soon(self) -> None:
        """``index_pending`` on a worker: the pages sealed since are embedded beside the caller's
        next writes (torch lets go of the GIL, so on two cores a bulk ingest's embedding runs
        beside its rendering), and their vectors are stored by the next call that reads or embeds
        pages. Until then the pages are unembedded in the store, so a crash loses nothing: what
        was not stored is embedded again."""
        try:
            self.finish_pending()
        except Exception:
            # The caller's write is stored: raising would have it written again. The pages stay
            # unembedded and go into the work below (a query raises if embedding still fails).
            _log.warning("embedding sealed pages on a worker failed; they are embedded again", exc_info=True)
        work = self.pending_work()
        if not work.empty:
            self._soon = (os.getpid(), workers.submit(lambda: work.embedded(self._embedder)))

    def finish_pending(self) -> None:
        """Store the vectors ``index_pending_soon`` is making, waiting for them."""
        soon, self._soon = self._soon, None
        if soon is not None and soon[0] == os.getpid():  # in a fork's child its pages are embedded again
            self.store_work(soon[1].result())

    def index_turns(self, turns: Sequence[TurnRow]) -> None:
        """Embed the given turns not indexed yet (in parts of about ``chunk_chars``) and keep their
        words for keyword search. Turns are indexed in order; one whose text an optical archive
        already dropped is left to its page."""
        self.store_work(self.pending_work(turns, pages=False).embedded(self._embedder))

    def pending_work(self, turns: Sequence[TurnRow] = (), *, pages: bool = True) -> IndexWork:
        """What indexing would embed now: the pages not embedded yet (``pages``) and the parts of
        ``turns`` not indexed yet. Read from the store; embedding it needs no store
        (``IndexWork.embedded``), so a server does it off the thread that owns the connection."""
        if self._store.readonly:
            return IndexWork((), ())  # a read-only memory searches what was indexed when it was last written
        if pages:
            self.finish_pending()  # else the pages being embedded would be read as unembedded
        size = self.config.chunk_chars
        page_chunks = tuple((number, tuple(chunk_text(text or "", size)))
                            for number, text in (self._store.unindexed_pages(self._conv) if pages else ()))
        through = self._store.turn_units_through(self._conv) if turns else 0
        todo = [t for t in turns if t.seq > through and t.text is not None]
        turn_parts = tuple((t.seq, tuple(chunk_text(t.text, size)), index_words(t.text)) for t in todo)
        return IndexWork(page_chunks, turn_parts, embed_pages=not self.pages_from_turns)

    def store_work(self, work: IndexWork) -> None:
        """Store embedded ``work``: of it, the pages still not embedded and the turns still not
        indexed (another writer may have done some meanwhile, or deleted them)."""
        if work.empty:
            return
        if work.vectors is None:
            raise ValueError("store_work takes embedded work (IndexWork.embedded)")
        if work.pages and work.embed_pages and self._index is None:
            # Made here, by the seal that embeds pages (before its vectors are stored, so that a
            # persisted index of the stored ones still fits), not by the first query: importing
            # faiss and loading the stored vectors took ~60 ms of that query's 90-100.
            self._index = self._current_index()
        optical = self._archive == "optical"
        added: list[tuple[int, np.ndarray]] = []
        with self._store.write():
            pending = {number for number, _ in self._store.unindexed_pages(self._conv)} if work.pages else set()
            offset = 0
            for number, chunks in work.pages:
                vectors = work.vectors[offset: offset + len(chunks) if work.embed_pages else offset]
                offset += len(vectors)
                if number not in pending:
                    continue
                # An optical archive's keyword index keeps each chunk's distinct words, not its prose.
                lexical = [index_words(c) for c in chunks] if optical else [searchable_chunk(c) for c in chunks]
                self._store.put_embeddings(self._conv, number, vectors, drop_source_text=optical, lexical_chunks=lexical)
                added += [(ChunkKey(number, i).vector_id, v) for i, v in enumerate(vectors)]
            if work.turns:
                through = self._store.turn_units_through(self._conv)
                units, words = [], []
                for seq, parts, turn_words in work.turns:
                    vectors = work.vectors[offset: offset + len(parts)]
                    offset += len(parts)
                    if seq > through:
                        units += [(seq, i, v) for i, v in enumerate(vectors)]
                        words.append((seq, turn_words))
                if units or words:
                    self._store.put_turn_units(self._conv, units, words)
                    self._grow_turn_vectors(through, units)
        if self._index is not None and added:
            self._index.add(np.array([k for k, _ in added], dtype=np.int64), np.stack([v for _, v in added]))

    def rank_turns(self, query: str, limit: int) -> list[TurnHit]:
        """Indexed turns for ``query``, best first: the dense ranking (each turn by its best part)
        and the keyword ranking's top ``KEYWORD_TURNS``, interleaved."""
        seqs, vectors = self._turn_vectors()
        if not len(seqs):
            return []
        vector, keyword = self._embedded_beside(
            query, lambda: self._store.keyword_turns(self._conv, keywords(query), min(limit, KEYWORD_TURNS)))
        scores = vectors @ vector
        # Each turn by its best part (the parts are stored in turn order), then the best turns,
        # the newer first on a tie; in numpy, because at 10k turns a loop in Python took ~40 ms.
        starts = np.flatnonzero(np.r_[True, seqs[1:] != seqs[:-1]])
        turn_seqs, best = seqs[starts], np.maximum.reduceat(scores, starts)
        top = np.lexsort((-turn_seqs, -best))[:limit]
        dense = turn_seqs[top].tolist()
        out = interleave(dense, keyword)[:limit]
        at = np.searchsorted(turn_seqs, out)
        return [TurnHit(seq, float(best[i]) if i < len(turn_seqs) and turn_seqs[i] == seq else 0.0)
                for seq, i in zip(out, at.tolist())]

    def _grow_turn_vectors(self, through: int, units: list[tuple[int, int, np.ndarray]]) -> None:
        """Add the units just stored to the in-process turn vectors, if those held every unit up
        to ``through`` (else they are reloaded when next needed): reloading 10k turns' vectors
        from the store took the first query after an ingest ~100 ms."""
        if self._turns is None and through == 0:
            self._turns = (0, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        if self._turns is None or self._turns[0] != through or not units:
            self._turns = None
            return
        _, seqs, vectors = self._turns
        new_seqs = np.array([seq for seq, _, _ in units], dtype=np.int64)
        new_vectors = np.stack([np.asarray(v, dtype=np.float32) for _, _, v in units])
        if len(seqs):
            new_seqs, new_vectors = np.concatenate([seqs, new_seqs]), np.concatenate([vectors, new_vectors])
        self._turns = (int(new_seqs[-1]), new_seqs, new_vectors)

    def _turn_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The conversation's turn vectors, reloaded only when another write changed them."""
        through = self._store.turn_units_through(self._conv)
        if self._turns is None or self._turns[0] != through:
            seqs, vectors = self._store.turn_vectors(self._conv)
            self._turns = (through, seqs, vectors)
        return self._turns[1], self._turns[2]

    def warm_up(self) -> None:
        """Load the embedder's model and this conversation's vector index now, not in the first query."""
        self._embedder.encode(["warm up"])
        if self.pages_from_turns:
            self._turn_vectors()
        else:
            self._vector_index()

    def forget_index(self) -> None:
        """Drop the in-process indexes (pages or turns were deleted); they are rebuilt on the next query."""
        self._index = None
        self._turns = None

    def save(self) -> None:
        """Persist the index so the next process need not rebuild it from the stored vectors."""
        self.finish_pending()
        if self._index is not None and len(self._index):
            self._store.put_vector_index(self._conv, len(self._index), self._index.to_bytes())

    def _vector_index(self) -> VectorIndex:
        """This conversation's faiss index, current with the stored vectors: the one in memory,
        else the persisted one if it is current and readable, else rebuilt from the vectors."""
        if self.config.embed_on_query:
            self.index_pending()
        else:
            self.finish_pending()
        self._index = self._current_index()
        return self._index

    def _current_index(self) -> VectorIndex:
        expected = self._store.embedding_count(self._conv)
        if self._index is not None and len(self._index) == expected:
            return self._index
        persisted = self._store.vector_index(self._conv)
        if persisted is not None and persisted[0] == expected:
            try:
                return VectorIndex.from_bytes(persisted[1])
            except CorruptIndex:
                if not self._store.readonly:
                    self._store.delete_vector_index(self._conv)  # rebuilt below from the stored vectors
        numbers, vectors = self._store.embeddings(self._conv)
        index = VectorIndex()
        if len(numbers):
            chunk_numbers = np.zeros(len(numbers), dtype=np.int64)
            for i in range(1, len(numbers)):
                chunk_numbers[i] = chunk_numbers[i - 1] + 1 if numbers[i] == numbers[i - 1] else 0
            index.add([ChunkKey(int(p), int(c)).vector_id for p, c in zip(numbers, chunk_numbers)], vectors)
        return index

    # -- searching -----------------------------------------------------------------------------

    def _embedded_beside(self, query: str, search: Callable[[], T]) -> tuple[np.ndarray, T]:
        """(the query's vector, ``search()``): the query is embedded on a worker (optmem.workers)
        while this thread runs the search, a keyword search in the store; at 10k turns each took
        ~20 ms, and torch and SQLite both let go of the GIL."""
        vector_soon = workers.submit(lambda: self._embedder.encode([query])[0])
        try:
            found = search()
        finally:
            vector = vector_soon.result()
        return vector, found

    def _search(self, query: str, n: int, keyword_limit: int) -> tuple[np.ndarray, list[ChunkHit], list]:
        """The query's vector, its n nearest chunks (none while nothing is indexed) and its best
        ``keyword_limit`` keyword chunks."""
        index = self._vector_index()
        if not len(index):
            return np.zeros(0, dtype=np.float32), [], []
        vector, found = self._embedded_beside(
            query, lambda: self._store.keyword_chunks(self._conv, keywords(query), keyword_limit))
        hits = []
        for vector_id, score in index.search(vector, n):
            key = ChunkKey.from_vector_id(vector_id)
            hits.append(ChunkHit(key.page, key.chunk, None, float(score)))
        return vector, hits, found

    def pages(self, query: str, k: int) -> list[PageHit]:
        """The k best pages for ``query``, each with the cosine of its best chunk."""
        if k < 1:
            return []
        if self.pages_from_turns:
            return self._pages_by_turns(query, k)
        vector, dense_chunks, found = self._search(query, k * 8, 4 * k)
        if not dense_chunks:
            return []
        cosine: dict[int, float] = {}
        for hit in dense_chunks:
            if hit.score > cosine.get(hit.page, -2.0):
                cosine[hit.page] = hit.score
        dense = sorted(cosine, key=lambda page: (-cosine[page], page))
        keyword = list(dict.fromkeys(page for page, _ in found))[:k]
        best = interleave(dense, keyword)[:k]
        missing = [page for page in best if page not in cosine]
        if missing:
            cosine.update(self._page_cosines(missing, vector))
        top_keyword = keyword[0] if keyword else None
        return [PageHit(page, cosine[page], page == top_keyword) for page in best]

    def _pages_by_turns(self, query: str, k: int) -> list[PageHit]:
        """pages() where pages are ranked by their turns: a page's cosine is its best turn part's."""
        if self.config.embed_on_query:
            self.index_pending()  # the keyword index of the pages sealed since
        else:
            self.finish_pending()
        seqs, vectors = self._turn_vectors()
        spans = self._store.page_spans(self._conv)
        if not len(seqs) or not spans:
            return []
        vector, found = self._embedded_beside(
            query, lambda: self._store.keyword_chunks(self._conv, keywords(query), 4 * k))
        firsts = [first for _, first, _ in spans]
        cosine: dict[int, float] = {}
        for seq, score in zip(seqs.tolist(), (vectors @ vector).tolist()):
            i = bisect_right(firsts, seq) - 1
            number, _, last = spans[max(i, 0)]
            if i >= 0 and seq <= last and score > cosine.get(number, -2.0):
                cosine[number] = score
        dense = sorted(cosine, key=lambda page: (-cosine[page], page))
        keyword = list(dict.fromkeys(page for page, _ in found))[:k]
        best = interleave(dense, keyword)[:k]
        top_keyword = keyword[0] if keyword else None
        return [PageHit(page, cosine.get(page, 0.0), page == top_keyword) for page in best]

    def chunks(self, query: str, n: int) -> list[ChunkHit]:
        """The n best chunks: dense and keyword hits in turns, as for pages. Dense hits need
        ``min_score``; keyword hits need it too, except the best."""
        if n < 1:
            return []
        vector, dense_all, found = self._search(query, n, n)
        if not dense_all:
            return []
        min_score = self.config.min_score
        dense = [h for h in dense_all if h.score >= min_score]
        keyword = []
        for rank, (page, stored) in enumerate(found):
            text = chunk_shown(stored)
            page_chunks = chunk_text(self._store.page_source_text(self._conv, page) or "", self.config.chunk_chars)
            number = page_chunks.index(text) if text in page_chunks else None
            vectors = self._store.chunk_vectors(self._conv, [(page, number)]) if number is not None else {}
            score = float(vectors[(page, number)] @ vector) if vectors else 0.0
            if rank == 0 or score >= min_score:
                keyword.append(ChunkHit(page, number, text, score))

        def key(hit: ChunkHit) -> tuple:
            return hit.page, hit.chunk if hit.chunk is not None else hit.text

        by_key: dict[tuple, ChunkHit] = {}
        for hit in dense + keyword:
            by_key.setdefault(key(hit), hit)
        return [by_key[k] for k in interleave([key(h) for h in dense], [key(h) for h in keyword])[:n]]

    def _page_cosines(self, pages: list[int], vector: np.ndarray) -> dict[int, float]:
        numbers, vectors = self._store.embeddings(self._conv, pages)
        scores = vectors @ vector if len(numbers) else np.zeros(0)
        return {page: float(scores[numbers == page].max()) if (numbers == page).any() else 0.0 for page in pages}
