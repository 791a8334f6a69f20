"""Motion correction of localised electrons: shifts measured on images of groups of
frames, applied to the events themselves.

A hybrid-pixel run is thousands of frames of a few hundred electrons each; the specimen
drifts across it. The events are split into consecutive groups of ``group_frames``
frames, each group histogrammed into an image (:func:`group_images`), and the groups
aligned by Fourier cross-correlation with :func:`dedkit.frames.align.estimate_motion`
(each group against the sum of the others, iterated, with a B-factor low-pass), as a
dose-fractionated movie is. The shifts, interpolated to every frame, are then taken off
the event positions (:func:`corrected_image`): no image is resampled, so the correction
adds no interpolation blur to the super-resolution image.

Shifts follow :mod:`dedkit.frames.align`: ``(dx, dy)`` in detector pixels, the
specimen's displacement in a group relative to the aligned sum, so the corrected
position of an event is ``(x - dx, y - dy)``.

**Flat field.** Localisers do not spread the electrons of a flat illumination evenly
inside a pixel (:mod:`dedkit.hpd.image`); the correction must undo that pattern where the
event was detected, before its shift moves it to another sub-pixel bin. Each event is
therefore weighted by one over the sub-pixel response at its detected position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.align import drift_summary, estimate_motion
from dedkit.hpd.image import check_upsample, subpixel_response
from dedkit.records.tables import EventTable

__all__ = [
    "EventMotion",
    "corrected_image",
    "estimate_event_motion",
    "group_images",
    "group_of_frames",
]


@dataclass
class EventMotion:
    """The specimen's motion over a run, measured on groups of frames.

    Attributes
    ----------
    first_frame : int
        Frame number of the first frame of group 0.
    group_frames : int
        Frames per group.
    shifts : (n_groups, 2) ndarray
        ``(dx, dy)`` of each group in detector pixels.
    events : (n_groups,) ndarray
        Events in each group.
    """

    first_frame: int
    group_frames: int
    shifts: np.ndarray
    events: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.shifts)

    @property
    def group_centres(self) -> np.ndarray:
        """Frame number at the middle of each group."""
        return self.first_frame + (np.arange(self.n_groups) + 0.5) * self.group_frames - 0.5

    def at(self, frames) -> np.ndarray:
        """Shifts (n, 2) at frame numbers ``frames``: linear between the group centres,
        held beyond the first and last.

        Examples
        --------
        >>> import numpy as np
        >>> m = EventMotion(1, 10, np.array([[0.0, 0.0], [1.0, -2.0]]), np.array([5, 5]))
        >>> m.at([1, 5.5, 10.5, 15.5, 30]).tolist()
        [[0.0, 0.0], [0.0, 0.0], [0.5, -1.0], [1.0, -2.0], [1.0, -2.0]]
        """
        frames = np.asarray(frames, dtype=np.float64)
        centres = self.group_centres
        if self.n_groups == 1:
            return np.repeat(self.shifts[:1], len(frames), axis=0).astype(np.float64)
        return np.stack([np.interp(frames, centres, self.shifts[:, k]) for k in range(2)], axis=1)

    def total_drift(self) -> float:
        """Path length of the trajectory, detector pixels."""
        return drift_summary(self.shifts).total


def _check_group(group_frames) -> int:
    try:
        group = int(group_frames)
    except (TypeError, ValueError):
        raise DedkitError(
            f"frames per group must be a whole number, got {group_frames!r}"
        ) from None
    if group < 1 or group != group_frames:
        raise DedkitError(f"frames per group must be a whole number >= 1, got {group_frames!r}")
    return group


def group_of_frames(frames, first_frame: int, group_frames: int) -> np.ndarray:
    """Group index of each frame number (group 0 starts at ``first_frame``).

    Examples
    --------
    >>> group_of_frames([1, 2, 10, 11, 25], 1, 10).tolist()
    [0, 0, 0, 1, 2]
    """
    group = _check_group(group_frames)
    return (np.asarray(frames, dtype=np.int64) - int(first_frame)) // group


def group_images(
    events: EventTable,
    shape: tuple[int, int],
    *,
    group_frames: int,
    first_frame: int | None = None,
    n_groups: int | None = None,
    upsample: int = 1,
) -> np.ndarray:
    """Count images of consecutive groups of frames.

    Parameters
    ----------
    events : EventTable
    shape : (rows, cols)
        Detector size in pixels.
    group_frames : int
        Frames per group.
    first_frame : int, optional
        Frame number of group 0's first frame (default the events' first frame).
    n_groups : int, optional
        Default: up to the events' last frame.
    upsample : int
        Image bins per pixel along each axis (1-8).

    Returns
    -------
    (n_groups, rows * upsample, cols * upsample) ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.records.tables import EventTable
    >>> events = EventTable(np.array([1, 2, 3]), np.array([0.5, 1.5, 1.5]),
    ...                     np.array([0.5, 0.5, 1.5]), np.ones(3, np.float32))
    >>> group_images(events, (2, 2), group_frames=2).tolist()
    [[[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]
    """
    group = _check_group(group_frames)
    upsample = check_upsample(upsample)
    rows, cols = (int(v) for v in shape)
    frames = np.asarray(events.frame, dtype=np.int64)
    if first_frame is None:
        if not len(frames):
            raise DedkitError("no events to make group images from")
        first_frame = int(frames.min())
    index = group_of_frames(frames, first_frame, group)
    if n_groups is None:
        n_groups = int(index.max()) + 1 if len(index) else 1
    fine_rows, fine_cols = rows * upsample, cols * upsample
    column = np.floor(np.asarray(events.x, np.float64) * upsample)
    row = np.floor(np.asarray(events.y, np.float64) * upsample)
    keep = (
        (index >= 0) & (index < n_groups)
        & (column >= 0) & (column < fine_cols) & (row >= 0) & (row < fine_rows)
    )  # fmt: skip
    group = index[keep]
    pixel = row[keep].astype(np.int64) * fine_cols + column[keep].astype(np.int64)
    # one group at a time into the float32 stack: no integer copy of the whole stack
    order = np.argsort(group, kind="stable")
    group, pixel = group[order], pixel[order]
    edges = np.searchsorted(group, np.arange(n_groups + 1))
    stack = np.empty((n_groups, fine_rows, fine_cols), np.float32)
    for g in range(n_groups):
        counts = np.bincount(pixel[edges[g] : edges[g + 1]], minlength=fine_rows * fine_cols)
        stack[g] = counts.reshape(fine_rows, fine_cols)
    return stack


def estimate_event_motion(
    events: EventTable,
    shape: tuple[int, int],
    *,
    group_frames: int,
    first_frame: int | None = None,
    n_groups: int | None = None,
    upsample: int = 1,
    bfactor: float | None = None,
    max_shift: float | None = None,
    progress=None,
) -> EventMotion:
    """Measure the specimen's drift: group images aligned by cross-correlation.

    Parameters
    ----------
    events : EventTable
    shape : (rows, cols)
        Detector size in pixels.
    group_frames : int
        Frames per group: enough electrons per group for a correlation peak (a few
        thousand electrons at least), few enough to follow the drift.
    first_frame, n_groups : int, optional
        As :func:`group_images`.
    upsample : int
        Bins per pixel of the group images (1: detector pixels).
    bfactor : float, optional
        B-factor of the correlation low-pass in square detector pixels (default 300 in the
        group images' pixels, :data:`dedkit.frames.align.DEFAULT_BFACTOR`).
    max_shift : float, optional
        Largest shift searched, detector pixels.
    progress : callable(done, total), optional

    Returns
    -------
    EventMotion
        Shifts in detector pixels.

    Examples
    --------
    Electrons from a random specimen (bright blobs) that drifts 3 pixels to the right over
    40 frames, 5000 per frame:

    >>> import numpy as np
    >>> from dedkit.records.tables import EventTable
    >>> rng = np.random.default_rng(0)
    >>> blobs = rng.uniform(10, 118, (60, 2))
    >>> def electrons(n, drift_x):
    ...     which = rng.integers(0, 60, n)
    ...     xy = blobs[which] + rng.normal(0, 1.5, (n, 2))
    ...     return xy[:, 0] + drift_x, xy[:, 1]
    >>> parts = [(np.full(5000, f), *electrons(5000, 3.0 * (f - 1) / 39)) for f in range(1, 41)]
    >>> frame, x, y = (np.concatenate(c) for c in zip(*parts))
    >>> events = EventTable(frame, x, y, np.ones(len(x), np.float32))
    >>> motion = estimate_event_motion(events, (128, 128), group_frames=10)
    >>> np.round(motion.shifts[:, 0] - motion.shifts[0, 0], 1).tolist()
    [0.0, 0.8, 1.5, 2.3]
    """
    from dedkit.frames.align import DEFAULT_BFACTOR

    upsample = check_upsample(upsample)
    stack = group_images(
        events, shape, group_frames=group_frames, first_frame=first_frame,
        n_groups=n_groups, upsample=upsample,
    )  # fmt: skip
    if first_frame is None:
        first_frame = int(np.min(events.frame))
    counts = stack.reshape(len(stack), -1).sum(axis=1)
    if len(stack) < 2:
        shifts = np.zeros((len(stack), 2))
    else:
        b = DEFAULT_BFACTOR if bfactor is None else float(bfactor) * upsample**2
        estimate = estimate_motion(
            stack,
            bfactor=b,
            max_shift=None if max_shift is None else float(max_shift) * upsample,
            progress=progress,
        )
        shifts = np.asarray(estimate.shifts, dtype=np.float64) / upsample
    return EventMotion(
        int(first_frame), _check_group(group_frames), shifts, counts.astype(np.int64)
    )


def corrected_image(
    events: EventTable,
    shape: tuple[int, int],
    upsample: int,
    motion: EventMotion | None = None,
    *,
    flat_field: bool = True,
) -> np.ndarray:
    """Super-resolution image of the events with the motion taken off their positions.

    Parameters
    ----------
    events : EventTable
    shape : (rows, cols)
        Detector size in pixels.
    upsample : int
        Image bins per pixel (1-8).
    motion : EventMotion, optional
        None: no correction (the plain super-resolution image).
    flat_field : bool
        Weight each event by one over the events' sub-pixel response at its detected
        position (see the module).

    Returns
    -------
    (rows * upsample, cols * upsample) ndarray of float32
        Events moved outside the detector are left out.

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.records.tables import EventTable
    >>> events = EventTable(np.array([1, 2]), np.array([0.5, 1.5]), np.array([0.5, 0.5]),
    ...                     np.ones(2, np.float32))
    >>> motion = EventMotion(1, 1, np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([1, 1]))
    >>> corrected_image(events, (1, 2), 1, motion, flat_field=False).tolist()
    [[2.0, 0.0]]
    """
    upsample = check_upsample(upsample)
    rows, cols = (int(v) for v in shape)
    x = np.asarray(events.x, dtype=np.float64)
    y = np.asarray(events.y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    frames = np.asarray(events.frame)[finite]
    weight = np.ones(len(x))
    if flat_field and len(x):
        inside = (x >= 0) & (x < cols) & (y >= 0) & (y < rows)
        response = subpixel_response(events[finite][inside], upsample)
        sub_col = np.floor(x * upsample).astype(np.int64) % upsample
        sub_row = np.floor(y * upsample).astype(np.int64) % upsample
        r = response[sub_row, sub_col]
        weight = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    if motion is not None and len(x):
        shift = motion.at(frames)
        x = x - shift[:, 0]
        y = y - shift[:, 1]
    fine_rows, fine_cols = rows * upsample, cols * upsample
    column = np.floor(x * upsample)
    row = np.floor(y * upsample)
    keep = (column >= 0) & (column < fine_cols) & (row >= 0) & (row < fine_rows)
    flat = row[keep].astype(np.int64) * fine_cols + column[keep].astype(np.int64)
    image = np.bincount(flat, weights=weight[keep], minlength=fine_rows * fine_cols)
    return image.reshape(fine_rows, fine_cols).astype(np.float32)
