"""A LlamaIndex memory block backed by optical memory (``pip install 'optmem[llamaindex]'``).

``llama_index.core.memory.Memory`` keeps recent messages in its own short-term queue and flushes
the oldest into its memory blocks; this block stores what is flushed as optmem turns and gives
back optmem's context: text blocks for the turns, ledgers and re-expanded pages, and one image
block per memory page when the reader takes images (the ``text`` profile gets plain text)::

    block = OpticalMemoryBlock.open("memory.db", "alice", {"model": "gpt-4o"})
    memory = Memory.from_defaults(session_id="alice", memory_blocks=[block])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from optmem.config import MemoryConfig
from optmem.errors import InvalidArgument
from optmem.integrations._common import Image, context_parts, joined_text, require
from optmem.memory import OpticalMemory

require("llama_index.core", "llamaindex")

from llama_index.core.base.llms.types import (
    ChatMessage,
    ContentBlock,
    ImageBlock,
    TextBlock,
)
from llama_index.core.memory import BaseMemoryBlock

# LlamaIndex message role -> optmem role.
_ROLES = {"user": "user", "assistant": "assistant", "chatbot": "assistant", "model": "assistant",
          "system": "system", "developer": "system", "tool": "tool", "function": "tool"}


class OpticalMemoryBlock(BaseMemoryBlock[str | list[ContentBlock]]):
    """Long-term memory of one optmem conversation. ``budget``: the reader's input tokens the
    block may fill (default: the config's). The newest user message is the query that re-expands
    relevant pages."""

    name: str = "optical_memory"
    description: str | None = "Older conversation, kept by optmem as page images that blur with age"
    memory: OpticalMemory = Field(exclude=True)
    budget: int | None = None

    @classmethod
    def open(cls, path: str | Path, conversation: str, config: MemoryConfig | str | Path | dict | None = None,
             **fields: Any) -> OpticalMemoryBlock:
        return cls(memory=OpticalMemory.open(path, conversation, config), **fields)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str | list[ContentBlock]:
        query = next((m.content for m in reversed(messages or []) if m.role.value == "user" and m.content), None)
        parts = context_parts(self.memory, query, self.budget)
        if not self.memory.reader.profile.takes_images:
            return joined_text(parts)
        # Images as data URLs: LlamaIndex's memory template carries url images, not raw bytes.
        return [ImageBlock(url=p.data_url, image_mimetype=p.media_type) if isinstance(p, Image) else TextBlock(text=p)
                for p in parts]

    async def _aput(self, messages: list[ChatMessage]) -> None:
        turns = [(_role(m), m.content or "") for m in messages]
        for role, text in turns:
            self.memory.add(role, text)

    def close(self) -> None:
        self.memory.close()


def _role(message: ChatMessage) -> str:
    try:
        return _ROLES[message.role.value]
    except KeyError:
        raise InvalidArgument(f"a {message.role.value!r} message has no optmem role; optmem stores "
                              f"{sorted(_ROLES)} messages") from None
