"""Rows of Pillow's LANCZOS downsample of a square page, bit for bit, without resampling the rest.

An open page changes only in the rows its new lines reach, but resampling it whole to a reader's
side cost 15-25 ms a turn. Pillow resamples in two passes, horizontal then vertical, in 22-bit
fixed point (libImaging/Resample.c). The horizontal pass treats each row alone, so Pillow itself
gives it for just the input rows wanted (a resize that keeps the height runs no vertical pass).
The vertical pass is done here with the same weights, computed as Resample.c computes them:
``precompute_coeffs`` in double precision through the C library's ``sin`` (``math.sin`` is that
same function), then ``normalize_coeffs_8bpc``'s rounding. tests/test_canvas.py checks the result
against Pillow's own whole-image resize at every side a reader is sent.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from threadpoolctl import ThreadpoolController

_SUPPORT = 3.0  # Pillow's LANCZOS filter support
_PRECISION_BITS = 32 - 8 - 2  # Resample.c: 8 bits of result, 2 of headroom in an int


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


@dataclass(frozen=True)
class Weights:
    """Resample.c's weights for ``in_size`` -> ``out_size``: output row j reads the ``count[j]``
    input rows from ``first[j]``, weighted by ``kernel[j, :count[j]]`` (the rest are 0)."""

    first: np.ndarray  # (out,) int64
    count: np.ndarray  # (out,) int64
    kernel: np.ndarray  # (out, ksize) int64, fixed point with _PRECISION_BITS fraction bits

    def rows_reading(self, start: int, stop: int) -> tuple[int, int] | None:
        """[first, stop) of the output rows whose window meets input rows [start, stop)."""
        hit = np.flatnonzero((self.first < stop) & (self.first + self.count > start))
        return (int(hit[0]), int(hit[-1]) + 1) if hit.size else None


@lru_cache(maxsize=32)
def weights(in_size: int, out_size: int) -> Weights:
    """``precompute_coeffs`` + ``normalize_coeffs_8bpc`` of Resample.c, for a box of the whole
    image (in0 = 0, in1 = in_size)."""
    if not 0 < out_size <= in_size:
        raise ValueError(f"a downsample needs 0 < out_size <= in_size, got {out_size} from {in_size}")
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORT * filterscale
    ksize = math.ceil(support) * 2 + 1
    ss = 1.0 / filterscale
    first = np.zeros(out_size, dtype=np.int64)
    count = np.zeros(out_size, dtype=np.int64)
    kernel = np.zeros((out_size, ksize), dtype=np.int64)
    one = float(1 << _PRECISION_BITS)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [_lanczos((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for w in k:
            ww += w
        if ww != 0.0:
            k = [w / ww for w in k]
        kernel[xx, :xmax] = [int(-0.5 + w * one) if w < 0 else int(0.5 + w * one) for w in k]
        first[xx], count[xx] = xmin, xmax
    for a in (first, count, kernel):
        a.flags.writeable = False
    return Weights(first, count, kernel)


def downsample_rows(pixels: np.ndarray, side: int, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of ``pixels`` (a square 8-bit page) resized by LANCZOS to ``side`` x
    ``side``: equal to ``Image.resize((side, side), LANCZOS)``'s rows, at a cost in proportion
    to the rows asked for."""
    if pixels.ndim != 2 or pixels.shape[0] != pixels.shape[1]:
        raise ValueError(f"a square 8-bit page is needed, got shape {pixels.shape}")
    if not 0 <= start < stop <= side:
        raise ValueError(f"rows [{start}, {stop}) are not within a {side} px view")
    w = weights(pixels.shape[0], side)
    lo = int(w.first[start])
    hi = int((w.first[start:stop] + w.count[start:stop]).max())
    across = np.asarray(Image.fromarray(pixels[lo:hi]).resize((side, hi - lo), Image.Resampling.LANCZOS),
                        dtype=np.float64)
    out = np.empty((stop - start, side), dtype=np.uint8)
    with _one_blas_thread():
        for block in range(start, stop, _BLOCK_ROWS):
            end = min(block + _BLOCK_ROWS, stop)
            out[block - start:end - start] = _vertical(w, across, lo, block, end)
    return out


_BLAS_LOCK = threading.Lock()
_blas: ThreadpoolController | None = None


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on the calling thread alone. A block's product is small (64 rows x a window of
    ~90 x the side); waking OpenBLAS's threads for it cost more than they gave, and beside the image
    workers on 2 cores made a band's resampling take 1 to 10 ms at random. One thread at a time
    holds the limit: OpenBLAS's setting is process-wide in some builds, and limits that overlapped
    would give each other's setting back in the wrong order."""
    global _blas
    with _BLAS_LOCK:
        if _blas is None:
            _blas = ThreadpoolController()  # scans the loaded libraries: once
        with _blas.limit(limits=1, user_api="blas"):
            yield


_BLOCK_ROWS = 64  # output rows per product: a block's weights are a dense (rows x window) matrix


def _vertical(w: Weights, across: np.ndarray, lo: int, start: int, stop: int) -> np.ndarray:
    """Resample.c's vertical pass for output rows [start, stop) of ``across`` (the horizontal
    pass of input rows from ``lo``), as one product with the block's weights. Every product and
    sum is an integer below 2**53, so float64 holds the C code's int arithmetic exactly."""
    first = int(w.first[start])
    height = int((w.first[start:stop] + w.count[start:stop]).max()) - first
    taps = np.arange(w.kernel.shape[1])
    live = taps < w.count[start:stop, None]
    rows = np.broadcast_to(np.arange(stop - start)[:, None], live.shape)
    cols = w.first[start:stop, None] - first + taps
    matrix = np.zeros((stop - start, height), dtype=np.float64)
    matrix[rows[live], cols[live]] = w.kernel[start:stop][live]
    acc = matrix @ across[first - lo:first - lo + height] + float(1 << (_PRECISION_BITS - 1))
    return np.clip(np.floor(acc / (1 << _PRECISION_BITS)), 0, 255).astype(np.uint8)
