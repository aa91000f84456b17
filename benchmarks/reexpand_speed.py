"""Re-expansion speed and accuracy: seconds per dense page, per engine and tier, with CER.

    python benchmarks/reexpand_speed.py [--essays ../shared/data/pg_essays] [--pages 2]
                                        [--tesseract-pages 1] [--no-embedder]

Pages: dense 1280-px chat pages from the renderer (English: Paul Graham essays cut into chat turns
of 20–200 words; Chinese: the chat sentences below, drawn with a fixed seed). Each page is read at
every tier (large 1280, base 1024, small 640, tiny 512) by:

- ppocr-strips: PP-OCRv6 recogniser on the renderer's line strips, on onnxruntime and (when the
  ``openvino`` extra is installed) OpenVINO: strips run concurrently on every usable core, and the
  same on one thread, whose CPU seconds are the cost without threading overhead;
- tesseract ``--psm 6`` on the whole page, when the binary is installed.

Wall seconds are the time of one read (after a warm-up read of the same page for ppocr-strips);
CPU seconds are user + system time of the process and its children (both cores), which is
steadier than wall time when the machine is shared. CER is the
edit distance to ``page.source_text`` over its length: "exact" as is, "ws" with whitespace
collapsed (English) or removed (Chinese, where PP-OCR adds or drops spaces around Latin words).
Also times the retrieval embedder (load, then 100 passages of ~350 chars) in a fresh process.
Writes benchmarks/results/reexpand_speed.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optmem.bench.common import Report, md_table  # noqa: E402
from optmem.bench.scoring import cer, precision  # noqa: E402
from optmem.reexpand import PPOCRStripEngine, TesseractEngine  # noqa: E402
from optmem.reexpand.backends import openvino_available  # noqa: E402
from render_speed import english_turns  # noqa: E402  (same folder: the English haystack both scripts page)
from renderers import render_pages  # noqa: E402

TIERS = ("large", "base", "small", "tiny")
ZH_SENTENCES = [
    "我们计划下个月把订单数据库从 PostgreSQL 12 迁移到 16，停机时间不超过三十分钟。",
    "主库大约有 1.2 TB 数据，其中 audit_log_2019 表就占了四百 GB，需要先归档。",
    "逻辑复制不会同步序列，切换前要为全部二百四十个序列执行 setval。",
    "财务部门每天早上七点导出报表，所以切换安排在凌晨两点到两点半之间。",
    "回滚方案的关键是保留反向复制，至少保持四十八小时，数据不会丢失。",
    "重点看复制延迟、每秒事务数、连接数和磁盘写入速度四类指标。",
    "所有指标都应该在迁移前一天建立基线，这样切换时才有对比依据。",
    "清单里记得写上每一步的负责人和预计耗时，还有异常时的联系人电话。",
    "报表服务的连接串是写死在配置文件里的，迁移后必须同步修改。",
    "把最常用的二十条查询在两个版本上分别运行，检查统计信息是否已经重新收集。",
]

EMBED_SNIPPET = r"""
import json, os, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
from optmem.retrieval import Embedder
e = Embedder(); e._load()
load_wall, load_cpu = time.perf_counter() - t0, time.process_time() - c0
texts = json.loads(sys.stdin.read())
e.encode(texts[:4])
walls, cpus = [], []
for _ in range(3):
    t = time.perf_counter(); c = time.process_time(); e.encode(texts)
    walls.append(time.perf_counter() - t); cpus.append(time.process_time() - c)
print(json.dumps({"load_wall_s": load_wall, "load_cpu_s": load_cpu,
                  "encode100_wall_s": min(walls), "encode100_cpu_s": min(cpus)}))
"""


def chinese_turns(n_chars: int = 12_000) -> list[tuple[str, str]]:
    rng, turns, total = random.Random(0), [], 0
    while total < n_chars:
        body = "".join(rng.choice(ZH_SENTENCES) for _ in range(rng.randint(2, 8)))
        turns.append(("user" if len(turns) % 2 == 0 else "assistant", body))
        total += len(body)
    return turns


def ws_normal(text: str, lang: str) -> str:
    return " ".join(text.split()) if lang == "en" else "".join(text.split())


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (tesseract runs as a subprocess)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(engine, page, tier: str, lang: str, warm: bool) -> dict:
    view = page.at(tier)
    if warm:
        engine.read(view.image, view.lines)  # model load, allocator
    t, c = time.perf_counter(), cpu_seconds()
    out = engine.read(view.image, view.lines)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    ref = page.source_text
    return {
        "wall_s": wall, "cpu_s": cpu, "chars": len(ref), "lines": len(view.lines),
        "cer_exact": cer(ref, out), "cer_ws": cer(ws_normal(ref, lang), ws_normal(out, lang)),
        "precision": precision(ref, out),
    }


def embedder_figures(essays: Path) -> dict:
    text = " ".join(re.sub(r"\s+", " ", p.read_text(encoding="utf-8")) for p in sorted(essays.glob("*.txt"))[:10])
    passages = [text[i:i + 350] for i in range(0, 350 * 100, 350)]
    out = subprocess.run([sys.executable, "-c", EMBED_SNIPPET], input=json.dumps(passages), capture_output=True,
                         text=True, cwd=ROOT, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--essays", type=Path, default=ROOT.parent / "shared" / "data" / "pg_essays")
    ap.add_argument("--pages", type=int, default=2, help="dense pages per language for ppocr-strips")
    ap.add_argument("--tesseract-pages", type=int, default=1, help="pages per language for tesseract (slow)")
    ap.add_argument("--no-embedder", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)

    if args.pages < 1 or args.tesseract_pages < 0:
        ap.error("--pages must be >= 1 and --tesseract-pages >= 0")
    keep = max(args.pages, args.tesseract_pages)
    # Only full pages: the last page of a text is partly filled.
    docs = {"en": render_pages(english_turns(args.essays, 12_000))[:-1][:keep],
            "zh": render_pages(chinese_turns())[:-1][:keep]}
    backends = ["onnxruntime"] + (["openvino"] if openvino_available() else [])
    engines: list[tuple[str, dict, int]] = []
    for backend in backends:
        for threads in (None, 1):
            engine = PPOCRStripEngine(backend=backend, threads=threads)
            label = f"ppocr-strips {engine.backend_in_use}, {engine.threads} thread{'s' if engine.threads > 1 else ''}"
            engines.append((label, {"en": engine, "zh": engine}, args.pages))
    if TesseractEngine.available():
        # One language pack per text, as a deployment that knows its language would run it.
        engines.append(("tesseract psm6", {"en": TesseractEngine(languages="eng"),
                                           "zh": TesseractEngine(languages="chi_sim")}, args.tesseract_pages))
    load_before = os.getloadavg()
    rows, results = [], []
    for label, by_lang, n_pages in engines:
        if n_pages < 1:
            continue
        for lang, pages in docs.items():
            engine = by_lang[lang]
            for tier in TIERS:
                # A subprocess engine has no warm state; a warm-up read would only double its cost.
                warm = not isinstance(engine, TesseractEngine)
                runs = [measure(engine, p, tier, lang, warm) for p in pages[:n_pages]]
                agg = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
                results.append({"engine": label, "lang": lang, "tier": tier, "pages": len(runs), **agg,
                                "runs": runs})
                rows.append([label, lang, tier, len(runs), round(agg["chars"]), round(agg["lines"]),
                             f"{agg['wall_s']:.2f}", f"{agg['cpu_s']:.2f}", f"{agg['chars'] / agg['wall_s']:.0f}",
                             f"{100 * agg['cer_exact']:.2f}", f"{100 * agg['cer_ws']:.2f}",
                             f"{100 * agg['precision']:.2f}"])
                print(" | ".join(map(str, rows[-1])), flush=True)

    report = Report("reexpand_speed", config={"pages": args.pages, "tesseract_pages": args.tesseract_pages,
                                               "essays": str(args.essays), "tiers": TIERS,
                                               "ppocr_backends": backends})
    report.results["reads"] = results
    load_after = os.getloadavg()
    report.results["load_average_1_5_15"] = {"before": load_before, "after": load_after}
    report.add("Machine load", f"Load average (1/5/15 min) before the reads: {load_before[0]:.1f} / "
               f"{load_before[1]:.1f} / {load_before[2]:.1f}; after: {load_after[0]:.1f} / {load_after[1]:.1f} / "
               f"{load_after[2]:.1f} on {os.cpu_count()} CPUs. Above ~2 the machine is shared and wall seconds "
               "overstate the cost; CPU seconds / cores in use is the better estimate of an idle machine's wall time.")
    report.add("Seconds per dense page and CER", md_table(
        ["engine", "text", "tier", "pages", "chars/page", "lines", "wall s", "CPU s", "chars/s",
         "CER % exact", "CER % ws", "precision %"], rows))
    if not args.no_embedder:
        emb = embedder_figures(args.essays)
        report.results["embedder"] = emb
        report.add("Retrieval embedder (MiniLM, plain transformers, fresh process)", md_table(
            ["load wall s", "load CPU s", "100 passages wall s", "100 passages CPU s"],
            [[f"{emb['load_wall_s']:.2f}", f"{emb['load_cpu_s']:.2f}", f"{emb['encode100_wall_s']:.2f}",
              f"{emb['encode100_cpu_s']:.2f}"]]))
        print("embedder", emb, flush=True)
    paths = report.write(args.out, quick=False)
    print(f"wrote {paths['md']} and {paths['json']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
