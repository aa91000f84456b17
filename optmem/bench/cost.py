"""`optmem bench cost`: what a dense page costs each reader at each tier, and what it holds.

For every built-in reader profile and every tier a page can age to (gundam, large, base, small,
tiny): the image the reader is sent for a page stored at that tier (its profile's rung: side and
detail, as ``optmem.reader.Reader.rung`` picks it), what that image costs the reader, what the
page's text would cost it instead (counted with the profile's own text counter, on dense English
pages of the Paul Graham essays and dense Chinese chat pages), the compression ratio (text tokens
over image tokens: above 1 the image is the cheaper way to carry the page), whether the assembler
would send the image at all (never when it costs more than the text), and the bytes of the image
as exported (optmem.reader.plan_sent_image: the tier's view when the reader prices it as the rung,
else cut by blank margin or resized to the rung; encoded as optmem.memory sends it).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

from .common import (
    DEFAULT_SEED,
    BenchConfig,
    Report,
    RunStart,
    data_help,
    default_data,
    default_out,
    md_table,
)
from .haystack import ZH_SENTENCES, load_essays

TIERS = ("gundam", "large", "base", "small", "tiny")
LANGS = ("en", "zh")



class CostConfig(BenchConfig):
    profiles: tuple[str, ...] = Field(default=(), description="built-in profiles; empty: all of them")
    pages_per_lang: Annotated[int, Field(ge=1)] = 3
    essays: Path = Field(default_factory=lambda: default_data("pg_essays"))
    seed: int = DEFAULT_SEED


def english_turns(essays: Path, rng: random.Random, max_words: int = 12_000) -> list[tuple[str, str]]:
    """Chat turns of 20-200 words from the essays, unwrapped (as benchmarks/render_speed.py makes them)."""
    words = " ".join(re.sub(r"\s+", " ", t) for t in load_essays(essays)).split(" ")[:max_words]
    turns, i = [], 0
    while i < len(words):
        n = rng.randint(20, 200)
        turns.append(("user" if len(turns) % 2 == 0 else "assistant", " ".join(words[i:i + n])))
        i += n
    return turns


def chinese_turns(rng: random.Random, n_turns: int = 120) -> list[tuple[str, str]]:
    return [("user" if i % 2 == 0 else "assistant", "".join(rng.choice(ZH_SENTENCES) for _ in range(rng.randint(1, 8))))
            for i in range(n_turns)]


def dense_pages(cfg: CostConfig) -> dict[str, list]:
    """``pages_per_lang`` full pages per language (the last, partly filled page never counts)."""
    from renderers import render_pages

    rng = random.Random(cfg.seed)
    out = {}
    for lang, turns in (("en", english_turns(cfg.essays, rng)), ("zh", chinese_turns(rng))):
        pages = render_pages(turns)[:-1]
        if len(pages) < cfg.pages_per_lang:
            raise ValueError(f"{lang}: only {len(pages)} full pages from the text, {cfg.pages_per_lang} asked for")
        out[lang] = pages[:cfg.pages_per_lang]
    return out


def stored_png(page, tier: str) -> bytes:
    """The bytes the store keeps for ``page`` at ``tier`` (as optmem.pager seals it)."""
    from renderers import Tier

    return page.png if Tier(tier).side == page.side else page.at(tier).png


def sent_bytes(page, tier: str, sent, container: str) -> bytes:
    """The bytes an export sends for ``page`` stored at ``tier`` (``sent``: the reader's
    optmem.reader.SentImage), made as optmem.memory makes them from the stored image:
    renderers.reader_image."""
    from renderers import decode_page_image, reader_image

    return reader_image(decode_page_image(stored_png(page, tier)), sent.side, crop=sent.crop, container=container)


def run(cfg: CostConfig) -> dict:
    from optmem.profiles import BUILTIN
    from optmem.reader import Reader

    names = cfg.profiles or tuple(BUILTIN)
    unknown = [n for n in names if n not in BUILTIN]
    if unknown:
        raise ValueError(f"profiles: not built in: {unknown}; built in: {list(BUILTIN)}")
    pages = dense_pages(cfg)
    rows = []
    for name in names:
        profile, reader = BUILTIN[name], Reader(name)
        for tier in TIERS:
            rung = reader.rung(tier)
            image = None if rung is None else profile.rung_tokens(rung)
            sent = reader.sent_image(tier)
            row = {"profile": name, "tier": tier, "rung": None if rung is None else rung.name,
                   "side": None if rung is None else rung.side, "detail": None if rung is None else rung.detail,
                   "sent": None if sent is None else f"{sent.side}" + (f" (crop {sent.crop})" if sent.crop else ""),
                   "image_tokens": image}
            for lang in LANGS:
                text = [profile.count_text(p.source_text) for p in pages[lang]]
                mean = statistics.mean(text)
                row[f"{lang}_text_tokens"] = round(mean, 1)
                row[f"{lang}_ratio"] = None if image is None else round(mean / image, 2)
                # the assembler's rule, page by page: the image goes only when it is no dearer than the text
                row[f"{lang}_sent"] = None if image is None else sum(image <= t for t in text) / len(text)
                if rung is not None:
                    sizes = [len(sent_bytes(p, tier, reader.sent_image(tier), profile.container)) for p in pages[lang]]
                    row[f"{lang}_bytes"] = round(statistics.mean(sizes))
                else:
                    row[f"{lang}_bytes"] = None
            rows.append(row)
    return {"rows": rows, "pages": {lang: len(ps) for lang, ps in pages.items()}}


COLUMNS = (
    ("profile", "profile", "the reader profile (MemoryConfig.model; docs/profiles.md)"),
    ("tier", "tier", "the age tier the page is stored at (optmem's schedule)"),
    ("rung", "rung", "the profile's ladder rung sent for that tier ('-': a text reader, no image)"),
    ("side", "side px", "side of the rung's square image"),
    ("sent", "sent px", "side of the image sent: the tier's view when the reader prices it as the rung (it resizes it itself), "
     "else cropped by blank margin to a side priced so, else resized to the rung (optmem.reader.plan_sent_image)"),
    ("detail", "detail", "the rung's detail (OpenAI's image detail; DeepSeek-OCR's Gundam mode)"),
    ("image_tokens", "image tokens", "what the image costs the reader (the profile's cost rule)"),
    ("en_text_tokens", "EN text tokens", "mean reader tokens of a dense English page's text (profile.count_text)"),
    ("en_ratio", "EN ratio", "EN text tokens / image tokens: the compression; below 1 the image costs more than the text"),
    ("en_sent", "EN sent", "share of the English pages the assembler would send as this image (0: too dear, sent as text or not at all)"),
    ("en_bytes", "EN bytes", "mean bytes of the English page image as exported (the profile's container at the grey levels renderers.reader_image keeps)"),
    ("zh_text_tokens", "ZH text tokens", "as EN, dense Chinese pages"),
    ("zh_ratio", "ZH ratio", "as EN, Chinese"),
    ("zh_sent", "ZH sent", "as EN, Chinese"),
    ("zh_bytes", "ZH bytes", "as EN, Chinese"),
)


def render_report(out: dict, report: Report) -> None:
    report.add("Cost per reader and tier", f"Dense pages: {out['pages']['en']} English, {out['pages']['zh']} Chinese "
               "(1280 px, the default render config).\n\n"
               + md_table([h for _, h, _ in COLUMNS], [[r[k] for k, _, _ in COLUMNS] for r in out["rows"]]))
    report.add("Columns", "\n".join(f"- **{h}**: {d}" for _, h, d in COLUMNS))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profiles", nargs="+", help="built-in profiles (default: all)")
    p.add_argument("--pages-per-lang", type=int, default=3, help="dense pages per language")
    p.add_argument("--essays", type=Path, default=default_data("pg_essays"), help=data_help("essays"))
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--out", type=Path, default=default_out(), help="results directory (see docs/benchmarks.md)")


def main_args(args: argparse.Namespace) -> dict[str, Path]:
    cfg = CostConfig(profiles=tuple(args.profiles or ()), pages_per_lang=args.pages_per_lang, essays=args.essays,
                     seed=args.seed)
    started, t0 = RunStart.now(), time.perf_counter()
    out = run(cfg)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    report = Report("cost", cfg.model_dump(mode="json"), results=out, started=started)
    render_report(out, report)
    return report.publish(args.out, quick=False)
