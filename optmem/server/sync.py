"""Matching the history a client sends against the turns stored for its conversation.

Clients send the whole history with every request, as they would to any provider. The leading
system (or developer) messages are the system prompt, not turns; every other message is a turn
at its position. Stored turns must be a prefix of the client's turns, compared by role and by a
hash of the text; what follows them is new. Anything else (an edited or a dropped message) is a
:class:`HistoryConflict` naming the first message that differs: the server never rewrites
stored memory to agree with a client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM_ROLES = ("system", "developer")
TURN_ROLES = ("user", "assistant", "system", "tool")


class BadMessages(ValueError):
    """``messages`` is not a list of chat messages optmem can store."""


class HistoryConflict(Exception):
    """The client's history diverges from the stored one at message ``index`` (of its ``messages``)."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"message {index}: {reason}")
        self.index = index


@dataclass(frozen=True)
class Message:
    role: str
    text: str


@dataclass(frozen=True)
class History:
    system: str | None  # the leading system messages, joined
    turns: tuple[Message, ...]
    offset: int  # index in ``messages`` of the first turn

    @property
    def query(self) -> str | None:
        """The last user message: what the context is assembled for."""
        return next((m.text for m in reversed(self.turns) if m.role == "user"), None)


def _text(content: object, index: int) -> str:
    if content is None:
        return ""  # an assistant message that only calls tools
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadMessages(f"messages[{index}].content: only text parts can be kept in memory, got {kind!r}")
            parts.append(part["text"])
        return "\n".join(parts)
    raise BadMessages(f"messages[{index}].content must be a string or a list of text parts, got {type(content).__name__}")


def parse_history(messages: object) -> History:
    if not isinstance(messages, list) or not messages:
        raise BadMessages("messages must be a non-empty list")
    system_parts: list[str] = []
    turns: list[Message] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadMessages(f"messages[{i}] must be an object, got {type(message).__name__}")
        role = message.get("role")
        text = _text(message.get("content"), i)
        if not turns and role in SYSTEM_ROLES:
            system_parts.append(text)
        elif role in TURN_ROLES:
            turns.append(Message(role, text))
        else:
            raise BadMessages(f"messages[{i}].role must be one of {TURN_ROLES + ('developer',)}, got {role!r}")
    if not turns:
        raise BadMessages("messages holds only system messages: there is nothing to answer")
    return History("\n\n".join(system_parts) if system_parts else None, tuple(turns), len(system_parts))


def digest(role: str, text: str) -> str:
    return hashlib.sha256(f"{role}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def new_turns_from(stored: Sequence[tuple[str, str | None]], history: History) -> int:
    """Index in ``history.turns`` of the first turn not stored yet. ``stored`` is (role, digest)
    of each stored turn in order; a digest is None where an optical archive dropped the text
    (then only the role can be checked)."""
    for i, (role, stored_digest) in enumerate(stored):
        at = history.offset + i
        if i >= len(history.turns):
            raise HistoryConflict(at, f"the history ends here, but the conversation has {len(stored)} stored turns "
                                      "(a truncated history is never applied)")
        message = history.turns[i]
        if message.role != role:
            raise HistoryConflict(at, f"role {message.role!r} differs from the stored turn's {role!r}")
        if stored_digest is not None and digest(message.role, message.text) != stored_digest:
            raise HistoryConflict(at, "the text differs from the stored turn (an edited history is never applied)")
    return len(stored)
