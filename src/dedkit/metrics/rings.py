"""Ring binning of 2D Fourier transforms, shared by the FRC and the power spectrum.

Frequencies are in cycles per pixel (square pixels), so a non-square image has the same
Nyquist frequency, 0.5, along both axes and its rings are circles. With ``n_rings`` rings
(default ``min(ny, nx) // 2``, one ring per Fourier pixel along the shorter axis) of
width ``w = 0.5 / n_rings``, ring ``k`` holds the frequencies ``|f|`` with
``(k - 1/2) w <= |f| < (k + 1/2) w``, k = 0 .. n_rings, and is reported at ``k / n_rings``
of Nyquist; frequencies beyond the last ring (the corners) are left out.

Real images are transformed with ``rfft2`` (half the plane); each stored coefficient
stands for itself and its Hermitian mirror, so sums over a ring are weighted 2 (1 for the
columns that are their own mirror), which gives exactly the full-plane sums and the
full-ring pixel counts the half-bit threshold needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedkit.errors import DedkitError

__all__ = ["RingBins", "ring_bins"]


@dataclass
class RingBins:
    """Which ring each ``rfft2`` coefficient of a ``shape`` image falls in.

    Attributes
    ----------
    shape : (ny, nx)
        Of the image.
    n_rings : int
        Rings 0 .. n_rings (ring 0 holds the zero frequency).
    index : (ny, nx // 2 + 1) int array
        Ring of each coefficient, -1 beyond the last ring.
    weight : (ny, nx // 2 + 1) float array
        2 for coefficients standing for a Hermitian pair, 1 for those that are their own.
    frequency : (n_rings + 1,) array
        Ring centres as fractions of Nyquist (``k / n_rings``).
    n_pixels : (n_rings + 1,) array
        Pixels of the full plane in each ring.
    """

    shape: tuple[int, int]
    n_rings: int
    index: np.ndarray
    weight: np.ndarray
    frequency: np.ndarray
    n_pixels: np.ndarray

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Full-plane sums over each ring of ``values`` given in the ``rfft2`` layout."""
        keep = self.index >= 0
        return np.bincount(
            self.index[keep],
            weights=(self.weight * values)[keep],
            minlength=self.n_rings + 1,
        )


def ring_bins(shape, n_rings: int | None = None) -> RingBins:
    """Ring binning for images of ``shape`` (see the module).

    Parameters
    ----------
    shape : (ny, nx)
    n_rings : int, optional
        Number of rings up to Nyquist; default ``min(ny, nx) // 2``.
    """
    if len(shape) != 2:
        raise DedkitError(f"rings need a 2D image shape, got {tuple(shape)}")
    ny, nx = (int(v) for v in shape)
    if min(ny, nx) < 2:
        raise DedkitError(f"an image of {nx} x {ny} pixels has no Fourier rings")
    if n_rings is None:
        n_rings = min(ny, nx) // 2
    if n_rings < 1:
        raise DedkitError(f"the number of rings must be at least 1, got {n_rings}")
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    width = 0.5 / n_rings
    index = np.floor(radius / width + 0.5).astype(np.int64)
    index[index > n_rings] = -1
    weight = np.full(index.shape, 2.0)
    weight[:, 0] = 1.0
    if nx % 2 == 0:
        weight[:, -1] = 1.0
    keep = index >= 0
    n_pixels = np.bincount(index[keep], weights=weight[keep], minlength=n_rings + 1)
    frequency = np.arange(n_rings + 1) / n_rings
    return RingBins((ny, nx), n_rings, index, weight, frequency, n_pixels)
