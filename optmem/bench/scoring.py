"""Deterministic scores: RULER's string_match_all and LoCoMo's answer normalisation."""

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
