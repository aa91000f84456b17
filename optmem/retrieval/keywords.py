"""The words of a text worth a keyword search, one rule for what is indexed and what is asked.

Words are lower-cased runs of letters and digits, stop words dropped. Chinese, Japanese and
Korean are written without spaces, so a run of those characters becomes its overlapping
character pairs ("我喜欢猫" → 我喜 喜欢 欢猫): a two-character word, the commonest kind, is then
one indexed token, and a query finds it whatever surrounds it. A single character stands alone.
"""

from __future__ import annotations

import re

STOPWORDS = frozenset("""a an and are as at be by can did do does for from had has have how i in is it its me my
of on or our that the their them they this to was we were what when where which who why will with you your""".split())

# CJK ideographs (with extension A and the compatibility block), kana, and Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}]+")
_CJK_RUN = re.compile(rf"[{_CJK}]+")


# Between a chunk's text and the CJK pairs the keyword index adds to it (searchable_chunk).
CJK_PAIRS_MARK = "\n\u2063"


def _pairs(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def _words(text: str) -> list[str]:
    out = []
    for token in _TOKEN.findall(text.lower()):
        if _CJK_RUN.fullmatch(token):
            out.extend(_pairs(token))
        elif token not in STOPWORDS:
            out.append(token)
    return out


def _cjk_pairs(text: str) -> str:
    return " ".join(pair for run in _CJK_RUN.findall(text) for pair in _pairs(run))


def searchable_chunk(text: str) -> str:
    """A page chunk as the keyword index keeps it (verbatim archive): its text, then, when it has
    CJK runs, their character pairs. The index's tokenizers (FTS5's unicode61, PostgreSQL's
    'simple') keep a run of CJK characters whole, so a word inside one would never be found. A
    text without CJK is kept as it is: English is indexed and ranked exactly as before."""
    pairs = _cjk_pairs(text)
    return f"{text}{CJK_PAIRS_MARK}{pairs}" if pairs else text


def chunk_shown(stored: str) -> str:
    """The chunk's own text back from what searchable_chunk stored (only what it added is cut)."""
    head, mark, tail = stored.rpartition(CJK_PAIRS_MARK)
    return head if mark and tail and tail == _cjk_pairs(head) else stored


def keywords(query: str) -> list[str]:
    """The query's search words, each once, in order."""
    return list(dict.fromkeys(_words(query)))


def index_words(text: str) -> str:
    """What the keyword index keeps of a text: its distinct search words, sorted, space-separated.
    Not the text itself: an optical archive keeps its words findable without keeping its prose."""
    return " ".join(sorted(set(_words(text))))
