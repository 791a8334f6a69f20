"""Running image statistics (min, max, mean, rms) gathered frame by frame in one pass.

MRC headers carry the minimum, maximum, mean and rms of the whole stack; writers gather
them from each frame as it streams past, so no second pass over the data is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["FrameStats", "frame_stats", "nibble_stats"]


@dataclass
class FrameStats:
    """Sufficient statistics of a set of pixels; add two to combine them."""

    n: int = 0
    minimum: float = np.inf
    maximum: float = -np.inf
    total: float = 0.0
    total_sq: float = 0.0

    def __add__(self, other: FrameStats) -> FrameStats:
        return FrameStats(
            self.n + other.n,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
            self.total + other.total,
            self.total_sq + other.total_sq,
        )

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def rms(self) -> float:
        """Standard deviation about the mean (the MRC header's 'rms')."""
        if not self.n:
            return 0.0
        var = self.total_sq / self.n - self.mean**2
        return float(np.sqrt(max(var, 0.0)))


@numba.njit(parallel=True, cache=True, nogil=True)
def _row_stats(a, out):
    # float path: min, max, sum, sum of squares per row in float64
    ny, nx = a.shape
    for y in numba.prange(ny):
        lo = np.inf
        hi = -np.inf
        s = 0.0
        s2 = 0.0
        for x in range(nx):
            v = np.float64(a[y, x])
            lo = min(lo, v)
            hi = max(hi, v)
            s += v
            s2 += v * v
        out[y, 0] = lo
        out[y, 1] = hi
        out[y, 2] = s
        out[y, 3] = s2


@numba.njit(parallel=True, cache=True, nogil=True)
def _row_stats_int(a, out):
    # integer path for types of at most 16 bits: exact, and it vectorises (min/max in the
    # array's own type, sums of values and of squares in 64-bit integers)
    ny, nx = a.shape
    for y in numba.prange(ny):
        row = a[y]
        lo = row[0]
        hi = row[0]
        s = np.int64(0)
        s2 = np.int64(0)
        for x in range(nx):
            v = row[x]
            lo = min(lo, v)
            hi = max(hi, v)
            w = np.int64(v)
            s += w
            s2 += w * w
        out[y, 0] = lo
        out[y, 1] = hi
        out[y, 2] = s
        out[y, 3] = s2


def frame_stats(frame: np.ndarray) -> FrameStats:
    """Min, max, sum and sum of squares of a 2-D frame in one parallel pass."""
    a = np.asarray(frame)
    if a.ndim != 2:
        a = a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a.reshape(1, -1)
    if a.size == 0:
        return FrameStats()
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 2:
        rows = np.empty((a.shape[0], 4), np.int64)
        _row_stats_int(a, rows)
    else:
        if a.dtype.kind == "c":
            a = np.abs(a)
        elif a.dtype == np.float16:  # numba has no float16
            a = a.astype(np.float32)
        rows = np.empty((a.shape[0], 4))
        _row_stats(a, rows)
    return FrameStats(
        a.size,
        float(rows[:, 0].min()),
        float(rows[:, 1].max()),
        float(rows[:, 2].sum()),
        float(rows[:, 3].sum()),
    )


_LOW = np.arange(256) & 15
_HIGH = np.arange(256) >> 4


def nibble_stats(packed: np.ndarray, nx: int) -> FrameStats:
    """Statistics of 4-bit pixels straight from packed rows (padding nibbles excluded)."""
    packed = np.asarray(packed, np.uint8)
    ny = packed.shape[0]
    counts = np.zeros(16, np.int64)
    full = nx // 2
    byte_counts = np.bincount(packed[:, :full].ravel(), minlength=256)
    np.add.at(counts, _LOW, byte_counts)
    np.add.at(counts, _HIGH, byte_counts)
    if nx & 1:
        np.add.at(counts, packed[:, full] & 15, 1)
    values = np.arange(16)
    present = np.nonzero(counts)[0]
    return FrameStats(
        ny * nx,
        float(present.min()),
        float(present.max()),
        float((counts * values).sum()),
        float((counts * values**2).sum()),
    )
