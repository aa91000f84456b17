"""The SQLite schema as numbered migrations, oldest first.

A database at ``PRAGMA user_version`` n has had migrations 1..n applied. Opening a database applies
the missing ones in order, each in its own transaction together with its version bump, so a
process killed during an upgrade leaves the file at the old version or the new one, never half.
Migrations are never edited once released: a change to the schema is a new migration.
"""

from __future__ import annotations

from dataclasses import dataclass

APPLICATION_ID = 0x4F50544D  # "OPTM" in the SQLite header: tells our files from foreign ones


@dataclass(frozen=True)
class Migration:
    version: int
    why: str
    sql: str  # statements separated by ";" (none of them contains one)

    def statements(self) -> list[str]:
        return [s for s in self.sql.split(";") if s.strip()]


# The schema optmem 0.1.0 created, verbatim: a 0.1.0 file is a database at version 1.
_SCHEMA_0_1_0 = f"""
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
PRAGMA application_id = {APPLICATION_ID}
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the optmem 0.1.0 schema", _SCHEMA_0_1_0),
    Migration(
        2,
        "pages.sealed_after_turn was written, never read; pages are now known by their number, and the "
        "vector indexes 0.1.0 persisted named chunks by page rowid: they are dropped and rebuilt from the "
        "stored embeddings on next use",
        """
        ALTER TABLE pages DROP COLUMN sealed_after_turn;
        DELETE FROM vector_indexes
        """,
    ),
    Migration(
        3,
        "turn units: each turn's vectors (one per part of about chunk_chars) and its words for keyword "
        "search, so a text reader is given the turns a query needs rather than whole pages' worth",
        """
        CREATE TABLE turn_vectors (
            conversation_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            part INTEGER NOT NULL,
            vector BLOB NOT NULL,
            PRIMARY KEY (conversation_id, seq, part)
        ) WITHOUT ROWID;
        CREATE VIRTUAL TABLE turn_words USING fts5(
            words, conversation_id UNINDEXED, seq UNINDEXED, tokenize = 'unicode61'
        )
        """,
    ),
    Migration(
        4,
        "a covering index of the pages' metadata: every column a page listing reads sits after the image "
        "blob and the layout in the row, so listing pages walked each page's overflow chain (8 ms for "
        "92 pages, 0.3 ms with the index); it also serves the in-context listing",
        """
        CREATE INDEX pages_meta ON pages (conversation_id, seq, first_turn, first_char, last_turn, last_char,
                                          last_timestamp, tier, pinned_tier, image_tier, text_tokens, ledger,
                                          indexed);
        DROP INDEX pages_in_context
        """,
    ),
    Migration(
        5,
        "turn words keyed by rowid = conversation id * 2^32 + turn id, with no other column: a keyword "
        "search then keeps to one conversation by a rowid range that FTS5 walks its index by, instead of "
        "reading each match's conversation_id and seq from the table (10k turns: p95 16 ms, now 10; the "
        "ranking is the same, bm25 counting only the words column either way)",
        """
        CREATE VIRTUAL TABLE turn_keywords USING fts5(words, tokenize = 'unicode61');
        INSERT INTO turn_keywords (rowid, words) SELECT conversation_id * 4294967296 + seq, words FROM turn_words;
        DROP TABLE turn_words
        """,
    ),
)

LATEST = MIGRATIONS[-1].version

# The oldest schema the store's reads work on: a read-only store cannot upgrade its file, so it
# reads it as it is. Raise this when a migration changes what reads select.
READABLE_FROM = 1

# Vector indexes written before this version name chunks by page rowid, not by page number.
VECTOR_INDEX_BY_NUMBER_FROM = 2

# Turn units (turn_vectors, turn_words) exist from this version; a read-only older file has none.
TURN_UNITS_FROM = 3

# turn_words became turn_keywords (rowid = conversation id * 2^32 + turn id) at this version.
TURN_KEYWORDS_FROM = 5
TURN_ROWID_SHIFT = 32
