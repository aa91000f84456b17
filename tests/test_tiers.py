"""One tier enum: sides, decoder slots and order, used by every layer."""

import pytest

from optmem.config import MemoryConfig, TierStep
from optmem.modes import TIER_NAMES, mode_for_side
from renderers import TIER_SIDES, Tier


def test_tiers_sharpest_first_with_sides_and_slots():
    assert [(t.value, t.side, t.slots) for t in Tier] == [
        ("gundam", 1280, 693), ("large", 1280, 421), ("base", 1024, 273), ("small", 640, 111), ("tiny", 512, 73)]
    assert [t.blurrier() for t in Tier] == [Tier.LARGE, Tier.BASE, Tier.SMALL, Tier.TINY, None]
    assert TIER_NAMES == tuple(t.value for t in Tier)
    assert TIER_SIDES == {"large": 1280, "base": 1024, "small": 640, "tiny": 512}
    assert mode_for_side(640) is Tier.SMALL


def test_a_tier_is_its_name():
    assert Tier.TINY == "tiny" and Tier("base") is Tier.BASE
    step = TierStep(tier="small", until=3)
    assert step.tier is Tier.SMALL and MemoryConfig().to_toml().count('tier = "') == 4
    with pytest.raises(ValueError, match="unknown tier 'huge'"):
        Tier.parse("huge")
