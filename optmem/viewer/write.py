"""Writes the viewer of a memory: ``index.html`` and one PNG per page under ``pages/``.

One file per page, not data URLs: the HTML stays small (about 2 kB of markup a page) and shows at
once, the browser fetches the images in parallel while the text is already shown, and each
page's link opens its real image at full size. Inlined, a 106-page memory (16 MB of PNG) is a
23 MB HTML file: headless Chromium took 25 s to load it, against 3.4-4.2 s for the folder with
every image loaded (2 shared CPU cores). The PNGs are the stored bytes (the
store keeps pages as ``encode_png`` output, which is deterministic), so a page file is the image
the reader is sent at the page's stored tier.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from optmem.memory import OpticalMemory, PageInfo
from optmem.viewer.render import MemoryView, PageView, render_index
from renderers import Tier, encode_png
from renderers.header import format_header

IMAGES_DIR = "pages"


def _open_page_text(mem: OpticalMemory, info: PageInfo) -> str:
    """The open page's turns, headed as a sealed page's text heads them."""
    parts = []
    for turn in (t for t in mem.history() if info.first_turn <= t.id <= info.last_turn):
        continued = turn.id == info.first_turn and info.first_char > 0
        text = (turn.text or "")[info.first_char:] if continued else (turn.text or "")
        parts.append(f"{format_header(turn.role, turn.id, turn.timestamp, continued=continued)}\n{text}")
    return "\n\n".join(parts)


def write_viewer(mem: OpticalMemory, out_dir: Path | str, *, query: str | None = None, ocr: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the viewer of ``mem`` into ``out_dir``; returns the path of its index.html.

    ``query`` adds the context assembled for it beside the one without a query. ``ocr`` reads
    every sealed page back from its stored image (``mem.read_page``, about 1.5 s a page on a
    CPU), calling ``progress(done, total)`` after each.
    """
    out = Path(out_dir)
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    infos = mem.pages()
    contexts = [("Context without a query", mem.context())]
    if query:
        contexts.append((f"Context for {query!r}", mem.context(query=query)))
    ledgers = {s.page: s.strings for _, ctx in contexts for s in ctx.segments if s.kind == "ledger"}
    # The open page is drawn only for a context: show it as the context without a query sends it.
    open_segments = {s.page: s for _, ctx in reversed(contexts) for s in ctx.segments if s.kind == "page"}

    sealed_total = sum(1 for p in infos if p.sealed)
    views, written, read_so_far = [], set(), 0
    for info in infos:
        if info.sealed:
            name = f"page-{info.number:04d}-{info.image_tier}.png"
            png = encode_png(mem.page_image(info.number))
            side = Tier(info.image_tier).side
            note = f"stored at {info.image_tier}"
            text, title = mem.page_text(info.number), "Verbatim text (archive)"
            read = mem.read_page(info.number) if ocr else None
            if ocr:
                read_so_far += 1
                if progress is not None:
                    progress(read_so_far, sealed_total)
        else:
            segment = open_segments.get(info.number)
            name = f"page-{info.number:04d}-open.png" if segment is not None else None
            png = segment.load_png() if segment is not None else None
            side = segment.side if segment is not None else None
            note = ("the open page as the context draws it (not stored until sealed)" if segment is not None
                    else "the open page is not in the context, so it is not drawn")
            text, title, read = _open_page_text(mem, info), "Its turns so far", None
        if name is not None:
            (images / name).write_bytes(png)
            written.add(name)
        views.append(PageView(info, f"{IMAGES_DIR}/{name}" if name else None, side, note, text, title, read,
                              ledgers.get(info.number)))
    for stale in images.glob("page-*.png"):  # from an earlier run, when the pages were at other tiers
        if stale.name not in written:
            stale.unlink()

    cfg = mem.config
    view = MemoryView(mem.conversation, len(mem.history()), cfg.recent_turns, str(cfg.model), cfg.archive,
                      cfg.schedule.age_unit, views, contexts, ocr)
    index = out / "index.html"
    index.write_text(render_index(view), encoding="utf-8")
    return index
