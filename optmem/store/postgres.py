"""The PostgreSQL store: one schema of a PostgreSQL database, shared by any number of processes.

Open one with :func:`optmem.store.open_store` and a DSN (``postgresql://user@host/db``, or
``postgresql:///db?host=/run/postgresql`` for a unix socket). The tables live in the DSN's
``current_schema()`` (``public`` unless the DSN sets ``options=-csearch_path=...``), which must be
empty or hold optmem's tables: optmem never writes beside another application's tables. The
database itself must exist (``createdb``): optmem creates tables, not databases.

Writes: :meth:`PostgresStore.write` is one transaction. Inside it, the first call naming a
conversation, a read or a write, takes that conversation's transaction-level advisory lock, so
a write step reads the state it then writes on, and two processes never lose, duplicate or
reorder a turn (what SQLite's single write lock gives its store). Reads outside a write step
see each committed state as it comes.

Keyword search uses PostgreSQL's full-text search with the ``simple`` configuration (lower-cased
words, no stemming, no stop words, as SQLite's ``unicode61``), each term a phrase
(``phraseto_tsquery``), so user text never becomes query syntax. Results can differ from the
SQLite store's: ranks are ``ts_rank`` (term frequency over log length) where SQLite uses BM25,
which also weighs rare words up (IDF), and the two parsers split some strings differently (e.g.
``4015-bob`` is ``4015`` followed by ``bob`` in both, but PostgreSQL keeps e-mail addresses, URLs
and file paths whole). Ties rank by page number in both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict

from optmem.store.base import (
    DatabaseNotFound,
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
from optmem.store.postgres_migrations import (
    CREATE_VERSIONS_TABLE,
    EXPECTED,
    LATEST,
    MIGRATIONS,
    READABLE_FROM,
    TURN_UNITS_FROM,
    VERSIONS_TABLE,
)

TEXT_SEARCH_CONFIG = "simple"

# How long a write step waits for another instance's lock on its conversation (SQLiteStore's busy
# timeout), unless the DSN sets lock_timeout itself.
LOCK_TIMEOUT_S = 30.0

_PAGE_COLUMNS = ("seq, first_turn, first_char, last_turn, last_char, last_timestamp, "
                 "tier, pinned_tier, image_tier, text_tokens, ledger, indexed")


def _page(row: tuple) -> PageRow:
    (number, first_turn, first_char, last_turn, last_char, last_timestamp,
     tier, pinned_tier, image_tier, text_tokens, ledger, indexed) = row
    return PageRow(number, first_turn, first_char, last_turn, last_char, last_timestamp, tier, pinned_tier,
                   image_tier, text_tokens, tuple(json.loads(ledger)), bool(indexed))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _text(data: bytes | None) -> str | None:
    return None if data is None else bytes(data).decode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _words(text: str) -> str:
    """``text`` as PostgreSQL ``text`` for the word index, which cannot hold NUL."""
    return text.replace("\x00", " ")


def describe(dsn: str) -> str:
    """The database a DSN names, for messages: never its password."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as e:
        raise StoreError(f"not a valid PostgreSQL DSN: {e}") from None
    where = parts.get("host") or "the default socket"
    return f"PostgreSQL database {parts.get('dbname') or parts.get('user') or '(default)'!r} on {where}"


class PostgresStore(OpenedStore):
    """Open one with :func:`optmem.store.open_store` (or :meth:`open`)."""

    def __init__(self, conn: psycopg.Connection, name: str, schema: str, *, readonly_because: str | None,
                 version: int, lock_space: int):
        self._conn = conn
        self.path = name  # what messages call the database (SQLiteStore's file path)
        self.schema = schema
        self._readonly_because = readonly_because
        self._version = version
        self._lock_space = lock_space  # first key of the conversation locks: the schema's hash
        self._in_step = False
        self._locked: set[int] = set()  # conversations locked by the open write step

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, dsn: str, *, create: bool = True, readonly: bool = False) -> PostgresStore:
        """Open the optmem tables in the DSN's current schema, created there if the schema is
        empty (unless ``create=False`` or ``readonly``) and upgraded to the current version. The
        store is read-only when ``readonly`` or when the server accepts no writes (a standby)."""
        name = describe(dsn)
        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as e:
            raise _connect_error(name, e) from None
        try:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            if schema is None:
                search_path = conn.execute("SHOW search_path").fetchone()[0]
                raise DatabaseNotFound(f"{name}: no schema on search_path {search_path!r} exists; create it "
                                       "(CREATE SCHEMA) or point the DSN's search_path at one")
            name = f"{name}, schema {schema!r}"
            server_readonly = conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
            readonly_because = ("opened read-only" if readonly else
                                "the server accepts no writes (a standby, or default_transaction_read_only)"
                                if server_readonly else None)
            lock_space = conn.execute("SELECT hashtext(current_schema())").fetchone()[0]
            if conn.execute("SHOW lock_timeout").fetchone()[0] == "0":
                conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(LOCK_TIMEOUT_S * 1000)}ms",))
            if readonly_because is None:
                version = _migrate(conn, name, create=create)
            else:
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                _, version = _read_version(conn, name, create=create, readonly=True)
                if version < READABLE_FROM:
                    raise ReadOnlyStore(f"{name} has optmem schema {version}, which this optmem reads only after "
                                        f"upgrading it to {LATEST}; open it once writable ({readonly_because})")
            _check_schema(conn, name, version)
            return cls(conn, name, schema, readonly_because=readonly_because, version=version, lock_space=lock_space)
        except psycopg.Error as e:
            conn.close()
            raise _translate(name, e) from e
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[None]:
        """One atomic write step (one transaction). Nested calls join the outer step."""
        with self._transaction():
            yield

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._readonly_because is not None:
            raise ReadOnlyStore(f"{self.path} is open read-only ({self._readonly_because}): nothing can be written")
        if self._in_step:
            yield
            return
        self._in_step, self._locked = True, set()
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as e:
            raise _translate(self.path, e) from e
        finally:
            self._in_step, self._locked = False, set()

    def _sql(self, conv: int | None, query: str, params: Sequence = ()) -> psycopg.Cursor:
        """Run ``query``; inside a write step, lock conversation ``conv`` first."""
        try:
            if self._in_step and conv is not None and conv not in self._locked:
                # Two int4 keys (schema, conversation): another schema's conversations, and
                # bigint-keyed locks of other applications, never contend with these.
                self._conn.execute("SELECT pg_advisory_xact_lock(%s::int4, %s::int4)",
                                   (self._lock_space, conv % 2**31))
                self._locked.add(conv)
            return self._conn.execute(query, params)
        except psycopg.Error as e:
            raise _translate(self.path, e) from e

    def _many(self, conv: int, query: str, rows: list[tuple]) -> None:
        self._sql(conv, "SELECT 1")  # takes the lock
        try:
            with self._conn.cursor() as cur:
                cur.executemany(query, rows)
        except psycopg.Error as e:
            raise _translate(self.path, e) from e

    # -- conversations -------------------------------------------------------------------------

    def conversation_id(self, name: str, *, create: bool) -> int:
        row = self._sql(None, "SELECT id FROM conversations WHERE name = %s", (_utf8(name),)).fetchone()
        if row:
            return row[0]
        if not create:
            raise UnknownConversation(f"no conversation named {name!r} in {self.path}")
        with self._transaction():
            self._sql(None, "INSERT INTO conversations (name, created) VALUES (%s, extract(epoch FROM now())) "
                            "ON CONFLICT (name) DO NOTHING", (_utf8(name),))
            return self._sql(None, "SELECT id FROM conversations WHERE name = %s", (_utf8(name),)).fetchone()[0]

    def conversation_names(self) -> list[str]:
        return [_text(r[0]) for r in self._sql(None, "SELECT name FROM conversations ORDER BY id")]

    def delete_conversation(self, conv: int) -> None:
        with self._transaction():
            # Pages first: embeddings, keyword chunks and cached reads cascade from them.
            for table in ("pages", "vector_indexes", "open_pages", "turn_vectors", "turn_words", "turns"):
                self._sql(conv, f"DELETE FROM {table} WHERE conversation_id = %s", (conv,))
            self._sql(conv, "DELETE FROM conversations WHERE id = %s", (conv,))

    def _conversation_name(self, conv: int) -> str:
        row = self._sql(None, "SELECT name FROM conversations WHERE id = %s", (conv,)).fetchone()
        return _text(row[0]) if row else f"#{conv}"

    # -- turns ---------------------------------------------------------------------------------

    def add_turn(self, conv: int, role: str, text: str, timestamp: float) -> int:
        with self._transaction():
            seq = self.last_turn(conv) + 1  # under the conversation's lock
            data = _utf8(text)
            self._sql(conv, "INSERT INTO turns VALUES (%s, %s, %s, %s, %s, %s)",
                      (conv, seq, role, data, _sha256(data), timestamp))
            return seq

    def pop_turn(self, conv: int) -> TurnRow:
        with self._transaction():
            seq = self.last_turn(conv)  # under the conversation's lock
            if seq == 0:
                raise NoTurnToPop(f"conversation {self._conversation_name(conv)!r} has no turn to pop")
            page = self._sql(conv, "SELECT min(seq) FROM pages WHERE conversation_id = %s AND last_turn >= %s",
                             (conv, seq)).fetchone()[0]
            check_poppable(self._conversation_name(conv), seq, page, self.open_page_start(conv))
            (row,) = self.turns(conv, seq, seq)
            for table in ("turn_vectors", "turn_words", "turns"):
                self._sql(conv, f"DELETE FROM {table} WHERE conversation_id = %s AND seq = %s", (conv, seq))
            return row

    def last_turn(self, conv: int) -> int:
        return self._sql(conv, "SELECT coalesce(max(seq), 0) FROM turns WHERE conversation_id = %s", (conv,)).fetchone()[0]

    def last_timestamp(self, conv: int) -> float | None:
        return self._sql(conv, "SELECT max(timestamp) FROM turns WHERE conversation_id = %s", (conv,)).fetchone()[0]

    def turns(self, conv: int, first: int = 1, last: int | None = None) -> list[TurnRow]:
        last = self.last_turn(conv) if last is None else last
        rows = self._sql(conv, "SELECT seq, role, text, timestamp, text_sha256 FROM turns "
                               "WHERE conversation_id = %s AND seq BETWEEN %s AND %s ORDER BY seq",
                         (conv, first, last)).fetchall()
        return self._turn_rows(conv, rows)

    def turns_at(self, conv: int, seqs: Sequence[int]) -> list[TurnRow]:
        rows = self._sql(conv, "SELECT seq, role, text, timestamp, text_sha256 FROM turns "
                               "WHERE conversation_id = %s AND seq = ANY(%s) ORDER BY seq",
                         (conv, sorted({int(s) for s in seqs}))).fetchall()
        return self._turn_rows(conv, rows)

    def _turn_rows(self, conv: int, rows: list[tuple]) -> list[TurnRow]:
        out = []
        for seq, role, data, timestamp, digest in rows:
            if data is not None and _sha256(data) != digest:
                raise TamperedData(f"conversation {self._conversation_name(conv)!r}, turn {seq}: stored text does not "
                                   f"match its sha256; {self.path} was modified outside optmem")
            out.append(TurnRow(seq, role, _text(data), timestamp))
        return out

    def drop_turn_texts(self, conv: int, first: int, last: int) -> None:
        with self._transaction():
            self._sql(conv, "UPDATE turns SET text = NULL WHERE conversation_id = %s AND seq BETWEEN %s AND %s",
                      (conv, first, last))

    # -- the open page ---------------------------------------------------------------------------

    def open_page_start(self, conv: int) -> TurnPos | None:
        row = self._sql(conv, "SELECT first_turn, first_char FROM open_pages WHERE conversation_id = %s",
                        (conv,)).fetchone()
        return TurnPos(*row) if row else None

    def set_open_page_start(self, conv: int, start: TurnPos | None) -> None:
        with self._transaction():
            if start is None:
                self._sql(conv, "DELETE FROM open_pages WHERE conversation_id = %s", (conv,))
            else:
                self._sql(conv, "INSERT INTO open_pages VALUES (%s, %s, %s) ON CONFLICT (conversation_id) "
                                "DO UPDATE SET first_turn = EXCLUDED.first_turn, first_char = EXCLUDED.first_char",
                          (conv, start.turn, start.char))

    # -- sealed pages ----------------------------------------------------------------------------

    def add_page(self, conv: int, *, first: TurnPos, last: TurnPos, last_timestamp: float, tier: str | None,
                 layout_json: str, source_text: str | None, text_tokens: int, ledger: Sequence[str], png: bytes,
                 image_tier: str) -> int:
        with self._transaction():
            number = self.last_page_number(conv) + 1
            self._sql(conv,
                      "INSERT INTO pages (conversation_id, seq, first_turn, first_char, last_turn, last_char, "
                      "last_timestamp, tier, layout, source_text, text_tokens, ledger, image, image_tier, image_sha256) "
                      "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                      (conv, number, first.turn, first.char, last.turn, last.char, last_timestamp, tier, layout_json,
                       None if source_text is None else _utf8(source_text), text_tokens,
                       json.dumps(list(ledger)), bytes(png), image_tier, _sha256(png)))
            return number

    def pages(self, conv: int, *, in_context_only: bool = False) -> list[PageRow]:
        where = "conversation_id = %s" + (" AND tier IS NOT NULL" if in_context_only else "")
        return [_page(r) for r in self._sql(conv, f"SELECT {_PAGE_COLUMNS} FROM pages WHERE {where} ORDER BY seq",
                                            (conv,))]

    def page(self, conv: int, number: int) -> PageRow:
        return _page(self._page_row(conv, number, _PAGE_COLUMNS))

    def page_spans(self, conv: int) -> list[tuple[int, int, int]]:
        return [tuple(r) for r in self._sql(conv, "SELECT seq, first_turn, last_turn FROM pages WHERE "
                                                  "conversation_id = %s ORDER BY seq", (conv,)).fetchall()]

    def sealed_text_tokens(self, conv: int) -> int:
        return int(self._sql(conv, "SELECT coalesce(sum(text_tokens), 0) FROM pages WHERE conversation_id = %s",
                             (conv,)).fetchone()[0])

    def _page_row(self, conv: int, number: int, columns: str) -> tuple:
        row = self._sql(conv, f"SELECT {columns} FROM pages WHERE conversation_id = %s AND seq = %s",
                        (conv, number)).fetchone()
        if row is None:
            raise UnknownPage(f"no page {number} in conversation {self._conversation_name(conv)!r}")
        return row

    def _rowid(self, conv: int, number: int) -> int:
        return self._page_row(conv, number, "id")[0]

    def last_page_number(self, conv: int) -> int:
        """Number of the newest sealed page (pages are numbered 1, 2, 3 ... and deleted oldest first)."""
        return self._sql(conv, "SELECT coalesce(max(seq), 0) FROM pages WHERE conversation_id = %s", (conv,)).fetchone()[0]

    def page_image(self, conv: int, number: int) -> tuple[bytes, str]:
        """PNG bytes of the page at its stored tier, checked against the hash written with it."""
        png, digest, tier = self._page_row(conv, number, "image, image_sha256, image_tier")
        if _sha256(png) != digest:
            raise TamperedData(f"conversation {self._conversation_name(conv)!r}, page {number}: stored image does not "
                               f"match its sha256; {self.path} was modified outside optmem")
        return bytes(png), tier

    def page_layout(self, conv: int, number: int) -> list:
        return json.loads(self._page_row(conv, number, "layout")[0])

    def page_source_text(self, conv: int, number: int) -> str | None:
        return _text(self._page_row(conv, number, "source_text")[0])

    def set_page_tier(self, conv: int, number: int, tier: str | None, png: bytes | None = None,
                      image_tier: str | None = None) -> None:
        """Move a page to a tier; the image, when given, is replaced in the same statement."""
        with self._transaction():
            if png is None:
                self._sql(conv, "UPDATE pages SET tier = %s WHERE conversation_id = %s AND seq = %s",
                          (tier, conv, number))
            else:
                self._sql(conv, "UPDATE pages SET tier = %s, image = %s, image_tier = %s, image_sha256 = %s "
                                "WHERE conversation_id = %s AND seq = %s",
                          (tier, bytes(png), image_tier, _sha256(png), conv, number))

    def pin_page(self, conv: int, number: int, tier: str | None) -> None:
        with self._transaction():
            rowid = self._rowid(conv, number)
            self._sql(conv, "UPDATE pages SET pinned_tier = %s WHERE id = %s", (tier, rowid))

    def delete_page(self, conv: int, number: int) -> None:
        with self._transaction():
            rowid = self._rowid(conv, number)
            self._sql(conv, "DELETE FROM pages WHERE id = %s", (rowid,))  # embeddings, chunks and cache cascade
            self._sql(conv, "DELETE FROM vector_indexes WHERE conversation_id = %s", (conv,))

    # -- embeddings and the vector index ---------------------------------------------------------

    def unindexed_pages(self, conv: int) -> list[tuple[int, str | None]]:
        return [(r[0], _text(r[1])) for r in self._sql(
            conv, "SELECT seq, source_text FROM pages WHERE conversation_id = %s AND NOT indexed ORDER BY seq", (conv,))]

    def put_embeddings(self, conv: int, number: int, vectors: np.ndarray, *, drop_source_text: bool,
                       lexical_chunks: Sequence[str] = ()) -> None:
        """Store a page's chunk vectors (float32 bytes, as the SQLite store keeps them) and, when
        given, its chunk texts for keyword search."""
        with self._transaction():
            rowid = self._rowid(conv, number)
            vector_rows = [(rowid, i, conv, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                           for i, v in enumerate(vectors)]
            if vector_rows:
                self._many(conv, "INSERT INTO embeddings VALUES (%s, %s, %s, %s) ON CONFLICT (page_id, chunk) "
                                 "DO UPDATE SET conversation_id = EXCLUDED.conversation_id, vector = EXCLUDED.vector",
                           vector_rows)
            if lexical_chunks:
                self._many(conv, "INSERT INTO chunks (page_id, conversation_id, text, words) "
                                 f"VALUES (%s, %s, %s, to_tsvector('{TEXT_SEARCH_CONFIG}', %s))",
                           [(rowid, conv, _utf8(chunk), _words(chunk)) for chunk in lexical_chunks])
            self._sql(conv, "UPDATE pages SET indexed = true" + (", source_text = NULL" if drop_source_text else "")
                      + " WHERE id = %s", (rowid,))

    def keyword_search(self, conv: int, terms: Sequence[str], limit: int) -> list[int]:
        """Page numbers ranked by their best chunk for any of ``terms`` (see the module's note on
        how ranks differ from SQLite's BM25)."""
        return list(dict.fromkeys(number for number, _ in self.keyword_chunks(conv, terms, 4 * limit)))[:limit]

    def keyword_chunks(self, conv: int, terms: Sequence[str], limit: int) -> list[tuple[int, str]]:
        """(page number, chunk text) of the best chunks for any of ``terms``, best first. Each
        term is a bound parameter read as plain words by ``phraseto_tsquery``: user text never
        becomes query syntax."""
        if not terms:
            return []
        query = " || ".join([f"phraseto_tsquery('{TEXT_SEARCH_CONFIG}', %s)"] * len(terms))
        rows = self._sql(
            conv,
            f"SELECT p.seq, c.text FROM chunks c JOIN pages p ON p.id = c.page_id, (SELECT {query}) AS q(query) "
            "WHERE c.words @@ q.query AND c.conversation_id = %s AND p.conversation_id = %s "
            "ORDER BY ts_rank(c.words, q.query, 1) DESC, p.seq, c.id LIMIT %s",
            (*[_words(t) for t in terms], conv, conv, limit))
        return [(r[0], _text(r[1])) for r in rows]

    def chunk_vectors(self, conv: int, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
        """The stored vectors of the given (page number, chunk) pairs that exist."""
        out = {}
        for number, chunk in keys:
            row = self._sql(conv, "SELECT e.vector FROM embeddings e JOIN pages p ON p.id = e.page_id "
                                  "WHERE p.conversation_id = %s AND p.seq = %s AND e.chunk = %s",
                            (conv, number, chunk)).fetchone()
            if row is not None:
                out[(number, chunk)] = np.frombuffer(bytes(row[0]), dtype=np.float32)
        return out

    def embeddings(self, conv: int, pages: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(page numbers, vectors) of every chunk of the conversation (or of ``pages``), by page then chunk."""
        only = "" if pages is None else " AND p.seq = ANY(%s)"
        rows = self._sql(conv, "SELECT p.seq, e.vector FROM embeddings e JOIN pages p ON p.id = e.page_id "
                               f"WHERE e.conversation_id = %s AND p.conversation_id = %s{only} ORDER BY p.seq, e.chunk",
                         (conv, conv) if pages is None else (conv, conv, [int(n) for n in pages])).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        numbers = np.array([r[0] for r in rows], dtype=np.int64)
        return numbers, np.stack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in rows])

    def turn_units_through(self, conv: int) -> int:
        if self._version < TURN_UNITS_FROM:
            return 0
        return self._sql(conv, "SELECT coalesce(max(seq), 0) FROM turn_vectors WHERE conversation_id = %s",
                         (conv,)).fetchone()[0]

    def put_turn_units(self, conv: int, vectors: Sequence[tuple[int, int, np.ndarray]],
                       words: Sequence[tuple[int, str]]) -> None:
        """Store (seq, part, vector) rows and each turn's words for keyword search."""
        with self._transaction():
            if vectors:
                self._many(conv, "INSERT INTO turn_vectors VALUES (%s, %s, %s, %s) ON CONFLICT (conversation_id, seq, part) "
                                 "DO UPDATE SET vector = EXCLUDED.vector",
                           [(conv, seq, part, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                            for seq, part, v in vectors])
            if words:
                self._many(conv, "INSERT INTO turn_words VALUES (%s, %s, to_tsvector"
                                 f"('{TEXT_SEARCH_CONFIG}', %s)) ON CONFLICT (conversation_id, seq) "
                                 "DO UPDATE SET words = EXCLUDED.words",
                           [(conv, seq, _words(text)) for seq, text in words])

    def turn_vectors(self, conv: int) -> tuple[np.ndarray, np.ndarray]:
        if self._version < TURN_UNITS_FROM:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        rows = self._sql(conv, "SELECT seq, vector FROM turn_vectors WHERE conversation_id = %s ORDER BY seq, part",
                         (conv,)).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return (np.array([r[0] for r in rows], dtype=np.int64),
                np.stack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in rows]))

    def keyword_turns(self, conv: int, terms: Sequence[str], limit: int) -> list[int]:
        """Turn ids ranked by ``ts_rank`` for any of ``terms`` (bound parameters read as plain
        words: user text never becomes query syntax)."""
        if not terms or self._version < TURN_UNITS_FROM:
            return []
        query = " || ".join([f"phraseto_tsquery('{TEXT_SEARCH_CONFIG}', %s)"] * len(terms))
        rows = self._sql(conv, f"SELECT w.seq FROM turn_words w, (SELECT {query}) AS q(query) "
                               "WHERE w.words @@ q.query AND w.conversation_id = %s "
                               "ORDER BY ts_rank(w.words, q.query, 1) DESC, w.seq LIMIT %s",
                         (*[_words(t) for t in terms], conv, limit))
        return [r[0] for r in rows]

    def delete_turn_units(self, conv: int, first: int, last: int) -> None:
        with self._transaction():
            for table in ("turn_vectors", "turn_words"):
                self._sql(conv, f"DELETE FROM {table} WHERE conversation_id = %s AND seq BETWEEN %s AND %s",
                          (conv, first, last))

    def embedding_count(self, conv: int) -> int:
        return self._sql(conv, "SELECT count(*) FROM embeddings WHERE conversation_id = %s", (conv,)).fetchone()[0]

    def vector_index(self, conv: int) -> tuple[int, bytes] | None:
        row = self._sql(conv, "SELECT n_vectors, blob FROM vector_indexes WHERE conversation_id = %s",
                        (conv,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def put_vector_index(self, conv: int, n_vectors: int, blob: bytes) -> None:
        with self._transaction():
            self._sql(conv, "INSERT INTO vector_indexes VALUES (%s, %s, %s) ON CONFLICT (conversation_id) "
                            "DO UPDATE SET n_vectors = EXCLUDED.n_vectors, blob = EXCLUDED.blob",
                      (conv, n_vectors, bytes(blob)))

    def delete_vector_index(self, conv: int) -> None:
        with self._transaction():
            self._sql(conv, "DELETE FROM vector_indexes WHERE conversation_id = %s", (conv,))

    # -- re-expansion cache ----------------------------------------------------------------------

    def cached_text(self, conv: int, number: int, tier: str, engine: str) -> str | None:
        row = self._sql(conv, "SELECT c.text FROM reexpand_cache c JOIN pages p ON p.id = c.page_id "
                              "WHERE p.conversation_id = %s AND p.seq = %s AND c.tier = %s AND c.engine = %s",
                        (conv, number, tier, engine)).fetchone()
        return _text(row[0]) if row else None

    def put_cached_text(self, conv: int, number: int, tier: str, engine: str, text: str) -> None:
        with self._transaction():
            rowid = self._rowid(conv, number)
            self._sql(conv, "INSERT INTO reexpand_cache VALUES (%s, %s, %s, %s) ON CONFLICT (page_id, tier, engine) "
                            "DO UPDATE SET text = EXCLUDED.text", (rowid, tier, engine, _utf8(text)))


# -- errors ------------------------------------------------------------------------------------


def _translate(name: str, e: psycopg.Error) -> Exception:
    if isinstance(e, errors.ReadOnlySqlTransaction):
        return ReadOnlyStore(f"{name}: PostgreSQL refuses to write: {e}")
    if isinstance(e, (errors.DiskFull, errors.OutOfMemory)):
        return StoreFull(f"{name}: the server's disk is full; the write step was rolled back whole "
                         f"(PostgreSQL says: {e})")
    if isinstance(e, errors.LockNotAvailable):
        return StoreError(f"{name}: another writer held the lock longer than lock_timeout; the write step was "
                          f"rolled back whole (PostgreSQL says: {e})")
    if isinstance(e, errors.InsufficientPrivilege):
        return StorePermissionError(f"{name}: permission denied: {e}")
    return e


def _connect_error(name: str, e: psycopg.Error) -> StoreError:
    """A typed error for a failed connection. libpq reports these as text without an SQLSTATE,
    so the server's message is matched (PostgreSQL's English messages; another lc_messages
    gives the general StoreError, with the same text)."""
    message = str(e)
    if "database" in message and "does not exist" in message:
        return DatabaseNotFound(f"{name}: no such database (optmem creates tables, not databases: "
                                f"create it with createdb): {message}")
    if any(s in message for s in ("permission denied", "authentication failed", "no pg_hba.conf entry")) or (
            "role" in message and "does not exist" in message):
        return StorePermissionError(f"{name}: the server refuses the connection: {message}")
    return StoreError(f"{name}: cannot connect: {message}")


# -- opening helpers ---------------------------------------------------------------------------


def _read_version(conn: psycopg.Connection, name: str, *, create: bool, readonly: bool) -> tuple[bool, int]:
    """(whether the versions table exists, the schema's optmem version), or a typed refusal."""
    tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    if VERSIONS_TABLE not in tables:
        if tables:
            raise NotAnOptmemDatabase(f"{name} holds tables of another application ({', '.join(sorted(tables)[:5])}); "
                                      "optmem will not write beside them: give it a schema of its own "
                                      "(options=-csearch_path=NAME in the DSN)")
        if readonly or not create:
            why = "read-only" if readonly else "create=False"
            raise DatabaseNotFound(f"{name} is empty: no optmem database in it (opened {why}, so none is created)")
        return False, 0
    version = conn.execute(f"SELECT coalesce(max(version), 0) FROM {VERSIONS_TABLE}").fetchone()[0]
    if version > LATEST:
        raise SchemaTooNew(f"{name} has optmem schema version {version}, newer than this optmem's {LATEST}: "
                           "upgrade optmem to open it")
    return True, version


def _migrate(conn: psycopg.Connection, name: str, *, create: bool) -> int:
    """Bring the schema to LATEST in one transaction, under an advisory lock that makes a second
    instance opening at the same time wait, then find the work done."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('optmem schema migrations ' || current_schema(), 0))")
        exists, version = _read_version(conn, name, create=create, readonly=False)
        if not exists:
            conn.execute(CREATE_VERSIONS_TABLE)
        for migration in MIGRATIONS[version:]:
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute(f"INSERT INTO {VERSIONS_TABLE} (version, why) VALUES (%s, %s)",
                         (migration.version, migration.why))
            version = migration.version
    return version


def schema_of(conn: psycopg.Connection) -> dict[str, frozenset[str]]:
    """Each table and index of the current schema by name: a table's columns, an index's empty set
    (the indexes behind primary keys and unique constraints left out)."""
    out: dict[str, frozenset[str]] = {}
    columns = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = current_schema()").fetchall()
    for table in {t for t, _ in columns}:
        out[table] = frozenset(c for t, c in columns if t == table)
    for (index,) in conn.execute(
            "SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = current_schema() AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.connamespace = "
            "(SELECT oid FROM pg_namespace WHERE nspname = current_schema()))"):
        out[index] = frozenset()
    return out


def _check_schema(conn: psycopg.Connection, name: str, version: int) -> None:
    """Refuse at open, not at first use, a schema that lacks part of what optmem needs."""
    if version != LATEST:
        return  # only the latest schema is described; an older one is read as it is (read-only)
    actual = schema_of(conn)
    missing = []
    for table, columns in sorted(EXPECTED.items()):
        if table not in actual:
            missing.append(table)
        else:
            missing += [f"{table}.{c}" for c in sorted(columns - actual[table])]
    if missing:
        raise SchemaMismatch(f"{name} is damaged: optmem schema {version} needs {', '.join(missing)}, "
                             "which the database lacks (changed outside optmem?)")
