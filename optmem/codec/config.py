"""Configuration of the DeepSeek-OCR (v1) composition: DeepEncoder (SAM-B + CLIP-L) and the
DeepSeek3B-MoE decoder. Defaults are the official full-size model (deepseek-ocr-spec.md §1-§2);
``DeepSeekOCRConfig.tiny()`` keeps the real patch / downsample geometry (so slot counts are real)
with tiny widths and depths for CPU tests.

Configs are frozen pydantic models: a bad value raises a ValidationError that names the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

OFFICIAL_MODEL_ID = "deepseek-ai/DeepSeek-OCR"
OFFICIAL_OCR2_MODEL_ID = "deepseek-ai/DeepSeek-OCR-2"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamConfig(_Frozen):
    """SAM-ViT-B with v1's 16x compressor (256 -> 512 -> 1024 channels)."""

    hidden_size: int = Field(768, gt=0)
    num_hidden_layers: int = Field(12, gt=0)
    num_attention_heads: int = Field(12, gt=0)
    mlp_dim: int = Field(3072, gt=0)
    output_channels: int = Field(256, gt=0)
    downsample_channels: tuple[int, int] = (512, 1024)
    window_size: int = Field(14, gt=0)
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    image_size: int = Field(1024, gt=0)  # native size of the absolute pos-embed (64x64 grid)
    patch_size: int = Field(16, gt=0)
    layer_norm_eps: float = 1e-6

    @model_validator(mode="after")
    def _check(self) -> "SamConfig":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        bad = [i for i in self.global_attn_indexes if not 0 <= i < self.num_hidden_layers]
        if bad:
            raise ValueError(f"global_attn_indexes {bad} out of range for {self.num_hidden_layers} layers")
        return self


class ClipConfig(_Frozen):
    """CLIP-L/14 trunk whose patch embeddings are replaced by the SAM feature map."""

    hidden_size: int = Field(1024, gt=0)
    intermediate_size: int = Field(4096, gt=0)
    num_hidden_layers: int = Field(24, gt=0)
    num_attention_heads: int = Field(16, gt=0)
    image_size: int = Field(224, gt=0)  # pos-embed grid = image_size // patch_size = 16 (+1 cls)
    patch_size: int = Field(14, gt=0)
    layer_norm_eps: float = 1e-5

    @property
    def position_grid(self) -> int:
        return self.image_size // self.patch_size

    @model_validator(mode="after")
    def _check(self) -> "ClipConfig":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        return self


class TextConfig(_Frozen):
    """DeepSeek3B-MoE-A570M decoder (MHA, layer 0 dense, 64 routed + 2 shared experts)."""

    vocab_size: int = Field(129280, gt=0)
    hidden_size: int = Field(1280, gt=0)
    intermediate_size: int = Field(6848, gt=0)
    moe_intermediate_size: int = Field(896, gt=0)
    num_hidden_layers: int = Field(12, gt=0)
    num_attention_heads: int = Field(10, gt=0)
    n_routed_experts: int = Field(64, gt=0)
    n_shared_experts: int = Field(2, gt=0)
    num_experts_per_tok: int = Field(6, gt=0)
    first_k_dense_replace: int = Field(1, ge=0)
    max_position_embeddings: int = Field(8192, gt=0)
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0

    @model_validator(mode="after")
    def _check(self) -> "TextConfig":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        if self.num_experts_per_tok > self.n_routed_experts:
            raise ValueError("num_experts_per_tok must not exceed n_routed_experts")
        if self.first_k_dense_replace > self.num_hidden_layers:
            raise ValueError("first_k_dense_replace must not exceed num_hidden_layers")
        return self

    @property
    def mlp_layer_types(self) -> list[str]:
        k = self.first_k_dense_replace
        return ["dense"] * k + ["sparse"] * (self.num_hidden_layers - k)


class DeepSeekOCRConfig(_Frozen):
    sam: SamConfig = SamConfig()
    clip: ClipConfig = ClipConfig()
    text: TextConfig = TextConfig()
    image_token_id: int = Field(128815, ge=0)
    bos_token_id: int = 0
    eos_token_id: int = 1
    pad_token_id: int = 2
    gundam_min_tiles: int = Field(2, ge=1)
    gundam_max_tiles: int = Field(9, ge=1)  # HF `infer` default; the vLLM configs use 6
    model_id: str = OFFICIAL_MODEL_ID

    @model_validator(mode="after")
    def _check(self) -> "DeepSeekOCRConfig":
        if self.clip.hidden_size != self.sam.downsample_channels[-1]:
            raise ValueError(
                f"clip.hidden_size ({self.clip.hidden_size}) must equal sam.downsample_channels[-1] "
                f"({self.sam.downsample_channels[-1]}): the SAM map is CLIP's patch embedding"
            )
        if self.image_token_id >= self.text.vocab_size:
            raise ValueError(f"image_token_id {self.image_token_id} >= text.vocab_size {self.text.vocab_size}")
        if self.gundam_min_tiles > self.gundam_max_tiles:
            raise ValueError("gundam_min_tiles must not exceed gundam_max_tiles")
        return self

    @property
    def projector_in(self) -> int:
        # concat[CLIP ‖ SAM]
        return self.clip.hidden_size + self.sam.downsample_channels[-1]

    @classmethod
    def tiny(cls, **overrides: Any) -> "DeepSeekOCRConfig":
        """Tiny widths/depths, real geometry: patch 16, two stride-2 convs, window 14, 64x64 SAM
        pos-embed, 16x16+1 CLIP positions, full vocabulary (so real token ids work)."""
        base: dict[str, Any] = dict(
            sam=SamConfig(
                hidden_size=16, num_hidden_layers=2, num_attention_heads=1, mlp_dim=32,
                output_channels=8, downsample_channels=(16, 24), global_attn_indexes=(1,),
            ),
            clip=ClipConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2),
            text=TextConfig(
                hidden_size=32, intermediate_size=64, moe_intermediate_size=16, num_hidden_layers=2,
                num_attention_heads=2, n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2,
            ),
            model_id="optmem/tiny-deepseek-ocr",
        )
        base.update(overrides)
        return cls(**base)

    # -- transformers 5.23 configs of the building blocks ------------------------------------
    def hf_sam_config(self):
        from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2SamVisionConfig

        s = self.sam
        cfg = DeepseekOcr2SamVisionConfig(
            hidden_size=s.hidden_size, output_channels=s.output_channels, num_hidden_layers=s.num_hidden_layers,
            num_attention_heads=s.num_attention_heads, image_size=s.image_size, patch_size=s.patch_size,
            window_size=s.window_size, global_attn_indexes=list(s.global_attn_indexes), mlp_dim=s.mlp_dim,
            downsample_channels=list(s.downsample_channels), layer_norm_eps=s.layer_norm_eps,
        )
        cfg._attn_implementation = "sdpa"
        return cfg

    def hf_clip_config(self):
        from transformers import CLIPVisionConfig

        c = self.clip
        cfg = CLIPVisionConfig(
            hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
            image_size=c.image_size, patch_size=c.patch_size, hidden_act="quick_gelu",
            layer_norm_eps=c.layer_norm_eps, attention_dropout=0.0,
        )
        cfg._attn_implementation = "sdpa"
        return cfg

    def hf_text_config(self):
        from transformers.models.deepseek_ocr2.configuration_deepseek_ocr2 import DeepseekOcr2TextConfig

        t = self.text
        cfg = DeepseekOcr2TextConfig(
            vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
            moe_intermediate_size=t.moe_intermediate_size, num_hidden_layers=t.num_hidden_layers,
            num_attention_heads=t.num_attention_heads, num_key_value_heads=t.num_attention_heads,
            n_routed_experts=t.n_routed_experts, n_shared_experts=t.n_shared_experts,
            num_experts_per_tok=t.num_experts_per_tok, topk_method="greedy", routed_scaling_factor=1.0,
            max_position_embeddings=t.max_position_embeddings, rms_norm_eps=t.rms_norm_eps,
            rope_parameters={"rope_type": "default", "rope_theta": t.rope_theta},
            mlp_layer_types=t.mlp_layer_types, bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id, attention_bias=False, tie_word_embeddings=False,
        )
        cfg._attn_implementation = "sdpa"
        return cfg


def tiny_ocr2_config():
    """A tiny random DeepSeek-OCR-2 config (transformers' own class) with real SAM geometry and the
    full vocabulary, for CPU tests (deepseek-ocr-spec.md §4.4, widened vocab)."""
    from transformers import DeepseekOcr2Config

    cfg = DeepseekOcr2Config(
        vision_config={
            "sam_config": {
                "hidden_size": 16, "output_channels": 8, "num_hidden_layers": 2, "num_attention_heads": 1,
                "image_size": 1024, "patch_size": 16, "window_size": 14, "global_attn_indexes": [1],
                "mlp_dim": 32, "downsample_channels": [16, 24],
            },
            "encoder_config": {
                "hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2,
                "num_key_value_heads": 1, "vocab_size": 16,
            },
        },
        text_config={
            "vocab_size": 129280, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2, "moe_intermediate_size": 16,
            "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2,
            "mlp_layer_types": ["dense", "sparse"], "max_position_embeddings": 8192,
            "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2,
        },
        image_token_id=128815,
    )
    return cfg
