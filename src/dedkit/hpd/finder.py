"""aare-compatible cluster finder: local maxima above n sigma, with pedestal tracking.

The decisions are those of PSI aare's ``ClusterFinder::find_clusters`` (aare
2025.11.21, see "aare version" below), so that on the same frames, after the same dark
frames, the clusters are identical to aare's, pixel value for pixel value. Pixels are
visited row by row, column by column, and for each pixel (row y, column x), with the
pixel's noise ``rms`` and ``value = frame - pedestal``:

1. ``value < -nsigma * rms``: nothing happens (no cluster, no pedestal update);
2. over the ``cluster_size`` neighbourhood (inside the frame), ``max`` is the largest
   value, starting from 0, and ``total`` the sum of the values, added row by row;
3. ``max > nsigma * rms``: a cluster is stored if the pixel holds the maximum (ties:
   every pixel equal to the maximum stores one);
   otherwise ``total > sqrt(size_x * size_y) * nsigma * rms``: a cluster is stored if
   the pixel holds the maximum;
   otherwise the pixel is dark and its pedestal takes the frame's value with aare's
   ``push_fast``: ``sum += v - sum/window``, ``sum2 += v*v - sum2/window``,
   ``mean = sum/window``.

The pedestal is updated in place during the scan, so a pixel sees the updated pedestal
of the pixels before it (the rows above, the pixels to its left) and the old one of the
others; a stored cluster holds ``T(frame) - T(pedestal)`` for each pixel of the
neighbourhood (``T`` the cluster dtype: a float pedestal is truncated towards zero for
int32), 0 outside the frame, with the pedestal as it is at that moment. As in aare,
``push_fast`` divides by the window even while fewer samples than the window were
pushed (a pedestal of 100 dark frames with a window of 1000 is scaled down by 10 at
the first data frame): push at least ``window`` dark frames (a warning says so).

Two paths give these decisions:

- with a full pedestal window (the normal case), the fast kernels of
  :mod:`dedkit.hpd.finder_fast`: an int16 "surely dark" test with bounded errors
  for sixteen pixels at a time, aare's exact test only for the few others, and on
  several cores row bands that scan successive frames at once (a wavefront), each
  band on its own thread;
- otherwise (an incomplete window, sums so extreme that the fast arithmetic could
  round differently, or frame values and means that no window of 65536 ADU holds),
  aare's exact test for every pixel, in raster order (slow, but still aare's result),
  in this module.

:mod:`dedkit.hpd.finder_reference` writes aare's loop out in plain Python, pixel by
pixel: both paths are tested against it without aare
(``tests/hpd/test_finder_reference.py``), and against aare itself where it is installed.

aare version: dedkit reproduces aare **2025.11.21** (the version pinned in
``constraints.txt`` and in the test extra, which ``tests/hpd/test_finder.py`` compares
with). aare 2026.3.17 changed how a cluster's pixel values are stored (commit 0ce6128,
January 2026, "added rounding in cluster finder"): 2025.11.21 stores
``static_cast<CT>(frame) - static_cast<CT>(pedestal)``, so an int32 cluster truncates
the pedestal towards zero before subtracting (frame 1003, pedestal 1000.4 or 1000.7:
3 either way) and a float32 cluster subtracts in float32; 2026.3.17 subtracts in
float64 and, for integer clusters, rounds to the nearest with ``std::lround`` (2.6 ->
3, 2.3 -> 2), while a float32 cluster takes the float64 difference cast to float32.
Which pixels hold clusters and the pedestal updates did not change; float64 clusters
are the same in both.

Splitting the frames themselves between cores cannot give aare's result: the running
pedestal makes each frame depend on all those before it (aare's own
``ClusterFinderMT`` runs independent finders with separate pedestals, which differ
from one ``ClusterFinder``).
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import NamedTuple

import numba
import numpy as np

from dedkit.errors import DedkitError
from dedkit.hpd import finder_fast
from dedkit.hpd.pedestal import Pedestal
from dedkit.records.tables import ClusterTable

__all__ = ["ClusterFinder", "CLUSTER_SIZES", "CLUSTER_DTYPES"]

#: Cluster sizes (x, y) of aare's cluster finders
CLUSTER_SIZES = ((3, 3), (5, 5), (7, 7), (9, 9))

#: Cluster pixel types of aare's cluster finders ('i', 'f', 'd')
CLUSTER_DTYPES = (np.dtype(np.int32), np.dtype(np.float32), np.dtype(np.float64))

# Row buffers of the exact path, each ``nx + 2 * dx`` long: the state of the pixels that
# stay as they are (kept while the whole row is updated, then put back)
_KEEP_SUM, _KEEP_SUM2, _KEEP_MEAN, _KEEP_Q2, _KEEP_VALUE, _KEEP_COLUMN = range(6)
_N_ROW_BUFFERS = 6


class _ExactParameters(NamedTuple):
    # the exact path's scalar parameters, in the order its kernels take them
    window: int  # pedestal window (frames)
    nsigma: float
    c3_nsigma: float  # sqrt(size_x * size_y) * nsigma
    dy: int  # size_y // 2
    dx: int  # size_x // 2


@numba.njit(cache=True, nogil=True)
def _fill_row(frame, mean, row, dx, out):
    # value = frame - pedestal of one row as the pedestal stands now (zeros outside)
    ny, nx = frame.shape
    if row < 0 or row >= ny:
        out[:] = 0.0
        return
    frow = frame[row]
    mrow = mean[row]
    inner = out[dx : dx + nx]
    for ix in range(nx):
        inner[ix] = frow[ix] - mrow[ix]


@numba.njit(cache=True, nogil=True)
def _pushed_mean(value, s, window):
    # mean after aare's push_fast of value into a pixel with sum s
    window_f = np.float64(window)
    return (s + (value - s / window_f)) / window_f


_SKIP, _UPDATE, _STORE = range(3)


@numba.njit(cache=True, nogil=True)
def _aare_decision(frame, iy, ix, total, mean, q2, count, window, nsigma, c3_nsigma, dy,
                   dx, ring, updated):  # fmt: skip
    # aare's test for pixel (iy, ix), with the values it sees there: rows above after
    # this frame's updates, the pixels to the left after theirs (computed here, the
    # row's pedestal being still the old one), the others before.
    n_ring = ring.shape[0]
    m = mean[iy, ix]
    var = 0.0 if count[iy, ix] == 0 else q2[iy, ix] - m * m
    rms = math.sqrt(var) if var >= 0.0 else np.nan
    value = ring[iy % n_ring, ix + dx]
    if value < -nsigma * rms:
        return _SKIP
    nb_sum = 0.0
    high = 0.0
    for k in range(2 * dy + 1):
        rr = ring[(iy - dy + k) % n_ring]
        for c in range(-dx, dx + 1):
            v = rr[ix + dx + c]
            col = ix + c
            if k == dy and c < 0 and col >= 0 and updated[col + dx]:
                f = np.float64(frame[iy, col])
                v = f - _pushed_mean(f, total[iy, col], window)
            nb_sum += v
            high = max(high, v)
    if high > nsigma * rms:
        if value < high:
            return _SKIP
    elif not nb_sum > c3_nsigma * rms:
        return _UPDATE
    return _STORE if value == high else _SKIP


@numba.njit(cache=True, nogil=True)
def _exact_row(
    frame, frame_index, iy, total, total2, mean, q2, count, window, nsigma, c3_nsigma, dy,
    dx, ring, rowbuf, updated, out_frame, out_x, out_y, out_data, n_out,
):  # fmt: skip
    # aare's test, in raster order, for every pixel of row iy. Stores their clusters and
    # returns the new number of clusters and the number of pixels kept as they are,
    # whose state is saved in rowbuf for _restore_row.
    ny, nx = frame.shape
    n_ring = ring.shape[0]
    cast = out_data.dtype.type
    n_keep = 0
    for ix in range(nx):
        decision = _aare_decision(
            frame, iy, ix, total, mean, q2, count, window, nsigma, c3_nsigma, dy, dx,
            ring, updated,
        )  # fmt: skip
        if decision == _UPDATE:
            updated[ix + dx] = 1
            continue
        rowbuf[_KEEP_COLUMN, n_keep] = ix
        rowbuf[_KEEP_SUM, n_keep] = total[iy, ix]
        rowbuf[_KEEP_SUM2, n_keep] = total2[iy, ix]
        rowbuf[_KEEP_MEAN, n_keep] = mean[iy, ix]
        rowbuf[_KEEP_Q2, n_keep] = q2[iy, ix]
        rowbuf[_KEEP_VALUE, n_keep] = ring[iy % n_ring, ix + dx]
        n_keep += 1
        if decision == _SKIP:
            continue
        out_frame[n_out] = frame_index
        out_x[n_out] = ix
        out_y[n_out] = iy
        for k in range(2 * dy + 1):
            r = iy - dy + k
            for c in range(-dx, dx + 1):
                col = ix + c
                if r < 0 or r >= ny or col < 0 or col >= nx:
                    out_data[n_out, k, c + dx] = 0
                    continue
                ped = mean[r, col]
                if r == iy and c < 0 and updated[col + dx]:
                    ped = _pushed_mean(np.float64(frame[r, col]), total[r, col], window)
                out_data[n_out, k, c + dx] = cast(frame[r, col]) - cast(ped)
        n_out += 1
    return n_out, n_keep


@numba.njit(cache=True, nogil=True)
def _commit_row(frow, srow, s2row, mrow, qrow, crow, centre, window, dx):
    # aare's push_fast for the whole row (the pixels that stay are put back after); the
    # row's values become those after the update
    nx = frow.shape[0]
    window_f = np.float64(window)
    value_row = centre[dx : dx + nx]
    for ix in range(nx):
        value = np.float64(frow[ix])
        s = srow[ix]
        s2 = s2row[ix]
        new_sum = s + (value - s / window_f)
        new_sum2 = s2 + (value * value - s2 / window_f)
        new_mean = new_sum / window_f
        c = crow[ix]
        srow[ix] = new_sum
        s2row[ix] = new_sum2
        mrow[ix] = new_mean
        qrow[ix] = new_sum2 / np.float64(c) if c > 0 else 0.0
        value_row[ix] = value - new_mean


@numba.njit(cache=True, nogil=True)
def _restore_row(srow, s2row, mrow, qrow, centre, rowbuf, n_keep, dx):
    # puts back the state of the pixels that were not updated
    for i in range(n_keep):
        ix = int(rowbuf[_KEEP_COLUMN, i])
        srow[ix] = rowbuf[_KEEP_SUM, i]
        s2row[ix] = rowbuf[_KEEP_SUM2, i]
        mrow[ix] = rowbuf[_KEEP_MEAN, i]
        qrow[ix] = rowbuf[_KEEP_Q2, i]
        centre[ix + dx] = rowbuf[_KEEP_VALUE, i]


@numba.njit(cache=True, nogil=True)
def _scan_rows(
    frame, frame_index, row_start, row_stop, total, total2, mean, q2, count, window,
    nsigma, c3_nsigma, dy, dx, ring, rowbuf, updated, out_frame, out_x, out_y, out_data,
    n_out,
):  # fmt: skip
    """Scan rows ``row_start`` to ``row_stop - 1`` of one frame with aare's exact test.

    Stops before a row when the output has no room for ``nx`` more clusters (a row's
    most) and returns ``(next_row, n_out)``; the state is then that of a scan stopped
    between two rows, and calling again from ``next_row`` continues it exactly.
    """
    nx = frame.shape[1]
    n_ring = ring.shape[0]
    capacity = out_x.shape[0]
    # Rows above hold their values after this frame's updates, rows below before: both
    # are simply frame - pedestal as the pedestal stands now.
    for row in range(row_start - dy, row_start + dy):
        _fill_row(frame, mean, row, dx, ring[row % n_ring])
    for iy in range(row_start, row_stop):
        if n_out + nx > capacity:
            return iy, n_out
        _fill_row(frame, mean, iy + dy, dx, ring[(iy + dy) % n_ring])
        centre = ring[iy % n_ring]
        updated[:] = 0
        n_out, n_keep = _exact_row(
            frame, frame_index, iy, total, total2, mean, q2, count, window, nsigma,
            c3_nsigma, dy, dx, ring, rowbuf, updated, out_frame, out_x, out_y, out_data,
            n_out,
        )  # fmt: skip
        _commit_row(
            frame[iy], total[iy], total2[iy], mean[iy], q2[iy], count[iy], centre, window,
            dx,
        )  # fmt: skip
        _restore_row(total[iy], total2[iy], mean[iy], q2[iy], centre, rowbuf, n_keep, dx)
    return row_stop, n_out


@numba.njit(cache=True, nogil=True)
def _find_sequential(
    frames, frame_start, row_start, total, total2, mean, q2, count, window, nsigma,
    c3_nsigma, dy, dx, ring, rowbuf, updated, out_frame, out_x, out_y, out_data, n_out,
):  # fmt: skip
    # All frames in order in one call; returns where it stopped for lack of output room
    # (frame index, row) and the number of clusters, or (n_frames, 0, n) when done.
    n_frames, ny, _ = frames.shape
    for fi in range(frame_start, n_frames):
        row, n_out = _scan_rows(
            frames[fi], fi, row_start, ny, total, total2, mean, q2, count, window, nsigma,
            c3_nsigma, dy, dx, ring, rowbuf, updated, out_frame, out_x, out_y, out_data,
            n_out,
        )  # fmt: skip
        if row < ny:
            return fi, row, n_out
        row_start = 0
    return n_frames, 0, n_out


def _band_rows(ny: int, n_bands: int, dy: int) -> np.ndarray:
    # (first row, end row) of each band: equal shares of the rows left after the
    # n_bands - 1 strips of dy rows; fewer bands if the frame is too short for them (a
    # band has at least dy rows: a strip reads dy rows of the band below it)
    n_bands = max(1, min(n_bands, (ny + dy) // (2 * dy)))
    band_total = ny - (n_bands - 1) * dy
    sizes = np.full(n_bands, band_total // n_bands)
    sizes[: band_total % n_bands] += 1
    bands = np.empty((n_bands, 2), np.int64)
    row = 0
    for b, size in enumerate(sizes):
        bands[b] = row, row + size
        row += size + dy
    return bands


class ClusterFinder:
    """Find clusters as aare's ``ClusterFinder`` does, tracking the pedestal.

    Parameters
    ----------
    shape : (ny, nx)
        Frame shape (rows, columns).
    cluster_size : (size_x, size_y)
        Neighbourhood and stored cluster: (3, 3), (5, 5), (7, 7) or (9, 9).
    nsigma : float
        Threshold in units of each pixel's noise.
    window : int
        Pedestal moving-window length in frames (aare's cluster finder uses 1000).
    dtype : int32, float32 or float64
        Type of the stored pixel values (aare's ``Cluster3x3i``, ``f``, ``d``).

    Notes
    -----
    The pedestal is float64, as in aare's Python cluster finders. Frames are raw
    integer ADU (uint16 for MÖNCH, gain bits masked off for Jungfrau).

    The results are those of aare 2025.11.21; aare 2026.3.17 rounds an integer
    cluster's pixel values differently (see :mod:`dedkit.hpd.finder`).
    """

    def __init__(
        self,
        shape,
        cluster_size=(3, 3),
        nsigma: float = 5.0,
        window: int = 1000,
        dtype=np.int32,
    ):
        self._pedestal = Pedestal(shape, window, np.float64)
        if self._pedestal.window is None:
            raise DedkitError("the cluster finder needs a pedestal window (frames)")
        cluster_size = tuple(int(n) for n in cluster_size)
        if cluster_size not in CLUSTER_SIZES:
            sizes = ", ".join(f"{x}x{y}" for x, y in CLUSTER_SIZES)
            raise DedkitError(f"cluster size must be one of {sizes}, got {cluster_size}")
        self.cluster_size = cluster_size
        self.dtype = np.dtype(dtype)
        if self.dtype not in CLUSTER_DTYPES:
            raise DedkitError(f"cluster dtype must be int32, float32 or float64, not {dtype}")
        self.nsigma = float(nsigma)
        if not np.isfinite(self.nsigma) or self.nsigma <= 0:
            raise DedkitError(f"nsigma must be a positive number, got {nsigma}")
        self._state_changed()

    # -- pedestal ------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        return self._pedestal.shape

    @property
    def window(self) -> int:
        return self._pedestal.window

    @property
    def pedestal(self) -> Pedestal:
        """A copy of the current pedestal state (hand it to the next chunk's finder)."""
        return self._pedestal.copy()

    @pedestal.setter
    def pedestal(self, pedestal: Pedestal) -> None:
        if pedestal.shape != self.shape:
            raise DedkitError(
                f"pedestal of {pedestal.shape[0]} x {pedestal.shape[1]} pixels does not "
                f"fit frames of {self.shape[0]} x {self.shape[1]}"
            )
        state = pedestal.to_arrays()
        if pedestal.window is None:
            # A plain pedestal seeds a full moving window with its mean and mean square.
            with np.errstate(invalid="ignore", divide="ignore"):
                n = np.maximum(state["count"], 1).astype(np.float64)
                state["sum"] = state["mean"].astype(np.float64) * self.window
                state["sum2"] = state["sum2"] / n * self.window
            state["mean"] = state["sum"] / self.window
            state["count"] = np.full(self.shape, self.window, np.uint32)
            state["window"] = np.int64(self.window)
        elif pedestal.window != self.window:
            raise DedkitError(
                f"pedestal window of {pedestal.window} frames differs from the cluster "
                f"finder's {self.window}"
            )
        for name in ("sum", "sum2", "mean"):
            state[name] = state[name].astype(np.float64)
        self._pedestal = Pedestal.from_arrays(state)
        self._state_changed()

    @property
    def noise(self) -> np.ndarray:
        """(ny, nx) float64: each pixel's noise (ADU)."""
        return self._pedestal.std

    def push_pedestal_frame(self, frame: np.ndarray) -> None:
        """Add one dark frame to the pedestal (aare ``push_pedestal_frame``)."""
        self._pedestal.push(frame)
        self._state_changed()

    def push_pedestal_frames(self, frames: np.ndarray) -> None:
        """Add dark frames in order (the same as pushing them one by one)."""
        self._pedestal.push_frames(frames)
        self._state_changed()

    def clear_pedestal(self) -> None:
        self._pedestal.clear()
        self._state_changed()

    def _state_changed(self) -> None:
        # The exact path works on the pedestal's own arrays, in place, plus sum2 / count.
        p = self._pedestal
        self._arrays = (p._sum, p._sum2, p._mean, p._count)
        with np.errstate(invalid="ignore", divide="ignore"):
            self._q2 = np.where(p._count > 0, p._sum2 / np.maximum(p._count, 1), 0.0)
        # Steady state: every count is the window and the cached mean is sum / window,
        # as the fast kernels (which keep only sum and sum2) assume
        self._steady = bool(
            np.all(p._count == self.window) and np.array_equal(p._mean, p._sum / self.window)
        )
        self._incomplete = bool(np.any(p._count < self.window))
        # frames the fast kernels may run before their arithmetic must be checked again
        self._fast_budget = (
            finder_fast.fast_path_budget(p._sum, p._sum2, self.window) if self._steady else 0
        )

    def _fast_path(self, n_frames: int) -> bool:
        return self._steady and n_frames <= self._fast_budget

    def _after_fast_run(self, n_frames: int) -> None:
        # the fast kernels update sum and sum2 only: the cached mean and sum2 / count
        # follow (the state stays steady)
        p = self._pedestal
        np.divide(p._sum, self.window, out=p._mean)
        np.divide(p._sum2, self.window, out=self._q2)
        self._fast_budget -= n_frames

    # -- finding -------------------------------------------------------------------------

    def _check_frames(self, frames: np.ndarray, ndim: int) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != ndim or frames.shape[-2:] != self.shape:
            what = "a frame" if ndim == 2 else "a stack of frames"
            raise DedkitError(
                f"cluster finder needs {what} of {self.shape[0]} x {self.shape[1]} "
                f"pixels (rows x columns), got shape {frames.shape}"
            )
        if frames.dtype.kind not in "ui" or frames.dtype.itemsize > 4:
            raise DedkitError(f"frames must be raw integer ADU, got {frames.dtype}")
        if self._incomplete:
            warnings.warn(
                f"the pedestal holds fewer than its window of {self.window} frames in "
                "some pixels: like aare, tracking then scales their pedestal down; "
                "push at least a window of dark frames first",
                stacklevel=3,
            )
        return np.ascontiguousarray(frames)

    def _kernel_parameters(self):
        size_x, size_y = self.cluster_size
        c3_nsigma = math.sqrt(size_x * size_y) * self.nsigma
        return _ExactParameters(self.window, self.nsigma, c3_nsigma, size_y // 2, size_x // 2)

    def _outputs(self, capacity: int) -> finder_fast.ClusterOutputs:
        size_x, size_y = self.cluster_size
        return finder_fast.ClusterOutputs(
            np.empty(capacity, np.int64),
            np.empty(capacity, np.int32),
            np.empty(capacity, np.int32),
            np.empty((capacity, size_y, size_x), self.dtype),
        )

    def _table(self, frame_numbers, pieces) -> ClusterTable:
        # pieces: the ClusterOutputs (frame index, x, y, data) of the workers, joined in raster
        # order (frame, row, column), which is the order aare emits. Each piece is in
        # raster order and holds rows below those of the pieces before it, so a stable
        # sort by frame alone gives it (a merge of sorted runs: ~70x faster than
        # sorting by frame, row and column)
        frame_index = np.concatenate([p.frame for p in pieces])
        x = np.concatenate([p.x for p in pieces])
        y = np.concatenate([p.y for p in pieces])
        data = np.concatenate([p.data for p in pieces])
        if len(pieces) > 1:
            order = np.argsort(frame_index, kind="stable")
            frame_index, x, y, data = frame_index[order], x[order], y[order], data[order]
        return ClusterTable(frame_numbers[frame_index], x, y, data)

    @staticmethod
    def _frame_numbers(frame_numbers, n_frames: int) -> np.ndarray:
        if frame_numbers is None:
            return np.arange(n_frames, dtype=np.int64)
        frame_numbers = np.asarray(frame_numbers, dtype=np.int64).reshape(-1)
        if len(frame_numbers) != n_frames:
            raise DedkitError(f"{len(frame_numbers)} frame numbers given for {n_frames} frames")
        return frame_numbers

    def find_clusters(self, frame: np.ndarray, frame_number: int = 0) -> ClusterTable:
        """Clusters of one frame, updating the pedestal (aare ``find_clusters``).

        Parameters
        ----------
        frame : (ny, nx) integer ndarray
        frame_number : int
            Stored in the table's ``frame`` column.

        Returns
        -------
        ClusterTable
            In aare's order (row by row, column by column of the reference pixel).
        """
        frame = self._check_frames(frame, 2)
        return self._find_in_order(frame[np.newaxis], np.array([frame_number], np.int64))

    def find_clusters_in_frames(self, frames: np.ndarray, frame_numbers=None) -> ClusterTable:
        """Clusters of frames, in order, on one core, in one compiled call.

        The same as :meth:`find_clusters` on each frame in turn.

        Parameters
        ----------
        frames : (n, ny, nx) integer ndarray
        frame_numbers : (n,) ints, optional
            Default: 0 to n - 1.

        Returns
        -------
        ClusterTable
        """
        frames = self._check_frames(frames, 3)
        return self._find_in_order(frames, self._frame_numbers(frame_numbers, len(frames)))

    def _find_in_order(self, frames: np.ndarray, frame_numbers: np.ndarray) -> ClusterTable:
        return self._scan_in_order(frames, frame_numbers, self._fast_parameters(frames))

    def _scan_in_order(self, frames, frame_numbers, parameters) -> ClusterTable:
        # one thread: the fast kernels with their parameters, or (None) the exact path
        if parameters is not None:
            pieces = [self._run_fast(frames, parameters)]
            self._after_fast_run(len(frames))
        else:
            pieces = [self._run_exact(frames)]
        return self._table(frame_numbers, pieces)

    def _run_exact(self, frames: np.ndarray):
        # aare's exact test for every pixel (any pedestal state)
        size_x, size_y = self.cluster_size
        nx = self.shape[1]
        ring = np.zeros((size_y, nx + size_x - 1))
        rowbuf = np.zeros((_N_ROW_BUFFERS, nx + size_x - 1))
        updated = np.zeros(nx + size_x - 1, np.uint8)
        capacity = max(4 * nx, 32 * len(frames))
        outputs = self._outputs(capacity)
        frame_index, row, n_out = 0, 0, 0
        while True:
            frame_index, row, n_out = _find_sequential(
                frames, frame_index, row, *self._arrays[:3], self._q2, self._arrays[3],
                *self._kernel_parameters(), ring, rowbuf, updated, *outputs, n_out,
            )  # fmt: skip
            if frame_index == len(frames):
                break
            capacity *= 2
            grown = self._outputs(capacity)
            for new, old in zip(grown, outputs, strict=True):
                new[:n_out] = old[:n_out]
            outputs = grown
        return finder_fast.ClusterOutputs(*(array[:n_out] for array in outputs))

    def _fast_parameters(self, frames: np.ndarray):
        # The fast kernels' parameters, or None where they may not run: not a full
        # window (see _fast_path), or frame values and means that do not fit one 16-bit
        # window. Frames of 8 or 16 bits: their type's range (no pass over them); wider
        # ones: their values.
        if not self._fast_path(len(frames)):
            return None
        if frames.dtype.itemsize <= 2 or frames.size == 0:
            low, high = np.iinfo(frames.dtype).min, np.iinfo(frames.dtype).max
        else:
            low, high = int(frames.min()), int(frames.max())
        offset = finder_fast.value_offset(self._pedestal._sum, self.window, low, high)
        if offset is None:
            return None
        return finder_fast.steady_parameters(self.window, self.nsigma, self.cluster_size, offset)

    def _run_fast(self, frames: np.ndarray, parameters):
        # the fast kernels on one thread
        p = self._pedestal
        threshold = finder_fast.new_thresholds(self.shape)
        means = finder_fast.new_means(p._sum, parameters)
        outputs = self._outputs(max(4 * self.shape[1], 32 * len(frames)))
        outputs, n_out = finder_fast.scan_all(
            frames, p._sum, p._sum2, means, threshold, parameters,
            finder_fast.new_workspace(self.shape[1], self.cluster_size), outputs,
        )  # fmt: skip
        return finder_fast.ClusterOutputs(*(array[:n_out] for array in outputs))

    def _run_fast_banded(self, frames: np.ndarray, bands: np.ndarray, parameters):
        # the fast kernels on one thread per band (this one runs the first band)
        p = self._pedestal
        n_bands = len(bands)
        threshold = finder_fast.new_thresholds(self.shape)
        means = finder_fast.new_means(p._sum, parameters)
        head_done = np.zeros(n_bands, np.int64)
        strip_done = np.zeros(n_bands, np.int64)
        abort = np.zeros(1, np.int64)
        capacity = max(4 * self.shape[1], 32 * len(frames) // n_bands)
        results = [None] * n_bands
        errors = []

        def work(band):
            try:
                results[band] = finder_fast.scan_band(
                    frames, band, bands, p._sum, p._sum2, means, threshold, parameters,
                    finder_fast.new_workspace(self.shape[1], self.cluster_size),
                    self._outputs(capacity), head_done, strip_done, abort,
                )  # fmt: skip
            except BaseException as error:  # the other threads must not wait forever
                abort[0] = 1
                errors.append(error)

        threads = [threading.Thread(target=work, args=(b,), daemon=True) for b in range(1, n_bands)]
        for thread in threads:
            thread.start()
        try:
            work(0)
        finally:
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        pieces = []
        for outputs, n_out, completed in results:
            assert completed
            pieces.append(finder_fast.ClusterOutputs(*(array[:n_out] for array in outputs)))
        return pieces

    def find_clusters_parallel(
        self, frames: np.ndarray, frame_numbers=None, n_threads: int | None = None
    ) -> ClusterTable:
        """Clusters of frames on several cores, identical to :meth:`find_clusters_in_frames`.

        The frame is split into row bands, one thread each, that scan successive frames
        at the same time (a wavefront, see :mod:`dedkit.hpd.finder_fast`), so results
        do not depend on the number of threads. Needs a full pedestal window; otherwise
        the frames are scanned on one core (with the same results).

        Parameters
        ----------
        frames : (n, ny, nx) integer ndarray
        frame_numbers : (n,) ints, optional
        n_threads : int, optional
            Row bands (default: numba's thread count, ``NUMBA_NUM_THREADS``).

        Returns
        -------
        ClusterTable
        """
        frames = self._check_frames(frames, 3)
        frame_numbers = self._frame_numbers(frame_numbers, len(frames))
        n_threads = numba.get_num_threads() if n_threads is None else int(n_threads)
        if n_threads < 1:
            raise DedkitError(f"n_threads must be at least 1, got {n_threads}")
        bands = _band_rows(self.shape[0], n_threads, self.cluster_size[1] // 2)
        parameters = self._fast_parameters(frames)
        if len(bands) < 2 or parameters is None:
            return self._scan_in_order(frames, frame_numbers, parameters)
        pieces = self._run_fast_banded(frames, bands, parameters)
        self._after_fast_run(len(frames))
        return self._table(frame_numbers, pieces)
