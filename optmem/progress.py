"""What long commands tell the person watching: progress bars (drawn only on a terminal) and
counts in words."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from optmem.retrieval.embedder import Embedder

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str, unit: str, total: int | None = None, stream=None) -> Iterator[T]:
    """``items`` with a tqdm bar on ``stream`` (default stderr) when it is a terminal; a file or a
    pipe gets no bar, so a log is not flooded with redraws."""
    stream = stream or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    return iter(tqdm(items, desc=desc, unit=unit, total=total, file=stream, disable=not interactive, leave=False))


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, plural unless n is 1: "1 turn", "2 turns"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class ShownEmbedder(Embedder):
    """MiniLM that draws a bar when it embeds more than a batch at once: the first search of a
    conversation embeds every sealed page, a minute or more on a small CPU.

    The texts go to the model in the batches the plain Embedder would make (length-sorted, then
    cut), so the vectors are the same.
    """

    def encode(self, texts: Sequence[str] | str) -> np.ndarray:
        if isinstance(texts, str) or len(texts) <= self.batch_size:
            return super().encode(texts)
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]) if isinstance(texts[i], str) else 0)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        starts = range(0, len(order), self.batch_size)
        for start in progress(starts, desc="embed", unit="batch", total=len(starts)):
            idx = order[start:start + self.batch_size]
            out[idx] = super().encode([texts[i] for i in idx])
        return out
