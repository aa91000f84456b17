"""Progress bars for steps that take more than a second, drawn only where a person watches."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str, unit: str, total: int | None = None, stream=None) -> Iterator[T]:
    """``items`` with a tqdm bar on ``stream`` (default stderr) when it is a terminal; a file or a
    pipe gets no bar, so a log is not flooded with redraws."""
    stream = stream or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    return iter(tqdm(items, desc=desc, unit=unit, total=total, file=stream, disable=not interactive, leave=False))
