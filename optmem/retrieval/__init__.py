"""Retrieval over a conversation's pages: embeddings, the vector index, chunking, hybrid search."""

from optmem.retrieval.chunks import ChunkKey, chunk_spans, chunk_text
from optmem.retrieval.embedder import EMBEDDING_DIM, Embedder, default_embedder
from optmem.retrieval.index import CorruptIndex, VectorIndex
from optmem.retrieval.retriever import ChunkHit, IndexWork, PageHit, Retriever

__all__ = [
    "EMBEDDING_DIM", "ChunkHit", "ChunkKey", "CorruptIndex", "Embedder", "IndexWork", "PageHit", "Retriever",
    "VectorIndex", "chunk_spans", "chunk_text", "default_embedder",
]
