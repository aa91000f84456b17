"""Schema migrations: a 0.1.0 database opens, reads and grows; upgrades are all or nothing."""

import hashlib
import io
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optmem.modes import tier_side
from optmem.store import ReadOnlyStore, SchemaTooNew, TurnPos, open_store
from optmem.store.sqlite_migrations import LATEST, MIGRATIONS

FIXTURE = Path(__file__).parent / "fixtures" / "optmem-0.1.0.db"
REPO = Path(__file__).resolve().parents[1]
TOPICS = {"alice": "the garden", "bob": "the database migration"}


def _text_0_1_0(name: str, i: int) -> str:
    """Turn i of conversation ``name`` as tests/fixtures/make_db_0_1_0.py wrote it."""
    return (f"Turn {i} about {TOPICS[name]}: the door code is 4{i:03d}-{name} and we talked about "
            f"item {i * 7} in some detail, with several sentences so that pages fill up. " * 3)


@pytest.fixture
def old_db(tmp_path):
    path = tmp_path / "optmem-0.1.0.db"
    shutil.copyfile(FIXTURE, path)
    return path


def _raw(path, sql):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _version(path) -> int:
    return _raw(path, "PRAGMA user_version")[0][0]


def _page_columns(path) -> set[str]:
    return {r[1] for r in _raw(path, "PRAGMA table_info(pages)")}


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_migrations_are_numbered_from_one():
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1)) and LATEST >= 2


def test_a_new_database_is_at_the_latest_version(tmp_path):
    store = open_store(tmp_path / "new.db")
    assert store.schema_version == LATEST
    store.close()
    assert _version(tmp_path / "new.db") == LATEST
    assert "sealed_after_turn" not in _page_columns(tmp_path / "new.db")


def test_listing_pages_reads_the_metadata_index_not_the_rows(old_db):
    # Every listed column sits after the image blob in the row: reading the rows walks each
    # image's overflow pages, the covering index does not.
    open_store(old_db).close()  # upgraded to the latest version
    from optmem.store.sqlite import _PAGE_COLUMNS

    for where in ("", " AND tier IS NOT NULL"):
        plan = _raw(old_db, f"EXPLAIN QUERY PLAN SELECT {_PAGE_COLUMNS} FROM pages WHERE conversation_id = 1{where} ORDER BY seq")
        assert "COVERING INDEX pages_meta" in plan[0][-1], plan


def test_the_fixture_is_a_version_1_database():
    assert _version(FIXTURE) == 1 and "sealed_after_turn" in _page_columns(FIXTURE)


def _check_reads_0_1_0(store):
    """Everything 0.1.0 wrote into the fixture, through the current API (what a test added
    after it is not looked at)."""
    assert store.conversation_names()[:2] == ["alice", "bob"]
    alice, bob = store.conversation_id("alice", create=False), store.conversation_id("bob", create=False)
    for name, conv in (("alice", alice), ("bob", bob)):
        turns = store.turns(conv, 1, 24)  # hash-checked
        assert [t.seq for t in turns] == list(range(1, 25))
        assert [t.text for t in turns] == [_text_0_1_0(name, i) for i in range(1, 25)]
        assert [t.role for t in turns] == ["user" if i % 2 else "assistant" for i in range(1, 25)]
        assert [t.timestamp for t in turns] == [1_700_000_000 + 60 * i for i in range(1, 25)]
    old_pages = {alice: store.pages(alice)[:1], bob: store.pages(bob)[:2]}
    assert [p.number for p in old_pages[alice]] == [1] and [p.number for p in old_pages[bob]] == [1, 2]
    assert [(p.first, p.last, p.tier) for p in old_pages[bob]] == [
        (TurnPos(1, 0), TurnPos(10, 363), "tiny"), (TurnPos(10, 363), TurnPos(20, 114), "small")]
    assert store.open_page_start(alice) == TurnPos(12, 0) and store.open_page_start(bob) == TurnPos(20, 114)
    for conv in (alice, bob):
        for page in old_pages[conv]:
            png, tier = store.page_image(conv, page.number)  # hash-checked
            image = Image.open(io.BytesIO(png))
            assert tier == page.image_tier and image.size == (tier_side(tier),) * 2
            assert store.page_layout(conv, page.number) and page.indexed
            assert "door code" in store.page_source_text(conv, page.number)
    numbers, vectors = store.embeddings(bob)
    numbers, vectors = numbers[:18], vectors[:18]
    assert numbers.tolist() == [1] * 9 + [2] * 9 and vectors.shape == (18, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert store.embedding_count(alice) == 9
    assert store.keyword_search(bob, ["4015-bob"], 3) == [2] and store.keyword_search(bob, ["4005-bob"], 3) == [1]
    assert store.keyword_search(alice, ["4015-bob"], 3) == []
    chunk = store.chunk_vectors(bob, [(2, 0)])
    assert np.array_equal(chunk[(2, 0)], vectors[9])
    page = store.page(alice, 1)
    cached = store.cached_text(alice, 1, page.image_tier, "ppocr-strips")
    assert cached is not None and "door code" in cached


def test_a_0_1_0_database_opens_reads_and_grows(old_db):
    store = open_store(old_db)
    assert store.schema_version == LATEST and not store.readonly
    _check_reads_0_1_0(store)
    bob = store.conversation_id("bob", create=False)
    # 0.1.0's persisted vector indexes named chunks by page rowid: dropped, rebuilt on next use
    assert store.vector_index(bob) is None
    assert store.add_turn(bob, "user", "a new turn after the upgrade", 1_700_010_000.0) == 25
    number = store.add_page(bob, first=TurnPos(20, 114), last=TurnPos(22, 0), last_timestamp=1_700_010_000.0,
                            tier="large", layout_json="[]", source_text="new page", text_tokens=2, ledger=["X-1"],
                            png=b"new png", image_tier="large")
    assert number == 3
    store.put_embeddings(bob, number, np.ones((1, 384), np.float32), drop_source_text=False, lexical_chunks=["zebra"])
    store.put_vector_index(bob, 19, b"index")
    carol = store.conversation_id("carol", create=True)
    store.add_turn(carol, "user", "hello", 1.0)
    store.close()
    assert _version(old_db) == LATEST and "sealed_after_turn" not in _page_columns(old_db)
    again = open_store(old_db)
    _check_reads_0_1_0(again)
    assert [p.number for p in again.pages(bob)] == [1, 2, 3] and again.keyword_search(bob, ["zebra"], 3) == [3]
    assert again.turns(bob)[-1].text == "a new turn after the upgrade" and again.vector_index(bob) == (19, b"index")
    assert again.conversation_names() == ["alice", "bob", "carol"]
    again.close()


def test_a_0_1_0_database_grows_through_optical_memory(old_db):
    from optmem import OpticalMemory

    config = {"recent_turns": 4, "reexpand": {"text_when_it_fits": False},
              "schedule": {"age_unit": "pages", "steps": [{"tier": "small", "until": 1}, {"tier": "tiny", "until": 100}]}}
    with OpticalMemory.open(old_db, "bob", config=config) as mem:
        before = [p.number for p in mem.pages() if p.sealed]
        for i in range(25, 45):
            mem.add("user" if i % 2 else "assistant", _text_0_1_0("bob", i), timestamp=1_700_000_000 + 60 * i)
        sealed = [p for p in mem.pages() if p.sealed]
        assert before == [1, 2] and [p.number for p in sealed][:2] == [1, 2] and len(sealed) > 2
        assert [t.text for t in mem.history()] == [_text_0_1_0("bob", i) for i in range(1, 45)]
        assert any(s.kind == "page" for s in mem.context().segments)


def test_a_read_only_open_reads_an_old_database_without_upgrading_it(old_db):
    before = _sha(old_db)
    store = open_store(old_db, readonly=True)
    assert store.readonly and store.schema_version == 1
    _check_reads_0_1_0(store)
    assert store.vector_index(store.conversation_id("bob", create=False)) is None  # keyed by rowid: not usable
    store.close()
    assert _sha(old_db) == before and _version(old_db) == 1


def test_a_read_only_open_refuses_a_schema_its_reads_do_not_know(old_db, monkeypatch):
    import optmem.store.sqlite as backend

    monkeypatch.setattr(backend, "READABLE_FROM", 2)  # as if migration 2 had changed what reads select
    with pytest.raises(ReadOnlyStore, match="schema 1, which this optmem reads only after upgrading it"):
        open_store(old_db, readonly=True)
    assert _version(old_db) == 1


def test_a_database_from_a_newer_optmem_is_refused(old_db):
    conn = sqlite3.connect(old_db)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(SchemaTooNew, match=f"schema version {LATEST + 1}, newer than this optmem's {LATEST}"):
            open_store(old_db, readonly=readonly)
    assert _version(old_db) == LATEST + 1


# A writer that stops inside the migration transaction, after the migration's statements and the
# version bump ran but before COMMIT, and says so: the test kills it there.
PAUSED_MIGRATION = """
import sys, time
import optmem.store.sqlite as backend
apply = backend._apply
def paused(conn, migration):
    apply(conn, migration)
    print("applied", migration.version, flush=True)
    time.sleep(60)
backend._apply = paused
backend.SQLiteStore.open(sys.argv[1])
"""


def _assert_whole_version(path):
    """The file is exactly at version 1 (0.1.0 as written) or at LATEST, and opens at both."""
    version = _version(path)
    assert version in (1, LATEST)
    old = version == 1
    assert ("sealed_after_turn" in _page_columns(path)) == old
    assert len(_raw(path, "SELECT * FROM vector_indexes")) == (2 if old else 0)
    store = open_store(path, readonly=True)
    _check_reads_0_1_0(store)
    store.close()
    return version


def test_a_writer_killed_inside_a_migration_leaves_the_old_version(old_db):
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_MIGRATION, str(old_db)], stdout=subprocess.PIPE,
                            cwd=REPO, text=True)
    try:
        assert proc.stdout.readline().split() == ["applied", "2"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert _assert_whole_version(old_db) == 1
    store = open_store(old_db)
    assert store.schema_version == LATEST
    store.close()
    assert _assert_whole_version(old_db) == LATEST


def test_a_failure_in_the_last_migration_undoes_the_earlier_ones_too(old_db, monkeypatch):
    import optmem.store.sqlite as backend

    apply = backend._apply

    def failing_last(conn, migration):
        if migration.version == LATEST:
            raise sqlite3.OperationalError("disk I/O error (injected)")
        apply(conn, migration)

    monkeypatch.setattr(backend, "_apply", failing_last)
    with pytest.raises(sqlite3.OperationalError, match="injected"):
        open_store(old_db)
    assert _assert_whole_version(old_db) == 1
    monkeypatch.setattr(backend, "_apply", apply)
    open_store(old_db).close()
    assert _assert_whole_version(old_db) == LATEST


UPGRADE = """
import sys
from optmem.store import open_store
print("ready", flush=True)
open_store(sys.argv[1]).close()
"""


def test_writers_killed_at_random_points_of_an_upgrade_never_leave_half_a_schema(tmp_path):
    rng = random.Random(12)
    for attempt in range(8):
        path = tmp_path / f"copy{attempt}.db"
        shutil.copyfile(FIXTURE, path)
        proc = subprocess.Popen([sys.executable, "-c", UPGRADE, str(path)], stdout=subprocess.PIPE, cwd=REPO)
        try:
            assert proc.stdout.readline() == b"ready\n"
            proc.wait(timeout=rng.uniform(0.0, 0.1))  # an upgrade of the fixture takes about 50 ms
        except subprocess.TimeoutExpired:
            pass
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        _assert_whole_version(path)
        store = open_store(path)
        _check_reads_0_1_0(store)
        store.close()
        assert _version(path) == LATEST


def test_concurrent_first_opens_upgrade_once(old_db):
    procs = [subprocess.Popen([sys.executable, "-c", UPGRADE, str(old_db)], stdout=subprocess.PIPE, cwd=REPO)
             for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert _assert_whole_version(old_db) == LATEST


def _version_4_with_turn_words(path: Path) -> None:
    """A file as optmem wrote it at schema 4: two conversations' turns and their words in turn_words."""
    import optmem.store.sqlite as backend

    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:4]:
        backend._apply(conn, migration)
    words = {"alice": ["garden roses", "garden shed door", "roses pruning", "kitchen tap"],
             "bob": ["garden of bob", "database migration", "garden garden"]}
    for conv, (name, texts) in enumerate(words.items(), start=1):
        conn.execute("INSERT INTO conversations VALUES (?, ?, 0)", (conv, name))
        for seq, text in enumerate(texts, start=1):
            conn.execute("INSERT INTO turns VALUES (?, ?, 'user', ?, ?, 0)", (conv, seq, text, hashlib.sha256(text.encode()).hexdigest()))
            conn.execute("INSERT INTO turn_words (words, conversation_id, seq) VALUES (?, ?, ?)", (text, conv, seq))
    conn.close()


def test_migration_5_keeps_every_turns_words_and_their_ranking(tmp_path):
    path = tmp_path / "v4.db"
    _version_4_with_turn_words(path)
    queries = [["garden"], ["roses", "door"], ["database"], ["garden", "kitchen"], ["absent"]]
    old = open_store(path, readonly=True)
    assert old.schema_version == 4
    before = {(name, tuple(q)): old.keyword_turns(old.conversation_id(name, create=False), q, 10)
              for name in ("alice", "bob") for q in queries}
    old.close()
    assert before[("alice", ("garden",))] == [1, 2] and before[("bob", ("database",))] == [2]
    store = open_store(path)
    assert store.schema_version == LATEST and _version(path) == LATEST
    after = {(name, tuple(q)): store.keyword_turns(store.conversation_id(name, create=False), q, 10)
             for name in ("alice", "bob") for q in queries}
    assert after == before
    bob = store.conversation_id("bob", create=False)
    store.delete_turn_units(bob, 1, 1)
    assert store.keyword_turns(bob, ["garden"], 10) == [3]
    assert store.keyword_turns(store.conversation_id("alice", create=False), ["garden"], 10) == [1, 2]
    store.close()
    assert "turn_words" not in {r[0] for r in _raw(path, "SELECT name FROM sqlite_master")}
