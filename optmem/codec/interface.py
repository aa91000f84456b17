"""The one interface of both codecs: page -> vision tokens -> spliced decoder input -> text.

Layout of a context (deepseek-ocr-spec.md §2.2-§2.3):
``[BOS] + for each segment: text ids | [IMAGE_TOKEN_ID] * slots``; each page's vision tokens
overwrite the embeddings of its own contiguous block of ``<image>`` slots, in order. Text is
encoded with optmem's plain BPE, which can never yield a special id, so user text that contains
``<image>`` stays text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Sequence

import torch
from PIL import Image

from optmem.tokens import BOS_ID, EOS_ID, IMAGE_TOKEN_ID, default_tokenizer

from .cache import VisionTokenCache
from .generation import Generation, RepeatGuard, greedy_generate
from .preprocessing import image_hash
from .segments import ImageSegment, TextSegment, normalize_segments

OCR_PROMPT = "\nFree OCR."  # follows the image: "<image>\nFree OCR." (official, no layout)


@dataclass(frozen=True, eq=False)
class VisionTokens:
    """One page encoded for the decoder: ``embeddings`` [slots, hidden] in decoder order."""

    embeddings: torch.Tensor
    mode: str
    slots: int
    image_hash: str
    model_id: str


class Spliced(NamedTuple):
    input_ids: torch.Tensor  # [1, L] long; IMAGE_TOKEN_ID at every vision slot
    inputs_embeds: torch.Tensor  # [1, L, hidden]
    attention_mask: torch.Tensor  # [1, L] long, all ones


def resolve_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}")
        return value
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or its name, got {type(dtype).__name__}")
    return dtype


def resolve_device(device: Any) -> torch.device:
    return torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


class OpticalCodec(ABC):
    """Base of ``DeepSeekOCR`` (v1) and ``DeepSeekOCR2``."""

    supported_modes: tuple[str, ...] = ()

    def __init__(self, model_id: str, *, max_positions: int, cache_size: int = 256):
        self.model_id = model_id
        self.max_positions = max_positions
        self.cache: VisionTokenCache[VisionTokens] = VisionTokenCache(cache_size)
        self.tokenizer = default_tokenizer()

    # -- what a concrete codec provides -----------------------------------------------------
    @classmethod
    @abstractmethod
    def from_pretrained(cls, local_dir, dtype=None, device=None, **kwargs) -> "OpticalCodec": ...

    @classmethod
    @abstractmethod
    def from_config(cls, cfg=None, **kwargs) -> "OpticalCodec": ...

    @abstractmethod
    def _encode_images(self, images: Sequence[Any], mode: str) -> list[torch.Tensor]:
        """[slots, hidden] per image, in decoder order (no caching)."""

    @abstractmethod
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, inputs_embeds, attention_mask=None, past_key_values=None, use_cache=False, last_only=False):
        """Decoder + lm_head: (logits [B, L or 1, vocab], kv cache)."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    # -- encoding ---------------------------------------------------------------------------
    def _check_mode(self, mode: str) -> None:
        if mode not in self.supported_modes:
            raise ValueError(f"{type(self).__name__} does not support mode {mode!r}; "
                             f"supported: {self.supported_modes}")

    def encode(self, image, mode: str) -> VisionTokens:
        return self.encode_batch([image], mode)[0]

    @torch.no_grad()
    def encode_batch(self, images: Sequence[Any], mode: str) -> list[VisionTokens]:
        """Encode several pages in one mode, batched; cached pages are not re-encoded."""
        self._check_mode(mode)
        bad = [i for i, im in enumerate(images) if not isinstance(im, Image.Image)]
        if bad:
            raise TypeError(f"image {bad[0]} is a {type(images[bad[0]]).__name__}, expected a PIL image")
        hashes = [image_hash(im) for im in images]
        out: list[VisionTokens | None] = [self.cache.get((h, mode, self.model_id)) for h in hashes]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            encoded = self._encode_images([images[i] for i in todo], mode)
            for i, emb in zip(todo, encoded):
                vt = VisionTokens(emb, mode, int(emb.shape[0]), hashes[i], self.model_id)
                self.cache.put((hashes[i], mode, self.model_id), vt)
                out[i] = vt
        return out  # type: ignore[return-value]

    # -- splicing ---------------------------------------------------------------------------
    def _pieces(self, segments: Iterable[Any]) -> list[list[int] | VisionTokens]:
        segs = normalize_segments(segments)
        pages = [s for s in segs if isinstance(s, ImageSegment)]
        by_mode: dict[str, list[int]] = {}
        for i, s in enumerate(pages):
            by_mode.setdefault(s.mode, []).append(i)
        encoded: dict[int, VisionTokens] = {}
        for mode, idxs in by_mode.items():
            for i, vt in zip(idxs, self.encode_batch([pages[i].image for i in idxs], mode)):
                encoded[i] = vt
        pieces: list[list[int] | VisionTokens] = []
        page_i = 0
        for s in segs:
            if isinstance(s, TextSegment):
                pieces.append(self.tokenizer.encode(s.text))
            else:
                pieces.append(encoded[page_i])
                page_i += 1
        return pieces

    def token_ids(self, segments: Iterable[Any]) -> list[int]:
        ids = [BOS_ID]
        for p in self._pieces(segments):
            ids += p if isinstance(p, list) else [IMAGE_TOKEN_ID] * p.slots
        return ids

    @torch.no_grad()
    def splice(self, segments: Iterable[Any]) -> Spliced:
        """input_ids, inputs_embeds, attention_mask of a context, each page at its own slots."""
        pieces = self._pieces(segments)
        ids = [BOS_ID]
        spans: list[tuple[int, VisionTokens]] = []
        for p in pieces:
            if isinstance(p, list):
                ids += p
            else:
                spans.append((len(ids), p))
                ids += [IMAGE_TOKEN_ID] * p.slots
        if len(ids) > self.max_positions:
            raise ValueError(f"context of {len(ids)} positions exceeds the decoder's {self.max_positions}")
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        embeds = self.embed_tokens(input_ids).clone()
        for start, vt in spans:
            embeds[0, start : start + vt.slots] = vt.embeddings.to(embeds.device, embeds.dtype)
        return Spliced(input_ids, embeds, torch.ones_like(input_ids))

    # -- generation -------------------------------------------------------------------------
    def generate(self, segments: Iterable[Any], max_new_tokens: int = 256, *,
                 guard: RepeatGuard | None = RepeatGuard(), keep_logits: bool = False) -> Generation:
        """Greedy continuation of the spliced context (EOS stops and is not returned)."""
        _, embeds, mask = self.splice(segments)
        return greedy_generate(self, lambda: self.decode(embeds, mask, None, True, last_only=True), mask,
                               max_new_tokens, EOS_ID, guard, keep_logits)

    def ocr(self, image, mode: str, max_new_tokens: int = 2048, guard: RepeatGuard | None = RepeatGuard()) -> str:
        """Read a page back with the official ``<image>\\nFree OCR.`` prompt, greedy + repeat guard."""
        gen = self.generate([ImageSegment(image, mode), TextSegment(OCR_PROMPT)], max_new_tokens, guard=guard)
        return self.tokenizer.decode(gen.tokens)
