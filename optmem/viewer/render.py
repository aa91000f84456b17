"""The viewer's index.html from what write.py gathered: pure functions from data to markup."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from optmem.assembler import Context
from optmem.memory import PageInfo
from optmem.modes import TIER_NAMES
from optmem.viewer.layout import layout_rows
from optmem.viewer.text import number_ranges

FIGURE_PX = 560  # widest a page image is shown beside its text; the link opens it at full size
OUT_OF_CONTEXT = "out of context"
TIER_COLOURS = {"gundam": "#08306b", "large": "#1f4e8c", "base": "#3b78b8", "small": "#73a6d6", "tiny": "#b5d1ec",
                OUT_OF_CONTEXT: "#c8c8c8"}
KIND_COLOURS = {"ledger": "#f58518", "expanded": "#54a24b", "turn": "#b279a2", "framing": "#888888"}

STYLE = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; padding: 1.5em 2em 4em;
       max-width: 1500px; color: #1d1d1f; background: #fafafa; }
h1 { font-size: 1.5em; margin: 0 0 .3em; } h2 { font-size: 1.2em; margin: 2em 0 .6em; }
h3 { font-size: 1.05em; margin: 0; display: inline; } h4 { font-size: .85em; margin: .2em 0 .3em; color: #555;
     text-transform: uppercase; letter-spacing: .04em; }
a { color: #1f5fa8; }
.summary p { margin: .25em 0; }
nav.toc a { margin-right: 1.2em; }
.strip { display: flex; flex-wrap: wrap; gap: 3px; margin: .8em 0; }
.strip a { width: 2.3em; padding: 2px 0; text-align: center; font-size: 11px; text-decoration: none; color: #000;
           border-radius: 3px; }
.strip a.open { outline: 2px dashed #c0392b; outline-offset: 1px; }
.legend { font-size: 13px; color: #444; margin: .4em 0; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px -1px 14px; border-radius: 2px;
               box-shadow: inset 0 0 0 1px rgba(0, 0, 0, .25); }
.bar { display: flex; height: 30px; border: 1px solid #999; background: #fff; }
.bar div { height: 100%; min-width: 1px; }
table { border-collapse: collapse; background: #fff; }
td, th { padding: 3px 10px; border-bottom: 1px solid #e2e2e2; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font: 13px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; background: #f0f0f0; padding: 0 3px; border-radius: 3px; }
.ledger code { margin-right: .4em; display: inline-block; }
article.page { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em 1em; margin: 0 0 1.2em; }
article.page.open { border-style: dashed; }
.badge { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 10px; margin-left: .6em; color: #000; }
dl.meta { display: flex; flex-wrap: wrap; gap: .2em 1.6em; margin: .5em 0 .8em; font-size: 14px; }
dl.meta div { display: flex; gap: .4em; } dl.meta dt { color: #666; } dl.meta dd { margin: 0; }
.body { display: grid; grid-template-columns: minmax(0, FIGURE_PXpx) minmax(0, 1fr); gap: 1.2em; align-items: start; }
@media (max-width: 1000px) { .body { grid-template-columns: minmax(0, 1fr); } }
figure { margin: 0; } figure img { display: block; max-width: 100%; height: auto; border: 1px solid #bbb; background: #fff; }
figcaption { font-size: 13px; margin-top: .3em; }
figure.missing figcaption::after { content: " (image file missing)"; color: #b00; font-weight: bold; }
pre.text { white-space: pre-wrap; word-break: break-word; font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", monospace;
           max-height: 520px; overflow: auto; margin: 0 0 .8em; padding: .6em .8em; background: #f6f6f4;
           border: 1px solid #e4e4e0; border-radius: 4px; }
.note { color: #666; font-style: italic; }
""".replace("FIGURE_PX", str(FIGURE_PX))

# Marks each page image once the browser has it, so a missing file is named on the page (and a
# headless browser's DOM says which images loaded).
SCRIPT = """
for (const img of document.querySelectorAll("img.page-image")) {
  const mark = () => {
    img.dataset.loaded = img.naturalWidth > 0 ? "yes" : "no";
    img.dataset.naturalWidth = img.naturalWidth;
    if (!img.naturalWidth) img.closest("figure").classList.add("missing");
  };
  if (img.complete) mark(); else { img.addEventListener("load", mark); img.addEventListener("error", mark); }
}
"""


@dataclass(frozen=True)
class PageView:
    """One page as the viewer shows it."""

    info: PageInfo
    image: str | None  # the PNG's path relative to index.html; None: no image to show
    image_side: int | None
    image_note: str  # what the image is (the stored one, or the open page drawn for the context)
    text: str | None  # the page's text: the verbatim archive (sealed) or its turns (the open page)
    text_title: str
    ocr: str | None  # read back from the image with OCR, when asked for
    ledger: tuple[str, ...] | None  # exact strings sent with the page's image; None: not sent as an image


@dataclass(frozen=True)
class MemoryView:
    conversation: str
    turns: int
    recent_turns: int
    reader: str
    archive: str
    age_unit: str
    pages: Sequence[PageView]
    contexts: Sequence[tuple[str, Context]]
    ocr_asked: bool


def tier_label(tier: str | None) -> str:
    return str(tier) if tier else OUT_OF_CONTEXT


def page_count(pages: Sequence[PageInfo]) -> str:
    """How many pages a memory has, said one way everywhere: sealed pages, and the open page
    (turns packed but not sealed yet) by its number."""
    sealed = sum(1 for p in pages if p.sealed)
    text = f"{sealed} sealed page{'s' if sealed != 1 else ''}"
    open_page = next((p for p in pages if not p.sealed), None)
    if open_page is not None:
        text += f" + the open page {open_page.number}"
    return text


def format_age(age: float, unit: str) -> str:
    """A page's age in the schedule's unit (seconds in the largest units that keep it short)."""
    if unit != "seconds":
        n = int(age)
        return f"{n} {unit[:-1] if n == 1 else unit}"
    s = int(age)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _turn_span(info: PageInfo) -> str:
    span = f"{info.first_turn}" if info.first_turn == info.last_turn else f"{info.first_turn}–{info.last_turn}"
    if info.first_char:
        span += f" (turn {info.first_turn} from character {info.first_char})"
    return span


def _summary(view: MemoryView) -> str:
    infos = [p.info for p in view.pages]
    sealed = Counter(tier_label(p.tier) for p in infos if p.sealed)
    tiers = ", ".join(f"{t} {sealed[t]}" for t in (*TIER_NAMES, OUT_OF_CONTEXT) if sealed[t]) or "none yet"
    open_page = next((p for p in infos if not p.sealed), None)
    open_text = (f"The open page {open_page.number} holds turns {_turn_span(open_page)}, packed but not sealed yet "
                 f"(it goes into the context at {tier_label(open_page.tier)}).") if open_page else "There is no open page."
    return (f'<section class="summary"><h1>optmem memory: {escape(view.conversation)}</h1>'
            f"<p><b>{view.turns} turns; {len(infos)} pages: {page_count(infos)}.</b> The newest {view.recent_turns} turns "
            f"are kept as text. {open_text}</p>"
            f"<p>Sealed pages per tier: {escape(tiers)}. Reader: {escape(view.reader)}; archive: {escape(view.archive)}; "
            f"ages counted in {escape(view.age_unit)}.</p></section>")


def _toc(view: MemoryView) -> str:
    links = [f'<a href="#context-{i}">{escape(title)}</a>' for i, (title, _) in enumerate(view.contexts)]
    links += ['<a href="#ledger">Ledger</a>', '<a href="#pages">Pages, oldest first</a>']
    return f'<nav class="toc">{"".join(links)}</nav>'


def _strip(pages: Sequence[PageView]) -> str:
    cells = []
    for p in pages:
        tier = tier_label(p.info.tier)
        what = f"page {p.info.number} · turns {_turn_span(p.info)} · {tier}" + ("" if p.info.sealed else " · open page")
        cells.append(f'<a href="#page-{p.info.number}" class="{"open" if not p.info.sealed else ""}" '
                     f'style="background:{TIER_COLOURS[tier]}" title="{escape(what)}">{p.info.number}</a>')
    return ('<p class="legend">Every page by its tier, oldest first (dashed: the open page); click one to go to it.</p>'
            f'<div class="strip" aria-label="pages by tier">{"".join(cells)}</div>')


def _legend(items: dict[str, str]) -> str:
    return '<p class="legend">' + "".join(f'<span style="background:{c}"></span>{escape(k)}' for k, c in items.items()) + "</p>"


def _bar_cell(s) -> str:
    if s.kind == "page":
        colour, what = TIER_COLOURS[tier_label(s.tier)], f"page {s.page} at {s.tier}"
    elif s.kind == "ledger":
        colour, what = KIND_COLOURS["ledger"], f"ledger of page {s.page}"
    elif s.kind == "expanded":
        colour, what = KIND_COLOURS["expanded"], f"page {s.page} re-expanded" + (" (excerpt)" if s.excerpt else "")
    else:
        colour, what = KIND_COLOURS["turn"], f"turn {s.turn_id} ({s.role})"
    return f'<div style="flex:{s.positions};background:{colour}" title="{escape(what)}: {s.positions} positions"></div>'


def _context(index: int, title: str, ctx: Context, open_page: int | None) -> str:
    cells = [_bar_cell(s) for s in ctx.segments if s.positions]
    if ctx.overhead:
        cells.append(f'<div style="flex:{ctx.overhead};background:{KIND_COLOURS["framing"]}" '
                     f'title="request framing: {ctx.overhead} positions"></div>')
    free = ctx.budget - ctx.positions
    if free > 0:
        cells.append(f'<div style="flex:{free};background:#fff" title="unused: {free} positions"></div>')
    rows = []
    for i, row in enumerate(layout_rows(ctx.segments, open_page), 1):
        what = escape(row.what)
        if row.kind == "expanded":
            what = f'<a href="#page-{row.pages[0]}">{what}</a>'
        rows.append(f'<tr class="{row.kind}"><td class="num">{i}</td><td>{row.kind}</td><td>{what}</td>'
                    f'<td class="num">{row.positions}</td></tr>')
    if ctx.overhead:
        rows.append(f'<tr class="framing"><td></td><td>framing</td><td>the request around the segments '
                    f'(BOS, message framing)</td><td class="num">{ctx.overhead}</td></tr>')
    kinds = {f"page at {t}": TIER_COLOURS[t] for t in TIER_NAMES if any(s.kind == "page" and s.tier == t for s in ctx.segments)}
    kinds.update({"ledger": KIND_COLOURS["ledger"], "re-expanded": KIND_COLOURS["expanded"], "recent turn": KIND_COLOURS["turn"],
                  "framing": KIND_COLOURS["framing"], "unused": "#fff"})
    exactness = "exact" if ctx.exact else "an upper bound"
    return (f'<section id="context-{index}"><h2>{escape(title)}: {ctx.positions} of {ctx.budget} positions</h2>'
            f"<p>Positions are the reader's input tokens ({exactness}), in the order the context sends its segments.</p>"
            f'<div class="bar">{"".join(cells)}</div>{_legend(kinds)}'
            f'<table><tr><th class="num">#</th><th>segment</th><th>content</th><th class="num">positions</th></tr>'
            f'{"".join(rows)}<tr><td></td><td><b>total</b></td><td></td><td class="num"><b>{ctx.positions}</b></td></tr>'
            "</table></section>")


def _ledger(pages: Sequence[PageView]) -> str:
    rows = [f'<tr><td><a href="#page-{p.info.number}">page {p.info.number}</a></td><td class="ledger">'
            + "".join(f"<code>{escape(s)}</code>" for s in p.ledger) + "</td></tr>"
            for p in pages if p.ledger]
    body = (f'<table><tr><th>page</th><th>exact strings</th></tr>{"".join(rows)}</table>' if rows
            else '<p class="note">No page in the context carries a ledger.</p>')
    return ('<section id="ledger"><h2>Ledger: exact strings per page</h2>'
            "<p>Ids, numbers, URLs and names a blurred image could garble, sent as text beside their page's image. "
            "A ledger travels with its page's image, so pages the context does not send as an image send none.</p>"
            f"{body}</section>")


def _meta(p: PageView, age_unit: str) -> str:
    info = p.info
    tier = tier_label(info.tier)
    items = [("turns", _turn_span(info)),
             ("tier", tier + (f" (pinned at {info.pinned})" if info.pinned else "")),
             ("age", format_age(info.age, age_unit)),
             ("stored image", f"{info.image_tier}, {p.image_side}×{p.image_side} px" if info.sealed and p.image_side
              else "not stored until sealed"),
             ("positions", f"{info.positions}" + (f" at {tier}" if info.tier else " (not in the context)"))]
    if info.text_tokens is not None:
        items.append(("text", f"{info.text_tokens} tokens"))
    return '<dl class="meta">' + "".join(f"<div><dt>{k}</dt><dd>{escape(v)}</dd></div>" for k, v in items) + "</dl>"


def _figure(p: PageView) -> str:
    if p.image is None:
        return f'<figure><p class="note">{escape(p.image_note)}</p></figure>'
    src = escape(p.image)
    alt = f"page {p.info.number}, {p.image_note}"
    return (f'<figure><a href="{src}" class="full-size"><img class="page-image" src="{src}" width="{p.image_side}" '
            f'height="{p.image_side}" alt="{escape(alt)}"></a>'
            f'<figcaption>{escape(p.image_note)} · <a href="{src}" class="full-size-link">open full size '
            f"({p.image_side}×{p.image_side} px)</a></figcaption></figure>")


def _texts(p: PageView, ocr_asked: bool, archive: str) -> str:
    parts = []
    if p.text is not None:
        parts.append(f'<h4>{escape(p.text_title)}</h4><pre class="text">{escape(p.text)}</pre>')
    elif p.info.sealed:
        hint = "" if ocr_asked else " Run <code>optmem inspect DB --ocr</code> to read it back from the image (about 1.5 s a page)."
        parts.append(f'<p class="note">The {escape(archive)} archive keeps no text for this page: only its image.{hint}</p>')
    if p.ocr is not None:
        parts.append(f'<h4>OCR read from the {escape(str(p.info.image_tier))} image</h4><pre class="text ocr">{escape(p.ocr)}</pre>')
    if p.ledger:
        parts.append('<h4>Ledger</h4><p class="ledger">' + "".join(f"<code>{escape(s)}</code>" for s in p.ledger) + "</p>")
    return f'<div class="texts">{"".join(parts)}</div>'


def _page(p: PageView, view: MemoryView) -> str:
    tier = tier_label(p.info.tier)
    title = f"Page {p.info.number}" + ("" if p.info.sealed else " (open, not sealed yet)")
    return (f'<article class="page{"" if p.info.sealed else " open"}" id="page-{p.info.number}" '
            f'data-page="{p.info.number}" data-sealed="{"yes" if p.info.sealed else "no"}" '
            f'data-image-tier="{escape(str(p.info.image_tier or ""))}">'
            f'<header><h3>{escape(title)}</h3><span class="badge" style="background:{TIER_COLOURS[tier]}">{escape(tier)}</span>'
            f"</header>{_meta(p, view.age_unit)}"
            f'<div class="body">{_figure(p)}{_texts(p, view.ocr_asked, view.archive)}</div></article>')


def render_index(view: MemoryView) -> str:
    pages = view.pages
    legend = _legend({t: c for t, c in TIER_COLOURS.items() if any(tier_label(p.info.tier) == t for p in pages)})
    open_page = next((p.info.number for p in pages if not p.info.sealed), None)
    sections = "".join(_context(i, title, ctx, open_page) for i, (title, ctx) in enumerate(view.contexts))
    first_last = (f"page {pages[0].info.number} is the oldest, page {pages[-1].info.number} the newest"
                  if pages else "no pages yet")
    cards = "".join(_page(p, view) for p in pages) or '<p class="note">No turns have aged onto pages yet.</p>'
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>optmem: {escape(view.conversation)}</title><style>{STYLE}</style></head><body>"
            f"{_summary(view)}{_toc(view)}{_strip(pages)}{legend}{sections}{_ledger(pages)}"
            f'<section id="pages"><h2>Pages, oldest first ({number_ranges(p.info.number for p in pages) or "none"}; '
            f"{first_last})</h2>{cards}</section>"
            f"<script>{SCRIPT}</script></body></html>")
