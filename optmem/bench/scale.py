"""`optmem bench scale`: ingest rate, database size, context latency and peak memory against the
number of turns (1k, 10k, 100k), each in a fresh on-disk database."""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, get_args

from pydantic import Field, model_validator

from optmem.config import MemoryConfig
from optmem.retrieval.embedder import Precision

from .common import (
    DEFAULT_SEED,
    BenchConfig,
    MemoryConfigField,
    Report,
    RunStart,
    add_out_argument,
    data_help,
    default_data,
    md_table,
    new_figure,
    percentile,
    progress,
)
from .haystack import essay_turns, load_essays

FULL_COUNTS = (1_000, 10_000, 100_000)
QUICK_COUNTS = (40, 120, 240)


class ScaleConfig(BenchConfig):
    counts: tuple[Annotated[int, Field(ge=10)], ...] = Field(default=FULL_COUNTS, min_length=1)  # turns
    repeats: int = Field(default=20, ge=1)  # context() calls per measurement
    seed: int = DEFAULT_SEED
    essays: Path = Field(default_factory=lambda: default_data("pg_essays"))
    memory_config: MemoryConfigField = MemoryConfig()
    # MiniLM's matrix products: "auto" is bfloat16 on a CPU with AMX or AVX-512 BF16, float32 elsewhere
    embed_precision: Precision = "auto"
    min_turn_tokens: int = Field(default=20, ge=1)
    max_turn_tokens: int = Field(default=120, ge=1)

    @model_validator(mode="after")
    def _turn_sizes_ordered(self) -> ScaleConfig:
        if self.min_turn_tokens > self.max_turn_tokens:
            raise ValueError(f"min_turn_tokens {self.min_turn_tokens} is above max_turn_tokens {self.max_turn_tokens}")
        return self


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class PeakRSS:
    """Samples this process's resident set every 20 ms while in the ``with`` block."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def measure(n_turns: int, turns, queries: Sequence[str], cfg: ScaleConfig, workdir: Path, embedder) -> dict:
    from optmem import OpticalMemory

    mem_cfg = cfg.memory_config
    db = workdir / f"scale_{n_turns}.db"
    with PeakRSS() as rss:
        mem = OpticalMemory.open(db, conversation="scale", config=mem_cfg, embedder=embedder)
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            mem.add_many((t.role, t.text) for t in progress(turns[:n_turns], desc=f"scale ingest {n_turns}"))
            ingest_s, ingest_cpu_s = time.perf_counter() - t0, time.process_time() - c0
            no_query = []
            for _ in range(cfg.repeats):
                t0 = time.perf_counter()
                mem.context()
                no_query.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            mem.context(queries[0])  # embeds every page not yet indexed: reported on its own
            first_query_s = time.perf_counter() - t0
            with_query = []
            for i in range(cfg.repeats):
                t0 = time.perf_counter()
                mem.context(queries[1 + i % (len(queries) - 1)])
                with_query.append(time.perf_counter() - t0)
            pages = len(mem.pages())
        finally:
            mem.close()
    return {
        "turns": n_turns, "pages": pages, "ingest_s": round(ingest_s, 3),
        "turns_per_s": round(n_turns / ingest_s, 2),
        # CPU seconds of the whole process: the rendering thread and the worker embedding beside it.
        "turns_per_cpu_s": round(n_turns / ingest_cpu_s, 2), "db_bytes": _db_bytes(db),
        "context_p50_ms": round(1000 * percentile(no_query, 50), 2), "context_p95_ms": round(1000 * percentile(no_query, 95), 2),
        "query_first_ms": round(1000 * first_query_s, 1),
        "query_p50_ms": round(1000 * percentile(with_query, 50), 2), "query_p95_ms": round(1000 * percentile(with_query, 95), 2),
        "rss_start_mib": round(rss.start / 2**20, 1), "rss_peak_mib": round(rss.peak / 2**20, 1),
        "rss_growth_mib": round((rss.peak - rss.start) / 2**20, 1),
    }


def run(cfg: ScaleConfig, workdir: Path | None = None) -> dict:
    rng = random.Random(f"{cfg.seed}|scale")
    n = max(cfg.counts)
    # Chat-sized turns: each turn's token count is drawn between min and max; the essays wrap around.
    essays = load_essays(cfg.essays)
    turns = []
    while len(turns) < n:
        turns += essay_turns(essays, 200_000, rng, min_tokens=cfg.min_turn_tokens, max_tokens=cfg.max_turn_tokens)
    turns = turns[:n]
    queries = [rng.choice(turns).text.split(". ")[0][:200] for _ in range(cfg.repeats + 1)]
    # Load the embedder before timing: "first query" is then the embedding of every page, not the model load.
    # Not the benchmarks' remembering embedder: its memo would count in the memory figures.
    from optmem.retrieval import Embedder

    embedder = Embedder(precision=cfg.embed_precision)
    embedder.encode(["warm up"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="optmem-scale-", dir=workdir) as tmp:
        for count in sorted(cfg.counts):
            rows.append(measure(count, turns, queries, cfg, Path(tmp), embedder))
            for leftover in Path(tmp).glob("*"):
                leftover.unlink()
    return {"rows": rows, "embedder_bfloat16": embedder.uses_bfloat16}


COLUMNS = (("turns", "turns"), ("pages", "pages"), ("turns_per_s", "ingest turns/s"),
           ("turns_per_cpu_s", "ingest turns/CPU-s"), ("db_bytes", "DB bytes"),
           ("context_p50_ms", "context p50 ms"), ("context_p95_ms", "context p95 ms"),
           ("query_first_ms", "first query ms"), ("query_p50_ms", "query p50 ms"), ("query_p95_ms", "query p95 ms"),
           ("rss_peak_mib", "peak RSS MiB"), ("rss_growth_mib", "RSS growth MiB"))


NOTES = {
    "turns": "turns in the conversation", "pages": "pages sealed from them",
    "turns_per_s": "turns added per wall-clock second (add_many() of them all: rendering, storing and embedding)",
    "turns_per_cpu_s": "turns added per second of the process's CPU time (both threads)",
    "db_bytes": "size of the SQLite database file afterwards",
    "context_p50_ms": "median latency of context() without a query", "context_p95_ms": "its 95th percentile",
    "query_first_ms": "the first context(query) after the ingest (everything was embedded as pages sealed)",
    "query_p50_ms": "median latency of context(query) after the first", "query_p95_ms": "its 95th percentile",
    "rss_peak_mib": "peak resident memory of the benchmark process",
    "rss_growth_mib": "resident memory growth over the measurement",
}


def render_report(cfg: ScaleConfig, out: dict, report: Report) -> dict:
    rows = out["rows"]
    precision = "bfloat16 (this CPU multiplies bfloat16 in hardware)" if out.get("embedder_bfloat16") else "float32"
    report.add("Scaling", "context: `context()` without a query; query: `context(query)` after the first query "
               "(shown apart). Ingest is `add_many()`: what a query searches is embedded as each page seals (with "
               "reexpand.unit = turns, the turns that left the recent window; with page or excerpt, the page, on a "
               f"worker beside the next turns' rendering); MiniLM ran in {precision}. RSS: resident set of the benchmark process.\n\n"
               + md_table([h for _, h in COLUMNS], [[r[k] for k, _ in COLUMNS] for r in rows]))
    report.add("Columns", "\n".join(f"- **{h}**: {NOTES[k]}" for k, h in COLUMNS))
    from matplotlib.ticker import NullFormatter

    fig, axes = new_figure(4, width=4.2)
    x = [r["turns"] for r in rows]
    panels = ((("turns_per_s", "turns/s (wall)"), ("turns_per_cpu_s", "turns/CPU-s")), (("db_bytes", "DB bytes"),),
              (("context_p50_ms", "no query p50"), ("context_p95_ms", "no query p95"),
               ("query_p50_ms", "query p50"), ("query_p95_ms", "query p95")),
              (("rss_peak_mib", "peak RSS MiB"), ("rss_growth_mib", "RSS growth MiB")))
    titles = ("ingest rate", "database size", "context latency (ms)", "memory (MiB)")
    for ax, series, title in zip(axes, panels, titles):
        for key, label in series:
            ys = [max(r[key], 1e-3) for r in rows]
            ax.plot(x, ys, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{v:,}" for v in x])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("turns")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return {"loglog": fig}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help=f"{', '.join(map(str, QUICK_COUNTS))} turns, 5 repeats")
    p.add_argument("--counts", type=int, nargs="+", help="turn counts (default 1000 10000 100000)")
    p.add_argument("--repeats", type=int)
    p.add_argument("--essays", type=Path, default=default_data("pg_essays"), help=data_help("essays"))
    p.add_argument("--config", type=Path, help="optmem MemoryConfig TOML")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--embed-precision", choices=get_args(Precision), default="auto",
                   help="MiniLM's matrix products (auto: bfloat16 on a CPU with AMX or AVX-512 BF16, else float32)")
    add_out_argument(p)


def config_from_args(args: argparse.Namespace) -> ScaleConfig:
    return ScaleConfig(counts=tuple(args.counts or (QUICK_COUNTS if args.quick else FULL_COUNTS)),
                       repeats=args.repeats or (5 if args.quick else 20), seed=args.seed, essays=args.essays,
                       memory_config=args.config, embed_precision=args.embed_precision)


def main_args(args: argparse.Namespace) -> dict[str, Path]:
    cfg = config_from_args(args)
    started, t0 = RunStart.now(), time.perf_counter()
    out = run(cfg)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    rec = cfg.model_dump(mode="json")
    report = Report("scale", rec, results=out, started=started)
    figs = render_report(cfg, out, report)
    return report.publish(args.out, quick=args.quick, figures=figs)
