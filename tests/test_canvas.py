"""renderers.canvas: a page drawn turn by turn is byte-identical to one drawn in one go."""

import numpy as np
import pytest
from PIL import Image

from renderers import RenderConfig, downsample, draw_layout, layout_pages
from renderers.canvas import Canvas, downsample_changed

CFG = RenderConfig()
WORDS = ("memory", "page", "turn", "Oswin", "1280", "ledger", "交换", "記憶", "naïve", "token")


def _turns(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [("user" if i % 2 == 0 else "assistant",
             " ".join(rng.choice(WORDS) for _ in range(int(rng.integers(3, 60))))) for i in range(n)]


def _first_page(turns):
    return layout_pages(turns, CFG)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_growing_page_matches_a_fresh_drawing_at_every_side(seed):
    turns, canvas = _turns(40, seed), Canvas()
    for n in range(1, 40, 3):
        layout = _first_page(turns[:n])
        drawn = draw_layout(layout)
        assert canvas.draw(layout).tobytes() == drawn.tobytes()
        for side in (1280, 1024, 768, 640, 512):
            assert canvas.view(side).tobytes() == downsample(drawn, side).tobytes(), (n, side)


def test_a_layout_that_changes_earlier_lines_is_drawn_afresh():
    canvas = Canvas()
    canvas.draw(_first_page(_turns(12, 3)))
    canvas.view(1024)
    other = _first_page(_turns(5, 4))  # not an extension of the first: nothing may be kept
    assert canvas.draw(other).tobytes() == draw_layout(other).tobytes()
    assert canvas.view(1024).tobytes() == downsample(draw_layout(other), 1024).tobytes()


@pytest.mark.parametrize("side", [1024, 640, 512, 768, 626])
def test_band_resampling_is_exact_for_any_changed_rows(side):
    # The weights depend on geometry only, so random pixels over many bands cover every case the
    # page contents can bring.
    rng = np.random.default_rng(side)
    before = rng.integers(0, 256, (1280, 1280), dtype=np.uint8)
    previous = np.asarray(downsample(Image.fromarray(before), side))
    for start in [0, 1, 3, 4, 5, 99, 400, 401, 777, 1000, 1270, 1279]:
        stop = min(1280, start + int(rng.integers(1, 300)))
        after = before.copy()
        after[start:stop] = rng.integers(0, 256, (stop - start, 1280), dtype=np.uint8)
        expected = np.asarray(downsample(Image.fromarray(after), side))
        assert np.array_equal(downsample_changed(after, side, previous, (start, stop)), expected), (start, stop)


def test_a_view_before_any_drawing_is_an_error():
    with pytest.raises(ValueError, match="nothing drawn"):
        Canvas().view(640)
