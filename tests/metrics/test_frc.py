import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.metrics import frc, half_bit_threshold, mean_frc, ring_bins


def test_rings_count_the_full_plane():
    for shape in [(32, 32), (32, 48), (31, 45), (2, 2)]:
        bins = ring_bins(shape)
        ny, nx = shape
        # every full-plane pixel within the last ring is counted once
        fy = np.fft.fftfreq(ny)[:, None]
        fx = np.fft.fftfreq(nx)[None, :]
        k = np.floor(np.hypot(fy, fx) / (0.5 / bins.n_rings) + 0.5)
        expect = np.bincount(k[k <= bins.n_rings].astype(int), minlength=bins.n_rings + 1)
        assert np.array_equal(bins.n_pixels, expect)
        assert bins.frequency[0] == 0 and bins.frequency[-1] == 1
        assert bins.n_rings == min(shape) // 2


def test_ring_bins_bad_input():
    with pytest.raises(DedkitError):
        ring_bins((1, 10))
    with pytest.raises(DedkitError):
        ring_bins((10, 10), n_rings=0)
    with pytest.raises(DedkitError):
        ring_bins((4, 4, 4))


def test_half_bit_threshold():
    # van Heel & Schatz 2005: 1 for a single pixel, 0.2071/1.2071 for infinitely many
    assert half_bit_threshold(1) == pytest.approx(1.0, abs=1e-4)
    assert half_bit_threshold(1e12) == pytest.approx(0.2071 / 1.2071, abs=1e-5)
    n = 400.0
    assert half_bit_threshold(n) == pytest.approx((0.2071 + 1.9102 / 20) / (1.2071 + 0.9102 / 20))


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (51, 37)])
def test_identical_images_correlate_fully(shape):
    img = np.random.default_rng(0).normal(size=shape)
    result = frc(img, img)
    assert np.allclose(result.frc, 1.0)
    assert result.half_bit_crossing() is None
    # a scaled copy too: the FRC is a normalised correlation
    assert np.allclose(frc(img, 3 * img + 0).frc[1:], 1.0)
    assert np.allclose(frc(img, -img).frc, -1.0)


@pytest.mark.parametrize("shape", [(96, 96), (64, 128), (63, 91)])
def test_independent_noise_scatters_as_one_over_root_n(shape):
    rng = np.random.default_rng(1)
    z = []
    for _ in range(12):
        r = frc(rng.normal(size=shape), rng.normal(size=shape))
        z.append(r.frc[2:] * np.sqrt(r.n_pixels[2:]))
    z = np.concatenate(z)
    # mean 0 and standard deviation 1 within their sampling errors (n ~ 400-600 values)
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std() - 1) < 0.1


def test_bandlimited_signal_gives_snr_over_one_plus_snr():
    rng = np.random.default_rng(2)
    n = 128
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    band = f < 0.25  # half of Nyquist
    power_s, sigma_n = 2.0, 1.0  # per-frequency signal power in the band, noise variance
    curves = []
    for _ in range(6):
        signal = np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) * band).real
        signal *= np.sqrt(power_s)  # white noise of variance 1 has power 1 per frequency
        a = signal + sigma_n * rng.normal(size=(n, n))
        b = signal + sigma_n * rng.normal(size=(n, n))
        curves.append(frc(a, b).frc)
    curve = np.mean(curves, axis=0)
    freq, npix = frc(a, b).frequency, frc(a, b).n_pixels
    inside = (freq > 0.05) & (freq < 0.45)
    outside = freq > 0.55
    expect = power_s / (power_s + sigma_n**2)
    # sampling error of a correlation rho over m independent complex values:
    # (1 - rho^2) / sqrt(m), m = 6 images x n / 2
    error = (1 - expect**2) / np.sqrt(6 * npix[inside] / 2)
    assert np.all(np.abs(curve[inside] - expect) < 4 * error)
    assert abs(np.mean((curve[inside] - expect) / error)) < 4 / np.sqrt(inside.sum())
    assert abs(curve[outside].mean()) < 0.01
    assert np.all(np.abs(curve[outside]) < 0.1)
    # the mean over half to full Nyquist sees only the noise
    assert abs(mean_frc(frc(a, b), 0.55, 1.0)) < 0.05
    assert mean_frc(frc(a, b), 0.1, 0.45) == pytest.approx(expect, abs=0.05)
    # and the half-bit criterion falls at the band edge
    crossing = frc(a, b).half_bit_crossing()
    assert 0.45 <= crossing <= 0.56


def test_frc_bad_input():
    with pytest.raises(DedkitError, match="one shape"):
        frc(np.ones((8, 8)), np.ones((8, 9)))
    with pytest.raises(DedkitError, match="one shape"):
        frc(np.ones(8), np.ones(8))
    with pytest.raises(DedkitError, match="type"):
        frc(np.ones((8, 8), complex), np.ones((8, 8), complex))
    r = frc(np.ones((8, 8)), np.ones((8, 8)))
    with pytest.raises(DedkitError, match="no ring"):
        mean_frc(r, 1.5, 2.0)
