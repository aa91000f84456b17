"""optmem.image_jobs: the images an export makes are made on worker threads, the rest on the caller's."""

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from optmem.image_jobs import ImageJob, load_pngs


@dataclass
class _Segment:
    image_source: object
    side: int = 640
    crop: int = 0

    def load_png(self) -> bytes:
        return self.image_source.png(self.side, self.crop)


class _Made:
    """A source whose image is made by a job, recording the threads each part ran on."""

    def __init__(self, data: bytes):
        self.data, self.threads, self.kept = data, {}, None

    def png_job(self, side, crop):
        def make():
            self.threads["make"] = threading.current_thread().name
            return self.data

        def finish(made):
            self.threads["finish"] = threading.current_thread().name
            self.kept = made
            return made

        return ImageJob(make, finish)


class _Drawn:
    def __init__(self, data: bytes):
        self.data, self.thread = data, None

    def png(self, side, crop):
        self.thread = threading.current_thread().name
        return self.data


class _Kept:
    def png_job(self, side, crop):
        return b"kept"


def test_jobs_run_on_the_pool_while_this_thread_draws_and_finish_here():
    made, drawn = _Made(b"made"), _Drawn(b"drawn")
    out = load_pngs([_Segment(made), _Segment(_Kept()), _Segment(drawn)])
    here = threading.current_thread().name
    assert out == [b"made", b"kept", b"drawn"]
    assert made.threads["make"].startswith("optmem-worker") and made.threads["finish"] == here
    assert drawn.thread == here and made.kept == b"made"


def test_with_nothing_else_to_load_this_thread_makes_one_image_itself():
    first, second = _Made(b"1"), _Made(b"2")
    assert load_pngs([_Segment(first), _Segment(second)]) == [b"1", b"2"]
    threads = {first.threads["make"], second.threads["make"]}
    assert threading.current_thread().name in threads and any(t.startswith("optmem-worker") for t in threads)


def test_a_failing_job_raises_to_the_caller():
    class Broken:
        def png_job(self, side, crop):
            return ImageJob(lambda: 1 / 0, lambda made: made)

    with pytest.raises(ZeroDivisionError):
        load_pngs([_Segment(Broken()), _Segment(_Drawn(b"x"))])


def test_an_export_sends_the_bytes_each_page_would_load_and_makes_them_once():
    # qwen2.5-vl is shown pages below their tier at this budget: their bytes are made by jobs.
    from optmem import MemoryConfig, OpticalMemory
    from optmem.demo import build_conversation
    from optmem.exports import _IMAGE_TEXTS

    cfg = MemoryConfig.model_validate({"model": "qwen2.5-vl", "retrieval": {"enabled": False},
                                       "reexpand": {"text_when_it_fits": False}})
    with OpticalMemory.open(":memory:", "c", cfg) as mem:
        turns, _ = build_conversation(60, seed=3)
        for i, (role, text) in enumerate(turns):
            mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
        ctx = mem.context(None, 50_000)
        pages = [s for s in ctx.segments if s.kind == "page"]
        jobs = [s for s in pages if isinstance(getattr(s.image_source, "png_job", lambda *a: b"")(s.side, s.crop),
                                                 ImageJob)]
        assert jobs  # some images are made for this export
        urls = [p["image_url"]["url"] for m in ctx.to_messages() for p in m["content"] if p["type"] == "image_url"]
        assert urls == [_IMAGE_TEXTS.text(s.load_png(), "image/png" if s.load_png()[:4] == b"\x89PNG" else "image/webp")
                        for s in pages]
        assert not [s for s in pages if isinstance(s.image_source.png_job(s.side, s.crop), ImageJob)]  # all kept
        decoded = [np.asarray(s.load_image()) for s in jobs]
        assert all(d.shape == (s.side, s.side) for d, s in zip(decoded, jobs))
