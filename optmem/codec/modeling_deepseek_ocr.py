"""DeepSeek-OCR (v1) composed from transformers 5.23 building blocks.

    pixels ─► SAM-B (+ 256→512→1024 stride-2 convs)  ─┬─────────────────────────┐
                                                       └► CLIP-L trunk (SAM map   │
                                                          as patch embeddings)    │
                                          concat[CLIP ‖ SAM] ◄────────────────────┘
                                          ─► Linear 2048→1280 ─► grid [h, w, 1280]

Per image the decoder sees: Gundam tiles as one big grid with an ``image_newline`` after each
row, then the global grid with a newline after each row, then one ``view_separator``
(deepseek-ocr-spec.md §1.4). The decoder is ``DeepseekOcr2TextModel`` (MHA + DeepSeek-V2 MoE),
which is v1's decoder, plus an untied ``lm_head``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.clip.modeling_clip import CLIPEncoder
from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import (
    DeepseekOcr2SamVisionEncoder,
    DeepseekOcr2TextModel,
)

from .config import DeepSeekOCRConfig
from .preprocessing import PreparedImage


def interpolate_grid_positions(pos: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """v1's ``get_abs_pos``: resample the square [N*N, C] position grid to [grid_h*grid_w, C]
    with antialiased bicubic in fp32. transformers' CLIP interpolation has no antialias and
    differs when shrinking (16→8, 16→10), so it is not used."""
    src = math.isqrt(pos.shape[0])
    if (src, src) == (grid_h, grid_w):
        return pos
    dim = pos.shape[-1]
    grid = pos.reshape(1, src, src, dim).permute(0, 3, 1, 2).to(torch.float32)
    grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", antialias=True, align_corners=False)
    return grid.to(pos.dtype).permute(0, 2, 3, 1).reshape(grid_h * grid_w, dim)


class ClipTrunk(nn.Module):
    """CLIP-L vision transformer fed with the SAM feature map instead of its own patch conv.
    cls token + positions, ``pre_layrnorm``, 24 pre-LN layers (q/k/v split from v1's fused
    ``qkv_proj`` by the loader), no post-layernorm; the cls output is dropped."""

    def __init__(self, config: DeepSeekOCRConfig):
        super().__init__()
        c = config.clip
        self.class_embedding = nn.Parameter(torch.randn(c.hidden_size))
        self.position_embedding = nn.Embedding(c.position_grid**2 + 1, c.hidden_size)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.encoder = CLIPEncoder(config.hf_clip_config())

    def forward(self, patch_map: torch.Tensor) -> torch.Tensor:
        batch, _, h, w = patch_map.shape
        patches = patch_map.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(patches.dtype).expand(batch, 1, -1)
        pos = self.position_embedding.weight
        pos = torch.cat([pos[:1], interpolate_grid_positions(pos[1:], h, w)], dim=0)
        x = torch.cat([cls, patches], dim=1) + pos.to(patches.dtype)
        x = self.encoder(self.pre_layrnorm(x)).last_hidden_state
        return x[:, 1:]


class DeepEncoder(nn.Module):
    """[B, 3, S, S] pixels -> [B, S/64, S/64, text hidden] projected vision tokens."""

    def __init__(self, config: DeepSeekOCRConfig):
        super().__init__()
        self.sam = DeepseekOcr2SamVisionEncoder(config.hf_sam_config())
        self.clip = ClipTrunk(config)
        self.projector = nn.Linear(config.projector_in, config.text.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        sam_map = self.sam(pixel_values).last_hidden_state  # [B, C, h, w]
        batch, _, h, w = sam_map.shape
        clip_tokens = self.clip(sam_map)
        fused = torch.cat([clip_tokens, sam_map.flatten(2).transpose(1, 2)], dim=-1)
        return self.projector(fused).reshape(batch, h, w, -1)


class DeepSeekOCRModel(nn.Module):
    def __init__(self, config: DeepSeekOCRConfig):
        super().__init__()
        self.config = config
        hidden = config.text.hidden_size
        self.vision = DeepEncoder(config)
        self.image_newline = nn.Parameter(torch.randn(hidden) / math.sqrt(hidden))
        self.view_separator = nn.Parameter(torch.randn(hidden) / math.sqrt(hidden))  # v1 key: view_seperator
        self.language_model = DeepseekOcr2TextModel(config.hf_text_config())
        self.lm_head = nn.Linear(hidden, config.text.vocab_size, bias=False)

    # -- vision side -----------------------------------------------------------------------
    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        rows, _, dim = grid.shape
        newline = self.image_newline.to(grid.dtype).expand(rows, 1, dim)
        return torch.cat([grid, newline], dim=1).reshape(-1, dim)

    def layout(self, global_grid: torch.Tensor, tile_grids: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor:
        """Decoder sequence of one image from its encoded views: [tiles+newlines, global+newlines, separator]."""
        parts = []
        if tile_grids is not None:
            nw, nh = grid
            n, h2, w2, dim = tile_grids.shape
            big = tile_grids.reshape(nh, nw, h2, w2, dim).permute(0, 2, 1, 3, 4).reshape(nh * h2, nw * w2, dim)
            parts.append(self._with_newlines(big))
        parts.append(self._with_newlines(global_grid))
        parts.append(self.view_separator.to(global_grid.dtype)[None, :])
        return torch.cat(parts, dim=0)

    def encode_prepared(self, images: list[PreparedImage]) -> list[torch.Tensor]:
        """Encode several prepared images, batching views of the same size; one [slots, hidden] each."""
        device = self.image_newline.device
        dtype = self.image_newline.dtype
        globals_by_side: dict[int, list[int]] = {}
        for i, im in enumerate(images):
            globals_by_side.setdefault(im.global_view.shape[-1], []).append(i)
        global_out: dict[int, torch.Tensor] = {}
        for _, idxs in globals_by_side.items():
            batch = torch.stack([images[i].global_view for i in idxs]).to(device, dtype)
            for i, g in zip(idxs, self.vision(batch)):
                global_out[i] = g
        tiled = [i for i, im in enumerate(images) if im.tiles is not None]
        tile_out: dict[int, torch.Tensor] = {}
        if tiled:
            all_tiles = torch.cat([images[i].tiles for i in tiled]).to(device, dtype)
            encoded = self.vision(all_tiles)
            start = 0
            for i in tiled:
                n = images[i].tiles.shape[0]
                tile_out[i] = encoded[start : start + n]
                start += n
        return [self.layout(global_out[i], tile_out.get(i), im.grid) for i, im in enumerate(images)]

    # -- decoder side ----------------------------------------------------------------------
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.embed_tokens(input_ids)

    def decode(self, inputs_embeds, attention_mask=None, past_key_values=None, use_cache=False, last_only=False):
        """Decoder + lm_head; ``last_only`` computes logits for the last position only (a prefill
        of 8192 positions would otherwise materialise 8192 x 129280 logits)."""
        out = self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask,
            past_key_values=past_key_values, use_cache=use_cache,
        )
        hidden = out.last_hidden_state[:, -1:] if last_only else out.last_hidden_state
        return self.lm_head(hidden), out.past_key_values

    def forward(self, input_ids, images: list[PreparedImage] | None = None, attention_mask=None,
                past_key_values=None, use_cache=False, last_only=False):
        """The model's own image path, as the official ``DeepseekOCRModel.forward``: embed ids, then
        ``masked_scatter`` each image's sequence into the ``<image>`` positions in order."""
        inputs_embeds = self.embed_tokens(input_ids)
        if images:
            feats = torch.cat(self.encode_prepared(images), dim=0).to(inputs_embeds.dtype)
            mask = input_ids == self.config.image_token_id
            if int(mask.sum()) != feats.shape[0]:
                raise ValueError(f"{int(mask.sum())} <image> positions but {feats.shape[0]} image feature rows")
            inputs_embeds = inputs_embeds.masked_scatter(mask.unsqueeze(-1), feats)
        return self.decode(inputs_embeds, attention_mask, past_key_values, use_cache, last_only)


def randomize_(model: nn.Module, seed: int, std: float = 0.02) -> nn.Module:
    """Give every parameter that transformers initialises to a constant (zeros for SAM pos/rel-pos
    tables and the MoE router, ones for norms) seeded random values, so tiny random models
    exercise every weight (position interpolation, routing) instead of a degenerate special case."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            flat = p.detach().flatten()
            if flat.numel() and bool((flat == flat[0]).all()):
                noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * std
                p.copy_((noise + (1.0 if float(flat[0]) == 1.0 else 0.0)).to(p.dtype))
    return model
