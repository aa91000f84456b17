"""Needles: RULER-style key → value facts and gkamradt's San Francisco sentence.

RULER draws word keys from `wonderwords` (adjective-noun); that package is not a dependency, so
keys are drawn from the small word lists below, which gives the same shape ("fearless-pelican").
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Literal, get_args

NeedleKind = Literal["word-number", "uuid-uuid", "multikey", "sf"]
NEEDLE_KINDS: tuple[str, ...] = get_args(NeedleKind)

_ADJECTIVES = (
    "abundant", "ancient", "bitter", "brave", "calm", "clever", "crimson", "curious", "damp", "eager",
    "faint", "fearless", "fierce", "gentle", "gleaming", "grumpy", "hollow", "humble", "icy", "jolly",
    "keen", "lively", "lonely", "mighty", "misty", "nimble", "odd", "pale", "proud", "quiet",
    "rapid", "rusty", "shiny", "silent", "sleepy", "smooth", "sturdy", "tender", "vivid", "wild",
)
_NOUNS = (
    "anchor", "badger", "banjo", "beacon", "biscuit", "canyon", "cactus", "comet", "dolphin", "ember",
    "falcon", "fiddle", "glacier", "harbor", "hedgehog", "island", "jackal", "kettle", "lantern", "meadow",
    "narwhal", "orchard", "otter", "pelican", "pepper", "quarry", "raven", "saddle", "spindle", "thistle",
    "tulip", "umbrella", "valley", "walrus", "willow", "yak", "zephyr", "marble", "pigeon", "walnut",
)

SF_NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
SF_QUESTION = "What is the best thing to do in San Francisco?"
# gkamradt scores with an LLM judge; the deterministic stand-in requires both concrete parts.
SF_GOLDS = ("eat a sandwich", "Dolores Park")


@dataclass(frozen=True)
class Needle:
    kind: str
    sentence: str  # what is hidden in the haystack
    question: str  # asked last
    golds: tuple[str, ...]  # string_match_all targets
    distractors: tuple[str, ...] = ()  # other needle sentences hidden elsewhere (multikey)
    key: str | None = None  # what the question asks about: a value found without it answers nothing


def _word_key(rng: random.Random, taken: set[str]) -> str:
    while True:
        key = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        if key not in taken:
            taken.add(key)
            return key


def _number(rng: random.Random) -> str:
    return str(rng.randint(1_000_000, 9_999_999))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ruler_sentence(key: str, value: str, noun: str) -> str:
    # RULER's needle template (scripts/synthetic.yaml).
    return f"One of the special magic {noun} for {key} is: {value}."


def _ruler_question(key: str, noun: str) -> str:
    return f"What is the special magic {noun[:-1]} for {key} mentioned in the provided text?"


def make_needle(kind: str, rng: random.Random, *, n_distractors: int = 3) -> Needle:
    if kind == "word-number":
        key, value = _word_key(rng, set()), _number(rng)
        return Needle(kind, _ruler_sentence(key, value, "numbers"), _ruler_question(key, "numbers"), (value,), key=key)
    if kind == "uuid-uuid":
        key, value = _uuid(rng), _uuid(rng)
        return Needle(kind, _ruler_sentence(key, value, "uuids"), _ruler_question(key, "uuids"), (value,), key=key)
    if kind == "multikey":
        # RULER niah_multikey_2: the haystack holds other needles of the same shape.
        taken: set[str] = set()
        key, value = _word_key(rng, taken), _number(rng)
        others = tuple(_ruler_sentence(_word_key(rng, taken), _number(rng), "numbers") for _ in range(n_distractors))
        return Needle(kind, _ruler_sentence(key, value, "numbers"), _ruler_question(key, "numbers"), (value,), others,
                      key=key)
    if kind == "sf":
        return Needle(kind, SF_NEEDLE, SF_QUESTION, SF_GOLDS)
    raise ValueError(f"unknown needle kind {kind!r}; expected one of {NEEDLE_KINDS}")
