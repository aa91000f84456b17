"""Memory for a reader without eyes: whole turns, as many as the budget holds, best ranked first.

A chosen turn goes in as one line, ``role: text``, and consecutive chosen turns share one heading
that gives their dates, so a run of turns costs little more than the turns themselves
(a heading per turn would cost more than most LoCoMo turns do). Selection is greedy in rank
order with each turn priced by what it adds: its line, plus a heading when it starts a run of
its own, minus one when it joins two runs. The exact cost of the final runs is then checked and,
where token merges at the joins make it dearer, the lowest-ranked turns are dropped until it fits.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from optmem.allocation import TextItem
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


@lru_cache(maxsize=4096)  # asked for every turn a context prices; a conversation has few distinct days
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


def turn_price(turn: TurnRow, chosen: Container[int], cost: Callable[[str], int]) -> int:
    """What ``turn`` adds to the runs of ``chosen``: its line, plus a heading when it starts a run
    of its own, minus one when it joins two runs."""
    joins = (turn.seq - 1 in chosen) + (turn.seq + 1 in chosen)
    heading = cost(run_heading(turn, turn) + "\n") if joins != 1 else 0
    return cost(turn_line(turn) + "\n") + (heading if joins == 0 else -heading)


class RankedTurns:
    """Turns best ranked first, offered one at a time (an ``optmem.allocation.TextStream``).

    ``fetch`` gives a turn by id (None: gone); ``value`` what a turn is worth as text. A turn whose
    text is None is passed to ``textless(turn, budget left)``, which offers something else for it
    (its page read back whole) or None. After ``max_misses`` offers in a row were skipped or came
    to nothing, the ranking's tail is not looked at."""

    def __init__(self, order: Iterable[int], fetch: Callable[[int], TurnRow | None], cost: Callable[[str], int], *,
                 value: Callable[[int], float] = lambda seq: 0.0,
                 textless: Callable[[TurnRow, int], TextItem | None] | None = None,
                 max_misses: int = MAX_MISSES_IN_A_ROW):
        self._max_misses = max_misses
        self._order = iter(dict.fromkeys(order))
        self._fetch, self._cost, self._value, self._textless = fetch, cost, value, textless
        self.chosen: dict[int, TurnRow] = {}
        self._rank: list[int] = []
        self.elsewhere: list[TextItem] = []  # the textless offers taken
        self._misses = 0
        self._turns: dict[int, TurnRow] = {}

    def offer(self, left: int) -> TextItem | None:
        while self._misses < self._max_misses and left > 0:
            seq = next(self._order, None)
            if seq is None:
                return None
            turn = self._fetch(seq)
            if turn is None:
                continue
            if turn.text is None:
                item = self._textless(turn, left) if self._textless is not None else None
                if item is None:
                    self._misses += 1
                    continue
                return item
            self._turns[seq] = turn
            return TextItem(turn_price(turn, self.chosen, self._cost), self._value(seq), (seq,))
        return None

    def take(self, item: TextItem) -> None:
        self._misses = 0
        if item.replaces_page is not None or len(item.turns) != 1 or item.turns[0] not in self._turns:
            self.elsewhere.append(item)
            return
        seq = item.turns[0]
        self.chosen[seq] = self._turns.pop(seq)
        self._rank.append(seq)

    def skip(self, item: TextItem) -> None:
        self._misses += 1
        for seq in item.turns:
            self._turns.pop(seq, None)

    def runs(self, budget: int) -> list[TurnRun]:
        """The chosen turns as runs whose exact cost, with the textless offers taken, fits in
        ``budget``: where token merges at the joins made the estimate short, the lowest-ranked turns go."""
        runs = turn_runs(self.chosen.values())
        while self._rank and sum(self._cost(r.text) for r in runs) + sum(i.positions for i in self.elsewhere) > budget:
            del self.chosen[self._rank.pop()]
            runs = turn_runs(self.chosen.values())
        return runs


def select_turns(order: Iterable[int], fetch: Callable[[int], TurnRow | None], cost: Callable[[str], int],
                 budget: int, *, textless: Callable[[TurnRow, int], TextItem | None] | None = None) -> list[TurnRun]:
    """Runs of the turns of ``order`` (turn ids, best first) that fit in ``budget`` of ``cost``,
    each taken in rank order where it fits (RankedTurns)."""
    stream = RankedTurns(order, fetch, cost, textless=textless)
    fill(stream, budget)
    return stream.runs(budget)


def fill(stream: RankedTurns, budget: int) -> None:
    """Take every offer of ``stream`` that fits in what is left of ``budget``."""
    left = budget
    while (item := stream.offer(left)) is not None:
        if item.positions > left:
            stream.skip(item)
        else:
            stream.take(item)
            left -= item.positions
