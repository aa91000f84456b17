"""The store contract, run against every backend (``store_factory`` in conftest.py)."""

import subprocess
import sys

import numpy as np
import pytest

from optmem.store import (
    NoTurnToPop,
    ReadOnlyStore,
    Store,
    TamperedData,
    TurnOnSealedPage,
    TurnPos,
    TurnRow,
    UnknownConversation,
    UnknownPage,
)


def _page(store, conv, png=b"\x89PNG fake", first=TurnPos(1, 0), last=TurnPos(2, 5), source="hello world", tier="large"):
    return store.add_page(conv, first=first, last=last, last_timestamp=1.0, tier=tier, layout_json='[{"box": [1]}]',
                          source_text=source, text_tokens=2, ledger=["AB-1234"], png=png, image_tier="large")


def test_a_store_implements_the_protocol(store_factory):
    assert isinstance(store_factory(), Store)


def test_turns_are_numbered_per_conversation(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    assert [store.add_turn(a, "user", f"t{i}", float(i)) for i in range(3)] == [1, 2, 3]
    assert store.add_turn(b, "user", "other", 0.0) == 1
    assert [t.text for t in store.turns(a)] == ["t0", "t1", "t2"]
    assert [t.seq for t in store.turns(a, 2)] == [2, 3] and [t.seq for t in store.turns(a, 1, 2)] == [1, 2]
    assert [t.text for t in store.turns(b)] == ["other"]
    assert store.last_turn(a) == 3 and store.last_timestamp(a) == 2.0 and store.last_timestamp(b) == 0.0
    assert store.conversation_names() == ["a", "b"]
    assert store.conversation_id("a", create=True) == a  # opening again finds the same one


def test_turns_are_read_by_ids_in_id_order_within_one_conversation(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    for i in range(700):  # more ids than one SQLite statement binds at once
        store.add_turn(a, "user", f"a{i}", float(i))
    store.add_turn(b, "user", "b0", 0.0)
    wanted = [650, 3, 3, 1, 2000, 0, 699, *range(100, 600)]
    rows = store.turns_at(a, wanted)
    assert [t.seq for t in rows] == sorted({s for s in wanted if 1 <= s <= 700})
    assert all(t.text == f"a{t.seq - 1}" for t in rows)
    assert [t.text for t in store.turns_at(b, [1, 2, 3])] == ["b0"] and store.turns_at(a, []) == []


def test_page_spans_name_each_sealed_page_and_its_turns(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    first = _page(store, a, first=TurnPos(1, 0), last=TurnPos(4, 10))
    second = _page(store, a, first=TurnPos(4, 10), last=TurnPos(9, 0))
    _page(store, b)
    assert store.page_spans(a) == [(first, 1, 4), (second, 4, 9)]
    assert store.page_spans(b) == [(1, 1, 2)]


def test_dropped_turn_texts_read_as_none(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    for i in range(4):
        store.add_turn(conv, "assistant", f"t{i}", float(i))
    store.drop_turn_texts(conv, 1, 2)
    assert [t.text for t in store.turns(conv)] == [None, None, "t2", "t3"]


def test_pop_turn_removes_the_newest_turn_of_one_conversation_only(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    for i in range(3):
        store.add_turn(a, "user", f"a{i}", float(i))
    store.add_turn(b, "user", "b0", 0.0)
    assert store.pop_turn(a) == TurnRow(3, "user", "a2", 2.0)
    assert [t.text for t in store.turns(a)] == ["a0", "a1"] and store.last_turn(a) == 2
    assert [t.text for t in store.turns(b)] == ["b0"]
    assert store.add_turn(a, "assistant", "again", 5.0) == 3  # the number is given again
    assert store.pop_turn(b).text == "b0"
    with pytest.raises(NoTurnToPop, match="'b' has no turn to pop"):
        store.pop_turn(b)
    assert isinstance(NoTurnToPop("x"), LookupError)


def test_pop_turn_refuses_a_turn_a_sealed_page_shows_and_changes_nothing(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    for i in range(3):
        store.add_turn(conv, "user", f"t{i}", float(i))
    _page(store, conv, first=TurnPos(1, 0), last=TurnPos(2, 1))  # page 1 holds turn 1 and the start of turn 2
    store.set_open_page_start(conv, TurnPos(2, 1))
    assert store.pop_turn(conv).seq == 3
    with pytest.raises(TurnOnSealedPage, match="turn 2 is on sealed page 1"):
        store.pop_turn(conv)
    assert [t.text for t in store.turns(conv)] == ["t0", "t1"] and store.open_page_start(conv) == TurnPos(2, 1)
    assert [p.number for p in store.pages(conv)] == [1]
    # Once the page is deleted, the open page's start still says turn 2 was paged.
    store.delete_page(conv, 1)
    with pytest.raises(TurnOnSealedPage, match="turn 2 was on a sealed page, deleted since"):
        store.pop_turn(conv)
    assert [t.text for t in store.turns(conv)] == ["t0", "t1"]


def test_unknown_conversation_is_a_typed_error(store_factory):
    store = store_factory()
    with pytest.raises(UnknownConversation, match="nobody"):
        store.conversation_id("nobody", create=False)


def test_deleting_a_conversation_forgets_all_of_it_and_only_it(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    for conv in (a, b):
        store.add_turn(conv, "user", "hello", 1.0)
        number = _page(store, conv)
        store.put_embeddings(conv, number, np.ones((1, 4), np.float32), drop_source_text=False,
                             lexical_chunks=["hello world"])
        store.put_vector_index(conv, 1, b"index")
        store.put_cached_text(conv, number, "large", "x", "read")
        store.set_open_page_start(conv, TurnPos(1, 3))
    store.delete_conversation(a)
    assert store.conversation_names() == ["b"]
    with pytest.raises(UnknownConversation):
        store.conversation_id("a", create=False)
    assert store.keyword_search(b, ["hello"], 5) == [1] and store.embedding_count(b) == 1
    assert [t.text for t in store.turns(b)] == ["hello"] and store.vector_index(b) == (1, b"index")
    fresh = store.conversation_id("a", create=True)
    assert (store.last_turn(fresh), store.pages(fresh), store.embedding_count(fresh)) == (0, [], 0)
    assert store.keyword_search(fresh, ["hello"], 5) == [] and store.vector_index(fresh) is None
    assert store.open_page_start(fresh) is None


def test_pages_are_numbered_per_conversation(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    assert [_page(store, a, png=f"a{i}".encode()) for i in range(3)] == [1, 2, 3]
    assert _page(store, b, png=b"b0") == 1  # numbers are per conversation, whatever the backend keys
    assert [p.number for p in store.pages(a)] == [1, 2, 3] and store.last_page_number(a) == 3
    assert store.page_image(a, 1)[0] == b"a0" and store.page_image(b, 1)[0] == b"b0"
    assert store.sealed_text_tokens(a) == 3 * 2 and store.sealed_text_tokens(b) == 2
    store.delete_page(a, 1)  # pages go oldest first; the others keep their numbers
    assert [p.number for p in store.pages(a)] == [2, 3] and store.last_page_number(a) == 3
    assert store.sealed_text_tokens(a) == 2 * 2 and store.sealed_text_tokens(store.conversation_id("c", create=True)) == 0
    assert _page(store, a) == 4
    assert store.last_page_number(store.conversation_id("c", create=True)) == 0


def test_a_page_row_keeps_what_was_sealed(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    number = _page(store, conv, first=TurnPos(3, 7), last=TurnPos(5, 11), tier="small")
    row = store.page(conv, number)
    assert (row.number, row.first, row.last, row.last_timestamp) == (1, TurnPos(3, 7), TurnPos(5, 11), 1.0)
    assert (row.tier, row.pinned_tier, row.image_tier, row.text_tokens, row.ledger, row.indexed) == (
        "small", None, "large", 2, ("AB-1234",), False)
    assert store.page_layout(conv, number) == [{"box": [1]}]
    assert store.page_source_text(conv, number) == "hello world"


def test_tiers_move_and_the_image_is_replaced_with_its_hash(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    number = _page(store, conv)
    store.set_page_tier(conv, number, "small", b"smaller png", "small")
    assert store.page_image(conv, number) == (b"smaller png", "small")
    store.set_page_tier(conv, number, None)
    assert store.page(conv, number).tier is None and store.pages(conv, in_context_only=True) == []
    assert store.page_image(conv, number)[1] == "small"  # out of context, the last image stays
    store.pin_page(conv, number, "tiny")
    assert store.page(conv, number).pinned_tier == "tiny"


def test_the_open_page_start_is_a_turn_position(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    assert store.open_page_start(conv) is None
    store.set_open_page_start(conv, TurnPos(4, 120))
    start = store.open_page_start(conv)
    assert start == TurnPos(4, 120) and (start.turn, start.char) == (4, 120)
    store.set_open_page_start(conv, None)
    assert store.open_page_start(conv) is None


def test_pages_are_invisible_across_conversations(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    number = _page(store, a)
    assert [p.number for p in store.pages(a)] == [number] and store.pages(b) == []
    for call in (lambda: store.page(b, number), lambda: store.page_image(b, number),
                 lambda: store.page_source_text(b, number), lambda: store.page_layout(b, number),
                 lambda: store.pin_page(b, number, None), lambda: store.delete_page(b, number),
                 lambda: store.put_embeddings(b, number, np.zeros((1, 4), np.float32), drop_source_text=False),
                 lambda: store.put_cached_text(b, number, "large", "x", "leak")):
        with pytest.raises(UnknownPage, match=f"no page {number} in conversation 'b'"):
            call()
    store.put_cached_text(a, number, "large", "x", "mine")
    assert store.cached_text(b, number, "large", "x") is None
    assert store.cached_text(a, number, "large", "x") == "mine"
    assert store.page(a, number).pinned_tier is None and store.embedding_count(b) == 0


def test_tampered_image_is_detected(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    number = _page(store, conv)
    store_factory.corrupt_page_image("a", number, b"\x89PNG evil")
    with pytest.raises(TamperedData, match=f"conversation 'a', page {number}: stored image"):
        store_factory().page_image(conv, number)


def test_a_failed_write_step_leaves_nothing(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    with pytest.raises(RuntimeError), store.write():
        store.add_turn(conv, "user", "half", 0.0)
        _page(store, conv)
        raise RuntimeError("killed mid-step")
    assert store.turns(conv) == [] and store.pages(conv) == []
    with store.write():  # the store is usable after a rolled-back step
        store.add_turn(conv, "user", "whole", 0.0)
    assert [t.text for t in store_factory().turns(conv)] == ["whole"]


def _two_conversations_with_chunks(store):
    """Conversation b's pages come after a's, so any internal key differs from b's page numbers."""
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    for conv, words in ((a, ("apple", "pear")), (b, ("pear", "plum", "apple pear"))):
        for i, word in enumerate(words):
            number = _page(store, conv, source=word)
            store.put_embeddings(conv, number, np.full((2, 3), 10 * conv + i, np.float32), drop_source_text=False,
                                 lexical_chunks=[f"{word} one", f"{word} two"])
    return a, b


def test_embeddings_and_keyword_chunks_name_pages_by_number(store_factory):
    store = store_factory()
    a, b = _two_conversations_with_chunks(store)
    numbers, vectors = store.embeddings(b)
    assert numbers.tolist() == [1, 1, 2, 2, 3, 3] and vectors.shape == (6, 3)
    assert vectors[:, 0].tolist() == [10 * b, 10 * b, 10 * b + 1, 10 * b + 1, 10 * b + 2, 10 * b + 2]
    assert store.embedding_count(a) == 4 and store.embedding_count(b) == 6
    numbers, vectors = store.embeddings(b, [3, 1, 9])
    assert numbers.tolist() == [1, 1, 3, 3] and vectors[:, 0].tolist() == [10 * b, 10 * b, 10 * b + 2, 10 * b + 2]
    assert store.embeddings(b, [])[0].tolist() == [] and store.embeddings(a, [3])[0].tolist() == []
    assert sorted(store.keyword_search(b, ["plum"], 5)) == [2]
    assert sorted(store.keyword_search(b, ["apple"], 5)) == [3]  # a's apple page is not b's
    assert sorted(store.keyword_search(a, ["apple"], 5)) == [1]
    assert {n for n, _ in store.keyword_chunks(b, ["pear"], 10)} == {1, 3}
    assert all(text.startswith(("pear", "apple pear")) for _, text in store.keyword_chunks(b, ["pear"], 10))
    got = store.chunk_vectors(b, [(2, 1), (9, 0), (1, 5)])
    assert list(got) == [(2, 1)] and got[(2, 1)].tolist() == [10 * b + 1] * 3
    assert store.keyword_chunks(a, [], 3) == [] and store.keyword_search(a, ['"OR* NEAR('], 3) == []
    assert [n for n, _ in store.unindexed_pages(b)] == []


def test_embeddings_round_trip_and_cascade(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    number = _page(store, conv)
    assert store.unindexed_pages(conv) == [(number, "hello world")]
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.put_embeddings(conv, number, vectors, drop_source_text=True, lexical_chunks=["hello world"])
    numbers, got = store.embeddings(conv)
    assert numbers.tolist() == [number] * 3 and np.array_equal(got, vectors)
    assert store.page_source_text(conv, number) is None and store.page(conv, number).indexed
    assert store.unindexed_pages(conv) == []
    store.put_cached_text(conv, number, "large", "x", "read")
    store.put_vector_index(conv, 3, b"index bytes")
    store.delete_page(conv, number)
    assert store.embedding_count(conv) == 0 and store.keyword_search(conv, ["hello"], 3) == []
    assert store.vector_index(conv) is None  # it held the deleted page's vectors
    _page(store, conv)
    assert store.cached_text(conv, 2, "large", "x") is None


def test_the_vector_index_is_kept_per_conversation(store_factory):
    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    store.put_vector_index(a, 7, b"blob a")
    assert store.vector_index(a) == (7, b"blob a") and store.vector_index(b) is None
    store.put_vector_index(a, 8, b"blob a2")
    assert store_factory().vector_index(a) == (8, b"blob a2")
    store.delete_vector_index(a)
    assert store.vector_index(a) is None


def test_a_read_only_store_reads_everything_and_writes_nothing(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    store.add_turn(conv, "user", "kept", 1.0)
    number = _page(store, conv)
    reader = store_factory(readonly=True)
    assert reader.readonly and not store.readonly
    assert [t.text for t in reader.turns(conv)] == ["kept"]
    assert [p.number for p in reader.pages(conv)] == [number]
    assert reader.page_image(conv, number) == (b"\x89PNG fake", "large")
    writes = (lambda: reader.add_turn(conv, "user", "no", 2.0), lambda: _page(reader, conv),
              lambda: reader.conversation_id("new", create=True), lambda: reader.delete_page(conv, number),
              lambda: reader.set_page_tier(conv, number, None), lambda: reader.put_vector_index(conv, 1, b"x"),
              lambda: reader.set_open_page_start(conv, TurnPos(1, 0)), lambda: reader.drop_turn_texts(conv, 1, 1),
              lambda: reader.pop_turn(conv), lambda: reader.delete_conversation(conv))
    for write in writes:
        with pytest.raises(ReadOnlyStore, match="read-only"):
            write()
    with pytest.raises(ReadOnlyStore), reader.write():
        pass
    assert [t.text for t in store_factory().turns(conv)] == ["kept"] and len(store.pages(conv)) == 1


WRITER = """
import sys
from optmem.store import open_store
store = open_store(sys.argv[1])
conv = store.conversation_id("shared", create=True)
for i in range(50):
    store.add_turn(conv, "user", f"{sys.argv[2]}-{i}", float(i))
"""


def test_several_processes_append_to_one_database(store_factory):
    store_factory().close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, store_factory.target, name]) for name in ("p", "q", "r")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    store = store_factory()
    turns = store.turns(store.conversation_id("shared", create=False))
    assert [t.seq for t in turns] == list(range(1, 151))
    for name in "pqr":  # each writer's turns all arrived, in its own order
        assert [t.text for t in turns if t.text.startswith(name)] == [f"{name}-{i}" for i in range(50)]


def test_turn_units_are_stored_ranked_by_keyword_and_kept_per_conversation(store_factory):
    from optmem.retrieval.keywords import index_words

    store = store_factory()
    a, b = store.conversation_id("a", create=True), store.conversation_id("b", create=True)
    texts = ["the violin lesson is on tuesday", "we bought a new kettle", "my violin teacher moved to 東京"]
    for text in texts:
        store.add_turn(a, "user", text, 0.0)
    store.add_turn(b, "user", "violin violin violin", 0.0)
    assert store.turn_units_through(a) == 0
    vectors = [(seq, part, np.full(4, seq + part, dtype=np.float32)) for seq in (1, 2, 3) for part in (0, 1)]
    with store.write():
        store.put_turn_units(a, vectors, [(seq, index_words(t)) for seq, t in enumerate(texts, 1)])
        store.put_turn_units(b, [(1, 0, np.ones(4, dtype=np.float32))], [(1, index_words("violin violin violin"))])
    assert store.turn_units_through(a) == 3 and store.turn_units_through(b) == 1
    seqs, vecs = store.turn_vectors(a)
    assert seqs.tolist() == [1, 1, 2, 2, 3, 3] and vecs[5].tolist() == [4.0] * 4
    assert sorted(store.keyword_turns(a, ["violin"], 10)) == [1, 3]  # never b's turn
    assert store.keyword_turns(a, ["東京"], 10) == [3] and store.keyword_turns(a, ['"); drop table turns; --'], 10) == []
    assert store.keyword_turns(a, ["kettle", "tuesday"], 1) in ([1], [2])
    with store.write():
        store.delete_turn_units(a, 1, 2)
    assert store.turn_vectors(a)[0].tolist() == [3, 3] and store.keyword_turns(a, ["violin"], 10) == [3]
    store.delete_conversation(b)
    assert store.turn_units_through(b) == 0 and store.keyword_turns(b, ["violin"], 10) == []


def test_popping_a_turn_forgets_its_units(store_factory):
    store = store_factory()
    a = store.conversation_id("a", create=True)
    for text in ("first violin", "second violin"):
        store.add_turn(a, "user", text, 0.0)
    with store.write():
        store.put_turn_units(a, [(1, 0, np.ones(4, dtype=np.float32)), (2, 0, np.ones(4, dtype=np.float32))],
                             [(1, "first violin"), (2, "second violin")])
    assert store.pop_turn(a).seq == 2
    assert store.turn_units_through(a) == 1 and store.keyword_turns(a, ["violin"], 10) == [1]
