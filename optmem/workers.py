"""One small thread pool for the process, for work that lets go of the GIL (Pillow's resampling,
zlib, torch) and can run beside the thread that asked for it: the images an export makes while
it draws the open page, a query's embedding while its keyword search runs. This is for latency,
not throughput: two workers, made on first use (and again in a child after a fork)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

WORKERS = 2

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pid = 0


def submit(fn: Callable[[], Any]) -> Future:
    """``fn()`` on the pool. ``fn`` must not wait on the pool itself."""
    global _pool, _pid
    with _lock:
        if _pool is None or _pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="optmem-worker")
            _pid = os.getpid()
        return _pool.submit(fn)
