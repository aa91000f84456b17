"""Fault injection (issue 12): a writer SIGKILLed at random moments while every seal moves several
pages down the tiers. After each kill the database opens, history has no gaps and holds exactly
the turns written, every stored image matches its hash and its tier, the pages cover the turns
contiguously, and the next writer goes on from where the last one stopped."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from optmem import OpticalMemory
from optmem.modes import tier_side

REPO = Path(__file__).resolve().parent.parent

# Every step one page long: each seal moves every page still in context one tier down (and
# resamples its image), so most of a writer's time is spent inside seals and tier moves.
CONFIG = {"recent_turns": 1, "retrieval": {"enabled": False}, "render": {"page_px": 512, "font_px": 14},
          "schedule": {"steps": [{"tier": "gundam", "until": 1}, {"tier": "large", "until": 2},
                                 {"tier": "base", "until": 3}, {"tier": "small", "until": 4},
                                 {"tier": "tiny", "until": 5}]}}
MORE_TURNS = 12  # what the last, unkilled writer adds
KILLS = 5
SEED = 20261201


def turn_text(i: int) -> str:
    return f"turn {i} " + f"line {i} of the migration log, replica lag {i % 97} ms " * (8 + i % 5)


WRITER = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from optmem import OpticalMemory
from tests.test_fault_tier_moves import CONFIG, turn_text
with OpticalMemory.open(sys.argv[1], "kill", CONFIG) as mem:
    start = len(mem.history())
    print("ready", start, flush=True)
    for i in range(start, int(sys.argv[2])):
        mem.add("user" if i % 2 else "assistant", turn_text(i), timestamp=1_700_000_000 + i)
print("done", flush=True)
"""


def _check(path: str) -> int:
    """The invariants after a kill; returns how many turns the database holds."""
    with OpticalMemory.open(path, "kill", CONFIG) as mem:
        history = mem.history()
        assert [t.id for t in history] == list(range(1, len(history) + 1))
        assert [t.text for t in history] == [turn_text(i) for i in range(len(history))]  # none torn, none lost
        pages = mem.pages()
        assert [p.number for p in pages] == list(range(1, len(pages) + 1))
        sealed = [p for p in pages if p.sealed]
        assert all(p.sealed for p in pages[:-1])
        if pages:
            assert (pages[0].first_turn, pages[0].first_char) == (1, 0)
            assert pages[-1].last_turn == len(history) - CONFIG["recent_turns"]
        for a, b in zip(pages, pages[1:]):
            assert b.first_turn in (a.last_turn, a.last_turn + 1), (a, b)
        # A seal moves every page: tiers follow the schedule exactly, newest sharpest.
        tiers = [s["tier"] for s in CONFIG["schedule"]["steps"]]
        for p in sealed:
            image = mem.page_image(p.number)  # the store checks the stored hash
            assert image.size == (tier_side(p.image_tier),) * 2, p
            assert p.tier == (tiers[int(p.age)] if p.age < len(tiers) else None), p
            # Moves that keep the side (Gundam to Large, both 1280 px) keep the stored image.
            assert tier_side(p.image_tier) == tier_side(p.tier or tiers[-1]), p
        return len(history)


def test_writers_killed_during_tier_moves_leave_a_consistent_database_that_grows_on(tmp_path):
    path = str(tmp_path / "kill.db")
    rng = random.Random(SEED)
    held = 0
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, path, str(10**6)], stdout=subprocess.PIPE, cwd=tmp_path)
        ready = proc.stdout.readline().split()
        assert ready[0] == b"ready" and int(ready[1]) == held  # goes on from the last turn stored
        time.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = _check(path)
        assert now >= held
        held = now
    assert held > 0
    # A last writer ends the conversation without being killed.
    proc = subprocess.run([sys.executable, "-c", WRITER, path, str(held + MORE_TURNS)], capture_output=True,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == b"done", proc.stderr.decode()[-2000:]
    assert _check(path) == held + MORE_TURNS
