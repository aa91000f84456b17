"""renderers.canvas: a page drawn turn by turn is byte-identical to one drawn in one go."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from renderers import RenderConfig, downsample, draw_layout, layout_pages
from renderers.canvas import Canvas, downsample_changed
from renderers.lanczos import downsample_rows

CFG = RenderConfig()
WORDS = ("memory", "page", "turn", "Oswin", "1280", "ledger", "交换", "記憶", "naïve", "token")


def _turns(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [("user" if i % 2 == 0 else "assistant",
             " ".join(rng.choice(WORDS) for _ in range(int(rng.integers(3, 60))))) for i in range(n)]


def _first_page(turns):
    return layout_pages(turns, CFG)[0]


# Every side a built-in profile sends a page at, and some that none does.
SIDES = (1280, 1260, 1092, 1024, 1008, 768, 640, 626, 616, 512, 504, 384)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_growing_page_matches_a_fresh_drawing_at_every_side(seed):
    turns, canvas = _turns(40, seed), Canvas()
    for n in range(1, 40, 3):
        layout = _first_page(turns[:n])
        drawn = draw_layout(layout)
        assert canvas.draw(layout).tobytes() == drawn.tobytes()
        for side in SIDES:
            assert canvas.view(side).tobytes() == downsample(drawn, side).tobytes(), (n, side)


@pytest.mark.parametrize("seed", [3, 4])
def test_sides_asked_of_the_last_page_are_kept_on_the_next(seed):
    turns, canvas = _turns(80, seed), Canvas()
    pages = layout_pages(turns, CFG)
    assert len(pages) >= 3
    canvas.draw(pages[0])
    canvas.view(1092), canvas.view(640)
    second = [layout_pages(turns[:n], CFG)[1] for n in range(len(turns)) if len(layout_pages(turns[:n], CFG)) == 2]
    for i, layout in enumerate(second):
        drawn = draw_layout(layout)
        canvas.draw(layout)
        # made by the drawings, before any view is asked, one from scratch per drawing, smallest
        # first; 1024 once it was asked of this page
        expected = {640} if i == 0 else {1092, 640} if i <= len(second) // 2 else {1092, 640, 1024}
        assert set(canvas._views) == expected, i
        if i % 3 == 0:
            for side in (1092, 640):
                assert canvas.view(side).tobytes() == downsample(drawn, side).tobytes(), (i, side)
        if i == len(second) // 2:  # a side first asked of a page already part full
            assert canvas.view(1024).tobytes() == downsample(drawn, 1024).tobytes(), i
    canvas.draw(pages[2])  # a new page: the sides asked of the last are made again, smallest first
    assert set(canvas._views) == {640}


def test_sides_to_keep_are_made_from_a_pages_first_drawing_before_any_is_asked():
    turns, canvas = _turns(60, 7), Canvas(keep=(640, 1024, 1280))
    layouts = [layout_pages(turns[:n], CFG)[0] for n in range(1, 10)]
    for i, layout in enumerate(layouts):
        canvas.draw(layout)
        # the page's own side needs no view; one view is made from scratch per drawing, smallest
        # first, and each made view then shows every drawing
        made = {640: i + 1, 1024: i + 1} if i else {640: 1}
        assert {side: seen for side, (_, seen) in canvas._views.items()} == made, i
    drawn = draw_layout(layouts[-1])
    for side in (1024, 640):
        assert canvas.view(side).tobytes() == downsample(drawn, side).tobytes(), side
    pages = layout_pages(turns, CFG)
    canvas.draw(pages[1])  # a new page: kept sides go on, from its first drawing
    assert set(canvas._views) == {640}
    canvas.draw(pages[1])  # the same layout: nothing to draw
    second = layout_pages(turns + turns[:3], CFG)[1]
    assert second.placed[:len(pages[1].placed)] == pages[1].placed
    canvas.draw(second)
    assert set(canvas._views) == {640, 1024}
    assert canvas.view(1024).tobytes() == downsample(draw_layout(second), 1024).tobytes()


def test_a_bands_blas_limit_holds_inside_and_is_given_back_on_any_thread():
    from concurrent.futures import ThreadPoolExecutor

    from renderers import lanczos

    def threads_in_and_after():
        with lanczos._one_blas_thread():
            inside = [i["num_threads"] for i in lanczos._blas.info() if i["user_api"] == "blas"]
        return inside, [i["num_threads"] for i in lanczos._blas.info() if i["user_api"] == "blas"]

    with lanczos._one_blas_thread():  # makes the controller, over the BLAS numpy loaded
        pass
    before = [i["num_threads"] for i in lanczos._blas.info() if i["user_api"] == "blas"]
    assert before, "numpy's BLAS is not seen"
    inside, after = threads_in_and_after()
    assert set(inside) == {1} and after == before
    with ThreadPoolExecutor(2) as pool:  # optmem serve calls from threads of its own
        for inside, _ in pool.map(lambda _: threads_in_and_after(), range(4)):
            assert set(inside) == {1}
    assert [i["num_threads"] for i in lanczos._blas.info() if i["user_api"] == "blas"] == before


def test_a_side_below_the_one_asked_last_waits_until_it_is_asked():
    turns, canvas = _turns(60, 5), Canvas()
    layouts = [layout_pages(turns[:n], CFG)[0] for n in range(1, 12)]
    assert all(len(layout_pages(turns[:n], CFG)) == 1 for n in range(1, 12))
    canvas.draw(layouts[0])
    canvas.view(640), canvas.view(1024)  # 1024 asked last: 640 is no longer made ahead
    for layout in layouts[1:]:
        canvas.draw(layout)
    assert canvas._views[1024][1] == len(layouts) and canvas._views[640][1] == 1
    drawn = draw_layout(layouts[-1])
    assert canvas.view(640).tobytes() == downsample(drawn, 640).tobytes()
    assert canvas.view(1024).tobytes() == downsample(drawn, 1024).tobytes()


@pytest.mark.parametrize("page_side", [1280, 1024, 640])
def test_lanczos_rows_are_pillows_rows(page_side):
    rng = np.random.default_rng(page_side)
    pixels = rng.integers(0, 256, (page_side, page_side), dtype=np.uint8)
    for side in [s for s in SIDES if s < page_side]:
        whole = np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.LANCZOS))
        assert np.array_equal(downsample_rows(pixels, side, 0, side), whole), side
        for _ in range(4):
            start = int(rng.integers(0, side))
            stop = int(rng.integers(start + 1, side + 1))
            assert np.array_equal(downsample_rows(pixels, side, start, stop), whole[start:stop]), (side, start)


def test_lanczos_rows_reject_a_page_that_is_not_square_and_rows_outside_the_view():
    with pytest.raises(ValueError, match="square"):
        downsample_rows(np.zeros((10, 20), dtype=np.uint8), 5, 0, 5)
    with pytest.raises(ValueError, match="within"):
        downsample_rows(np.zeros((20, 20), dtype=np.uint8), 10, 5, 11)


def test_a_layout_that_changes_earlier_lines_is_drawn_afresh():
    canvas = Canvas()
    canvas.draw(_first_page(_turns(12, 3)))
    canvas.view(1024)
    other = _first_page(_turns(5, 4))  # not an extension of the first: nothing may be kept
    assert canvas.draw(other).tobytes() == draw_layout(other).tobytes()
    assert canvas.view(1024).tobytes() == downsample(draw_layout(other), 1024).tobytes()


@pytest.mark.parametrize("side", [1092, 1024, 640, 512, 768, 626])
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


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 300), st.data())
def test_lanczos_rows_equal_pillows_for_any_downsample_and_rows(size, data):
    # Weights are geometry alone: any (input, output) pair and any rows must give Pillow's bytes.
    side = data.draw(st.integers(1, size - 1), label="side")
    start = data.draw(st.integers(0, side - 1), label="start")
    stop = data.draw(st.integers(start + 1, side), label="stop")
    pixels = np.random.default_rng(size * 1000 + side).integers(0, 256, (size, size), dtype=np.uint8)
    whole = np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.LANCZOS))
    assert np.array_equal(downsample_rows(pixels, side, start, stop), whole[start:stop])


def test_a_side_at_or_above_the_page_is_the_page_and_keeps_nothing_ahead():
    canvas, layout = Canvas(), _first_page(_turns(8, 6))
    drawn = canvas.draw(layout)
    canvas.view(640)
    assert canvas.view(1280).tobytes() == drawn.tobytes()
    assert canvas.view(1536).tobytes() == downsample(drawn, 1536).tobytes()  # resized up, as sent_view would
    assert canvas._last_asked == 640 and 1536 not in canvas._asked
