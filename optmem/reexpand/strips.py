"""Line strips cut out of a page image for a text recogniser (numpy only).

Each recorded line box is scaled to the image, cropped, given white margins and resized to the
recogniser's input height. The resize is OpenCV's ``INTER_LINEAR`` on uint8, reimplemented with
its integer arithmetic, so the strips, and hence the recognised text, are bit-identical to what
``cv2.resize`` gave before optmem stopped importing OpenCV.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # the renderer's Line; only .box is read
    from renderers import Line

__all__ = ["cut_strip", "resize_bilinear", "scaled_boxes"]

Box = tuple[int, int, int, int]


def _check_lines_fit(image: Image.Image, lines: Sequence[Line]) -> None:
    w, h = image.size
    for i, ln in enumerate(lines):
        x0, y0, x1, y1 = ln.box
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 < x0 or y1 < y0:
            raise ValueError(
                f"lines[{i}].box={ln.box} does not fit the {w}x{h} image: pass the lines scaled to the image "
                "(page.at(tier).lines) or lines_side= the side they were recorded at"
            )


def scaled_boxes(image: Image.Image, lines: Sequence[Line], lines_side: int | None) -> list[Box]:
    """The lines' boxes in the image's pixels. ``lines_side``: the page side the boxes were recorded
    at (boxes are scaled outward to whole pixels); ``None`` when they already fit the image."""
    if lines_side is None:
        _check_lines_fit(image, lines)
        return [tuple(ln.box) for ln in lines]
    if lines_side <= 0:
        raise ValueError(f"lines_side must be positive, got {lines_side}")
    f = image.size[0] / lines_side
    boxes = []
    for ln in lines:
        x0, y0, x1, y1 = ln.box
        boxes.append((int(np.floor(x0 * f)), int(np.floor(y0 * f)), int(np.ceil(x1 * f)), int(np.ceil(y1 * f))))
    return boxes


_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS: weights are fixed point, 1.0 == 2048


def _taps(src: int, dst: int, *, clamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel: the two source pixels and their fixed-point weights.

    Output pixel centres map to ``(i + 0.5) * src / dst - 0.5`` in float32, as OpenCV computes
    them. Columns outside the source take the edge pixel at full weight (``clamp``); rows keep
    their fractional weights and repeat the edge row instead, which rounds differently: OpenCV
    treats the two axes so.
    """
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * (1.0 / (dst / src)) - 0.5).astype(np.float32)
    lo = np.floor(pos).astype(np.intp)
    frac = pos - lo.astype(np.float32)
    if clamp:
        frac[(lo < 0) | (lo >= src - 1)] = 0.0
    one = np.float32(1 << _COEF_BITS)
    w0 = np.rint((np.float32(1.0) - frac) * one).astype(np.int32)
    w1 = np.rint(frac * one).astype(np.int32)
    return np.clip(lo, 0, src - 1), np.clip(lo + 1, 0, src - 1), w0, w1


def resize_bilinear(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """A uint8 greyscale image resized to ``width`` x ``height`` by bilinear interpolation without
    antialiasing (OpenCV ``INTER_LINEAR``, bit for bit): a horizontal pass into 11-bit fixed
    point, then a vertical pass that drops 4 bits per row before weighting, then rounds."""
    x0, x1, a0, a1 = _taps(gray.shape[1], width, clamp=True)
    y0, y1, b0, b1 = _taps(gray.shape[0], height, clamp=False)
    img = gray.astype(np.int32)
    rows = img[:, x0] * a0 + img[:, x1] * a1  # at most 255 * 2048: fits int32
    out = ((b0[:, None] * (rows[y0] >> 4)) >> 16) + ((b1[:, None] * (rows[y1] >> 4)) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


def cut_strip(gray: np.ndarray, box: Box, *, height: int, pad: float, width_scale: float) -> np.ndarray | None:
    """The strip under ``box``, ``height`` px high (``None`` when the box is under 2 px).

    ``pad`` adds white margins of that fraction of the box height above and below (twice that
    left and right) instead of cropping wider: a wider crop would take in the neighbouring rows'
    ascenders and descenders, which touch this strip's ink box. ``width_scale`` stretches the
    width after the aspect-preserving resize.
    """
    x0, y0, x1, y1 = box
    crop = gray[y0:y1, x0:x1]
    h, w = crop.shape
    if h < 2 or w < 2:
        return None
    p = max(1, round(pad * h))
    crop = np.pad(crop, ((p, p), (2 * p, 2 * p)), constant_values=255)
    h, w = crop.shape
    width = max(height // 4, round(height * w / h * width_scale))
    return resize_bilinear(crop, width, height)
