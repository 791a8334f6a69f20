"""What a trajectory says about a movie: total, early and late drift, the largest jump.

The figures a facility screens a session by. Early and late motion follow RELION's
``rlnAccumMotionEarly``/``rlnAccumMotionLate``: the path length over the frames whose
accumulated dose is within the first 4 e/A^2 (RELION's ``dose_motionstats_cutoff``), and
over the rest; without a known dose the first :data:`EARLY_FRAMES` frames count as early.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedkit.errors import DedkitError

__all__ = ["EARLY_DOSE", "EARLY_FRAMES", "DriftSummary", "drift_summary"]

#: accumulated dose (e/A^2) that ends the early frames (RELION's cut-off)
EARLY_DOSE = 4.0
#: early frames when no dose is known
EARLY_FRAMES = 3


@dataclass(frozen=True)
class DriftSummary:
    """Drift of one movie, in the units of the shifts it was computed from.

    Attributes
    ----------
    total : float
        Path length of the whole trajectory.
    early, late : float
        Path length over the early frames and over the rest (``early + late == total``).
    early_frames : int
        Frames counted as early.
    max_jump : float
        Largest frame-to-frame displacement.
    """

    total: float
    early: float
    late: float
    early_frames: int
    max_jump: float


def drift_summary(shifts, frame_doses=None, *, early_dose: float = EARLY_DOSE,
                  pre_dose: float = 0.0) -> DriftSummary:  # fmt: skip
    """Total, early and late drift and the largest jump of a trajectory.

    Parameters
    ----------
    shifts : (n, 2) array
        Shift of each frame.
    frame_doses : (n,) array, optional
        Dose of each frame (e/A^2); None counts the first :data:`EARLY_FRAMES` as early.
    early_dose : float
        Accumulated dose (pre-dose included) up to which a frame is early: a frame is
        early when the dose before it is below ``early_dose``.
    pre_dose : float
        Dose before the first frame.

    Returns
    -------
    DriftSummary

    Examples
    --------
    >>> s = drift_summary([[0, 0], [3, 4], [3, 5], [3, 6]], frame_doses=[2, 2, 2, 2])
    >>> s.total, s.early, s.late, s.early_frames, s.max_jump
    (7.0, 5.0, 2.0, 2, 5.0)
    """
    shifts = np.asarray(shifts, np.float64)
    if shifts.ndim != 2 or shifts.shape[1] != 2 or len(shifts) < 1:
        raise DedkitError(f"shifts must be (n, 2) with n >= 1, got shape {shifts.shape}")
    n = len(shifts)
    steps = np.hypot(*np.diff(shifts, axis=0).T) if n > 1 else np.zeros(0)
    if frame_doses is None:
        n_early = min(EARLY_FRAMES, n)
    else:
        doses = np.asarray(frame_doses, np.float64)
        if doses.shape != (n,):
            raise DedkitError(f"{len(doses)} frame doses for {n} frames")
        before = pre_dose + np.concatenate([[0.0], np.cumsum(doses)[:-1]])
        n_early = int(np.count_nonzero(before < early_dose))
    # a step belongs to the early part when it ends on an early frame
    early = float(steps[: max(0, n_early - 1)].sum())
    total = float(steps.sum())
    return DriftSummary(
        total=total,
        early=early,
        late=total - early,
        early_frames=n_early,
        max_jump=float(steps.max()) if steps.size else 0.0,
    )
