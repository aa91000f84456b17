"""``DeepSeekOCR2``: transformers' native ``DeepseekOcr2ForConditionalGeneration`` and its image
processor behind the common interface.

OCR-2 has its own geometry (global 1024 view; 0-6 local 768 px tiles; 256 + 144·k + 1 slots, no
newline slots), so only two modes exist: ``"base"`` (the 1024 global view alone, 257 slots) and
``"gundam"`` (OCR-2's native global + tiles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .config import OFFICIAL_OCR2_MODEL_ID
from .interface import OpticalCodec, resolve_device, resolve_dtype
from .loading import DOWNLOAD_HINT
from .modeling_deepseek_ocr import randomize_
from .preprocessing import to_rgb


class DeepSeekOCR2(OpticalCodec):
    supported_modes = ("base", "gundam")

    def __init__(self, model, image_processor=None, *, model_id: str = OFFICIAL_OCR2_MODEL_ID, cache_size: int = 256):
        from transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2 import DeepseekOcr2ImageProcessorPil

        super().__init__(model_id, max_positions=model.config.text_config.max_position_embeddings,
                         cache_size=cache_size)
        self.model = model.eval()
        self.image_processor = image_processor if image_processor is not None else DeepseekOcr2ImageProcessorPil()

    @classmethod
    def from_config(cls, cfg=None, *, seed: int = 0, dtype=None, device=None, cache_size: int = 256,
                    model_id: str = "optmem/tiny-deepseek-ocr2") -> "DeepSeekOCR2":
        from transformers import DeepseekOcr2Config, DeepseekOcr2ForConditionalGeneration

        cfg = cfg if cfg is not None else DeepseekOcr2Config()
        dev = resolve_device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = randomize_(DeepseekOcr2ForConditionalGeneration(cfg), seed)
        return cls(model.to(dev, resolve_dtype(dtype, dev)), model_id=model_id, cache_size=cache_size)

    @classmethod
    def from_pretrained(cls, local_dir: str | Path, dtype=None, device=None, *, cache_size: int = 256) -> "DeepSeekOCR2":
        """Load a transformers-format DeepSeek-OCR-2 checkpoint from ``local_dir`` (safetensors only, no hub)."""
        from transformers import DeepseekOcr2ForConditionalGeneration

        d = Path(local_dir).expanduser()
        if not (d / "config.json").is_file():
            raise FileNotFoundError(
                f"no DeepSeek-OCR-2 checkpoint (config.json) in {str(d)!r}; "
                + DOWNLOAD_HINT.replace("deepseek-ai/DeepSeek-OCR ", "deepseek-community/DeepSeek-OCR-2 ")
                .replace("DeepSeek-OCR\n", "DeepSeek-OCR-2\n")
            )
        dev = resolve_device(device)
        model = DeepseekOcr2ForConditionalGeneration.from_pretrained(
            str(d), dtype=resolve_dtype(dtype, dev), local_files_only=True, use_safetensors=True,
        )
        return cls(model.to(dev), cache_size=cache_size)

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    def pixel_inputs(self, images: Sequence[Any], mode: str) -> dict[str, Any]:
        """Processor output for ``mode``: ``base`` drops the local tiles, ``gundam`` keeps them."""
        self._check_mode(mode)
        feats = self.image_processor([to_rgb(im) for im in images], return_tensors="pt")
        dtype = self.model.lm_head.weight.dtype
        out = {"pixel_values": feats["pixel_values"].to(self.device, dtype)}
        if mode == "gundam" and "pixel_values_local" in feats:
            out["pixel_values_local"] = feats["pixel_values_local"].to(self.device, dtype)
            out["num_local_patches"] = [int(n) for n in feats["num_local_patches"]]
        return out

    def _encode_images(self, images: Sequence[Any], mode: str) -> list[torch.Tensor]:
        return list(self.model.get_image_features(**self.pixel_inputs(images, mode)).pooler_output)

    def embed_tokens(self, input_ids):
        return self.model.model.language_model.embed_tokens(input_ids)

    def decode(self, inputs_embeds, attention_mask=None, past_key_values=None, use_cache=False, last_only=False):
        out = self.model.model.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask,
            past_key_values=past_key_values, use_cache=use_cache,
        )
        hidden = out.last_hidden_state[:, -1:] if last_only else out.last_hidden_state
        return self.model.lm_head(hidden), out.past_key_values
