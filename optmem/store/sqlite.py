"""The SQLite store: one file (or an in-memory database, or a connection you pass in).

Every write goes through one ``BEGIN IMMEDIATE`` transaction (:meth:`SQLiteStore.write`): SQLite's
write lock serialises writers across processes, and WAL keeps readers going. A process killed at
any instant either committed a whole step (a turn with the pages it sealed and the tiers it moved)
or nothing of it. Every query is scoped by conversation id. Pages are keyed by rowid inside (the
embeddings, keyword chunks and cache point at it); only page numbers leave this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np

from optmem.store.base import (
    DatabaseNotFound,
    MissingDirectory,
    NotAnOptmemDatabase,
    NoTurnToPop,
    OpenedStore,
    PageRow,
    ReadOnlyStore,
    SchemaMismatch,
    SchemaTooNew,
    StoreError,
    StoreFull,
    StorePermissionError,
    TamperedData,
    TurnPos,
    TurnRow,
    UnknownConversation,
    UnknownPage,
    check_poppable,
)
from optmem.store.sqlite_migrations import (
    APPLICATION_ID,
    LATEST,
    MIGRATIONS,
    READABLE_FROM,
    TURN_UNITS_FROM,
    TURN_KEYWORDS_FROM,
    TURN_ROWID_SHIFT,
    VECTOR_INDEX_BY_NUMBER_FROM,
    Migration,
)

BUSY_TIMEOUT_S = 30.0

# Primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26
_IDS_PER_QUERY = 500  # bound parameters per IN (...): SQLite's limit is 32766, older builds 999

_PAGE_COLUMNS = ("seq, first_turn, first_char, last_turn, last_char, last_timestamp, "
                 "tier, pinned_tier, image_tier, text_tokens, ledger, indexed")


def _page(row: tuple) -> PageRow:
    (number, first_turn, first_char, last_turn, last_char, last_timestamp,
     tier, pinned_tier, image_tier, text_tokens, ledger, indexed) = row
    return PageRow(number, first_turn, first_char, last_turn, last_char, last_timestamp, tier, pinned_tier,
                   image_tier, text_tokens, tuple(json.loads(ledger)), bool(indexed))


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _code(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


class SQLiteStore(OpenedStore):
    """Open one with :func:`optmem.store.open_store` (or :meth:`open`)."""

    def __init__(self, conn: sqlite3.Connection, path: str, *, owns_connection: bool,
                 readonly_because: str | None, version: int):
        self._conn = conn
        self.path = path
        self._owns_connection = owns_connection
        self._readonly_because = readonly_because  # None: writable
        self._version = version

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | os.PathLike | sqlite3.Connection, *, create: bool = True,
             readonly: bool = False) -> SQLiteStore:
        """Open the optmem database at ``target``: a file path, ``":memory:"`` or an open
        ``sqlite3.Connection`` (which the store then drives in autocommit mode and never closes).

        A missing file is created unless ``create=False`` or ``readonly``; an existing one is
        upgraded to the current schema. The store is read-only when ``readonly`` or when the file
        (or its directory, where SQLite keeps the write-ahead log) is not writable.
        """
        if isinstance(target, sqlite3.Connection):
            if target.in_transaction:
                raise StoreError("the connection passed to open_store is inside a transaction; commit or roll back first")
            target.isolation_level = None  # the store issues BEGIN / COMMIT itself
            return cls._setup(target, _connection_path(target), owns=False, create=create,
                              readonly_because="readonly=True" if readonly else None)
        path = os.fspath(target)
        if path == ":memory:":
            if readonly or not create:
                raise DatabaseNotFound(":memory: starts empty every time: it cannot be opened read-only or with create=False")
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            return cls._setup(conn, path, owns=True, create=True, readonly_because=None)
        conn, readonly_because = _connect_file(Path(path), create=create, readonly=readonly)
        return cls._setup(conn, path, owns=True, create=create, readonly_because=readonly_because)

    @classmethod
    def _setup(cls, conn: sqlite3.Connection, path: str, *, owns: bool, create: bool,
               readonly_because: str | None) -> SQLiteStore:
        try:
            store = cls(conn, path, owns_connection=owns, readonly_because=readonly_because,
                        version=_check_header(conn, path, create=create, readonly=readonly_because is not None))
            conn.execute("PRAGMA foreign_keys = ON")
            if readonly_because is None:
                if path != ":memory:":
                    conn.execute("PRAGMA journal_mode = WAL")
                    # NORMAL in WAL mode survives a killed process; only an OS crash can lose the last commits.
                    conn.execute("PRAGMA synchronous = NORMAL")
                store._migrate()
            elif store._version < READABLE_FROM:
                raise ReadOnlyStore(f"{path} has optmem schema {store._version}, which this optmem reads only after "
                                    f"upgrading it to {LATEST}; open it once writable ({readonly_because})")
            _check_schema(conn, path, store._version)
            return store
        except BaseException:
            if owns:
                conn.close()
            raise

    def _migrate(self) -> None:
        """Apply every missing migration in one transaction, so a writer killed mid-upgrade leaves
        the file at the version it started from, never at one in between. The version is re-read
        under the write lock: another process may have upgraded meanwhile."""
        if self._version >= LATEST:
            return
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for migration in MIGRATIONS[version:]:
                _apply(conn, migration)
            self._version = LATEST

    def close(self) -> None:
        if self._owns_connection:
            self._conn.close()

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[None]:
        """One atomic write step. Nested calls join the outer step."""
        with self._transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._readonly_because is not None:
            raise ReadOnlyStore(f"{self.path} is open read-only ({self._readonly_because}): nothing can be written")
        conn = self._conn
        if conn.in_transaction:
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._translate(e) from e
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as e:
            # SQLite itself rolls back after some errors (a full disk among them); a second
            # ROLLBACK would fail and hide the real error behind "no transaction is active".
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as rollback_error:
                    e.add_note(f"rolling back also failed: {rollback_error}")
            if isinstance(e, sqlite3.Error):
                raise self._translate(e) from e
            raise

    def _translate(self, e: sqlite3.Error) -> Exception:
        code = _code(e)
        if code == _SQLITE_FULL:
            return StoreFull(f"{self.path}: the disk or the database's size limit is full; the write step was "
                             f"rolled back whole (SQLite says: {e})")
        if code == _SQLITE_READONLY:
            return ReadOnlyStore(f"{self.path}: SQLite refuses to write: {e}")
        return e

    # -- conversations -------------------------------------------------------------------------

    def conversation_id(self, name: str, *, create: bool) -> int:
        row = self._conn.execute("SELECT id FROM conversations WHERE name = ?", (name,)).fetchone()
        if row:
            return row[0]
        if not create:
            raise UnknownConversation(f"no conversation named {name!r} in {self.path}")
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO conversations (name, created) VALUES (?, strftime('%s','now'))", (name,))
            return conn.execute("SELECT id FROM conversations WHERE name = ?", (name,)).fetchone()[0]

    def conversation_names(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM conversations ORDER BY id")]

    def delete_conversation(self, conv: int) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM pages WHERE conversation_id = ?", (conv,))  # embeddings and cache cascade
            for table in ("chunks_fts", "vector_indexes", "open_pages", "turn_vectors", "turns"):
                conn.execute(f"DELETE FROM {table} WHERE conversation_id = ?", (conv,))
            conn.execute("DELETE FROM turn_keywords WHERE rowid BETWEEN ? AND ?", _turn_rowids(conv, 1, _MAX_SEQ))
            conn.execute("DELETE FROM conversations WHERE id = ?", (conv,))

    def _conversation_name(self, conv: int) -> str:
        row = self._conn.execute("SELECT name FROM conversations WHERE id = ?", (conv,)).fetchone()
        return row[0] if row else f"#{conv}"

    # -- turns ---------------------------------------------------------------------------------

    def add_turn(self, conv: int, role: str, text: str, timestamp: float) -> int:
        with self._transaction() as conn:
            seq = self.last_turn(conv) + 1
            conn.execute("INSERT INTO turns VALUES (?, ?, ?, ?, ?, ?)",
                         (conv, seq, role, text, _sha256(text), timestamp))
            return seq

    def pop_turn(self, conv: int) -> TurnRow:
        with self._transaction() as conn:
            seq = self.last_turn(conv)
            if seq == 0:
                raise NoTurnToPop(f"conversation {self._conversation_name(conv)!r} has no turn to pop")
            page = conn.execute("SELECT min(seq) FROM pages WHERE conversation_id = ? AND last_turn >= ?",
                                (conv, seq)).fetchone()[0]
            check_poppable(self._conversation_name(conv), seq, page, self.open_page_start(conv))
            (row,) = self.turns(conv, seq, seq)
            for table in ("turn_vectors", "turns"):
                conn.execute(f"DELETE FROM {table} WHERE conversation_id = ? AND seq = ?", (conv, seq))
            conn.execute("DELETE FROM turn_keywords WHERE rowid = ?", (_turn_rowids(conv, seq, seq)[0],))
            return row

    def last_turn(self, conv: int) -> int:
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM turns WHERE conversation_id = ?", (conv,)).fetchone()[0]

    def last_timestamp(self, conv: int) -> float | None:
        return self._conn.execute("SELECT max(timestamp) FROM turns WHERE conversation_id = ?", (conv,)).fetchone()[0]

    def turns(self, conv: int, first: int = 1, last: int | None = None) -> list[TurnRow]:
        last = self.last_turn(conv) if last is None else last
        rows = self._conn.execute(
            "SELECT seq, role, text, timestamp, text_sha256 FROM turns "
            "WHERE conversation_id = ? AND seq BETWEEN ? AND ? ORDER BY seq", (conv, first, last)).fetchall()
        return self._turn_rows(conv, rows)

    def turns_at(self, conv: int, seqs: Sequence[int]) -> list[TurnRow]:
        wanted = sorted({int(s) for s in seqs})
        rows = []
        for i in range(0, len(wanted), _IDS_PER_QUERY):
            ids = wanted[i:i + _IDS_PER_QUERY]
            rows += self._conn.execute(
                "SELECT seq, role, text, timestamp, text_sha256 FROM turns WHERE conversation_id = ? AND seq IN "
                f"({', '.join('?' * len(ids))}) ORDER BY seq", (conv, *ids)).fetchall()
        return self._turn_rows(conv, rows)

    def _turn_rows(self, conv: int, rows: list[tuple]) -> list[TurnRow]:
        out = []
        for seq, role, text, timestamp, digest in rows:
            if text is not None and _sha256(text) != digest:
                raise TamperedData(f"conversation {self._conversation_name(conv)!r}, turn {seq}: stored text does not "
                                   f"match its sha256; {self.path} was modified outside optmem")
            out.append(TurnRow(seq, role, text, timestamp))
        return out

    def drop_turn_texts(self, conv: int, first: int, last: int) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE turns SET text = NULL WHERE conversation_id = ? AND seq BETWEEN ? AND ?",
                         (conv, first, last))

    # -- the open page ---------------------------------------------------------------------------

    def open_page_start(self, conv: int) -> TurnPos | None:
        row = self._conn.execute("SELECT first_turn, first_char FROM open_pages WHERE conversation_id = ?", (conv,)).fetchone()
        return TurnPos(*row) if row else None

    def set_open_page_start(self, conv: int, start: TurnPos | None) -> None:
        with self._transaction() as conn:
            if start is None:
                conn.execute("DELETE FROM open_pages WHERE conversation_id = ?", (conv,))
            else:
                conn.execute("INSERT OR REPLACE INTO open_pages VALUES (?, ?, ?)", (conv, start.turn, start.char))

    # -- sealed pages ----------------------------------------------------------------------------

    def add_page(self, conv: int, *, first: TurnPos, last: TurnPos, last_timestamp: float, tier: str | None,
                 layout_json: str, source_text: str | None, text_tokens: int, ledger: Sequence[str], png: bytes,
                 image_tier: str) -> int:
        with self._transaction() as conn:
            number = self.last_page_number(conv) + 1
            conn.execute(
                "INSERT INTO pages (conversation_id, seq, first_turn, first_char, last_turn, last_char, "
                "last_timestamp, tier, layout, source_text, text_tokens, ledger, image, image_tier, image_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conv, number, first.turn, first.char, last.turn, last.char, last_timestamp, tier, layout_json,
                 source_text, text_tokens, json.dumps(list(ledger), ensure_ascii=False), png, image_tier, _sha256(png)))
            return number

    def pages(self, conv: int, *, in_context_only: bool = False) -> list[PageRow]:
        where = "conversation_id = ?" + (" AND tier IS NOT NULL" if in_context_only else "")
        rows = self._conn.execute(f"SELECT {_PAGE_COLUMNS} FROM pages WHERE {where} ORDER BY seq", (conv,))
        return [_page(r) for r in rows]

    def page(self, conv: int, number: int) -> PageRow:
        return _page(self._page_row(conv, number, _PAGE_COLUMNS))

    def page_spans(self, conv: int) -> list[tuple[int, int, int]]:
        return [tuple(r) for r in self._conn.execute(
            "SELECT seq, first_turn, last_turn FROM pages WHERE conversation_id = ? ORDER BY seq", (conv,))]

    def sealed_text_tokens(self, conv: int) -> int:
        return self._conn.execute("SELECT coalesce(sum(text_tokens), 0) FROM pages WHERE conversation_id = ?",
                                  (conv,)).fetchone()[0]

    def _page_row(self, conv: int, number: int, columns: str) -> tuple:
        row = self._conn.execute(f"SELECT {columns} FROM pages WHERE conversation_id = ? AND seq = ?",
                                 (conv, number)).fetchone()
        if row is None:
            raise UnknownPage(f"no page {number} in conversation {self._conversation_name(conv)!r}")
        return row

    def _rowid(self, conv: int, number: int) -> int:
        return self._page_row(conv, number, "id")[0]

    def last_page_number(self, conv: int) -> int:
        """Number of the newest sealed page (pages are numbered 1, 2, 3 ... and deleted oldest first)."""
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM pages WHERE conversation_id = ?", (conv,)).fetchone()[0]

    def page_image(self, conv: int, number: int) -> tuple[bytes, str]:
        """PNG bytes of the page at its stored tier, checked against the hash written with it."""
        png, digest, tier = self._page_row(conv, number, "image, image_sha256, image_tier")
        if _sha256(png) != digest:
            raise TamperedData(f"conversation {self._conversation_name(conv)!r}, page {number}: stored image does not "
                               f"match its sha256; {self.path} was modified outside optmem")
        return png, tier

    def page_layout(self, conv: int, number: int) -> list:
        return json.loads(self._page_row(conv, number, "layout")[0])

    def page_source_text(self, conv: int, number: int) -> str | None:
        return self._page_row(conv, number, "source_text")[0]

    def set_page_tier(self, conv: int, number: int, tier: str | None, png: bytes | None = None,
                      image_tier: str | None = None) -> None:
        """Move a page to a tier; the image, when given, is replaced in the same statement."""
        with self._transaction() as conn:
            if png is None:
                conn.execute("UPDATE pages SET tier = ? WHERE conversation_id = ? AND seq = ?", (tier, conv, number))
            else:
                conn.execute("UPDATE pages SET tier = ?, image = ?, image_tier = ?, image_sha256 = ? "
                             "WHERE conversation_id = ? AND seq = ?", (tier, png, image_tier, _sha256(png), conv, number))

    def pin_page(self, conv: int, number: int, tier: str | None) -> None:
        with self._transaction() as conn:
            rowid = self._rowid(conv, number)
            conn.execute("UPDATE pages SET pinned_tier = ? WHERE id = ?", (tier, rowid))

    def delete_page(self, conv: int, number: int) -> None:
        with self._transaction() as conn:
            rowid = self._rowid(conv, number)
            conn.execute("DELETE FROM pages WHERE id = ?", (rowid,))  # embeddings and cache cascade
            conn.execute("DELETE FROM chunks_fts WHERE page_id = ? AND conversation_id = ?", (rowid, conv))
            conn.execute("DELETE FROM vector_indexes WHERE conversation_id = ?", (conv,))

    # -- embeddings and the vector index ---------------------------------------------------------

    def unindexed_pages(self, conv: int) -> list[tuple[int, str | None]]:
        # Found in the metadata index first: asked before every query, and reading ``indexed`` from
        # the rows walks every page's image (6 ms at 980 pages, 0.3 ms from the index).
        numbers = [r[0] for r in self._conn.execute(
            "SELECT seq FROM pages WHERE conversation_id = ? AND indexed = 0 ORDER BY seq", (conv,))]
        out = []
        for n in numbers:
            row = self._conn.execute("SELECT source_text FROM pages WHERE conversation_id = ? AND seq = ?",
                                     (conv, n)).fetchone()
            if row is not None:  # else deleted since, by another writer
                out.append((n, row[0]))
        return out

    def put_embeddings(self, conv: int, number: int, vectors: np.ndarray, *, drop_source_text: bool,
                       lexical_chunks: Sequence[str] = ()) -> None:
        """Store a page's chunk vectors (and, when given, its chunk texts for keyword search)."""
        with self._transaction() as conn:
            rowid = self._rowid(conv, number)
            conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                             [(rowid, i, conv, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                              for i, v in enumerate(vectors)])
            conn.executemany("INSERT INTO chunks_fts (text, page_id, conversation_id) VALUES (?, ?, ?)",
                             [(chunk, rowid, conv) for chunk in lexical_chunks])
            conn.execute("UPDATE pages SET indexed = 1" + (", source_text = NULL" if drop_source_text else "")
                         + " WHERE id = ?", (rowid,))

    def keyword_search(self, conv: int, terms: Sequence[str], limit: int) -> list[int]:
        """Page numbers ranked by their best BM25 chunk for any of ``terms`` (each quoted: user
        text never becomes FTS query syntax)."""
        return list(dict.fromkeys(number for number, _ in self.keyword_chunks(conv, terms, 4 * limit)))[:limit]

    def keyword_chunks(self, conv: int, terms: Sequence[str], limit: int) -> list[tuple[int, str]]:
        """(page number, chunk text) of the best BM25 chunks for any of ``terms``, best first
        (each term quoted: user text never becomes FTS query syntax)."""
        if not terms:
            return []
        query = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        # Ranked in the FTS table alone, then joined: joining every match before the sort took
        # half the time at 10k turns, where a query's common words match most chunks.
        return [(r[0], r[1]) for r in self._conn.execute(
            "SELECT p.seq, f.text FROM (SELECT page_id, text, bm25(chunks_fts) AS score FROM chunks_fts "
            "WHERE chunks_fts MATCH ? AND conversation_id = ? ORDER BY score, rowid LIMIT ?) f "
            "JOIN pages p ON p.id = f.page_id WHERE p.conversation_id = ? ORDER BY f.score, p.seq",
            (query, conv, limit, conv))]

    def chunk_vectors(self, conv: int, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """The stored vectors of the given (page number, chunk) pairs that exist."""
        out = {}
        for number, chunk in keys:
            row = self._conn.execute(
                "SELECT e.vector FROM embeddings e JOIN pages p ON p.id = e.page_id "
                "WHERE p.conversation_id = ? AND p.seq = ? AND e.chunk = ?", (conv, number, chunk)).fetchone()
            if row is not None:
                out[(number, chunk)] = np.frombuffer(row[0], dtype=np.float32)
        return out

    def embeddings(self, conv: int, pages: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(page numbers, vectors) of every chunk of the conversation (or of ``pages``), by page then chunk."""
        only = "" if pages is None else f" AND p.seq IN ({', '.join('?' * len(pages))})"
        rows = self._conn.execute(
            "SELECT p.seq, e.vector FROM embeddings e JOIN pages p ON p.id = e.page_id "
            f"WHERE e.conversation_id = ? AND p.conversation_id = ?{only} ORDER BY p.seq, e.chunk",
            (conv, conv, *(int(n) for n in pages or ()))).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        numbers = np.array([r[0] for r in rows], dtype=np.int64)
        return numbers, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def embedding_count(self, conv: int) -> int:
        return self._conn.execute("SELECT count(*) FROM embeddings WHERE conversation_id = ?", (conv,)).fetchone()[0]

    def vector_index(self, conv: int) -> tuple[int, bytes] | None:
        if self._version < VECTOR_INDEX_BY_NUMBER_FROM:
            return None  # a read-only old file: its index names pages by rowid; rebuild from the embeddings
        row = self._conn.execute("SELECT n_vectors, blob FROM vector_indexes WHERE conversation_id = ?", (conv,)).fetchone()
        return (row[0], row[1]) if row else None

    def put_vector_index(self, conv: int, n_vectors: int, blob: bytes) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO vector_indexes VALUES (?, ?, ?)", (conv, n_vectors, blob))

    def delete_vector_index(self, conv: int) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM vector_indexes WHERE conversation_id = ?", (conv,))

    # -- turn units ------------------------------------------------------------------------------

    def turn_units_through(self, conv: int) -> int:
        if self._version < TURN_UNITS_FROM:
            return 0
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM turn_vectors WHERE conversation_id = ?",
                                  (conv,)).fetchone()[0]

    def put_turn_units(self, conv: int, vectors: Sequence[tuple[int, int, np.ndarray]],
                       words: Sequence[tuple[int, str]]) -> None:
        """Store (seq, part, vector) rows and each turn's words for keyword search."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO turn_vectors VALUES (?, ?, ?, ?)",
                             [(conv, seq, part, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                              for seq, part, v in vectors])
            conn.executemany("INSERT INTO turn_keywords (rowid, words) VALUES (?, ?)",
                             [(_turn_rowids(conv, seq, seq)[0], text) for seq, text in words])

    def turn_vectors(self, conv: int) -> tuple[np.ndarray, np.ndarray]:
        if self._version < TURN_UNITS_FROM:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        rows = self._conn.execute("SELECT seq, vector FROM turn_vectors WHERE conversation_id = ? ORDER BY seq, part",
                                  (conv,)).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))

    def keyword_turns(self, conv: int, terms: Sequence[str], limit: int) -> list[int]:
        """Turn ids ranked by BM25 for any of ``terms`` (each quoted: user text never becomes FTS
        query syntax)."""
        if not terms or self._version < TURN_UNITS_FROM:
            return []
        query = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        if self._version < TURN_KEYWORDS_FROM:  # a read-only file of an older schema
            return [r[0] for r in self._conn.execute(
                "SELECT seq FROM turn_words WHERE turn_words MATCH ? AND conversation_id = ? "
                "ORDER BY bm25(turn_words), seq LIMIT ?", (query, conv, limit))]
        return [r[0] & _MAX_SEQ for r in self._conn.execute(
            "SELECT rowid FROM turn_keywords WHERE turn_keywords MATCH ? AND rowid BETWEEN ? AND ? "
            "ORDER BY bm25(turn_keywords), rowid LIMIT ?", (query, *_turn_rowids(conv, 1, _MAX_SEQ), limit))]

    def delete_turn_units(self, conv: int, first: int, last: int) -> None:
        with self._transaction() as conn:
            first = max(first, 1)
            if last < first:
                return
            conn.execute("DELETE FROM turn_vectors WHERE conversation_id = ? AND seq BETWEEN ? AND ?", (conv, first, last))
            conn.execute("DELETE FROM turn_keywords WHERE rowid BETWEEN ? AND ?", _turn_rowids(conv, first, last))

    # -- re-expansion cache ----------------------------------------------------------------------

    def cached_text(self, conv: int, number: int, tier: str, engine: str) -> str | None:
        row = self._conn.execute(
            "SELECT c.text FROM reexpand_cache c JOIN pages p ON p.id = c.page_id "
            "WHERE p.conversation_id = ? AND p.seq = ? AND c.tier = ? AND c.engine = ?",
            (conv, number, tier, engine)).fetchone()
        return row[0] if row else None

    def put_cached_text(self, conv: int, number: int, tier: str, engine: str, text: str) -> None:
        with self._transaction() as conn:
            rowid = self._rowid(conv, number)
            conn.execute("INSERT OR REPLACE INTO reexpand_cache VALUES (?, ?, ?, ?)", (rowid, tier, engine, text))


# -- turn keyword rows -------------------------------------------------------------------------

_MAX_SEQ = (1 << TURN_ROWID_SHIFT) - 1


def _turn_rowids(conv: int, first: int, last: int) -> tuple[int, int]:
    """The turn_keywords rowids of turns ``first``..``last`` of ``conv``: one conversation's are a
    range, which FTS5 searches without reading any other row."""
    if not (0 < conv < 1 << 31 and 0 < first <= last <= _MAX_SEQ):
        raise ValueError(f"turn keyword rows hold conversation ids below 2^31 and turn ids 1..{_MAX_SEQ}; "
                         f"got conversation {conv}, turns {first}..{last}")
    return conv << TURN_ROWID_SHIFT | first, conv << TURN_ROWID_SHIFT | last


# -- opening helpers ---------------------------------------------------------------------------


def _connection_path(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return file or ":memory:"
    return ":memory:"


def _connect_file(path: Path, *, create: bool, readonly: bool) -> tuple[sqlite3.Connection, str | None]:
    """A connection to ``path`` and why it is read-only (None: writable), with a typed error for
    each way opening can fail, checked before SQLite's one "unable to open database file"."""
    if path.is_dir():
        raise NotAnOptmemDatabase(f"{path} is a directory, not a database file")
    directory = path.absolute().parent
    if not directory.is_dir():
        raise MissingDirectory(f"cannot open {path}: directory {directory} does not exist")
    if not os.access(directory, os.X_OK):
        raise StorePermissionError(f"cannot open {path}: permission denied to enter directory {directory}")
    if not path.exists():
        if not create or readonly:
            why = "create=False" if not create else "read-only"
            raise DatabaseNotFound(f"{path}: no such database (opened {why}, so none is created)")
        if not os.access(directory, os.W_OK):
            if _read_only_file_system(directory):
                raise ReadOnlyStore(f"cannot create {path}: directory {directory} is on a read-only file system")
            raise StorePermissionError(f"cannot create {path}: permission denied to write in directory {directory}")
        return _connect(path, "rwc"), None
    if not os.access(path, os.R_OK):
        raise StorePermissionError(f"{path}: permission denied to read the database file")
    if readonly:
        return _connect(path, "ro"), "readonly=True"
    # The write-ahead log and its index are files beside the database: writing needs the directory too.
    if not os.access(path, os.W_OK):
        if _read_only_file_system(directory):
            return _connect(path, "ro"), f"{directory} is on a read-only file system"
        return _connect(path, "ro"), "the file is not writable"
    if not os.access(directory, os.W_OK):
        if _read_only_file_system(directory):
            return _connect(path, "ro"), f"{directory} is on a read-only file system"
        return _connect(path, "ro"), f"directory {directory} is not writable"
    return _connect(path, "rw"), None


def _read_only_file_system(directory: Path) -> bool:
    return hasattr(os, "statvfs") and bool(os.statvfs(directory).f_flag & os.ST_RDONLY)


def _connect(path: Path, mode: str) -> sqlite3.Connection:
    try:
        return _sqlite_connect(path, mode)
    except sqlite3.Error as e:
        if _code(e) == _SQLITE_NOTADB:
            raise NotAnOptmemDatabase(f"{path} is not an optmem database (SQLite says: {e})") from None
        if not (mode == "ro" and _code(e) == _SQLITE_CANTOPEN and not os.access(path.absolute().parent, os.W_OK)):
            raise StoreError(f"{path}: SQLite cannot open it (mode {mode}): {e}") from e
    # A WAL database needs its shared-memory index beside it, which a read-only directory (a
    # read-only mount) cannot hold. No writer can use that directory either, so the file cannot
    # change under us: SQLite may read it as immutable, without the index.
    try:
        return _sqlite_connect(path, mode, immutable=True)
    except sqlite3.Error as e:
        raise StoreError(f"{path}: SQLite cannot open it read-only: {e}") from e


def _sqlite_connect(path: Path, mode: str, *, immutable: bool = False) -> sqlite3.Connection:
    uri = path.absolute().as_uri() + f"?mode={mode}" + ("&immutable=1" if immutable else "")
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    try:
        conn.execute("PRAGMA schema_version").fetchone()  # SQLite reads the file lazily: make it fail here
    except BaseException:
        conn.close()
        raise
    return conn


def _check_header(conn: sqlite3.Connection, path: str, *, create: bool, readonly: bool) -> int:
    """The file's optmem schema version (0: an empty database to create), or a typed refusal."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise NotAnOptmemDatabase(f"{path} is not an optmem database (SQLite says: {e})") from None
    if app_id not in (0, APPLICATION_ID) or (app_id == 0 and objects > 0):
        raise NotAnOptmemDatabase(f"{path} is an SQLite database of another application; optmem will not write into it")
    if app_id == 0 and (readonly or not create):
        why = "read-only" if readonly else "create=False"
        raise DatabaseNotFound(f"{path} is empty: no optmem database in it (opened {why}, so none is created)")
    if version > LATEST:
        raise SchemaTooNew(f"{path} has optmem schema version {version}, newer than this optmem's {LATEST}: "
                           "upgrade optmem to open it")
    return version


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    for statement in migration.statements():
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {migration.version}")


@cache  # one entry per schema version
def _expected_schema(version: int) -> dict[str, frozenset[str]]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for migration in MIGRATIONS[:version]:
            _apply(conn, migration)
        return _schema_of(conn)
    finally:
        conn.close()


def _schema_of(conn: sqlite3.Connection) -> dict[str, frozenset[str]]:
    """Each table and index by name: a table's column names, an index's empty set."""
    out = {}
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') "
                                   "AND name NOT LIKE 'sqlite_%'").fetchall():
        columns = conn.execute("SELECT name FROM pragma_table_info(?)", (name,)).fetchall() if kind == "table" else []
        out[name] = frozenset(c[0] for c in columns)
    return out


def _check_schema(conn: sqlite3.Connection, path: str, version: int) -> None:
    """Refuse at open, not at first use, a file that lacks part of its version's schema."""
    actual = _schema_of(conn)
    missing = []
    for name, columns in sorted(_expected_schema(version).items()):
        if name not in actual:
            missing.append(name)
        else:
            missing += [f"{name}.{c}" for c in sorted(columns - actual[name])]
    if missing:
        raise SchemaMismatch(f"{path} is damaged: optmem schema {version} needs {', '.join(missing)}, "
                             "which the file lacks (changed outside optmem?)")
