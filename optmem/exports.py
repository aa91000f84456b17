"""A context as the request a provider accepts: OpenAI Chat Completions messages, Anthropic Messages.

Pure functions of a :class:`~optmem.assembler.Context` and the reader's
:class:`~optmem.profiles.Profile`. Both APIs take images only in user content, want the first
message (after the system prompt) from the user, and chat templates want user and assistant to
alternate. So memory (page images, ledgers, re-expanded text) is user content, consecutive turns of
one role are merged into one message, tool and system turns become user text prefixed with their
role (as ``format_turn`` writes them), and a context that would open with the assistant opens with a
short user message. Empty or blank texts are dropped: both APIs reject empty text blocks. A literal
``<image>`` in any text is escaped (:func:`~optmem.assembler.escape_image_placeholder`).

Page images go out as the bytes the page already has at the side the reader is sent
(``PageSegment.load_png()``). Every part is the one the assembler priced (optmem.reader).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from optmem.image_jobs import load_pngs
from optmem.profiles import Profile
from optmem.reader import (
    OPENER,
    chat_role,
    chat_shape,
    chat_turn_text,
    escape_image_placeholder,
)

if TYPE_CHECKING:
    from optmem.assembler import Context, PageSegment

Role = Literal["user", "assistant"]


class RequestLimitError(ValueError):
    """An export that would break the reader's request limits (images, bytes)."""


@dataclass(frozen=True)
class _Image:
    data: bytes
    media_type: str
    detail: str | None


_Part = str | _Image


def page_marker(s: PageSegment) -> str:
    """What a reader without eyes is told about a page it cannot see (as ``Context.to_text``)."""
    return f"[memory page {s.page}, turns {s.first_turn}-{s.last_turn}: image at {s.tier} tier]\n"


def sniff_media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    raise ValueError("page bytes are neither PNG, WebP nor JPEG")


def page_image_bytes(s: PageSegment) -> tuple[bytes, str]:
    """The page's image bytes as the reader is sent them, and their media type."""
    data = s.load_png()
    return data, sniff_media_type(data)


def _turns(ctx: Context, profile: Profile) -> list[tuple[Role, list[_Part]]]:
    """(role, parts) messages, merged so roles alternate and the first is the user's."""
    items: list[tuple[Role, _Part]] = []
    pages = [s for s in ctx.segments if s.kind == "page"] if profile.takes_images else []
    images = dict(zip((id(s) for s in pages), load_pngs(pages)))
    for s in ctx.segments:
        if s.kind == "page":
            if not profile.takes_images:
                items.append(("user", page_marker(s)))
                continue
            data = images[id(s)]
            media_type = sniff_media_type(data)
            detail = s.detail if profile.cost.detail_is_api_param else None
            items += [("user", s.label), ("user", _Image(data, media_type, detail))]
        elif s.kind in ("ledger", "expanded"):
            items.append(("user", escape_image_placeholder(s.text)))
        elif s.body.strip():  # a blank turn says nothing, whoever's it is (as optmem.reader prices it)
            items.append((chat_role(s.role), escape_image_placeholder(chat_turn_text(s.role, s.body))))
    items = [(role, p) for role, p in items if isinstance(p, _Image) or p.strip()]
    memory_first = bool(ctx.segments) and ctx.segments[0].kind != "turn"
    if chat_shape([role for role, _ in items], memory_first=memory_first)[1]:
        items.insert(0, ("user", OPENER))
    messages: list[tuple[Role, list[_Part]]] = []
    for role, part in items:
        if messages and messages[-1][0] == role:
            messages[-1][1].append(part)
        else:
            messages.append((role, [part]))
    _check_limits(profile, [p for _, parts in messages for p in parts if isinstance(p, _Image)])
    return messages


def _check_limits(profile: Profile, images: list[_Image]) -> None:
    limits = profile.limits
    if limits.max_images is not None and len(images) > limits.max_images:
        raise RequestLimitError(f"{len(images)} page images, over {profile.name}'s limit of {limits.max_images} "
                                "per request")
    if limits.max_image_bytes is not None:
        for im in images:
            if len(im.data) > limits.max_image_bytes:
                raise RequestLimitError(f"a page image of {len(im.data)} bytes, over {profile.name}'s limit of "
                                        f"{limits.max_image_bytes} bytes per image")


def _check_request_bytes(profile: Profile, request: object) -> None:
    limit = profile.limits.max_request_bytes
    if limit is not None and json_size_bound(request) > limit:
        size = len(json.dumps(request).encode("utf-8"))
        if size > limit:
            raise RequestLimitError(f"a request of {size} bytes, over {profile.name}'s limit of {limit} bytes")


# The characters json.dumps (ensure_ascii) writes as themselves: printable ASCII but " and \.
_JSON_PLAIN = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")


def json_size_bound(value: object) -> int:
    """An upper bound on ``len(json.dumps(value))``, exact for plain ASCII text and base64, in a
    walk over the request instead of writing its megabytes of images out (json.dumps was a fifth
    of to_messages' time). ``json.dumps`` escapes a character to at most 12 (a surrogate pair)."""
    if isinstance(value, str):
        if _IMAGE_TEXTS.holds(value):  # base64 text: plain ASCII, known without a scan
            return 2 + len(value)
        # deleting the plain characters leaves nothing (bytes.translate: 5x faster than isprintable)
        simple = value.isascii() and not value.encode("ascii").translate(None, _JSON_PLAIN)
        return 2 + (len(value) if simple else 12 * len(value))
    if isinstance(value, dict):
        return 2 + sum(json_size_bound(k) + 2 + json_size_bound(v) for k, v in value.items()) + 2 * max(0, len(value) - 1)
    if isinstance(value, (list, tuple)):
        return 2 + sum(json_size_bound(v) for v in value) + 2 * max(0, len(value) - 1)
    return len(json.dumps(value))


class _ImageTexts:
    """The base64 texts (data URLs for OpenAI) of the last images exported, by their bytes: a
    chat loop sends the same page images in turn after turn, and encoding them again was a tenth of
    an export. Bytes hash once per object, so a lookup of bytes kept elsewhere costs no scan."""

    def __init__(self, kept: int = 64):
        self._kept = kept
        self._texts: OrderedDict[tuple[bytes, str | None], str] = OrderedDict()
        self._values: dict[str, None] = {}
        self._lock = threading.Lock()  # exports run on the server's worker threads at once

    def text(self, data: bytes, data_url_type: str | None = None) -> str:
        """``data`` in base64, as a data URL of ``data_url_type`` when one is given."""
        key = (data, data_url_type)
        with self._lock:
            if key in self._texts:
                self._texts.move_to_end(key)
                return self._texts[key]
        text = base64.b64encode(data).decode("ascii")
        if data_url_type is not None:
            text = f"data:{data_url_type};base64,{text}"
        with self._lock:
            self._texts[key] = text
            self._values[text] = None
            while len(self._texts) > self._kept:
                self._values.pop(self._texts.popitem(last=False)[1], None)
        return text

    def holds(self, value: str) -> bool:
        return len(value) > 256 and value in self._values


_IMAGE_TEXTS = _ImageTexts()


def _messages(ctx: Context, profile: Profile, image_block) -> list[dict]:
    """Chat messages with one text part per turn or memory part (as the budget counted them) and
    ``image_block(image)`` for each page image."""
    return [{"role": role, "content": [image_block(p) if isinstance(p, _Image) else {"type": "text", "text": p}
                                       for p in parts]}
            for role, parts in _turns(ctx, profile)]


def _openai_image(p: _Image) -> dict:
    image_url = {"url": _IMAGE_TEXTS.text(p.data, p.media_type)}
    if p.detail is not None:
        image_url["detail"] = p.detail
    return {"type": "image_url", "image_url": image_url}


def _anthropic_image(p: _Image) -> dict:
    return {"type": "image", "source": {"type": "base64", "media_type": p.media_type, "data": _IMAGE_TEXTS.text(p.data)}}


def to_openai_messages(ctx: Context, profile: Profile | None = None, system: str | None = None) -> list[dict]:
    """OpenAI Chat Completions ``messages``: a text-only system message (when ``system`` is given),
    then user and assistant messages in turn; page images as data URLs in user content with the
    profile's ``detail``. ``profile``: the context's reader's unless given."""
    profile = profile or ctx.reader.profile
    messages = [{"role": "system", "content": escape_image_placeholder(system)}] if system else []
    messages += _messages(ctx, profile, _openai_image)
    _check_request_bytes(profile, messages)
    return messages


def to_anthropic(ctx: Context, profile: Profile | None = None, system: str | None = None) -> dict:
    """Anthropic Messages ``{"system": str, "messages": [...]}``: page images as base64 image blocks
    in user content. ``profile``: the context's reader's unless given."""
    profile = profile or ctx.reader.profile
    request = {"system": escape_image_placeholder(system or ""), "messages": _messages(ctx, profile, _anthropic_image)}
    _check_request_bytes(profile, request)
    return request
