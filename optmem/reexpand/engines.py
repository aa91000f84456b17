"""Re-expansion engines: a page image (and the line boxes the renderer recorded) back to text.

Each engine has a ``name`` and ``read(image, lines) -> str``; :func:`get_engine` builds one by
name. Constructing an engine loads nothing: models load on the first read (and are shared by all
engines of a process, see :mod:`optmem.reexpand.backends`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from optmem.modes import mode_for_side

from .backends import OCR_BACKENDS, REC_HEIGHT, EngineUnavailable, RecognizerCache, load_recognizer, usable_cores
from .lines import column_right, join_lines
from .strips import cut_strip, scaled_boxes

if TYPE_CHECKING:  # the renderer's Line; engines only read .box, .span and .kind
    from renderers import Line

    from .backends import Recognizer

__all__ = [
    "ENGINE_NAMES", "EngineUnavailable", "ModelOCREngine", "PPOCRStripEngine", "ReexpandEngine",
    "TesseractEngine", "VerbatimEngine", "get_engine",
]

RECOGNISED_KINDS = frozenset({"header", "text", "code"})


@runtime_checkable
class ReexpandEngine(Protocol):
    name: str

    def read(self, image: Image.Image, lines: Sequence[Line]) -> str: ...


class VerbatimEngine:
    """The archived source text: exact by construction."""

    name: ClassVar[str] = "verbatim"

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"VerbatimEngine: text must be str, got {type(text).__name__}")
        self.text = text

    def read(self, image: Image.Image | None = None, lines: Sequence[Line] = ()) -> str:
        return self.text


class PPOCRStripEngine:
    """PP-OCRv6 recogniser on the renderer's line strips; no text detection.

    Strips run one per model call (``batch_size=1``: no padding, and a strip's text does not
    depend on its neighbours), ``threads`` calls at a time, widest first so the cores finish
    together. ``threads`` defaults to the cores this process may use. ``backend``: ``auto``
    (OpenVINO when the ``openvino`` extra is installed, else onnxruntime), ``onnxruntime`` or
    ``openvino``. ``recognizers``: where the model is loaded and kept (default: the process-wide
    cache, so engines built per read share one model).
    """

    name: ClassVar[str] = "ppocr-strips"

    def __init__(self, *, batch_size: int = 1, pad: float = 0.15, width_scale: float = 1.0,
                 threads: int | None = None, backend: str = "auto", recognizers: RecognizerCache | None = None):
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
        self.threads = threads or usable_cores()
        self.backend = backend
        self._recognizers = recognizers

    @property
    def recognizer(self) -> Recognizer:
        """The loaded recogniser (loads the model on first use)."""
        if self._recognizers is None:
            return load_recognizer(self.backend)
        return self._recognizers.get(self.backend)

    @property
    def backend_in_use(self) -> str:
        """The backend ``auto`` resolved to, with its precision (loads the model)."""
        return self.recognizer.backend

    def recognize_strips(self, image: Image.Image, lines: Sequence[Line], *,
                         lines_side: int | None = None) -> list[str]:
        """Recognised text per line ("" for lines of other kinds or with empty boxes)."""
        rec = self.recognizer
        gray = np.asarray(image.convert("L"))
        boxes = scaled_boxes(image, lines, lines_side)
        strips: list[tuple[int, np.ndarray]] = []
        for i, (ln, box) in enumerate(zip(lines, boxes)):
            if ln.kind in RECOGNISED_KINDS:
                s = cut_strip(gray, box, height=REC_HEIGHT, pad=self.pad, width_scale=self.width_scale)
                if s is not None:
                    strips.append((i, s))
        # Widest first: similar widths per batch (little padding), and the long runs start early
        # so the threads finish together. Ties keep line order, so batches are deterministic.
        strips.sort(key=lambda t: -t[1].shape[1])
        chunks = [strips[b:b + self.batch_size] for b in range(0, len(strips), self.batch_size)]

        def read_chunk(chunk: list[tuple[int, np.ndarray]]) -> list[str]:
            return rec.read([s for _, s in chunk])

        texts = [""] * len(lines)
        if self.threads == 1 or len(chunks) < 2:
            results = [read_chunk(c) for c in chunks]
        else:
            # Both runtimes release the GIL and may be run concurrently once warmed up.
            with ThreadPoolExecutor(max_workers=min(self.threads, len(chunks))) as pool:
                results = list(pool.map(read_chunk, chunks))
        for chunk, chunk_texts in zip(chunks, results):
            for (i, _), text in zip(chunk, chunk_texts):
                texts[i] = text
        return texts

    def read(self, image: Image.Image, lines: Sequence[Line], *, lines_side: int | None = None) -> str:
        texts = self.recognize_strips(image, lines, lines_side=lines_side)
        return join_lines(lines, texts, right=column_right(lines, lines_side or image.size[0]))


class TesseractEngine:
    """The tesseract binary on the whole page, ``--psm 6`` (one uniform block; psm 3 splits CJK
    pages into columns). Pages below 1024 px are upscaled 2x first: without it tesseract loses
    most of a 512-px page. ``languages`` defaults to whichever of eng and chi_sim are installed,
    asked of the binary on the first read."""

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
        self._languages = languages

    @classmethod
    def available(cls, binary: str = "tesseract") -> bool:
        return shutil.which(binary) is not None

    @property
    def languages(self) -> str:
        if self._languages is None:
            out = subprocess.run([self.binary, "--list-langs"], capture_output=True, text=True, timeout=self.timeout_s)
            have = set(out.stdout.split())
            langs = [lang for lang in ("eng", "chi_sim") if lang in have]
            if not langs:
                raise EngineUnavailable(f"tesseract has neither eng nor chi_sim data (has: {sorted(have)})")
            self._languages = "+".join(langs)
        return self._languages

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
    ``model=`` for model). A new, unloaded engine each call: the models behind them are shared."""
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown re-expansion engine {name!r}; valid: {', '.join(ENGINE_NAMES)}") from None
    return factory(**kw)
