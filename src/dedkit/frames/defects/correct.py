"""Correction of frames with a prepared defect list: :class:`DefectCorrector`.

A corrector turns :class:`~dedkit.frames.defects.prepare.PreparedDefects` into the plan
for one frame shape (pixels to fill with the image mean or from their neighbours, edge
lines, bands of columns and rows, in frame coordinates) and runs
:func:`~dedkit.frames.defects.kernels._correct_frame` on each frame, carrying IMOD's
generators from frame to frame. :func:`correct_defects` does both for one call.
"""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.defects.kernels import (
    _SEED_COLUMN,
    _SEED_FLOAT,
    _SEED_INT_SUM,
    _correct_frame,
)
from dedkit.frames.defects.prepare import PreparedDefects, prepare_defects
from dedkit.records.defects import DefectList

__all__ = ["DefectCorrector", "correct_defects"]

# IMOD samples about this many pixels for the image mean given to touching pixels.
MEAN_SAMPLE_PIXELS = 30000


def _mean_sample_positions(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns IMOD's sampleMinMaxMeanSD reads for the image mean."""
    n_pixels = nx * ny
    sample = np.float32(min(1.0, MEAN_SAMPLE_PIXELS / n_pixels))
    n_sample = int(np.float64(sample) * n_pixels)
    if nx < 2 or ny < 2 or n_sample < 5 or n_sample >= n_pixels:
        # IMOD gives no mean for a tiny image; every pixel is the natural sample.
        dx = dy = 1
    else:
        dy = int(np.floor(1.0 / np.float64(np.float32(np.sqrt(np.float64(sample)))) + 0.5))
        dy = min(max(dy, 1), ny // 4)
        per_row = np.float32(max(1.0, np.float32(n_sample) / np.float32(ny // dy)))
        dx = int(np.floor(np.float32(nx) / per_row + 0.5))
        dx = min(max(dx, 1), nx // 4)
    rows, cols = [], []
    for j in range(0, ny, dy):
        # Starting each row at a different column keeps the sample off single columns.
        c = np.arange((j % 17) % dx, nx, dx)
        rows.append(np.full(len(c), j))
        cols.append(c)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def _band_plan(bands, binning, offset_across, offset_along, n_across, n_along, partial):
    """Frame coordinates ``start, num, first, last`` of bands, as CorDefCorrectDefects."""
    plan = []
    for band in bands.tolist():
        start = band[0] // binning
        num = (band[0] + band[1] - 1) // binning + 1 - start
        start -= offset_across
        first, last = 0, n_along - 1
        if partial:
            first = band[2] // binning - offset_along
            last = band[3] // binning - offset_along
            if first >= n_along or last < 0 or first > last:
                continue
            first, last = max(0, first), min(n_along - 1, last)
        if start < 0:
            num += start
            start = 0
        num = min(num, n_across - start)
        # A band covering the whole frame has no good neighbours to fill it from.
        if num <= 0 or num >= n_across:
            continue
        plan.append((start, num, first, last))
    return np.array(plan, dtype=np.int64).reshape(-1, 4)


class DefectCorrector:
    """Corrects frames of one shape with one defect list; build once, apply per frame.

    Parameters
    ----------
    prepared : PreparedDefects
        From :func:`prepare_defects`.

    Notes
    -----
    The pseudo-random generators used for integer rounding and for sampling beside wide
    bad columns start from IMOD's seeds and continue from frame to frame, as in IMOD, so
    the first frame corrected equals IMOD's first frame. Use one corrector per thread.
    """

    def __init__(self, prepared: PreparedDefects):
        g = prepared.geometry
        if not g.y_up:
            raise DedkitError("prepared defects must be in dedkit's rows (Y up)")
        self.prepared = prepared
        ny, nx = prepared.frame_shape
        b, ox, oy = prepared.binning, prepared.offset_x, prepared.offset_y
        self.frame_shape = (ny, nx)

        x = g.bad_pixels[:, 0] // b - ox
        y = g.bad_pixels[:, 1] // b - oy
        inside = (x >= 0) & (y >= 0) & (x < nx) & (y < ny)
        uses_mean = prepared.pixel_uses_mean
        self._mean_x, self._mean_y = x[inside & uses_mean], y[inside & uses_mean]
        self._near_x, self._near_y = x[inside & ~uses_mean], y[inside & ~uses_mean]
        # A binned super-resolution block is a single frame pixel.
        self._blocks = bool(g.was_scaled > 0 and b == 1)
        self._sample_rows, self._sample_cols = _mean_sample_positions(ny, nx)

        a = g.good_area
        low_rows = (a.first_row - 1) // b + 1 - oy if a.first_row > 0 else 0
        high_rows = ny - ((a.last_row + 1) // b - oy) if a.last_row > 0 else 0
        low_cols = (a.first_column - 1) // b + 1 - ox if a.first_column > 0 else 0
        high_cols = nx - ((a.last_column + 1) // b - ox) if a.last_column > 0 else 0
        # Lines to fill at each edge, never so many that no good line is left to copy.
        self._edges = np.array(
            [
                low_rows if 0 < low_rows < ny else 0,
                high_rows if 0 < high_rows < ny else 0,
                low_cols if 0 < low_cols < nx else 0,
                high_cols if 0 < high_cols < nx else 0,
            ],
            dtype=np.int64,
        )
        self._columns = np.concatenate(
            [
                _band_plan(g.column_bands, b, ox, oy, nx, ny, partial=False),
                _band_plan(g.partial_columns, b, ox, oy, nx, ny, partial=True),
            ]
        )
        self._rows = np.concatenate(
            [
                _band_plan(g.row_bands, b, oy, ox, ny, nx, partial=False),
                _band_plan(g.partial_rows, b, oy, ox, ny, nx, partial=True),
            ]
        )
        self.reset_random_state()

    @classmethod
    def from_defects(
        cls,
        defects: DefectList,
        frame_shape: tuple[int, int],
        *,
        rotflip: int | None = None,
        binning: int | None = None,
    ) -> DefectCorrector:
        """Prepare ``defects`` for frames of ``frame_shape`` (see :func:`prepare_defects`)."""
        return cls(prepare_defects(defects, frame_shape, rotflip=rotflip, binning=binning))

    def reset_random_state(self) -> None:
        """Restart IMOD's generators from their seeds (as for a new IMOD run)."""
        self._random_state = np.array([_SEED_INT_SUM, _SEED_FLOAT, _SEED_COLUMN], np.int64)

    def apply(self, frames: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """Correct one frame ``(ny, nx)`` or a stack ``(nz, ny, nx)``, frames in order.

        Parameters
        ----------
        frames : ndarray
            Integer or float frames, row 0 at the bottom.
        out : ndarray, optional
            Where to put the result (same shape and dtype); may be ``frames`` itself to
            correct in place. None: a corrected copy is returned.

        Returns
        -------
        ndarray
            The corrected frames, in the input dtype.
        """
        frames = np.asarray(frames)
        if frames.ndim not in (2, 3) or frames.shape[-2:] != self.frame_shape:
            raise DedkitError(
                f"frames of shape {frames.shape} do not match the defect correction "
                f"prepared for {self.frame_shape[1]} x {self.frame_shape[0]}"
            )
        if frames.dtype.kind not in "iuf":
            raise DedkitError(f"cannot correct defects in {frames.dtype} data")
        if out is None:
            out = frames.copy()
        elif out.shape != frames.shape or out.dtype != frames.dtype:
            raise DedkitError("out must have the same shape and dtype as the frames")
        elif not np.shares_memory(out, frames):
            np.copyto(out, frames)
        elif not _same_array_memory(out, frames):
            raise DedkitError("out overlaps the frames without being the same array")
        stack = out if out.ndim == 3 else out[np.newaxis]
        integer = out.dtype.kind in "iu"
        for frame in stack:
            _correct_frame(
                frame,
                integer,
                self._sample_rows,
                self._sample_cols,
                self._mean_x,
                self._mean_y,
                self._near_x,
                self._near_y,
                self._blocks,
                self._edges,
                self._columns,
                self._rows,
                self._random_state,
            )
        return out


def _same_array_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` view the same elements in the same order (in place)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
    )


def correct_defects(
    frames: np.ndarray,
    defects: DefectList | PreparedDefects,
    *,
    out: np.ndarray | None = None,
    rotflip: int | None = None,
    binning: int | None = None,
) -> np.ndarray:
    """Correct camera defects in a frame or stack as IMOD does.

    For many frames of one stack, build a :class:`DefectCorrector` once and call its
    ``apply``; this function prepares the list anew on every call.

    Parameters
    ----------
    frames : ndarray, (ny, nx) or (nz, ny, nx)
        Row 0 at the bottom; integer or float.
    defects : DefectList or PreparedDefects
    out : ndarray, optional
        See :meth:`DefectCorrector.apply`.
    rotflip, binning : int, optional
        See :func:`prepare_defects` (only for a DefectList).

    Returns
    -------
    ndarray
        Corrected frames in the input dtype.
    """
    frames = np.asarray(frames)
    if isinstance(defects, PreparedDefects):
        if rotflip is not None or binning is not None:
            raise DedkitError("rotflip and binning apply only to an unprepared defect list")
        prepared = defects
    else:
        prepared = prepare_defects(defects, frames.shape[-2:], rotflip=rotflip, binning=binning)
    return DefectCorrector(prepared).apply(frames, out=out)
