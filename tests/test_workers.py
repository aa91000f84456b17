"""The process's one torch thread: every caller's MiniLM work runs on the same thread."""

import threading
from concurrent.futures import ThreadPoolExecutor

from optmem import workers


def test_every_caller_runs_on_the_one_torch_thread_and_a_nested_call_does_not_wait():
    ran_on = []

    def work():
        ran_on.append(threading.get_ident())
        # Nested: already on the torch thread, so it runs at once (a submit would deadlock).
        return workers.on_torch_thread(lambda: threading.get_ident())

    nested = [workers.on_torch_thread(work)]
    with ThreadPoolExecutor(3) as pool:
        nested += list(pool.map(lambda _: workers.on_torch_thread(work), range(6)))
    assert len(set(ran_on)) == 1 and ran_on[0] != threading.get_ident()
    assert set(nested) == set(ran_on)


def test_the_embedder_encodes_on_the_torch_thread(monkeypatch):
    from optmem.retrieval.embedder import Embedder

    seen = []
    monkeypatch.setattr(Embedder, "_encode_here", lambda self, texts, out: seen.append(threading.current_thread().name))
    Embedder().encode(["a", "b"])
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda t: Embedder().encode([t]), ["c", "d"]))
    assert len(seen) == 3 and all(name.startswith("optmem-torch") for name in seen)


def test_a_thread_that_runs_torch_itself_is_not_queued_on_the_torch_thread():
    def background():
        workers.run_torch_here()
        return workers.on_torch_thread(lambda: threading.current_thread().name)

    with ThreadPoolExecutor(1, thread_name_prefix="offload") as pool:
        assert pool.submit(background).result().startswith("offload")
    # Other threads still go to the torch thread.
    assert workers.on_torch_thread(lambda: threading.current_thread().name).startswith("optmem-torch")
