"""Fourier ring correlation (FRC) between two images and the half-bit threshold.

``FRC(k) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` over the pixels of ring k
(Saxton & Baumeister 1982; van Heel 1987). For two images of independent noise the FRC
of a ring of n pixels scatters about 0 with a standard deviation of 1/sqrt(n). The
half-bit threshold of van Heel & Schatz (2005, J. Struct. Biol. 151:250) is
``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))`` with n the pixels in the
full ring. Rings are those of :mod:`dedkit.metrics.rings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from dedkit.errors import DedkitError
from dedkit.metrics.rings import ring_bins

__all__ = ["FRCResult", "frc", "half_bit_threshold", "mean_frc"]


def half_bit_threshold(n_pixels) -> np.ndarray:
    """van Heel & Schatz's half-bit threshold for rings of ``n_pixels`` pixels."""
    root = np.sqrt(np.asarray(n_pixels, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (0.2071 + 1.9102 / root) / (1.2071 + 0.9102 / root)


@dataclass
class FRCResult:
    """A Fourier ring correlation curve.

    Attributes
    ----------
    frequency : array
        Ring centres as fractions of Nyquist (0 .. 1).
    frc : array
        Correlation per ring (NaN where an image has no power in the ring).
    n_pixels : array
        Pixels of the full plane in each ring.
    threshold : array
        Half-bit threshold per ring.
    """

    frequency: np.ndarray
    frc: np.ndarray
    n_pixels: np.ndarray
    threshold: np.ndarray

    def half_bit_crossing(self) -> float | None:
        """First frequency (fraction of Nyquist, after ring 0) where the FRC falls below
        the half-bit threshold; None if it never does."""
        below = np.nonzero(self.frc[1:] < self.threshold[1:])[0]
        return float(self.frequency[1 + below[0]]) if below.size else None

    def crossing(self, threshold: float = 0.143) -> float | None:
        """First frequency (fraction of Nyquist, after ring 0) where the FRC falls below a
        fixed ``threshold`` (0.143: Rosenthal & Henderson 2003); None if it never does.

        Examples
        --------
        >>> r = FRCResult(np.array([0, .25, .5, .75]), np.array([1, .9, .1, .05]),
        ...               np.ones(4), np.zeros(4))
        >>> r.crossing(0.143)
        0.5
        """
        below = np.nonzero(~(self.frc[1:] >= threshold))[0]
        return float(self.frequency[1 + below[0]]) if below.size else None


def _transform(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise DedkitError(f"cannot transform an image of type {image.dtype}")
    dtype = np.float64 if image.dtype == np.float64 else np.float32
    return scipy.fft.rfft2(image.astype(dtype, copy=False))


def frc(image1: np.ndarray, image2: np.ndarray, n_rings: int | None = None) -> FRCResult:
    """Fourier ring correlation of two images of the same (any) 2D shape.

    Parameters
    ----------
    image1, image2 : (ny, nx) arrays
    n_rings : int, optional
        Rings up to Nyquist; default ``min(ny, nx) // 2``.

    Returns
    -------
    FRCResult
    """
    a, b = np.asarray(image1), np.asarray(image2)
    if a.ndim != 2 or a.shape != b.shape:
        raise DedkitError(f"FRC needs two 2D images of one shape, got {a.shape} and {b.shape}")
    bins = ring_bins(a.shape, n_rings)
    fa, fb = _transform(a), _transform(b)
    cross = bins.sums((fa * np.conj(fb)).real)
    pa = bins.sums(fa.real**2 + fa.imag**2)
    pb = bins.sums(fb.real**2 + fb.imag**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = cross / np.sqrt(pa * pb)
    return FRCResult(bins.frequency, curve, bins.n_pixels, half_bit_threshold(bins.n_pixels))


def mean_frc(result: FRCResult, low: float = 0.5, high: float = 1.0) -> float:
    """Mean FRC over the rings from ``low`` to ``high`` (fractions of Nyquist, inclusive),
    each ring counting once."""
    band = (result.frequency >= low - 1e-12) & (result.frequency <= high + 1e-12)
    if not band.any():
        raise DedkitError(f"no ring lies between {low} and {high} of Nyquist")
    return float(np.nanmean(result.frc[band]))
