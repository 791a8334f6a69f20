"""Radially averaged power spectra.

Power is ``|F|^2 / (ny nx)`` averaged over each ring of :mod:`dedkit.metrics.rings`, so
white noise of variance s^2 has a flat spectrum of height s^2 (Parseval), whatever the
image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedkit.errors import DedkitError
from dedkit.metrics.frc import _transform
from dedkit.metrics.rings import ring_bins

__all__ = ["RadialSpectrum", "radial_power_spectrum"]


@dataclass
class RadialSpectrum:
    """A radially averaged power spectrum.

    Attributes
    ----------
    frequency : array
        Ring centres as fractions of Nyquist.
    power : array
        Mean ``|F|^2 / (ny nx)`` in each ring.
    n_pixels : array
        Pixels of the full plane in each ring.
    """

    frequency: np.ndarray
    power: np.ndarray
    n_pixels: np.ndarray


def radial_power_spectrum(
    image: np.ndarray, n_rings: int | None = None, *, subtract_mean: bool = False
) -> RadialSpectrum:
    """Radially averaged power spectrum of a 2D image of any shape.

    Parameters
    ----------
    image : (ny, nx) array
    n_rings : int, optional
        Rings up to Nyquist; default ``min(ny, nx) // 2``.
    subtract_mean : bool
        Remove the mean first (ring 0 then holds only what is left of it).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise DedkitError(f"a power spectrum needs a 2D image, got shape {image.shape}")
    if subtract_mean:
        image = image - image.mean()
    bins = ring_bins(image.shape, n_rings)
    f = _transform(image)
    total = bins.sums(f.real**2 + f.imag**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        power = total / bins.n_pixels / (image.shape[0] * image.shape[1])
    return RadialSpectrum(bins.frequency, power, bins.n_pixels)
