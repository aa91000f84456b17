"""The text embedder optmem's retrieval uses (MiniLM, offline), shared so both sides embed alike."""

from __future__ import annotations


def get_embedder():
    from optmem import retrieval

    embedder = retrieval.default_embedder()
    # Benchmarks ingest the same haystack once per sample and system: embed each text once.
    embedder.remember(200_000)
    return embedder
