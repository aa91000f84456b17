"""`optmem demo`: a long built-in conversation with planted facts, run through optical memory.

The conversation is generated from a seed (no data files, no network): a user and an assistant
talk through a software project, trips and recipes, and a handful of exact facts (a door code, a
server URL, an order UUID, an API key id ...) are planted early, so that by the end they sit on
pages that have aged down to the blurriest tiers. The demo then shows what is left of them.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from optmem.config import MemoryConfig
from optmem.memory import OpticalMemory
from optmem.modes import TIER_NAMES
from optmem.progress import ShownEmbedder, plural, progress
from optmem.tokens import count_tokens

TOPICS = {
    "the billing service": ["invoices", "retries", "the ledger table", "idempotency keys", "currency rounding", "webhooks"],
    "the trip to Lisbon": ["the tram line", "a day in Sintra", "the hotel in Alfama", "pastries in Belém", "the fado bar", "train times"],
    "the sourdough starter": ["hydration", "the levain", "oven spring", "a cold retard", "scoring the loaf", "rye flour"],
    "the team offsite": ["the agenda", "the budget", "a venue by the lake", "who presents what", "the dinner booking", "travel"],
    "the mobile release": ["crash reports", "the beta group", "app store review", "feature flags", "the onboarding flow", "push tokens"],
}
OPENERS = ["Can you help me think through", "I keep going back and forth on", "Quick question about",
           "Let's pick up", "I'd like a second opinion on", "Remind me where we were with"]
CONNECTIVES = ["Also,", "On top of that,", "Separately,", "The tricky part is that", "What worries me is that", "To be fair,"]
VERBS = ["changed", "slowed down", "surprised us", "needs a decision", "is mostly done", "keeps coming up", "got cheaper", "broke twice"]
ADVICE = ["I would start with", "It usually pays to look at", "A simple option is to focus on", "Most teams handle this by revisiting",
          "Before anything else, check", "The cheapest experiment is to change"]
CLOSERS = ["Does that match what you are seeing?", "Want me to sketch a plan?", "Happy to go deeper on any of these.",
           "Let me know which one you try first.", "That should keep things moving."]


@dataclass(frozen=True)
class Fact:
    question: str
    answer: str
    turn_text: str


def planted_facts(rng: random.Random) -> list[Fact]:
    code = f"{rng.randint(1000, 9999)}-{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}"
    order = "%08x-%04x-4%03x-a%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                              rng.getrandbits(12), rng.getrandbits(48))
    port = rng.randint(8000, 8999)
    key = "sk-live-" + "".join(rng.choice("abcdef0123456789") for _ in range(12))
    flight = f"TP{rng.randint(1000, 1999)}"
    return [
        Fact("What is the door code for the office storage room?", code,
             f"Before I forget: the door code for the office storage room is {code}. Please remember it for me."),
        Fact("Which order id did the refund go out on?", order,
             f"The refund finally went out on order {order}, so we can close that ticket."),
        Fact("On which port does the staging billing service listen?", f"https://staging.billing.example.com:{port}/v2",
             f"Staging billing now lives at https://staging.billing.example.com:{port}/v2 after the move."),
        Fact("Which API key id did we rotate?", key,
             f"We rotated the payment API key; the new key id is {key} and the old one is revoked."),
        Fact("What is the flight number to Lisbon?", flight,
             f"My flight to Lisbon is {flight}, leaving at 07:40 from terminal 2."),
    ]


def _sentence(rng: random.Random, topic: str) -> str:
    thing = rng.choice(TOPICS[topic])
    return f"{rng.choice(CONNECTIVES)} {thing} {rng.choice(VERBS)} since last week, and {rng.choice(TOPICS[topic])} {rng.choice(VERBS)}."


def build_conversation(turns: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[int, Fact]]]:
    """``turns`` (role, text) pairs, and the facts with the index of the turn each is planted in."""
    rng = random.Random(seed)
    facts = planted_facts(rng)
    # Plant the facts in the first fifth, so they age into the blurred tiers by the end.
    slots = sorted(rng.sample(range(0, max(len(facts) * 2, turns // 5), 2), len(facts)))
    planted = dict(zip(slots, facts))
    conversation: list[tuple[str, str]] = []
    topic = rng.choice(sorted(TOPICS))
    for i in range(turns):
        if i % 2 == 0:
            if rng.random() < 0.15:
                topic = rng.choice(sorted(TOPICS))
            body = f"{rng.choice(OPENERS)} {topic}? " + " ".join(_sentence(rng, topic) for _ in range(rng.randint(1, 3)))
            if i in planted:
                body += " " + planted[i].turn_text
            conversation.append(("user", body))
        else:
            items = rng.sample(TOPICS[topic], 3)
            body = (f"{rng.choice(ADVICE)} {items[0]}. " + " ".join(_sentence(rng, topic) for _ in range(rng.randint(2, 4)))
                    + f" Then compare {items[1]} with {items[2]}. {rng.choice(CLOSERS)}")
            conversation.append(("assistant", body))
    return conversation, [(i, f) for i, f in sorted(planted.items())]


def run_demo(out_dir: Path, turns: int = 600, config: MemoryConfig | None = None, seed: int = 7,
             stream=None) -> dict:
    from optmem.viewer import write_viewer

    config = config or MemoryConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    conversation, facts = build_conversation(turns, seed)
    stream = stream or sys.stdout  # looked up per call, so redirected stdout is honoured
    say = lambda *a: print(*a, file=stream, flush=True)  # noqa: E731

    say(f"optmem demo: {turns} turns, {len(facts)} planted facts, database {db}")
    started = time.perf_counter()
    base_time = 1_700_000_000.0
    with OpticalMemory.open(db, conversation="demo", config=config, embedder=ShownEmbedder()) as mem:
        say(f"\ningesting {turns} turns: each page is rendered once and its turns embedded when it seals "
            "(the first seal loads MiniLM), then resampled as it ages ...")
        mem.add_many((role, text, base_time + 60.0 * i)
                     for i, (role, text) in enumerate(progress(conversation, desc="ingest", unit="turn")))
        ingest_s = time.perf_counter() - started

        full_tokens = sum(count_tokens(f"{role}: {text}\n") for role, text in conversation)
        pages = mem.pages()
        tiers = Counter(p.tier or "out of context" for p in pages if p.sealed)
        say(f"ingested in {ingest_s:.1f} s ({turns / ingest_s:.0f} turns/s): {plural(len(pages), 'page')}, "
            f"{sum(p.sealed for p in pages)} sealed")
        say("sealed pages per tier: " + ", ".join(f"{t} {tiers[t]}" for t in (*TIER_NAMES, "out of context") if tiers[t]))

        ctx = mem.context(budget=config.budget)
        kinds = Counter(s.kind for s in ctx.segments)
        say(f"\ncontext without a query: {ctx.positions} positions of {ctx.budget} "
            f"({kinds['page']} page images, {kinds['ledger']} ledgers, {kinds['turn']} recent turns)")
        say(f"full conversation as text: {full_tokens} tokens -> {full_tokens / ctx.positions:.1f}x compression "
            f"({full_tokens - ctx.positions} positions saved)")

        say(f"\nrecalling the planted facts from {plural(sum(p.sealed for p in pages), 'sealed page')} ...")
        found = 0
        recalled = []
        for turn_index, fact in facts:
            asked = time.perf_counter()
            hits = mem.recall(fact.question, k=3)
            hit = next((h for h in hits if fact.answer in h.text), None)
            found += hit is not None
            page_tier = (hit.tier or "out of context") if hit else "-"
            say(f"  Q: {fact.question} ({time.perf_counter() - asked:.1f} s)\n     planted in turn {turn_index + 1}; "
                + (f"found on page {hit.page} ({page_tier}, score {hit.score:.2f}, {hit.source}): {fact.answer}"
                   if hit else f"NOT found in the top {len(hits)} pages"))
            recalled.append({"question": fact.question, "answer": fact.answer, "found": hit is not None,
                             "page": hit.page if hit else None, "tier": page_tier})

        blurred = next((r for r in recalled if r["found"] and r["tier"] in ("small", "tiny")), None)
        if blurred is not None:
            say(f"\nreading page {blurred['page']} back from its {blurred['tier']} image by OCR "
                "(the first read loads the recogniser) ...")
            started_ocr = time.perf_counter()
            read = mem.read_page(blurred["page"])
            exact = blurred["answer"] in read
            say(f"read in {time.perf_counter() - started_ocr:.1f} s: the answer {blurred['answer']!r} is "
                + ("read exactly" if exact else "misread (the page's verbatim ledger is what keeps ids exact)"))
            blurred["ocr_exact"] = exact

        question = facts[0][1].question if facts else "what did we decide?"
        step = time.perf_counter()
        query_ctx = mem.context(query=question, budget=config.budget)
        as_text = [s for s in query_ctx.segments if s.kind == "expanded"]
        images = [s for s in query_ctx.segments if s.kind == "page"]
        say(f"\ncontext for {question!r}: {query_ctx.positions} positions: {plural(len(as_text), 'run')} of "
            f"retrieved turns as text ({sum(s.positions for s in as_text)} positions), "
            f"{plural(len(images), 'page image')} ({sum(s.positions for s in images)}) "
            f"({time.perf_counter() - step:.1f} s)")
        say(f"\nwriting the viewer ({plural(len(pages), 'page')} as images) ...")
        step = time.perf_counter()
        report = write_viewer(mem, out_dir / "viewer", query=question)
        elapsed = time.perf_counter() - started
        say(f"written in {time.perf_counter() - step:.1f} s")
        say(f"\n{found}/{len(facts)} planted facts recalled exactly; report: {report}; total {elapsed:.1f} s")
        return {"turns": turns, "ingest_s": ingest_s, "full_tokens": full_tokens, "positions": ctx.positions,
                "compression": full_tokens / ctx.positions, "tiers": dict(tiers), "facts": recalled,
                "report": str(report)}
