"""What a decoder context is made of: text and page segments, in order.

This module does not import torch, so the assembler (and anything else in optmem) can build
segments without the model stack. Besides the two dataclasses here, any object that looks like
an assembler ``Context`` segment is accepted: ``kind == "text"`` with ``.text``, or
``kind == "page"`` with ``.image`` and ``.tier``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Union

MODE_NAMES: tuple[str, ...] = ("tiny", "small", "base", "large", "gundam")


@dataclass(frozen=True)
class TextSegment:
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"TextSegment.text must be str, got {type(self.text).__name__}")


@dataclass(frozen=True)
class ImageSegment:
    image: Any  # PIL.Image.Image; typed loosely so this module needs no PIL import at load time
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODE_NAMES:
            raise ValueError(f"ImageSegment.mode {self.mode!r} is not one of {MODE_NAMES}")
        if not hasattr(self.image, "size") or not hasattr(self.image, "convert"):
            raise TypeError(f"ImageSegment.image must be a PIL image, got {type(self.image).__name__}")


Segment = Union[TextSegment, ImageSegment]


def normalize_segment(seg: Any, index: int = 0) -> Segment:
    """One segment as a ``TextSegment`` or ``ImageSegment``; duck-typed Context segments are converted."""
    if isinstance(seg, (TextSegment, ImageSegment)):
        return seg
    kind = getattr(seg, "kind", None)
    if kind == "text" and hasattr(seg, "text"):
        return TextSegment(seg.text)
    if kind == "page" and hasattr(seg, "image") and hasattr(seg, "tier"):
        return ImageSegment(seg.image, seg.tier)
    raise TypeError(
        f"segment {index} ({type(seg).__name__}) is neither TextSegment/ImageSegment nor an object with "
        "kind='text' and .text, or kind='page' with .image and .tier"
    )


def normalize_segments(segments: Iterable[Any]) -> list[Segment]:
    return [normalize_segment(s, i) for i, s in enumerate(segments)]
