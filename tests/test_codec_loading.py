"""Official-key safetensors loading: round trip, explicit mapping, and named errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save_file

from optmem.codec import CheckpointError, DeepSeekOCR, DeepSeekOCRConfig, ImageSegment, TextSegment
from optmem.codec.config import ClipConfig
from optmem.codec.loading import iter_shapes, official_keys, save_official_checkpoint
from optmem.codec.modeling_deepseek_ocr import DeepSeekOCRModel

TINY = DeepSeekOCRConfig.tiny()


def page(size, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), mode="L")


@pytest.fixture(scope="module")
def built():
    return DeepSeekOCR.from_config(TINY, seed=7)


@pytest.fixture(scope="module")
def ckpt(built, tmp_path_factory):
    d = tmp_path_factory.mktemp("official")
    save_official_checkpoint(built.model, TINY, d)
    return d


@pytest.fixture(scope="module")
def loaded(ckpt):
    return DeepSeekOCR.from_pretrained(ckpt, dtype=torch.float32, device="cpu", config=TINY)


def test_round_trip_reproduces_outputs(built, loaded):
    a, b = built.model.state_dict(), loaded.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    img = page((640, 640), 1)
    for mode in ("small",):
        assert torch.equal(built.encode(img, mode).embeddings, loaded.encode(img, mode).embeddings)
    segs = [TextSegment("x"), ImageSegment(img, "tiny"), TextSegment("\nFree OCR.")]
    ga, gb = built.generate(segs, 4, keep_logits=True), loaded.generate(segs, 4, keep_logits=True)
    assert ga.tokens == gb.tokens
    for x, y in zip(ga.step_logits, gb.step_logits):  # equal weights; kernels may round differently
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


def test_mapping_is_the_documented_one(ckpt, loaded):
    loaded = loaded.model
    d = TINY.clip.hidden_size
    inter = TINY.text.moe_intermediate_size
    with safe_open(str(ckpt / "model-00001-of-000001.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        assert "model.view_seperator" in keys and "model.view_separator" not in keys
        assert torch.equal(loaded.view_separator, f.get_tensor("model.view_seperator"))
        qkv = f.get_tensor("model.vision_model.transformer.layers.1.self_attn.qkv_proj.weight")
        attn = loaded.vision.clip.encoder.layers[1].self_attn
        assert torch.equal(attn.q_proj.weight, qkv[:d]) and torch.equal(attn.k_proj.weight, qkv[d : 2 * d])
        assert torch.equal(attn.v_proj.weight, qkv[2 * d :])
        packed = loaded.language_model.layers[1].mlp.experts.gate_up_proj[3]
        assert torch.equal(packed[:inter], f.get_tensor("model.layers.1.mlp.experts.3.gate_proj.weight"))
        assert torch.equal(packed[inter:], f.get_tensor("model.layers.1.mlp.experts.3.up_proj.weight"))
        assert torch.equal(loaded.vision.sam.proj.conv2.weight, f.get_tensor("model.sam_model.net_3.weight"))
        assert torch.equal(loaded.vision.sam.neck.layer_norm1.bias, f.get_tensor("model.sam_model.neck.1.bias"))
    assert keys == set(official_keys(TINY))  # every official name written, unused patch conv included


@pytest.mark.parametrize("victim", ["model.sam_model.net_3.weight", "model.layers.1.mlp.experts.2.up_proj.weight",
                                    "model.vision_model.transformer.layers.0.self_attn.qkv_proj.bias"])
def test_missing_tensor_is_named(built, tmp_path, victim):
    save_official_checkpoint(built.model, TINY, tmp_path, edit=lambda sd: sd.pop(victim))
    with pytest.raises(CheckpointError, match=victim.replace(".", r"\.")):
        DeepSeekOCR.from_pretrained(tmp_path, config=TINY, device="cpu")


def test_extra_and_misshaped_tensors_are_named(built, tmp_path):
    save_official_checkpoint(built.model, TINY, tmp_path / "extra",
                             edit=lambda sd: sd.update({"model.vision_model.post_layernorm.weight": torch.ones(3)}))
    with pytest.raises(CheckpointError, match=r"model\.vision_model\.post_layernorm\.weight"):
        DeepSeekOCR.from_pretrained(tmp_path / "extra", config=TINY, device="cpu")

    def shrink(sd):
        sd["model.image_newline"] = sd["model.image_newline"][:-1].clone()
    save_official_checkpoint(built.model, TINY, tmp_path / "shape", edit=shrink)
    with pytest.raises(CheckpointError, match=r"model\.image_newline.*shape"):
        DeepSeekOCR.from_pretrained(tmp_path / "shape", config=TINY, device="cpu")


def test_sharded_checkpoint_with_index(built, ckpt, tmp_path):
    with safe_open(str(ckpt / "model-00001-of-000001.safetensors"), framework="pt") as f:
        sd = {k: f.get_tensor(k) for k in f.keys()}
    keys = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, ks in shards.items():
        save_file({k: sd[k] for k in ks}, str(tmp_path / name))
    weight_map = {k: name for name, ks in shards.items() for k in ks}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = DeepSeekOCR.from_pretrained(tmp_path, config=TINY, device="cpu")
    assert torch.equal(loaded.model.lm_head.weight, built.model.lm_head.weight)


def test_missing_directory_says_where_to_put_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="huggingface-cli download deepseek-ai/DeepSeek-OCR"):
        DeepSeekOCR.from_pretrained(tmp_path / "nowhere", config=TINY)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="pickle"):
        DeepSeekOCR.from_pretrained(tmp_path, config=TINY)


def test_full_size_parameter_count_matches_official():
    """Built on the meta device: no memory. The model's parameters plus the deliberately unused
    CLIP patch conv equal the official checkpoint's 3,336,106,240 in 2,710 tensors."""
    cfg = DeepSeekOCRConfig()
    with torch.device("meta"):
        model = DeepSeekOCRModel(cfg)
    ours = sum(p.numel() for p in model.parameters())
    shapes = dict(iter_shapes(cfg))
    assert len(shapes) == 2710
    assert sum(math.prod(s) for s in shapes.values()) == 3_336_106_240
    assert ours + 1024 * 3 * 14 * 14 == 3_336_106_240
    assert shapes["model.layers.5.mlp.experts.63.gate_proj.weight"] == (896, 1280)
    assert shapes["model.sam_model.blocks.11.attn.rel_pos_h"] == (127, 64)
    assert shapes["model.vision_model.transformer.layers.23.self_attn.qkv_proj.weight"] == (3072, 1024)


def test_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="clip.hidden_size"):
        DeepSeekOCRConfig(clip=ClipConfig(hidden_size=512, num_attention_heads=8))
    with pytest.raises(ValidationError, match="num_hidden_layers"):
        ClipConfig(num_hidden_layers=0)


def test_codec_package_import_needs_no_torch():
    code = ("import sys, optmem; before = 'torch' in sys.modules; import optmem.codec; "
            "from optmem.codec import TextSegment, ImageSegment; "
            "assert ('torch' in sys.modules) == before, 'optmem.codec imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _reference_v1_clip(f, sam_map: torch.Tensor, cfg: DeepSeekOCRConfig) -> torch.Tensor:
    """v1's CLIP trunk written out from the official tensors (fused qkv, quick_gelu, pre-LN,
    antialiased bicubic position resampling, cls dropped), independent of transformers' CLIP."""
    c = cfg.clip
    t = lambda k: f.get_tensor("model.vision_model." + k)  # noqa: E731
    b, dim, h, w = sam_map.shape
    x = torch.cat([t("embeddings.class_embedding").expand(b, 1, dim), sam_map.flatten(2).transpose(1, 2)], 1)
    pos = t("embeddings.position_embedding.weight")
    grid = pos[1:].reshape(1, 16, 16, dim).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    x = x + torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, dim)])
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (dim,), t(p + ".weight"), t(p + ".bias"), 1e-5)  # noqa: E731
    x = ln(x, "pre_layrnorm")
    heads = c.num_attention_heads
    for i in range(c.num_hidden_layers):
        p = f"transformer.layers.{i}."
        y = ln(x, p + "layer_norm1")
        qkv = torch.nn.functional.linear(y, t(p + "self_attn.qkv_proj.weight"), t(p + "self_attn.qkv_proj.bias"))
        q, k, v = qkv.view(b, -1, 3, heads, dim // heads).unbind(2)
        a = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        a = a.transpose(1, 2).reshape(b, -1, dim)
        x = x + torch.nn.functional.linear(a, t(p + "self_attn.out_proj.weight"), t(p + "self_attn.out_proj.bias"))
        y = ln(x, p + "layer_norm2")
        y = torch.nn.functional.linear(y, t(p + "mlp.fc1.weight"), t(p + "mlp.fc1.bias"))
        y = y * torch.sigmoid(1.702 * y)
        x = x + torch.nn.functional.linear(y, t(p + "mlp.fc2.weight"), t(p + "mlp.fc2.bias"))
    return x[:, 1:]


@pytest.mark.parametrize("grid", [8, 10, 16, 20])
def test_clip_trunk_matches_v1_written_out(ckpt, loaded, grid):
    sam_map = torch.randn(2, TINY.clip.hidden_size, grid, grid, generator=torch.Generator().manual_seed(grid))
    with torch.no_grad(), safe_open(str(ckpt / "model-00001-of-000001.safetensors"), framework="pt") as f:
        ref = _reference_v1_clip(f, sam_map, TINY)
        ours = loaded.model.vision.clip(sam_map)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_ocr2_loads_from_local_transformers_checkpoint(tmp_path):
    from optmem.codec import DeepSeekOCR2, tiny_ocr2_config

    built = DeepSeekOCR2.from_config(tiny_ocr2_config(), seed=3)
    built.model.save_pretrained(tmp_path / "ocr2")
    assert not list((tmp_path / "ocr2").glob("*.bin"))  # safetensors only
    loaded = DeepSeekOCR2.from_pretrained(tmp_path / "ocr2", dtype=torch.float32, device="cpu")
    img = page((600, 600), 9)
    torch.testing.assert_close(built.encode(img, "base").embeddings, loaded.encode(img, "base").embeddings)
    with pytest.raises(FileNotFoundError, match="deepseek-community/DeepSeek-OCR-2"):
        DeepSeekOCR2.from_pretrained(tmp_path / "nowhere")
