"""The memory side of the server: conversations on one store connection, used from worker threads.

OpticalMemory and the stores are synchronous, and the page renderer's font tables load lazily
and are not safe to load from two threads at once, so memory work in one process runs one call
at a time, under one lock (for more throughput, run more instances on one PostgreSQL). Each
write step (storing the client's new messages, storing the reply) runs in one store transaction,
which the store serialises against every other writer of the conversation, in this process or
another one sharing the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from optmem.assembler import Context
from optmem.config import MemoryConfig
from optmem.memory import OpticalMemory, Turn
from optmem.retrieval import Embedder
from optmem.server.sync import History, HistoryConflict, digest, new_turns_from
from optmem.store import Store, open_store

MEMORIES_KEPT = 64  # OpticalMemory objects kept open (each holds its vector index)


@dataclass(frozen=True)
class Prepared:
    context: Context
    messages: list[dict]  # the context as Chat Completions messages (drawn under the lock: it renders)
    turns: int  # stored turns once the client's new messages are in: the reply's place is the next


class _Open:
    """The store and the conversations' memories kept open on it."""

    def __init__(self, store: Store, config: MemoryConfig, embedder: Embedder | None):
        self.store = store
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
        while len(self._memories) > MEMORIES_KEPT:
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


class Conversations:
    def __init__(self, db: str, config: MemoryConfig, *, embedder: Embedder | None = None):
        if config.retrieval.enabled and embedder is None:
            from optmem.retrieval import default_embedder

            embedder = default_embedder()  # one model for every conversation (it loads on first use)
        self.config = config
        self._open = _Open(open_store(db), config, embedder)
        self._lock = threading.Lock()

    def prepare(self, name: str, history: History, budget: int | None = None) -> Prepared:
        """Store the client's messages that are not stored yet (HistoryConflict if its history
        diverges from the stored one), then assemble the context for its last user message."""
        with self._lock:
            open_, store = self._open, self._open.store
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
            context = memory.context(query=history.query, budget=budget, system=history.system)
            return Prepared(context, context.to_messages(), turns)

    def store_reply(self, name: str, after: int, text: str, index: int) -> None:
        """Store the upstream's reply as turn ``after + 1``; HistoryConflict (at message ``index``)
        when another request added turns to the conversation meanwhile."""
        with self._lock:
            open_, store = self._open, self._open.store
            try:
                with store.write():
                    conv, memory = open_.memory(name, create=False)
                    if store.last_turn(conv) != after:
                        raise HistoryConflict(index, "another request added turns to this conversation while the "
                                                     "upstream answered; the reply was not stored")
                    memory.add("assistant", text)
            except BaseException:
                open_.forget(name)
                raise

    def history(self, name: str) -> list[Turn]:
        with self._lock:
            return self._open.memory(name, create=False)[1].history()

    def context(self, name: str, query: str | None, budget: int | None = None) -> tuple[Context, list[dict]]:
        """The context for ``query``, with its Chat Completions messages."""
        with self._lock:
            context = self._open.memory(name, create=False)[1].context(query=query, budget=budget)
            return context, context.to_messages()

    def delete(self, name: str) -> None:
        with self._lock:
            conv = self._open.store.conversation_id(name, create=False)
            self._open.forget(name)
            self._open.store.delete_conversation(conv)

    def close(self) -> None:
        with self._lock:
            self._open.close()
