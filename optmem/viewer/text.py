"""Text as the viewer shows it in tables: one line, cut at a word boundary, page numbers as ranges."""

from __future__ import annotations

from collections.abc import Iterable

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line in at most ``limit`` characters, cut after the last whole word that
    fits and marked with an ellipsis. A single word longer than half the limit (a URL, a hash) is
    cut inside: dropping it whole would hide the part worth seeing."""
    if limit < 2:
        raise ValueError(f"limit must be at least 2 characters; got {limit}")
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - len(ELLIPSIS)]
    if flat[len(cut)] != " ":  # the limit falls inside a word
        space = cut.rfind(" ")
        if space >= limit // 2:
            cut = cut[:space]
    return cut.rstrip(" ,;:") + ELLIPSIS


def number_ranges(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``"1–3, 5, 7–8"``."""
    ordered = sorted(set(numbers))
    parts: list[str] = []
    start = prev = None
    for n in ordered + [None]:
        if start is not None and (n is None or n != prev + 1):
            parts.append(str(start) if start == prev else f"{start}–{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ", ".join(parts)
