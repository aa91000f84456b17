"""`optmem bench locomo`: real multi-session dialogue (LoCoMo).

Each conversation is ingested in order with its session timestamps; then, for every question,
each system builds its context at the same budget and is scored without a model: evidence recall
(the annotated evidence turns present as text or re-expanded text; and present at least as an
in-context page, by tier), answer containment (the normalised answer occurs in the text view),
and positions used against the whole conversation's tokens. Category 5 (adversarial, no answer
in the conversation) is reported apart.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

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
from .haystack import load_locomo, locomo_turns
from .protocol import Transcript
from .scoring import answer_contained, normalize_answer, paired_bootstrap
from .systems import build

# optmem runs as its MemoryConfig says, with ``archive`` from this benchmark's config.
LocomoSystem = Literal["window", "retrieval", "optmem", "full"]
SYSTEMS: tuple[str, ...] = get_args(LocomoSystem)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


class LocomoConfig(BenchConfig):
    data: Path = Field(default_factory=lambda: default_data("locomo", "locomo5_dev.json"))
    conversations: tuple[Annotated[int, Field(ge=0)], ...] | None = None  # indices into the file; None = all
    max_sessions: int | None = Field(default=None, ge=1)  # keep only the first N sessions of each conversation
    max_questions: int | None = Field(default=None, ge=1)  # per conversation, evenly spaced in file order
    systems: tuple[LocomoSystem, ...] = Field(default=SYSTEMS, min_length=1)
    archive: Literal["verbatim", "optical"] = "verbatim"
    budget: int = Field(default=8192, ge=64, description="decoder positions every system may use")
    seed: int = DEFAULT_SEED
    memory_config: MemoryConfigField = MemoryConfig()
    llm: str | None = None  # OpenAI-compatible base URL: also score the model's answers (token F1)
    llm_model: str = "default"


QUICK = dict(conversations=(0,), max_sessions=14, max_questions=20)


def _evidence_ids(evidence: Sequence[str]) -> list[str]:
    # A few LoCoMo annotations pack several ids in one string ("D8:6; D9:17").
    return [e for item in evidence for e in re.split(r"[;,\s]+", str(item)) if e]


def token_f1(prediction: str, answer: str) -> float:
    """LoCoMo's answer F1 over normalised tokens (for --llm answers)."""
    p, g = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def _session_of(dia_id: str) -> int:
    return int(dia_id.split(":")[0].lstrip("D"))


def _effective_memory_config(cfg: LocomoConfig) -> MemoryConfig:
    return memory_config(cfg.memory_config, budget=cfg.budget, archive=cfg.archive)


def run(cfg: LocomoConfig) -> dict:
    data = load_locomo(cfg.data)
    picks = list(cfg.conversations) if cfg.conversations is not None else list(range(len(data)))
    for i in picks:
        if not 0 <= i < len(data):
            raise ValueError(f"conversations: index {i} out of range 0..{len(data) - 1}")
    runners = [build(name, _effective_memory_config(cfg)) for name in cfg.systems]
    llm = None
    if cfg.llm:
        from .llm import answer_client

        llm = answer_client(cfg.llm, cfg.llm_model)

    questions, convs = [], []
    for ci in picks:
        sample = data[ci]
        turns = locomo_turns(sample)
        if cfg.max_sessions is not None:
            turns = [t for t in turns if _session_of(t.dia_id) <= cfg.max_sessions]
        index = {t.dia_id: i for i, t in enumerate(turns)}
        qa_index = {id(q): i for i, q in enumerate(sample["qa"])}
        qa = [q for q in sample["qa"] if all(e in index for e in _evidence_ids(q.get("evidence", [])))
              and _evidence_ids(q.get("evidence", []))]
        if cfg.max_questions is not None and len(qa) > cfg.max_questions:
            # Evenly spaced through the file: its questions run roughly in session order.
            step = len(qa) / cfg.max_questions
            qa = [qa[int(i * step)] for i in range(cfg.max_questions)]
        transcript = Transcript.of(turns, name=sample.get("sample_id", str(ci)))
        conv = {"conversation": transcript.name, "turns": len(turns), "text_tokens": sum(transcript.costs),
                "questions": len(qa)}
        convs.append(conv)
        held = {}
        try:
            for system in runners:
                held[system.name] = system.ingest(transcript)
                for key, value in held[system.name].stats().items():
                    conv[f"{system.name}_{key}"] = round(value, 2) if isinstance(value, float) else value
            for q in progress(qa, desc=f"locomo {conv['conversation']}"):
                ev = [index[e] for e in _evidence_ids(q["evidence"])]
                answer = q.get("answer", q.get("adversarial_answer", ""))
                # Results name questions by their index in the file, never by their text: the data
                # (CC BY-NC) stays out of anything that may be committed.
                rec = {"conversation": conv["conversation"], "qa_index": qa_index[id(q)], "category": q["category"],
                       "evidence": _evidence_ids(q["evidence"]), "systems": {}}
                for system in runners:
                    v = held[system.name].context(q["question"], cfg.budget)
                    res = _result(v, ev, str(answer), q["category"], paged=system.paged)
                    if llm:
                        reply = llm.chat(v.messages(q["question"]))
                        res["llm_answer"], res["llm_f1"] = reply, token_f1(reply, str(answer))
                    rec["systems"][system.name] = res
                    if system.paged and "retrieval" in held:
                        # Plain retrieval given only the positions this system spent on text: is
                        # its choice of text as good, position for position? A page's ledger rides
                        # with its image (the allocation buys them together) and is no turn's text.
                        res["text_positions"] = v.positions - sum(s["positions"] for s in v.segments
                                                                  if s["kind"] in IMAGE_SEGMENTS)
                        same = held["retrieval"].context(q["question"], res["text_positions"])
                        rec["systems"][same_text_name(system.name)] = _result(same, ev, str(answer), q["category"])
                questions.append(rec)
        finally:
            for h in held.values():
                h.close()
    paged = [s.name for s in runners if s.paged]
    return {"conversations": convs, "questions": questions, "summary": summarise(questions, paged, seed=cfg.seed)}


# The segments a context spends on its page images: the image itself, and the ledger of exact
# strings that rides with it (priced with the page: optmem.allocation.PageOption.positions).
IMAGE_SEGMENTS = ("page", "ledger")


def same_text_name(system: str) -> str:
    """The record of plain retrieval given the positions ``system`` spent on text."""
    return f"retrieval@{system} text"


def _result(v, ev: Sequence[int], answer: str, category: int, *, paged: bool = False) -> dict:
    locs = [v.locate(i) for i in ev]
    res = {"positions": v.positions,
           "evidence_text": sum(loc.text is not None for loc in locs) / len(ev),
           "evidence_page": sum(loc.where is not None for loc in locs) / len(ev)}
    if paged:
        res["evidence"], res["context_s"] = [loc.where for loc in locs], round(v.context_s, 3)
    res["answer_contained"] = answer_contained(answer, v.text) if category != 5 else None
    return res


def _pct(xs: list[float]) -> float | None:
    return round(100.0 * sum(xs) / len(xs), 1) if xs else None


def paired_against(questions: list[dict], baseline: str = "retrieval", *, seed: int = DEFAULT_SEED) -> dict:
    """Per system, evidence as text minus ``baseline``'s on the same questions (categories 1–4),
    in points, with a 95 % paired bootstrap interval."""
    out = {}
    asked = [q for q in questions if q["category"] != 5 and baseline in q["systems"]]
    names = {n for q in asked for n in q["systems"]} - {baseline}
    for name in sorted(names):
        diffs = [q["systems"][name]["evidence_text"] - q["systems"][baseline]["evidence_text"]
                 for q in asked if name in q["systems"]]
        if diffs:
            mean, lo, hi = paired_bootstrap(diffs, seed=seed)
            out[name] = {"n": len(diffs), "difference": round(100 * mean, 1), "low": round(100 * lo, 1),
                         "high": round(100 * hi, 1)}
    return out


def summarise(questions: list[dict], paged: Collection[str], *, seed: int = DEFAULT_SEED) -> dict:
    """``paged``: the systems whose records say where each evidence turn was."""
    rows: dict[str, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    where: dict[str, int] = Counter()
    for q in questions:
        groups = [str(q["category"])] + (["1-4"] if q["category"] != 5 else [])
        for name, r in q["systems"].items():
            for g in groups:
                d = rows[g][name]
                d["evidence_text"].append(r["evidence_text"])
                d["evidence_page"].append(r["evidence_page"])
                d["positions"].append(r["positions"])
                if r["answer_contained"] is not None:
                    d["answer_contained"].append(float(r["answer_contained"]))
                if "llm_f1" in r:
                    d["llm_f1"].append(r["llm_f1"])
            if name in paged and q["category"] != 5:
                for e in r["evidence"]:
                    where[e or "absent"] += 1
    plain = [{**q, "systems": {n: r for n, r in q["systems"].items() if not n.startswith("retrieval@")}}
             for q in questions]
    same_text = {}
    for name in paged:
        if any(same_text_name(name) in q["systems"] for q in questions):
            same_text.update({name: p for n, p in paired_against(questions, same_text_name(name), seed=seed).items()
                              if n == name})
    out: dict[str, Any] = {"by_category": {}, "optmem_evidence_where": dict(where),
                           "paired_vs_retrieval": paired_against(plain, seed=seed),
                           "paired_vs_retrieval_same_text": same_text}
    for g, per in rows.items():
        out["by_category"][g] = {
            name: {"n": len(d["positions"]), "evidence_text": _pct(d["evidence_text"]),
                   "evidence_page": _pct(d["evidence_page"]), "answer_contained": _pct(d["answer_contained"]),
                   "mean_positions": round(sum(d["positions"]) / len(d["positions"])),
                   **({"llm_f1": _pct(d["llm_f1"])} if d["llm_f1"] else {})}
            for name, d in per.items()}
    return out


COLUMNS = (
    ("system", "the memory system compared, each at the same budget of positions but full (the whole "
               "conversation as text, the unbounded reference)"),
    ("questions", "LoCoMo questions asked (those whose evidence turns are all in the conversation)"),
    ("evidence as text %", "share of the question's evidence turns (LoCoMo's dia_ids) present in the context as "
                           "text: a recent turn, or a page re-expanded to text"),
    ("at least as page %", "the same share counting also turns present only as an in-context page image"),
    ("answer contained %", "share of questions whose gold answer, normalised as LoCoMo's own evaluation does "
                           "(lower case, no punctuation or articles), occurs in the context's text; a page image "
                           "counts only through its ledger; category 5 has no answer and is not scored"),
    ("mean positions", "mean input tokens of the context, the query included (the reader's tokens: DeepSeek-OCR "
                       "decoder positions unless --config names another model)"),
    ("LLM F1 %", "with --llm: token F1 of the model's answer against the gold answer, LoCoMo's metric"),
)


def render_report(cfg: LocomoConfig, out: dict, report: Report) -> dict:
    summ, names = out["summary"], list(cfg.systems)
    names += [same_text_name(n) for n in cfg.systems if same_text_name(n) in summ["by_category"].get("1-4", {})]
    llm = any("llm_f1" in per.get(n, {}) for per in summ["by_category"].values() for n in names)
    headers = [h for h, _ in COLUMNS if llm or h != "LLM F1 %"]
    for group, title in (("1-4", "categories 1–4"), ("5", "category 5 (adversarial), reported apart")):
        per = summ["by_category"].get(group)
        if not per:
            continue
        rows = [[n, per[n]["n"], per[n]["evidence_text"], per[n]["evidence_page"], per[n]["answer_contained"],
                 per[n]["mean_positions"], *([per[n].get("llm_f1")] if llm else [])] for n in names if n in per]
        report.add(f"Evidence recall per system at budget {cfg.budget}, {title}", md_table(headers, rows))
    report.add("Columns", "\n".join(f"- **{h}**: {d}" for h, d in COLUMNS if h in headers))
    paired = summ.get("paired_vs_retrieval") or {}
    if paired:
        report.add("Paired against plain retrieval (categories 1–4)",
                   "difference: mean over the same questions of (system − retrieval) evidence as text, in points; "
                   "95 % interval: percentile bootstrap over questions (10,000 resamples, pairs kept).\n\n"
                   + md_table(["system", "questions", "difference (points)", "95 % interval"],
                              [[n, p["n"], p["difference"], f"{p['low']} … {p['high']}"] for n, p in paired.items()]))
    same_text = summ.get("paired_vs_retrieval_same_text") or {}
    if same_text:
        report.add("Paired against plain retrieval given the same text positions (categories 1–4)",
                   "retrieval@<system> text: plain retrieval asked, question by question, for only the positions "
                   "<system>'s context spent on text (all of it but its page images and their ledgers, the query "
                   "included). "
                   "difference: mean of (system − that retrieval) evidence as text, in points; 95 % interval as "
                   "above.\n\n"
                   + md_table(["system", "questions", "difference (points)", "95 % interval"],
                              [[n, p["n"], p["difference"], f"{p['low']} … {p['high']}"] for n, p in same_text.items()]))
    cats = sorted((g for g in summ["by_category"] if g.isdigit()), key=int)
    rows = [[f"{g} {CATEGORIES.get(int(g), '')}", *[summ["by_category"][g].get(n, {}).get("evidence_text") for n in names]]
            for g in cats]
    report.add("Evidence as text (%) by category", "Rows: LoCoMo's question categories; columns: systems; cells: "
               "evidence as text %, as above.\n\n" + md_table(["category", *names], rows))
    if summ["optmem_evidence_where"]:
        total = sum(summ["optmem_evidence_where"].values())
        report.add("optmem: where the evidence turns are (categories 1–4)",
                   "where: turn (a recent text turn), expanded:verbatim / expanded:ocr (its page re-expanded to text "
                   "from the archive / by OCR), page:<tier> (only its page image, at that tier), absent (not in the "
                   "context); turns: evidence turns there; share %: of all evidence turns.\n\n"
                   + md_table(["where", "turns", "share %"],
                              [[k, v, round(100 * v / total, 1)] for k, v in sorted(summ["optmem_evidence_where"].items())]))
    report.add("Conversations", "text tokens: the conversation as text, in DeepSeek tokens; optmem pages / ingest s: "
               "pages optmem sealed and the seconds its ingest took.\n\n"
               + md_table(["conversation", "turns", "text tokens", "questions", "optmem pages", "optmem ingest s"],
                          [[c["conversation"], c["turns"], c["text_tokens"], c["questions"],
                            c.get("optmem_pages", "-"), c.get("optmem_ingest_s", "-")] for c in out["conversations"]]))
    return {"evidence": evidence_figure(cfg, summ, names, cats)} if cats else {}


def evidence_figure(cfg: LocomoConfig, summ: dict, names: list[str], cats: list[str]):
    """Grouped bars: evidence as text (solid) and at least as page (hatched, behind) per category."""
    fig, (ax,) = new_figure(1, width=max(6.0, 1.4 * len(cats) * max(len(names), 1) / 2))
    width = 0.8 / max(len(names), 1)
    for i, n in enumerate(names):
        xs = [c + (i - (len(names) - 1) / 2) * width for c in range(len(cats))]
        page = [summ["by_category"][g].get(n, {}).get("evidence_page") or 0 for g in cats]
        text = [summ["by_category"][g].get(n, {}).get("evidence_text") or 0 for g in cats]
        ax.bar(xs, page, width, color=f"C{i}", alpha=0.3, hatch="//")
        ax.bar(xs, text, width, color=f"C{i}", label=n)
    ax.set_xticks(range(len(cats)), [f"{g} {CATEGORIES.get(int(g), '')}\n(n={summ['by_category'][g][names[0]]['n']})"
                                     if names[0] in summ["by_category"][g] else g for g in cats])
    ax.set_xlabel("LoCoMo question category")
    ax.set_ylabel("evidence turns in context (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"LoCoMo evidence recall at budget {cfg.budget}: solid as text, hatched at least as page")
    ax.legend(fontsize=8)
    return fig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=default_data("locomo", "locomo5_dev.json"), help=data_help("locomo"))
    p.add_argument("--quick", action="store_true", help="the first 14 sessions of conversation 0, 20 questions spread over them")
    p.add_argument("--conversations", type=int, nargs="+", help="conversation indices in the file")
    p.add_argument("--max-sessions", type=int)
    p.add_argument("--max-questions", type=int)
    p.add_argument("--systems", nargs="+", choices=SYSTEMS)
    p.add_argument("--archive", choices=("verbatim", "optical"), default="verbatim")
    p.add_argument("--budget", type=int, default=8192)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--config", type=Path, help="optmem MemoryConfig TOML")
    p.add_argument("--llm", help="OpenAI-compatible base URL: also score the model's answers (token F1)")
    p.add_argument("--llm-model", default="default")
    add_out_argument(p)


def config_from_args(args: argparse.Namespace) -> LocomoConfig:
    preset = QUICK if args.quick else {}
    return LocomoConfig(
        data=args.data, conversations=args.conversations or preset.get("conversations"),
        max_sessions=args.max_sessions or preset.get("max_sessions"),
        max_questions=args.max_questions or preset.get("max_questions"),
        systems=tuple(args.systems or SYSTEMS), archive=args.archive, budget=args.budget, seed=args.seed,
        memory_config=args.config, llm=args.llm, llm_model=args.llm_model)


def config_record(cfg: LocomoConfig) -> dict:
    rec = cfg.model_dump(mode="json")
    rec["memory_config"] = _effective_memory_config(cfg).model_dump(mode="json")
    return rec


def main_args(args: argparse.Namespace) -> dict[str, Path]:
    cfg = config_from_args(args)
    started, t0 = RunStart.now(), time.perf_counter()
    out = run(cfg)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    report = Report("locomo", config_record(cfg), results=out, started=started)
    figs = render_report(cfg, out, report)
    return report.publish(args.out, quick=args.quick, figures=figs)
