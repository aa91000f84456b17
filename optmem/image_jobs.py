"""The page images an export makes for itself, made on worker threads while the exporting thread
draws the open page.

An export reuses the bytes made when each page was stored, but the images no write made (a page
the budget shows below its stored tier, or bytes evicted) are made when the request needs them:
a LANCZOS resample and an encode, 8-20 ms each, in the same call that draws the turns joining
the open page. Both are in C (Pillow, zlib) and let go of the GIL, so on a machine with two cores
the request waits for the longer of the two instead of their sum.

A page image source that can make its image away from the caller's thread offers
``png_job(side, crop)``: either the bytes, when it has them, or an :class:`ImageJob` whose ``make``
is pure (no store, no shared state) and whose ``finish`` (run back on the caller's thread) keeps the
result. Sources without it (the open page, drawn on its own canvas) are loaded on the caller's
thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optmem import workers

if TYPE_CHECKING:
    from optmem.assembler import PageSegment


@dataclass(frozen=True)
class ImageJob:
    make: Callable[[], Any]  # pure: safe on any thread
    finish: Callable[[Any], bytes]  # on the caller's thread: keeps what make gave, returns the bytes


def load_pngs(segments: Sequence[PageSegment]) -> list[bytes]:
    """``[s.load_png() for s in segments]``: the images to make are made on the pool while this
    thread loads the others."""
    out: list[bytes | None] = [None] * len(segments)
    pending: list[tuple[int, ImageJob]] = []
    for i, s in enumerate(segments):
        png_job = getattr(s.image_source, "png_job", None)
        got = png_job(s.side, s.crop) if png_job is not None else None
        if isinstance(got, ImageJob):
            pending.append((i, got))
        else:
            out[i] = got
    jobs = {i for i, _ in pending}
    here = [i for i, data in enumerate(out) if data is None and i not in jobs]
    # With nothing else for this thread to do, it makes one of the images itself.
    inline = pending.pop() if pending and not here else None
    futures = [(i, job, workers.submit(job.make)) for i, job in pending]
    for i in here:
        out[i] = segments[i].load_png()
    if inline is not None:
        i, job = inline
        out[i] = job.finish(job.make())
    for i, job, future in futures:
        out[i] = job.finish(future.result())
    return out  # type: ignore[return-value]
