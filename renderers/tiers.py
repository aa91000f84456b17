"""The tiers a page is kept at, sharpest first, with what each costs DeepSeek-OCR's decoder.

A page of side S becomes an (S/64)×(S/64) grid of vision tokens (SAM patch 16, two stride-2
convolutions). In the decoder every grid row is followed by one ``image_newline`` slot and the
image ends with one ``view_seperator`` slot, so a view costs ``grid * (grid + 1) + 1`` positions
(deepseek-ocr-spec.md §1.4). Gundam keeps the full page and is read as 2×2 tiles of 640 px plus a
1024 px global view. This is the one definition every layer uses (renderer, schedule, assembler,
codec, benchmarks); a tier is a ``str`` enum, so ``Tier.TINY == "tiny"`` and configs stay plain.
"""

from __future__ import annotations

from enum import StrEnum

PIXELS_PER_TOKEN_SIDE = 64
GUNDAM_TILE_SIDE = 640
GUNDAM_GLOBAL_SIDE = 1024
SQUARE_PAGE_GUNDAM_GRID = (2, 2)  # dynamic_preprocess cuts a square page over 640 px into 2×2 tiles

_VIEW_SIDES = {"large": 1280, "base": 1024, "small": 640, "tiny": 512}


def view_slots(side: int) -> int:
    """Decoder positions of one square view of ``side`` px: grid rows with a newline each, plus
    the separator."""
    grid = side // PIXELS_PER_TOKEN_SIDE
    return grid * (grid + 1) + 1


def gundam_slots(n_wide: int, n_high: int) -> int:
    """Decoder positions of a Gundam image: local tiles (one newline per grid row), then the
    1024 global view (273), in the order DeepSeek-OCR lays them out. ``n_wide == n_high == 0``
    (image too small for tiles) is the global view alone."""
    if n_wide < 0 or n_high < 0 or (n_wide == 0) != (n_high == 0):
        raise ValueError(f"invalid Gundam tile grid {n_wide}x{n_high}")
    tile_grid = GUNDAM_TILE_SIDE // PIXELS_PER_TOKEN_SIDE
    local = (tile_grid * n_high) * (tile_grid * n_wide + 1) if n_wide else 0
    return local + view_slots(GUNDAM_GLOBAL_SIDE)


def gundam_vision_tokens(n_wide: int, n_high: int) -> int:
    tile_grid = GUNDAM_TILE_SIDE // PIXELS_PER_TOKEN_SIDE
    global_grid = GUNDAM_GLOBAL_SIDE // PIXELS_PER_TOKEN_SIDE
    return n_wide * n_high * tile_grid * tile_grid + global_grid * global_grid


class Tier(StrEnum):
    """Sharpest first: the order pages blur in as they age."""

    GUNDAM = "gundam"
    LARGE = "large"
    BASE = "base"
    SMALL = "small"
    TINY = "tiny"

    @classmethod
    def parse(cls, value: object) -> "Tier":
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown tier {value!r}; expected one of {[t.value for t in cls]}") from None

    @property
    def side(self) -> int:
        """Side of the stored page image (Gundam keeps the full 1280 page to tile)."""
        return _VIEW_SIDES.get(self.value, _VIEW_SIDES["large"])

    @property
    def slots(self) -> int:
        """Decoder positions one square page costs at this tier."""
        return gundam_slots(*SQUARE_PAGE_GUNDAM_GRID) if self is Tier.GUNDAM else view_slots(self.side)

    @property
    def vision_tokens(self) -> int:
        if self is Tier.GUNDAM:
            return gundam_vision_tokens(*SQUARE_PAGE_GUNDAM_GRID)
        return (self.side // PIXELS_PER_TOKEN_SIDE) ** 2

    @property
    def squash(self) -> bool:
        """Tiny/Small resize the page to a square; Base/Large pad it with grey 127."""
        return self in (Tier.SMALL, Tier.TINY)

    def blurrier(self) -> "Tier | None":
        """The next tier down, or None below the blurriest."""
        order = list(Tier)
        i = order.index(self)
        return order[i + 1] if i + 1 < len(order) else None


VIEW_TIERS: tuple[Tier, ...] = (Tier.LARGE, Tier.BASE, Tier.SMALL, Tier.TINY)  # single square views
