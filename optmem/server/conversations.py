"""The memory side of the server: conversations on a few store connections, used from worker threads.

OpticalMemory and the stores are synchronous, and one store connection runs one transaction at
a time, so memory work runs on workers: each worker is one thread with its own store connection
and the memories kept open on it, and runs its calls one at a time, in the order they came. There
is one worker per usable core (the query embedding, page drawing and PNG encoding release the
GIL, so two workers use two cores). A conversation keeps to one worker while it is remembered
(its memory, vector index and sent images stay warm there); a new one goes to the worker with the
fewest. Two workers are two writers on one database, as two instances are: each write step
(storing the client's new messages, storing the reply) runs in one store transaction, which the
store serialises against every other writer of the conversation, in this process or another one
sharing the database; the app's per-conversation lock keeps one request per conversation in
flight in this process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from optmem import workers
from optmem.assembler import Context
from optmem.config import MemoryConfig
from optmem.memory import CompactionWork, OpticalMemory, Turn
from optmem.retrieval import Embedder, IndexWork
from optmem.server.sync import History, HistoryConflict, digest, new_turns_from
from optmem.reexpand.backends import usable_cores
from optmem.store import Store, UnknownConversation, open_store

T = TypeVar("T")
log = logging.getLogger("optmem.server")

MEMORIES_KEPT = 64  # OpticalMemory objects kept open, over all workers (each holds its vector index)
UPKEEP_AFTER_CALLS = 8  # calls a worker runs in a row, with upkeep waiting, before it runs one upkeep
OFFLOAD_NICENESS = 19  # the offload thread's nice value: it gets a core only when requests leave one idle
QUERY_VECTORS_KEPT = 256  # the server's embedder reuses the vectors of texts it embedded lately (a retried request)


@dataclass(frozen=True)
class Prepared:
    context: Context
    messages: list[dict]  # the context as Chat Completions messages (drawn on the worker: it renders)
    turns: int  # stored turns once the client's new messages are in: the reply's place is the next
    timings: dict[str, float]  # ms: waiting for the worker, storing the messages, assembling, exporting


class _Open:
    """The store and the conversations' memories kept open on it."""

    def __init__(self, store: Store, config: MemoryConfig, embedder: Embedder | None, memories_kept: int):
        self.store = store
        self._kept = memories_kept
        self._config = config
        self._embedder = embedder
        self._memories: OrderedDict[str, tuple[int, OpticalMemory]] = OrderedDict()
        self._digests: dict[int, list[tuple[str, str | None]]] = {}

    def memory(self, name: str, *, create: bool) -> tuple[int, OpticalMemory]:
        conv = self.store.conversation_id(name, create=create)  # UnknownConversation when absent
        cached = self._memories.get(name)
        if cached is not None and cached[0] == conv:
            self._memories.move_to_end(name)
            return cached
        self.forget(name)  # deleted (maybe by another instance) and made again: a new id
        memory = OpticalMemory(self.store, self._config, conversation=name, create=create, embedder=self._embedder)
        self._memories[name] = (conv, memory)
        while len(self._memories) > self._kept:
            self._close(*self._memories.popitem(last=False))
        return conv, memory

    def forget(self, name: str) -> None:
        cached = self._memories.pop(name, None)
        if cached is not None:
            self._close(name, cached)

    def _close(self, name: str, cached: tuple[int, OpticalMemory]) -> None:
        self._digests.pop(cached[0], None)
        cached[1].close()

    def stored(self, conv: int) -> list[tuple[str, str | None]]:
        """(role, digest) of every stored turn: read once, then only the turns added since."""
        known = self._digests.setdefault(conv, [])
        last = self.store.last_turn(conv)
        if last < len(known):
            known.clear()
        if last > len(known):
            known.extend((t.role, None if t.text is None else digest(t.role, t.text))
                         for t in self.store.turns(conv, len(known) + 1, last))
        return known

    def close(self) -> None:
        while self._memories:
            self._close(*self._memories.popitem())
        self.store.close()


def _durations(names: tuple[str, ...], marks: list[float]) -> dict[str, float]:
    return {n: (b - a) * 1000 for n, a, b in zip(names, marks[:-1], marks[1:], strict=True)}


def _yield_cpu_to_requests() -> None:
    """Lower the calling thread's CPU priority (Linux: a thread is a task with its own nice value;
    elsewhere this would renice the whole process, so it does nothing there). Upkeep's long work
    then runs on what the request threads leave of the cores instead of halving a request's share.
    Its MiniLM runs on this thread too, not on the process's torch thread, where a request's query
    would wait behind it."""
    workers.run_torch_here()
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), OFFLOAD_NICENESS)
        except OSError as e:  # a sandbox may forbid it; upkeep still runs, at the same priority
            log.info("could not lower the offload thread's priority: %s", e)


def _log_failure(done: Future) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("background upkeep (embedding, image compaction) failed: %r", done.exception())


class _Worker:
    """One thread and the store connection only it uses. Calls run one at a time, first come first
    served. Upkeep (embedding, image compaction, tier moves: work nobody waits for) runs when no
    call waits, so a request never queues behind other conversations' upkeep, and once per
    conversation however many requests asked for it; after UPKEEP_AFTER_CALLS calls in a row one
    runs anyway, so that a busy worker still gets its pages embedded."""

    def __init__(self, open_: _Open, number: int):
        self.open = open_
        self._ready = threading.Condition()
        self._calls: deque[tuple[Callable[[_Open], object], Future]] = deque()
        self._upkeep: OrderedDict[str, Callable[[_Open], None]] = OrderedDict()
        self._busy = False
        self._calls_in_a_row = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"optmem-memory-{number}", daemon=True)
        self._thread.start()

    def call(self, work: Callable[[_Open], T]) -> T:
        done: Future = Future()
        with self._ready:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            self._calls.append((work, done))
            self._ready.notify_all()
        return done.result()

    def submit(self, key: str, work: Callable[[_Open], None]) -> bool:
        """Queue ``work`` as ``key``'s upkeep, replacing one not started yet (it does the same
        work over what is there when it runs); nobody waits for it, a failure is logged. False
        when the worker is stopping and took nothing."""
        with self._ready:
            if self._stopping:
                return False
            self._upkeep.pop(key, None)
            self._upkeep[key] = work
            self._ready.notify_all()
            return True

    def _nothing_left(self) -> bool:  # with self._ready held
        return not (self._calls or self._upkeep or self._busy)

    def is_idle(self) -> bool:
        with self._ready:
            return self._nothing_left()

    def idle(self) -> None:
        """Wait until no call or upkeep is queued or running."""
        with self._ready:
            self._ready.wait_for(self._nothing_left)

    def _next(self) -> tuple[Callable[[_Open], object], Future | None] | None:
        with self._ready:
            self._ready.wait_for(lambda: self._calls or self._upkeep or self._stopping)
            if self._upkeep and (not self._calls or self._calls_in_a_row >= UPKEEP_AFTER_CALLS):
                self._busy, self._calls_in_a_row = True, 0
                return self._upkeep.popitem(last=False)[1], None
            if self._calls:
                self._busy = True
                self._calls_in_a_row += 1
                return self._calls.popleft()
            return None  # stopping, and nothing is left

    def _run(self) -> None:
        while (job := self._next()) is not None:
            work, done = job
            try:
                if done is None:
                    work(self.open)
                elif done.set_running_or_notify_cancel():
                    done.set_result(work(self.open))
            except BaseException as e:
                if done is None:
                    log.warning("background upkeep (embedding, image compaction, tier moves) failed: %r", e)
                else:
                    done.set_exception(e)
            finally:
                with self._ready:
                    self._busy = False
                    self._ready.notify_all()

    def close(self) -> None:
        """Run what is queued (the pages sealed last still get embedded), then close the store."""
        try:
            self.idle()
            self.call(_Open.close)
        finally:
            with self._ready:
                self._stopping = True
                self._ready.notify_all()
            self._thread.join()


class Conversations:
    def __init__(self, db: str, config: MemoryConfig, *, embedder: Embedder | None = None, workers: int | None = None):
        if config.retrieval.enabled and embedder is None:
            embedder = Embedder()  # MiniLM: one model for every conversation and worker (it loads in warm_up)
            embedder.remember(QUERY_VECTORS_KEPT)
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        # An in-memory SQLite database is private to its connection: there can be only one.
        count = 1 if db == ":memory:" else workers or usable_cores()
        self.config = config
        self._embedder = embedder
        # The step that stores the turns holds the store's write lock (on SQLite one lock for every
        # conversation), so it does only what the request needs at once. Sealed pages are embedded
        # neither there nor by the request's query (MiniLM takes ~40 ms a chunk, a page several
        # chunks), and the images sent for pages it seals or moves are encoded fast (a lossless WebP
        # took 60-90 ms an image, a grey PNG of the same pixels 4-11 ms, and a seal moves older
        # pages too, so one write makes several): upkeep queued on the conversation's worker, run
        # when no request waits there, has those images re-encoded compactly and the new pages
        # embedded on the offload thread while the upstream answers. The tier moves a seal brings
        # (resampling older pages down) wait for upkeep too (tier_moves = "later"): pages fade one
        # request late, and a sealing request no longer pays for them. A page sealed by this
        # request's own messages is searchable once its vectors are stored (as a rule before the
        # next request); until then it is the newest page, in context at the first tier.
        retrieval = config.retrieval.model_copy(update={"embed_on_seal": False, "embed_on_query": False})
        memory_config = config.model_copy(update={"sent_images": "fast", "tier_moves": "later", "retrieval": retrieval})
        kept = -(-MEMORIES_KEPT // count)
        # Upkeep's long pure work runs here, off the workers: MiniLM (~40 ms a chunk, a page several
        # chunks) and the lossless WebP re-encodes (60-90 ms an image); a request would otherwise
        # wait behind it on its worker.
        self._offload = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optmem-offload",
                                           initializer=_yield_cpu_to_requests)
        self._offloaded: set[str] = set()  # conversations whose offloaded results are on their way
        self._offload_changed = threading.Condition()
        self._workers: list[_Worker] = []
        try:
            for n in range(count):
                self._workers.append(_Worker(_Open(open_store(db), memory_config, embedder, kept), n))
        except BaseException:
            self.close()
            raise
        self._homes: OrderedDict[str, int] = OrderedDict()  # conversation -> its worker, while remembered
        self._homes_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load now what the first requests would otherwise wait for: the query embedder (seconds
        for MiniLM) and the renderer's font tables (drawn once on a throwaway in-memory memory)."""
        if self.config.retrieval.enabled and self._embedder is not None:
            self._embedder.encode(["warm up"])
        throwaway = self.config.model_copy(update={"retrieval": self.config.retrieval.model_copy(update={"enabled": False}),
                                                   "budget": max(self.config.budget, 1 << 16)})  # whatever the turns cost
        with OpticalMemory.open(":memory:", config=throwaway) as memory:
            for n in range(throwaway.recent_turns + 2):
                memory.add(("user", "assistant")[n % 2], f"turn {n}: the renderer's fonts load on the first page drawn")
            memory.context(query="warm up").to_messages()

    def _on_worker(self, name: str, work: Callable[[_Open], T]) -> T:
        return self._worker(name).call(work)

    def _worker(self, name: str) -> _Worker:
        with self._homes_lock:
            home = self._homes.get(name)
            if home is None:
                counts = Counter(self._homes.values())
                home = min(range(len(self._workers)), key=lambda n: counts[n])
            self._homes[name] = home
            self._homes.move_to_end(name)
            # Forgetting a home only means the conversation may start afresh on another worker.
            while len(self._homes) > MEMORIES_KEPT:
                self._homes.popitem(last=False)
            return self._workers[home]

    def prepare(self, name: str, history: History, budget: int | None = None) -> Prepared:
        """Store the client's messages that are not stored yet (HistoryConflict if its history
        diverges from the stored one), then assemble the context for its last user message."""

        asked = time.perf_counter()

        def work(open_: _Open) -> Prepared:
            marks = [asked, time.perf_counter()]
            store = open_.store
            try:
                with store.write():
                    conv, memory = open_.memory(name, create=True)
                    start = new_turns_from(open_.stored(conv), history)
                    for message in history.turns[start:]:
                        memory.add(message.role, message.text)
                    turns = store.last_turn(conv)
            except BaseException:
                open_.forget(name)  # its in-memory layout may describe the rolled-back write
                raise
            marks.append(time.perf_counter())
            context = memory.context(query=history.query, budget=budget, system=history.system)
            marks.append(time.perf_counter())
            messages = context.to_messages()
            marks.append(time.perf_counter())
            return Prepared(context, messages, turns, _durations(("wait", "store", "context", "export"), marks))

        prepared = self._on_worker(name, work)
        self._upkeep_later(name)
        return prepared

    def store_reply(self, name: str, after: int, text: str, index: int) -> None:
        """Store the upstream's reply as turn ``after + 1``, unless a later request's history stored
        it there already; HistoryConflict (at message ``index``) when another request added other
        turns to the conversation meanwhile."""

        def work(open_: _Open) -> None:
            store = open_.store
            try:
                with store.write():
                    conv, memory = open_.memory(name, create=False)
                    if store.last_turn(conv) != after:
                        there = store.turns(conv, after + 1, after + 1)
                        if there and (there[0].role, there[0].text) == ("assistant", text):
                            return
                        raise HistoryConflict(index, "another request added turns to this conversation while the "
                                                     "upstream answered; the reply was not stored")
                    memory.add("assistant", text)
            except BaseException:
                open_.forget(name)
                raise

        self._on_worker(name, work)
        self._upkeep_later(name)

    def _upkeep_later(self, name: str) -> None:
        """Queue the conversation's upkeep on its worker, to run when no request waits there: the
        tier moves its writes left, then the compaction of the images they encoded fast and the
        embedding of what it sealed, which run on the offload thread so that the worker serves
        requests meanwhile (their results come back as upkeep too). Nobody waits for it."""

        def work(open_: _Open) -> None:
            try:
                memory = open_.memory(name, create=False)[1]
            except UnknownConversation:
                return  # deleted meanwhile
            memory.settle()
            memory.draw_open_page()  # so the request whose turns seal it stamps only their lines
            with self._offload_changed:
                if name in self._offloaded:
                    return  # its results are on their way; the upkeep that stores them looks again
            # Read outside the lock: a second offload of the conversation started meanwhile (it moved
            # workers) would only do the work twice, and storing keeps just what is still to store.
            images = memory.compaction_work()
            pending = memory.index_work()  # None: retrieval disabled
            if images.empty and (pending is None or pending.empty):
                return
            with self._offload_changed:
                self._offloaded.add(name)
            try:
                self._offload.submit(self._off_worker, name, images, pending).add_done_callback(_log_failure)
            except RuntimeError:  # shutting down: the next start does it
                self._offload_done(name)

        self._worker(name).submit(name, work)

    def _off_worker(self, name: str, images: CompactionWork, pending: IndexWork | None) -> None:
        """On the offload thread: the lossless re-encodes and MiniLM over what upkeep read, then
        their storing queued on the conversation's worker."""
        try:
            images = images.done()
            if pending is not None and not pending.empty:
                pending = pending.embedded(self._embedder)
        except BaseException:
            self._offload_done(name)
            raise

        def store(open_: _Open) -> None:
            try:
                memory = open_.memory(name, create=False)[1]
                memory.store_compacted(images)
                if pending is not None and not pending.empty:
                    memory.store_index(pending)
            except UnknownConversation:
                return  # deleted meanwhile
            finally:
                self._offload_done(name)
            self._upkeep_later(name)  # what its writes made meanwhile

        if not self._worker(name).submit(f"{name}\0results", store):
            self._offload_done(name)

    def _offload_done(self, name: str) -> None:
        with self._offload_changed:
            self._offloaded.discard(name)
            self._offload_changed.notify_all()

    def idle(self) -> None:
        """Wait until the workers and the offload thread have run everything queued."""
        while True:
            for worker in self._workers:
                worker.idle()
            with self._offload_changed:
                if self._offloaded:
                    self._offload_changed.wait_for(lambda: not self._offloaded)
                    continue
            if all(worker.is_idle() for worker in self._workers):
                return

    def history(self, name: str) -> list[Turn]:
        return self._on_worker(name, lambda open_: open_.memory(name, create=False)[1].history())

    def context(self, name: str, query: str | None, budget: int | None = None) -> tuple[Context, list[dict]]:
        """The context for ``query``, with its Chat Completions messages."""

        def work(open_: _Open) -> tuple[Context, list[dict]]:
            context = open_.memory(name, create=False)[1].context(query=query, budget=budget)
            return context, context.to_messages()

        return self._on_worker(name, work)

    def delete(self, name: str) -> None:
        def work(open_: _Open) -> None:
            conv = open_.store.conversation_id(name, create=False)
            open_.forget(name)
            open_.store.delete_conversation(conv)

        self._on_worker(name, work)
        # Another worker that still holds this conversation finds its id gone on its next use.

    def close(self) -> None:
        self._offload.shutdown(wait=True)  # what it has done is stored by the workers' last upkeep
        errors = []
        for worker in self._workers:
            try:
                worker.close()
            except Exception as e:  # close every connection, then report the first failure
                errors.append(e)
        self._workers.clear()
        if errors:
            raise errors[0]
