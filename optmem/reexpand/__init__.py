"""Re-expansion: a stored page image back to text, through one of several engines.

    engine = get_engine("ppocr-strips")
    view = page.at("tiny")
    text = engine.read(view.image, view.lines)

Engines (:mod:`.engines`):

- ``verbatim``: the archived source text (exact; the default when the archive keeps it).
- ``ppocr-strips``: PP-OCRv6's text *recogniser* (rapidocr wheel; onnxruntime, or OpenVINO when
  installed, :mod:`.backends`) on the line strips the renderer recorded (:mod:`.strips`). optmem
  drew every line itself, so text detection, the weak part of a full OCR pipeline on dense pages,
  is skipped; the recogniser reads the strips concurrently, one model run per strip and core.
- ``tesseract``: the ``tesseract`` binary, if installed, on the whole page (``--psm 6``).
- ``model``: any object with ``.ocr(image, mode) -> str`` (the DeepSeek-OCR codec).

Line strips are joined back into the page's source text layout (header, ``\\n``, body; turns
separated by a blank line) from the layout alone (:mod:`.lines`). Edit-distance scores of the
result live with the benchmarks, in :mod:`optmem.bench.scoring`.
"""

from .backends import OCR_BACKENDS, EngineUnavailable, RecognizerCache
from .engines import (
    ENGINE_NAMES,
    ModelOCREngine,
    PPOCRStripEngine,
    ReexpandEngine,
    TesseractEngine,
    VerbatimEngine,
    get_engine,
)
from .lines import join_lines

__all__ = [
    "ENGINE_NAMES", "OCR_BACKENDS", "EngineUnavailable", "ModelOCREngine", "PPOCRStripEngine", "RecognizerCache",
    "ReexpandEngine", "TesseractEngine", "VerbatimEngine", "get_engine", "join_lines",
]
