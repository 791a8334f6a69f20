"""Coincidence loss of electron-counting cameras (K2, K3) and its correction.

The seed (SerialEM manual) says that on a K2 the electron counts produced per true
electron drop by a factor of ~0.97 at 5, ~0.94 at 7.5, ~0.87 at 10 and ~0.6 at 20
e/physical pixel/s, that even at low dose rates only 0.87 counts are produced per true
electron (Li et al., 2013), and that the K3 behaves the same at 3.75 times the dose rate
(its readout is 3.75 times faster).

Which rates are those?
----------------------
dedkit reads the seed's rates as *true* (incident) dose rates: the sentence speaks of
counts "per true electron" at a dose rate, the rate that causes coincidences is the rate
of arriving electrons, and SerialEM's own linearisation table (``ProcessImage.cpp``) is
tabulated against true rates. Read the other way (as measured rates) the 20 e/s point
would sit at a true rate of 33 e/s.

The curve
---------
``coincidence_factor`` is a generalised dead-time model,

    f(r) = (1 + (r / (s r0)) ** p) ** -q,

which is 1 at r = 0, decreases smoothly and monotonically, and for p = q = 1 is the
classical non-paralysable dead-time loss 1 / (1 + r tau). ``s`` is the camera's
``counting_rate_scale`` (1 for the K2, 3.75 for the K3). The three constants are the
least-squares fit through the seed's four K2 points (residuals +0.006, -0.006, +0.003,
-0.0001). The counted rate r f(r) rises to a maximum at r = s r0 (p q - 1) ** (-1/p)
(38.5 e/physical pixel/s on a K2, 144 on a K3) and falls beyond it, as a counting camera
saturates; a counted rate is therefore invertible only up to that maximum.

The counted rate also carries the detection efficiency: ``counted_rate = true_rate *
coincidence_factor(true_rate) * DETECTION_EFFICIENCY``; :func:`true_rate` inverts it.
All rates are electrons per *physical* pixel per second.
"""

from __future__ import annotations

import numpy as np

from dedkit.camera.models import Camera, get_camera
from dedkit.errors import DedkitError

__all__ = [
    "CURVE_EXPONENT_P",
    "CURVE_EXPONENT_Q",
    "CURVE_RATE",
    "DETECTION_EFFICIENCY",
    "SEED_K2_POINTS",
    "coincidence_factor",
    "counted_rate",
    "max_counted_rate",
    "peak_true_rate",
    "rate_sensitivity",
    "true_rate",
]

#: counts per true electron at low dose rate (seed, after Li et al. 2013)
DETECTION_EFFICIENCY = 0.87

#: the seed's K2 points: (true e/physical pixel/s, counts per true electron from
#: coincidence loss alone)
SEED_K2_POINTS = ((5.0, 0.97), (7.5, 0.94), (10.0, 0.87), (20.0, 0.6))

#: fitted constants of f(r) = (1 + (r / r0) ** p) ** -q for the K2 (r0 in e/physical px/s)
CURVE_RATE = 13.98
CURVE_EXPONENT_P = 2.679
CURVE_EXPONENT_Q = 0.398

# bisection steps for the inverse: the bracket [0, peak] shrinks below one ulp of the peak
_BISECTION_STEPS = 64


def _rate_scale(camera: str | Camera) -> float:
    cam = get_camera(camera)
    if cam.counting_rate_scale is None:
        raise DedkitError(f"the {cam.name} does not count electrons: it has no coincidence loss")
    return float(cam.counting_rate_scale)


def _as_rates(values, what: str) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DedkitError(f"{what} must be numbers") from None
    if not np.all(np.isfinite(a)):
        raise DedkitError(f"{what} must be finite")
    if np.any(a < 0):
        raise DedkitError(f"{what} must not be negative (got {a.min():g})")
    return a


def _result(a: np.ndarray):
    # numpy scalar for scalar input, array otherwise
    return a[()] if a.ndim == 0 else a


def _factor(rate: np.ndarray, scale: float) -> np.ndarray:
    x = rate / (scale * CURVE_RATE)
    return (1.0 + x**CURVE_EXPONENT_P) ** -CURVE_EXPONENT_Q


def coincidence_factor(true_rate, camera: str | Camera = "K2"):
    """Counts per true electron from coincidence loss alone.

    Parameters
    ----------
    true_rate : float or ndarray
        True (incident) dose rates, electrons per physical pixel per second, >= 0.
    camera : str or Camera
        ``"K2"`` or ``"K3"`` (or a counting :class:`~dedkit.camera.models.Camera`).

    Returns
    -------
    ndarray
        The factor in (0, 1], 1 at rate 0, same shape as ``true_rate`` (a numpy scalar
        for scalar input).

    Raises
    ------
    DedkitError
        Negative or non-finite rates, or a camera that does not count.
    """
    scale = _rate_scale(camera)
    return _result(_factor(_as_rates(true_rate, "dose rates"), scale))


def counted_rate(true_rate, camera: str | Camera = "K2"):
    """Counted electrons per physical pixel per second for a true dose rate:
    ``true_rate * coincidence_factor(true_rate) * DETECTION_EFFICIENCY``.

    Parameters
    ----------
    true_rate : float or ndarray
        True dose rates (e/physical pixel/s), >= 0.
    camera : str or Camera
        ``"K2"`` or ``"K3"``.

    Returns
    -------
    ndarray
        Same shape as ``true_rate`` (numpy scalar for scalar input).
    """
    scale = _rate_scale(camera)
    r = _as_rates(true_rate, "dose rates")
    return _result(r * _factor(r, scale) * DETECTION_EFFICIENCY)


def peak_true_rate(camera: str | Camera = "K2") -> float:
    """True dose rate at which the counted rate is largest (e/physical pixel/s); beyond
    it more electrons give fewer counts and the counted rate cannot be inverted."""
    scale = _rate_scale(camera)
    pq = CURVE_EXPONENT_P * CURVE_EXPONENT_Q
    return float(scale * CURVE_RATE * (pq - 1.0) ** (-1.0 / CURVE_EXPONENT_P))


def max_counted_rate(camera: str | Camera = "K2") -> float:
    """The largest counted rate the camera produces (at :func:`peak_true_rate`)."""
    return float(counted_rate(peak_true_rate(camera), camera))


def rate_sensitivity(true_rate, camera: str | Camera = "K2"):
    """d ln(counted rate) / d ln(true rate): 1 at low rate, 0 at :func:`peak_true_rate`.

    Its inverse is how much the correction amplifies a relative error of the counted
    rate (counting noise, a wrong gain) in the corrected true rate.

    Parameters
    ----------
    true_rate : float or ndarray
        True dose rates (e/physical pixel/s), >= 0.
    camera : str or Camera
        ``"K2"`` or ``"K3"``.

    Returns
    -------
    ndarray
        Same shape as ``true_rate`` (numpy scalar for scalar input).
    """
    scale = _rate_scale(camera)
    xp = (_as_rates(true_rate, "dose rates") / (scale * CURVE_RATE)) ** CURVE_EXPONENT_P
    return _result(1.0 - CURVE_EXPONENT_P * CURVE_EXPONENT_Q * xp / (1.0 + xp))


def true_rate(counted, camera: str | Camera = "K2"):
    """True dose rate for a counted rate: the inverse of :func:`counted_rate`.

    Parameters
    ----------
    counted : float or ndarray
        Counted electrons per physical pixel per second, >= 0.
    camera : str or Camera
        ``"K2"`` or ``"K3"``.

    Returns
    -------
    ndarray
        True dose rates (e/physical pixel/s) on the rising branch of the curve, same shape
        as ``counted`` (numpy scalar for scalar input).

    Raises
    ------
    DedkitError
        A counted rate above :func:`max_counted_rate` (no true rate gives it: the camera
        saturates), or a negative or non-finite one.
    """
    scale = _rate_scale(camera)
    c = _as_rates(counted, "counted rates")
    peak = peak_true_rate(camera)
    top = float(counted_rate(peak, camera))
    if np.any(c > top):
        raise DedkitError(
            f"a counted rate of {c.max():.4g} e/physical pixel/s is beyond what the "
            f"{get_camera(camera).name} can count (at most {top:.4g}, reached at a true "
            f"rate of {peak:.4g}): the dose rate cannot be recovered"
        )
    # vectorised bisection on the rising branch [0, peak], where counted_rate is monotone
    lo = np.zeros_like(c)
    hi = np.full_like(c, peak)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        below = mid * _factor(mid, scale) * DETECTION_EFFICIENCY < c
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return _result(np.where(c == 0, 0.0, 0.5 * (lo + hi)))
