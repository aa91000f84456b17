"""The verbatim guard: exact strings that optical memories misread.

Every optical-compression project reports the same failure: ids, hashes, long numbers and
code identifiers come back subtly wrong (0/O, 1/l, a dropped digit). Before a turn is
rendered to a page, the assembler extracts those strings from its text and keeps them as
plain text beside the page ("exact: a | b | c"), so the decoder can copy them instead of
reading them off pixels.

What counts as an exact string (ASCII only; CJK text around it is fine):

- URLs (``http(s)://``, ``ftp://``, ``www.``) and e-mail addresses, kept whole;
- `backticked` spans (up to 80 characters; the text inside the backticks);
- UUIDs, ``0x`` hex literals;
- dotted names and calls: ``os.path.join``, ``report.pdf``, ``db.connect()``, ``flush()``
  (abbreviations made of one-letter parts such as "e.g." are not);
- ids: tokens of 4+ characters that mix letters and digits, with ``-``/``_`` joins:
  ``AB-1234``, ``INV2024x``, ``sk-proj-9f3a``, ``audit_log_2019``, hex runs with a digit
  (number-plus-unit tokens such as "10ms", "2nd", "16GB" are not ids);
- snake_case (an underscore between two alphanumerics, or a ``__dunder__``) and camelCase;
- numbers with 4 or more digits, counting digits across ``, . : / -`` separators:
  ``2024``, ``1,234,567``, ``3.14159``, ``2024-03-15``, ``555-123-4567``; and phone numbers
  written with ``+`` or a parenthesised area code: ``+1 (555) 123-4567``.

Four-digit years count: the issue asks for numbers of 4+ digits, and a year is exactly the
kind of figure a low-resolution page turns from 2019 into 2010. "March 3" and "3.14" do not.

Extraction is one precompiled alternation scanned once. Every alternative starts with a
look-behind that rejects positions inside a run of the characters its body consumes, so
each alternative is attempted once per run and the scan stays linear in the text length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["extract_exact_strings", "format_ledger", "LEDGER_PREFIX"]

LEDGER_PREFIX = "exact: "
_SEPARATOR = " | "
_MAX_BACKTICK_SPAN = 80
_MIN_ID_LEN = 4
_MIN_DIGITS = 4

_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]"
_PATTERN = re.compile(
    "|".join(
        [
            rf"(?P<url>(?<![A-Za-z0-9])(?:(?:https?|ftp)://|www\.){_URL_CHARS}+)",
            r"(?P<email>(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)",
            rf"`(?P<tick>[^`\n]{{1,{_MAX_BACKTICK_SPAN}}})`",
            r"(?P<uuid>(?<![\w-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-]))",
            r"(?P<hex>(?<![\w.])0[xX][0-9a-fA-F]+(?!\w))",
            r"(?P<dotted>(?<![\w.])[A-Za-z_]\w*(?:(?:\.[A-Za-z_]\w*)+(?:\(\))?|\(\)))",
            r"(?P<id>(?<![\w-])(?=[\w-]*[A-Za-z])(?=[\w-]*\d)[A-Za-z0-9]+(?:[-_]+[A-Za-z0-9]+)*)",
            r"(?P<snake>(?<!\w)\w*_\w*)",
            r"(?P<camel>(?<!\w)[a-z][a-z0-9]*[A-Z]\w*)",
            r"(?P<phone>(?<![\w+])(?:\+\d{1,3}(?:[ .-]\(?\d{1,4}\)?|\(\d{1,4}\)){2,5}"
            r"|\+\d{7,15}|\(\d{2,4}\)[ .-]?\d{3,4}[ .-]\d{3,4})(?!\d))",
            r"(?P<number>(?<![\w.])\d+(?:[,.:/-]\d+)*)",
        ]
    ),
    re.ASCII,
)
_URL_TRAILING = ".,;:!?'\")]}"
_UNIT_LIKE = re.compile(r"\d+[A-Za-z]{1,3}", re.ASCII)  # 10ms, 2nd, 16GB: not ids
_INNER_UNDERSCORE = re.compile(r"[A-Za-z0-9]_+[A-Za-z0-9]", re.ASCII)
_DIGIT = re.compile(r"\d", re.ASCII)
_WHITESPACE = re.compile(r"\s+")


def _strip_url(url: str) -> str:
    # Sentence punctuation after a URL is not part of it; a ")" is, when the URL opened one.
    while url and url[-1] in _URL_TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _digits(s: str) -> int:
    return len(_DIGIT.findall(s))


def _accept(kind: str, s: str) -> str | None:
    if kind == "url":
        s = _strip_url(s)
        return s if "." in s or "/" in s[8:] else None
    if kind == "tick":
        s = s.strip()
        return s or None
    if kind == "dotted":
        parts = s.removesuffix("()").split(".")
        if len(parts) > 1 and all(len(p) == 1 for p in parts):
            return None  # e.g, i.e, U.S
        return s
    if kind == "id":
        if len(s) < _MIN_ID_LEN or _UNIT_LIKE.fullmatch(s):
            return None
        return s
    if kind == "snake":
        return s if s.startswith("__") and len(s) > 4 or _INNER_UNDERSCORE.search(s) else None
    if kind in ("phone", "number"):
        return s if _digits(s) >= _MIN_DIGITS else None
    return s  # email, uuid, hex, camel


def extract_exact_strings(text: str) -> list[str]:
    """Exact strings in ``text``, in order of first appearance, without duplicates.

    Each result is a substring of ``text``; a URL or e-mail address is returned whole and
    never also as its parts.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_exact_strings: text must be str, got {type(text).__name__}")
    seen: dict[str, None] = {}
    for m in _PATTERN.finditer(text):
        kind = m.lastgroup
        assert kind is not None
        s = _accept(kind, m.group(kind))
        if s is not None and s not in seen:
            seen[s] = None
    return list(seen)


def format_ledger(strings: Iterable[str]) -> str:
    """One line, ``"exact: a | b | c"``; ``""`` when there is nothing to guard.

    Whitespace inside a string is collapsed so the ledger always stays on one line.
    """
    items = [_WHITESPACE.sub(" ", s).strip() for s in strings]
    items = [s for s in items if s]
    if not items:
        return ""
    return LEDGER_PREFIX + _SEPARATOR.join(items)
