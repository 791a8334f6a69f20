"""Ring SNR of lattice rings in power spectra: statistics checked on synthetic images."""

import math

import numpy as np
import pytest
import scipy.signal

from dedkit.errors import DedkitError
from dedkit.metrics import (
    AU_111_A,
    AU_200_A,
    dose_for_snr,
    dose_for_snr_detail,
    power_spectrum,
    radial_profile,
    ring_snr,
)

N_SIDE = 256
PIXEL = 0.5  # A: Nyquist 1 1/A, both gold rings well inside
ANGLES = (0.3, 1.4, 2.5)  # fringe directions, radians


def _fringes(contrast, spacing=AU_111_A, n=N_SIDE, pixel=PIXEL):
    """Intensity of mean ~1 with fringes of ``spacing`` in three directions."""
    y, x = np.mgrid[0:n, 0:n] * pixel
    k = 1.0 / spacing
    waves = [
        np.cos(2 * np.pi * k * (np.cos(a) * x + np.sin(a) * y) + i) for i, a in enumerate(ANGLES)
    ]
    return 1.0 + contrast * sum(waves)


def _predicted_excess(contrast, measure):
    """Mean power the noise-free fringes put in the annulus, from a plain numpy FFT of the
    same Tukey-windowed image (the window spreads each spot over a few coefficients)."""
    signal = _fringes(contrast) - 1.0
    w1 = scipy.signal.windows.tukey(N_SIDE, alpha=0.1, sym=False)
    w = np.outer(w1, w1)
    x = (signal - (signal * w).sum() / w.sum()) * w
    power = np.abs(np.fft.fft2(x)) ** 2 / (w * w).sum()
    f = np.fft.fftfreq(N_SIDE, d=PIXEL)
    r = np.hypot(f[:, None], f[None, :])
    lo, hi = measure.annulus
    ring = (r >= lo) & (r < hi)
    captured = power[ring].sum() / power.sum()
    # Parseval: each fringe of amplitude c has c^2 / 2 per pixel
    assert power.sum() / N_SIDE**2 == pytest.approx(len(ANGLES) * contrast**2 / 2, rel=0.02)
    assert 0.8 < captured <= 1.0
    return len(ANGLES) * contrast**2 / 2 * N_SIDE**2 * captured / ring.sum()


def test_gold_spacings():
    assert AU_111_A == pytest.approx(2.3544, abs=1e-4)
    assert AU_200_A == pytest.approx(2.039)


def test_poisson_spectrum_is_flat_at_one_over_dose():
    rng = np.random.default_rng(0)
    for dose in (0.5, 4.0):
        f, p = radial_profile(rng.poisson(dose, (N_SIDE, N_SIDE)), PIXEL)
        assert f[-1] == pytest.approx(1.0)
        assert np.mean(p[5:]) * dose == pytest.approx(1.0, rel=0.02)
    spectrum = power_spectrum(rng.poisson(4.0, (128, 96)))
    assert spectrum.shape == (128, 96)
    # exponential statistics: the median is ln 2 times the mean
    assert np.median(spectrum) == pytest.approx(0.25 * math.log(2), rel=0.05)


def test_edge_taper_keeps_edges_out_of_the_spectrum():
    """A ramp's jump between opposite edges streaks the axes of an untapered spectrum."""
    y, x = np.mgrid[0:128, 0:128]
    image = 10 + x / 128.0
    tapered = power_spectrum(image)
    plain = power_spectrum(image, edge=0.0)
    axis = tapered[64, 64 + 20 : 64 + 60].mean(), plain[64, 64 + 20 : 64 + 60].mean()
    assert axis[0] < 0.05 * axis[1]


@pytest.mark.parametrize("noise", ["larger", "analytic"])
def test_noise_only_snr_is_standard_normal(noise):
    snr = np.array(
        [ring_snr(np.random.default_rng(s).poisson(2.0, (N_SIDE, N_SIDE)), PIXEL, AU_111_A,
                  noise=noise).snr for s in range(150)]
    )  # fmt: skip
    assert abs(snr.mean()) < 0.2
    # 'larger' is conservative: a little under 1
    low = 0.8 if noise == "larger" else 0.85
    assert low < snr.std() < 1.15
    assert np.mean(np.abs(snr) > 3) < 0.02


def test_fringe_snr_matches_the_analytic_expectation_and_grows_with_dose():
    contrast = 0.04
    measured, predicted = [], []
    for dose in (2.0, 8.0):
        intensity = dose * _fringes(contrast)
        snrs, excesses, conservative = [], [], []
        for s in range(8):
            m = ring_snr(np.random.default_rng(s).poisson(intensity), PIXEL, AU_111_A)
            snrs.append(m.excess / m.noise_analytic)
            excesses.append(m.excess)
            conservative.append(m.snr)
        # background alone at the same dose: the noise the SNR is measured against
        null = ring_snr(np.random.default_rng(99).poisson(dose, (N_SIDE, N_SIDE)), PIXEL, AU_111_A)
        excess = _predicted_excess(contrast, m)
        assert np.mean(excesses) == pytest.approx(excess, rel=0.15)
        assert m.background * dose == pytest.approx(1.0, rel=0.05)
        measured.append(np.mean(snrs))
        predicted.append(excess / null.noise_analytic)
        # the reported (larger-noise) SNR is at most the analytic one, and not far below
        assert 0.6 * measured[-1] < np.mean(conservative) <= measured[-1] + 1e-9
    assert measured == pytest.approx(predicted, rel=0.25)
    assert measured[1] / measured[0] == pytest.approx(4.0, rel=0.25)
    assert measured[0] > 3


def test_the_other_gold_ring_is_left_out_of_the_background():
    """A strong {200} ring does not raise the {111} background, nor the reverse."""
    rng = np.random.default_rng(3)
    only_200 = rng.poisson(4.0 * _fringes(0.08, spacing=AU_200_A))
    m = ring_snr(only_200, PIXEL, AU_111_A)
    assert abs(m.snr) < 4
    assert m.background * 4 == pytest.approx(1.0, rel=0.05)
    assert ring_snr(only_200, PIXEL, AU_200_A).snr > 20
    # measured without excluding it, the {200} ring is in the background fit
    assert ring_snr(only_200, PIXEL, AU_111_A, exclude=()).background * 4 > 1.05


def test_ring_measure_fields_and_dict():
    m = ring_snr(np.random.default_rng(0).poisson(2.0, (N_SIDE, N_SIDE)), PIXEL, AU_200_A,
                 width=0.03)  # fmt: skip
    assert m.annulus == pytest.approx((1 / AU_200_A - 0.015, 1 / AU_200_A + 0.015))
    assert m.background_radii[0] < m.annulus[0] and m.background_radii[1] > m.annulus[1]
    assert m.excess == pytest.approx(m.ring_power - m.background)
    assert m.snr == pytest.approx(m.excess / m.noise)
    assert m.noise == pytest.approx(max(m.noise_analytic, m.noise_empirical))
    assert m.n_coefficients > 500
    assert "analytic" in m.method or "empirical" in m.method
    d = m.to_dict()
    assert d["spacing_A"] == AU_200_A and isinstance(d["annulus"], list)


def test_ring_snr_bad_input():
    img = np.random.default_rng(0).poisson(2.0, (N_SIDE, N_SIDE))
    with pytest.raises(DedkitError, match="Nyquist"):
        ring_snr(img, 1.2, AU_111_A)
    with pytest.raises(DedkitError, match="pixel size"):
        ring_snr(img, 0, AU_111_A)
    with pytest.raises(DedkitError, match="mean"):
        ring_snr(np.zeros((64, 64)), PIXEL, AU_111_A)
    with pytest.raises(DedkitError, match="too few"):
        ring_snr(img[:16, :16], PIXEL, AU_111_A)
    with pytest.raises(DedkitError, match="noise"):
        ring_snr(img, PIXEL, AU_111_A, noise="best")
    with pytest.raises(DedkitError, match="2D"):
        ring_snr(img[0], PIXEL, AU_111_A)


def test_dose_for_snr():
    doses = np.array([5.0, 10, 20, 40])
    assert dose_for_snr(doses, 0.1 * doses) == pytest.approx(50.0)
    d = dose_for_snr_detail(doses, 0.1 * doses + np.array([0.5, -0.5, 0.3, -0.1]), target=5)
    assert d.dose == pytest.approx(50, rel=0.1) and d.extrapolated
    assert d.dose_error > 0 and d.slope_error > 0
    # within the measured range: not extrapolated
    assert not dose_for_snr_detail(doses, 0.5 * doses).extrapolated
    # no ring: the SNR scatters about 0
    assert math.isnan(dose_for_snr(doses, [0.5, -1.0, 0.8, -0.3]))
    assert math.isnan(dose_for_snr(doses, -0.2 * doses))
    with pytest.raises(DedkitError):
        dose_for_snr([1, 2], [1.0])
    with pytest.raises(DedkitError):
        dose_for_snr([0, 2], [1.0, 2.0])
