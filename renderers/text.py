"""Character classes for layout: what must become a placeholder, where CJK lines may break.

Pure functions over single characters; no fonts here (font coverage is decided in metrics.py).
"""

from __future__ import annotations

import re
import unicodedata

# "\r\n", a lone "\r" and "\n" all end a source line; other separators (U+2028, NEL, form feed)
# are shown as placeholders so nothing invisible changes the page's structure.
NEWLINE = re.compile(r"\r\n|\r|\n")

# Unicode categories that must never reach the rasteriser as themselves: controls, format
# characters (zero-width spaces/joiners, bidi controls, soft hyphen), surrogates, private use,
# unassigned and non-characters, line/paragraph separators. Each is drawn as "[U+XXXX]".
_PLACEHOLDER_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

# Kinsoku: no line may begin with these (CJK closing punctuation and small kana, plus the
# Latin closers that may follow a CJK character without a space).
CLOSING = frozenset(
    "，。、；：！？）］｝」』》〉】〕〗〙〛”’・…‥〜ー々ゝゞヽヾ"
    "ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ"
    "％－～．,.;:!?)]}%"
)
# ...and no line may end with these.
OPENING = frozenset("（［｛「『《〈【〔〖〘〚“‘([{")

_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi
    (0x2FF0, 0x303F),  # ideographic description, CJK symbols and punctuation
    (0x3040, 0x31FF),  # Hiragana, Katakana, Bopomofo, Hangul compatibility, Kanbun, Katakana ext
    (0x3200, 0x4DBF),  # enclosed CJK, compatibility, Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),
    (0xAC00, 0xD7FF),  # Hangul syllables
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half/fullwidth forms
    (0x20000, 0x3FFFF),  # supplementary ideographic planes
)


def needs_placeholder(ch: str) -> bool:
    """True for characters drawn as "[U+XXXX]" whatever the fonts cover."""
    return unicodedata.category(ch) in _PLACEHOLDER_CATEGORIES


def placeholder(ch: str) -> str:
    return f"[U+{ord(ch):04X}]"


def is_cjk(ch: str) -> bool:
    """Characters of scripts written without spaces, which may break before/after any character."""
    cp = ord(ch)
    if cp < 0x1100:
        return False
    for lo, hi in _CJK_RANGES:
        if lo <= cp <= hi:
            return True
    return False


def break_between(prev: str, ch: str) -> bool:
    """May a line break fall between ``prev`` and ``ch`` (no space between them)?"""
    if ch in CLOSING or prev in OPENING:
        return False
    return is_cjk(prev) or is_cjk(ch)


def is_fence(source_line: str) -> bool:
    """A Markdown code fence line (```), which toggles monospace code layout."""
    return source_line.lstrip(" \t").startswith("```")


def fence_open_at(text: str, line_start: int) -> bool:
    """Whether a code fence is open at the source line beginning at ``line_start``."""
    is_open = False
    pos = 0
    while pos < line_start:
        m = NEWLINE.search(text, pos, line_start)
        end = m.start() if m else line_start
        if is_fence(text[pos:end]):
            is_open = not is_open
        pos = m.end() if m else line_start
    return is_open


def line_start_of(text: str, offset: int) -> int:
    """Start of the source line holding ``offset``."""
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
