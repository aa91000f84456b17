"""DeepEncoder modes as the codec sees them: the square view a tier is encoded at.

The tiers themselves (sides, decoder slots, Gundam's tiling) are defined once in
``renderers.tiers``; this module names the codec's view of them.
"""

from __future__ import annotations

from renderers.tiers import (
    GUNDAM_GLOBAL_SIDE,
    GUNDAM_TILE_SIDE,
    PIXELS_PER_TOKEN_SIDE,
    SQUARE_PAGE_GUNDAM_GRID,
    VIEW_TIERS,
    Tier,
    gundam_slots,
    gundam_vision_tokens,
)

__all__ = [
    "GUNDAM_GLOBAL_SIDE", "GUNDAM_TILE_SIDE", "PIXELS_PER_TOKEN_SIDE", "SQUARE_PAGE_GUNDAM_GRID", "TIER_NAMES",
    "VIEW_TIERS", "Tier", "gundam_slots", "gundam_vision_tokens", "mode", "mode_for_side", "tier_side", "tier_slots", "tier_vision_tokens",
]

TIER_NAMES: tuple[str, ...] = tuple(t.value for t in Tier)


def tier_slots(tier: str) -> int:
    """Decoder positions one square page costs at ``tier``."""
    return Tier.parse(tier).slots


def tier_vision_tokens(tier: str) -> int:
    return Tier.parse(tier).vision_tokens


def tier_side(tier: str) -> int:
    """Side of the stored page image for ``tier`` (Gundam keeps the full 1280 page to tile)."""
    return Tier.parse(tier).side


def mode(name: str) -> Tier:
    """A single-view mode by name (tiny, small, base, large); Gundam is tiled, not one view."""
    tier = Tier(name) if name in TIER_NAMES else None
    if tier is None or tier not in VIEW_TIERS:
        raise ValueError(f"unknown mode {name!r}; expected one of {[t.value for t in VIEW_TIERS]}")
    return tier


def mode_for_side(side: int) -> Tier:
    for tier in VIEW_TIERS:
        if tier.side == side:
            return tier
    raise ValueError(f"no DeepSeek-OCR mode has side {side}px (modes: {[t.side for t in VIEW_TIERS]})")
