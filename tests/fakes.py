"""Test doubles shared by several test files: an embedder that needs no model, and a loopback
HTTP server for fake LLM endpoints."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from optmem.retrieval import EMBEDDING_DIM


class HashEmbedder:
    """Deterministic bag-of-words vectors at MiniLM's width: retrieval runs without loading
    MiniLM, and texts sharing words land close."""

    def encode(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), EMBEDDING_DIM), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % EMBEDDING_DIM] += 1
            out[i, 0] += 1e-3  # never the zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class RecordingEmbedder(HashEmbedder):
    """HashEmbedder that keeps the texts of each encode call, in order, in ``calls``."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append([texts] if isinstance(texts, str) else list(texts))
        return super().encode(texts)


class JSONHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON and logs nothing."""

    def send_json(self, payload: dict | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """``handler`` served on 127.0.0.1 in a thread; ``server.seen`` collects what it records."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.seen = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
