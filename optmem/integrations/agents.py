"""An OpenAI Agents SDK session backed by optical memory (``pip install 'optmem[agents]'``).

``get_items`` gives the agent optmem's context as Responses input items (page images as
``input_image`` parts for readers that take images); ``add_items`` stores the run's messages,
tool calls and tool outputs as turns::

    session = OpticalSession("memory.db", "alice", {"model": "gpt-4o"})
    result = await Runner.run(agent, "What did I say about the beta?", session=session)

``pop_item`` removes the newest turn (``OpticalMemory.pop_turn``: a turn a sealed page already
shows cannot go, TurnOnSealedPage says so) and ``clear_session`` forgets the conversation
(``OpticalMemory.clear``); the session stays usable, empty.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from optmem.config import MemoryConfig
from optmem.errors import InvalidArgument
from optmem.integrations._common import (
    Image,
    Part,
    context_messages,
    require,
)
from optmem.memory import OpticalMemory, Turn
from optmem.reader import chat_role, chat_turn_text
from optmem.store import NoTurnToPop

require("agents", "agents")

from agents.memory import SessionSettings

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
# Items a model emits for itself (reasoning, compaction, ...) are not conversation and are not stored.
_TEXT_PARTS = ("input_text", "output_text", "text", "refusal")


class OpticalSession:
    """Session ``conversation`` of the memory database at ``path`` (``session_id`` is the name).

    ``system``: a system prompt the items open with, paid for inside the budget; ``budget``: the
    reader's input tokens the items may fill (default: the config's); ``query``: set it before a
    run to re-expand the pages relevant to it."""

    session_settings: SessionSettings | None = None

    def __init__(self, path: str | Path, conversation: str, config: MemoryConfig | str | Path | dict | None = None,
                 *, system: str | None = None, budget: int | None = None):
        self.memory = OpticalMemory.open(path, conversation, config)
        self.session_id = conversation
        self.system = system
        self.budget = budget
        self.query: str | None = None
        # optmem is synchronous: calls run in a worker thread, one at a time.
        self._lock = asyncio.Lock()

    async def get_items(self, limit: int | None = None) -> list[dict]:
        async with self._lock:
            messages = await asyncio.to_thread(context_messages, self.memory, self.query, self.budget, self.system)
        items = [_to_item(role, parts) for role, parts in messages]
        return items if limit is None else items[-limit:] if limit > 0 else []

    async def add_items(self, items: list[Any]) -> None:
        # Check them all first, so a bad item in the batch stores none of it.
        turns = [turn for item in items if (turn := _to_turn(item)) is not None]
        async with self._lock:
            await asyncio.to_thread(self._add, turns)

    def _add(self, turns: list[tuple[str, str]]) -> None:
        for role, text in turns:
            self.memory.add(role, text)

    async def pop_item(self) -> dict | None:
        """The newest turn, removed, as a message item the way ``get_items`` shows it (a tool
        turn as user content naming its role); None when the session is empty."""
        async with self._lock:
            try:
                turn = await asyncio.to_thread(self.memory.pop_turn)
            except NoTurnToPop:
                return None
        return _popped_item(turn)

    async def clear_session(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self.memory.clear)

    def close(self) -> None:
        self.memory.close()


def _to_item(role: str, parts: list[Part]) -> dict:
    if role != "user" or not any(isinstance(p, Image) for p in parts):
        return {"role": role, "content": "".join(p for p in parts if isinstance(p, str))}
    return {"role": "user", "content": [
        {"type": "input_image", "image_url": p.data_url, "detail": p.detail or "auto"} if isinstance(p, Image)
        else {"type": "input_text", "text": p} for p in parts]}


def _popped_item(turn: Turn) -> dict:
    # A turn no sealed page shows still has its text (only those wholly on pages lose it).
    return {"role": chat_role(turn.role), "content": chat_turn_text(turn.role, turn.text or "")}


def _to_turn(item: Any) -> tuple[str, str] | None:
    """(role, text) of an input item, or None for items that are not conversation."""
    if hasattr(item, "model_dump"):  # the SDK's pydantic items, as some callers pass them
        item = item.model_dump(exclude_none=True)
    if not isinstance(item, dict):
        raise InvalidArgument(f"session items are Responses input items (dicts), got {type(item).__name__}")
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in _ROLES:
            raise InvalidArgument(f"a message item with role {role!r}: optmem stores {sorted(_ROLES)} messages")
        return _ROLES[role], _text(item.get("content", ""))
    if kind == "function_call":
        return "tool", f"call {item.get('name')}({item.get('arguments', '')})"
    if kind == "function_call_output":
        output = item.get("output", "")
        return "tool", output if isinstance(output, str) else _text(output)
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("refusal" if part["type"] == "refusal" else "text", "")
                       for part in content if isinstance(part, dict) and part.get("type") in _TEXT_PARTS)
    raise InvalidArgument(f"item content must be a str or a list of parts, got {type(content).__name__}")
