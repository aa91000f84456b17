import importlib.util
import json
import random
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from optmem.bench.scoring import cer
from optmem.reexpand import (
    ENGINE_NAMES,
    EngineUnavailable,
    ModelOCREngine,
    PPOCRStripEngine,
    RecognizerCache,
    ReexpandEngine,
    TesseractEngine,
    VerbatimEngine,
    backends,
    get_engine,
    join_lines,
)
from optmem.reexpand.backends import Recognizer
from optmem.reexpand.strips import cut_strip, resize_bilinear

REPO = Path(__file__).resolve().parents[1]

# Sentences of a chat about a database migration: numbers, identifiers and punctuation, the
# things re-expansion has to get right. Pages are filled by a seeded draw, so they are dense.
EN_SENTENCES = [
    "We plan to move the orders database from PostgreSQL 12 to 16 next month.",
    "Downtime has to stay under 30 minutes, and the primary holds about 1.2 TB.",
    "The audit_log_2019 table alone takes 400 GB, so archive it first.",
    "Logical replication does not copy sequences; run setval for all 240 of them.",
    "Watch pg_stat_subscription and alert when the lag passes 5 seconds.",
    "Finance exports a CSV report at 07:00 every morning, so switch at 02:00.",
    "Ticket OPS-4821 tracks the rollback plan; keep reverse replication for 48 hours.",
    "Compare the plans of the twenty most frequent queries on both versions.",
    "If connections reach 80% of max_connections, check the pool settings.",
    "The checklist goes out on Friday, with an owner and a time for every step.",
]
ZH_SENTENCES = [
    "我们计划下个月把订单数据库从 PostgreSQL 12 迁移到 16，停机时间不超过三十分钟。",
    "主库大约有 1.2 TB 数据，其中审计表就占了四百 GB，需要先归档。",
    "逻辑复制不会同步序列，切换前要为全部二百四十个序列执行 setval。",
    "财务部门每天早上七点导出报表，所以切换安排在凌晨两点。",
    "回滚方案的关键是保留反向复制，至少保持四十八小时。",
    "重点看复制延迟、每秒事务数、连接数和磁盘写入速度四类指标。",
    "所有指标都应该在迁移前一天建立基线，这样切换时才有对比依据。",
    "清单里记得写上每一步的负责人和预计耗时，还有异常时的联系人。",
]


def _turns(sentences, seed, n_turns, chars_per_turn, sep):
    rng = random.Random(seed)
    turns = []
    for t in range(n_turns):
        body = []
        while len(sep.join(body)) < chars_per_turn:
            body.append(rng.choice(sentences))
        turns.append(("user" if t % 2 == 0 else "assistant", sep.join(body)))
    return turns


@pytest.fixture(scope="module")
def en_page():
    from renderers import render_pages

    return render_pages(_turns(EN_SENTENCES, 0, 3, 1900, " "))[0]


@pytest.fixture(scope="module")
def zh_page():
    from renderers import render_pages

    return render_pages(_turns(ZH_SENTENCES, 1, 3, 500, ""))[0]


def _collapse(s):
    return " ".join(s.split())


def _no_space(s):
    return "".join(s.split())


# --- real OCR (a few seconds each) ------------------------------------------------------------

BACKENDS = [
    "onnxruntime",
    pytest.param("openvino", marks=pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                                      reason="the openvino extra is not installed")),
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tier", ["large", "tiny"])
def test_ppocr_strips_english_dense_page(en_page, tier, backend):
    assert len(en_page.source_text) > 4500  # a dense page, not a toy one
    view = en_page.at(tier)
    engine = PPOCRStripEngine(backend=backend)
    out = engine.read(view.image, view.lines)
    expected = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino (bf16)", "openvino (f32)")}[backend]
    assert engine.backend_in_use in expected
    # Measured 0.00 % (large) and 0.02 % (tiny); separators are rebuilt from the layout alone.
    assert cer(_collapse(en_page.source_text), _collapse(out)) < 0.002
    assert cer(en_page.source_text, out) < 0.004


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tier", ["large", "tiny"])
def test_ppocr_strips_chinese_page(zh_page, tier, backend):
    view = zh_page.at(tier)
    out = PPOCRStripEngine(backend=backend).read(view.image, view.lines)
    # PP-OCR drops or adds spaces around Latin words in CJK lines (2-3 % of an exact CER), so
    # compare without whitespace: measured 0.00-0.15 %.
    assert cer(_no_space(zh_page.source_text), _no_space(out)) < 0.01


@pytest.mark.slow
def test_ppocr_lines_side_scales_full_size_lines(en_page):
    view = en_page.at("tiny")
    eng = PPOCRStripEngine()
    head = en_page.lines[:4]
    assert eng.recognize_strips(view.image, head, lines_side=en_page.side) == \
        eng.recognize_strips(view.image, view.lines[:4])
    with pytest.raises(ValueError, match="does not fit"):
        eng.read(view.image, en_page.lines)


@pytest.mark.slow
def test_ppocr_threads_and_batches_do_not_change_the_text(en_page):
    # Strips run concurrently and in width order; the texts must still land on their own lines
    # and not depend on the thread count. Batched runs pad strips to a common width, which may
    # change a character, so they are held to the CER bound rather than equality.
    view = en_page.at("small")
    lines = view.lines[:12]
    one = PPOCRStripEngine(threads=1).recognize_strips(view.image, lines)
    two = PPOCRStripEngine(threads=2).recognize_strips(view.image, lines)
    assert one == two
    assert sum(map(len, one)) > 500
    batched = PPOCRStripEngine(threads=2, batch_size=4).recognize_strips(view.image, lines)
    assert cer("\n".join(one), "\n".join(batched)) < 0.01


# Run in a fresh interpreter: the OpenVINO binding's statics whose first initialisation
# deadlocked are set once per process, so only a process's first inferences can show the bug.
_CONCURRENT_FIRST_INFERENCES = r"""
import json, sys, threading
import numpy as np
from optmem.reexpand import PPOCRStripEngine

# Threads trade the GIL as often as possible: the deadlock needs one thread to take the GIL
# while another has dropped it inside the binding's first-use initialiser.
sys.setswitchinterval(1e-6)
backend, n = sys.argv[1], 8
engine = PPOCRStripEngine(backend=backend)
rec = engine.recognizer
barrier = threading.Barrier(n)
texts = [None] * n

def first_inference(k):
    strip = np.full((48, 64 + 16 * k), 255, dtype=np.uint8)
    barrier.wait()  # every thread calls the model at the same moment
    texts[k] = rec.read([strip])[0]

threads = [threading.Thread(target=first_inference, args=(k,)) for k in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"texts": texts, "cv2_imported": "cv2" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="the openvino extra is not installed")
def test_concurrent_first_inferences_on_fresh_engines_finish():
    backend = "openvino"  # the deadlocking binding; onnxruntime's concurrent runs are tested above
    # Before the loader ran the model once itself, 8 threads making their first OpenVINO
    # inference together deadlocked (InferRequest.infer -> __cxa_guard_acquire) in 2 to 9 of 10
    # fresh processes, depending on the machine's load; 10 runs catch it with a probability of
    # about 0.9 or more. A run takes about a second when nothing hangs.
    for run in range(10):
        try:
            proc = subprocess.run([sys.executable, "-c", _CONCURRENT_FIRST_INFERENCES, backend], cwd=REPO,
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {run}: 8 concurrent first inferences on a fresh {backend} engine hung for 120 s")
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["texts"] == [""] * 8  # blank strips read as nothing, on every thread
        assert out["cv2_imported"] is False  # strips are cut with numpy; OpenCV is not a dependency


@pytest.mark.slow
@pytest.mark.skipif(not TesseractEngine.available(), reason="tesseract binary not installed")
def test_tesseract_reads_a_light_page():
    from renderers import render_pages

    text = "Ticket OPS-4821 tracks the rollback plan for the orders database migration."
    page = render_pages([("user", text)])[0]
    view = page.at("base")
    out = TesseractEngine().read(view.image, view.lines)
    assert cer(_collapse(page.source_text), _collapse(out)) < 0.06  # measured 0.047: "·" read as "-"


# --- interface and registry -------------------------------------------------------------------

def test_registry_names_and_unknown_engine():
    assert set(ENGINE_NAMES) == {"verbatim", "ppocr-strips", "tesseract", "model"}
    with pytest.raises(ValueError, match="valid: verbatim, ppocr-strips, tesseract, model"):
        get_engine("easyocr")
    assert isinstance(get_engine("verbatim", text="x"), ReexpandEngine)
    assert get_engine("ppocr-strips").name == "ppocr-strips"


def test_verbatim_engine_returns_archive():
    eng = get_engine("verbatim", text="user · #1\nexact text 0xDEADBEEF")
    assert eng.read(Image.new("L", (512, 512), 255), []) == "user · #1\nexact text 0xDEADBEEF"
    with pytest.raises(TypeError):
        VerbatimEngine(b"bytes")  # type: ignore[arg-type]


def test_model_engine_infers_mode_from_side():
    seen = []

    class FakeCodec:
        def ocr(self, image, mode):
            seen.append((image.size, mode))
            return f"read at {mode}"

    eng = get_engine("model", model=FakeCodec())
    for side, mode in [(1280, "large"), (1024, "base"), (640, "small"), (512, "tiny")]:
        assert eng.read(Image.new("L", (side, side), 255), []) == f"read at {mode}"
    assert [m for _, m in seen] == ["large", "base", "small", "tiny"]
    with pytest.raises(ValueError, match="no DeepSeek-OCR mode has side 700px"):
        eng.read(Image.new("L", (700, 700), 255), [])
    with pytest.raises(ValueError, match="square"):
        eng.read(Image.new("L", (512, 640), 255), [])
    with pytest.raises(TypeError, match="ocr"):
        ModelOCREngine(object())


def test_tesseract_missing_binary_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert TesseractEngine.available() is False
    with pytest.raises(EngineUnavailable, match="no 'tesseract' binary on PATH"):
        get_engine("tesseract")


def test_ppocr_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        PPOCRStripEngine(batch_size=0)
    with pytest.raises(ValueError, match="pad"):
        PPOCRStripEngine(pad=2.0)
    with pytest.raises(ValueError, match="width_scale"):
        PPOCRStripEngine(width_scale=0.1)
    with pytest.raises(ValueError, match="threads"):
        PPOCRStripEngine(threads=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        PPOCRStripEngine(backend="tensorrt")


def test_openvino_backend_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(EngineUnavailable, match=r'pip install "optmem\[openvino\]"'):
        RecognizerCache().get("openvino")


# --- recogniser cache (no models: the builders are replaced) ---------------------------------

def _fake_builders(monkeypatch, openvino=True):
    """Backends whose "model" records the threads that ran it; returns the log of runs."""
    runs = []

    def fake(name):
        def build(_path):
            return Recognizer(lambda x: runs.append((name, threading.get_ident())) or np.zeros((len(x), 1), int),
                              ("blank", " "), name)
        return build

    monkeypatch.setattr(backends, "openvino_available", lambda: openvino)
    monkeypatch.setattr(backends, "_openvino_recognizer", fake("openvino"))
    monkeypatch.setattr(backends, "_onnxruntime_recognizer", fake("onnxruntime"))
    return runs


def test_cache_loads_nothing_until_used_and_shares_auto(monkeypatch):
    runs = _fake_builders(monkeypatch)
    cache = RecognizerCache()
    engine = PPOCRStripEngine(recognizers=cache)
    assert len(cache) == 0 and runs == []  # constructing an engine loads no model
    assert engine.backend_in_use == "openvino"
    assert cache.get("openvino") is cache.get("auto")  # auto shares what it resolved to
    assert cache.get("onnxruntime").backend == "onnxruntime"
    assert len(cache) == 2  # at most one model per runtime
    with pytest.raises(ValueError, match="unknown OCR backend 'gpu'"):
        cache.get("gpu")
    cache.clear()
    assert len(cache) == 0


def test_cache_runs_each_model_once_before_handing_it_out(monkeypatch):
    runs = _fake_builders(monkeypatch, openvino=False)
    cache = RecognizerCache()
    got, barrier = [], threading.Barrier(6)

    def first_use():
        barrier.wait()
        got.append(cache.get("auto"))

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(got) == 6 and all(rec is got[0] for rec in got)  # one load for six first callers
    assert got[0].backend == "onnxruntime"
    assert len(runs) == 1  # the warm-up run, made by the loader alone before anyone else ran it


# --- strips -------------------------------------------------------------------------------------

def test_resize_bilinear_samples_pixel_centres_and_repeats_edges():
    img = np.array([[0, 100, 200]], dtype=np.uint8)
    assert np.array_equal(resize_bilinear(img, 3, 1), img)
    # 2x: output centres fall at -0.25, 0.25, 0.75, ... source pixels; the ends repeat the edge.
    assert resize_bilinear(img, 6, 1).tolist() == [[0, 25, 75, 125, 175, 200]]
    assert resize_bilinear(img, 3, 4).tolist() == [[0, 100, 200]] * 4
    flat = np.full((7, 13), 180, dtype=np.uint8)
    assert (resize_bilinear(flat, 40, 48) == 180).all()


def test_cut_strip_pads_white_and_keeps_the_aspect():
    gray = np.full((100, 400), 255, dtype=np.uint8)
    gray[40:60, 50:250] = 0  # a 200 x 20 px black line
    strip = cut_strip(gray, (50, 40, 250, 60), height=48, pad=0.15, width_scale=1.0)
    assert strip.shape == (48, round(48 * (200 + 12) / (20 + 6)))
    assert strip[0].min() == 255 and strip[:, 0].min() == 255  # white margins
    assert strip[24, strip.shape[1] // 2] == 0
    assert cut_strip(gray, (50, 40, 51, 60), height=48, pad=0.15, width_scale=1.0) is None


# --- joining lines from the layout ------------------------------------------------------------

@dataclass(frozen=True)
class L:
    box: tuple
    span: tuple
    kind: str = "text"


def test_join_header_turns_wraps_and_newlines():
    lines = [
        L((20, 20, 120, 44), (0, 0, 0), "header"),
        L((130, 20, 1250, 44), (0, 0, 90)),      # full line, wrapped at a space (gap of 1)
        L((20, 44, 1255, 68), (0, 91, 180)),     # full line, wrapped mid-word (contiguous)
        L((20, 68, 400, 92), (0, 180, 200)),     # short: the source line ended here
        L((20, 92, 900, 116), (0, 201, 260)),    # next source line
        L((20, 140, 500, 164), (0, 262, 290)),   # after an empty source line (a skipped row)
        L((20, 170, 200, 194), (1, 0, 0), "header"),
        L((20, 194, 300, 218), (1, 0, 10)),
    ]
    # Header texts as the recogniser returns them: the spaces around "·" are lost.
    texts = ["user·#1", "a" * 60, "b" * 70, "c" * 20, "dd ee", "ff", "assistant· #2", "gg"]
    out = join_lines(lines, texts, right=1260)
    assert out == ("user · #1\n" + "a" * 60 + " " + "b" * 70 + "c" * 20 + "\ndd ee\n\nff"
                   "\n\nassistant · #2\ngg")


def test_join_code_gap_is_newline_and_turn_change_without_header():
    lines = [L((20, 20, 300, 44), (0, 0, 10), "code"), L((20, 44, 300, 68), (0, 11, 20), "code"),
             L((20, 68, 300, 92), (1, 0, 5))]
    assert join_lines(lines, ["x = 1", "y = 2", "next"]) == "x = 1\ny = 2\n\nnext"


def test_join_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 lines but 1 texts"):
        join_lines([L((0, 0, 1, 1), (0, 0, 1))] * 2, ["a"])
    assert join_lines([], []) == ""


def test_auto_backend_falls_back_to_onnxruntime_when_openvino_fails(monkeypatch):
    def broken(_path):
        raise RuntimeError("no plugin for this CPU")

    monkeypatch.setattr(backends, "openvino_available", lambda: True)
    monkeypatch.setattr(backends, "_openvino_recognizer", broken)
    cache = RecognizerCache()
    with pytest.warns(RuntimeWarning, match="OpenVINO failed"):
        assert cache.get("auto").backend == "onnxruntime"
    with pytest.raises(RuntimeError, match="no plugin"):
        cache.get("openvino")  # asked for by name: no silent fallback
