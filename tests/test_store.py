import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from optmem.store import NotAnOptmemDatabase, Store, TamperedData, UnknownConversation, UnknownPage


def _page(store, conv, png=b"\x89PNG fake", first=(1, 0), last=(2, 5)):
    return store.add_page(conv, first=first, last=last, sealed_after_turn=10, last_timestamp=1.0, tier="large",
                          layout_json="[]", source_text="hello world", text_tokens=2, ledger=["AB-1234"],
                          png=png, image_tier="large")


def test_turns_are_numbered_per_conversation(tmp_path):
    store = Store.open(tmp_path / "m.db")
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    assert [store.add_turn(a, "user", f"t{i}", float(i)) for i in range(3)] == [1, 2, 3]
    assert store.add_turn(b, "user", "other", 0.0) == 1
    assert [t.text for t in store.turns(a)] == ["t0", "t1", "t2"]
    assert [t.text for t in store.turns(b)] == ["other"]


def test_unknown_conversation_is_a_typed_error(tmp_path):
    store = Store.open(tmp_path / "m.db")
    with pytest.raises(UnknownConversation, match="nobody"):
        store.conversation_id("nobody", create=False)


def test_pages_are_invisible_across_conversations(tmp_path):
    store = Store.open(tmp_path / "m.db")
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    pid = _page(store, a)
    assert [p.id for p in store.pages(a)] == [pid] and store.pages(b) == []
    for call in (lambda: store.page(b, pid), lambda: store.page_image(b, pid), lambda: store.page_source_text(b, pid),
                 lambda: store.put_cached_text(b, pid, "large", "x", "leak")):
        with pytest.raises(UnknownPage):
            call()
    store.put_cached_text(a, pid, "large", "x", "mine")
    assert store.cached_text(b, pid, "large", "x") is None
    assert store.cached_text(a, pid, "large", "x") == "mine"


def test_tampered_image_is_detected(tmp_path):
    path = tmp_path / "m.db"
    store = Store.open(path)
    conv = store.conversation_id("a", create=True)
    pid = _page(store, conv)
    store.close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE pages SET image = ? WHERE id = ?", (b"\x89PNG evil", pid))
    raw.commit()
    raw.close()
    with pytest.raises(TamperedData, match=f"page {pid}"):
        Store.open(path).page_image(conv, pid)


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(NotAnOptmemDatabase, match="not an optmem database"):
        Store.open(junk)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAnOptmemDatabase, match="another application"):
        Store.open(foreign)
    assert sqlite3.connect(foreign).execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 1  # untouched
    with pytest.raises(NotAnOptmemDatabase, match="directory"):
        Store.open(tmp_path)


def test_a_failed_write_step_leaves_nothing(tmp_path):
    store = Store.open(tmp_path / "m.db")
    conv = store.conversation_id("a", create=True)
    with pytest.raises(RuntimeError):
        with store.write():
            store.add_turn(conv, "user", "half", 0.0)
            _page(store, conv)
            raise RuntimeError("killed mid-step")
    assert store.turns(conv) == [] and store.pages(conv) == []


def test_embeddings_round_trip_and_cascade(tmp_path):
    store = Store.open(tmp_path / "m.db")
    conv = store.conversation_id("a", create=True)
    pid = _page(store, conv)
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.put_embeddings(conv, pid, vectors, drop_source_text=True)
    ids, got = store.embeddings(conv)
    assert ids.tolist() == [pid] * 3 and np.array_equal(got, vectors)
    assert store.page_source_text(conv, pid) is None and store.page(conv, pid).indexed
    store.delete_page(conv, pid)
    assert store.embedding_count(conv) == 0


WRITER = """
import sys
from optmem.store import Store
store = Store.open(sys.argv[1])
conv = store.conversation_id("shared", create=True)
for i in range(50):
    store.add_turn(conv, "user", f"{sys.argv[2]}-{i}", float(i))
"""


def test_several_processes_append_to_one_database(tmp_path):
    path = str(tmp_path / "m.db")
    Store.open(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, name]) for name in ("p", "q", "r")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    store = Store.open(path)
    turns = store.turns(store.conversation_id("shared", create=False))
    assert [t.seq for t in turns] == list(range(1, 151))
    for name in "pqr":  # each writer's turns all arrived, in its own order
        assert [t.text for t in turns if t.text.startswith(name)] == [f"{name}-{i}" for i in range(50)]
