"""Movies of known motion for the frames.align tests: band-limited 1/f specimens and
exact Fourier shifts."""

import numpy as np


def specimen(n=128, seed=0, cutoff=0.3):
    """A 1/f random specimen band-limited to ``cutoff`` cycles/pixel (nothing near
    Nyquist, so that Fourier shifts of it are exact on the sampled grid)."""
    rng = np.random.default_rng(seed)
    ky, kx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    k = np.hypot(kx, ky)
    spec = np.fft.fft2(rng.normal(size=(n, n))) / np.maximum(k, 1 / n)
    spec *= k < cutoff
    img = np.fft.ifft2(spec).real
    return img / img.std()


def fourier_shift(img, dx, dy):
    """``img`` moved by (+dx, +dy): a feature at (x, y) ends at (x + dx, y + dy)."""
    ny, nx = img.shape
    ky, kx = np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :]
    return np.fft.ifft2(np.fft.fft2(img) * np.exp(-2j * np.pi * (kx * dx + ky * dy))).real
