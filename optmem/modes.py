"""DeepEncoder modes as data: page side, vision tokens and decoder slots.

A page of side S becomes an (S/64)×(S/64) grid of vision tokens. In the decoder every grid row
is followed by one `image_newline` slot and the image ends with one `view_seperator` slot, so a
mode costs ``grid * (grid + 1) + 1`` decoder positions (deepseek-ocr-spec.md §1.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TierName = Literal["gundam", "large", "base", "small", "tiny"]

PATCHES_PER_TOKEN_SIDE = 64  # SAM patch 16 × two stride-2 convs
TILE_SIDE = 640  # Gundam local tiles
GUNDAM_GLOBAL_SIDE = 1024


@dataclass(frozen=True)
class Mode:
    name: str
    side: int  # pixels of the square view the encoder sees
    squash: bool  # Tiny/Small resize to a square; Base/Large pad with grey 127

    @property
    def grid(self) -> int:
        return self.side // PATCHES_PER_TOKEN_SIDE

    @property
    def vision_tokens(self) -> int:
        return self.grid * self.grid

    @property
    def slots(self) -> int:
        """Decoder positions this view takes: grid rows with a newline each, plus the separator."""
        return self.grid * (self.grid + 1) + 1


LARGE = Mode("large", 1280, squash=False)
BASE = Mode("base", 1024, squash=False)
SMALL = Mode("small", 640, squash=True)
TINY = Mode("tiny", 512, squash=True)

# Ordered from sharpest to most blurred: the order pages degrade in as they age.
TIERS: tuple[Mode, ...] = (LARGE, BASE, SMALL, TINY)
MODES: dict[str, Mode] = {m.name: m for m in TIERS}


def mode(name: str) -> Mode:
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"unknown mode {name!r}; expected one of {sorted(MODES)}") from None


def gundam_slots(n_wide: int, n_high: int) -> int:
    """Decoder positions of a Gundam image: local tiles (one newline per grid row), then the
    1024 global view (273), in the order DeepSeek-OCR lays them out. ``n_wide == n_high == 0``
    (image too small for tiles) is the global view alone."""
    if n_wide < 0 or n_high < 0 or (n_wide == 0) != (n_high == 0):
        raise ValueError(f"invalid Gundam tile grid {n_wide}x{n_high}")
    tile_grid = TILE_SIDE // PATCHES_PER_TOKEN_SIDE
    local = (tile_grid * n_high) * (tile_grid * n_wide + 1) if n_wide else 0
    return local + BASE.slots


def gundam_vision_tokens(n_wide: int, n_high: int) -> int:
    tile_grid = TILE_SIDE // PATCHES_PER_TOKEN_SIDE
    return n_wide * n_high * tile_grid * tile_grid + BASE.vision_tokens


# A square page of side > 640 is cut by DeepSeek-OCR's dynamic_preprocess into a 2×2 grid of 640 px
# tiles (aspect 1:1, at least two tiles), plus the 1024 global view.
SQUARE_PAGE_GUNDAM_GRID = (2, 2)

# Every tier a page can be held at, sharpest first. Gundam is optional (the schedule decides).
TIER_NAMES: tuple[str, ...] = ("gundam",) + tuple(m.name for m in TIERS)


def tier_slots(tier: str) -> int:
    """Decoder positions one square page costs at ``tier``."""
    if tier == "gundam":
        return gundam_slots(*SQUARE_PAGE_GUNDAM_GRID)
    return mode(tier).slots


def tier_vision_tokens(tier: str) -> int:
    if tier == "gundam":
        return gundam_vision_tokens(*SQUARE_PAGE_GUNDAM_GRID)
    return mode(tier).vision_tokens


def tier_side(tier: str) -> int:
    """Side of the stored page image for ``tier`` (Gundam keeps the full 1280 page to tile)."""
    return LARGE.side if tier == "gundam" else mode(tier).side
