"""What one image costs a reader, in the reader's own input tokens: one rule per image pipeline.

Every rule is a frozen pydantic model tagged by ``kind`` and answers ``image_tokens(width, height,
detail)`` and ``exact``. Exact rules are computed from the reader's own preprocessing code
(DeepSeek-OCR, vLLM's DeepSeek-OCR processor, transformers' Qwen2-VL ``smart_resize``); the others
follow a vendor's published formula, taking the higher reading where the text is ambiguous, so
they are upper bounds as far as the published rule goes. Sources: docs/profiles.md.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from renderers.tiers import VIEW_TIERS, Tier


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: detail values the rule takes; () means it takes none (the image part carries no detail)
    details: ClassVar[tuple[str, ...]] = ()
    #: computed from the reader's own preprocessing code (True) or a published formula (False)
    exact: ClassVar[bool] = False
    #: whether detail is the API's own image ``detail`` parameter (OpenAI), not a processing mode
    detail_is_api_param: ClassVar[bool] = False

    def check(self, width: int, height: int, detail: str | None) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if detail is not None and detail not in self.details:
            raise ValueError(f"{self.kind}: detail {detail!r} not one of {list(self.details) or 'none'}")  # type: ignore[attr-defined]


class DeepSeekNative(_Rule):
    """DeepSeek-OCR's own modes (the HF ``infer`` path optmem's codec reproduces): a square page at a
    mode's side costs that mode's decoder slots; ``detail="gundam"`` is Gundam crop mode."""

    kind: Literal["deepseek-native"] = "deepseek-native"
    details: ClassVar[tuple[str, ...]] = ("gundam",)
    exact: ClassVar[bool] = True

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        self.check(width, height, detail)
        if width != height:
            raise ValueError(f"deepseek-native: optmem pages are square, got {width}x{height}")
        if detail == "gundam":
            if width != Tier.GUNDAM.side:
                raise ValueError(f"deepseek-native: a Gundam page is {Tier.GUNDAM.side} px, got {width}")
            return Tier.GUNDAM.slots
        by_side = {t.side: t for t in VIEW_TIERS}
        if width not in by_side:
            raise ValueError(f"deepseek-native: no mode of side {width}; sides {sorted(by_side)}")
        return by_side[width].slots


def crop_grid(width: int, height: int, *, tile: int, min_crops: int, max_crops: int) -> tuple[int, int]:
    """The (tiles wide, tiles high) grid DeepSeek-OCR's ``dynamic_preprocess`` cuts an image into:
    the allowed grid whose aspect is closest to the image's, ties going to the later (larger) grid
    when the image covers more than half of it."""
    aspect = width / height
    grids = sorted({(i, j) for n in range(min_crops, max_crops + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                    if min_crops <= i * j <= max_crops}, key=lambda g: g[0] * g[1])
    best, best_diff = (1, 1), math.inf
    for w, h in grids:
        diff = abs(aspect - w / h)
        if diff < best_diff:
            best, best_diff = (w, h), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * w * h:
            best = (w, h)
    return best


class DeepSeekVllm(_Rule):
    """vLLM's DeepSeek-OCR processor: every image gets a global view padded to ``base_size`` and,
    when either side exceeds ``image_size`` and ``crop_mode`` is on, ``image_size`` tiles on the
    grid of :func:`crop_grid`. Rows of tokens end with a newline slot, the image with a separator."""

    kind: Literal["deepseek-vllm"] = "deepseek-vllm"
    exact: ClassVar[bool] = True
    base_size: int = Field(default=1024, gt=0)
    image_size: int = Field(default=640, gt=0)
    crop_mode: bool = True
    min_crops: int = Field(default=2, ge=1)
    max_crops: int = Field(default=6, ge=1)
    patch_size: int = Field(default=16, gt=0)
    downsample_ratio: int = Field(default=4, gt=0)

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        self.check(width, height, detail)
        unit = self.patch_size * self.downsample_ratio
        q_base, q_tile = math.ceil(self.base_size / unit), math.ceil(self.image_size / unit)
        tokens = (q_base + 1) * q_base + 1
        if self.crop_mode and (width > self.image_size or height > self.image_size):
            nw, nh = crop_grid(width, height, tile=self.image_size, min_crops=self.min_crops,
                               max_crops=self.max_crops)
            if nw > 1 or nh > 1:
                tokens += (q_tile * nw + 1) * (q_tile * nh)
        return tokens


class OpenAITile(_Rule):
    """GPT-4o / GPT-4.1 ``detail: high``: fit in ``fit``², scale the short side to ``short_side``,
    ``base + per_tile`` per ``tile``-px tile; ``low`` is ``base``. The guide leaves open whether an
    image with a shorter short side is scaled up; ``upscale_small`` counts that higher reading."""

    kind: Literal["openai-tile"] = "openai-tile"
    details: ClassVar[tuple[str, ...]] = ("low", "high", "auto")
    detail_is_api_param: ClassVar[bool] = True
    base: int = Field(default=85, ge=0)
    per_tile: int = Field(default=170, ge=0)
    tile: int = Field(default=512, gt=0)
    fit: int = Field(default=2048, gt=0)
    short_side: int = Field(default=768, gt=0)
    upscale_small: bool = True

    def image_tokens(self, width: int, height: int, detail: str | None = "high") -> int:
        self.check(width, height, detail)
        if detail == "low":
            return self.base
        w, h = float(width), float(height)
        if max(w, h) > self.fit:
            s = self.fit / max(w, h)
            w, h = w * s, h * s
        if min(w, h) > self.short_side or self.upscale_small:
            s = self.short_side / min(w, h)
            w, h = w * s, h * s
        return self.base + self.per_tile * math.ceil(w / self.tile) * math.ceil(h / self.tile)


class OpenAIPatch(_Rule):
    """GPT-4.1-mini and kin: ``patch``-px patches covering the image, scaled down to at most
    ``max_patches`` (then shrunk to a whole number of patches across), times ``multiplier``."""

    kind: Literal["openai-patch"] = "openai-patch"
    details: ClassVar[tuple[str, ...]] = ("low", "high", "auto")
    detail_is_api_param: ClassVar[bool] = True
    patch: int = Field(default=32, gt=0)
    max_patches: int = Field(default=1536, gt=0)
    multiplier: float = Field(default=1.62, gt=0)

    def patches(self, width: int, height: int) -> int:
        p = self.patch
        if math.ceil(width / p) * math.ceil(height / p) <= self.max_patches:
            return math.ceil(width / p) * math.ceil(height / p)
        s = math.sqrt(p * p * self.max_patches / (width * height))
        w, h = width * s, height * s
        s2 = math.floor(w / p) / (w / p)  # whole patches across
        w, h = w * s2, h * s2
        return min(self.max_patches, math.ceil(w / p) * math.ceil(h / p))

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        self.check(width, height, detail)
        return math.ceil(self.patches(width, height) * self.multiplier)


class Claude(_Rule):
    """Anthropic: ⌈w·h / ``pixels_per_token``⌉ after scaling down (aspect kept) until the long edge
    is at most ``max_long_edge`` and the image at most ``max_tokens``."""

    kind: Literal["claude"] = "claude"
    pixels_per_token: int = Field(default=750, gt=0)
    max_long_edge: int = Field(default=1568, gt=0)
    max_tokens: int = Field(default=1600, gt=0)

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        self.check(width, height, detail)
        s = min(1.0, self.max_long_edge / max(width, height),
                math.sqrt(self.max_tokens * self.pixels_per_token / (width * height)))
        w, h = math.floor(width * s), math.floor(height * s)
        return math.ceil(w * h / self.pixels_per_token)


class Gemini(_Rule):
    """Gemini 2.x: ``per_tile`` for an image with both sides ≤ ``small_side``, else ``per_tile`` per
    ``tile``-px tile (tiles counted as ⌈w/tile⌉·⌈h/tile⌉, the upper reading of "cropped and scaled")."""

    kind: Literal["gemini"] = "gemini"
    per_tile: int = Field(default=258, gt=0)
    small_side: int = Field(default=384, gt=0)
    tile: int = Field(default=768, gt=0)

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        self.check(width, height, detail)
        if width <= self.small_side and height <= self.small_side:
            return self.per_tile
        return self.per_tile * math.ceil(width / self.tile) * math.ceil(height / self.tile)


class QwenVL(_Rule):
    """Qwen2-VL family: transformers' own ``smart_resize`` to multiples of ``patch_size·merge_size``
    within [min_pixels, max_pixels], then one token per merged patch plus ``extra_tokens``
    (``<|vision_start|>`` and ``<|vision_end|>``)."""

    kind: Literal["qwen-vl"] = "qwen-vl"
    exact: ClassVar[bool] = True
    patch_size: int = Field(default=14, gt=0)
    merge_size: int = Field(default=2, gt=0)
    min_pixels: int = Field(default=3136, gt=0)
    max_pixels: int = Field(default=12845056, gt=0)
    extra_tokens: int = Field(default=2, ge=0)

    @model_validator(mode="after")
    def _pixels(self) -> QwenVL:
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) exceeds max_pixels ({self.max_pixels})")
        return self

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the processor resizes an image to."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            smart_resize,
        )

        h, w = smart_resize(height, width, factor=self.patch_size * self.merge_size,
                            min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        return w, h

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        self.check(width, height, detail)
        w, h = self.resized(width, height)
        unit = self.patch_size * self.merge_size
        return (w // unit) * (h // unit) + self.extra_tokens


class NoImages(_Rule):
    """A reader that takes no images at all."""

    kind: Literal["none"] = "none"
    exact: ClassVar[bool] = True

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        raise ValueError("this reader takes no images")


CostRule = Annotated[DeepSeekNative | DeepSeekVllm | OpenAITile | OpenAIPatch | Claude | Gemini | QwenVL | NoImages,
                     Field(discriminator="kind")]
