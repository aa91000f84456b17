"""The tier planner: stored page states + schedule + clock -> moves; pure."""

from dataclasses import dataclass

from optmem.config import ScheduleConfig
from optmem.schedule import Clock, TierMove, plan_moves


@dataclass(frozen=True)
class Row:
    number: int
    tier: str | None
    image_tier: str
    last_turn: int = 0
    last_timestamp: float = 0.0
    pinned_tier: str | None = None


SCHEDULE = ScheduleConfig.model_validate({"age_unit": "pages", "steps": [
    {"tier": "large", "until": 2}, {"tier": "small", "until": 4}, {"tier": "tiny", "until": 6}]})


def test_pages_move_down_by_age_and_leave_past_the_last_step():
    rows = [Row(1, "tiny", "tiny"), Row(2, "small", "small"), Row(4, "large", "large"), Row(7, "large", "large")]
    moves = plan_moves(rows, SCHEDULE, Clock(newest_turn=99, newest_page=7, now=0))  # ages 6, 5, 3, 0
    assert moves == [TierMove(1, None), TierMove(2, "tiny", resample=True), TierMove(4, "small", resample=True)]


def test_pins_hold_and_nothing_is_sharpened():
    rows = [Row(1, "tiny", "tiny", pinned_tier="large"), Row(2, "small", "large", pinned_tier="large")]
    assert plan_moves(rows, SCHEDULE, Clock(99, 9, 0)) == [TierMove(2, "large")]  # page 1 keeps its tiny pixels


def test_delete_after_the_last_step_and_seconds_follow_the_conversation_clock():
    deleting = SCHEDULE.model_copy(update={"after_last": "delete"})
    assert plan_moves([Row(1, "tiny", "tiny")], deleting, Clock(99, 9, 0)) == [TierMove(1, None, delete=True)]
    by_time = ScheduleConfig.model_validate({"age_unit": "seconds", "steps": [{"tier": "large", "until": 60}]})
    assert plan_moves([Row(1, "large", "large", last_timestamp=100.0)], by_time, Clock(1, 1, now=150.0)) == []
    assert plan_moves([Row(1, "large", "large", last_timestamp=100.0)], by_time, Clock(1, 1, now=170.0)) == [TierMove(1, None)]
