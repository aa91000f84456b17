"""HTML report of a memory: page thumbnails grouped by tier and the layout of a context."""

from __future__ import annotations

import base64
import html
from collections import defaultdict
from pathlib import Path

from PIL import Image

from optmem.assembler import Context
from optmem.memory import OpticalMemory
from optmem.modes import TIER_NAMES, tier_side
from renderers import encode_png

THUMB_PX = 180
SEGMENT_COLOURS = {"page": "#4c78a8", "ledger": "#f58518", "expanded": "#54a24b", "turn": "#b279a2"}

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
.tier { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; text-align: center; font-size: 12px; }
figure img { border: 1px solid #bbb; image-rendering: auto; }
.bar { display: flex; height: 28px; border: 1px solid #999; width: 100%; }
.bar div { height: 100%; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }
"""


def _thumbnail(image: Image.Image) -> str:
    thumb = image.convert("L").resize((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    return "data:image/png;base64," + base64.b64encode(encode_png(thumb)).decode("ascii")


def _expansion_kind(segment) -> str:
    return f"excerpt, turns {segment.first_turn}-{segment.last_turn}" if segment.excerpt else "re-expanded"


def _context_section(ctx: Context, title: str) -> str:
    bar = "".join(
        f'<div title="{html.escape(s.kind)} {s.positions}" style="flex:{s.positions};background:{SEGMENT_COLOURS[s.kind]}"></div>'
        for s in ctx.segments if s.positions)
    rows = []
    for s in ctx.segments:
        what = {"page": lambda: f"page {s.page} (turns {s.first_turn}-{s.last_turn}) at {s.tier}",
                "ledger": lambda: "exact strings: " + " | ".join(s.strings),
                "expanded": lambda: f"page {s.page} {_expansion_kind(s)} ({s.source}): {s.body[:160]}…",
                "turn": lambda: f"turn {s.turn_id} {s.role}: {s.body[:160]}"}[s.kind]()
        rows.append(f"<tr><td>{s.kind}</td><td>{s.positions}</td><td>{html.escape(what)}</td></tr>")
    legend = "".join(f'<span style="background:{c}"></span>{k}' for k, c in SEGMENT_COLOURS.items())
    return (f"<h2>{html.escape(title)}: {ctx.positions} of {ctx.budget} positions</h2>"
            f'<div class="bar">{bar}</div><p class="legend">{legend}</p>'
            f"<table><tr><th>segment</th><th>positions</th><th>content</th></tr>{''.join(rows)}</table>")


def write_report(mem: OpticalMemory, path: Path, query: str | None = None) -> Path:
    pages = mem.pages()
    by_tier: dict[str, list[str]] = defaultdict(list)
    for info in pages:
        if not info.sealed:
            continue
        image = mem.page_image(info.number)
        label = f"page {info.number} · turns {info.first_turn}-{info.last_turn} · {image.width}px"
        by_tier[info.tier or "out of context"].append(
            f'<figure><img src="{_thumbnail(image)}" width="{THUMB_PX}" height="{THUMB_PX}" alt="{html.escape(label)}">'
            f"<figcaption>{html.escape(label)}</figcaption></figure>")
    sections = []
    for tier in (*TIER_NAMES, "out of context"):
        if by_tier[tier]:
            side = f"{tier_side(tier)} px" if tier in TIER_NAMES else "kept for recall"
            sections.append(f"<h2>{tier} ({side}): {len(by_tier[tier])} pages</h2><div class='tier'>{''.join(by_tier[tier])}</div>")
    contexts = [_context_section(mem.context(), "Context without a query")]
    if query:
        contexts.append(_context_section(mem.context(query=query), f"Context for {query!r}"))
    turns = len(mem.history())
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>optmem: {html.escape(mem.conversation)}</title>"
           f"<style>{STYLE}</style></head><body><h1>optmem memory of {html.escape(mem.conversation)!s}</h1>"
           f"<p>{turns} turns, {sum(1 for p in pages if p.sealed)} sealed pages, "
           f"newest {mem.config.recent_turns} turns kept as text.</p>"
           + "".join(contexts) + "".join(sections) + "</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path
