"""Frame alignment: global and local motion of a movie, aligned and dose-weighted sums.

Array in, array out, for any frame series (counting-camera movies, MÖNCH
super-resolution images):

- :func:`estimate_motion`: global shifts (each frame against the sum of the others,
  iterated; or all pairs), optionally a local field on a patch grid
  (:mod:`~dedkit.frames.align.motion`, :mod:`~dedkit.frames.align.local`);
- :class:`AlignedSums`, :func:`apply_motion`: the motion applied to full-resolution
  frames, streamed into the plain, dose-weighted and half sums
  (:mod:`~dedkit.frames.align.apply`); dose weights are
  :class:`dedkit.frames.DoseWeights`;
- :func:`drift_summary`: total, early and late drift and the largest jump
  (:mod:`~dedkit.frames.align.drift`).

Shifts are ``(dx, dy)`` in the pixels of the frames given: the specimen's displacement in
frame i relative to the aligned sum (x along columns, y along rows, row 0 at the bottom
for counting-camera frames); the sum's reference is the mean position over the frames.

Examples
--------
>>> import numpy as np
>>> from dedkit.frames.align import estimate_motion, AlignedSums
>>> rng = np.random.default_rng(0)
>>> specimen = np.fft.fft2(rng.normal(size=(96, 96)))
>>> ky, kx = np.fft.fftfreq(96)[:, None], np.fft.fftfreq(96)[None, :]
>>> specimen /= np.maximum(np.hypot(kx, ky), 1 / 96)   # a 1/f random specimen
>>> truth = [(2.0, 0.0), (0.0, 0.0), (-2.0, 0.0)]
>>> frames = np.array([np.fft.ifft2(specimen * np.exp(-2j * np.pi * (kx * dx + ky * dy))).real
...                    for dx, dy in truth], np.float32)
>>> motion = estimate_motion(frames, smooth=False)
>>> (np.round(motion.shifts) + 0.0).tolist()
[[2.0, 0.0], [0.0, 0.0], [-2.0, 0.0]]
>>> sums = AlignedSums(frames.shape[1:], motion)
>>> for i, frame in enumerate(frames):
...     sums.add(i, frame)
>>> aligned = sums.result()["sum"]
>>> bool(np.corrcoef(aligned.ravel(), frames[1].ravel())[0, 1] > 0.999)
True
"""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.align.apply import AlignedSums, apply_motion, warp_frame
from dedkit.frames.align.drift import DriftSummary, drift_summary
from dedkit.frames.align.local import DEFAULT_LOCAL_BFACTOR, LocalMotion, estimate_local_motion
from dedkit.frames.align.motion import (
    DEFAULT_BFACTOR,
    MotionEstimate,
    estimate_global_motion,
)

__all__ = [
    "DEFAULT_BFACTOR",
    "DEFAULT_LOCAL_BFACTOR",
    "AlignedSums",
    "DriftSummary",
    "LocalMotion",
    "MotionEstimate",
    "apply_motion",
    "drift_summary",
    "estimate_global_motion",
    "estimate_local_motion",
    "estimate_motion",
    "warp_frame",
]


def estimate_motion(
    frames,
    *,
    group: int = 1,
    patches=None,
    bfactor: float = DEFAULT_BFACTOR,
    local_bfactor: float | None = None,
    local_group: int | None = None,
    iterations: int = 20,
    tolerance: float = 0.01,
    method: str = "iterative",
    max_shift: float | None = None,
    smooth: bool = True,
    progress=None,
) -> MotionEstimate:
    """Global motion of a movie and, with ``patches``, a local field on top.

    Parameters
    ----------
    frames : array, shape (n, ny, nx)
        Gain-normalised frames (usually an antialiased reduced copy of the movie).
    group : int
        Frames summed in a running window before correlating (alignframes ``-group``).
    patches : (n_x, n_y), optional
        Patch grid for the local field (MotionCor2 ``-Patch``), e.g. (5, 5).
    bfactor : float
        Low-pass exp(-B k^2/4) of the correlations, B in square pixels of ``frames``.
    local_bfactor : float, optional
        The same for the patches (default 500: a patch has a fraction of the counts).
    local_group : int, optional
        ``group`` for the patches (default: ``group``, at least 3, at most half the
        frames: the field is smooth in time, and a patch's single frames are noisy).
    iterations, tolerance : int, float
        Stop after ``iterations`` or when no shift changes by more than ``tolerance`` px.
    method : {'iterative', 'pairs'}
        Frame against the sum of the others, iterated (default), or all pairs with a
        robust fit (alignframes ``-pair``).
    max_shift : float, optional
        Largest global shift searched, pixels.
    smooth : bool
        Smoothing-spline fit of the trajectory (GCV stiffness).
    progress : callable(done, total), optional
        Called as the global iterations and then the patches finish.

    Returns
    -------
    MotionEstimate
        Shifts and, with ``patches``, a :class:`LocalMotion` in ``local``.
    """
    frames = np.asarray(frames)
    if patches is not None and frames.ndim == 3:
        # check the grid before the (long) global estimate
        from dedkit.frames.align.local import _check_patches

        _check_patches(patches, frames.shape[1:])
    estimate = estimate_global_motion(
        frames,
        group=group,
        bfactor=bfactor,
        iterations=iterations,
        tolerance=tolerance,
        method=method,
        max_shift=max_shift,
        smooth=smooth,
        progress=progress,
    )
    if patches is None:
        return estimate
    if not isinstance(patches, tuple | list) or len(patches) != 2:
        raise DedkitError(f"patches must be (n_x, n_y), got {patches!r}")
    local = estimate_local_motion(
        frames,
        estimate.shifts,
        patches,
        bfactor=DEFAULT_LOCAL_BFACTOR if local_bfactor is None else local_bfactor,
        iterations=iterations,
        tolerance=tolerance,
        group=local_group if local_group is not None else min(max(group, 3), len(frames) // 2),
        progress=progress,
    )
    return MotionEstimate(
        shifts=estimate.shifts,
        local=local,
        iterations=estimate.iterations,
        converged=estimate.converged,
    )
