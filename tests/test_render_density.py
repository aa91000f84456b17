"""Density and legibility of the default page: ≥ 850 DeepSeek tokens of English chat per 1280 px
page, and glyphs still ≥ 8 px tall after downsampling to the 512 px tier."""

from __future__ import annotations

import random

import numpy as np

from optmem.tokens import count_tokens
from renderers import RenderConfig, TIER_SIDES, layout_pages, render_pages

# Ordinary chat prose (written for this test), shuffled into turns of 1–8 sentences.
SENTENCES = [
    "I looked at the logs from last night and the export stopped right after the second batch finished.",
    "The disk on the replica was almost full, so the database refused new writes for about ten minutes.",
    "Could you check whether the cleanup job still runs every Sunday, or did someone disable it in March?",
    "We moved the old invoices to cold storage, which freed around forty gigabytes on the primary.",
    "My guess is that the retry logic hides the real error, because every failure looks like a timeout.",
    "Let's add a metric for the queue length and an alert when it stays above a thousand for an hour.",
    "The customer asked for a summary of what changed, written for people who do not read code.",
    "That sounds reasonable, but I would keep the old endpoint alive until the mobile app is updated.",
    "Honestly, the simplest fix is to split the report into smaller pieces and send them one by one.",
    "Thanks, that worked; the dashboard loads in two seconds now instead of almost half a minute.",
    "Before we ship it, please write down how to roll back, in case the migration goes wrong on Friday.",
    "I am not sure the numbers are right, since the test data only covers the first week of the month.",
    "Yes, the meeting moved to Thursday afternoon, and Anna will bring the notes from the design review.",
    "If the cache is cold after a deploy, the first few requests are slow, which is what users noticed.",
]


def chat_turns(n_turns: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [("user" if i % 2 == 0 else "assistant", " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 8))))
            for i in range(n_turns)]


def page_tokens(layout, turns) -> int:
    return count_tokens("\n".join(turns[s.turn_index][1][s.start:s.end] for s in layout.segments))


def test_default_page_holds_850_tokens_of_english_chat():
    turns = chat_turns(120)
    layouts = layout_pages(turns)
    full = layouts[:-1]
    assert len(full) >= 3
    counts = [page_tokens(lay, turns) for lay in full]
    assert min(counts) >= 850, counts


def test_font_is_at_least_8px_at_the_tiny_tier():
    cfg = RenderConfig()
    assert cfg.font_px * TIER_SIDES["tiny"] / cfg.page_px >= 8.0


def test_glyph_ink_height_at_512():
    """Measured on pixels: cap top of 'H' to the descender of 'g', ink darker than mid-grey."""
    page = render_pages("Hg" * 40)[0]
    tiny = np.asarray(page.at("tiny").image)
    rows = np.flatnonzero((tiny < 128).any(axis=1))
    assert rows.size and rows[-1] - rows[0] + 1 >= 8
