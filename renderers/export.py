"""Write pages to disk for `optmem render FILE --out DIR`: one PNG per tier plus the layout as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .page import TIER_SIDES, Page


def page_record(page: Page, index: int, files: dict[str, dict]) -> dict:
    return {
        "index": index,
        "renderer_version": page.renderer_version,
        "content_hash": page.content_hash,
        "side": page.side,
        "font_px": page.font_px,
        "fonts": [{"name": n, "sha256": h} for n, h in page.fonts],
        "start": list(page.start),
        "end": list(page.end),
        "segments": [
            {"turn_index": s.turn_index, "start": s.start, "end": s.end, "header": s.header} for s in page.segments
        ],
        "lines": [
            {"box": list(ln.box), "text": ln.text, "drawn": ln.drawn, "span": list(ln.span), "kind": ln.kind}
            for ln in page.lines
        ],
        "tiers": files,
        "source_text": page.source_text,
    }


def export_pages(pages: Iterable[Page], out_dir: str | Path) -> list[Path]:
    """Write page-0001-large.png … page-0001-tiny.png and page-0001.json per page; returns the paths
    in writing order. Boxes in the JSON are at the page's own side (scale by tier side / side)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for index, page in enumerate(pages, start=1):
        files: dict[str, dict] = {}
        for tier, side in TIER_SIDES.items():
            view = page.at(tier)
            path = out / f"page-{index:04d}-{tier}.png"
            path.write_bytes(view.png)
            written.append(path)
            files[tier] = {"file": path.name, "side": side, "content_hash": view.content_hash}
        meta = out / f"page-{index:04d}.json"
        meta.write_text(json.dumps(page_record(page, index, files), ensure_ascii=False, indent=1), encoding="utf-8")
        written.append(meta)
    return written
