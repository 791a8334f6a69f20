"""Radially averaged power spectra, and power-spectrum thumbnails to look at.

Power is ``|F|^2 / (ny nx)`` averaged over each ring of :mod:`dedkit.metrics.rings`, so
white noise of variance s^2 has a flat spectrum of height s^2 (Parseval), whatever the
image size. :func:`power_spectrum_thumbnail` is the 2D log power spectrum as an 8-bit
picture (a session's gallery of Thon rings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from dedkit.errors import DedkitError
from dedkit.metrics.frc import _transform
from dedkit.metrics.rings import ring_bins

__all__ = ["RadialSpectrum", "power_spectrum_thumbnail", "radial_power_spectrum"]

#: at most this many tiles are averaged into a thumbnail: enough for a smooth spectrum,
#: and a K3 super-resolution sum (11520 x 8184) costs no more than a K2 one
MAX_THUMBNAIL_TILES = 256


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


def power_spectrum_thumbnail(image: np.ndarray, size: int = 256) -> np.ndarray:
    """The log power spectrum of an image as a ``size`` x ``size`` 8-bit grey picture.

    The image is cut into square tiles of ``size`` pixels (at most
    :data:`MAX_THUMBNAIL_TILES` of them, evenly spread), each tile's mean is removed and
    a Hann window applied (so the tile edges put no cross on the axes), and their
    periodograms are averaged (Welch's method): the thumbnail keeps the image's full
    frequency range up to Nyquist with the noise of one periodogram averaged away. In an
    image smaller than ``size`` the tiles are as large as its shorter side, zero-padded.
    Grey levels are ``log10`` of the power, stretched between its 1st and 99.5th
    percentiles outside the innermost 5 % of Nyquist (where the largest, least informative
    power lies).

    Parameters
    ----------
    image : (ny, nx) array
        Any real image (a movie's aligned sum); non-finite pixels count as the mean.
    size : int
        Side of the thumbnail (even, at least 16).

    Returns
    -------
    (size, size) uint8 array
        Zero frequency at ``[size // 2, size // 2]``; Nyquist at the edges.

    Examples
    --------
    A cosine of period 8 pixels (a quarter of Nyquist) over noise: its two spots lie 16
    pixels either side of the centre of a 128-pixel thumbnail.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> image = rng.normal(size=(512, 512)) + 3 * np.cos(2 * np.pi * np.arange(512) / 8)
    >>> thumb = power_spectrum_thumbnail(image, size=128)
    >>> thumb.shape, thumb.dtype
    ((128, 128), dtype('uint8'))
    >>> np.flatnonzero(thumb[64] == 255) - 64
    array([-17, -16, -15,  15,  16,  17])
    """
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 2:
        raise DedkitError(f"a power spectrum needs a 2D image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise DedkitError(f"cannot transform an image of type {image.dtype}")
    size = int(size)
    if size < 16 or size % 2:
        raise DedkitError(f"a spectrum thumbnail needs an even size of at least 16, got {size}")
    image = image.astype(np.float32, copy=False)
    finite = np.isfinite(image)
    if not finite.all():
        image = np.where(finite, image, image[finite].mean() if finite.any() else 0.0)
    tile = min(size, *image.shape)
    window = np.outer(np.hanning(tile), np.hanning(tile)).astype(np.float32)
    rows = _tile_starts(image.shape[0], tile)
    cols = _tile_starts(image.shape[1], tile)
    # keep at most MAX_THUMBNAIL_TILES, evenly spread over the image
    keep = max(1, int(np.sqrt(MAX_THUMBNAIL_TILES)))
    rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), keep)).round().astype(int)]
    cols = cols[np.linspace(0, len(cols) - 1, min(len(cols), keep)).round().astype(int)]
    power = np.zeros((size, size), np.float64)
    for r in rows:
        # one row of tiles per transform: a bounded batch, whatever the image size
        batch = np.stack([image[r : r + tile, c : c + tile] for c in cols])
        batch = (batch - batch.mean(axis=(1, 2), keepdims=True)) * window
        f = scipy.fft.fft2(batch, s=(size, size), axes=(1, 2))
        power += (f.real**2 + f.imag**2).sum(axis=0)
    power = np.fft.fftshift(power)
    positive = power[power > 0]
    if not positive.size:
        return np.zeros((size, size), np.uint8)
    logp = np.log10(np.maximum(power, positive.min()))
    k = (np.arange(size) - size // 2) / (size // 2)
    outside = np.hypot(k[:, None], k[None, :]) > 0.05
    low, high = np.percentile(logp[outside], [1.0, 99.5])
    if not high > low:
        high = low + 1.0
    scaled = (logp - low) / (high - low) * 255.0
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def _tile_starts(n: int, tile: int) -> np.ndarray:
    """Starts of the non-overlapping tiles along an axis of ``n`` pixels, centred."""
    count = n // tile
    offset = (n - count * tile) // 2
    return offset + tile * np.arange(count)
