"""What a reader is sent for a page at each tier: priced as its rung, never upscaled, crops that cut
only blank margin, in the profile's container, byte-identical on every call."""

import numpy as np
import pytest

from optmem.profiles import BUILTIN
from optmem.reader import Reader, SentImage
from renderers import Tier, decode_page_image, reader_image, render_pages, sent_view

IMAGE_PROFILES = [n for n in BUILTIN if BUILTIN[n].takes_images]
TIERS = [t.value for t in Tier]


@pytest.mark.parametrize("name", IMAGE_PROFILES)
@pytest.mark.parametrize("tier", TIERS)
def test_sent_image_costs_what_the_rung_costs(name, tier):
    reader = Reader(name)
    rung, sent = reader.rung(tier), reader.sent_image(tier)
    assert reader.profile.image_tokens(sent.side, sent.side, rung.detail) == reader.image_tokens(tier)
    view = Tier(tier).side
    # made from the tier's view: as it is, cut, or resized to the rung (an upscale only to the rung)
    assert sent.side + 2 * sent.crop == view or (sent.crop == 0 and sent.side == rung.side)


@pytest.mark.parametrize("name, tier, expected", [
    ("deepseek-ocr-vllm", "tiny", SentImage(512)),  # its processor pads a 512 page to 1024 as it does 640
    ("gpt-4o", "base", SentImage(1024)),  # OpenAI scales it to 768 itself: 765 tokens either way
    ("gpt-4o", "small", SentImage(640)),  # detail low: 85 tokens whatever the size
    ("gemini-2", "tiny", SentImage(512)),
    ("gemini-2", "base", SentImage(768)),  # a 1024 page would be four tiles
    ("qwen2.5-vl", "large", SentImage(1260, 10)),
    ("qwen2.5-vl", "base", SentImage(1008, 8)),
    ("qwen2.5-vl", "small", SentImage(626, 7)),  # the processor rounds 626 to 616 itself
    ("qwen2.5-vl", "tiny", SentImage(512)),  # ... and 512 to 504
    ("claude", "large", SentImage(1092)),
    ("deepseek-ocr", "small", SentImage(640)),
])
def test_sent_image_plans(name, tier, expected):
    assert Reader(name).sent_image(tier) == expected


@pytest.fixture(scope="module")
def page():
    text = "Every page keeps its margin blank: 1024 px, 28-px units, 中文的页面也一样。 " * 60
    return render_pages([("user", text), ("assistant", text)])[0]


@pytest.mark.parametrize("tier", ["large", "base", "small"])
def test_a_crop_cuts_only_blank_margin(page, tier):
    sent = Reader("qwen2.5-vl").sent_image(tier)
    assert sent.crop > 0
    view = np.asarray(page.at(tier).image)
    cut = np.asarray(sent_view(page.at(tier).image, sent.side, sent.crop))
    assert cut.shape == (sent.side, sent.side)
    assert (view < 255).sum() == (cut < 255).sum() > 0  # every inked pixel kept


def test_sent_bytes_follow_the_profile_container_and_repeat(page):
    image = page.image
    webp = reader_image(image, 1008, crop=8, container="webp")
    png = reader_image(image, 1008, crop=8, container="png")
    assert webp[:4] == b"RIFF" and png.startswith(b"\x89PNG")
    assert np.array_equal(np.asarray(decode_page_image(webp)), np.asarray(decode_page_image(png)))
    assert decode_page_image(webp).size == (1008, 1008)
    assert reader_image(image, 1008, crop=8, container="webp") == webp
    with pytest.raises(ValueError, match="crop"):
        reader_image(image, 1008, crop=-1)


def test_builtin_profiles_send_webp_custom_ones_png():
    assert all(BUILTIN[n].container == "webp" for n in IMAGE_PROFILES)
    custom = BUILTIN["gpt-4o"].model_copy(update={"media_type": "image/png"})
    assert custom.container == "png"


@pytest.mark.parametrize("model", ["gpt-4o", "qwen2.5-vl"])
def test_memory_sends_the_bytes_it_made_when_storing_the_page(model):
    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation

    cfg = MemoryConfig.model_validate({"model": model, "retrieval": {"enabled": False},
                                       "reexpand": {"text_when_it_fits": False}})  # pages stay images
    turns, _ = build_conversation(100, seed=3)
    with OpticalMemory.open(":memory:", "c", cfg) as mem:
        for i, (role, text) in enumerate(turns):
            mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
        pages = [s for s in mem.context(None, 50_000).segments if s.kind == "page" and s.page <= len(mem.pages()) - 1]
        assert len(pages) >= 2
        reader = Reader(model)
        at_own_tier = 0
        for s in pages:
            sent = reader.sent_image(s.tier)
            assert (s.side, s.crop) == (sent.side, sent.crop)
            made = reader_image(mem.page_image(s.page), s.side, crop=s.crop, container="webp")
            if s.tier == mem._store.page(mem._conv, s.page).tier:
                at_own_tier += 1
                assert s.load_png() == made  # what the write made equals what a cold export would make
            else:  # a view below the page's tier, made for the request: fast, the same pixels
                assert np.array_equal(np.asarray(decode_page_image(s.load_png())), np.asarray(decode_page_image(made)))
        assert at_own_tier >= 1


@pytest.mark.parametrize("name", ["claude", "gemini-2", "qwen2.5-vl"])  # views at 1024, 768 (resampled whole), 640 cut
def test_the_open_page_redrawn_turn_by_turn_is_sent_as_a_fresh_drawing_would_be(name):
    # The open page is redrawn incrementally as turns join it (renderers.canvas); a memory that
    # draws it once from the same turns must send the very same bytes.
    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation

    turns, _ = build_conversation(100, seed=3)
    cfg = MemoryConfig.model_validate({"model": name, "retrieval": {"enabled": False}, "budget": 4096})

    def open_page_bytes(mem):
        number = next(p.number for p in mem.pages() if not p.sealed)
        return [s.load_png() for s in mem.context().segments if s.kind == "page" and s.page == number]

    checked = 0
    with OpticalMemory.open(":memory:", "loop", cfg) as live:
        for i, (role, text) in enumerate(turns):
            live.add(role, text, timestamp=1_700_000_000 + 60 * i)
            live.context().to_messages()  # draws the open page as it is after this turn
            if i + 1 in (70, 81, 90, 100):
                with OpticalMemory.open(":memory:", "fresh", cfg) as fresh:
                    for j, (r, t) in enumerate(turns[:i + 1]):
                        fresh.add(r, t, timestamp=1_700_000_000 + 60 * j)
                    sent = open_page_bytes(live)
                    assert sent == open_page_bytes(fresh), (name, i)
                    checked += bool(sent)  # a nearly empty open page may go out as text instead
    assert checked >= 3


def _sent_pages(mem, messages):
    """(page number, bytes) of every page image in ``messages``, in the order they are sent."""
    import base64

    images = [base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
              for m in messages if isinstance(m["content"], list) for part in m["content"] if part["type"] == "image_url"]
    pages = [s.page for s in mem.context(None, 50_000).segments if s.kind == "page"]
    assert len(images) == len(pages) > 0
    return list(zip(pages, images))


def _memory(model, sent_images):
    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation

    cfg = MemoryConfig.model_validate({"model": model, "retrieval": {"enabled": False}, "sent_images": sent_images,
                                       "reexpand": {"text_when_it_fits": False}})  # pages stay images
    mem = OpticalMemory.open(":memory:", "c", cfg)
    turns, _ = build_conversation(60, seed=3)
    for i, (role, text) in enumerate(turns):
        mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
    return mem


def test_fast_sent_images_are_sent_at_once_and_compacted_later_to_the_same_pixels():
    from optmem.exports import sniff_media_type

    with _memory("gpt-4o", "fast") as mem:
        sealed = {p.number for p in mem.pages() if p.sealed}
        reader = Reader("gpt-4o")
        before = dict(_sent_pages(mem, mem.context(None, 50_000).to_messages()))
        assert sealed and sealed < set(before)  # the open page is sent too
        compact = {}
        for s in mem.context(None, 50_000).segments:
            if s.kind == "page" and s.page in sealed:
                assert (s.side, s.crop) == (reader.sent_image(s.tier).side, reader.sent_image(s.tier).crop)
                image = mem.page_image(s.page)
                # the write made the fast encoding of the bytes a cold export would make compactly
                assert before[s.page] == reader_image(image, s.side, crop=s.crop, container="webp", fast=True)
                assert sniff_media_type(before[s.page]) == "image/png"
                compact[s.page] = reader_image(image, s.side, crop=s.crop, container="webp")
                assert before[s.page] != compact[s.page]

        assert mem.compact_images() == len(sealed)  # one per page: none for the tiers pages moved from
        assert mem.compact_images() == 0  # nothing waits any more
        after = dict(_sent_pages(mem, mem.context(None, 50_000).to_messages()))
        for number, data in after.items():
            if number in sealed:
                assert data == compact[number] and sniff_media_type(data) == "image/webp"
                assert np.array_equal(np.asarray(decode_page_image(data)), np.asarray(decode_page_image(before[number])))
            else:  # the open page is redrawn as turns join it: never compacted
                assert data == before[number]


def test_compact_sent_images_leave_nothing_to_compact():
    with _memory("gpt-4o", "compact") as mem:
        messages = mem.context(None, 50_000).to_messages()
        assert mem.compact_images() == 0
        assert mem.context(None, 50_000).to_messages() == messages


def test_images_forgotten_before_compaction_are_skipped():
    with _memory("gpt-4o", "fast") as mem:
        mem.clear()
        assert mem.compact_images() == 0


def test_sent_images_evicted_before_compaction_are_skipped(page):
    from optmem.memory import _SentImages

    sent = _SentImages("webp", max_images=2, defer=True)
    for number in (1, 2, 3):
        sent.put((0, number, "small"), 640, 0, sent.written(page.image, 640, 0), written=True)
    assert sent.compact() == 2  # page 1's was evicted
    kept = sent.png((0, 3, "small"), 640, 0, lambda: pytest.fail("the entry was cached"))
    assert kept == reader_image(page.image, 640, container="webp")


def test_sent_images_are_bounded_by_bytes_and_the_count_follows_evictions_and_compaction(page):
    from optmem.memory import _SentImages

    one = len(reader_image(page.image, 640, container="webp", fast=True))
    sent = _SentImages("webp", max_images=100, defer=True, max_bytes=int(2.5 * one))
    for number in (1, 2, 3, 4):
        sent.put((0, number, "small"), 640, 0, sent.written(page.image, 640, 0), written=True)
    assert [k[1] for k in sent._cache] == [3, 4]  # the oldest go first once 2.5 images' bytes are held
    assert sent._bytes == sum(map(len, sent._cache.values())) <= sent._max_bytes
    assert sent.compact() == 2
    assert sent._bytes == sum(map(len, sent._cache.values())) < 2 * one  # compact bytes are fewer
    sent.forget((0, 3))
    assert sent._bytes == sum(map(len, sent._cache.values())) and list(sent._cache) == [(0, 4, "small", 640, 0)]
    huge = _SentImages("webp", max_bytes=1)
    huge.put((0, 1, "small"), 640, 0, b"x" * 10)
    assert huge.cached((0, 1, "small"), 640, 0) == b"x" * 10  # the newest is kept whatever its size
    huge.clear()
    assert huge._bytes == 0


def test_a_view_below_the_page_tier_is_sent_fast_and_compacted_by_the_next_adds():
    # qwen2.5-vl is shown these pages at small, below their tier (its larger rungs cost more than
    # the text they hold): made for the request, fast; each add compacts a few, newest first.
    from optmem.exports import sniff_media_type
    from optmem.memory import COMPACTED_PER_ADD

    with _memory("qwen2.5-vl", "compact") as mem:
        def shown_below():
            return {s.page: s for s in mem.context(None, 50_000).segments
                    if s.kind == "page" and s.page < len(mem.pages()) and s.tier != mem._store.page(mem._conv, s.page).tier}

        below = shown_below()
        assert len(below) > COMPACTED_PER_ADD
        fast = {n: s.load_png() for n, s in below.items()}
        assert {sniff_media_type(b) for b in fast.values()} == {"image/png"}
        mem.add("user", "one more turn")
        now = shown_below()
        compacted = [n for n in fast if n in now and sniff_media_type(now[n].load_png()) == "image/webp"]
        assert len(compacted) == COMPACTED_PER_ADD
        assert mem.compact_images() == len(fast) - COMPACTED_PER_ADD  # the rest, at once
        for n, s in shown_below().items():
            if n in fast:
                compact = reader_image(mem.page_image(n), s.side, crop=s.crop, container="webp")
                assert s.load_png() == compact
                assert np.array_equal(np.asarray(decode_page_image(compact)), np.asarray(decode_page_image(fast[n])))


def test_compaction_done_elsewhere_replaces_only_the_bytes_it_was_made_from():
    # optmem serve re-encodes on a thread of its own and gives the bytes back later.
    with _memory("gpt-4o", "fast") as mem:
        work = mem.compaction_work()
        assert not work.empty and work.compact is None
        assert mem.store_compacted(work.done()) == len(work.items)
        assert mem.compaction_work().empty

    with _memory("gpt-4o", "fast") as mem:
        done = mem.compaction_work().done()
        mem.compact_images()  # compacted here meanwhile
        assert mem.store_compacted(done) == 0


def test_a_context_exported_after_a_seal_still_shows_its_own_open_page():
    # The page that seals is drawn on the open page's canvas; an older context's open page, sent
    # at a size not encoded yet, must not come out as that sealed page.
    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation

    turns, _ = build_conversation(100, seed=3)
    cfg = MemoryConfig.model_validate({"model": "claude", "retrieval": {"enabled": False}})

    def open_page(mem, ctx):
        number = max(p.number for p in mem.pages())
        return [(s.side, s.load_png()) for s in ctx.segments if s.kind == "page" and s.page == number]

    with OpticalMemory.open(":memory:", "live", cfg) as live, OpticalMemory.open(":memory:", "fresh", cfg) as fresh:
        for i, (role, text) in enumerate(turns[:70]):
            live.add(role, text, timestamp=1_700_000_000 + 60 * i)
            fresh.add(role, text, timestamp=1_700_000_000 + 60 * i)
        budgets = (4096, 2600)
        expected = [open_page(fresh, fresh.context(None, b)) for b in budgets]
        assert all(expected) and expected[0][0][0] != expected[1][0][0]  # the open page at two sizes
        live.context(None, budgets[0]).to_messages()  # drawn and encoded at the first size
        old = live.context(None, budgets[1])
        sealed = len(live.pages())
        for i, (role, text) in enumerate(turns[70:], start=70):
            live.add(role, text, timestamp=1_700_000_000 + 60 * i)
            if len([p for p in live.pages() if p.sealed]) >= sealed:
                break
        assert [(s.side, s.load_png()) for s in old.segments if s.kind == "page" and s.page == sealed] == expected[1]


def test_an_open_page_drawn_ahead_seals_the_same_pages_and_leaves_a_seal_only_its_last_lines(monkeypatch):
    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation
    from renderers import canvas

    turns, _ = build_conversation(80, seed=5)
    cfg = MemoryConfig.model_validate({"model": "deepseek-ocr-vllm", "retrieval": {"enabled": False}})
    stamped: list[tuple[int, int]] = []  # (lines stamped, lines on the page) for each draw

    def counting(cover, layout, first):
        stamped.append((len(layout.placed) - first, len(layout.placed)))
        return stamp(cover, layout, first)

    stamp = canvas.stamp_lines
    monkeypatch.setattr(canvas, "stamp_lines", counting)
    with OpticalMemory.open(":memory:", "ahead", cfg) as ahead, OpticalMemory.open(":memory:", "plain", cfg) as plain:
        seals_ahead, drawn = [], 0
        for i, (role, text) in enumerate(turns):
            plain.add(role, text, timestamp=1_700_000_000 + 60 * i)
            before = len(stamped)
            ahead.add(role, text, timestamp=1_700_000_000 + 60 * i)
            seals_ahead += stamped[before:]
            drawn += ahead.draw_open_page()

        def sealed(mem):
            return [(p.number, p.image_tier, mem._store.page_image(mem._conv, p.number))
                    for p in mem.pages() if p.sealed]

        assert drawn > len(turns) / 2 and len(sealed(ahead)) >= 3
        assert sealed(ahead) == sealed(plain)
    # The seals in the ahead memory's writes stamped a few lines each, not whole pages.
    assert seals_ahead and all(new < total / 2 for new, total in seals_ahead)


def test_pages_a_write_stores_are_viewed_below_their_tier_from_the_kept_pixels(monkeypatch):
    # The budget squeezes the pages a write moved first; their views below the tier are made from
    # the pixels the write had, and what is handed out is a copy, never the kept image itself.
    with _memory("qwen2.5-vl", "compact") as mem:
        newest = mem.pages()[-2]  # the newest sealed page (the last is the open one)
        segment = next(s for s in mem.context(None, 50_000).segments if s.kind == "page" and s.page == newest.number)
        assert Tier(segment.tier).side < Tier(newest.tier).side  # shown below the tier it is stored at
        monkeypatch.setattr(mem._store, "page_image", lambda *a: pytest.fail("the store was read"))
        image = segment.image_source.image(640)
        assert image.size == (640, 640)
        kept = segment.image_source.image(Tier(newest.tier).side)
        kept.paste(0, (0, 0, 10, 10))
        again = segment.image_source.image(Tier(newest.tier).side)
        assert np.asarray(again)[:10, :10].min() > 0  # the paste did not reach the kept pixels
