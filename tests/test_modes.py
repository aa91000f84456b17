import pytest

from optmem.modes import Tier, gundam_slots, gundam_vision_tokens, mode

TINY, SMALL, BASE, LARGE = Tier.TINY, Tier.SMALL, Tier.BASE, Tier.LARGE


def test_native_modes():
    assert [(m.side, m.vision_tokens, m.slots) for m in (TINY, SMALL, BASE, LARGE)] == \
        [(512, 64, 73), (640, 100, 111), (1024, 256, 273), (1280, 400, 421)]
    assert TINY.squash and SMALL.squash and not BASE.squash and not LARGE.squash


@pytest.mark.parametrize("nw, nh, slots", [(0, 0, 273), (2, 1, 483), (1, 2, 493), (2, 2, 693), (3, 2, 893),
                                           (2, 3, 903), (3, 3, 1203)])
def test_gundam_slots_from_the_spec(nw, nh, slots):
    assert gundam_slots(nw, nh) == slots


def test_gundam_vision_tokens_exclude_newlines():
    assert gundam_vision_tokens(3, 3) == 1156  # the OCR-2 paper's figure for 9 crops


def test_bad_mode_and_grid():
    with pytest.raises(ValueError, match="unknown mode"):
        mode("huge")
    with pytest.raises(ValueError, match="grid"):
        gundam_slots(2, 0)
