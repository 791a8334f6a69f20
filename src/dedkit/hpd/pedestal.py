"""Per-pixel pedestal (dark level) and noise of a charge-integrating detector.

The default mode is aare's moving window (PSI's ``aare::Pedestal``), so that pedestals
and the cluster finder built on them agree with aare to the last bit. Per pixel it keeps
the sum and the sum of squares of the values pushed, and their count:

- while ``count < window``, a push adds the value to ``sum`` and its square to
  ``sum2`` and increments ``count``;
- once the window is full, a push replaces one average sample:
  ``sum += x - sum / window`` and ``sum2 += x*x - sum2 / window`` (``count`` stays);
- after every push, ``mean = sum / count``;
- ``variance = sum2 / count - mean**2`` (0 for a pixel with no sample) and
  ``std = sqrt(variance)``: the population variance, computed exactly as aare does,
  so a variance that rounds below zero gives a NaN noise, as in aare.

``mean`` is part of the state, not recomputed from ``sum``: aare's cluster finder
updates it as ``sum / window`` whatever ``count`` is (see :mod:`dedkit.hpd.finder`).

The plain mode (``window=None``) accumulates every frame with equal weight: mean and
population standard deviation over all dark frames given.

All arithmetic is done in the pedestal's dtype, float64 (aare's ``Pedestal_d``, used by
its cluster finder) or float32 (``Pedestal_f``).
"""

from __future__ import annotations

import numba
import numpy as np

from dedkit.errors import DedkitError

__all__ = ["Pedestal", "pedestal_from_frames"]

#: Names of the arrays that make up a pedestal's state (:meth:`Pedestal.to_arrays`)
STATE_ARRAYS = ("sum", "sum2", "mean", "count")


@numba.njit(cache=True, nogil=True, parallel=True)
def _push_frames_kernel(frames, total, total2, mean, count, window):
    # Pixels are independent, so each row is updated over all frames while its state
    # stays in cache (the frames are read once, row by row); the result is the same
    # as pushing the frames one after the other.
    n_frames, ny, nx = frames.shape
    cast = total.dtype.type
    n = cast(window)
    for iy in numba.prange(ny):
        srow = total[iy]
        s2row = total2[iy]
        crow = count[iy]
        for k in range(n_frames):
            frow = frames[k, iy]
            for ix in range(nx):
                value = cast(frow[ix])
                s = srow[ix]
                s2 = s2row[ix]
                c = crow[ix]
                if window == 0 or c < window:
                    srow[ix] = s + value
                    s2row[ix] = s2 + value * value
                    crow[ix] = c + 1
                else:
                    srow[ix] = s + (value - s / n)
                    s2row[ix] = s2 + (value * value - s2 / n)
        if n_frames > 0:
            mrow = mean[iy]
            for ix in range(nx):
                mrow[ix] = srow[ix] / cast(crow[ix])


@numba.njit(cache=True, nogil=True)
def _variance_kernel(total2, mean, count, out):
    # aare's Pedestal::variance: sum2 / count - mean * mean, 0 where count == 0
    ny, nx = out.shape
    cast = out.dtype.type
    for iy in range(ny):
        for ix in range(nx):
            c = count[iy, ix]
            if c == 0:
                out[iy, ix] = 0
            else:
                m = mean[iy, ix]
                out[iy, ix] = total2[iy, ix] / cast(c) - m * m
    return out


def _as_window(window) -> int:
    # the state stores the plain mode as window 0
    if window is None:
        return 0
    if isinstance(window, (bool, np.bool_)) or not isinstance(window, (int, np.integer)):
        raise DedkitError(f"pedestal window must be a whole number of frames, got {window!r}")
    if not 1 <= window < 2**31:
        raise DedkitError(f"pedestal window must be at least 1 frame, got {window}")
    return int(window)


def _as_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise DedkitError(f"pedestal dtype must be float64 or float32, got {dtype}")
    return dtype


class Pedestal:
    """Running per-pixel pedestal (mean) and noise (standard deviation), in ADU.

    Parameters
    ----------
    shape : (ny, nx)
        Frame shape.
    window : int or None
        Number of frames in aare's moving window (aare's ``n_samples``, 1000 in its
        cluster finder); None for the plain mode (all frames weigh the same).
    dtype : float64 or float32
        Type of the sums and of all arithmetic (aare ``Pedestal_d`` / ``Pedestal_f``).
    """

    def __init__(self, shape, window: int | None = 1000, dtype=np.float64):
        shape = tuple(int(n) for n in shape)
        if len(shape) != 2 or min(shape) < 1:
            raise DedkitError(f"pedestal shape must be (rows, columns), got {shape}")
        self._window = _as_window(window)
        dtype = _as_dtype(dtype)
        self._sum = np.zeros(shape, dtype)
        self._sum2 = np.zeros(shape, dtype)
        self._mean = np.zeros(shape, dtype)
        self._count = np.zeros(shape, np.uint32)

    # -- state -------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        return self._sum.shape

    @property
    def dtype(self) -> np.dtype:
        return self._sum.dtype

    @property
    def window(self) -> int | None:
        """Moving-window length in frames, None in the plain mode."""
        return self._window or None

    @property
    def count(self) -> np.ndarray:
        """(ny, nx) uint32: samples in each pixel's sums (at most ``window``)."""
        return self._count.copy()

    @property
    def sum(self) -> np.ndarray:
        return self._sum.copy()

    @property
    def sum2(self) -> np.ndarray:
        return self._sum2.copy()

    @property
    def mean(self) -> np.ndarray:
        """(ny, nx): the pedestal, ADU."""
        return self._mean.copy()

    @property
    def variance(self) -> np.ndarray:
        """(ny, nx): population variance, ADU² (aare's formula; 0 without samples)."""
        return _variance_kernel(self._sum2, self._mean, self._count, np.empty_like(self._sum))

    @property
    def std(self) -> np.ndarray:
        """(ny, nx): the noise, ADU (NaN where the variance rounded below zero, as aare)."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(self.variance)

    @property
    def full(self) -> bool:
        """True when every pixel's window holds ``window`` samples (never in plain mode)."""
        return self._window > 0 and bool(np.all(self._count == self._window))

    # -- pushing dark frames -------------------------------------------------------------

    def _check_frames(self, frames: np.ndarray, ndim: int) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != ndim or frames.shape[-2:] != self.shape:
            what = "a frame" if ndim == 2 else "a stack of frames"
            raise DedkitError(
                f"pedestal needs {what} of {self.shape[0]} x {self.shape[1]} pixels "
                f"(rows x columns), got shape {frames.shape}"
            )
        if frames.dtype.kind not in "ui":
            raise DedkitError(f"dark frames must be raw integer ADU, got {frames.dtype}")
        return frames

    def push(self, frame: np.ndarray) -> None:
        """Add one dark frame (aare ``Pedestal::push``)."""
        frame = self._check_frames(frame, 2)
        self.push_frames(frame[np.newaxis])

    def push_frames(self, frames: np.ndarray) -> None:
        """Add dark frames ``frames[0], frames[1], ...`` in that order.

        Parameters
        ----------
        frames : (n, ny, nx) integer ndarray
            Raw ADU (e.g. uint16 with the gain bits masked off).
        """
        frames = self._check_frames(frames, 3)
        _push_frames_kernel(
            np.ascontiguousarray(frames),
            self._sum,
            self._sum2,
            self._mean,
            self._count,
            self._window,
        )

    def clear(self) -> None:
        """Forget every sample."""
        for array in (self._sum, self._sum2, self._mean, self._count):
            array[...] = 0

    # -- hand-over and saving ------------------------------------------------------------

    def copy(self) -> Pedestal:
        return Pedestal.from_arrays(self.to_arrays())

    def to_arrays(self) -> dict:
        """The full state as plain arrays (copies), for HDF5 files and chunk hand-over.

        Returns
        -------
        dict
            ``sum``, ``sum2``, ``mean`` ((ny, nx) of the pedestal dtype), ``count``
            ((ny, nx) uint32) and ``window`` (0-d int64; 0 for the plain mode).
        """
        return {
            "sum": self._sum.copy(),
            "sum2": self._sum2.copy(),
            "mean": self._mean.copy(),
            "count": self._count.copy(),
            "window": np.int64(self._window),
        }

    @classmethod
    def from_arrays(cls, arrays) -> Pedestal:
        """Rebuild a pedestal from :meth:`to_arrays`' output (or a mapping like it)."""
        missing = [name for name in (*STATE_ARRAYS, "window") if name not in arrays]
        if missing:
            raise DedkitError(f"pedestal state lacks {', '.join(missing)}")
        total = np.asarray(arrays["sum"])
        if total.ndim != 2:
            raise DedkitError(f"pedestal state arrays must be 2-D, got shape {total.shape}")
        dtype = _as_dtype(total.dtype)
        window = int(np.asarray(arrays["window"]))
        pedestal = cls(total.shape, window or None, dtype)
        for name, target in (
            ("sum", pedestal._sum),
            ("sum2", pedestal._sum2),
            ("mean", pedestal._mean),
            ("count", pedestal._count),
        ):
            value = np.asarray(arrays[name])
            if value.shape != total.shape:
                raise DedkitError(
                    f"pedestal state array {name!r} has shape {value.shape}, expected {total.shape}"
                )
            target[...] = value
        if window and np.any(pedestal._count > window):
            raise DedkitError(f"pedestal state counts exceed its window of {window}")
        return pedestal

    def __repr__(self) -> str:
        window = "plain" if not self._window else f"window={self._window}"
        return (
            f"Pedestal({self.shape[0]} x {self.shape[1]}, {window}, {self.dtype}, "
            f"count {int(self._count.min())}..{int(self._count.max())})"
        )


def pedestal_from_frames(frames: np.ndarray, window: int | None = 1000, dtype=np.float64):
    """Pedestal of a stack of dark frames, pushed in order.

    Parameters
    ----------
    frames : (n, ny, nx) integer ndarray
    window : int or None
        aare's moving-window length; None for the plain mean and std of all frames.
    dtype : float64 or float32

    Returns
    -------
    Pedestal
    """
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise DedkitError(
            f"dark frames must be a (frames, rows, columns) stack, got {frames.shape}"
        )
    pedestal = Pedestal(frames.shape[1:], window, dtype)
    pedestal.push_frames(frames)
    return pedestal
