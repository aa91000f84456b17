"""Exact cosine search over unit vectors, one index per conversation (the caller's job).

    index = VectorIndex()
    index.add(ids, vectors)
    index.search(query_vector, k=3)   # [(id, cosine), ...]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from optmem.retrieval.embedder import EMBEDDING_DIM


class CorruptIndex(ValueError):
    """Bytes that are not a serialised VectorIndex (the caller rebuilds from stored vectors)."""


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
            raise CorruptIndex("VectorIndex.from_bytes needs the non-empty bytes written by to_bytes()")
        try:
            index = faiss.deserialize_index(np.frombuffer(bytes(data), dtype=np.uint8))
        except RuntimeError as e:
            raise CorruptIndex(f"not a serialised faiss index: {e}") from e
        if not isinstance(index, faiss.IndexIDMap):
            raise CorruptIndex(f"expected a serialised IndexIDMap, got {type(index).__name__}")
        out = cls.__new__(cls)
        out.dim = int(index.d)
        out._index = index
        return out
