"""Re-expansion: a stored page image back to text, through one of several engines.

    engine = get_engine("ppocr-strips")
    view = page.at("tiny")
    text = engine.read(view.image, view.lines)

Engines:

- ``verbatim``: the archived source text (exact; the default when the archive keeps it).
- ``ppocr-strips``: PP-OCRv6's text *recogniser* (rapidocr wheel; onnxruntime, or OpenVINO when
  installed) on the line strips the renderer recorded. optmem drew every line itself, so text
  detection, the weak part of a full OCR pipeline on dense pages, is skipped; the recogniser reads
  the strips concurrently, one model run per strip and core.
- ``tesseract``: the ``tesseract`` binary, if installed, on the whole page (``--psm 6``).
- ``model``: any object with ``.ocr(image, mode) -> str`` (the DeepSeek-OCR codec).

Line strips are joined back into the page's source text layout (header, ``\\n``, body; turns
separated by a blank line) from the layout alone: span continuity says whether a wrap split a word,
and vertical gaps and line fill say where source newlines were.
"""

from __future__ import annotations

import functools
import os
import queue
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from optmem.modes import mode_for_side

if TYPE_CHECKING:  # the renderer's Line; engines only read .box, .span and .kind
    from renderers import Line

__all__ = [
    "ENGINE_NAMES", "EngineUnavailable", "ModelOCREngine", "PPOCRStripEngine", "ReexpandEngine",
    "TesseractEngine", "VerbatimEngine", "cer", "get_engine", "join_lines", "lcs_length", "levenshtein",
    "precision",
]

RECOGNISED_KINDS = frozenset({"header", "text", "code"})
_NEWLINE_MARGIN = 1.15
_HEADER_SEP = re.compile(r"\s*·\s*")


class EngineUnavailable(RuntimeError):
    """The engine's model or binary is not installed on this machine."""


@runtime_checkable
class ReexpandEngine(Protocol):
    name: str

    def read(self, image: Image.Image, lines: Sequence[Line]) -> str: ...


# --------------------------------------------------------------------------------------------
# Joining recognised lines back into text (layout knowledge only)
# --------------------------------------------------------------------------------------------

def _row_pitch(lines: Sequence[Line]) -> float:
    """Typical distance between consecutive rows: the most common positive step of box tops."""
    steps = [b.box[1] - a.box[1] for a, b in zip(lines, lines[1:]) if b.box[1] > a.box[1]]
    if not steps:
        return float(max((ln.box[3] - ln.box[1] for ln in lines), default=1)) or 1.0
    return float(np.median(steps))


def _line_separator(prev: Line, nxt: Line, nxt_text: str, pitch: float, right: int) -> str:
    """What the source had between two consecutive text lines of the same turn."""
    if nxt.span[1] == prev.span[2]:
        return ""  # the wrap split a word (or CJK run): nothing was skipped between the spans
    rows = round((nxt.box[1] - prev.box[1]) / pitch) if pitch > 0 else 1
    if rows >= 2:
        return "\n" * rows  # empty source lines take a row each and are not recorded as Lines
    if prev.kind == "code" or nxt.kind == "code":
        return "\n"  # code wraps never skip characters, so a gap is a newline
    # Prose wraps at spaces only when the next word did not fit: if it would have fit on the
    # previous line with room to spare, that line ended at a source newline instead. The word's
    # width is estimated from the next line's mean advance; the 15 % margin keeps wide words
    # (max_connections) from passing for newlines.
    first_word = nxt_text.split(" ", 1)[0] if nxt_text else ""
    char_w = (nxt.box[2] - nxt.box[0]) / max(1, len(nxt_text))
    room = right - prev.box[2]
    if first_word and room > _NEWLINE_MARGIN * char_w * (len(first_word) + 1):
        return "\n"
    return " "


def join_lines(lines: Sequence[Line], texts: Sequence[str], *, right: int | None = None) -> str:
    """Recognised line texts joined the way the renderer's ``page.source_text`` is laid out.

    Turn segments are separated by a blank line; a header is followed by a newline; within a
    segment, contiguous spans join without a space, gaps become a space or newline(s).
    ``right`` is the text column's right edge in the lines' coordinates (default: the rightmost
    box edge); engines pass ``side - left margin``. The separators are exact when the recognised
    texts are, except for runs of spaces (one space), blank lines at a segment's start or end and
    a source newline right where the line was full anyway, which leave no trace in the layout.
    """
    if len(lines) != len(texts):
        raise ValueError(f"join_lines: {len(lines)} lines but {len(texts)} texts")
    if not lines:
        return ""
    pitch = _row_pitch(lines)
    if right is None:
        right = max(ln.box[2] for ln in lines)
    out: list[str] = []
    prev: Line | None = None
    for line, text in zip(lines, texts):
        text = text.strip()
        if line.kind == "header":
            # The renderer joins header fields with " · "; the recogniser drops the thin spaces.
            text = _HEADER_SEP.sub(" · ", text)
        if prev is None:
            pass
        elif line.kind == "header" or line.span[0] != prev.span[0]:
            out.append("\n\n")  # a new turn segment
        elif prev.kind == "header":
            out.append("\n")
        else:
            out.append(_line_separator(prev, line, text, pitch, right))
        out.append(text)
        prev = line
    return "".join(out)


def _column_right(lines: Sequence[Line], side: int) -> int:
    # Pages have equal margins, so the column's right edge mirrors the leftmost line start.
    return side - min((ln.box[0] for ln in lines), default=0)


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------

class VerbatimEngine:
    """The archived source text: exact by construction."""

    name: ClassVar[str] = "verbatim"

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"VerbatimEngine: text must be str, got {type(text).__name__}")
        self.text = text

    def read(self, image: Image.Image | None = None, lines: Sequence[Line] = ()) -> str:
        return self.text


def _check_lines_fit(image: Image.Image, lines: Sequence[Line]) -> None:
    w, h = image.size
    for i, ln in enumerate(lines):
        x0, y0, x1, y1 = ln.box
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h or x1 < x0 or y1 < y0:
            raise ValueError(
                f"lines[{i}].box={ln.box} does not fit the {w}x{h} image: pass the lines scaled to the image "
                "(page.at(tier).lines) or lines_side= the side they were recorded at"
            )


def _scaled_boxes(image: Image.Image, lines: Sequence[Line], lines_side: int | None) -> list[tuple[int, ...]]:
    if lines_side is None:
        _check_lines_fit(image, lines)
        return [tuple(ln.box) for ln in lines]
    if lines_side <= 0:
        raise ValueError(f"lines_side must be positive, got {lines_side}")
    f = image.size[0] / lines_side
    boxes = []
    for ln in lines:
        x0, y0, x1, y1 = ln.box
        boxes.append((int(np.floor(x0 * f)), int(np.floor(y0 * f)), int(np.ceil(x1 * f)), int(np.ceil(y1 * f))))
    return boxes


_REC_MODEL_FILE = "PP-OCRv6_rec_small.onnx"  # the wheel's multilingual (Chinese + English/Latin) recogniser
_REC_HEIGHT = 48


@dataclass(frozen=True)
class _Recognizer:
    class_ids: Callable[[np.ndarray], np.ndarray]  # [B, 3, 48, W] float32 -> [B, T] best class per step
    charset: tuple[str, ...]  # CTC classes: blank, the model's characters, space
    backend: str  # "onnxruntime" or "openvino (<precision>)", for benchmark reports


OCR_BACKENDS = ("auto", "onnxruntime", "openvino")


def _session_options() -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # One thread per run: the engine runs strips concurrently instead, which scales better than
    # splitting one strip's small convolutions across cores. Spinning threads burn CPU that
    # concurrent runs (and other jobs on a shared machine) need.
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.enable_cpu_mem_arena = True  # reuse buffers across the strips of a page
    return so


def _rec_model_path() -> Path:
    try:
        import rapidocr
    except ImportError as e:  # pragma: no cover - rapidocr is a hard dependency
        raise EngineUnavailable(f"ppocr-strips needs the rapidocr package: {e}") from e
    model_path = Path(rapidocr.__file__).parent / "models" / _REC_MODEL_FILE
    if not model_path.is_file():
        raise EngineUnavailable(f"ppocr-strips: {model_path} is missing from the rapidocr wheel")
    return model_path


def _charset(table: str | None, classes: int, model_name: str) -> tuple[str, ...]:
    """The CTC classes framed as rapidocr's CTCLabelDecode frames them (blank first, space last)."""
    if table is None:
        raise EngineUnavailable(f"ppocr-strips: {model_name} has no 'character' table in its metadata")
    charset = ("blank", *table.splitlines(), " ")
    if classes != len(charset):
        raise EngineUnavailable(f"ppocr-strips: {model_name} has {classes} classes but a "
                                f"{len(charset)}-entry character table")
    return charset


def _openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


@functools.lru_cache(maxsize=2)
def _load_recognizer(backend: str = "auto") -> _Recognizer:
    """The rapidocr wheel's PP-OCRv6 rec model, loaded once per process and backend.

    ``auto`` takes OpenVINO when it is installed (the ``openvino`` extra), else onnxruntime.
    """
    if backend not in OCR_BACKENDS:
        raise ValueError(f"unknown OCR backend {backend!r}; expected one of {OCR_BACKENDS}")
    model_path = _rec_model_path()
    if backend == "openvino":
        return _openvino_recognizer(model_path)
    if backend == "auto" and _openvino_available():
        try:
            return _openvino_recognizer(model_path)
        except (EngineUnavailable, RuntimeError) as e:  # an OpenVINO build this CPU cannot run
            warnings.warn(f"ppocr-strips: OpenVINO failed ({e}); using onnxruntime", RuntimeWarning, stacklevel=2)
    return _onnxruntime_recognizer(model_path)


def _onnxruntime_recognizer(model_path: Path) -> _Recognizer:
    """The session is built here rather than through rapidocr's TextRecognizer so its options are
    ours (rapidocr leaves the thread count to onnxruntime's default, whose spinning threads cost
    ~20 % more CPU on a loaded machine)."""
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - onnxruntime is a hard dependency
        raise EngineUnavailable(f"ppocr-strips needs the onnxruntime package: {e}") from e
    session = ort.InferenceSession(str(model_path), sess_options=_session_options(),
                                   providers=["CPUExecutionProvider"])
    charset = _charset(session.get_modelmeta().custom_metadata_map.get("character"),
                       session.get_outputs()[0].shape[-1], model_path.name)
    input_name = session.get_inputs()[0].name

    def class_ids(x: np.ndarray) -> np.ndarray:
        # Greedy CTC needs only the best class per step: argmax of the softmax output.
        return session.run(None, {input_name: x})[0].argmax(axis=2)

    return _Recognizer(class_ids, charset, "onnxruntime")


def _openvino_recognizer(model_path: Path) -> _Recognizer:
    """The same ONNX file compiled by OpenVINO. On CPUs with bfloat16 units (AVX512-BF16, AMX)
    OpenVINO runs the convolutions in bf16, about 1.5x faster than onnxruntime's fp32 at the same
    CER on our pages (benchmarks/results/reexpand_speed.md); elsewhere it runs fp32."""
    try:
        import openvino as ov
    except ImportError as e:
        raise EngineUnavailable(f'ppocr-strips: the openvino backend needs `pip install "optmem[openvino]"` ({e})') from e
    core = ov.Core()
    model = core.read_model(str(model_path))
    try:
        table = str(model.get_rt_info(["framework", "character"]).astype(str))
    except RuntimeError:
        table = None
    charset = _charset(table, model.outputs[0].get_partial_shape()[-1].get_length(), model_path.name)
    cores = _usable_cores()
    # One stream per core and one thread per stream: strips run concurrently, as with onnxruntime.
    compiled = core.compile_model(model, "CPU", {"NUM_STREAMS": cores, "INFERENCE_NUM_THREADS": cores})
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "bf16" or "f32"
    idle: queue.SimpleQueue = queue.SimpleQueue()  # infer requests are not thread-safe: one per caller

    def class_ids(x: np.ndarray) -> np.ndarray:
        try:
            request = idle.get_nowait()
        except queue.Empty:
            request = compiled.create_infer_request()
        try:
            return request.infer([x])[0].argmax(axis=2)  # the output is the request's own buffer
        finally:
            idle.put(request)

    return _Recognizer(class_ids, charset, f"openvino ({precision})")


def _ctc_greedy(ids: np.ndarray, charset: Sequence[str]) -> str:
    """Best-path CTC decoding: merge repeats, drop blanks (index 0); as rapidocr's CTCLabelDecode,
    without the per-step confidences it also computes (a second pass over B x T x 18,710)."""
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    keep &= ids != 0
    return "".join(charset[i] for i in ids[keep])


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class PPOCRStripEngine:
    """PP-OCRv6 recogniser on the renderer's line strips; no text detection.

    Strips run one per model call (``batch_size=1``: no padding, and a strip's text does not
    depend on its neighbours), ``threads`` calls at a time, widest first so the cores finish
    together. ``threads`` defaults to the cores this process may use. ``backend``: ``auto``
    (OpenVINO when the ``openvino`` extra is installed, else onnxruntime), ``onnxruntime`` or
    ``openvino``.
    """

    name: ClassVar[str] = "ppocr-strips"

    def __init__(self, *, batch_size: int = 1, pad: float = 0.15, width_scale: float = 1.0,
                 threads: int | None = None, backend: str = "auto"):
        if backend not in OCR_BACKENDS:
            raise ValueError(f"backend must be one of {OCR_BACKENDS}, got {backend!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= pad <= 1.0:
            raise ValueError(f"pad must be in [0, 1] (a fraction of the strip height), got {pad}")
        if not 0.3 <= width_scale <= 2.0:
            raise ValueError(f"width_scale must be in [0.3, 2.0], got {width_scale}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 (or None for the usable cores), got {threads}")
        self.batch_size = batch_size
        self.pad = pad
        self.width_scale = width_scale
        self.threads = threads or _usable_cores()
        self.backend = backend

    @property
    def backend_in_use(self) -> str:
        """The backend ``auto`` resolved to, with its precision (loads the model)."""
        return _load_recognizer(self.backend).backend

    def _strip(self, gray: np.ndarray, box: tuple[int, ...]) -> np.ndarray | None:
        import cv2

        x0, y0, x1, y1 = box
        crop = gray[y0:y1, x0:x1]
        h, w = crop.shape
        if h < 2 or w < 2:
            return None
        # White margins instead of a larger crop: a wider crop would take in the neighbouring
        # rows' ascenders and descenders, which touch this strip's ink box.
        p = max(1, round(self.pad * h))
        crop = cv2.copyMakeBorder(crop, p, p, 2 * p, 2 * p, cv2.BORDER_CONSTANT, value=255)
        h, w = crop.shape
        width = max(_REC_HEIGHT // 4, round(_REC_HEIGHT * w / h * self.width_scale))
        return cv2.resize(crop, (width, _REC_HEIGHT), interpolation=cv2.INTER_LINEAR)

    def _run_batch(self, rec: _Recognizer, chunk: list[tuple[int, np.ndarray]]) -> list[str]:
        width = max(s.shape[1] for _, s in chunk)
        # Zero after normalisation is what PaddleOCR pads with (mid grey), as in training.
        x = np.zeros((len(chunk), 3, _REC_HEIGHT, width), dtype=np.float32)
        for k, (_, s) in enumerate(chunk):
            x[k, :, :, : s.shape[1]] = s.astype(np.float32) / 127.5 - 1.0
        ids = rec.class_ids(x)
        return [_ctc_greedy(row, rec.charset) for row in ids]

    def recognize_strips(self, image: Image.Image, lines: Sequence[Line], *,
                         lines_side: int | None = None) -> list[str]:
        """Recognised text per line ("" for lines of other kinds or with empty boxes)."""
        rec = _load_recognizer(self.backend)
        gray = np.asarray(image.convert("L"))
        boxes = _scaled_boxes(image, lines, lines_side)
        strips: list[tuple[int, np.ndarray]] = []
        for i, (ln, box) in enumerate(zip(lines, boxes)):
            if ln.kind in RECOGNISED_KINDS:
                s = self._strip(gray, box)
                if s is not None:
                    strips.append((i, s))
        # Widest first: similar widths per batch (little padding), and the long runs start early
        # so the threads finish together. Ties keep line order, so batches are deterministic.
        strips.sort(key=lambda t: -t[1].shape[1])
        chunks = [strips[b:b + self.batch_size] for b in range(0, len(strips), self.batch_size)]
        texts = [""] * len(lines)
        if self.threads == 1 or len(chunks) < 2:
            results = [self._run_batch(rec, c) for c in chunks]
        else:
            # onnxruntime releases the GIL and its sessions may be run concurrently.
            with ThreadPoolExecutor(max_workers=min(self.threads, len(chunks))) as pool:
                results = list(pool.map(lambda c: self._run_batch(rec, c), chunks))
        for chunk, chunk_texts in zip(chunks, results):
            for (i, _), text in zip(chunk, chunk_texts):
                texts[i] = text
        return texts

    def read(self, image: Image.Image, lines: Sequence[Line], *, lines_side: int | None = None) -> str:
        texts = self.recognize_strips(image, lines, lines_side=lines_side)
        return join_lines(lines, texts, right=_column_right(lines, lines_side or image.size[0]))


class TesseractEngine:
    """The tesseract binary on the whole page, ``--psm 6`` (one uniform block; psm 3 splits CJK
    pages into columns). Pages below 1024 px are upscaled 2x first: without it tesseract loses
    most of a 512-px page."""

    name: ClassVar[str] = "tesseract"
    UPSCALE_BELOW = 1024

    def __init__(self, *, languages: str | None = None, binary: str = "tesseract", timeout_s: float = 120.0):
        path = shutil.which(binary)
        if path is None:
            raise EngineUnavailable(
                f"tesseract engine: no '{binary}' binary on PATH (install tesseract-ocr, plus "
                "tesseract-ocr-chi-sim for Chinese)"
            )
        self.binary = path
        self.timeout_s = timeout_s
        self.languages = languages or self._default_languages()

    @classmethod
    def available(cls, binary: str = "tesseract") -> bool:
        return shutil.which(binary) is not None

    def _default_languages(self) -> str:
        out = subprocess.run([self.binary, "--list-langs"], capture_output=True, text=True, timeout=self.timeout_s)
        have = set(out.stdout.split())
        langs = [lang for lang in ("eng", "chi_sim") if lang in have]
        if not langs:
            raise EngineUnavailable(f"tesseract has neither eng nor chi_sim data (has: {sorted(have)})")
        return "+".join(langs)

    def read(self, image: Image.Image, lines: Sequence[Line] = ()) -> str:
        img = image.convert("L")
        if img.size[0] < self.UPSCALE_BELOW:
            img = img.resize((img.size[0] * 2, img.size[1] * 2), Image.Resampling.BICUBIC)
        with tempfile.TemporaryDirectory(prefix="optmem-tess-") as tmp:
            src = Path(tmp) / "page.png"
            img.save(src)
            proc = subprocess.run(
                [self.binary, str(src), "stdout", "--psm", "6", "-l", self.languages],
                capture_output=True, timeout=self.timeout_s,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"tesseract failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
        text = proc.stdout.decode("utf-8", errors="replace")
        return "\n".join(ln.rstrip() for ln in text.strip("\n\f ").splitlines())


class ModelOCREngine:
    """Wraps an OCR model exposing ``.ocr(image, mode) -> str``; the mode follows the image's side."""

    name: ClassVar[str] = "model"

    def __init__(self, model: Any):
        if not callable(getattr(model, "ocr", None)):
            raise TypeError(f"ModelOCREngine: {type(model).__name__} has no callable .ocr(image, mode)")
        self.model = model

    def read(self, image: Image.Image, lines: Sequence[Line] = ()) -> str:
        if image.size[0] != image.size[1]:
            raise ValueError(f"ModelOCREngine reads square pages, got {image.size[0]}x{image.size[1]}")
        return self.model.ocr(image, mode_for_side(image.size[0]))


_REGISTRY: dict[str, Callable[..., ReexpandEngine]] = {
    VerbatimEngine.name: VerbatimEngine,
    PPOCRStripEngine.name: PPOCRStripEngine,
    TesseractEngine.name: TesseractEngine,
    ModelOCREngine.name: ModelOCREngine,
}
ENGINE_NAMES = tuple(_REGISTRY)


def get_engine(name: str, **kw: Any) -> ReexpandEngine:
    """An engine by name; keyword arguments go to its constructor (``text=`` for verbatim,
    ``model=`` for model)."""
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown re-expansion engine {name!r}; valid: {', '.join(ENGINE_NAMES)}") from None
    return factory(**kw)


# --------------------------------------------------------------------------------------------
# Scoring (edit-distance based; bit-parallel so a 4,000-character page scores in milliseconds)
# --------------------------------------------------------------------------------------------

def _trim_common(a: str, b: str) -> tuple[str, str]:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    a, b = a[i:], b[i:]
    j = 0
    n = min(len(a), len(b))
    while j < n and a[-1 - j] == b[-1 - j]:
        j += 1
    return (a[: len(a) - j], b[: len(b) - j]) if j else (a, b)


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance (Myers/Hyyrö bit-parallel: one pass over ``a`` with big-int bit
    vectors as long as ``b``)."""
    a, b = _trim_common(a, b)
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence (Hyyrö's bit-vector algorithm)."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return 0
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    v = mask
    for ch in a:
        u = v & peq.get(ch, 0)
        v = ((v + u) | (v - u)) & mask
    return m - v.bit_count()


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: edit distance / reference length (0.0 for two empty strings, 1.0 for
    any text against an empty reference)."""
    if not reference:
        return 0.0 if not hypothesis else 1.0
    return levenshtein(reference, hypothesis) / len(reference)


def precision(reference: str, hypothesis: str) -> float:
    """Share of the hypothesis' characters that are right: LCS / hypothesis length (1.0 when empty).
    Low precision means the reader invents text; low 1 - CER with high precision means it drops text."""
    if not hypothesis:
        return 1.0
    return lcs_length(reference, hypothesis) / len(hypothesis)
