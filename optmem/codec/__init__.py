"""Optical memory codec: pages -> DeepEncoder vision tokens -> decoder ``inputs_embeds``.

``segments`` needs no torch; everything else (models, loading) is imported on first use, so
``import optmem.codec`` stays cheap and the rest of optmem never pulls in torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .segments import ImageSegment, MODE_NAMES, TextSegment, normalize_segments

_LAZY = {
    "DeepSeekOCR": ".deepseek_ocr",
    "DeepSeekOCR2": ".deepseek_ocr2",
    "DeepSeekOCRConfig": ".config",
    "tiny_ocr2_config": ".config",
    "VisionTokens": ".interface",
    "Spliced": ".interface",
    "OpticalCodec": ".interface",
    "OCR_PROMPT": ".interface",
    "RepeatGuard": ".generation",
    "Generation": ".generation",
    "VisionTokenCache": ".cache",
    "CheckpointError": ".loading",
}

__all__ = ["ImageSegment", "MODE_NAMES", "TextSegment", "normalize_segments", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
