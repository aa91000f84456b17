import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from optmem.config import ScheduleConfig
from optmem.modes import TIER_NAMES, tier_slots
from optmem.schedule import PageCost, fit_pages, page_age, page_positions, tier_for_age
from renderers import Tier

DEFAULT = ScheduleConfig()


@pytest.mark.parametrize("age, tier", [(0, "large"), (1.99, "large"), (2, "base"), (5, "base"), (6, "small"),
                                       (15, "small"), (16, "tiny"), (47, "tiny"), (48, None), (10_000, None)])
def test_default_schedule_maps_age_to_tier(age, tier):
    assert tier_for_age(age, DEFAULT) == tier


def test_paper_schedule_follows_fig13():
    paper = ScheduleConfig.paper()
    hour, day = 3600, 86400
    assert [tier_for_age(a, paper) for a in (0, 2 * hour, 2 * day, 8 * day, 40 * day, 400 * day)] == \
        ["gundam", "large", "base", "small", "tiny", None]


def test_age_units():
    for unit, expected in (("pages", 3.0), ("turns", 40.0), ("seconds", 90.5)):
        schedule = ScheduleConfig(age_unit=unit)
        assert page_age(schedule, pages_after=3, turns_after=40, seconds_since=90.5) == expected
    assert page_age(ScheduleConfig(age_unit="seconds"), pages_after=0, turns_after=0, seconds_since=-5) == 0.0


def test_negative_age_is_an_error():
    with pytest.raises(ValueError, match="age"):
        tier_for_age(-1, DEFAULT)


@pytest.mark.parametrize("steps, field", [
    ([{"tier": "tiny", "until": 1}, {"tier": "large", "until": 2}], "steps"),   # sharpening with age
    ([{"tier": "large", "until": 5}, {"tier": "base", "until": 5}], "steps"),   # until not increasing
    ([{"tier": "large", "until": 0}], "until"),
    ([{"tier": "huge", "until": 1}], "tier"),
    ([], "steps"),
])
def test_invalid_schedules_name_the_field(steps, field):
    with pytest.raises(ValidationError) as e:
        ScheduleConfig(steps=steps)
    assert field in str(e.value)


def test_blurrier_walks_the_ladder():
    assert [_blurrier(t) for t in TIER_NAMES] == ["large", "base", "small", "tiny", None]


def test_fit_pages_degrades_oldest_first_then_evicts():
    pages = [PageCost("large"), PageCost("large"), PageCost("large")]
    assert fit_pages(pages, 3 * 421) == ["large"] * 3
    # Just over: only the oldest page gives way, one tier.
    assert fit_pages(pages, 3 * 421 - 1) == ["base", "large", "large"]
    # The oldest goes all the way out before the second one is touched.
    assert fit_pages(pages, 2 * 421) == [None, "large", "large"]
    assert fit_pages(pages, 421 + 273) == [None, "base", "large"]
    assert fit_pages(pages, 0) == [None, None, None]


def test_fit_pages_counts_ledger_and_spares_pinned_pages():
    pages = [PageCost("small", extra_positions=10, pinned=True), PageCost("small", extra_positions=10)]
    assert fit_pages(pages, 2 * 121) == ["small", "small"]
    assert fit_pages(pages, 2 * 121 - 1) == ["small", "tiny"]
    assert fit_pages(pages, 121 + 83 - 1) == ["small", None]
    assert fit_pages(pages, 100) == ["tiny", None]


@settings(max_examples=200, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(TIER_NAMES), st.integers(0, 300), st.booleans()), max_size=40),
       st.integers(0, 20_000))
def test_fit_pages_never_exceeds_the_budget(specs, available):
    pages = [PageCost(t, extra, pinned) for t, extra, pinned in specs]
    tiers = fit_pages(pages, available)
    assert sum(page_positions(p, t) for p, t in zip(pages, tiers)) <= available
    for p, t in zip(pages, tiers):  # a page only ever gets blurrier
        assert t is None or TIER_NAMES.index(t) >= TIER_NAMES.index(p.tier)


def test_tier_slots_match_the_spec():
    assert [tier_slots(t) for t in TIER_NAMES] == [693, 421, 273, 111, 73]


def _blurrier(tier):
    return Tier(tier).blurrier()
