"""The forgetting schedule and the budget controller, as pure functions.

The schedule maps a page's age to the tier it is stored at. The budget controller then decides,
for one context, what each in-context page costs: when everything does not fit, the oldest page
is blurred one tier at a time and, once at the blurriest tier, leaves the context; then the next
oldest. Newer pages keep their sharpness as long as anything older can still give way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optmem.config import ScheduleConfig
from optmem.modes import TIER_NAMES, tier_slots


def tier_for_age(age: float, schedule: ScheduleConfig) -> str | None:
    """Tier for a page of this age, or None once it is past the last step."""
    if age < 0:
        raise ValueError(f"age must be >= 0, got {age}")
    for step in schedule.steps:
        if age < step.until:
            return step.tier
    return None


def page_age(schedule: ScheduleConfig, *, pages_after: int, turns_after: int, seconds_since: float) -> float:
    """The age of a page in the schedule's unit."""
    if schedule.age_unit == "pages":
        return float(pages_after)
    if schedule.age_unit == "turns":
        return float(turns_after)
    return max(0.0, seconds_since)


def blurrier(tier: str) -> str | None:
    """The next tier down, or None below the blurriest."""
    i = TIER_NAMES.index(tier)
    return TIER_NAMES[i + 1] if i + 1 < len(TIER_NAMES) else None


@dataclass(frozen=True)
class PageCost:
    """One in-context page as the budget controller sees it: its tier and the text that rides with
    it (the verbatim ledger) whose positions are paid while the page is in context."""

    tier: str
    extra_positions: int = 0
    pinned: bool = False


def page_positions(cost: PageCost, tier: str | None) -> int:
    return 0 if tier is None else tier_slots(tier) + cost.extra_positions


def fit_pages(pages: Sequence[PageCost], available: int) -> list[str | None]:
    """Tiers for ``pages`` (oldest first) whose total positions fit in ``available``.

    None means the page leaves this context. Pinned pages give way only after every unpinned
    one has. The result never exceeds ``available``: in the worst case every page leaves.
    """
    tiers: list[str | None] = [p.tier for p in pages]
    total = sum(page_positions(p, t) for p, t in zip(pages, tiers))
    order = [i for i, p in enumerate(pages) if not p.pinned] + [i for i, p in enumerate(pages) if p.pinned]
    for i in order:
        while total > available and tiers[i] is not None:
            lower = blurrier(tiers[i])
            total += page_positions(pages[i], lower) - page_positions(pages[i], tiers[i])
            tiers[i] = lower
        if total <= available:
            break
    return tiers
