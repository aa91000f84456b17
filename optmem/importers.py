"""Histories from elsewhere, parsed into turns: ChatGPT's data export and JSONL of OpenAI messages.

Pure functions from a file to conversations; nothing here touches a database (`optmem import`
writes them). A file that cannot be read as its format is a :class:`HistoryImportError` naming the
file, the line or conversation, and what is wrong, raised before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

# Instructions to the model are not part of what was said, so they are not imported.
SKIPPED_ROLES = ("system", "developer")
ROLE_MAP = {"user": "user", "assistant": "assistant", "tool": "tool"}
TEXT_PART_TYPES = ("text", "input_text", "output_text")


class HistoryImportError(ValueError):
    """A history file that does not hold what its format promises."""


@dataclass(frozen=True)
class ImportedTurn:
    role: str
    text: str
    timestamp: float | None  # seconds since the epoch; None when the source has none


@dataclass(frozen=True)
class ImportedConversation:
    name: str
    turns: list[ImportedTurn]


def parse_history(path: str | Path, fmt: str, name: str | None = None) -> list[ImportedConversation]:
    """The conversations in ``path`` read as ``fmt`` ("chatgpt" or "openai-jsonl")."""
    path = Path(path)
    if fmt == "chatgpt":
        return parse_chatgpt(path, name)
    if fmt == "openai-jsonl":
        return [parse_openai_jsonl(path, name or path.stem)]
    raise HistoryImportError(f"unknown format {fmt!r}: expected 'chatgpt' or 'openai-jsonl'")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise HistoryImportError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None


def _timestamp(value: object, where: str) -> float | None:
    """Seconds since the epoch from a number or an ISO 8601 string (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise HistoryImportError(f"{where}: timestamp {value!r} is neither seconds nor ISO 8601") from None
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    raise HistoryImportError(f"{where}: timestamp must be a number or an ISO 8601 string, got {type(value).__name__}")


def _parts_text(parts: list, where: str) -> str:
    """The text of a message's parts: strings (ChatGPT) or {"type": "text", "text": ...} (OpenAI);
    images and other attachments carry no text and are left out."""
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in TEXT_PART_TYPES:
            if not isinstance(part.get("text"), str):
                raise HistoryImportError(f"{where}: a {part['type']} part has no text string")
            texts.append(part["text"])
        elif not isinstance(part, dict):
            raise HistoryImportError(f"{where}: a content part must be a string or an object, got {type(part).__name__}")
    return "\n".join(t for t in texts if t)


# -- JSONL of OpenAI messages -------------------------------------------------------------------

def parse_openai_jsonl(path: Path, name: str) -> ImportedConversation:
    """One conversation: a {"role", "content", optional "timestamp"} object per line."""
    turns = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            message = json.loads(line)
        except json.JSONDecodeError as e:
            raise HistoryImportError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(message, dict):
            raise HistoryImportError(f"{where}: expected a message object, got {type(message).__name__}")
        turn = _openai_turn(message, where)
        if turn is not None:
            turns.append(turn)
    return ImportedConversation(name, turns)


def _openai_turn(message: dict, where: str) -> ImportedTurn | None:
    role = message.get("role")
    if role in SKIPPED_ROLES:
        return None
    if role not in ROLE_MAP:
        raise HistoryImportError(f"{where}: role must be one of {(*ROLE_MAP, *SKIPPED_ROLES)}, got {role!r}")
    content = message.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = _parts_text(content, where)
    elif content is None:  # an assistant message that only calls tools
        text = ""
    else:
        raise HistoryImportError(f"{where}: content must be a string or a list of parts, got {type(content).__name__}")
    if not text.strip():
        return None
    return ImportedTurn(ROLE_MAP[role], text, _timestamp(message.get("timestamp"), where))


# -- ChatGPT's data export (conversations.json) -------------------------------------------------

def parse_chatgpt(path: Path, name: str | None = None) -> list[ImportedConversation]:
    """Every conversation of the export, each the thread that ends at its ``current_node`` (the
    branch the user last saw; edited and regenerated siblings are left out). ``name`` names the
    conversation when the export holds only one."""
    try:
        export = json.loads(_read(path))
    except json.JSONDecodeError as e:
        raise HistoryImportError(f"{path}: not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(export, list):
        raise HistoryImportError(f"{path}: expected a list of conversations (ChatGPT's conversations.json), "
                                 f"got {type(export).__name__}")
    if name is not None and len(export) != 1:
        raise HistoryImportError(f"{path}: --conversation names one conversation, but the export holds {len(export)}")
    conversations = []
    for index, conversation in enumerate(export, start=1):
        if not isinstance(conversation, dict):
            raise HistoryImportError(f"{path}: conversation {index}: expected an object, got {type(conversation).__name__}")
        title = conversation.get("title") or "untitled"
        ident = str(conversation.get("conversation_id") or conversation.get("id") or index)
        where = f"{path}: conversation {index} ({title!r})"
        conversations.append(ImportedConversation(name or f"{title} ({ident[:8]})", _chatgpt_thread(conversation, where)))
    return conversations


def _chatgpt_thread(conversation: dict, where: str) -> list[ImportedTurn]:
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict):
        raise HistoryImportError(f"{where}: no 'mapping' of message nodes")
    node_id = conversation.get("current_node")
    if node_id not in mapping:
        raise HistoryImportError(f"{where}: current_node {node_id!r} is not in the mapping")
    chain, seen = [], set()
    while node_id is not None:
        if node_id in seen:
            raise HistoryImportError(f"{where}: the parent links loop at node {node_id!r}")
        seen.add(node_id)
        node = mapping.get(node_id)
        if not isinstance(node, dict):
            raise HistoryImportError(f"{where}: node {node_id!r} is named as a parent but missing")
        chain.append(node)
        node_id = node.get("parent")
    turns = []
    for node in reversed(chain):
        turn = _chatgpt_turn(node.get("message"), f"{where}, node {node.get('id')!r}")
        if turn is not None:
            turns.append(turn)
    return turns


def _chatgpt_turn(message: object, where: str) -> ImportedTurn | None:
    if message is None:  # the root node
        return None
    if not isinstance(message, dict):
        raise HistoryImportError(f"{where}: message must be an object, got {type(message).__name__}")
    role = (message.get("author") or {}).get("role")
    metadata = message.get("metadata") or {}
    # Hidden messages are ChatGPT's own scaffolding; a recipient other than "all" is a call to a
    # tool (browsing, code), not something said in the conversation.
    if role in SKIPPED_ROLES or metadata.get("is_visually_hidden_from_conversation") or message.get("recipient", "all") != "all":
        return None
    if role not in ROLE_MAP:
        raise HistoryImportError(f"{where}: author role must be one of {(*ROLE_MAP, *SKIPPED_ROLES)}, got {role!r}")
    content = message.get("content") or {}
    if not isinstance(content, dict):
        raise HistoryImportError(f"{where}: content must be an object, got {type(content).__name__}")
    parts = content.get("parts")
    if parts is None:
        text = content.get("text") if isinstance(content.get("text"), str) else ""
    elif isinstance(parts, list):
        text = _parts_text(parts, where)
    else:
        raise HistoryImportError(f"{where}: content.parts must be a list, got {type(parts).__name__}")
    if not text.strip():
        return None
    return ImportedTurn(ROLE_MAP[role], text, _timestamp(message.get("create_time"), where))


def fill_timestamps(turns: list[ImportedTurn], default: float) -> list[float]:
    """A timestamp for every turn, never going back: a missing or earlier one takes the one before
    it (the first turn without one takes the first known, else ``default``)."""
    known = [t.timestamp for t in turns if t.timestamp is not None]
    last = known[0] if known else default
    out = []
    for turn in turns:
        last = max(last, turn.timestamp) if turn.timestamp is not None else last
        out.append(last)
    return out
