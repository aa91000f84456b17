"""Deterministic scores: RULER's string_match_all, LoCoMo's answer normalisation, and the
edit-distance metrics of re-expanded text (CER, precision), bit-parallel so a 4,000-character
page scores in milliseconds."""

from __future__ import annotations

import re
import string
from typing import Sequence


def string_match_all(prediction: str, golds: Sequence[str]) -> float:
    """RULER (scripts/eval/synthetic/constants.py): share of gold strings contained in the output,
    case-insensitive. One sample; RULER averages this over samples and scales by 100."""
    if not golds:
        raise ValueError("string_match_all needs at least one gold string")
    low = prediction.lower()
    return sum(1.0 for g in golds if g.lower() in low) / len(golds)


_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """LoCoMo's normalisation (task_eval/evaluation.py): drop commas, lower-case, remove
    punctuation and the articles a/an/the/and, collapse whitespace."""
    text = str(text).replace(",", "").lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_contained(answer: str, text: str) -> bool:
    """The normalised answer occurs in the normalised text (word boundaries respected)."""
    ans = normalize_answer(answer)
    if not ans:
        return False
    return f" {ans} " in f" {normalize_answer(text)} "


def _trim_common(a: str, b: str) -> tuple[str, str]:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    a, b = a[i:], b[i:]
    j = 0
    n = min(len(a), len(b))
    while j < n and a[-1 - j] == b[-1 - j]:
        j += 1
    return (a[: len(a) - j], b[: len(b) - j]) if j else (a, b)


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance (Myers/Hyyrö bit-parallel: one pass over ``a`` with big-int bit
    vectors as long as ``b``)."""
    a, b = _trim_common(a, b)
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence (Hyyrö's bit-vector algorithm)."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return 0
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    v = mask
    for ch in a:
        u = v & peq.get(ch, 0)
        v = ((v + u) | (v - u)) & mask
    return m - v.bit_count()


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edit distance / reference length (0.0 for two empty strings, 1.0 for
    any text against an empty reference)."""
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return levenshtein(reference, hypothesis) / len(reference)


def precision(reference: str, hypothesis: str) -> float:
    """Share of the hypothesis' characters that are right: LCS / hypothesis length (1.0 when empty).
    Low precision means the reader invents text; low 1 - CER with high precision means it drops text."""
    if not hypothesis:
        return 1.0
    return lcs_length(reference, hypothesis) / len(hypothesis)


def paired_bootstrap(differences: Sequence[float], *, resamples: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-question differences (system minus baseline) with a percentile bootstrap
    interval: questions are resampled with replacement, so the pairing is kept."""
    import numpy as np

    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        raise ValueError("paired_bootstrap needs at least one difference")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(d.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))
