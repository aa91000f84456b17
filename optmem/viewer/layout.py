"""A context's segments as table rows: consecutive page images at one tier (with their ledgers)
collapse into one row, so forty tiny pages read as one line instead of forty."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from optmem.assembler import Segment
from optmem.viewer.text import number_ranges, shorten

TURN_CHARS = 160  # how much of a turn or a re-expanded page a table row shows


@dataclass
class LayoutRow:
    kind: Literal["pages", "expanded", "turn"]
    what: str
    positions: int
    tier: str | None = None  # pages rows: the tier the group is sent at
    pages: list[int] = field(default_factory=list)  # pages rows: the pages in the group


@dataclass
class _PageGroup:
    tier: str
    pages: list[int] = field(default_factory=list)
    image_positions: int = 0
    ledger_pages: list[int] = field(default_factory=list)
    ledger_positions: int = 0

    def row(self, open_page: int | None) -> LayoutRow:
        n = len(self.pages)
        what = (f"page {self.pages[0]}" if n == 1 else f"pages {number_ranges(self.pages)}") + f" at {self.tier}"
        if open_page in self.pages:
            what += f" ({open_page}: the open page)"
        what += ": "
        what += f"{n} image{'s' if n != 1 else ''} ({self.image_positions} positions)"
        if self.ledger_pages:
            what += (f" + the ledger{'s' if len(self.ledger_pages) != 1 else ''} of page{'s' if len(self.ledger_pages) != 1 else ''} "
                     f"{number_ranges(self.ledger_pages)} ({self.ledger_positions} positions)")
        return LayoutRow("pages", what, self.image_positions + self.ledger_positions, self.tier, list(self.pages))


def _single_row(s: Segment) -> LayoutRow:
    if s.kind == "expanded":
        how = f"excerpt, turns {s.first_turn}–{s.last_turn}" if s.excerpt else f"re-expanded whole, turns {s.first_turn}–{s.last_turn}"
        source = "verbatim, from the archive" if s.source == "verbatim" else f"read by OCR from its {s.tier} image"
        return LayoutRow("expanded", f"page {s.page} {how} ({source}): {shorten(s.body, TURN_CHARS)}",
                         s.positions, pages=[s.page])
    if s.kind == "turn":
        return LayoutRow("turn", f"turn {s.turn_id} · {s.role}: {shorten(s.body, TURN_CHARS)}", s.positions)
    raise ValueError(f"a {s.kind} segment outside a run of page images")  # ledgers always follow their page


def layout_rows(segments: Sequence[Segment], open_page: int | None = None) -> list[LayoutRow]:
    """One row per run of page images at one tier (the ledgers sent after them included), one
    per re-expanded page or excerpt, one per recent turn; in the context's order. ``open_page``
    (its number) is named as such in its row."""
    rows: list[LayoutRow] = []
    group: _PageGroup | None = None
    for s in segments:
        if s.kind == "page" and group is not None and group.tier == s.tier:
            group.pages.append(s.page)
            group.image_positions += s.positions
        elif s.kind == "page":
            if group is not None:
                rows.append(group.row(open_page))
            group = _PageGroup(str(s.tier), [s.page], s.positions)
        elif s.kind == "ledger" and group is not None and group.pages[-1] == s.page:
            group.ledger_pages.append(s.page)
            group.ledger_positions += s.positions
        else:
            if group is not None:
                rows.append(group.row(open_page))
                group = None
            rows.append(_single_row(s))
    if group is not None:
        rows.append(group.row(open_page))
    return rows
