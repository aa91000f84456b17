"""Page image encodings: exact round trips, quantisation, byte-identical output, golden hashes.

Regenerate the goldens after an intended encoding change with:
    OPTMEM_UPDATE_GOLDEN=1 python -m pytest tests/test_render_encoding.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from renderers import (
    PAGE_ENCODINGS,
    TIER_ENCODINGS,
    decode_page_image,
    encode_page_image,
    encode_png,
    page_encoding,
    quantize_grey,
    quantized_image,
    render_pages,
    tier_image,
)

GOLDEN = Path(__file__).parent / "golden" / "encoding_hashes.json"
CHAT = [
    ("user", "Why does the nightly export to s3://backups/prod fail since Tuesday? It ran for two years."),
    ("assistant", "The job hits its 3600 s timeout: audit_log_2019 grew to 41 GB. 审计日志表太大了，需要按月拆分。"),
]


@pytest.fixture(scope="module")
def page():
    return render_pages(CHAT)[0]


def compute_hashes() -> dict:
    page = render_pages(CHAT)[0]
    return {tier: {fmt: hashlib.sha256(encode_page_image(page.at(tier).image, fmt)).hexdigest()
                   for fmt in sorted(PAGE_ENCODINGS)} for tier in ("large", "base", "tiny")}


def _noise(seed: int, width: int, height: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8))


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("fmt", sorted(PAGE_ENCODINGS))
def test_decodes_to_the_quantised_pixels(page, fmt, fast):
    image = page.at("base").image
    data = encode_page_image(image, fmt, fast=fast)
    decoded = decode_page_image(data)
    assert decoded.mode == "L" and decoded.size == image.size
    assert np.array_equal(np.asarray(decoded), np.asarray(quantized_image(image, page_encoding(fmt).levels)))
    # fast: grey PNG whatever the container, made for one request or compressed again later
    assert Image.open(io.BytesIO(data)).format == ("PNG" if fast else page_encoding(fmt).container.upper())


@pytest.mark.parametrize("fmt", sorted(PAGE_ENCODINGS))
@pytest.mark.parametrize("size", [(1, 1), (13, 7), (3, 40)])  # widths that do not fill the last packed byte
def test_round_trip_at_odd_sizes(fmt, size):
    image = _noise(sum(size), *size)
    decoded = decode_page_image(encode_page_image(image, fmt))
    assert np.array_equal(np.asarray(decoded), np.asarray(quantized_image(image, page_encoding(fmt).levels)))


def test_png_is_todays_writer(page):
    image = page.at("tiny").image
    assert encode_page_image(image, "png") == encode_png(image)
    assert np.array_equal(np.asarray(decode_page_image(encode_png(image))), np.asarray(image))


@pytest.mark.parametrize(("levels", "bits"), [(16, 4), (8, 4), (4, 2), (2, 1)])
def test_grey_png_header_and_an_independent_decoder(page, levels, bits):
    import cv2  # libpng through OpenCV, not Pillow

    image = page.at("small").image
    data = encode_page_image(image, f"png-g{levels}")
    assert data[12:16] == b"IHDR" and data[24] == bits and data[25] == 0  # bit depth, colour type greyscale
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(decoded, np.asarray(quantized_image(image, levels)))
    assert len(np.unique(decoded)) <= levels


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=1, max_size=64), st.sampled_from([16, 8, 4, 2]))
def test_quantisation_picks_the_nearest_level(values, levels):
    image = Image.fromarray(np.array([values], dtype=np.uint8))
    out = np.asarray(quantized_image(image, levels)).astype(int)[0]
    # The greys N levels can decode to: evenly spaced samples at the PNG bit depth that holds N.
    bits = {16: 4, 8: 4, 4: 2, 2: 1}[levels]
    top = (1 << bits) - 1
    greys = np.array([round(i * top / (levels - 1)) * (255 // top) for i in range(levels)])
    assert set(out) <= set(greys)
    nearest = np.min(np.abs(np.array(values)[:, None] - greys[None, :]), axis=1)
    assert np.array_equal(np.abs(out - np.array(values)), nearest)
    assert np.array_equal(np.asarray(quantized_image(Image.fromarray(out.astype(np.uint8)[None]), levels))[0], out)
    assert quantize_grey(image, levels).max() <= top


def test_black_and_white_survive_every_depth():
    image = Image.fromarray(np.array([[0, 255, 0, 255]], dtype=np.uint8))
    for fmt in PAGE_ENCODINGS:
        assert np.asarray(decode_page_image(encode_page_image(image, fmt))).tolist() == [[0, 255, 0, 255]]


def test_fewer_levels_give_fewer_bytes_on_a_downsampled_page(page):
    image = page.at("base").image
    sizes = [len(encode_page_image(image, f)) for f in ("png", "png-g16", "png-g8", "png-g4", "png-g2")]
    assert sizes == sorted(sizes, reverse=True) and sizes[3] < sizes[0] / 2


def test_media_types():
    assert {e.name: e.media_type for e in PAGE_ENCODINGS.values() if e.levels == 4} == {
        "png-g4": "image/png", "webp-g4": "image/webp"}
    assert all(e.media_type in ("image/png", "image/webp") for e in PAGE_ENCODINGS.values())


def test_tier_encodings_are_known_formats():
    assert set(TIER_ENCODINGS) == {"large", "base", "small", "tiny"}
    assert all(fmt in PAGE_ENCODINGS for fmt in TIER_ENCODINGS.values())


@pytest.mark.parametrize("tier", ["large", "tiny"])
def test_tier_image_is_made_from_the_8bit_page(page, tier):
    data, media_type = tier_image(page, tier)
    assert data == encode_page_image(page.at(tier).image, TIER_ENCODINGS[tier])
    assert media_type == page_encoding(TIER_ENCODINGS[tier]).media_type
    assert decode_page_image(data).size == (page.at(tier).side,) * 2
    webp, webp_type = tier_image(page, tier, "webp-g4")
    assert webp_type == "image/webp"
    assert np.array_equal(np.asarray(decode_page_image(webp)), np.asarray(quantized_image(page.at(tier).image, 4)))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="'huge'"):
        tier_image(render_pages("x")[0], "huge")
    with pytest.raises(ValueError, match="'gif'"):
        encode_page_image(_noise(0, 4, 4), "gif")
    with pytest.raises(ValueError, match="'RGB'"):
        encode_page_image(Image.new("RGB", (4, 4)), "png-g4")
    with pytest.raises(TypeError, match="PIL image"):
        encode_page_image(np.zeros((4, 4), np.uint8), "png-g4")
    with pytest.raises(ValueError, match="levels"):
        quantize_grey(_noise(0, 4, 4), 3)
    with pytest.raises(TypeError, match="bytes"):
        decode_page_image("page.png")
    with pytest.raises(ValueError, match="not a decodable page image"):
        decode_page_image(b"\x89PNG\r\n\x1a\n truncated")
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, "GIF")
    with pytest.raises(ValueError, match="GIF"):
        decode_page_image(gif.getvalue())


def test_golden_hashes():
    hashes = compute_hashes()
    if os.environ.get("OPTMEM_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    assert hashes == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_same_bytes_in_a_separate_process():
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_render_encoding as t; "
            "print(json.dumps(t.compute_hashes()))")
    env = dict(os.environ, PYTHONHASHSEED="54321")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                          env=env, cwd=root, timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == compute_hashes()
