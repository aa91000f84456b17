"""The PP-OCRv6 text recogniser from the rapidocr wheel, on onnxruntime or OpenVINO.

A :class:`Recognizer` turns line strips (uint8, the model's input height) into text. A
:class:`RecognizerCache` loads each backend's model once, under a lock, and runs it once before
handing it out (see :func:`_warmed_up` for why). Nothing is imported or loaded before the first
:meth:`RecognizerCache.get`.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "OCR_BACKENDS", "REC_HEIGHT", "EngineUnavailable", "Recognizer", "RecognizerCache", "load_recognizer",
    "openvino_available", "usable_cores",
]

OCR_BACKENDS = ("auto", "onnxruntime", "openvino")
REC_HEIGHT = 48  # the recogniser's input height; strips are resized to it
_REC_MODEL_FILE = "PP-OCRv6_rec_small.onnx"  # the wheel's multilingual (Chinese + English/Latin) recogniser


class EngineUnavailable(RuntimeError):
    """The engine's model or binary is not installed on this machine."""


@dataclass(frozen=True)
class Recognizer:
    class_ids: Callable[[np.ndarray], np.ndarray]  # [B, 3, 48, W] float32 -> [B, T] best class per step
    charset: tuple[str, ...]  # CTC classes: blank, the model's characters, space
    backend: str  # "onnxruntime" or "openvino (<precision>)", for benchmark reports

    def read(self, strips: Sequence[np.ndarray]) -> list[str]:
        """The text of each strip; strips of one call are padded to the widest, so one strip per
        call gives texts that do not depend on their neighbours."""
        width = max(s.shape[1] for s in strips)
        # Zero after normalisation is what PaddleOCR pads with (mid grey), as in training.
        x = np.zeros((len(strips), 3, REC_HEIGHT, width), dtype=np.float32)
        for k, s in enumerate(strips):
            x[k, :, :, : s.shape[1]] = s.astype(np.float32) / 127.5 - 1.0
        return [_ctc_greedy(row, self.charset) for row in self.class_ids(x)]


def _ctc_greedy(ids: np.ndarray, charset: Sequence[str]) -> str:
    """Best-path CTC decoding: merge repeats, drop blanks (index 0); as rapidocr's CTCLabelDecode,
    without the per-step confidences it also computes (a second pass over B x T x 18,710)."""
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    keep &= ids != 0
    return "".join(charset[i] for i in ids[keep])


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _rec_model_path() -> Path:
    # Located without importing rapidocr: only its model file is used.
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a hard dependency
        raise EngineUnavailable("ppocr-strips needs the rapidocr package (its wheel ships the model)")
    model_path = Path(next(iter(spec.submodule_search_locations))) / "models" / _REC_MODEL_FILE
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


def _onnxruntime_recognizer(model_path: Path) -> Recognizer:
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

    return Recognizer(class_ids, charset, "onnxruntime")


def _openvino_recognizer(model_path: Path) -> Recognizer:
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
    cores = usable_cores()
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

    return Recognizer(class_ids, charset, f"openvino ({precision})")


def _build(backend: str) -> Recognizer:
    model_path = _rec_model_path()
    if backend == "openvino":
        return _warmed_up(_openvino_recognizer(model_path))
    return _warmed_up(_onnxruntime_recognizer(model_path))


def _warmed_up(rec: Recognizer) -> Recognizer:
    """``rec`` after one run on a blank strip, so that no caller makes the first run concurrently.

    OpenVINO's Python binding initialises function-local statics on its first inference, and one
    of those initialisers releases and retakes the GIL (pybind11's numpy API lookup). Two threads
    making their first inference at once deadlock: one holds the static's guard and waits for the
    GIL, the other holds the GIL and waits for the guard (seen as both pool threads stuck in
    ``InferRequest.infer`` -> ``__cxa_guard_acquire``). Statics are set once per process, so one
    single-threaded run before any concurrent use closes the window for good. onnxruntime gets
    the same run, which also moves its first-run allocations out of the first page's timing.
    """
    rec.class_ids(np.zeros((1, 3, REC_HEIGHT, 4 * REC_HEIGHT), dtype=np.float32))
    return rec


class RecognizerCache:
    """Recognisers by backend name, each loaded and warmed up once.

    Bounded by construction: one entry per name in :data:`OCR_BACKENDS`, and ``auto`` shares the
    entry of the backend it resolved to, so at most two models are held. Loading happens under
    the cache's lock, so engines read by several threads never compile a model twice nor make its
    first run concurrently. ``auto`` takes OpenVINO when it is installed (the ``openvino`` extra),
    else onnxruntime, and falls back to onnxruntime with a warning when OpenVINO cannot run here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, Recognizer] = {}

    def get(self, backend: str = "auto") -> Recognizer:
        if backend not in OCR_BACKENDS:
            raise ValueError(f"unknown OCR backend {backend!r}; expected one of {OCR_BACKENDS}")
        with self._lock:
            if backend not in self._loaded:
                self._loaded[backend] = self._resolve_auto() if backend == "auto" else self._build_once(backend)
            return self._loaded[backend]

    def _build_once(self, backend: str) -> Recognizer:  # with the lock held
        if backend not in self._loaded:
            self._loaded[backend] = _build(backend)
        return self._loaded[backend]

    def _resolve_auto(self) -> Recognizer:  # with the lock held
        if openvino_available():
            try:
                return self._build_once("openvino")
            except (EngineUnavailable, RuntimeError) as e:  # an OpenVINO build this CPU cannot run
                warnings.warn(f"ppocr-strips: OpenVINO failed ({e}); using onnxruntime", RuntimeWarning, stacklevel=3)
        return self._build_once("onnxruntime")

    def __len__(self) -> int:
        """How many distinct models are loaded."""
        with self._lock:
            return len({id(rec) for rec in self._loaded.values()})

    def clear(self) -> None:
        """Drop the loaded models (the next :meth:`get` loads again)."""
        with self._lock:
            self._loaded.clear()


_SHARED = RecognizerCache()  # empty until first use: models load on the first page read


def load_recognizer(backend: str = "auto") -> Recognizer:
    """The process-wide recogniser for ``backend`` (see :class:`RecognizerCache`)."""
    return _SHARED.get(backend)
