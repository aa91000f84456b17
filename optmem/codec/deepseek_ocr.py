"""``DeepSeekOCR``: the v1 codec (the paper's model) behind the common interface."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from optmem.tokens import EOS_ID

from .config import DeepSeekOCRConfig
from .generation import Generation, RepeatGuard, greedy_generate
from .interface import OpticalCodec, resolve_device, resolve_dtype
from .loading import checkpoint_files, load_state_dict
from .modeling_deepseek_ocr import DeepSeekOCRModel, randomize_
from .preprocessing import prepare
from .segments import ImageSegment, normalize_segments


def _rebuild_rope(model: torch.nn.Module) -> None:
    """Non-persistent RoPE buffers stay on the meta device after ``assign=True``; recompute them."""
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)):
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, type(module)(config=module.config))


class DeepSeekOCR(OpticalCodec):
    supported_modes = ("tiny", "small", "base", "large", "gundam")

    def __init__(self, model: DeepSeekOCRModel, *, cache_size: int = 256):
        super().__init__(model.config.model_id, max_positions=model.config.text.max_position_embeddings,
                         cache_size=cache_size)
        self.model = model.eval()
        self.config = model.config

    @classmethod
    def from_config(cls, cfg: DeepSeekOCRConfig | None = None, *, seed: int = 0, dtype=None, device=None,
                    cache_size: int = 256) -> "DeepSeekOCR":
        """A randomly initialised model (seeded, deterministic); ``DeepSeekOCRConfig.tiny()`` for tests."""
        cfg = cfg if cfg is not None else DeepSeekOCRConfig()
        dev = resolve_device(device)
        with torch.random.fork_rng(devices=[]), torch.device(dev):
            torch.manual_seed(seed)
            model = randomize_(DeepSeekOCRModel(cfg), seed)  # built on the target device: no host copy
        return cls(model.to(dtype=resolve_dtype(dtype, dev)), cache_size=cache_size)

    @classmethod
    def from_pretrained(cls, local_dir: str | Path, dtype=None, device=None, *,
                        config: DeepSeekOCRConfig | None = None, cache_size: int = 256) -> "DeepSeekOCR":
        """Load the official ``deepseek-ai/DeepSeek-OCR`` safetensors from ``local_dir`` (no hub)."""
        cfg = config if config is not None else DeepSeekOCRConfig()
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        checkpoint_files(local_dir)  # fail fast with the download hint before building anything
        with torch.device("meta"):
            model = DeepSeekOCRModel(cfg)
        state = load_state_dict(model, local_dir, cfg, dtype=dt)
        model.load_state_dict(state, strict=True, assign=True)
        _rebuild_rope(model)
        return cls(model.to(dev), cache_size=cache_size)

    @property
    def device(self) -> torch.device:
        return self.model.image_newline.device

    def prepare(self, image, mode: str):
        return prepare(image, mode, gundam_min_tiles=self.config.gundam_min_tiles,
                       gundam_max_tiles=self.config.gundam_max_tiles)

    def _encode_images(self, images: Sequence[Any], mode: str) -> list[torch.Tensor]:
        return self.model.encode_prepared([self.prepare(im, mode) for im in images])

    def embed_tokens(self, input_ids):
        return self.model.embed_tokens(input_ids)

    def decode(self, inputs_embeds, attention_mask=None, past_key_values=None, use_cache=False, last_only=False):
        return self.model.decode(inputs_embeds, attention_mask, past_key_values, use_cache, last_only)

    @torch.no_grad()
    def generate_with_images(self, segments: Iterable[Any], max_new_tokens: int = 256, *,
                             guard: RepeatGuard | None = RepeatGuard(), keep_logits: bool = False) -> Generation:
        """The model's own image path (pixels in, ``masked_scatter`` at ``<image>`` ids, as the
        official forward) with no cache and no splice: the reference ``generate`` must match."""
        segs = normalize_segments(segments)
        ids = torch.tensor([self.token_ids(segs)], device=self.device)
        prepared = [self.prepare(s.image, s.mode) for s in segs if isinstance(s, ImageSegment)]
        mask = torch.ones_like(ids)
        return greedy_generate(self, lambda: self.model(ids, prepared, mask, None, True, last_only=True), mask,
                               max_new_tokens, EOS_ID, guard, keep_logits)
