"""SQLite store: conversations, turns, pages with their current tier image, embeddings, caches.

Every write goes through :meth:`Store.write`, one ``BEGIN IMMEDIATE`` transaction: SQLite's write
lock serialises writers across processes, and WAL keeps readers going. A process killed at any
instant either committed a whole step (a turn with the pages it sealed and the tiers it moved)
or nothing of it. Every query is scoped by conversation id; a page id from another conversation
is treated as unknown.

The store knows nothing of rendering or models: it keeps bytes, text and numbers.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

APPLICATION_ID = 0x4F50544D  # "OPTM" in the SQLite header: tells our files from foreign ones
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE turns (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    seq INTEGER NOT NULL,               -- turn id, 1, 2, 3 ... within the conversation
    role TEXT NOT NULL,
    text TEXT,                          -- NULL once an optical archive dropped it
    text_sha256 TEXT NOT NULL,
    timestamp REAL NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE TABLE pages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    seq INTEGER NOT NULL,               -- sealed pages are numbered 1, 2, 3 ... in order
    first_turn INTEGER NOT NULL,
    first_char INTEGER NOT NULL,
    last_turn INTEGER NOT NULL,
    last_char INTEGER NOT NULL,
    sealed_after_turn INTEGER NOT NULL, -- newest turn id when the page was sealed
    last_timestamp REAL NOT NULL,
    tier TEXT,                          -- NULL: out of the context, still recallable
    pinned_tier TEXT,
    layout TEXT NOT NULL,               -- JSON line layout at the 1280 px page
    source_text TEXT,                   -- verbatim archive (optical: NULL once indexed)
    text_tokens INTEGER NOT NULL,
    ledger TEXT NOT NULL,               -- JSON list of exact strings (verbatim guard)
    image BLOB NOT NULL,                -- PNG at the current (or last) tier
    image_tier TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    indexed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX pages_in_context ON pages (conversation_id, seq) WHERE tier IS NOT NULL;
CREATE TABLE open_pages (
    conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id),
    first_turn INTEGER NOT NULL,
    first_char INTEGER NOT NULL
);
CREATE TABLE embeddings (
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    chunk INTEGER NOT NULL,
    conversation_id INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (page_id, chunk)
);
CREATE INDEX embeddings_conv ON embeddings (conversation_id);
CREATE TABLE vector_indexes (
    conversation_id INTEGER PRIMARY KEY,
    n_vectors INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, page_id UNINDEXED, conversation_id UNINDEXED, tokenize = 'unicode61'
);
CREATE TABLE reexpand_cache (
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    tier TEXT NOT NULL,
    engine TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (page_id, tier, engine)
);
"""


class StoreError(Exception):
    """Base class of the store's errors."""


class NotAnOptmemDatabase(StoreError):
    """The file is not SQLite, or is someone else's SQLite database."""


class UnknownConversation(StoreError, KeyError):
    def __str__(self) -> str:  # KeyError would print the repr
        return str(self.args[0])


class UnknownPage(StoreError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class TamperedData(StoreError):
    """A stored blob no longer matches the hash recorded when it was written."""


@dataclass(frozen=True)
class TurnRow:
    seq: int
    role: str
    text: str | None
    timestamp: float


@dataclass(frozen=True)
class PageRow:
    id: int
    seq: int
    first_turn: int
    first_char: int
    last_turn: int
    last_char: int
    sealed_after_turn: int
    last_timestamp: float
    tier: str | None
    pinned_tier: str | None
    image_tier: str
    text_tokens: int
    ledger: tuple[str, ...]
    indexed: bool


_PAGE_COLUMNS = ("id, seq, first_turn, first_char, last_turn, last_char, sealed_after_turn, last_timestamp, "
                 "tier, pinned_tier, image_tier, text_tokens, ledger, indexed")


def _page(row: tuple) -> PageRow:
    values = list(row)
    values[12] = tuple(json.loads(values[12]))
    values[13] = bool(values[13])
    return PageRow(*values)


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


class Store:
    def __init__(self, conn: sqlite3.Connection, path: str):
        self._conn = conn
        self.path = path

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> "Store":
        path = str(path)
        if path != ":memory:" and Path(path).is_dir():
            raise NotAnOptmemDatabase(f"{path} is a directory, not a database file")
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise NotAnOptmemDatabase(f"{path} is not an optmem database (SQLite says: {e})") from None
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables > 0):
            conn.close()
            raise NotAnOptmemDatabase(f"{path} is an SQLite database of another application; "
                                      "optmem will not write into it")
        conn.execute("PRAGMA foreign_keys = ON")
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a killed process; only an OS crash can lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
        store = cls(conn, path)
        if app_id == 0:
            store._create_schema()
        else:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                conn.close()
                raise NotAnOptmemDatabase(f"{path} has optmem schema version {version}; this optmem reads {SCHEMA_VERSION}")
        return store

    def _create_schema(self) -> None:
        with self.write() as conn:
            # Another process may have created it while we waited for the write lock.
            if conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                return
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write step. Nested calls join the outer transaction."""
        if self._conn.in_transaction:
            yield self._conn
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- conversations -------------------------------------------------------------------------

    def conversation_id(self, name: str, *, create: bool) -> int:
        row = self._conn.execute("SELECT id FROM conversations WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        if not create:
            raise UnknownConversation(f"no conversation named {name!r} in {self.path}")
        with self.write() as conn:
            conn.execute("INSERT OR IGNORE INTO conversations (name, created) VALUES (?, strftime('%s','now'))", (name,))
            return conn.execute("SELECT id FROM conversations WHERE name = ?", (name,)).fetchone()[0]

    def conversations(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM conversations ORDER BY id")]

    # -- turns ---------------------------------------------------------------------------------

    def add_turn(self, conv: int, role: str, text: str, timestamp: float) -> int:
        with self.write() as conn:
            seq = self.last_turn(conv) + 1
            conn.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?)",
                         (conv, seq, role, text, sha256(text), timestamp))
            return seq

    def last_turn(self, conv: int) -> int:
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM turns WHERE conversation_id = ?", (conv,)).fetchone()[0]

    def last_timestamp(self, conv: int) -> float | None:
        row = self._conn.execute("SELECT max(timestamp) FROM turns WHERE conversation_id = ?", (conv,)).fetchone()
        return row[0]

    def turns(self, conv: int, first: int = 1, last: int | None = None) -> list[TurnRow]:
        last = self.last_turn(conv) if last is None else last
        rows = self._conn.execute(
            "SELECT seq, role, text, timestamp FROM turns WHERE conversation_id = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (conv, first, last))
        return [TurnRow(*r) for r in rows]

    def drop_turn_texts(self, conv: int, first: int, last: int) -> None:
        with self.write() as conn:
            conn.execute("UPDATE turns SET text = NULL WHERE conversation_id = ? AND seq BETWEEN ? AND ?",
                         (conv, first, last))

    # -- the open page ---------------------------------------------------------------------------

    def open_page_start(self, conv: int) -> tuple[int, int] | None:
        row = self._conn.execute("SELECT first_turn, first_char FROM open_pages WHERE conversation_id = ?", (conv,)).fetchone()
        return (row[0], row[1]) if row else None

    def set_open_page_start(self, conv: int, start: tuple[int, int] | None) -> None:
        with self.write() as conn:
            if start is None:
                conn.execute("DELETE FROM open_pages WHERE conversation_id = ?", (conv,))
            else:
                conn.execute("INSERT OR REPLACE INTO open_pages VALUES (?, ?, ?)", (conv, *start))

    # -- sealed pages ----------------------------------------------------------------------------

    def add_page(self, conv: int, *, first: tuple[int, int], last: tuple[int, int], sealed_after_turn: int,
                 last_timestamp: float, tier: str | None, layout_json: str, source_text: str, text_tokens: int,
                 ledger: Sequence[str], png: bytes, image_tier: str) -> int:
        with self.write() as conn:
            seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM pages WHERE conversation_id = ?", (conv,)).fetchone()[0]
            cur = conn.execute(
                "INSERT INTO pages (conversation_id, seq, first_turn, first_char, last_turn, last_char, sealed_after_turn, "
                "last_timestamp, tier, layout, source_text, text_tokens, ledger, image, image_tier, image_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conv, seq, *first, *last, sealed_after_turn, last_timestamp, tier, layout_json, source_text,
                 text_tokens, json.dumps(list(ledger), ensure_ascii=False), png, image_tier, sha256(png)))
            return cur.lastrowid

    def pages(self, conv: int, *, in_context_only: bool = False) -> list[PageRow]:
        where = "conversation_id = ?" + (" AND tier IS NOT NULL" if in_context_only else "")
        rows = self._conn.execute(f"SELECT {_PAGE_COLUMNS} FROM pages WHERE {where} ORDER BY seq", (conv,))
        return [_page(r) for r in rows]

    def page(self, conv: int, page_id: int) -> PageRow:
        row = self._conn.execute(f"SELECT {_PAGE_COLUMNS} FROM pages WHERE id = ? AND conversation_id = ?",
                                 (page_id, conv)).fetchone()
        if row is None:
            raise UnknownPage(f"no page {page_id} in this conversation")
        return _page(row)

    def last_page_seq(self, conv: int) -> int:
        """Number of the newest sealed page (pages are numbered 1, 2, 3 ... and deleted oldest first)."""
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM pages WHERE conversation_id = ?", (conv,)).fetchone()[0]

    def page_image(self, conv: int, page_id: int) -> tuple[bytes, str]:
        """PNG bytes of the page at its stored tier, checked against the hash written with it."""
        row = self._conn.execute("SELECT image, image_sha256, image_tier FROM pages WHERE id = ? AND conversation_id = ?",
                                 (page_id, conv)).fetchone()
        if row is None:
            raise UnknownPage(f"no page {page_id} in this conversation")
        png, digest, tier = row
        if sha256(png) != digest:
            raise TamperedData(f"page {page_id}: stored image does not match its sha256; the database was modified outside optmem")
        return png, tier

    def page_layout(self, conv: int, page_id: int) -> list:
        row = self._conn.execute("SELECT layout FROM pages WHERE id = ? AND conversation_id = ?", (page_id, conv)).fetchone()
        if row is None:
            raise UnknownPage(f"no page {page_id} in this conversation")
        return json.loads(row[0])

    def page_source_text(self, conv: int, page_id: int) -> str | None:
        row = self._conn.execute("SELECT source_text FROM pages WHERE id = ? AND conversation_id = ?", (page_id, conv)).fetchone()
        if row is None:
            raise UnknownPage(f"no page {page_id} in this conversation")
        return row[0]

    def set_page_tier(self, conv: int, page_id: int, tier: str | None, png: bytes | None = None, image_tier: str | None = None) -> None:
        """Move a page to a tier; the image, when given, is replaced in the same statement."""
        with self.write() as conn:
            if png is None:
                conn.execute("UPDATE pages SET tier = ? WHERE id = ? AND conversation_id = ?", (tier, page_id, conv))
            else:
                conn.execute("UPDATE pages SET tier = ?, image = ?, image_tier = ?, image_sha256 = ? WHERE id = ? AND conversation_id = ?",
                             (tier, png, image_tier, sha256(png), page_id, conv))

    def pin_page(self, conv: int, page_id: int, tier: str | None) -> None:
        self.page(conv, page_id)
        with self.write() as conn:
            conn.execute("UPDATE pages SET pinned_tier = ? WHERE id = ? AND conversation_id = ?", (tier, page_id, conv))

    def delete_page(self, conv: int, page_id: int) -> None:
        with self.write() as conn:
            conn.execute("DELETE FROM pages WHERE id = ? AND conversation_id = ?", (page_id, conv))
            conn.execute("DELETE FROM chunks_fts WHERE page_id = ? AND conversation_id = ?", (page_id, conv))
            conn.execute("DELETE FROM vector_indexes WHERE conversation_id = ?", (conv,))

    # -- embeddings and the vector index ---------------------------------------------------------

    def unindexed_pages(self, conv: int) -> list[tuple[int, str]]:
        return list(self._conn.execute(
            "SELECT id, source_text FROM pages WHERE conversation_id = ? AND indexed = 0 ORDER BY seq", (conv,)))

    def put_embeddings(self, conv: int, page_id: int, vectors: np.ndarray, *, drop_source_text: bool,
                       lexical_chunks: Sequence[str] = ()) -> None:
        """Store a page's chunk vectors (and, when given, its chunk texts for keyword search)."""
        with self.write() as conn:
            conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                             [(page_id, i, conv, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for i, v in enumerate(vectors)])
            conn.executemany("INSERT INTO chunks_fts (text, page_id, conversation_id) VALUES (?, ?, ?)",
                             [(chunk, page_id, conv) for chunk in lexical_chunks])
            conn.execute("UPDATE pages SET indexed = 1" + (", source_text = NULL" if drop_source_text else "")
                         + " WHERE id = ? AND conversation_id = ?", (page_id, conv))

    def keyword_search(self, conv: int, terms: Sequence[str], limit: int) -> list[int]:
        """Page ids ranked by their best BM25 chunk for any of ``terms`` (each quoted: user text
        never becomes FTS query syntax)."""
        return list(dict.fromkeys(page_id for page_id, _ in self.keyword_chunks(conv, terms, 4 * limit)))[:limit]

    def keyword_chunks(self, conv: int, terms: Sequence[str], limit: int) -> list[tuple[int, str]]:
        """(page id, chunk text) of the best BM25 chunks for any of ``terms``, best first (each term
        quoted: user text never becomes FTS query syntax)."""
        if not terms:
            return []
        query = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        return [(r[0], r[1]) for r in self._conn.execute(
            "SELECT page_id, text FROM chunks_fts WHERE chunks_fts MATCH ? AND conversation_id = ? "
            "ORDER BY bm25(chunks_fts), page_id LIMIT ?", (query, conv, limit))]

    def chunk_vectors(self, conv: int, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """The stored vectors of the given (page id, chunk number) pairs that exist."""
        out = {}
        for page_id, chunk in keys:
            row = self._conn.execute("SELECT vector FROM embeddings WHERE page_id = ? AND chunk = ? AND conversation_id = ?",
                                     (page_id, chunk, conv)).fetchone()
            if row is not None:
                out[(page_id, chunk)] = np.frombuffer(row[0], dtype=np.float32)
        return out

    def embeddings(self, conv: int) -> tuple[np.ndarray, np.ndarray]:
        """(page ids, vectors) of every chunk of the conversation, in a stable order."""
        rows = self._conn.execute("SELECT page_id, vector FROM embeddings WHERE conversation_id = ? ORDER BY page_id, chunk", (conv,)).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        return ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def embedding_count(self, conv: int) -> int:
        return self._conn.execute("SELECT count(*) FROM embeddings WHERE conversation_id = ?", (conv,)).fetchone()[0]

    def vector_index(self, conv: int) -> tuple[int, bytes] | None:
        row = self._conn.execute("SELECT n_vectors, blob FROM vector_indexes WHERE conversation_id = ?", (conv,)).fetchone()
        return (row[0], row[1]) if row else None

    def put_vector_index(self, conv: int, n_vectors: int, blob: bytes) -> None:
        with self.write() as conn:
            conn.execute("INSERT OR REPLACE INTO vector_indexes VALUES (?, ?, ?)", (conv, n_vectors, blob))

    # -- re-expansion cache ----------------------------------------------------------------------

    def cached_text(self, conv: int, page_id: int, tier: str, engine: str) -> str | None:
        row = self._conn.execute(
            "SELECT c.text FROM reexpand_cache c JOIN pages p ON p.id = c.page_id "
            "WHERE c.page_id = ? AND c.tier = ? AND c.engine = ? AND p.conversation_id = ?",
            (page_id, tier, engine, conv)).fetchone()
        return row[0] if row else None

    def put_cached_text(self, conv: int, page_id: int, tier: str, engine: str, text: str) -> None:
        self.page(conv, page_id)
        with self.write() as conn:
            conn.execute("INSERT OR REPLACE INTO reexpand_cache VALUES (?, ?, ?, ?)", (page_id, tier, engine, text))
