"""The PostgreSQL schema as numbered migrations, oldest first.

A schema whose ``optmem_schema_versions`` table holds versions 1..n has had migrations 1..n
applied. Opening applies the missing ones in one transaction, under an advisory lock, together
with their rows in that table: two instances opening at once migrate once, and a process killed
during an upgrade leaves the old version or the new one, never half. Migrations are never edited
once released: a change to the schema is a new migration.

PostgreSQL's ``text`` cannot hold NUL characters, which a turn may contain, so every column that
keeps caller text (turns, names, source text, chunks, cached reads) is ``bytea`` of its UTF-8.
"""

from __future__ import annotations

from optmem.store.sqlite_migrations import Migration

VERSIONS_TABLE = "optmem_schema_versions"

# Created (before migration 1) in a schema that holds no optmem data yet.
CREATE_VERSIONS_TABLE = f"""
CREATE TABLE {VERSIONS_TABLE} (
    version integer PRIMARY KEY,
    why text NOT NULL,
    applied timestamptz NOT NULL DEFAULT now()
)
"""

_SCHEMA_1 = """
CREATE TABLE conversations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name bytea NOT NULL UNIQUE,
    created double precision NOT NULL
);
CREATE TABLE turns (
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    seq integer NOT NULL,
    role text NOT NULL,
    text bytea,
    text_sha256 text NOT NULL,
    timestamp double precision NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE TABLE pages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    seq integer NOT NULL,
    first_turn integer NOT NULL,
    first_char integer NOT NULL,
    last_turn integer NOT NULL,
    last_char integer NOT NULL,
    last_timestamp double precision NOT NULL,
    tier text,
    pinned_tier text,
    layout text NOT NULL,
    source_text bytea,
    text_tokens integer NOT NULL,
    ledger text NOT NULL,
    image bytea NOT NULL,
    image_tier text NOT NULL,
    image_sha256 text NOT NULL,
    indexed boolean NOT NULL DEFAULT false,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX pages_in_context ON pages (conversation_id, seq) WHERE tier IS NOT NULL;
CREATE TABLE open_pages (
    conversation_id bigint PRIMARY KEY REFERENCES conversations(id),
    first_turn integer NOT NULL,
    first_char integer NOT NULL
);
CREATE TABLE embeddings (
    page_id bigint NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    chunk integer NOT NULL,
    conversation_id bigint NOT NULL,
    vector bytea NOT NULL,
    PRIMARY KEY (page_id, chunk)
);
CREATE INDEX embeddings_conv ON embeddings (conversation_id);
CREATE TABLE vector_indexes (
    conversation_id bigint PRIMARY KEY REFERENCES conversations(id),
    n_vectors integer NOT NULL,
    blob bytea NOT NULL
);
CREATE TABLE chunks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id bigint NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    conversation_id bigint NOT NULL,
    text bytea NOT NULL,
    words tsvector NOT NULL
);
CREATE INDEX chunks_conv ON chunks (conversation_id);
CREATE INDEX chunks_page ON chunks (page_id);
CREATE INDEX chunks_words ON chunks USING gin (words);
CREATE TABLE reexpand_cache (
    page_id bigint NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    tier text NOT NULL,
    engine text NOT NULL,
    text bytea NOT NULL,
    PRIMARY KEY (page_id, tier, engine)
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the first PostgreSQL schema (the SQLite schema 2 it mirrors, keyword chunks in a tsvector)", _SCHEMA_1),
    Migration(2, "turn units (SQLite migration 3): each turn's vectors and its words for keyword search", """
CREATE TABLE turn_vectors (
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    seq integer NOT NULL,
    part integer NOT NULL,
    vector bytea NOT NULL,
    PRIMARY KEY (conversation_id, seq, part)
);
CREATE TABLE turn_words (
    conversation_id bigint NOT NULL REFERENCES conversations(id),
    seq integer NOT NULL,
    words tsvector NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX turn_words_words ON turn_words USING gin (words)
"""),
)

LATEST = MIGRATIONS[-1].version

# The oldest schema the store's reads work on (a read-only store reads its schema as it is).
READABLE_FROM = 1

# Turn units (turn_vectors, turn_words) exist from this version; a read-only older schema has none.
TURN_UNITS_FROM = 2

# What each table and index of the latest schema must have, checked at every open: a schema
# damaged outside optmem is refused then, not at first use. tests/test_store_postgres.py checks
# this against what the migrations create.
EXPECTED: dict[str, frozenset[str]] = {
    VERSIONS_TABLE: frozenset({"version", "why", "applied"}),
    "conversations": frozenset({"id", "name", "created"}),
    "turns": frozenset({"conversation_id", "seq", "role", "text", "text_sha256", "timestamp"}),
    "pages": frozenset({"id", "conversation_id", "seq", "first_turn", "first_char", "last_turn", "last_char",
                        "last_timestamp", "tier", "pinned_tier", "layout", "source_text", "text_tokens", "ledger",
                        "image", "image_tier", "image_sha256", "indexed"}),
    "pages_in_context": frozenset(),
    "open_pages": frozenset({"conversation_id", "first_turn", "first_char"}),
    "embeddings": frozenset({"page_id", "chunk", "conversation_id", "vector"}),
    "embeddings_conv": frozenset(),
    "vector_indexes": frozenset({"conversation_id", "n_vectors", "blob"}),
    "chunks": frozenset({"id", "page_id", "conversation_id", "text", "words"}),
    "chunks_conv": frozenset(),
    "chunks_page": frozenset(),
    "chunks_words": frozenset(),
    "reexpand_cache": frozenset({"page_id", "tier", "engine", "text"}),
    "turn_vectors": frozenset({"conversation_id", "seq", "part", "vector"}),
    "turn_words": frozenset({"conversation_id", "seq", "words"}),
    "turn_words_words": frozenset(),
}
