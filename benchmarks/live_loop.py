"""README's chat loop, timed: what `context(query)` costs a live conversation, the first call included.

    python benchmarks/live_loop.py [--history 1000] [--turns 40] [--models gpt-4o deepseek-ocr] [--out benchmarks/results]

For each model: a file store gets ``--history`` chat turns (the demo's generator, by ``add_many()``)
and is closed; then, as README's loop does after a restart, a fresh Python process opens it again,
runs ``warm_up()`` (MiniLM, the turn vectors, the tokenizers, the memory turns' token counts), and
``--turns`` rounds of ``add(user)``, ``context(query=that message)``, ``add(assistant)`` follow.
Reported: `context(query)` p50 / p95 / max and the first call, `add()` p50 / p95, and warm_up's
seconds. Prints the figures and writes live_loop.{json,md} under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optmem import OpticalMemory  # noqa: E402
from optmem.demo import build_conversation  # noqa: E402
from optmem.retrieval.embedder import default_embedder  # noqa: E402

T0 = 1_700_000_000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_model(model: str, history: int, rounds: int, workdir: Path) -> dict:
    turns, _ = build_conversation(history, seed=7)
    db = workdir / f"live_{model}.db"
    with OpticalMemory.open(db, conversation="alice", config={"model": model}) as mem:
        mem.add_many((role, text, T0 + 60 * i) for i, (role, text) in enumerate(turns))
    live = subprocess.run([sys.executable, __file__, "--live", str(db), model, str(history), str(rounds)],
                          check=True, capture_output=True, text=True)
    return json.loads(live.stdout.strip().splitlines()[-1])


def live_rounds(db: Path, model: str, history: int, rounds: int) -> dict:
    """The loop after a restart: this runs in a process of its own."""
    turns, _ = build_conversation(history + 2 * rounds, seed=7)
    live = turns[history:]
    with OpticalMemory.open(db, conversation="alice", config={"model": model}) as mem:
        started = time.perf_counter()
        mem.warm_up()
        warm_up_s = time.perf_counter() - started
        queries, adds = [], []
        for r in range(rounds):
            (_, message), (_, reply) = live[2 * r], live[2 * r + 1]
            at = T0 + 60 * (history + 2 * r)
            started = time.perf_counter()
            mem.add("user", message, timestamp=at)
            adds.append(time.perf_counter() - started)
            started = time.perf_counter()
            mem.context(query=message, system="You are a helpful assistant.")
            queries.append(time.perf_counter() - started)
            started = time.perf_counter()
            mem.add("assistant", reply, timestamp=at + 30)
            adds.append(time.perf_counter() - started)
    ms = lambda s: round(1000 * s, 1)  # noqa: E731
    return {"model": model, "history": history, "rounds": rounds, "warm_up_s": round(warm_up_s, 2),
            "first_query_ms": ms(queries[0]), "query_p50_ms": ms(_percentile(queries, 50)),
            "query_p95_ms": ms(_percentile(queries, 95)), "query_max_ms": ms(max(queries)),
            "add_p50_ms": ms(statistics.median(adds)), "add_p95_ms": ms(_percentile(adds, 95)),
            "embedder_bfloat16": default_embedder().uses_bfloat16}


def main() -> None:
    if sys.argv[1:2] == ["--live"]:
        db, model, history, rounds = sys.argv[2:6]
        print(json.dumps(live_rounds(Path(db), model, int(history), int(rounds))))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", type=int, default=1000)
    p.add_argument("--turns", type=int, default=40, help="rounds of user turn, context(query), reply")
    p.add_argument("--models", nargs="+", default=["gpt-4o", "deepseek-ocr"])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args()
    if args.history < 1 or args.turns < 1:
        p.error("--history and --turns must be at least 1")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="optmem-live-") as tmp:
        rows = [run_model(model, args.history, args.turns, Path(tmp)) for model in args.models]
    bfloat16 = all(r["embedder_bfloat16"] for r in rows)
    results = {"rows": rows, "embedder_bfloat16": bfloat16,
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor(),
                           "load_before": load_before, "load_after": os.getloadavg()}}
    head = ("| model | history turns | warm_up s | first query ms | query p50 ms | query p95 ms | query max ms "
            "| add p50 ms | add p95 ms |\n|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r['model']} | {r['history']} | {r['warm_up_s']} | {r['first_query_ms']} | {r['query_p50_ms']} "
                   f"| {r['query_p95_ms']} | {r['query_max_ms']} | {r['add_p50_ms']} | {r['add_p95_ms']} |\n" for r in rows)
    md = (f"# README's chat loop (`python benchmarks/live_loop.py`)\n\n"
          f"A store of {args.history} chat turns is reopened, `warm_up()` runs, then {args.turns} rounds of "
          f"`add(user)`, `context(query)`, `add(assistant)`, in a process of its own, as after a restart. MiniLM ran in "
          f"{'bfloat16' if bfloat16 else 'float32'}.\n\n{head}{body}\n"
          f"Load average {load_before[0]:.1f} before, {results['machine']['load_after'][0]:.1f} after; "
          f"{os.cpu_count()} CPUs.\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "live_loop.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "live_loop.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
