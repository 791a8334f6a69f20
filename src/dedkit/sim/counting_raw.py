"""Raw frames of an electron-counting camera (K2/K3 style), before gain normalisation.

Model: electrons arrive independently (Poisson) at each super-resolution pixel with mean
``dose x image``; each pixel counts a fraction ``sensitivity`` of them (the gain
non-uniformity a gain reference corrects: gain = 1 / sensitivity, normalised to mean 1);
defective pixels, columns and rows read a fixed value (hot: always full scale, dead: 0)
whatever arrives. Counts are clipped at ``max_count`` as 4-bit packed frames are.
This is the data a gain reference and a defect list are made for (``dedkit demo``); it
has no coincidence loss or point spread: the super-resolution model with localisation,
coincidence loss and detection efficiency is :mod:`dedkit.sim.counting_superres`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gain_nonuniformity", "simulate_counting_frames", "specimen_image"]


def specimen_image(
    shape, rng: np.random.Generator, *, n_blobs: int = 40, contrast: float = 0.3
) -> np.ndarray:
    """A smooth positive test image of mean about 1: Gaussian blobs of lower transmission
    (particles) on a flat background, in [1 - contrast, 1]."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    image = np.zeros(shape)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        sigma = rng.uniform(0.01, 0.04) * min(ny, nx)
        image += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    image /= max(image.max(), 1e-12)
    return 1.0 - contrast * image


def gain_nonuniformity(
    shape, rng: np.random.Generator, *, rms: float = 0.08, block: int = 2
) -> np.ndarray:
    """Pixel sensitivities of mean 1: smooth variation across the sensor times pixel
    noise, constant over ``block x block`` super-resolution pixels (a physical pixel)."""
    ny, nx = shape
    by, bx = -(-ny // block), -(-nx // block)
    yy, xx = np.mgrid[0:by, 0:bx]
    smooth = 1 + 0.5 * rms * np.cos(2 * np.pi * yy / by) * np.cos(np.pi * xx / bx)
    pixel = rng.normal(1.0, rms, (by, bx)).clip(0.5, 1.5)
    s = np.repeat(np.repeat(smooth * pixel, block, 0), block, 1)[:ny, :nx]
    return s / s.mean()


def simulate_counting_frames(
    image: np.ndarray,
    dose_per_frame: float,
    n_frames: int,
    sensitivity: np.ndarray,
    rng: np.random.Generator,
    *,
    hot: np.ndarray | None = None,
    dead: np.ndarray | None = None,
    max_count: int = 15,
):
    """Yield raw counting frames (uint8, Y up) one at a time.

    Parameters
    ----------
    image : (ny, nx) ndarray
        Relative intensity, mean about 1.
    dose_per_frame : float
        Electrons per super-resolution pixel per frame at intensity 1.
    n_frames : int
    sensitivity : (ny, nx) ndarray
        Fraction of arriving electrons each pixel counts (mean 1).
    rng : numpy.random.Generator
    hot, dead : (ny, nx) bool ndarray, optional
        Defective pixels that always read ``max_count`` (hot) or 0 (dead).
    max_count : int
        Counts saturate here (15 for 4-bit frames).
    """
    rate = dose_per_frame * image * sensitivity
    for _ in range(n_frames):
        frame = np.minimum(rng.poisson(rate), max_count).astype(np.uint8)
        if hot is not None:
            frame[hot] = max_count
        if dead is not None:
            frame[dead] = 0
        yield frame
