"""What only the PostgreSQL store has: its migrations and schema checks, opening by DSN, text
PostgreSQL's ``text`` cannot hold, full-text search, and writers in several processes.

The shared contract runs against it through ``store_factory`` (tests/test_store*.py); these run
when ``OPTMEM_TEST_POSTGRES_DSN`` is set, and must under CI (see conftest.py).
"""

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PostgresFactory, postgres_dsn, with_search_path

from optmem.store import (
    DatabaseNotFound,
    NotAnOptmemDatabase,
    ReadOnlyStore,
    SchemaMismatch,
    SchemaTooNew,
    StoreError,
    TurnPos,
    open_store,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg():
    factory = PostgresFactory(postgres_dsn())
    yield factory
    factory.close_all()


def _tables(pg) -> set[str]:
    return {r[0] for r in pg.raw("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}


def _page(store, conv, source="hello world"):
    return store.add_page(conv, first=TurnPos(1, 0), last=TurnPos(1, 5), last_timestamp=1.0, tier="large",
                          layout_json="[]", source_text=source, text_tokens=2, ledger=[], png=b"png", image_tier="large")


# -- migrations and the schema check ------------------------------------------------------------


def test_a_new_schema_is_at_the_latest_version_and_is_what_the_open_check_expects(pg):
    from optmem.store.postgres import schema_of
    from optmem.store.postgres_migrations import EXPECTED, LATEST, MIGRATIONS

    store = pg()
    assert store.schema_version == LATEST and not store.readonly
    assert pg.raw("SELECT version FROM optmem_schema_versions ORDER BY version") == [(m.version,) for m in MIGRATIONS]
    assert schema_of(store._conn) == EXPECTED  # the check at open describes exactly what migrating made
    store.close()
    assert pg().schema_version == LATEST  # reopening applies nothing twice
    assert len(pg.raw("SELECT * FROM optmem_schema_versions")) == LATEST


def _start_together(procs) -> None:
    """Let processes that printed "ready" (their imports done) go on at the same moment."""
    for p in procs:
        assert p.stdout.readline() == b"ready\n", p.stderr.read().decode()
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.close()


OPEN = """
import sys
from optmem.store import open_store
print("ready", flush=True)
sys.stdin.readline()  # all start migrating together
open_store(sys.argv[1]).close()
"""


def test_instances_opening_a_new_schema_at_once_migrate_it_once(pg):
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, pg.target], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO) for _ in range(3)]
    _start_together(procs)
    outcomes = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert [rc for rc, _ in outcomes] == [0, 0, 0], outcomes
    from optmem.store.postgres_migrations import LATEST

    assert pg.raw("SELECT version FROM optmem_schema_versions ORDER BY version") == [(v,) for v in range(1, LATEST + 1)]


def test_a_schema_of_another_application_is_refused_untouched(pg):
    pg.raw("CREATE TABLE customers (id integer)")
    for readonly in (False, True):
        with pytest.raises(NotAnOptmemDatabase, match="tables of another application \\(customers\\)"):
            pg(readonly=readonly)
    assert _tables(pg) == {"customers"}


def test_create_false_and_read_only_never_create_tables(pg):
    for kwargs, why in (({"create": False}, "create=False"), ({"readonly": True}, "read-only")):
        with pytest.raises(DatabaseNotFound, match=f"is empty: no optmem database in it \\(opened {why}"):
            pg(**kwargs)
    assert _tables(pg) == set()
    pg().close()
    assert pg(create=False).conversation_names() == []


def test_a_schema_from_a_newer_optmem_is_refused(pg):
    from optmem.store.postgres_migrations import LATEST

    pg().close()
    pg.raw("INSERT INTO optmem_schema_versions (version, why) VALUES (%s, 'from the future')", (LATEST + 1,))
    for readonly in (False, True):
        with pytest.raises(SchemaTooNew, match=f"schema version {LATEST + 1}, newer than this optmem's {LATEST}"):
            pg(readonly=readonly)


@pytest.mark.parametrize("damage, missing", [
    ("DROP TABLE reexpand_cache", "reexpand_cache"),
    ("ALTER TABLE turns DROP COLUMN text_sha256", "turns.text_sha256"),
    ("DROP INDEX chunks_words", "chunks_words"),
])
def test_a_damaged_schema_is_refused_at_open(pg, damage, missing):
    pg().close()
    pg.raw(damage)
    for readonly in (False, True):
        with pytest.raises(SchemaMismatch, match=f"needs {missing}\\b.*which the database lacks"):
            pg(readonly=readonly)


# -- opening by DSN ------------------------------------------------------------------------------


def test_a_missing_database_or_schema_is_named_and_nothing_is_created():
    dsn = postgres_dsn()
    base, _, query = dsn.partition("?")
    missing_db = base.rsplit("/", 1)[0] + "/optmem_no_such_db" + ("?" + query if query else "")
    with pytest.raises(DatabaseNotFound, match="'optmem_no_such_db'.*no such database.*createdb"):
        open_store(missing_db)
    with pytest.raises(DatabaseNotFound, match="no schema on search_path 'optmem_no_such_schema' exists"):
        open_store(with_search_path(dsn, "optmem_no_such_schema"))


def test_connection_errors_never_show_the_password():
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as error:
        open_store("postgresql://optmem:hunter2@/optmem?host=/nonexistent/socket/dir")
    assert "cannot connect" in str(error.value) and "hunter2" not in str(error.value)


def test_both_dsn_schemes_open_the_same_store(pg):
    store = pg()
    store.add_turn(store.conversation_id("a", create=True), "user", "hi", 1.0)
    assert pg.target.startswith("postgresql://")
    other = open_store("postgres://" + pg.target.removeprefix("postgresql://"))
    assert [t.text for t in other.turns(other.conversation_id("a", create=False))] == ["hi"]
    other.close()


def test_a_server_that_accepts_no_writes_opens_read_only(pg):
    writer = pg()
    conv = writer.conversation_id("a", create=True)
    writer.add_turn(conv, "user", "kept", 1.0)
    reader = open_store(with_search_path(postgres_dsn(), pg.schema, "default_transaction_read_only=on"))  # not asked: the server says so
    assert reader.readonly and [t.text for t in reader.turns(conv)] == ["kept"]
    with pytest.raises(ReadOnlyStore, match="the server accepts no writes"):
        reader.add_turn(conv, "user", "no", 2.0)
    reader.close()


def test_a_read_only_store_s_session_refuses_writes_itself(pg):
    pg().close()
    reader = pg(readonly=True)
    import psycopg

    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader._conn.execute("INSERT INTO conversations (name, created) VALUES ('x', 0)")


# -- what PostgreSQL's text cannot hold, and full-text search -------------------------------------


def test_nul_and_any_unicode_round_trip(pg):
    store = pg()
    name = "naïve\x00名前 🙂"
    conv = store.conversation_id(name, create=True)
    texts = ["with a \x00 NUL", "ünïcödé 名前 🙂", ""]
    for i, text in enumerate(texts):
        store.add_turn(conv, "user", text, float(i))
    number = _page(store, conv, source="source \x00 text")
    store.put_embeddings(conv, number, np.ones((1, 2), np.float32), drop_source_text=False,
                         lexical_chunks=["zebra\x00crossing here"])
    store.put_cached_text(conv, number, "large", "ocr", "read \x00 back")
    again = pg()
    assert again.conversation_names() == [name] and again.conversation_id(name, create=False) == conv
    assert [t.text for t in again.turns(conv)] == texts
    assert again.page_source_text(conv, number) == "source \x00 text"
    assert again.keyword_chunks(conv, ["crossing"], 3) == [(number, "zebra\x00crossing here")]
    assert again.cached_text(conv, number, "large", "ocr") == "read \x00 back"


def _indexed(store, conv, chunks_per_page):
    for chunks in chunks_per_page:
        number = _page(store, conv)
        store.put_embeddings(conv, number, np.zeros((len(chunks), 2), np.float32), drop_source_text=False,
                             lexical_chunks=chunks)


def test_keyword_search_ranks_by_frequency_and_ties_by_page_number(pg):
    store = pg()
    conv = store.conversation_id("a", create=True)
    _indexed(store, conv, [["kiwi once among other words"], ["kiwi kiwi kiwi among other words"],
                           ["kiwi once among other words"], ["no fruit here"]])
    assert store.keyword_search(conv, ["kiwi"], 5) == [2, 1, 3]
    assert store.keyword_search(conv, ["fruit", "nothing"], 5) == [4]  # any of the terms
    assert store.keyword_search(conv, ["KIWI"], 1) == [2]  # case-folded
    assert store.keyword_search(conv, ["here no"], 5) == []  # a term is a phrase: its words in order


@pytest.mark.parametrize("term", ["kiwi & !fruit", "kiwi | fruit", "ki:*", "!kiwi", "'", "\\", "(kiwi", "<->",
                                  '"OR* NEAR(', "kiwi <-> once", "%s", "'; DROP TABLE chunks; --", "\x00"])
def test_query_syntax_in_a_term_is_read_as_plain_words(pg, term):
    store = pg()
    conv = store.conversation_id("a", create=True)
    _indexed(store, conv, [["kiwi once"], ["fruit fruit"]])
    got = store.keyword_search(conv, [term], 5)
    # plain words: "kiwi & !fruit" is the phrase "kiwi fruit", which no chunk has; no prefix match for "ki:*"
    expected = {"kiwi | fruit": [], "kiwi <-> once": [1], "!kiwi": [1], "(kiwi": [1]}.get(term, [])
    assert got == expected
    assert store.keyword_search(conv, ["fruit"], 5) == [2] and "chunks" in _tables(pg)


# -- several writers ---------------------------------------------------------------------------------


STEP_WRITER = """
import sys
from optmem.store import TurnPos, open_store
store = open_store(sys.argv[1])
conv = store.conversation_id("shared", create=True)
print("ready", flush=True)
sys.stdin.readline()
for i in range(40):
    with store.write():  # what a step reads is what it writes on: no other writer runs in between
        before = store.last_turn(conv)
        seq = store.add_turn(conv, "user", f"{sys.argv[2]}-{i}", float(i))
        assert seq == before + 1, (before, seq)
        store.set_open_page_start(conv, TurnPos(seq, 0))
        assert store.open_page_start(conv) == TurnPos(seq, 0) and store.last_turn(conv) == seq
"""


def test_write_steps_of_two_processes_on_one_conversation_never_interleave(pg):
    pg().close()
    procs = [subprocess.Popen([sys.executable, "-c", STEP_WRITER, pg.target, name], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("p", "q")]
    _start_together(procs)
    outcomes = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    store = pg()
    conv = store.conversation_id("shared", create=False)
    turns = store.turns(conv)
    assert [t.seq for t in turns] == list(range(1, 81))
    for name in "pq":
        assert [t.text for t in turns if t.text.startswith(name)] == [f"{name}-{i}" for i in range(40)]
    assert store.open_page_start(conv) == TurnPos(80, 0)


def test_a_writer_waits_for_the_conversation_s_lock_no_longer_than_lock_timeout(pg):
    holder = pg()
    conv = holder.conversation_id("a", create=True)
    other = holder.conversation_id("b", create=True)
    waiter = open_store(with_search_path(postgres_dsn(), pg.schema, "lock_timeout=200ms"))
    with holder.write():
        holder.add_turn(conv, "user", "first", 1.0)
        with pytest.raises(StoreError, match="held the lock longer than lock_timeout; the write step was rolled back"):
            waiter.add_turn(conv, "user", "blocked", 2.0)
        assert waiter.add_turn(other, "user", "another conversation is not blocked", 2.0) == 1
    assert waiter.add_turn(conv, "user", "second", 3.0) == 2
    assert [t.text for t in holder.turns(conv)] == ["first", "second"]
    waiter.close()


MEMORY_WRITER = """
import sys
from optmem import OpticalMemory
config = {"recent_turns": 2, "archive": "verbatim", "retrieval": {"enabled": False},
          "render": {"page_px": 512, "font_px": 12}}
with OpticalMemory.open(sys.argv[1], "shared", config) as mem:
    print("ready", flush=True)
    sys.stdin.readline()  # both start adding together
    for i in range(12):
        mem.add("user", f"{sys.argv[2]}-{i} " + "words to fill pages " * 40, timestamp=1_700_000_000 + i)
"""


def test_two_processes_adding_to_one_memory_lose_duplicate_and_reorder_nothing(pg):
    pg().close()
    procs = [subprocess.Popen([sys.executable, "-c", MEMORY_WRITER, pg.target, name], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("p", "q")]
    _start_together(procs)
    outcomes = [(p.wait(timeout=300), p.stderr.read().decode()) for p in procs]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    from optmem import OpticalMemory

    with OpticalMemory.open(pg.target, "shared", {"recent_turns": 2, "retrieval": {"enabled": False}},
                            readonly=True) as mem:
        history = mem.history()
        assert [t.id for t in history] == list(range(1, 25))
        pages = [p for p in mem.pages() if p.sealed]
    for name in "pq":  # the verbatim archive keeps every text
        assert [t.text.split()[0] for t in history if t.text.startswith(name)] == [f"{name}-{i}" for i in range(12)]
    # the sealed pages tile the conversation: each starts where the one before ended (or at the
    # next turn, when that one ended with its turn)
    lengths = {t.id: len(t.text) for t in history}

    def following(end: TurnPos) -> set[TurnPos]:
        return {end, TurnPos(end.turn + 1, 0)} if end.char == lengths[end.turn] else {end}

    spans = [(TurnPos(p.first_turn, p.first_char), TurnPos(p.last_turn, p.last_char)) for p in pages]
    assert pages and [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert spans[0][0] == TurnPos(1, 0)
    assert all(b[0] in following(a[1]) for a, b in itertools.pairwise(spans)), spans
