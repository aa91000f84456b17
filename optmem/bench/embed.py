"""The text embedder optmem's retrieval uses (MiniLM, offline), shared so both sides embed alike."""

from __future__ import annotations


def get_embedder():
    from optmem import retrieval

    if hasattr(retrieval, "default_embedder"):
        return retrieval.default_embedder()
    return retrieval.Embedder()
