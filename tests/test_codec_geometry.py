"""Slot counts and token layout, measured from the real (tiny-width) encoder output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from optmem.codec import DeepSeekOCR, DeepSeekOCRConfig
from optmem.codec.preprocessing import PAD_COLOR, prepare
from renderers import gundam_grid as closest_tile_grid
from optmem.modes import gundam_slots, mode as mode_spec


def page(size, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), mode="L")


@pytest.fixture(scope="module")
def codec():
    return DeepSeekOCR.from_config(DeepSeekOCRConfig.tiny(), seed=0)


@pytest.mark.parametrize("mode,expected", [("tiny", 73), ("small", 111), ("base", 273), ("large", 421)])
def test_native_mode_slots_from_encoder(codec, mode, expected):
    vt = codec.encode(page((1280, 1280), 1), mode)
    assert vt.embeddings.shape == (expected, codec.config.text.hidden_size)
    assert vt.slots == expected == mode_spec(mode).slots
    assert torch.isfinite(vt.embeddings).all()


@pytest.mark.parametrize(
    "size,grid",
    [((1280, 1280), (2, 2)), ((1280, 640), (2, 1)), ((640, 1280), (1, 2)), ((1920, 1280), (3, 2)),
     ((1280, 1920), (2, 3)), ((600, 600), (0, 0))],
)
def test_gundam_slots_from_encoder(codec, size, grid):
    prepared = codec.prepare(page(size, 2), "gundam")
    assert prepared.grid == grid
    vt = codec.encode(page(size, 2), "gundam")
    nw, nh = grid
    assert vt.slots == 273 + (10 * nh) * (10 * nw + 1) * (1 if nw else 0) == gundam_slots(nw, nh)


def test_newline_and_separator_positions(codec):
    m = codec.model
    for mode, grid in [("tiny", 8), ("small", 10)]:
        emb = codec.encode(page((700, 500), 3), mode).embeddings
        rows = emb[: grid * (grid + 1)].reshape(grid, grid + 1, -1)
        assert torch.equal(rows[:, -1], m.image_newline.expand(grid, -1))
        assert not torch.isclose(rows[:, :-1], m.image_newline).all(-1).any()
        assert torch.equal(emb[-1], m.view_separator)


def test_gundam_tiles_form_one_grid_before_global(codec):
    m = codec.model
    hidden = codec.config.text.hidden_size
    nw, nh, h2 = 3, 2, 10
    # tile t holds value t*1000 + row*10 + col, so the big-grid order can be read back
    tiles = torch.zeros(nw * nh, h2, h2, hidden)
    for t in range(nw * nh):
        for r in range(h2):
            for c in range(h2):
                tiles[t, r, c] = t * 1000 + r * 10 + c
    glob = torch.full((16, 16, hidden), -5.0)
    seq = m.layout(glob, tiles, (nw, nh))
    assert seq.shape[0] == gundam_slots(nw, nh)
    width = nw * h2 + 1
    big_rows = seq[: nh * h2 * width].reshape(nh * h2, width, hidden)
    assert torch.equal(big_rows[:, -1], m.image_newline.expand(nh * h2, -1))
    # grid row 12 = tile-row 1, inner row 2: runs through tiles 3, 4, 5 (row-major tiles)
    row = big_rows[12, :-1, 0].tolist()
    assert row == [t * 1000 + 2 * 10 + c for t in (3, 4, 5) for c in range(h2)]
    glob_part = seq[nh * h2 * width : -1].reshape(16, 17, hidden)
    assert torch.equal(glob_part[:, :-1], glob) and torch.equal(seq[-1], m.view_separator)


def test_preprocessing_squash_pad_and_range():
    wide = Image.new("L", (1000, 500), 255)
    tiny = prepare(wide, "tiny").global_view
    base = prepare(wide, "base").global_view
    assert tiny.shape == (3, 512, 512) and base.shape == (3, 1024, 1024)
    assert torch.allclose(tiny, torch.ones_like(tiny))  # squashed: no padding anywhere
    pad_value = (PAD_COLOR[0] / 255 - 0.5) / 0.5
    assert torch.allclose(base[:, 0], torch.full_like(base[:, 0], pad_value))  # grey band on top
    assert torch.allclose(base[:, 512], torch.ones_like(base[:, 512]))  # page in the middle
    assert prepare(Image.new("L", (10, 10), 0), "small").global_view.min() == -1.0


def test_closest_tile_grid_matches_official_rules():
    assert closest_tile_grid(1280, 1280, 2, 9) == (2, 2)
    # 1:1 ties between 2x2 and 3x3: the larger grid wins once the area exceeds half of 9 tiles
    assert closest_tile_grid(1350, 1350, 2, 9) == (2, 2)
    assert closest_tile_grid(1360, 1360, 2, 9) == (3, 3)
    assert closest_tile_grid(3000, 1000, 2, 9) == (3, 1)
    assert closest_tile_grid(3000, 1000, 2, 2) == (2, 1)


def test_bad_mode_and_input_are_typed_errors(codec):
    with pytest.raises(ValueError, match="huge"):
        codec.encode(page((64, 64)), "huge")
    with pytest.raises(TypeError, match="PIL"):
        codec.encode("not an image", "tiny")
