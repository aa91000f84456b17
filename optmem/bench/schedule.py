"""`optmem bench schedule`: tune forgetting through config.

Runs the needle test and LoCoMo for each schedule of a small grid given in a TOML file and prints
recall against the positions each context used, so a schedule can be picked by its cost. The
sliding window at the same budget is run once as the reference row.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from optmem.config import MemoryConfig

from . import locomo as locomo_bench
from . import niah as niah_bench
from .common import (
    DEFAULT_SEED,
    BenchConfig,
    Report,
    RunStart,
    add_out_argument,
    data_help,
    default_data,
    md_table,
    new_figure,
)
from .haystack import HaystackKind
from .needles import NeedleKind

EXAMPLE = Path("benchmarks") / "schedules.example.toml"


class ScheduleGridError(ValueError):
    """The schedules TOML is malformed (names the offending key or entry)."""


class GridBench(BenchConfig):
    """The ``[bench]`` table: the grid every schedule is run on. A key left out takes the
    default grid (or, with --quick, the quick one; ``budget`` applies to --quick too)."""

    budget: int | None = Field(default=None, ge=64)  # None: each schedule's own MemoryConfig.budget
    niah_lengths: tuple[niah_bench.Length, ...] | None = Field(default=None, min_length=1)
    niah_ages: tuple[int, ...] | None = Field(default=None, min_length=1)
    niah_needles: tuple[NeedleKind, ...] | None = Field(default=None, min_length=1)
    niah_haystacks: tuple[HaystackKind, ...] | None = Field(default=None, min_length=1)
    locomo_conversations: tuple[int, ...] | None = Field(default=None, min_length=1)
    locomo_max_sessions: int | None = Field(default=None, ge=1)
    locomo_max_questions: int | None = Field(default=None, ge=1)


class GridEntry(BenchConfig):
    name: str = Field(min_length=1)
    config: MemoryConfig


class ScheduleBenchConfig(BenchConfig):
    entries: tuple[GridEntry, ...] = Field(min_length=1)
    bench: GridBench = GridBench()
    essays: Path = Field(default_factory=lambda: default_data("pg_essays"))
    locomo: Path = Field(default_factory=lambda: default_data("locomo", "locomo5_dev.json"))
    seed: int = DEFAULT_SEED
    run_niah: bool = True
    run_locomo: bool = True


def _bench_table(path: Path, table: Any) -> GridBench:
    try:
        return GridBench.model_validate(table)
    except ValidationError as exc:
        unknown = sorted(str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden")
        if unknown:
            raise ScheduleGridError(f"{path}: unknown [bench] keys {unknown}; allowed {sorted(GridBench.model_fields)}") from None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'table'}: {e['msg']}" for e in exc.errors())
        raise ScheduleGridError(f"{path}: [bench] {problems}") from None


def load_grid(path: Path) -> tuple[GridBench, list[GridEntry]]:
    """Read ``[bench]`` settings and ``[[schedules]]`` entries (``name`` + ``config``, a partial
    MemoryConfig). A bad MemoryConfig value raises pydantic's ValidationError naming the field;
    anything else wrong with the file a ScheduleGridError naming the key."""
    from optmem.config import ConfigError, read_toml

    path = Path(path)
    try:
        data = read_toml(path, "schedules file")
    except ConfigError as exc:
        raise ScheduleGridError(str(exc)) from None
    unknown = set(data) - {"bench", "schedules"}
    if unknown:
        raise ScheduleGridError(f"{path}: unknown top-level keys {sorted(unknown)}; expected [bench] and [[schedules]]")
    bench = _bench_table(path, data.get("bench", {}))
    entries = []
    for i, item in enumerate(data.get("schedules", [])):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ScheduleGridError(f"{path}: schedules[{i}] needs a non-empty 'name'")
        extra = set(item) - set(GridEntry.model_fields)
        if extra:
            raise ScheduleGridError(f"{path}: schedules[{i}] ({item['name']}): unknown keys {sorted(extra)}")
        entries.append(GridEntry(name=item["name"], config=MemoryConfig.model_validate(item.get("config", {}))))
    if not entries:
        raise ScheduleGridError(f"{path}: no [[schedules]] entries")
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ScheduleGridError(f"{path}: schedule names must be unique, got {names}")
    return bench, entries


# --quick runs every schedule, so each gets a smaller grid than the niah/locomo quick runs.
QUICK_NIAH = dict(niah_bench.QUICK, needles=("sf",))
QUICK_LOCOMO = dict(conversations=(0,), max_sessions=6, max_questions=8)


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def _niah_cfg(cfg: ScheduleBenchConfig, quick: bool, systems: Sequence[str], mem_cfg: MemoryConfig, budget: int):
    # --quick always runs the niah quick grid; otherwise [bench] keys, then these defaults.
    b = GridBench() if quick else cfg.bench
    preset = QUICK_NIAH if quick else dict(lengths=(32_000,), ages=(2, 16, 64, 128),
                                           needles=("word-number", "uuid-uuid", "sf"), haystacks=("pg",))
    return niah_bench.NiahConfig(
        lengths=_given(b.niah_lengths, preset["lengths"]), ages=_given(b.niah_ages, preset["ages"]),
        needles=_given(b.niah_needles, preset["needles"]), haystacks=_given(b.niah_haystacks, preset["haystacks"]),
        systems=tuple(systems), budget=budget, seed=cfg.seed, essays=cfg.essays, locomo=cfg.locomo,
        memory_config=mem_cfg)


def _locomo_cfg(cfg: ScheduleBenchConfig, quick: bool, systems: Sequence[str], mem_cfg: MemoryConfig, budget: int):
    b = GridBench() if quick else cfg.bench
    preset = QUICK_LOCOMO if quick else dict(conversations=(0,), max_sessions=None, max_questions=60)
    return locomo_bench.LocomoConfig(
        data=cfg.locomo, conversations=_given(b.locomo_conversations, preset["conversations"]),
        max_sessions=_given(b.locomo_max_sessions, preset["max_sessions"]),
        max_questions=_given(b.locomo_max_questions, preset["max_questions"]),
        systems=tuple(systems), archive=mem_cfg.archive, budget=budget, seed=cfg.seed, memory_config=mem_cfg)


def _row(name: str, system: str, niah_out: dict | None, locomo_out: dict | None) -> dict:
    row: dict[str, Any] = {"schedule": name}
    if niah_out is not None:
        scores = [s["systems"][system]["score"] for s in niah_out["samples"]]
        pos = [s["systems"][system]["positions"] for s in niah_out["samples"]]
        row["niah_recall"] = round(100 * sum(scores) / len(scores), 1) if scores else None
        row["niah_positions"] = round(sum(pos) / len(pos)) if pos else None
    if locomo_out is not None:
        per = locomo_out["summary"]["by_category"].get("1-4", {}).get(system)
        if per:
            row.update(locomo_evidence_text=per["evidence_text"], locomo_evidence_page=per["evidence_page"],
                       locomo_answer=per["answer_contained"], locomo_positions=per["mean_positions"])
    return row


def run(cfg: ScheduleBenchConfig, quick: bool) -> dict:
    rows = []
    first = cfg.entries[0].config
    ref_budget = _given(cfg.bench.budget, first.budget)
    n_ref = _niah_cfg(cfg, quick, ["window"], first, ref_budget) if cfg.run_niah else None
    l_ref = _locomo_cfg(cfg, quick, ["window"], first, ref_budget) if cfg.run_locomo else None
    rows.append(_row(f"sliding window (reference, budget {ref_budget})", "window",
                     niah_bench.run(n_ref) if n_ref else None, locomo_bench.run(l_ref) if l_ref else None))
    for e in cfg.entries:
        budget = _given(cfg.bench.budget, e.config.budget)
        # "optmem": the schedule's MemoryConfig as it is, archive included.
        n_out = niah_bench.run(_niah_cfg(cfg, quick, ["optmem"], e.config, budget)) if cfg.run_niah else None
        l_out = locomo_bench.run(_locomo_cfg(cfg, quick, ["optmem"], e.config, budget)) if cfg.run_locomo else None
        row = _row(e.name, "optmem", n_out, None)
        row.update({k: v for k, v in _row(e.name, "optmem", None, l_out).items() if k != "schedule"})
        row["budget"] = budget
        row["config"] = e.config.model_dump(mode="json", include={"recent_turns", "archive", "schedule"})
        rows.append(row)
    return {"rows": rows}


HEADERS = (("schedule", "schedule"), ("niah_recall", "NIAH recall %"), ("niah_positions", "NIAH positions"),
           ("locomo_evidence_text", "LoCoMo evidence as text %"), ("locomo_evidence_page", "… at least as page %"),
           ("locomo_answer", "answer contained %"), ("locomo_positions", "LoCoMo positions"))


COLUMN_NOTES = {
    "schedule": "the schedule's name in the grid file (the sliding window at the same budget is the reference row)",
    "niah_recall": "needle recall, RULER's string_match_all (%) over the NIAH grid (optmem bench niah)",
    "niah_positions": "mean positions the NIAH contexts used",
    "locomo_evidence_text": "share of LoCoMo evidence turns present in the context as text (optmem bench locomo)",
    "locomo_evidence_page": "the same, counting turns present only as an in-context page image too",
    "locomo_answer": "share of questions whose normalised gold answer occurs in the context's text",
    "locomo_positions": "mean positions the LoCoMo contexts used",
}


def render_report(out: dict, report: Report) -> dict:
    report.add("Recall against positions used, per schedule",
               md_table([h for _, h in HEADERS], [[r.get(k, "-") for k, _ in HEADERS] for r in out["rows"]]))
    report.add("Columns", "\n".join(f"- **{h}**: {COLUMN_NOTES[k]}" for k, h in HEADERS))
    fig, axes = new_figure(2, width=5.5)
    for ax, (rk, pk, title) in zip(axes, (("niah_recall", "niah_positions", "NIAH"),
                                          ("locomo_evidence_text", "locomo_positions", "LoCoMo evidence as text"))):
        for r in out["rows"]:
            if r.get(rk) is not None and r.get(pk) is not None:
                ax.scatter([r[pk]], [r[rk]], label=r["schedule"])
        ax.set_xlabel("positions used (mean, reader tokens)")
        ax.set_ylabel("NIAH recall: string_match_all (%)" if rk == "niah_recall" else "evidence turns as text (%)")
        ax.set_title(title)
        ax.legend(fontsize=7)
    return {"recall_vs_positions": fig}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("schedules", nargs="?", type=Path, default=EXAMPLE, help=f"grid TOML (default {EXAMPLE})")
    p.add_argument("--quick", action="store_true", help="the niah and locomo --quick grids for every schedule")
    p.add_argument("--only", choices=("niah", "locomo"), help="run one of the two benchmarks")
    p.add_argument("--essays", type=Path, default=default_data("pg_essays"), help=data_help("essays"))
    p.add_argument("--locomo", type=Path, default=default_data("locomo", "locomo5_dev.json"), help=data_help("locomo"))
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    add_out_argument(p)


def main_args(args: argparse.Namespace) -> dict[str, Path]:
    bench, entries = load_grid(args.schedules)
    cfg = ScheduleBenchConfig(entries=entries, bench=bench, essays=args.essays, locomo=args.locomo, seed=args.seed,
                              run_niah=args.only in (None, "niah"), run_locomo=args.only in (None, "locomo"))
    started, t0 = RunStart.now(), time.perf_counter()
    out = run(cfg, args.quick)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    rec = {"schedules_file": str(args.schedules), "bench": bench.model_dump(mode="json", exclude_unset=True),
           "only": args.only, "seed": args.seed,
           "entries": [{"name": e.name, "config": e.config.model_dump(mode="json")} for e in entries]}
    report = Report("schedule", rec, results=out, started=started)
    figs = render_report(out, report)
    return report.publish(args.out, quick=args.quick, figures=figs)
