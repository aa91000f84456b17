"""Splicing cached vision tokens into inputs_embeds is equivalent to each model's own image path."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from optmem.codec import (
    DeepSeekOCR, DeepSeekOCR2, DeepSeekOCRConfig, ImageSegment, RepeatGuard, TextSegment, tiny_ocr2_config,
)
from optmem.codec.generation import greedy_generate
from optmem.tokens import BOS_ID, IMAGE_TOKEN_ID, default_tokenizer


def page(size, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), mode="L")


@dataclass(frozen=True)
class CtxText:  # what the assembler's Context segments look like
    text: str
    kind: str = "text"


@dataclass(frozen=True)
class CtxPage:
    image: Image.Image
    tier: str
    kind: str = "page"


@pytest.fixture(scope="module")
def v1():
    return DeepSeekOCR.from_config(DeepSeekOCRConfig.tiny(), seed=0)


@pytest.fixture(scope="module")
def v2():
    return DeepSeekOCR2.from_config(tiny_ocr2_config(), seed=0)


def mixed_context():
    return [
        TextSegment("Earlier turns:"),
        ImageSegment(page((512, 512), 10), "tiny"),
        CtxText("\nand then"),
        CtxPage(page((900, 700), 11), "small"),
        ImageSegment(page((1280, 1280), 12), "gundam"),
        TextSegment("\nWhat did I say first?"),
    ]


def test_v1_splice_generate_matches_model_image_path(v1):
    segs = mixed_context()
    spliced = v1.generate(segs, 6, keep_logits=True)
    own = v1.generate_with_images(segs, 6, keep_logits=True)
    assert spliced.tokens == own.tokens and len(own.tokens) == 6
    for a, b in zip(spliced.step_logits, own.step_logits):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_v1_pages_in_order_at_their_slots(v1):
    segs = mixed_context()
    ids, embeds, mask = v1.splice(segs)
    tok = default_tokenizer()
    expected = [BOS_ID] + tok.encode("Earlier turns:") + [IMAGE_TOKEN_ID] * 73 + tok.encode("\nand then") \
        + [IMAGE_TOKEN_ID] * 111 + [IMAGE_TOKEN_ID] * 693 + tok.encode("\nWhat did I say first?")
    assert ids[0].tolist() == expected
    assert mask.shape == ids.shape and bool(mask.all())
    # each page's vision tokens sit in its own block, in segment order
    pages = [(segs[1].image, "tiny"), (segs[3].image, "small"), (segs[4].image, "gundam")]
    start = 1 + len(tok.encode("Earlier turns:"))
    starts = [start, start + 73 + len(tok.encode("\nand then")), start + 73 + len(tok.encode("\nand then")) + 111]
    for (img, mode), s in zip(pages, starts):
        vt = v1.encode(img, mode)
        assert torch.equal(embeds[0, s : s + vt.slots], vt.embeddings)
    text_pos = ids[0] != IMAGE_TOKEN_ID
    assert torch.equal(embeds[0, text_pos], v1.embed_tokens(ids[0, text_pos]))
    # swapping two pages moves their tokens (order matters)
    swapped = [segs[0], segs[3], segs[2], segs[1], segs[4], segs[5]]
    assert not torch.equal(v1.splice(swapped).inputs_embeds, embeds)


def test_user_text_with_image_placeholder_stays_text(v1):
    segs = [TextSegment("please render <image> literally <image>"), ImageSegment(page((512, 512), 4), "tiny")]
    ids, _, _ = v1.splice(segs)
    assert int((ids == IMAGE_TOKEN_ID).sum()) == 73
    text_ids = ids[0, 1 : 1 + len(default_tokenizer().encode(segs[0].text))]
    assert int((text_ids >= 128000).sum()) == 0


def test_cache_encodes_each_page_once_per_mode(v1):
    v1.cache.clear()
    img = page((640, 640), 5)
    a = v1.encode(img, "small")
    b = v1.encode(img.copy(), "small")
    assert a is b and v1.cache.hits == 1 and v1.cache.misses == 1
    c = v1.encode(img, "tiny")
    assert c.slots == 73 and v1.cache.misses == 2 and len(v1.cache) == 2
    assert a.image_hash == c.image_hash and a.model_id == v1.model_id


def test_context_longer_than_decoder_is_rejected():
    cfg = DeepSeekOCRConfig.tiny(text=DeepSeekOCRConfig.tiny().text.model_copy(update={"max_position_embeddings": 100}))
    codec = DeepSeekOCR.from_config(cfg)
    codec.splice([ImageSegment(page((512, 512)), "tiny")])  # 74 positions fit
    with pytest.raises(ValueError, match="exceeds"):
        codec.splice([ImageSegment(page((640, 640)), "small")])


def test_unknown_segment_is_a_typed_error(v1):
    with pytest.raises(TypeError, match="segment 1"):
        v1.splice([TextSegment("a"), 42])
    with pytest.raises(ValueError, match="mode"):
        ImageSegment(page((64, 64)), "huge")


def test_v2_splice_generate_matches_transformers_pixel_path(v2):
    imgs = [page((1000, 500), 20), page((700, 700), 21)]
    modes = ["gundam", "base"]
    segs = [TextSegment("first"), ImageSegment(imgs[0], modes[0]), ImageSegment(imgs[1], modes[1]),
            TextSegment("\nFree OCR.")]
    ids, embeds, mask = v2.splice(segs)
    assert int((ids == IMAGE_TOKEN_ID).sum()) == (256 + 144 * 2 + 1) + 257
    ours = v2.generate(segs, 5, keep_logits=True)

    # transformers' own path: pixel_values of both images, masked_scatter inside the model
    g = v2.pixel_inputs(imgs[:1], "gundam")
    b = v2.pixel_inputs(imgs[1:], "base")
    pixels = dict(
        pixel_values=torch.cat([g["pixel_values"], b["pixel_values"]]),
        pixel_values_local=g["pixel_values_local"],
        num_local_patches=g["num_local_patches"] + [0],
    )
    with torch.no_grad():
        ref_logits = v2.model(input_ids=ids, attention_mask=mask, **pixels).logits
        ref = v2.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False,
                                eos_token_id=1, pad_token_id=2, **pixels)
    assert ours.tokens == ref[0, ids.shape[1]:].tolist()
    torch.testing.assert_close(ours.step_logits[0], ref_logits[0, -1], rtol=1e-5, atol=1e-5)


def test_v2_modes(v2):
    assert v2.encode(page((800, 600), 22), "base").slots == 257
    assert v2.encode(page((700, 500), 23), "gundam").slots == 257  # <= 768 px: no local tiles
    with pytest.raises(ValueError, match="tiny"):
        v2.encode(page((64, 64)), "tiny")


class LoopingDecoder:
    """Always prefers the token after the last one in the cycle 5,6,7,5,6,7,...; 9 is second best."""

    def embed_tokens(self, ids):
        return ids.float()[..., None]

    def decode(self, embeds, mask=None, past=None, use_cache=False, last_only=False):
        last = int(embeds[0, -1, 0]) if past is not None else 7
        logits = torch.zeros(1, 1, 16)
        logits[0, 0, {5: 6, 6: 7, 7: 5}.get(last, 5)] = 2.0
        logits[0, 0, 9] = 1.0
        return logits, True


def test_repeat_guard_breaks_loops():
    mask = torch.ones(1, 1, dtype=torch.long)
    dec = LoopingDecoder()
    plain = greedy_generate(dec, lambda: dec.decode(torch.zeros(1, 1, 1)), mask, 9, 1, guard=None)
    assert plain.tokens == [5, 6, 7] * 3
    guarded = greedy_generate(dec, lambda: dec.decode(torch.zeros(1, 1, 1)), mask, 9, 1, guard=RepeatGuard(3))
    # after 5 6 7 5 6, a 7 would repeat the 3-gram "5 6 7": it is banned and 9 is taken
    assert guarded.tokens[:6] == [5, 6, 7, 5, 6, 9]
    assert RepeatGuard(3).banned([1, 2, 3, 1, 2]) == {3}
    assert RepeatGuard(3, whitelist=frozenset({3})).banned([1, 2, 3, 1, 2]) == set()
    assert RepeatGuard(3, window=2).banned([1, 2, 3, 1, 2]) == set()


def test_ocr_returns_decoded_text(v1):
    img = page((512, 512), 30)
    text = v1.ocr(img, "tiny", max_new_tokens=4)
    gen = v1.generate([ImageSegment(img, "tiny"), TextSegment("\nFree OCR.")], 4)
    assert len(gen.tokens) == 4 and text == default_tokenizer().decode(gen.tokens)
