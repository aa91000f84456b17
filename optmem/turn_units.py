"""Memory for a reader without eyes: whole turns, as many as the budget holds, best ranked first.

A chosen turn goes in as one line, ``role: text``, and consecutive chosen turns share one heading
that gives their dates, so a run of turns costs little more than the turns themselves
(a heading per turn would cost more than most LoCoMo turns do). A run of one day that follows a
run ending that day goes without one: the heading above still dates it (whatever lies between
the two in the context lies between them in time), and at 16384 positions a LoCoMo context
carried ~80 runs over ~19 days. Selection is greedy in rank order with each turn priced by what
it adds: its line, and the headings it makes, drops or changes (its own run's, and the next
run's, which now follows it). The exact cost of the final runs is then checked and, where token
merges at the joins make it dearer, the lowest-ranked turns are dropped until it fits.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache

from optmem.allocation import TextItem
from optmem.store import TurnRow

# A ranking's tail rarely fits once this many turns in a row did not: stop looking there.
MAX_MISSES_IN_A_ROW = 256


@dataclass(frozen=True)
class TurnRun:
    """Consecutive chosen turns, as they go into the context. ``heading`` is "" when the run before
    dates it (``dated`` is its own heading all the same, for a context that leaves that run out)."""

    first: int
    last: int
    heading: str
    body: str
    dated: str = ""

    @property
    def text(self) -> str:
        # as the assembler frames an expansion with a heading
        return f"{self.heading}\n{self.body}\n" if self.heading else f"{self.body}\n"


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


def shown_heading(first: TurnRow, last: TurnRow, before: TurnRow | None) -> str:
    """The heading a run shows after the run ending with ``before``: none when both lie in one day."""
    if before is not None and _date(first.timestamp) == _date(last.timestamp) == _date(before.timestamp):
        return ""
    return run_heading(first, last)


def turn_runs(turns: Iterable[TurnRow]) -> list[TurnRun]:
    """The turns (with text) grouped into runs of consecutive ids, oldest first."""
    runs: list[list[TurnRow]] = []
    for turn in sorted(turns, key=lambda t: t.seq):
        if runs and runs[-1][-1].seq == turn.seq - 1:
            runs[-1].append(turn)
        else:
            runs.append([turn])
    return [TurnRun(run[0].seq, run[-1].seq, shown_heading(run[0], run[-1], runs[i - 1][-1] if i else None),
                    "\n".join(turn_line(t) for t in run), run_heading(run[0], run[-1]))
            for i, run in enumerate(runs)]


class ChosenTurns:
    """Chosen turns by id, in order, with their runs' ends, pricing what one more would add."""

    def __init__(self, cost: Callable[[str], int]):
        self._cost = cost
        self.turns: dict[int, TurnRow] = {}
        self._seqs: list[int] = []
        self._end_of: dict[int, int] = {}  # a run's first id -> its last
        self._start_of: dict[int, int] = {}  # a run's last id -> its first
        # A context prices up to four headings an offer, from a few distinct dates: asking the
        # reader each time (a digest and a lookup) made gpt-4o's first query in the live loop 18 ms slower.
        self._heading_costs: dict[str, int] = {}

    def add(self, turn: TurnRow) -> None:
        seq = turn.seq
        start = self._start_of.pop(seq - 1, seq)
        end = self._end_of.pop(seq + 1, seq)
        self._end_of.pop(start, None)
        self._start_of.pop(end, None)
        self._end_of[start], self._start_of[end] = end, start
        self.turns[seq] = turn
        insort(self._seqs, seq)

    def remove(self, seq: int) -> None:
        """Leave ``seq`` out again (rare: the runs' exact cost came out over the estimates)."""
        del self.turns[seq]
        del self._seqs[bisect_left(self._seqs, seq)]
        self._end_of.clear()
        self._start_of.clear()
        for run in turn_runs(self.turns.values()):
            self._end_of[run.first], self._start_of[run.last] = run.last, run.first

    def _before(self, seq: int) -> TurnRow | None:
        """The chosen turn just before ``seq`` (chosen or not)."""
        i = bisect_left(self._seqs, seq)
        return self.turns[self._seqs[i - 1]] if i else None

    def _after(self, seq: int) -> TurnRow | None:
        i = bisect_left(self._seqs, seq + 1)
        return self.turns[self._seqs[i]] if i < len(self._seqs) else None

    def _run_end(self, first: int) -> TurnRow:
        return self.turns[self._end_of[first]]

    def _run_start(self, last: int) -> TurnRow:
        return self.turns[self._start_of[last]]

    def _heading_cost(self, first: TurnRow, last: TurnRow, before: TurnRow | None) -> int:
        heading = shown_heading(first, last, before)
        if not heading:
            return 0
        cost = self._heading_costs.get(heading)
        if cost is None:
            cost = self._heading_costs[heading] = self._cost(heading + "\n")
        return cost

    def price(self, turn: TurnRow) -> int:
        """What ``turn`` adds: its line, and the change in headings of its run and the next."""
        seq, runs_before, runs_after = turn.seq, 0, 0
        left = self._run_start(seq - 1) if seq - 1 in self.turns else None
        first = left or turn
        before_first = self._before(first.seq)
        if left is not None:
            runs_before += self._heading_cost(left, self.turns[seq - 1], before_first)
        nxt = self._after(seq)
        if nxt is not None and nxt.seq == seq + 1:  # joins the run after: one run, dated once
            last = self._run_end(nxt.seq)
            runs_before += self._heading_cost(nxt, last, self.turns[seq - 1] if left else before_first)
            runs_after += self._heading_cost(first, last, before_first)
        else:
            runs_after += self._heading_cost(first, turn, before_first)
            if nxt is not None:  # the next run now follows this turn
                last = self._run_end(nxt.seq)
                prior = self.turns[seq - 1] if left else before_first
                runs_before += self._heading_cost(nxt, last, prior)
                runs_after += self._heading_cost(nxt, last, turn)
        return self._cost(turn_line(turn) + "\n") + runs_after - runs_before


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
        self._chosen = ChosenTurns(cost)
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
            return TextItem(self._chosen.price(turn), self._value(seq), (seq,))
        return None

    def take(self, item: TextItem) -> None:
        self._misses = 0
        if item.replaces_page is not None or len(item.turns) != 1 or item.turns[0] not in self._turns:
            self.elsewhere.append(item)
            return
        seq = item.turns[0]
        self._chosen.add(self._turns.pop(seq))
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
            self._chosen.remove(self._rank.pop())
            runs = turn_runs(self.chosen.values())
        return runs

    @property
    def chosen(self) -> dict[int, TurnRow]:
        return self._chosen.turns


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
