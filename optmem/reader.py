"""The reader of a context, as the assembler prices it: a profile plus the request form it reads.

A DeepSeek-OCR decoder (``request = "decoder"``) reads ``[BOS]`` then each segment: a page as its
image slots, each text segment tokenised on its own. An API reader (``"chat"``) reads chat
messages: memory as user content (a label and the image for each page, ledgers and re-expanded
text as text parts), then the recent turns, merged so roles alternate, opened by a short user
message when memory or an assistant turn would come first. Every part of that request is counted
here the way the export writes it, so ``Context.positions`` is the request's input tokens: exact
where the profile's rules are exact, an upper bound where they are bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from optmem.profiles import BoundedText, Profile, Rung, load_profile
from optmem.profiles.tokenizers import CountsByDigest
from optmem.tokens import IMAGE_PLACEHOLDER
from renderers import RenderConfig, Tier, blank_edge

OPENER = "Earlier conversation, oldest first:"
LONG_COUNTS_KEPT = 65536  # token counts of texts past SHORT_TEXT chars, by digest (a few MB at most)
SHORT_TEXT = 64  # labels and headings: counted and kept by their text (a chat turn's line is longer)
ESCAPED_IMAGE_PLACEHOLDER = "<\u200bimage>"


def escape_image_placeholder(text: str) -> str:
    """``<image>`` → ``<ZWSP image>``: reads the same, can no longer be matched as the placeholder
    by a server that expands it into image slots."""
    return text.replace(IMAGE_PLACEHOLDER, ESCAPED_IMAGE_PLACEHOLDER)


def format_turn(role: str, text: str) -> str:
    """A turn as the decoder reads it (and as plain text shows it)."""
    return f"{role}: {text}\n"


def chat_role(role: str) -> str:
    return role if role in ("user", "assistant") else "user"


def chat_turn_text(role: str, body: str) -> str:
    """A turn as a chat message part: the body; a tool or system turn says whose it is."""
    return body if role in ("user", "assistant") else f"{role}: {body}"


def chat_shape(roles: Sequence[str], *, memory_first: bool) -> tuple[int, bool]:
    """(messages, whether an opener is added) for parts with these chat roles, in order."""
    opener = bool(roles) and (memory_first or roles[0] == "assistant")
    runs, previous = (1, "user") if opener else (0, None)
    for role in roles:
        if role != previous:
            runs, previous = runs + 1, role
    return runs, opener


@dataclass(frozen=True)
class SentImage:
    """The square image a reader is sent for a page at a tier: ``side`` px, made from the page's
    view at that tier by cutting ``crop`` px of blank margin from every edge, or (crop 0) by
    resizing it to ``side`` when the sides differ."""

    side: int
    crop: int = 0


def plan_sent_image(profile: Profile, rung: Rung, view_side: int, max_crop: int) -> SentImage:
    """The least changed image the reader prices as ``rung``. The tier view itself when the
    profile prices it the same (the reader resizes it itself: OpenAI scales to 768, vLLM's
    DeepSeek-OCR pads to 1024, Qwen rounds 512 to 504): no resampled grey levels to encode, and
    never an upscale; else the view with at most ``max_crop`` px of blank margin cut from each edge,
    as far as priced the same (Qwen's 28-px sides: 1024 -> 1008); else the view resized to the rung."""
    tokens = profile.rung_tokens(rung)

    def priced_as_rung(side: int) -> bool:
        try:
            return profile.image_tokens(side, side, rung.detail) == tokens
        except ValueError:  # a side the rule has no price for (DeepSeek's native modes)
            return False

    if view_side == rung.side or priced_as_rung(view_side):
        return SentImage(view_side)
    for crop in range(min(max_crop, (view_side - rung.side) // 2), 0, -1):
        if priced_as_rung(view_side - 2 * crop):
            return SentImage(view_side - 2 * crop, crop)
    return SentImage(rung.side)


class Reader:
    def __init__(self, profile: Profile | str, render: RenderConfig | None = None):
        """``render``: how the pages were drawn (their blank margin bounds a crop); the default config's."""
        self.profile = load_profile(profile)
        self.decoder = self.profile.request == "decoder"
        self._count = lru_cache(maxsize=4096)(self.profile.count_text)
        # Long texts (pages read back, runs of turns) come back whenever a query ranks their page
        # again: their counts are kept by digest, so the cache holds no text.
        self._long_count = CountsByDigest(self.profile.count_text, LONG_COUNTS_KEPT)
        self._render = render or RenderConfig()
        self._sent: dict[str, SentImage | None] = {}
        self._image_tokens: dict[str, int | None] = {}

    def count(self, text: str) -> int:
        # Labels and headings repeat from context to context, in thousands. Turns come back whenever
        # a query ranks them (a conversation's every turn, in time), as do ledgers and pages read back.
        return self._count(text) if len(text) <= SHORT_TEXT else self._long_count(text)

    @property
    def exact(self) -> bool:
        return self.profile.exact

    def rung(self, tier: str) -> Rung | None:
        """The image of a page at ``tier`` this reader is sent: the rung named like the tier, else
        the largest rung no larger than the tier's page, else the smallest; None for a text reader."""
        ladder = self.profile.ladder
        if not ladder:
            return None
        named = self.profile.rung(tier)
        if named is not None:
            return named
        side = Tier(tier).side
        fitting = [r for r in ladder if r.side <= side]
        return max(fitting, key=lambda r: r.side) if fitting else min(ladder, key=lambda r: r.side)

    def sent_image(self, tier: str) -> SentImage | None:
        """What this reader is sent for a page at ``tier`` (plan_sent_image); None for a text reader."""
        if tier not in self._sent:
            rung, side = self.rung(tier), Tier(tier).side
            margin = blank_edge(self._render.margin_px, self._render.page_px, side)
            self._sent[tier] = None if rung is None else plan_sent_image(self.profile, rung, side, margin)
        return self._sent[tier]

    def view_sides(self) -> frozenset[int]:
        """The sides of the page views that what this reader is sent is made from, over every tier
        (a crop cuts its margin from the view at side + 2 crop); none for a text reader."""
        sent = (self.sent_image(t.value) for t in Tier)
        return frozenset(s.side + 2 * s.crop for s in sent if s is not None)

    def image_tokens(self, tier: str) -> int | None:
        if tier not in self._image_tokens:  # asked for every page of every context
            rung = self.rung(tier)
            self._image_tokens[tier] = None if rung is None else self.profile.rung_tokens(rung)
        return self._image_tokens[tier]

    @property
    def counts_from_deepseek(self) -> bool:
        """Whether a page's stored DeepSeek token count gives this reader's count (page_text_tokens)
        without the text."""
        text = self.profile.text
        return (text.base if isinstance(text, BoundedText) else text.name) == "deepseek"

    def page_text_tokens(self, deepseek_tokens: int) -> int:
        """What a page's text costs this reader, from its DeepSeek token count (the one stored):
        the profile's bound where it counts by a bound, else the DeepSeek count itself (exact for
        DeepSeek's own tokenizer; for another tokenizer the fallback when the text is gone)."""
        text = self.profile.text
        if isinstance(text, BoundedText) and text.base == "deepseek":
            return math.ceil(text.factor * deepseek_tokens) + text.per_text if deepseek_tokens else 0
        return deepseek_tokens

    def turn_text(self, role: str, body: str) -> str:
        if self.decoder:
            return format_turn(role, body)
        return chat_turn_text(role, body) if body.strip() else ""  # the export drops blank parts

    def cost(self, text: str) -> int:
        """What ``text`` costs as this reader gets it (a chat export escapes ``<image>``)."""
        if not text:
            return 0
        return self.count(text if self.decoder else escape_image_placeholder(text))

    def own_message_cost(self, role: str, body: str) -> int:
        """What a turn costs sent after a context as a message of its own (a chat loop's new user
        turn): its text and, for a chat reader, one more message's framing."""
        text = self.turn_text(role, body)
        return self.cost(text) + (self.profile.message_overhead if text and not self.decoder else 0)

    def page_label(self, page: int, first_turn: int, last_turn: int) -> str:
        """The text part naming a page image for a chat reader (the decoder needs none)."""
        return "" if self.decoder else f"Memory page {page} (turns {first_turn}-{last_turn}):"

    def overhead(self, turn_roles: Sequence[str], *, memory: bool, system: str | None) -> int:
        """Tokens of the request beyond its segments: BOS for the decoder; for chat, the per-request
        and per-message tokens, the opener and the system prompt."""
        p = self.profile
        if self.decoder:
            return p.request_overhead
        roles = (["user"] if memory else []) + [chat_role(r) for r in turn_roles]
        messages, opener = chat_shape(roles, memory_first=memory)
        total = p.request_overhead + p.message_overhead * messages + (self.cost(OPENER) if opener else 0)
        if system:
            total += p.message_overhead + self.cost(system)
        return total
