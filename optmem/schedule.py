"""The forgetting schedule and the budget controller, as pure functions.

The schedule maps a page's age to the tier it is stored at. The budget controller then decides,
for one context, what each in-context page costs: when everything does not fit, the oldest page
is blurred one tier at a time and, once at the blurriest tier, leaves the context; then the next
oldest. Newer pages keep their sharpness as long as anything older can still give way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from optmem.config import ScheduleConfig
from renderers import Tier


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


TierCost = Callable[[str], "int | None"]  # a page image's cost at a tier; None: not sent at that tier


def decoder_slots(tier: str) -> int:
    return Tier(tier).slots


@dataclass(frozen=True)
class PageCost:
    """One in-context page as the budget controller sees it: its tier, the text that rides with
    it (the verbatim ledger, a label) whose positions are paid while the page is in context, and
    the tiers it may not be sent at (its image would cost the reader more than its text)."""

    tier: str
    extra_positions: int = 0
    pinned: bool = False
    barred: frozenset[str] = frozenset()


def page_positions(cost: PageCost, tier: str | None, tier_cost: TierCost = decoder_slots) -> int:
    return 0 if tier is None else tier_cost(tier) + cost.extra_positions


def _sendable(cost: PageCost, tier: str | None, tier_cost: TierCost) -> str | None:
    """``tier`` or the first blurrier tier the page may be sent at; None when there is none."""
    while tier is not None and (tier in cost.barred or tier_cost(tier) is None):
        tier = Tier(tier).blurrier()
    return tier


def fit_pages(pages: Sequence[PageCost], available: int, tier_cost: TierCost = decoder_slots) -> list[str | None]:
    """Tiers for ``pages`` (oldest first) whose total positions fit in ``available``.

    None means the page leaves this context. Pinned pages give way only after every unpinned
    one has. The result never exceeds ``available``: in the worst case every page leaves.
    """
    tiers: list[str | None] = [_sendable(p, p.tier, tier_cost) for p in pages]
    total = sum(page_positions(p, t, tier_cost) for p, t in zip(pages, tiers))
    order = [i for i, p in enumerate(pages) if not p.pinned] + [i for i, p in enumerate(pages) if p.pinned]
    for i in order:
        while total > available and tiers[i] is not None:
            lower = _sendable(pages[i], Tier(tiers[i]).blurrier(), tier_cost)
            total += page_positions(pages[i], lower, tier_cost) - page_positions(pages[i], tiers[i], tier_cost)
            tiers[i] = lower
        if total <= available:
            break
    return tiers


# -- the tier planner: which stored pages move where, given the clock ------------------------------

class PageState(Protocol):
    """What the planner reads of a stored page (the store's PageRow has it)."""

    number: int
    last_turn: int
    last_timestamp: float
    tier: str | None
    pinned_tier: str | None
    image_tier: str


@dataclass(frozen=True)
class Clock:
    """Where the conversation is now, in every unit a schedule can measure age in."""

    newest_turn: int
    newest_page: int
    now: float  # timestamp of the newest turn (ages in seconds follow the conversation, not the wall)


@dataclass(frozen=True)
class TierMove:
    """Page ``number`` goes to ``tier`` (None: out of the context); ``resample`` when its stored
    image must be made smaller first; ``delete`` when the schedule forgets it entirely."""

    number: int
    tier: Tier | None
    resample: bool = False
    delete: bool = False


def age_of(page: PageState, schedule: ScheduleConfig, clock: Clock) -> float:
    return page_age(schedule, pages_after=clock.newest_page - page.number, turns_after=clock.newest_turn - page.last_turn,
                    seconds_since=clock.now - page.last_timestamp)


def plan_moves(pages: Sequence[PageState], schedule: ScheduleConfig, clock: Clock) -> list[TierMove]:
    """The moves that bring every in-context page to the tier its age (or pin) calls for. A page
    is never sharpened: once its image was made smaller, the pixels are gone."""
    moves = []
    for page in pages:
        if page.tier is None:
            continue
        wanted = page.pinned_tier or tier_for_age(age_of(page, schedule, clock), schedule)
        if wanted is None:
            moves.append(TierMove(page.number, None, delete=schedule.after_last == "delete"))
            continue
        wanted, stored = Tier(wanted), Tier(page.image_tier)
        if wanted.side > stored.side:
            wanted = stored
        if wanted != page.tier:
            moves.append(TierMove(page.number, wanted, resample=wanted.side < stored.side))
    return moves
