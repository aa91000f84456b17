"""Memory for a reader without eyes: whole turns, as many as the budget holds, best ranked first.

A chosen turn goes in as one line, ``role: text``, and consecutive chosen turns share one heading
that gives their dates, so a run of turns costs little more than the turns themselves
(a heading per turn would cost more than most LoCoMo turns do). Selection is greedy in rank
order with each turn priced by what it adds: its line, plus a heading when it starts a run of
its own, minus one when it joins two runs. The exact cost of the final runs is then checked and,
where token merges at the joins make it dearer, the lowest-ranked turns are dropped until it fits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from optmem.store import TurnRow

# A ranking's tail rarely fits once this many turns in a row did not: stop looking there.
MAX_MISSES_IN_A_ROW = 256


@dataclass(frozen=True)
class TurnRun:
    """Consecutive chosen turns, as they go into the context."""

    first: int
    last: int
    heading: str
    body: str

    @property
    def text(self) -> str:
        return f"{self.heading}\n{self.body}\n"  # as the assembler frames an expansion with a heading


def _date(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "undated"


def turn_line(turn: TurnRow) -> str:
    return f"{turn.role}: {turn.text}"


def run_heading(first: TurnRow, last: TurnRow) -> str:
    """The run's dates: what a reader needs to place it in time. Turn ids would cost as much again
    (every digit is a token) and tell a reader nothing; the segment keeps them."""
    start, end = _date(first.timestamp), _date(last.timestamp)
    return f"[{start}]" if start == end else f"[{start} to {end}]"


def turn_runs(turns: Iterable[TurnRow]) -> list[TurnRun]:
    """The turns (with text) grouped into runs of consecutive ids, oldest first."""
    runs: list[list[TurnRow]] = []
    for turn in sorted(turns, key=lambda t: t.seq):
        if runs and runs[-1][-1].seq == turn.seq - 1:
            runs[-1].append(turn)
        else:
            runs.append([turn])
    return [TurnRun(run[0].seq, run[-1].seq, run_heading(run[0], run[-1]), "\n".join(turn_line(t) for t in run))
            for run in runs]


def select_turns(order: Iterable[int], fetch: Callable[[int], TurnRow | None], cost: Callable[[str], int],
                 budget: int, *, textless: Callable[[TurnRow, int], int | None] | None = None) -> list[TurnRun]:
    """Runs of the turns of ``order`` (turn ids, best first) that fit in ``budget`` of ``cost``.

    ``fetch`` gives a turn by id (None: gone). A turn whose text is None is offered to
    ``textless(turn, budget left)``, which returns what it spent for it (None: nothing)."""
    chosen: dict[int, TurnRow] = {}
    rank: list[int] = []
    left, misses, elsewhere = budget, 0, 0
    for seq in dict.fromkeys(order):
        if misses >= MAX_MISSES_IN_A_ROW or left <= 0:
            break
        turn = fetch(seq)
        if turn is None:
            continue
        if turn.text is None:
            spent = textless(turn, left) if textless is not None else None
            if spent is None:
                misses += 1
            else:
                left -= spent
                elsewhere += spent
                misses = 0
            continue
        joins = (seq - 1 in chosen) + (seq + 1 in chosen)
        heading = cost(run_heading(turn, turn) + "\n") if joins != 1 else 0
        price = cost(turn_line(turn) + "\n") + (heading if joins == 0 else -heading)
        if price > left:
            misses += 1
            continue
        chosen[seq] = turn
        rank.append(seq)
        left -= price
        misses = 0
    runs = turn_runs(chosen.values())
    while rank and sum(cost(r.text) for r in runs) + elsewhere > budget:
        del chosen[rank.pop()]  # the estimate was short at a join: the lowest-ranked turn goes
        runs = turn_runs(chosen.values())
    return runs

