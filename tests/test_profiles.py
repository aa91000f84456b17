import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from optmem import modes
from renderers import VIEW_TIERS
from optmem.profiles import (
    BUILTIN,
    Claude,
    DeepSeekVllm,
    OpenAIPatch,
    OpenAITile,
    Profile,
    QwenVL,
    UnknownProfile,
    crop_grid,
    image_worth_sending,
    load_profile,
    profile_to_toml,
    rungs_worth_sending,
    text_tokens_for_image_worth,
    tokenizer,
)
from optmem.profiles.builtin import UNSHIPPED_TEXT

PAGE_SIDES = (512, 640, 1024, 1280)


# -- the vendors' worked examples ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpt-4o", "gpt-4.1"])
def test_openai_tile_rule_matches_the_vision_guide(name):
    p = BUILTIN[name]
    assert p.image_tokens(1024, 1024, "high") == 765
    assert p.image_tokens(2048, 4096, "high") == 1105
    assert p.image_tokens(4096, 8192, "low") == 85
    # small images: the guide does not say whether they are scaled up to 768; count the higher
    assert p.image_tokens(512, 512, "high") == 765
    assert OpenAITile(upscale_small=False).image_tokens(512, 512, "high") == 255


def test_openai_patch_rule_matches_the_vision_guide():
    rule = OpenAIPatch()
    assert rule.patches(1024, 1024) == 1024
    assert rule.patches(1800, 2400) == 1452  # the guide's example: scaled, then shrunk to whole patches
    assert BUILTIN["gpt-4.1-mini"].image_tokens(1024, 1024) == math.ceil(1024 * 1.62)
    assert rule.patches(10_000, 10_000) <= 1536


def test_claude_rule_matches_the_vision_doc():
    p = BUILTIN["claude"]
    assert [p.image_tokens(s, s) for s in (200, 1000, 1092)] == [54, 1334, 1590]
    # over the long-edge limit the image is scaled down first: never more than ~1600 tokens
    assert p.image_tokens(4000, 2000) <= 1600 and p.image_tokens(1568, 784) <= 1600
    assert Claude().image_tokens(5000, 100) == Claude().image_tokens(1568, 31)


def test_gemini_rule():
    p = BUILTIN["gemini-2"]
    assert p.image_tokens(384, 384) == 258 and p.image_tokens(200, 384) == 258
    assert p.image_tokens(385, 384) == 258 and p.image_tokens(768, 768) == 258
    assert p.image_tokens(1024, 1024) == 1032 and p.image_tokens(1280, 1280) == 1032


def test_deepseek_native_is_optmems_own_accounting():
    p = BUILTIN["deepseek-ocr"]
    for t in VIEW_TIERS:
        assert p.image_tokens(t.side, t.side) == t.slots
    assert [p.image_tokens(s, s) for s in PAGE_SIDES] == [73, 111, 273, 421]
    assert p.image_tokens(1280, 1280, "gundam") == modes.tier_slots("gundam") == 693
    with pytest.raises(ValueError, match="no mode of side 700"):
        p.image_tokens(700, 700)


def test_vllm_deepseek_ocr_pads_to_1024_and_tiles_over_640():
    p = BUILTIN["deepseek-ocr-vllm"]
    assert [p.image_tokens(s, s) for s in PAGE_SIDES] == [273, 273, 693, 693]
    assert crop_grid(1280, 640, tile=640, min_crops=2, max_crops=6) == (2, 1)
    assert p.image_tokens(1280, 640) == 273 + (2 * 10 + 1) * 10
    assert p.image_tokens(641, 100) > 273  # either side over 640 crops
    assert DeepSeekVllm(crop_mode=False).image_tokens(1280, 1280) == 273


def _processor(rule: QwenVL):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    return Qwen2VLImageProcessorPil(size={"shortest_edge": rule.min_pixels, "longest_edge": rule.max_pixels},
                                    patch_size=rule.patch_size, merge_size=rule.merge_size)


@pytest.mark.parametrize("name", ["qwen2.5-vl", "qwen3-vl"])
def test_qwen_tokens_equal_the_transformers_processor_grid(name):
    rule = BUILTIN[name].cost
    processor = _processor(rule)
    for w, h in [(512, 512), (640, 640), (1024, 1024), (1280, 1280), (1000, 700), (33, 2000), (20, 20)]:
        grid = processor(images=[Image.new("RGB", (w, h), 255)], return_tensors="np")["image_grid_thw"][0]
        t, gh, gw = (int(x) for x in grid)
        merged = t * gh * gw // (rule.merge_size ** 2)
        assert rule.image_tokens(w, h) == merged + 2, (w, h)


def test_qwen_page_sizes():
    assert [BUILTIN["qwen2.5-vl"].image_tokens(s, s) for s in PAGE_SIDES] == [324 + 2, 529 + 2, 1369 + 2, 2116 + 2]
    assert [BUILTIN["qwen3-vl"].image_tokens(s, s) for s in PAGE_SIDES] == [256 + 2, 400 + 2, 1024 + 2, 1600 + 2]


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 3000), st.sampled_from(sorted(BUILTIN)))
def test_every_cost_is_positive_and_grows_with_the_image(w, h, name):
    p = BUILTIN[name]
    if not p.takes_images or name == "deepseek-ocr" or max(w, h) / min(w, h) > 200:
        return
    tokens = p.image_tokens(w, h, p.ladder[0].detail)
    assert tokens > 0
    assert p.image_tokens(w * 2, h * 2, p.ladder[0].detail) >= tokens


# -- ladders ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_ladders_go_from_sharpest_to_cheapest(name):
    p = BUILTIN[name]
    costs = [p.rung_tokens(r) for r in p.ladder]
    assert costs == sorted(costs, reverse=True) and len(set(costs)) == len(costs)
    sides = [r.side for r in p.ladder]
    assert sides == sorted(sides, reverse=True)


def test_text_reader_has_no_images():
    p = BUILTIN["text"]
    assert p.ladder == () and not p.takes_images
    with pytest.raises(ValueError, match="no images"):
        p.image_tokens(512, 512)


def test_the_ladders_use_each_readers_units():
    assert all(r.side % 28 == 0 for r in BUILTIN["qwen2.5-vl"].ladder)
    assert all(r.side % 32 == 0 for r in BUILTIN["qwen3-vl"].ladder)
    assert {r.detail for r in BUILTIN["gpt-4o"].ladder} == {"high", "low"}


def test_a_tier_dearer_than_its_text_is_not_worth_sending():
    p = BUILTIN["deepseek-ocr"]
    assert text_tokens_for_image_worth(p, p.rung("base")) == 273
    assert image_worth_sending(273, 273) and not image_worth_sending(274, 273)
    assert [r.name for r in rungs_worth_sending(p, 300)] == ["base", "small", "tiny"]
    assert rungs_worth_sending(p, 72) == ()
    assert [r.name for r in rungs_worth_sending(BUILTIN["gpt-4o"], 300)] == ["low"]
    assert rungs_worth_sending(BUILTIN["text"], 10**6) == ()


# -- text counters ------------------------------------------------------------------------------------

SAMPLES = ["Hello world, how are you?", "你好，世界。今天天气很好。", "def f(x):\n    return x ** 2\n",
           "user: 我们计划把数据库从旧集群迁移到新版本，先在测试环境演练一遍。\n",
           "assistant: It is linear; the cost is the ORM query behind `rows`. 用 SELECT SUM(amount) 代替。\n"]


def test_exact_counters_are_the_shipped_tokenizers():
    assert BUILTIN["deepseek-ocr"].count_text("Hello world") == tokenizer("deepseek")("Hello world")
    assert BUILTIN["gpt-4o"].count_text("Hello world") == 2  # o200k_base: "Hello", " world"
    assert BUILTIN["qwen2.5-vl"].count_text("") == 0
    assert BUILTIN["gpt-4o"].text.exact and not BUILTIN["claude"].text.exact


@pytest.mark.parametrize("other", ["o200k_base", "cl100k_base", "qwen"])
def test_the_unshipped_bound_covers_every_shipped_tokenizer(other):
    for text in SAMPLES:
        assert UNSHIPPED_TEXT.count(text) >= tokenizer(other)(text), text


def test_unknown_tokenizer_is_a_clear_error():
    with pytest.raises(ValueError, match="known"):
        tokenizer("gpt-9")


# -- loading, TOML, validation ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_toml_round_trip(name, tmp_path):
    path = tmp_path / f"{name}.toml"
    path.write_text(profile_to_toml(BUILTIN[name]), encoding="utf-8")
    assert load_profile(path) == BUILTIN[name]
    assert load_profile(name) is BUILTIN[name]


def test_custom_profile_from_toml(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "my-vllm"\nmedia_type = "image/webp"\n'
                    '[cost]\nkind = "deepseek-vllm"\nmax_crops = 9\n'
                    '[text]\nkind = "bound"\nfactor = 1.5\n'
                    '[[ladder]]\nname = "sharp"\nside = 1280\n[[ladder]]\nname = "blur"\nside = 512\n', encoding="utf-8")
    p = load_profile(path)
    assert p.cost.max_crops == 9 and p.media_type == "image/webp"
    assert [p.rung_tokens(r) for r in p.ladder] == [693, 273] and not p.exact
    assert p.count_text("hello") == math.ceil(1.5 * tokenizer("deepseek")("hello")) + 1


def _custom(**over):
    base = {"name": "x", "cost": {"kind": "claude"}, "text": {"kind": "tokenizer", "name": "deepseek"},
            "ladder": [{"name": "a", "side": 1000}, {"name": "b", "side": 500}]}
    return base | over


def _error_locs(exc: ValidationError) -> list[str]:
    return [".".join(str(x) for x in e["loc"]) for e in exc.errors()]


@pytest.mark.parametrize("over, field", [
    ({"cost": {"kind": "claude", "pixels_per_token": 0}}, "pixels_per_token"),
    ({"cost": {"kind": "claude", "max_pixels": 5}}, "max_pixels"),
    ({"cost": {"kind": "tiles"}}, "cost"),
    ({"text": {"kind": "tokenizer", "name": "gpt2"}}, "name"),
    ({"text": {"kind": "bound", "factor": -1}}, "factor"),
    ({"limits": {"max_images": -1}}, "max_images"),
    ({"media_type": "image/bmp"}, "media_type"),
    ({"ladder": [{"name": "a", "side": 0}]}, "side"),
    ({"colour": "red"}, "colour"),
])
def test_bad_values_name_the_field(over, field):
    with pytest.raises(ValidationError) as e:
        load_profile(_custom(**over))
    assert any(field in loc for loc in _error_locs(e.value)), _error_locs(e.value)


@pytest.mark.parametrize("ladder, message", [
    ([{"name": "a", "side": 500}, {"name": "b", "side": 1000}], "fewer image tokens"),
    ([{"name": "a", "side": 1000}, {"name": "a", "side": 500}], "unique"),
    ([], "at least one rung"),
    ([{"name": "a", "side": 500, "detail": "high"}], "detail"),
])
def test_bad_ladders_are_validation_errors_on_ladder(ladder, message):
    with pytest.raises(ValidationError, match=message) as e:
        load_profile(_custom(ladder=ladder))
    assert "ladder" in str(e.value)


def test_unknown_builtin_lists_the_known_ones():
    with pytest.raises(UnknownProfile, match="gpt-4o.*claude"):
        load_profile("gpt-5-turbo")


def test_profiles_are_frozen():
    with pytest.raises(ValidationError):
        BUILTIN["claude"].name = "other"  # type: ignore[misc]
    assert isinstance(BUILTIN["claude"], Profile)


def test_importing_profiles_does_not_import_transformers():
    import subprocess
    import sys

    code = "import sys, optmem.profiles, optmem.exports; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
