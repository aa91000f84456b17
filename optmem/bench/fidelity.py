"""`optmem bench fidelity`: the DeepSeek-OCR paper's Fox table for optmem's own renderer.

Pages are filled with English (Paul Graham essays) or Chinese text and binned by the text tokens
a page holds (600–700 … 1200–1300, as in the paper's Table 2). For every tier, the page view the
encoder would see is read back by each available engine: compression ratio = text tokens /
vision tokens of the tier; precision and CER of the re-expanded text against the page's text.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, model_validator

from optmem.config import MemoryConfig
from optmem.modes import tier_slots, tier_vision_tokens
from optmem.tokens import count_tokens, default_tokenizer

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
    progress,
)
from .haystack import load_essays

BINS = tuple((lo, lo + 100) for lo in range(600, 1300, 100))
Tier = Literal["large", "base", "small", "tiny"]
Engine = Literal["ppocr-strips", "tesseract", "model"]
Lang = Literal["en", "zh"]
TIERS: tuple[str, ...] = get_args(Tier)
ENGINES: tuple[str, ...] = get_args(Engine)
LANGS: tuple[str, ...] = get_args(Lang)

# DeepSeek-OCR paper (arXiv 2510.18234) Table 2, Fox English pages: (bin, vision tokens) ->
# (precision %, compression ×). Drawn as the reference points; see anchors.md §A.2.
PAPER_TABLE2 = {
    ((600, 700), 64): (96.5, 10.5), ((600, 700), 100): (98.5, 6.7),
    ((700, 800), 64): (93.8, 11.8), ((700, 800), 100): (97.3, 7.5),
    ((800, 900), 64): (83.8, 13.2), ((800, 900), 100): (96.8, 8.5),
    ((900, 1000), 64): (85.9, 15.1), ((900, 1000), 100): (96.8, 9.7),
    ((1000, 1100), 64): (79.3, 16.5), ((1000, 1100), 100): (91.5, 10.6),
    ((1100, 1200), 64): (76.4, 17.7), ((1100, 1200), 100): (89.8, 11.3),
    ((1200, 1300), 64): (59.1, 19.7), ((1200, 1300), 100): (87.1, 12.6),
}


def _ordered_bin(b: tuple[int, int]) -> tuple[int, int]:
    if not 0 <= b[0] < b[1]:
        raise ValueError(f"a bin is (low, high) text tokens with 0 <= low < high, got {b}")
    return b


class FidelityConfig(BenchConfig):
    langs: tuple[Lang, ...] = Field(default=LANGS, min_length=1)
    bins: tuple[Annotated[tuple[int, int], AfterValidator(_ordered_bin)], ...] = Field(default=BINS, min_length=1)
    pages_per_bin: int = Field(default=3, ge=1)
    tiers: tuple[Tier, ...] = Field(default=TIERS, min_length=1)
    engines: tuple[Engine, ...] | None = Field(default=None, min_length=1)  # None: every available engine
    model_dir: Path | None = None
    essays: Path = Field(default_factory=lambda: default_data("pg_essays"))
    zh_text: Path | None = None  # a UTF-8 Chinese text file; default: words from the tokenizer's vocabulary
    memory_config: MemoryConfigField = MemoryConfig()  # its [render] section sets the page style
    seed: int = DEFAULT_SEED

    @model_validator(mode="after")
    def _model_engine_has_weights(self) -> FidelityConfig:
        if self.engines and "model" in self.engines and self.model_dir is None:
            raise ValueError("engines: 'model' needs model_dir (a local DeepSeek-OCR weights directory)")
        return self


def available_engines(model_dir: Path | None) -> list[str]:
    from optmem.reexpand import TesseractEngine

    names = ["ppocr-strips"]
    if TesseractEngine.available():
        names.append("tesseract")
    if model_dir is not None:
        names.append("model")
    return names


def _engine(name: str, model_dir: Path | None):
    from optmem.reexpand import get_engine

    if name == "model":
        from optmem.codec import load_ocr_model

        return get_engine("model", model=load_ocr_model(model_dir))
    return get_engine(name)


def chinese_words() -> list[str]:
    """Multi-character Chinese words of the DeepSeek BPE vocabulary (ids in order): a text source
    that ships offline. Sampled at random they make grammatical nonsense, which is harder for a
    reader that leans on language priors than real prose (stated in docs/benchmarks.md)."""
    tok = default_tokenizer()
    words = []
    for i in range(100_000):
        w = tok.decode([i])
        if 2 <= len(w) <= 4 and all("\u4e00" <= ch <= "\u9fff" for ch in w):
            words.append(w)
    return words


def _zh_stream(cfg: FidelityConfig, rng: random.Random) -> str:
    if cfg.zh_text is not None:
        return Path(cfg.zh_text).read_text(encoding="utf-8")
    words = chinese_words()
    if not words:
        raise RuntimeError("the tokenizer vocabulary has no Chinese words; pass zh_text")
    out = []
    for _ in range(6000):
        out.append("".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + rng.choice("，，，。"))
    return "".join(out)


def _en_stream(cfg: FidelityConfig) -> str:
    return "\n\n".join(" ".join(p.split()) for e in load_essays(cfg.essays) for p in e.split("\n\n") if p.strip())


def _slice_tokens(text: str, start: int, n_tokens: int) -> str:
    tok = default_tokenizer()
    ids = tok.encode(text[start: start + n_tokens * 8])
    return tok.decode(ids[:n_tokens])


def make_pages(cfg: FidelityConfig, render_cfg, lang: str) -> list[dict]:
    """``pages_per_bin`` single pages per token bin. Text of the bin's target size is rendered;
    the first page is kept and binned by the tokens it really holds (a page that cannot hold the
    target spills, which puts it in a lower bin or none)."""
    from renderers import render_pages

    rng = random.Random(f"{cfg.seed}|fidelity|{lang}")
    stream = _zh_stream(cfg, rng) if lang == "zh" else _en_stream(cfg)
    found: dict[tuple[int, int], list] = defaultdict(list)
    attempts = 0
    for lo, hi in cfg.bins:
        tries = 0
        while len(found[(lo, hi)]) < cfg.pages_per_bin and tries < 4 * cfg.pages_per_bin:
            tries += 1
            attempts += 1
            target = rng.randint(lo + 10, hi - 10)
            start = rng.randrange(0, max(1, len(stream) - target * 8))
            text = _slice_tokens(stream, start, target)
            page = render_pages(text, config=render_cfg)[0]
            reference = page.source_text  # engines rebuild the source layout from the line strips
            n = count_tokens(reference)
            for b in cfg.bins:
                if b[0] <= n < b[1] and len(found[b]) < cfg.pages_per_bin:
                    found[b].append({"page": page, "reference": reference, "text_tokens": n})
                    break
    return [dict(p, lang=lang, bin=list(b)) for b in cfg.bins for p in found[b]]


def run(cfg: FidelityConfig) -> dict:
    from .scoring import cer, precision

    render_cfg = cfg.memory_config.render
    engines = list(cfg.engines) if cfg.engines else available_engines(cfg.model_dir)
    loaded = {name: _engine(name, cfg.model_dir) for name in engines}
    rows, missing = [], []
    for lang in cfg.langs:
        pages = make_pages(cfg, render_cfg, lang)
        have = {tuple(p["bin"]) for p in pages}
        missing += [{"lang": lang, "bin": list(b)} for b in cfg.bins if b not in have]
        for p in progress(pages, desc=f"fidelity {lang}"):
            page = p["page"]
            for tier in cfg.tiers:
                pv = page.at(tier)
                for name, engine in loaded.items():
                    t0 = time.perf_counter()
                    hyp = engine.read(pv.image, pv.lines)
                    dt = time.perf_counter() - t0
                    rows.append({"lang": lang, "bin": p["bin"], "text_tokens": p["text_tokens"], "tier": tier,
                                 "engine": name, "vision_tokens": tier_vision_tokens(tier), "slots": tier_slots(tier),
                                 "ratio": p["text_tokens"] / tier_vision_tokens(tier),
                                 "precision": precision(p["reference"], hyp), "cer": cer(p["reference"], hyp),
                                 "read_s": round(dt, 3), "page_hash": page.content_hash[:16]})
    return {"engines": engines, "rows": rows, "missing_bins": missing, "summary": summarise(rows)}


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["lang"], tuple(r["bin"]), r["tier"], r["engine"])].append(r)
    out = []
    for (lang, b, tier, engine), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], TIERS.index(kv[0][2]), kv[0][3])):
        n = len(rs)
        out.append({"lang": lang, "bin": list(b), "tier": tier, "engine": engine, "pages": n,
                    "vision_tokens": rs[0]["vision_tokens"],
                    "ratio": round(sum(r["ratio"] for r in rs) / n, 2),
                    "precision": round(100 * sum(r["precision"] for r in rs) / n, 2),
                    "cer": round(100 * sum(r["cer"] for r in rs) / n, 2),
                    "read_s": round(sum(r["read_s"] for r in rs) / n, 2)})
    return out


def render_report(cfg: FidelityConfig, out: dict, report: Report) -> dict:
    summ = out["summary"]
    tiers = [t for t in TIERS if t in cfg.tiers]
    for lang in cfg.langs:
        for engine in out["engines"]:
            rows = []
            for b in cfg.bins:
                cells = {s["tier"]: s for s in summ if s["lang"] == lang and s["engine"] == engine and tuple(s["bin"]) == b}
                if not cells:
                    continue
                n = next(iter(cells.values()))["pages"]
                rows.append([f"{b[0]}–{b[1]}", n, *[f"{cells[t]['precision']:.1f}% / {cells[t]['ratio']:.1f}× / CER {cells[t]['cer']:.2f}%"
                                                     if t in cells else "-" for t in tiers]])
            report.add(f"{lang.upper()} pages, engine {engine}: precision / compression / CER per tier",
                       md_table(["text tokens", "pages", *[f"{t} ({tier_vision_tokens(t)} tok)" for t in tiers]], rows))
    report.add("Columns of the per-tier tables",
               "- **text tokens**: the bin of DeepSeek tokens of text a page holds\n"
               "- **pages**: pages in the bin\n"
               "- **<tier> (N tok)**: pages at that tier (N vision tokens) read back by the engine: precision % "
               "(share of the read-back text's characters that match the page's text, Fox's measure), compression "
               "× (text tokens / vision tokens) and CER % (character error rate against the page's text)")
    pages = {r["page_hash"]: r["text_tokens"] for r in out["rows"]}
    comp = []
    if pages:
        for t in ("gundam", *TIERS):
            ratios = [n / tier_vision_tokens(t) for n in pages.values()]
            comp.append([t, tier_vision_tokens(t), tier_slots(t), round(sum(ratios) / len(ratios), 2),
                         round(min(ratios), 2), round(max(ratios), 2)])
    report.add("Compression at each tier (text tokens / vision tokens over all pages; decoder slots add one "
               "newline per grid row and a separator; Gundam = 2×2 640 px tiles + the 1024 global view)",
               md_table(["tier", "vision tokens", "decoder slots", "mean ratio", "min", "max"], comp)
               + "\n\nvision tokens: the encoder's tokens for a page at the tier; decoder slots: the positions it "
               "takes in the decoder; mean ratio / min / max: text tokens over vision tokens across the pages.")
    out["compression"] = [dict(zip(("tier", "vision_tokens", "slots", "mean_ratio", "min_ratio", "max_ratio"), c)) for c in comp]
    if out["missing_bins"]:
        report.add("Bins with no page", "The render config could not fill a single page to these sizes:\n\n"
                   + md_table(["lang", "bin"], [[m["lang"], f"{m['bin'][0]}–{m['bin'][1]}"] for m in out["missing_bins"]]))
    fig, (ax,) = new_figure(1, width=7.0, height=5.0)
    for lang in cfg.langs:
        for engine in out["engines"]:
            pts = [s for s in summ if s["lang"] == lang and s["engine"] == engine]
            ax.scatter([s["ratio"] for s in pts], [s["precision"] for s in pts], label=f"optmem {lang} / {engine}", alpha=0.8)
    for vt, marker in ((64, "x"), (100, "+")):
        pts = [v for (b, n), v in PAPER_TABLE2.items() if n == vt]
        ax.scatter([r for _, r in pts], [p for p, _ in pts], marker=marker, color="k", s=60,
                   label=f"DeepSeek-OCR on Fox (paper Table 2), {vt} vision tokens")
    ax.set_xlabel("compression ratio (text tokens / vision tokens)")
    ax.set_ylabel("re-expansion precision (%)")
    ax.set_title("Re-expansion precision against compression\n(optmem: its own pages, engine given the line boxes)", fontsize=10)
    ax.legend(fontsize=8)
    return {"precision_vs_ratio": fig}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one page in the first and last bin per language, small and tiny tiers, PP-OCR strips only")
    p.add_argument("--langs", nargs="+", choices=LANGS)
    p.add_argument("--pages-per-bin", type=int)
    p.add_argument("--tiers", nargs="+", choices=TIERS)
    p.add_argument("--engines", nargs="+", choices=ENGINES, help="default: every available engine")
    p.add_argument("--model-dir", type=Path, help="local DeepSeek-OCR weights directory (adds the 'model' engine)")
    p.add_argument("--essays", type=Path, default=default_data("pg_essays"), help=data_help("essays"))
    p.add_argument("--zh-text", type=Path, help="UTF-8 Chinese text to fill pages (default: tokenizer vocabulary words)")
    p.add_argument("--config", type=Path, help="optmem MemoryConfig TOML; its [render] section is used")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    add_out_argument(p)


def config_from_args(args: argparse.Namespace) -> FidelityConfig:
    quick_bins = (BINS[0], BINS[-1])
    return FidelityConfig(
        langs=tuple(args.langs or LANGS), bins=quick_bins if args.quick else BINS,
        pages_per_bin=args.pages_per_bin or (1 if args.quick else 3),
        tiers=tuple(args.tiers or (("small", "tiny") if args.quick else TIERS)),  # quick: the paper's 100/64-token modes
        # --quick reads with the PP-OCR strips engine only: Tesseract takes tens of seconds a page.
        engines=tuple(args.engines) if args.engines else (("ppocr-strips",) if args.quick else None),
        model_dir=args.model_dir, essays=args.essays,
        zh_text=args.zh_text, memory_config=args.config, seed=args.seed)


def main_args(args: argparse.Namespace) -> dict[str, Path]:
    cfg = config_from_args(args)
    started, t0 = RunStart.now(), time.perf_counter()
    out = run(cfg)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    rec = cfg.model_dump(mode="json", exclude={"memory_config"})
    rec["render"] = cfg.memory_config.render.model_dump(mode="json")
    report = Report("fidelity", rec, results=out, started=started)
    figs = render_report(cfg, out, report)
    return report.publish(args.out, quick=args.quick, figures=figs)
