"""Re-expansion: a sealed page back to text, from the verbatim archive or by OCR of its image.

OCR reads are cached per (page, tier, engine) in the store: a page is read once at each tier it
fades to. The OCR engine is built from the config on first use, or passed in.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from optmem.config import MemoryConfig
from optmem.pager import line_from_json
from optmem.reexpand import ReexpandEngine, get_engine
from optmem.store import PageRow, Store
from renderers import scale_lines


@dataclass(frozen=True)
class PageText:
    text: str
    source: Literal["verbatim", "ocr"]
    tier: str  # the resolution the text was read at (the stored image's)


def open_image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


class Reexpander:
    def __init__(self, store: Store, conversation: int, config: MemoryConfig, *, engine: ReexpandEngine | None = None):
        self._store = store
        self._conv = conversation
        self.config = config
        self._engine = engine

    def for_conversation(self, conversation: int) -> Reexpander:
        """The same re-expander (its OCR engine, loaded or not) for another conversation id."""
        return Reexpander(self._store, conversation, self.config, engine=self._engine)

    @property
    def engine(self) -> ReexpandEngine:
        if self._engine is None:
            self._engine = engine_from_config(self.config)
        return self._engine

    def text(self, row: PageRow) -> PageText:
        """The page's text: the archived source when the archive keeps it, else an OCR read."""
        if self.config.archive == "verbatim":
            text = self._store.page_source_text(self._conv, row.number)
            if text is not None:
                return PageText(text, "verbatim", row.image_tier)
        return PageText(self.ocr(row), "ocr", row.image_tier)

    def ocr(self, row: PageRow) -> str:
        """What the page still says at the tier it is stored at, read by the OCR engine."""
        engine = self.engine
        cached = self._store.cached_text(self._conv, row.number, row.image_tier, engine.name)
        if cached is not None:
            return cached
        png, _ = self._store.page_image(self._conv, row.number)
        image = open_image(png)
        lines = tuple(line_from_json(d) for d in self._store.page_layout(self._conv, row.number))
        scale = image.width / self.config.render.page_px
        text = engine.read(image, scale_lines(lines, scale) if scale != 1 else lines)
        if not self._store.readonly:
            self._store.put_cached_text(self._conv, row.number, row.image_tier, engine.name, text)
        return text


def engine_from_config(config: MemoryConfig) -> ReexpandEngine:
    cfg = config.reexpand
    if cfg.engine == "model":
        if cfg.model_dir is None:
            raise ValueError("reexpand.engine = 'model' needs reexpand.model_dir: a local DeepSeek-OCR weights directory")
        from optmem.codec import DeepSeekOCR

        return get_engine("model", model=DeepSeekOCR.from_pretrained(cfg.model_dir))
    if cfg.engine == "ppocr-strips":
        return get_engine(cfg.engine, backend=cfg.ocr_backend)
    return get_engine(cfg.engine)
