"""Fonts pinned by sha256; cmap coverage and kerning pairs via fontTools.

Never the system's fonts: a different DejaVu build can move glyphs by a pixel and change every
page hash. Each file is hashed once per process and checked against the pin.

DejaVu Sans, Sans Bold and Sans Mono ship inside this package (``font_files/``, the unmodified
files of the DejaVu 2.37 release, licence in ``font_files/LICENSE-DejaVu``): no PyPI package ships
these fonts without a document toolchain around them. Noto Sans CJK comes from the
``noto-cjk-sans-otc`` wheel, which holds only the font.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
import threading
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import ImageFont


class FontError(RuntimeError):
    """A pinned font could not be used."""


class FontNotFoundError(FontError):
    def __init__(self, name: str, package: str, detail: str):
        super().__init__(f"font {name!r}: package {package!r} not usable ({detail}); install it with pip")
        self.name, self.package = name, package


class FontMismatchError(FontError):
    def __init__(self, path: Path, expected: str, actual: str):
        super().__init__(f"font file {path} has sha256 {actual}, expected {expected}: a different build of the font")
        self.path, self.expected, self.actual = Path(path), expected, actual


@dataclass(frozen=True)
class FontSpec:
    key: str
    name: str  # family + style, as shown in page metadata
    package: str  # import name of the package (or data folder) holding the file
    filename: str
    index: int  # face index inside a collection (.ttc)
    sha256: str


FONTS: dict[str, FontSpec] = {
    s.key: s
    for s in (
        FontSpec("sans", "DejaVu Sans", "renderers.font_files", "DejaVuSans.ttf", 0,
                 "7da195a74c55bef988d0d48f9508bd5d849425c1770dba5d7bfc6ce9ed848954"),
        FontSpec("bold", "DejaVu Sans Bold", "renderers.font_files", "DejaVuSans-Bold.ttf", 0,
                 "e6476c1b80502924294eed40894c5b18e06c181444ca953e5334262df9c27724"),
        FontSpec("mono", "DejaVu Sans Mono", "renderers.font_files", "DejaVuSansMono.ttf", 0,
                 "b4a6c3e4faab8773f4ff761d56451646409f29abedd68f05d38c2df667d3c582"),
        FontSpec("cjk", "Noto Sans CJK SC", "noto_cjk_sans_otc", "NotoSansCJK-Regular.ttc", 2,
                 "b76b0433203017ca80401b2ee0dd69350349871c4b19d504c34dbdd80541690a"),
    )
}

# Fallback order per line kind: the first font whose cmap has the character draws it.
CHAINS: dict[str, tuple[str, ...]] = {
    "text": ("sans", "cjk"),
    "code": ("mono", "sans", "cjk"),
    "header": ("bold", "cjk"),
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_font_file(path: Path, expected: str) -> Path:
    actual = sha256_file(path)
    if actual != expected:
        raise FontMismatchError(path, expected, actual)
    return path


def _package_dir(spec: FontSpec) -> Path:
    # find_spec locates the package without executing it (font_files is a plain data folder).
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise FontNotFoundError(spec.name, spec.package, "not installed")
    return Path(list(found.submodule_search_locations)[0])


@lru_cache(maxsize=None)
def font_path(key: str) -> Path:
    """Path of the pinned font file for ``key``, verified against its sha256 (once per process)."""
    spec = FONTS[key]
    path = _package_dir(spec) / spec.filename
    if not path.is_file():
        raise FontNotFoundError(spec.name, spec.package, f"{path} missing")
    return verify_font_file(path, spec.sha256)


@lru_cache(maxsize=None)
def pil_font(key: str, size: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: RAQM gives different pixels and is only present in some builds.
    return ImageFont.truetype(str(font_path(key)), size, index=FONTS[key].index,
                              layout_engine=ImageFont.Layout.BASIC)


@lru_cache(maxsize=None)
def _ttfont(key: str) -> TTFont:
    return TTFont(str(font_path(key)), fontNumber=FONTS[key].index, lazy=True)


# fontTools loads a lazy TTFont's tables on first access, and two threads doing that at once see a
# half-built table (AttributeError: cmap); the results are cached, so the lock is taken once per font.
_TTFONT_LOCK = threading.Lock()


@lru_cache(maxsize=None)
def coverage(key: str) -> frozenset[int]:
    """Code points the font's cmap maps to a glyph."""
    with _TTFONT_LOCK:
        return frozenset(_ttfont(key).getBestCmap())


@lru_cache(maxsize=None)
def kern_pairs(key: str) -> frozenset[str]:
    """Two-character strings the legacy 'kern' table adjusts. Pillow's BASIC layout applies exactly
    this table (not GPOS), so these are the only pairs whose width differs from the advance sum."""
    with _TTFONT_LOCK:
        font = _ttfont(key)
        if "kern" not in font:
            return frozenset()
        by_glyph: dict[str, list[str]] = {}
        for cp, glyph in font.getBestCmap().items():
            by_glyph.setdefault(glyph, []).append(chr(cp))
        pairs = set()
        for table in font["kern"].kernTables:
            for left, right in getattr(table, "kernTable", {}):
                for a in by_glyph.get(left, ()):
                    for b in by_glyph.get(right, ()):
                        pairs.add(a + b)
        return frozenset(pairs)


def font_record(key: str) -> tuple[str, str]:
    """(name, sha256) as stored with every page."""
    spec = FONTS[key]
    return spec.name, spec.sha256
