"""One small thread pool for the process, for work that lets go of the GIL (Pillow's resampling,
zlib, torch) and can run beside the thread that asked for it: the images an export makes while
it draws the open page, a query's embedding while its keyword search runs. This is for latency,
not throughput: two workers, made on first use (and again in a child after a fork).

MiniLM runs on one thread of its own (``on_torch_thread``), whoever asks: see there why."""

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


_torch_lock = threading.Lock()
_torch: ThreadPoolExecutor | None = None
_torch_pid = 0
_TORCH_THREAD = "optmem-torch"
_local = threading.local()


def run_torch_here() -> None:
    """Let the calling thread run its torch work itself, not on the torch thread: for a background
    thread of lower priority (optmem serve's offload), whose long encodes must neither queue a
    request's query behind them on the torch thread nor run at the torch thread's priority."""
    _local.torch_here = True


def on_torch_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` on the process's one torch thread, waited for. torch's OpenMP gives every thread
    that runs a parallel region a team of its own, and the teams' spinning threads then compete
    for the cores: on 2 cores a one-query encode took 4.5 ms while only one thread had ever
    encoded, 10 ms once a second had (the ingest encodes on the caller's thread, a query on a
    worker). Run on the torch thread itself, ``fn`` runs at once."""
    global _torch, _torch_pid
    if getattr(_local, "torch_here", False) or threading.current_thread().name.startswith(_TORCH_THREAD):
        return fn()
    with _torch_lock:
        if _torch is None or _torch_pid != os.getpid():
            _torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_TORCH_THREAD)
            _torch_pid = os.getpid()
        future = _torch.submit(fn)
    return future.result()
