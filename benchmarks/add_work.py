"""Work per add(): bounded whatever the turn (issue 12, item 10).

    python benchmarks/add_work.py [--long-chars 1000000] [--tiny-turns 10000] [--out benchmarks/results]

Two cases on an in-memory store, retrieval off (embedding is not part of add):
- one turn of ``--long-chars`` characters, then 40 short turns: the slowest single add, and the
  seconds until every page of the long turn is sealed;
- ``--tiny-turns`` turns of two words each: total seconds, turns/s and the slowest add.
Prints the figures and writes add_work.{json,md} under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optmem import OpticalMemory  # noqa: E402
from optmem.memory import MAX_SEALS_PER_ADD  # noqa: E402

CONFIG = {"recent_turns": 4, "retrieval": {"enabled": False}}


def _timed_adds(mem, turns, t0: float) -> list[float]:
    out = []
    for i, (role, text) in enumerate(turns):
        start = time.perf_counter()
        mem.add(role, text, timestamp=t0 + 60 * i)
        out.append(time.perf_counter() - start)
    return out


def long_turn(chars: int) -> dict:
    words = " ".join(f"word{i}" for i in range(chars // 8))[:chars]
    with OpticalMemory.open(":memory:", "long", CONFIG) as mem:
        mem.add("user", "warm up the tokenizer and fonts", timestamp=1_700_000_000)
        started = time.perf_counter()
        adds = _timed_adds(mem, [("user", words)] + [("assistant", f"short reply {i}") for i in range(40)], 1_700_000_060)
        sealed_in_adds = sum(p.sealed for p in mem.pages())
        flush_start = time.perf_counter()
        mem.flush()
        flush_s = time.perf_counter() - flush_start
        return {"chars": len(words), "adds": len(adds), "slowest_add_s": max(adds),
                "median_add_s": statistics.median(adds), "pages_sealed_by_the_adds": sealed_in_adds,
                "pages_total": sum(p.sealed for p in mem.pages()), "flush_s": flush_s,
                "total_s": time.perf_counter() - started}


def tiny_turns(n: int) -> dict:
    with OpticalMemory.open(":memory:", "tiny", CONFIG) as mem:
        mem.add("user", "warm up", timestamp=1_699_999_000)
        started = time.perf_counter()
        adds = _timed_adds(mem, [("user" if i % 2 else "assistant", f"ok {i}") for i in range(n)], 1_700_000_000)
        total = time.perf_counter() - started
        adds.sort()
        return {"turns": n, "total_s": total, "turns_per_s": n / total, "slowest_add_s": adds[-1],
                "p99_add_s": adds[int(0.99 * (len(adds) - 1))], "pages": sum(p.sealed for p in mem.pages())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--long-chars", type=int, default=1_000_000)
    p.add_argument("--tiny-turns", type=int, default=10_000)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    load_before = os.getloadavg()
    results = {"max_seals_per_add": MAX_SEALS_PER_ADD, "long_turn": long_turn(args.long_chars),
               "tiny_turns": tiny_turns(args.tiny_turns),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_before": load_before, "load_after": os.getloadavg()}}
    lt, tt = results["long_turn"], results["tiny_turns"]
    md = (f"# Work per add (`python benchmarks/add_work.py`)\n\n"
          f"At most {MAX_SEALS_PER_ADD} pages are sealed per add; `flush()` seals the rest.\n\n"
          f"| case | figure |\n|---|---|\n"
          f"| one {lt['chars']:,}-character turn + 40 short ones: slowest add | {lt['slowest_add_s']:.2f} s |\n"
          f"| same: median add | {lt['median_add_s'] * 1000:.0f} ms |\n"
          f"| same: pages sealed by those 41 adds / in all | {lt['pages_sealed_by_the_adds']} / {lt['pages_total']} |\n"
          f"| same: flush() of the rest | {lt['flush_s']:.1f} s |\n"
          f"| {tt['turns']:,} two-word turns: total | {tt['total_s']:.1f} s ({tt['turns_per_s']:.0f} turns/s) |\n"
          f"| same: p99 / slowest add | {tt['p99_add_s'] * 1000:.0f} ms / {tt['slowest_add_s'] * 1000:.0f} ms |\n\n"
          f"Load average {load_before[0]:.1f} before, {results['machine']['load_after'][0]:.1f} after; "
          f"{os.cpu_count()} CPUs.\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "add_work.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "add_work.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
