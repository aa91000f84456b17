"""PIL page -> normalised pixel tensors per DeepSeek-OCR mode (deepseek-ocr-spec.md §1.5).

Tiny/Small squash to a square (aspect not kept), Base/Large pad with grey 127 (aspect kept),
Gundam pads a 1024 global view and, for images larger than 640 px on a side, cuts 640 px tiles
with DeepSeek-OCR's ``dynamic_preprocess``. Pixels go to [-1, 1] (mean = std = 0.5).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from optmem.modes import GUNDAM_GLOBAL_SIDE, GUNDAM_TILE_SIDE, mode as mode_spec
from renderers import gundam_grid  # DeepSeek-OCR's find_closest_aspect_ratio, shared with page.gundam()

PAD_COLOR = (127, 127, 127)  # int(0.5 * 255): the normalisation mean, so padding becomes ~0
_BICUBIC = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class PreparedImage:
    """Pixel tensors of one image in one mode: the global view, and Gundam tiles if any."""

    mode: str
    global_view: torch.Tensor  # [3, S, S] float32 in [-1, 1]
    tiles: torch.Tensor | None  # [nh*nw, 3, 640, 640], row-major tiles, or None
    grid: tuple[int, int]  # (n_wide, n_high); (0, 0) without tiles


def image_hash(image: Image.Image) -> str:
    """Content hash of the pixels as the encoder will see them (mode, size and raw bytes)."""
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def to_rgb(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    if image.size[0] < 1 or image.size[1] < 1:
        raise ValueError(f"empty image of size {image.size}")
    return ImageOps.exif_transpose(image).convert("RGB")


def normalize(image: Image.Image) -> torch.Tensor:
    """ToTensor + Normalize(0.5, 0.5): uint8 HWC -> float32 CHW in [-1, 1]."""
    arr = np.asarray(image, dtype=np.float32) / np.float32(255.0)
    arr = (arr - np.float32(0.5)) / np.float32(0.5)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def squash(image: Image.Image, side: int) -> Image.Image:
    return image.resize((side, side), _BICUBIC)


def pad(image: Image.Image, side: int) -> Image.Image:
    return ImageOps.pad(image, (side, side), method=_BICUBIC, color=PAD_COLOR)


def dynamic_preprocess(image: Image.Image, min_num: int, max_num: int, tile: int = GUNDAM_TILE_SIDE):
    """Squash to (tile*nw, tile*nh) and cut row-major tiles; returns (tiles, (nw, nh))."""
    # The caller has already handled images small enough for the global view alone.
    nw, nh = gundam_grid(image.size[0], image.size[1], min_num, max_num, tile)
    resized = image.resize((tile * nw, tile * nh), _BICUBIC)
    tiles = [
        resized.crop(((i % nw) * tile, (i // nw) * tile, (i % nw + 1) * tile, (i // nw + 1) * tile))
        for i in range(nw * nh)
    ]
    return tiles, (nw, nh)


def prepare(image: Image.Image, mode: str, *, gundam_min_tiles: int = 2, gundam_max_tiles: int = 9) -> PreparedImage:
    """The official HF ``infer`` preprocessing of one image for ``mode``."""
    rgb = to_rgb(image)
    if mode == "gundam":
        global_view = normalize(pad(rgb, GUNDAM_GLOBAL_SIDE))
        if rgb.size[0] <= GUNDAM_TILE_SIDE and rgb.size[1] <= GUNDAM_TILE_SIDE:
            return PreparedImage(mode, global_view, None, (0, 0))
        tiles, grid = dynamic_preprocess(rgb, gundam_min_tiles, gundam_max_tiles)
        if grid == (1, 1):  # the official code only uses tiles when there is more than one
            return PreparedImage(mode, global_view, None, (0, 0))
        return PreparedImage(mode, global_view, torch.stack([normalize(t) for t in tiles]), grid)
    spec = mode_spec(mode)
    view = squash(rgb, spec.side) if spec.squash else pad(rgb, spec.side)
    return PreparedImage(mode, normalize(view), None, (0, 0))
