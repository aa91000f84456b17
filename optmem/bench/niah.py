"""`optmem bench niah`: needle in a haystack, made for conversations and forgetting.

A haystack conversation (Paul Graham essays cut into alternating turns, or LoCoMo dialogue) of a
given length in text tokens gets one needle in the turn ``age`` turns before the last; the
question comes last. Every system builds what it would put in front of the model at the same
position budget, and RULER's ``string_match_all`` scores that text. For optmem the run also
records where the needle's turn sits: recent text, re-expanded text, the verbatim ledger, or only
a page image (at which tier).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from optmem.config import MemoryConfig

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
    memory_config,
    new_figure,
    progress,
)
from .haystack import (
    HAYSTACKS,
    DialogTurn,
    HaystackKind,
    essay_turns,
    insert_sentence,
    load_essays,
    load_locomo,
    locomo_haystack,
)
from .needles import NEEDLE_KINDS, Needle, NeedleKind, make_needle
from .protocol import PagedView, Transcript
from .scoring import string_match_all
from .systems import SYSTEMS, build
from .textview import turn_costs

DEFAULT_SYSTEMS = ("window", "retrieval", "optmem-optical", "optmem-verbatim", "full")
AGE_CLASSES = ("text", "gundam", "large", "base", "small", "tiny", "evicted")

FULL = dict(lengths=(8_000, 32_000, 128_000, 512_000), ages=(2, 16, 64, 256, 1024),
            needles=NEEDLE_KINDS, haystacks=HAYSTACKS)
# Quick: one conversation half again the default budget, so the window cannot hold it all; a needle
# the verbatim ledger covers (number) and one only the page image holds (the San Francisco sentence).
QUICK = dict(lengths=(12_000,), ages=(20, 60), needles=("word-number", "sf"), haystacks=("pg",))


def _known_system(name: str) -> str:
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; choose from {tuple(SYSTEMS)}")
    return name


SystemName = Annotated[str, AfterValidator(_known_system)]
Length = Annotated[int, Field(ge=1000, description="text tokens")]


class NiahConfig(BenchConfig):
    lengths: tuple[Length, ...] = Field(default=FULL["lengths"], min_length=1)
    # LoCoMo dialogue cycles to reach a length: long ones repeat it (and take 5x the turns of essays).
    locomo_lengths: tuple[Length, ...] | None = Field(default=None, min_length=1)  # None: the same as ``lengths``
    ages: tuple[Annotated[int, Field(ge=0)], ...] = Field(default=FULL["ages"], min_length=1)  # turns before the last
    needles: tuple[NeedleKind, ...] = Field(default=NEEDLE_KINDS, min_length=1)
    haystacks: tuple[HaystackKind, ...] = Field(default=HAYSTACKS, min_length=1)
    systems: tuple[SystemName, ...] = Field(default=DEFAULT_SYSTEMS, min_length=1)
    budget: int = Field(default=8192, ge=64, description="decoder positions every system may use")
    seed: int = DEFAULT_SEED
    essays: Path = Field(default_factory=lambda: default_data("pg_essays"))
    locomo: Path = Field(default_factory=lambda: default_data("locomo", "locomo5_dev.json"))
    memory_config: MemoryConfigField = MemoryConfig()
    llm: str | None = None  # OpenAI-compatible base URL: also score the model's answers
    llm_model: str = "default"


def _haystack(cfg: NiahConfig, kind: str, length: int) -> list[DialogTurn]:
    rng = random.Random(f"{cfg.seed}|haystack|{kind}|{length}")
    if kind == "pg":
        return essay_turns(load_essays(cfg.essays), length, rng)
    return locomo_haystack(load_locomo(cfg.locomo), length)


def _plant(base: list[DialogTurn], needle, age: int, rng: random.Random) -> tuple[list[DialogTurn], int, list[int]]:
    turns = list(base)
    idx = len(turns) - 1 - age
    turns[idx] = replace(turns[idx], text=insert_sentence(turns[idx].text, needle.sentence, rng))
    others = [i for i in range(len(turns)) if i != idx]
    spots = rng.sample(others, min(len(needle.distractors), len(others)))
    for i, sentence in zip(spots, needle.distractors):
        turns[i] = replace(turns[i], text=insert_sentence(turns[i].text, sentence, rng))
    return turns, idx, sorted(spots)


def needle_score(view: Any, needle: Needle) -> float:
    """string_match_all of the needle's golds in what the view shows as text. A ledger lists exact
    strings without their context, so it counts only where the needle's key stands in it too: a
    bare 7-digit number does not answer "the number for X"."""
    segments = getattr(view, "text_segments", None)
    if segments is None:
        return string_match_all(view.text, needle.golds)
    shown = [text for kind, text in segments() if kind != "ledger" or (needle.key is not None and needle.key in text)]
    return string_match_all("\n".join(shown), needle.golds)


def _found_in(view: PagedView, golds: Sequence[str]) -> list[str]:
    """Which kinds of text segment hold every gold string (for optmem's breakdown)."""
    return sorted({kind for kind, text in view.text_segments() if string_match_all(text, golds) == 1.0})


def run(cfg: NiahConfig) -> dict:
    from .embed import get_embedder

    llm = None
    if cfg.llm:
        from .llm import answer_client

        llm = answer_client(cfg.llm, cfg.llm_model)
    get_embedder()  # remembers what it embeds: optmem's own lazy chunk embedding goes through it too
    mem_cfg = memory_config(cfg.memory_config, budget=cfg.budget)
    runners = [build(name, mem_cfg) for name in cfg.systems]

    def lengths(haystack: str) -> Sequence[int]:
        return cfg.locomo_lengths if haystack == "locomo" and cfg.locomo_lengths is not None else cfg.lengths

    grid = [(h, n, k, a) for h in cfg.haystacks for n in lengths(h) for k in cfg.needles for a in cfg.ages]
    samples, skipped = [], []
    bar = progress(total=len(grid), desc="niah")
    cache: dict[tuple[str, int], tuple[list[DialogTurn], list[int]]] = {}
    for hay, length, kind, age in grid:
        if (hay, length) not in cache:
            cache.clear()
            turns0 = _haystack(cfg, hay, length)
            cache[(hay, length)] = (turns0, turn_costs(turns0))
        base, base_costs = cache[(hay, length)]
        if age >= len(base):
            skipped.append({"haystack": hay, "length": length, "needle": kind, "age": age,
                            "why": f"conversation has only {len(base)} turns"})
            bar.update(1)
            continue
        rng = random.Random(f"{cfg.seed}|needle|{hay}|{length}|{kind}|{age}")
        needle = make_needle(kind, rng)
        turns, idx, spots = _plant(base, needle, age, rng)
        changed = [idx, *spots]
        costs = list(base_costs)
        for i, c in zip(changed, turn_costs([turns[i] for i in changed])):
            costs[i] = c
        transcript = Transcript.of(turns, costs=costs)
        q = needle.question
        sample = {"haystack": hay, "length": length, "needle": kind, "age": age, "turns": len(turns),
                  "needle_turn": idx, "text_tokens": sum(costs), "systems": {}}
        for system in runners:
            held = system.ingest(transcript)
            try:
                v = held.context(q, cfg.budget)
                res = {"positions": v.positions, "score": needle_score(v, needle)}
                if system.paged:
                    loc = v.locate(idx)
                    res.update(needle_as_text=loc.text, needle_page_tier=loc.page_tier, needle_where=loc.where or "absent",
                               age_class=held.age_class(idx), found_in=_found_in(v, needle.golds),
                               ingest_s=round(held.stats()["ingest_s"], 3), context_s=round(v.context_s, 3))
                elif system.bounded:  # the full text holds every turn by construction
                    res["needle_as_text"] = v.locate(idx).text is not None
                if llm:
                    answer = llm.chat(v.messages(q))
                    res["llm_answer"], res["llm_score"] = answer, string_match_all(answer, needle.golds)
            finally:
                held.close()
            sample["systems"][system.name] = res
        sample["age_class"] = next((sample["systems"][s.name]["age_class"] for s in runners if s.paged), None)
        samples.append(sample)
        bar.update(1)
    bar.close()
    paged = [s.name for s in runners if s.paged]
    return {"samples": samples, "skipped": skipped, "summary": summarise(samples, cfg.systems, paged)}


def _mean(xs: Sequence[float]) -> float | None:
    return round(100.0 * sum(xs) / len(xs), 1) if xs else None


def summarise(samples: list[dict], system_names: Sequence[str], paged: Sequence[str]) -> dict:
    """``paged``: the systems whose records say where the needle's turn was."""
    by_class: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_len_age: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    positions: dict[str, list[int]] = defaultdict(list)
    page_tiers: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for s in samples:
        for name, r in s["systems"].items():
            by_class[s["age_class"] or "n/a"][name].append(r["score"])
            by_len_age[(s["haystack"], s["length"], s["age"])][name].append(r["score"])
            positions[name].append(r["positions"])
            if name in paged:
                page_tiers[name][r["needle_where"]] += 1
                for where in r["found_in"] or ["nowhere"]:
                    found[name][where] += 1
    return {
        "recall_by_age_class": {c: {n: _mean(v) for n, v in d.items()} for c, d in by_class.items()},
        "n_by_age_class": {c: len(next(iter(d.values()))) for c, d in by_class.items()},
        "recall_by_length_age": [{"haystack": k[0], "length": k[1], "age": k[2], **{n: _mean(v) for n, v in d.items()}}
                                 for k, d in sorted(by_len_age.items())],
        "mean_positions": {n: round(sum(v) / len(v)) for n, v in positions.items()},
        "needle_where": {n: dict(d) for n, d in page_tiers.items()},
        "needle_found_in": {n: dict(d) for n, d in found.items()},
        "systems": list(system_names),
    }


def _average_haystacks(rows: list[dict], names: Sequence[str]) -> list[dict]:
    by_age: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_age[r["age"]].append(r)
    out = []
    for age in sorted(by_age):
        rs = by_age[age]
        out.append({"age": age, **{n: (sum(r[n] for r in rs if r.get(n) is not None) / max(1, sum(r.get(n) is not None for r in rs))
                                       if any(r.get(n) is not None for r in rs) else None) for n in names}})
    return out


def render_report(cfg: NiahConfig, out: dict, report: Report) -> dict:
    summ, names = out["summary"], list(cfg.systems)
    classes = [c for c in AGE_CLASSES + ("n/a",) if c in summ["recall_by_age_class"]]
    rows = [[c, summ["n_by_age_class"][c], *[summ["recall_by_age_class"][c].get(n) for n in names]] for c in classes]
    report.add(f"Needle recall (string_match_all, %) by where the needle sits in optmem, budget {cfg.budget}",
               "Rows: the needle's age class under optmem's schedule (recent text, or the tier its page is stored "
               "at). Every system sees the same conversations.\n\n"
               + md_table(["needle age class", "n", *names], rows)
               + "\n\nneedle age class: where optmem holds the needle's turn (text: a recent turn; a tier: its page, "
               "stored at that tier; evicted: past the schedule's last step); n: samples; one column per system: "
               "RULER's string_match_all, the share of the needle's gold strings found in the system's context "
               "text (%), averaged over samples. A page image counts only through its ledger text, and a ledger "
               "only where the needle's key stands in it with the value.")
    rows = [[r["haystack"], r["length"], r["age"], *[r.get(n) for n in names]] for r in summ["recall_by_length_age"]]
    report.add("Recall by haystack × conversation length (text tokens) × needle age (turns ago)",
               md_table(["haystack", "length", "age", *names], rows)
               + "\n\nhaystack: pg (essays) or locomo (dialogue); length: the conversation in text tokens; age: "
               "turns between the needle and the question; systems: string_match_all (%) as above.")
    report.add("Positions used (mean)", "positions: the context's mean input tokens in the reader's units, the "
               "question included; every system is held to the same budget but the full text.\n\n" + md_table(["system", "positions"], [[n, summ["mean_positions"][n]] for n in names]))
    om = [n for n in names if n in summ["needle_where"]]
    if om:
        tiers = sorted({t for n in om for t in summ["needle_where"][n]})
        report.add("optmem: where the needle's turn is in the context (samples)",
                   "turn: a recent text turn; expanded:*: its page re-expanded to text (verbatim archive or OCR); "
                   "page:<tier>: only its page image, at that tier (the ledger may still carry exact strings); "
                   "absent: not in the context at all.\n\n"
                   + md_table(["system", *tiers], [[n, *[summ["needle_where"][n].get(t, 0) for t in tiers]] for n in om]))
        wheres = sorted({w for n in om for w in summ["needle_found_in"][n]})
        report.add("optmem: text segments that hold the whole answer (samples; a sample can count in several)",
                   md_table(["system", *wheres], [[n, *[summ["needle_found_in"][n].get(w, 0) for w in wheres]] for n in om]))
    if out["skipped"]:
        report.add("Skipped grid points", md_table(["haystack", "length", "needle", "age", "why"],
                                                   [[s["haystack"], s["length"], s["needle"], s["age"], s["why"]] for s in out["skipped"]]))
    from matplotlib.ticker import NullLocator

    all_lengths = sorted(set(cfg.lengths) | set(cfg.locomo_lengths or ()))
    fig, axes = new_figure(len(all_lengths), width=5.0)
    styles = ("-", "--", "-.", ":")
    for ax, length in zip(axes, all_lengths):
        # Averaged over haystacks (the table above has them apart).
        pts = _average_haystacks([r for r in summ["recall_by_length_age"] if r["length"] == length], names)
        ages = [r["age"] for r in pts]
        for i, n in enumerate(names):
            # Systems often tie at 0 or 100: the values are plotted as they are, and tied lines stay
            # visible by their styles and by markers that shrink from the first system to the last.
            ys = [r.get(n) for r in pts]
            ax.plot(ages, ys, linestyle=styles[i % len(styles)], marker="osD^v"[i % 5],
                    markersize=10 - 6 * i / max(len(names) - 1, 1), markerfacecolor="none", label=n, alpha=0.9)
        ax.set_xscale("symlog", linthresh=4)
        ax.set_xticks(ages, [str(a) for a in ages])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_title(f"{length:,} text tokens, budget {cfg.budget}")
        ax.set_xlabel("needle age (turns before the question)")
        ax.set_ylabel("needle recall: string_match_all (%)")
        ax.set_ylim(-5, 105)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    return {"recall": fig}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one 12k conversation, 2 ages, 2 needle kinds (CI smoke run)")
    p.add_argument("--lengths", type=int, nargs="+", help="conversation lengths in text tokens")
    p.add_argument("--locomo-lengths", type=int, nargs="+",
                   help="lengths for the LoCoMo haystack only (default: --lengths)")
    p.add_argument("--ages", type=int, nargs="+", help="needle ages in turns before the last turn")
    p.add_argument("--needles", nargs="+", choices=NEEDLE_KINDS)
    p.add_argument("--haystacks", nargs="+", choices=HAYSTACKS)
    p.add_argument("--systems", nargs="+", choices=tuple(SYSTEMS), help=f"default: {' '.join(DEFAULT_SYSTEMS)}")
    p.add_argument("--budget", type=int, default=8192)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--essays", type=Path, default=default_data("pg_essays"), help=data_help("essays"))
    p.add_argument("--locomo", type=Path, default=default_data("locomo", "locomo5_dev.json"), help=data_help("locomo"))
    p.add_argument("--config", type=Path, help="optmem MemoryConfig TOML (schedule, render, ...)")
    p.add_argument("--llm", help="OpenAI-compatible base URL: also score the model's answers")
    p.add_argument("--llm-model", default="default")
    add_out_argument(p)


def config_from_args(args: argparse.Namespace) -> NiahConfig:
    preset = QUICK if args.quick else FULL
    return NiahConfig(
        lengths=tuple(args.lengths or preset["lengths"]),
        locomo_lengths=tuple(args.locomo_lengths) if args.locomo_lengths else None, ages=tuple(args.ages or preset["ages"]),
        needles=tuple(args.needles or preset["needles"]), haystacks=tuple(args.haystacks or preset["haystacks"]),
        systems=tuple(args.systems or DEFAULT_SYSTEMS), budget=args.budget, seed=args.seed, essays=args.essays,
        locomo=args.locomo, memory_config=args.config, llm=args.llm, llm_model=args.llm_model)


def config_record(cfg: NiahConfig) -> dict:
    rec = cfg.model_dump(mode="json")
    rec["memory_config"] = memory_config(cfg.memory_config, budget=cfg.budget).model_dump(mode="json")
    return rec


def main_args(args: argparse.Namespace) -> dict[str, Path]:
    cfg = config_from_args(args)
    started, t0 = RunStart.now(), time.perf_counter()
    out = run(cfg)
    report = Report("niah", config_record(cfg), results=out, started=started)
    figs = render_report(cfg, out, report)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return report.publish(args.out, quick=args.quick, figures=figs)
