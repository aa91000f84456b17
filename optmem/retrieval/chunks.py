"""Pages cut into chunks small enough for the embedder, and the id a chunk's vector is kept under.

MiniLM reads at most 256 word pieces, so a page (about a thousand tokens) is embedded in chunks of
about ``chunk_chars`` characters cut at whitespace; nothing on a page goes unindexed.
"""

from __future__ import annotations

from typing import NamedTuple

CHUNKS_PER_PAGE_MAX = 1024  # vector id = page number * this + chunk number


class ChunkKey(NamedTuple):
    page: int  # page number within the conversation
    chunk: int  # the chunk's number on its page

    @property
    def vector_id(self) -> int:
        return self.page * CHUNKS_PER_PAGE_MAX + self.chunk

    @classmethod
    def from_vector_id(cls, vector_id: int) -> "ChunkKey":
        page, chunk = divmod(int(vector_id), CHUNKS_PER_PAGE_MAX)
        return cls(page, chunk)


def chunk_spans(text: str, size: int) -> list[tuple[int, int]]:
    """Where ``chunk_text`` cuts ``text``: (start, end) of each piece, whitespace trimmed."""
    spans, start, n = [], 0, len(text)
    while start < n:
        end = min(n, start + size)
        if end < n:
            cut = text.rfind(" ", start + size // 2, end)
            end = cut + 1 if cut > start else end
        a, b = start, end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            spans.append((a, b))
        start = end
    return spans


def chunk_text(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of about ``size`` characters at whitespace (at least one piece)."""
    return [text[a:b] for a, b in chunk_spans(text, size)] or [""]
