"""Renderer speed and density at 1280 px: dense English and Chinese chat pages.

    python benchmarks/render_speed.py [--essays DIR] [--repeats 3]

Prints pages/s for layout + draw and, separately, for PNG encoding; tokens per full page
(DeepSeek BPE, optmem.tokens); glyph heights after downsampling to the 512 px tier. Writes
benchmarks/results/render_speed.{md,json}. English text: Paul Graham essays (the NIAH haystack,
unwrapped and cut into chat turns of 20–200 words); Chinese: the chat sentences below, shuffled into
turns. Only full pages are timed (the last, partly filled page of each text is dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import features

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optmem.bench.haystack import ZH_SENTENCES  # noqa: E402
from optmem.tokens import count_tokens  # noqa: E402
from renderers import RENDERER_VERSION, RenderConfig, draw_layout, encode_png, layout_pages, render_pages  # noqa: E402



def english_turns(essays: Path, max_words: int = 60_000) -> list[tuple[str, str]]:
    texts = [p.read_text(encoding="utf-8") for p in sorted(essays.glob("*.txt"))]
    if not texts:
        raise FileNotFoundError(f"no *.txt essays under {essays}")
    words = " ".join(re.sub(r"\s+", " ", t) for t in texts).split(" ")[:max_words]
    rng, turns, i = random.Random(0), [], 0
    while i < len(words):
        n = rng.randint(20, 200)
        turns.append(("user" if len(turns) % 2 == 0 else "assistant", " ".join(words[i:i + n])))
        i += n
    return turns


def chinese_turns(n_turns: int = 600) -> list[tuple[str, str]]:
    rng = random.Random(0)
    return [("用户" if i % 2 == 0 else "助手", "".join(rng.choice(ZH_SENTENCES) for _ in range(rng.randint(1, 8))))
            for i in range(n_turns)]


def page_tokens(layout, turns) -> int:
    return count_tokens("\n".join(turns[s.turn_index][1][s.start:s.end] for s in layout.segments))


def time_text(turns, repeats: int) -> dict:
    layout_pages(turns[:20])  # warm the glyph caches for a fair steady-state figure
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        layouts = layout_pages(turns)[:-1]
        t1 = time.perf_counter()
        images = [draw_layout(lay) for lay in layouts]
        t2 = time.perf_counter()
        pngs = [encode_png(im) for im in images]
        t3 = time.perf_counter()
        runs.append((len(layouts), t1 - t0, t2 - t1, t3 - t2, sum(map(len, pngs))))
    n = runs[0][0]
    layout_s = statistics.median(r[1] for r in runs)
    draw_s = statistics.median(r[2] for r in runs)
    png_s = statistics.median(r[3] for r in runs)
    tokens = [page_tokens(lay, turns) for lay in layout_pages(turns)[:-1]]
    return {
        "pages": n,
        "layout_ms_per_page": round(1000 * layout_s / n, 2),
        "draw_ms_per_page": round(1000 * draw_s / n, 2),
        "layout_draw_pages_per_s": round(n / (layout_s + draw_s), 1),
        "png_ms_per_page": round(1000 * png_s / n, 2),
        "png_pages_per_s": round(n / png_s, 1),
        "all_in_pages_per_s": round(n / (layout_s + draw_s + png_s), 1),
        "png_kib_per_page": round(runs[0][4] / n / 1024, 1),
        "tokens_per_page_min": min(tokens),
        "tokens_per_page_median": statistics.median(tokens),
        "tokens_per_page_mean": round(statistics.mean(tokens), 1),
    }


def layout_scaling(turns) -> list[dict]:
    """Layout time of one long turn at growing sizes: linear time shows as constant chars/s."""
    base = " ".join(t for _, t in turns)
    out = []
    for n in (125_000, 250_000, 500_000, 1_000_000):
        text = (base * (n // len(base) + 1))[:n]
        t0 = time.perf_counter()
        pages = len(layout_pages([("user", text)]))
        dt = time.perf_counter() - t0
        out.append({"chars": n, "pages": pages, "seconds": round(dt, 3), "chars_per_s": round(n / dt)})
    return out


def glyph_heights() -> dict:
    """Ink heights at the 512 tier, rows with any pixel darker than 128 (and than 200)."""
    cfg = RenderConfig()
    out = {"font_em_px_at_512": cfg.font_px * 512 / cfg.page_px}
    for name, text in (("cap_H", "H" * 40), ("x_height_x", "x" * 40), ("H_to_g_descender", "Hg" * 20),
                       ("cjk_国", "国" * 30)):
        tiny = np.asarray(render_pages(text)[0].at("tiny").image)
        for thr in (128, 200):
            rows = np.flatnonzero((tiny < thr).any(axis=1))
            out[f"{name}_px_lt{thr}"] = int(rows[-1] - rows[0] + 1) if rows.size else 0
    return out


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "pillow": PIL.__version__, "freetype": features.version("freetype2"), "numpy": np.__version__,
        "renderer_version": RENDERER_VERSION,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),  # other work on the box slows every figure
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--essays", type=Path, default=ROOT.parent / "shared" / "data" / "pg_essays")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    if not args.essays.is_dir():
        ap.error(f"essay directory {args.essays} not found (pass --essays)")
    results = {
        "config": RenderConfig().model_dump(),
        "machine": machine(),
        "english": time_text(english_turns(args.essays), args.repeats),
        "chinese": time_text(chinese_turns(), args.repeats),
        "glyphs_at_512": glyph_heights(),
    }
    results["layout_scaling_one_turn"] = layout_scaling(english_turns(args.essays))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "render_speed.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    md = ["# Renderer speed at 1280 px", "",
          f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, Python "
          f"{results['machine']['python']}, Pillow {results['machine']['pillow']} (FreeType "
          f"{results['machine']['freetype']}), load average {results['machine']['load_average_1m_at_start']} at start. "
          f"Median of {args.repeats} runs; full pages only.", "",
          "| text | pages | layout ms | draw ms | layout+draw pages/s | PNG ms | PNG pages/s | all-in pages/s "
          "| PNG KiB | tokens/page min / median |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("english", "chinese"):
        r = results[name]
        md.append(f"| {name} | {r['pages']} | {r['layout_ms_per_page']} | {r['draw_ms_per_page']} | "
                  f"{r['layout_draw_pages_per_s']} | {r['png_ms_per_page']} | {r['png_pages_per_s']} | "
                  f"{r['all_in_pages_per_s']} | {r['png_kib_per_page']} | {r['tokens_per_page_min']} / "
                  f"{r['tokens_per_page_median']} |")
    g = results["glyphs_at_512"]
    md += ["", "Glyph heights at the 512 px tier (ink rows darker than 128 / 200):", "",
           f"- font em: {g['font_em_px_at_512']} px",
           f"- 'H' cap top to 'g' descender: {g['H_to_g_descender_px_lt128']} / {g['H_to_g_descender_px_lt200']} px",
           f"- cap height 'H': {g['cap_H_px_lt128']} / {g['cap_H_px_lt200']} px",
           f"- x-height 'x': {g['x_height_x_px_lt128']} / {g['x_height_x_px_lt200']} px",
           f"- CJK '国': {g['cjk_国_px_lt128']} / {g['cjk_国_px_lt200']} px", ""]
    md += ["Layout of one long English turn (linear time = steady chars/s):", "",
           "| chars | pages | seconds | chars/s |", "|---|---|---|---|"]
    md += [f"| {r['chars']} | {r['pages']} | {r['seconds']} | {r['chars_per_s']} |"
           for r in results["layout_scaling_one_turn"]]
    md.append("")
    (args.out / "render_speed.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
