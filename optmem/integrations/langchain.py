"""LangChain chat history backed by optical memory (``pip install 'optmem[langchain]'``).

``messages`` is the context optmem assembles within its budget, not the raw history: recent turns
verbatim, older pages as images (for readers that take images) or as one marker line each (the
``text`` profile), re-expanded pages for ``query``. It works under ``RunnableWithMessageHistory``::

    histories = {}
    def history(session_id):
        if session_id not in histories:
            histories[session_id] = OpticalChatMessageHistory("memory.db", session_id, {"model": "gpt-4o"})
        return histories[session_id]
    chain = RunnableWithMessageHistory(prompt | model, history, input_messages_key="question",
                                       history_messages_key="history")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from optmem.config import MemoryConfig
from optmem.errors import InvalidArgument
from optmem.integrations._common import (
    Image,
    Part,
    context_messages,
    require,
)
from optmem.memory import OpticalMemory

require("langchain_core", "langchain")

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

# LangChain message type -> optmem role.
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class OpticalChatMessageHistory(BaseChatMessageHistory):
    """Conversation ``conversation`` of the memory database at ``path`` (created when missing).

    ``system``: a system prompt that ``messages`` opens with, paid for inside the budget;
    ``budget``: the reader's input tokens ``messages`` may fill (default: the config's);
    ``query``: set it before a call to re-expand the pages relevant to it."""

    def __init__(self, path: str | Path, conversation: str, config: MemoryConfig | str | Path | dict | None = None,
                 *, system: str | None = None, budget: int | None = None):
        self.memory = OpticalMemory.open(path, conversation, config)
        self.system = system
        self.budget = budget
        self.query: str | None = None

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return [_to_langchain(role, parts) for role, parts in
                context_messages(self.memory, self.query, self.budget, self.system)]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        # Check them all first, so a bad message in the batch stores none of it.
        turns = [(_role(m), str(m.text)) for m in messages]
        for role, text in turns:
            self.memory.add(role, text)

    def clear(self) -> None:
        """Forget this conversation's memory whole (``OpticalMemory.clear``); it stays usable, empty."""
        self.memory.clear()

    def close(self) -> None:
        self.memory.close()


def _role(message: BaseMessage) -> str:
    if not isinstance(message, BaseMessage):
        raise InvalidArgument(f"add_messages takes LangChain messages, got {type(message).__name__}")
    try:
        return _ROLES[message.type]
    except KeyError:
        raise InvalidArgument(f"a {type(message).__name__} (type {message.type!r}) has no optmem role; "
                              f"optmem stores {sorted(_ROLES)} messages") from None


def _to_langchain(role: str, parts: list[Part]) -> BaseMessage:
    if role == "system":
        return SystemMessage(content="".join(parts))  # type: ignore[arg-type]
    if role == "assistant":
        return AIMessage(content="".join(parts))  # type: ignore[arg-type]
    if not any(isinstance(p, Image) for p in parts):
        return HumanMessage(content="".join(parts))  # type: ignore[arg-type]
    # LangChain's standard content blocks: every chat model integration translates them.
    return HumanMessage(content=[{"type": "image", "base64": p.b64, "mime_type": p.media_type}
                                 if isinstance(p, Image) else {"type": "text", "text": p} for p in parts])
