"""aare's cluster-finder loop in plain Python: the reference the fast kernels are tested on.

PSI aare's ``ClusterFinder::find_clusters`` and ``Pedestal::push`` / ``push_fast``
(``include/aare/ClusterFinder.hpp`` and ``include/aare/Pedestal.hpp``, release
2025.11.21), written out pixel by pixel with Python floats (IEEE float64, rounded after
each operation as aare's compiled code rounds them). It makes the decisions of
:class:`dedkit.hpd.finder.ClusterFinder` and of its fast kernels
(:mod:`dedkit.hpd.finder_fast`), with none of their tricks, so that a test can check them
without aare, bit for bit: the same clusters and the same pedestal state.

It is slow (about 10 microseconds a pixel): for small frames in tests, not for data.

Examples
--------
>>> import numpy as np
>>> finder = ReferenceFinder((4, 5), window=2)
>>> finder.push_pedestal_frame(np.full((4, 5), 100, np.uint16))
>>> finder.push_pedestal_frame(np.full((4, 5), 102, np.uint16))
>>> frame = np.full((4, 5), 101, np.uint16)
>>> frame[1, 2] = 150  # a photon
>>> clusters = finder.find_clusters(frame)
>>> clusters.x.tolist(), clusters.y.tolist()
([2], [1])
>>> clusters.data[0].tolist()
[[0, 0, 0], [0, 49, 0], [0, 0, 0]]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["ReferenceFinder", "ReferenceClusters"]


class ReferenceClusters(NamedTuple):
    """Clusters in the order aare emits them (frame, then row, then column)."""

    #: (n,) int64: the frame number given with each frame
    frame: np.ndarray
    #: (n,) int32: column of the pixel that holds the cluster's maximum
    x: np.ndarray
    #: (n,) int32: its row
    y: np.ndarray
    #: (n, size_y, size_x): frame - pedestal around it, 0 outside the frame
    data: np.ndarray


class ReferenceFinder:
    """aare's ``ClusterFinder`` with its float64 ``Pedestal``, one pixel at a time.

    Parameters
    ----------
    shape : (ny, nx)
        Frame shape (rows, columns).
    cluster_size : (size_x, size_y)
        Neighbourhood searched and cluster stored (aare's cluster types: 3 or more each).
    nsigma : float
        Threshold in units of each pixel's noise.
    window : int
        aare's pedestal ``n_samples`` (1000 in its cluster finder).
    dtype : int32, float32 or float64
        Type of the stored pixel values (aare's ``Cluster3x3i``, ``f``, ``d``).

    Attributes
    ----------
    sum, sum2, mean : (ny, nx) float64
        aare's pedestal state: sum and sum of squares of the samples, cached mean.
    count : (ny, nx) uint32
        Samples in each pixel's sums (aare's ``m_cur_samples``, at most ``window``).
    """

    def __init__(self, shape, cluster_size=(3, 3), nsigma=5.0, window=1000, dtype=np.int32):
        ny, nx = (int(n) for n in shape)
        self.shape = (ny, nx)
        self.size_x, self.size_y = (int(n) for n in cluster_size)
        self.nsigma = float(nsigma)
        self.window = int(window)
        self.dtype = np.dtype(dtype)
        self.sum = np.zeros(self.shape)
        self.sum2 = np.zeros(self.shape)
        self.mean = np.zeros(self.shape)
        self.count = np.zeros(self.shape, np.uint32)

    # -- aare's Pedestal ----------------------------------------------------------------

    def push_pedestal_frame(self, frame) -> None:
        """aare ``Pedestal::push`` of a dark frame: every pixel, in raster order."""
        ny, nx = self.shape
        for row in range(ny):
            for col in range(nx):
                self._push(row, col, float(frame[row, col]))

    def _push(self, row, col, value):
        # Pedestal::push(row, col, value): fill the window, then replace an average sample
        s, s2, n = float(self.sum[row, col]), float(self.sum2[row, col]), int(self.count[row, col])
        if n < self.window:
            s = s + value
            s2 = s2 + value * value
            n = n + 1
        else:
            s = s + (value - s / self.window)
            s2 = s2 + (value * value - s2 / self.window)
        self.sum[row, col], self.sum2[row, col], self.count[row, col] = s, s2, n
        self.mean[row, col] = s / n

    def _push_fast(self, row, col, value):
        # Pedestal::push_fast: as if the window were full, whatever the count (the
        # count stays, and the mean is sum / window even if fewer samples were pushed)
        s, s2 = float(self.sum[row, col]), float(self.sum2[row, col])
        s = s + (value - s / self.window)
        s2 = s2 + (value * value - s2 / self.window)
        self.sum[row, col], self.sum2[row, col] = s, s2
        self.mean[row, col] = s / self.window

    def _rms(self, row, col):
        # Pedestal::std: sqrt(sum2 / count - mean**2), 0 without samples; a variance
        # that rounds below 0 gives NaN, which fails every comparison below
        n = int(self.count[row, col])
        if n == 0:
            return 0.0
        m = float(self.mean[row, col])
        variance = float(self.sum2[row, col]) / n - m * m
        return math.sqrt(variance) if variance >= 0.0 else math.nan

    # -- aare's ClusterFinder::find_clusters ----------------------------------------------

    def _stored_value(self, frame_value, mean):
        # aare 2025.11.21: static_cast<CT>(frame) - static_cast<CT>(pedestal), so an
        # int32 cluster truncates the pedestal towards zero and a float32 one subtracts
        # in float32 (aare 2026.3.17 rounds frame - pedestal instead)
        if self.dtype == np.int32:
            return int(frame_value) - int(mean)
        if self.dtype == np.float32:
            return np.float32(frame_value) - np.float32(mean)
        return float(frame_value) - mean

    def find_clusters(self, frame, frame_number=0) -> ReferenceClusters:
        """Clusters of one frame, updating the pedestal of its dark pixels as aare does."""
        ny, nx = self.shape
        dy, dx = self.size_y // 2, self.size_x // 2
        # an even size has no centre: one more pixel on the negative side
        rows = range(-dy, dy + self.size_y % 2)
        cols = range(-dx, dx + self.size_x % 2)
        c3 = math.sqrt(self.size_x * self.size_y)
        found = []
        for iy in range(ny):
            for ix in range(nx):
                # the pedestal as it stands now: already updated for the pixels before
                # this one in this frame (rows above, pixels to the left)
                rms = self._rms(iy, ix)
                value = float(frame[iy, ix]) - float(self.mean[iy, ix])
                if value < -self.nsigma * rms:
                    continue  # far below the pedestal: no cluster, no update
                high = 0.0  # numeric_limits<uint16_t>::min()
                total = 0.0
                for ir in rows:
                    for ic in cols:
                        r, c = iy + ir, ix + ic
                        if 0 <= r < ny and 0 <= c < nx:
                            v = float(frame[r, c]) - float(self.mean[r, c])
                            total += v
                            high = v if high < v else high  # std::max(high, v)
                if high > self.nsigma * rms:
                    if value < high:
                        continue  # a photon, but the maximum is elsewhere
                elif total > c3 * self.nsigma * rms:
                    pass  # charge shared over the neighbourhood: a cluster
                else:
                    self._push_fast(iy, ix, float(frame[iy, ix]))  # a dark pixel
                    continue
                if value == high:  # ties: every pixel equal to the maximum stores one
                    data = np.zeros((self.size_y, self.size_x), self.dtype)
                    for k, ir in enumerate(rows):
                        for j, ic in enumerate(cols):
                            r, c = iy + ir, ix + ic
                            if 0 <= r < ny and 0 <= c < nx:
                                data[k, j] = self._stored_value(frame[r, c], float(self.mean[r, c]))
                    found.append((frame_number, ix, iy, data))
        return self._clusters(found)

    def find_clusters_in_frames(self, frames, frame_numbers=None) -> ReferenceClusters:
        """:meth:`find_clusters` on each frame in turn (frame numbers 0, 1, ... by default)."""
        if frame_numbers is None:
            frame_numbers = range(len(frames))
        pieces = [self.find_clusters(f, n) for f, n in zip(frames, frame_numbers, strict=True)]
        return ReferenceClusters(*(np.concatenate(arrays) for arrays in zip(*pieces, strict=True)))

    def _clusters(self, found) -> ReferenceClusters:
        data = np.zeros((len(found), self.size_y, self.size_x), self.dtype)
        for i, cluster in enumerate(found):
            data[i] = cluster[3]
        return ReferenceClusters(
            np.array([c[0] for c in found], np.int64),
            np.array([c[1] for c in found], np.int32),
            np.array([c[2] for c in found], np.int32),
            data,
        )
