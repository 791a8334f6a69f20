"""Super-resolution frames of an electron-counting camera (K2/K3), from an intensity image.

The model, step by step (all rates in electrons per *physical* pixel per second, the
image at super-resolution sampling: 2 x 2 super-resolution pixels per physical pixel):

1. **Arrivals.** Electrons arrive independently: the number landing in a super-resolution
   pixel during a frame is Poisson with mean ``image x dose_rate x frame_time / 4``
   (``image`` is the relative intensity, 1 = the nominal dose rate).
2. **Localisation.** The camera finds each electron's event centroid with a Gaussian
   error of ``localisation_sigma`` physical pixels per axis and counts the electron in the
   super-resolution pixel holding the estimate. With the true position uniform within its
   super-resolution pixel, the electron lands ``d`` pixels away along an axis with
   probability ``q_d = integral_0^1 [Phi((d + 1 - u) / s) - Phi((d - u) / s)] du``
   (s = sigma in super-resolution pixels), independently in X and Y. The default,
   sigma = 0.2 physical pixels, puts 47 % of electrons in the right super-resolution
   pixel, 11 % in each edge neighbour and 2.5 % in each corner one (per axis: 68 % right,
   16 % either side), and gives a localisation MTF of 0.82 at the physical Nyquist and
   0.45 at the super-resolution Nyquist: super-resolution images carry signal beyond the
   physical Nyquist, as the K2/K3's do. Source of sigma: the K2 Summit's DQE at 300 kV,
   0.80 / 0.56 / 0.23 at 0, Nyquist/2 and Nyquist (McMullan et al. 2014, Ultramicroscopy
   147:156). For counting noise that stays white, DQE(f) / DQE(0) = MTF(f)^2; dividing
   that MTF (0.84, 0.54) by the physical pixel's own sinc (0.90, 0.64) leaves a Gaussian
   of sigma 0.24 and 0.19 physical pixels at Nyquist/2 and Nyquist: 0.2.
3. **Coincidence loss.** ``coincidence_factor(rate, camera)`` of the electrons are kept
   (:mod:`dedkit.camera.coincidence`), the rate being the frame's true dose rate per
   physical pixel (the image's mean x ``dose_rate``). With ``local_coincidence`` each
   physical pixel uses its own rate (its 2 x 2 block's mean x ``dose_rate``) instead: a
   blocky modulation of the image, since real coincidences happen over an event's
   footprint of a few pixels, so the frame's rate is the default.
4. **Detection efficiency.** 0.87 counts per true electron even at low rates
   (``DETECTION_EFFICIENCY``; the seed after Li et al. 2013).
5. **Gain and defects (optional).** A pixel counts ``sensitivity`` times as often (the
   non-uniformity a gain reference corrects); hot pixels read full scale, dead ones 0.

Losses 3-5 remove electrons independently (thinning) and localisation moves them
independently, so each pixel's count stays Poisson with the mean the steps give: a frame
is drawn as one Poisson array of that mean, which is the same distribution as following
every electron, without a loop over electrons. Real coincidence loss makes counts slightly
sub-Poissonian; that is left out.

For the dose-rate and reduction studies (:mod:`dedkit.studies.reduction_frc`). The raw
frames a gain reference and a defect list are made from (no localisation or coincidence
model) are :mod:`dedkit.sim.counting_raw`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import convolve1d
from scipy.special import ndtr

from dedkit.camera.coincidence import DETECTION_EFFICIENCY, coincidence_factor
from dedkit.errors import DedkitError

__all__ = [
    "SUPERRES",
    "LOCALISATION_SIGMA",
    "SuperResModel",
    "localisation_kernel",
    "assignment_probabilities",
    "expected_counts",
    "simulate_frames",
    "simulate_exposure",
]

#: super-resolution pixels per physical pixel along each axis (K2, K3)
SUPERRES = 2
#: default centroid error per axis, physical pixels (see the module)
LOCALISATION_SIGMA = 0.2


@dataclass
class SuperResModel:
    """How a counting camera turns arriving electrons into super-resolution counts.

    Attributes
    ----------
    camera : str
        'K2' or 'K3' (sets the coincidence-loss curve).
    localisation_sigma : float
        Centroid error per axis, physical pixels (0: perfect localisation).
    detection_efficiency : float
        Counts per true electron at low rate.
    coincidence : bool
        Apply coincidence loss.
    local_coincidence : bool
        Coincidence loss at each physical pixel's own dose rate instead of the frame's.
    """

    camera: str = "K2"
    localisation_sigma: float = LOCALISATION_SIGMA
    detection_efficiency: float = DETECTION_EFFICIENCY
    coincidence: bool = True
    local_coincidence: bool = False


def _antiderivative_phi(t):
    # G(t) = t Phi(t) + phi(t), so that G' = Phi
    return t * ndtr(t) + np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


def localisation_kernel(sigma: float) -> np.ndarray:
    """Per-axis probabilities ``q_d`` that an electron is counted ``d`` super-resolution
    pixels from the one it landed in, d = -r .. r (centre at index r).

    Parameters
    ----------
    sigma : float
        Centroid error, super-resolution pixels (>= 0).
    """
    if not sigma >= 0 or not math.isfinite(sigma):
        raise DedkitError(f"the localisation error must be >= 0, got {sigma}")
    if sigma == 0:
        return np.ones(1)
    r = int(math.ceil(6 * sigma)) + 1
    d = np.arange(-r, r + 1, dtype=np.float64)

    def integral(c):
        # integral over u in [0, 1] of Phi((c - u) / sigma)
        return sigma * (_antiderivative_phi(c / sigma) - _antiderivative_phi((c - 1) / sigma))

    q = integral(d + 1) - integral(d)
    return q / q.sum()


def assignment_probabilities(model: SuperResModel | None = None) -> dict:
    """Where an electron is counted: the right super-resolution pixel, one edge neighbour,
    one corner neighbour, anywhere farther (2D, from :func:`localisation_kernel`)."""
    model = model or SuperResModel()
    q = localisation_kernel(model.localisation_sigma * SUPERRES)
    c = len(q) // 2
    q0 = q[c]
    q1 = q[c + 1] if len(q) > 1 else 0.0
    right, edge, corner = q0 * q0, q0 * q1, q1 * q1
    return {
        "right": float(right),
        "edge": float(edge),
        "corner": float(corner),
        "farther": float(max(0.0, 1.0 - right - 4 * edge - 4 * corner)),
    }


def _check_image(image) -> np.ndarray:
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise DedkitError(f"the intensity image must be 2D, got shape {image.shape}")
    ny, nx = image.shape
    if ny % SUPERRES or nx % SUPERRES or ny == 0 or nx == 0:
        raise DedkitError(
            f"a super-resolution image needs an even size ({SUPERRES} x {SUPERRES} pixels "
            f"per physical pixel), got {nx} x {ny}"
        )
    if not np.all(np.isfinite(image)) or image.min() < 0:
        raise DedkitError("the intensity image must be finite and not negative")
    return image


def _physical_mean(image: np.ndarray) -> np.ndarray:
    ny, nx = image.shape
    return image.reshape(ny // SUPERRES, SUPERRES, nx // SUPERRES, SUPERRES).mean(axis=(1, 3))


def expected_counts(
    image: np.ndarray,
    dose_rate: float,
    frame_time: float,
    model: SuperResModel | None = None,
    *,
    sensitivity: np.ndarray | None = None,
) -> np.ndarray:
    """Mean counts per super-resolution pixel in one frame (steps 1-5 of the module).

    Parameters
    ----------
    image : (ny, nx) array
        Relative intensity at super-resolution sampling (ny, nx even), >= 0.
    dose_rate : float
        True electrons per physical pixel per second where ``image == 1``.
    frame_time : float
        Seconds per frame.
    model : SuperResModel, optional
    sensitivity : (ny, nx) array, optional
        Relative gain of each super-resolution pixel.

    Returns
    -------
    (ny, nx) float64 array
    """
    model = model or SuperResModel()
    image = _check_image(image)
    if not (dose_rate >= 0 and frame_time > 0):
        raise DedkitError("the dose rate must be >= 0 and the frame time > 0")
    arrivals = image * (dose_rate * frame_time / SUPERRES**2)
    q = localisation_kernel(model.localisation_sigma * SUPERRES)
    if len(q) > 1:
        # electrons counted beyond the edge are lost and others come in from beyond it:
        # the field continues past the sensor as its mirror image
        arrivals = convolve1d(arrivals, q, axis=0, mode="reflect")
        arrivals = convolve1d(arrivals, q, axis=1, mode="reflect")
    kept = model.detection_efficiency
    if model.coincidence and model.local_coincidence:
        factor = coincidence_factor(_physical_mean(image) * dose_rate, model.camera)
        kept = kept * np.repeat(np.repeat(factor, SUPERRES, axis=0), SUPERRES, axis=1)
    elif model.coincidence:
        kept = kept * float(coincidence_factor(image.mean() * dose_rate, model.camera))
    counts = arrivals * kept
    if sensitivity is not None:
        sensitivity = np.asarray(sensitivity, np.float64)
        if sensitivity.shape != image.shape:
            raise DedkitError(
                f"sensitivity of shape {sensitivity.shape} does not fit image {image.shape}"
            )
        counts = counts * sensitivity
    return counts


def _defects(counts, hot, dead, full_scale):
    if hot is not None:
        counts[np.asarray(hot, bool)] = full_scale
    if dead is not None:
        counts[np.asarray(dead, bool)] = 0
    return counts


def simulate_frames(
    image: np.ndarray,
    dose_rate: float,
    frame_time: float,
    n_frames: int,
    rng: np.random.Generator,
    *,
    model: SuperResModel | None = None,
    sensitivity: np.ndarray | None = None,
    hot: np.ndarray | None = None,
    dead: np.ndarray | None = None,
    max_count: int = 15,
) -> np.ndarray:
    """Raw super-resolution counting frames.

    Parameters
    ----------
    image, dose_rate, frame_time, model, sensitivity
        As :func:`expected_counts`.
    n_frames : int
    rng : numpy.random.Generator
    hot, dead : (ny, nx) bool arrays, optional
        Pixels that always read ``max_count`` / 0.
    max_count : int
        Counts saturate here (15: 4-bit frames).

    Returns
    -------
    (n_frames, ny, nx) uint8 array (Y up)
    """
    if not 0 < max_count <= 255:
        raise DedkitError(f"max_count must be 1..255, got {max_count}")
    mean = expected_counts(image, dose_rate, frame_time, model, sensitivity=sensitivity)
    frames = rng.poisson(mean, size=(int(n_frames), *mean.shape))
    np.minimum(frames, max_count, out=frames)
    frames = frames.astype(np.uint8)
    for f in frames:
        _defects(f, hot, dead, max_count)
    return frames


def simulate_exposure(
    image: np.ndarray,
    dose_rate: float,
    frame_time: float,
    n_frames: int,
    rng: np.random.Generator,
    *,
    model: SuperResModel | None = None,
    sensitivity: np.ndarray | None = None,
    hot: np.ndarray | None = None,
    dead: np.ndarray | None = None,
    max_count: int = 15,
) -> np.ndarray:
    """The sum of ``n_frames`` frames without per-frame saturation, drawn at once.

    A sum of independent Poisson frames is Poisson with the summed mean, so this is the
    same distribution as summing :func:`simulate_frames` whenever no frame saturates, at
    the cost of one frame. Hot pixels read ``max_count x n_frames``.

    Returns
    -------
    (ny, nx) int64 array
    """
    mean = expected_counts(image, dose_rate, frame_time, model, sensitivity=sensitivity)
    counts = rng.poisson(mean * int(n_frames))
    return _defects(counts, hot, dead, max_count * int(n_frames))
