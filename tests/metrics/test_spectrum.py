import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.metrics import power_spectrum_thumbnail, radial_power_spectrum


@pytest.mark.parametrize("shape", [(128, 128), (96, 160), (75, 101)])
def test_white_noise_has_a_flat_spectrum_of_its_variance(shape):
    rng = np.random.default_rng(0)
    sigma = 1.7
    spectra = [radial_power_spectrum(sigma * rng.normal(size=shape)) for _ in range(4)]
    power = np.mean([s.power for s in spectra], axis=0)[1:]
    n = spectra[0].n_pixels[1:] * 4
    # each ring's mean of |F|^2 / N is sigma^2 within 1/sqrt(independent values)
    z = (power / sigma**2 - 1) * np.sqrt(n / 2)
    assert abs(z.mean()) < 0.3 and 0.75 < z.std() < 1.25
    # flat: no trend between the low and the high half
    half = len(power) // 2
    assert abs(power[:half].mean() / power[half:].mean() - 1) < 0.05


def test_cosine_puts_its_power_in_its_ring():
    n = 64
    y, x = np.mgrid[0:n, 0:n]
    k = 12  # cycles across the image: 12 / 32 of Nyquist
    img = 5 + 2 * np.cos(2 * np.pi * k * x / n)
    s = radial_power_spectrum(img, subtract_mean=True)
    assert np.argmax(s.power) == k
    # Parseval: variance 2 = sum over rings of power x pixels / N
    assert (s.power * s.n_pixels).sum() / n**2 == pytest.approx(2.0)
    assert s.power[0] == pytest.approx(0.0, abs=1e-20)
    assert radial_power_spectrum(img).power[0] == pytest.approx(25 * n * n)


def test_spectrum_bad_input():
    with pytest.raises(DedkitError):
        radial_power_spectrum(np.ones(10))


def test_thumbnail_puts_a_cosine_where_its_frequency_is():
    # period 16 along y in a 300 x 520 image: spots 8 rows either side of the centre of
    # a 128-pixel thumbnail (1/16 cycle per pixel = 1/8 of Nyquist = 8 of 64 bins)
    rng = np.random.default_rng(1)
    y = np.arange(300)[:, None]
    image = rng.normal(size=(300, 520)) + 3 * np.cos(2 * np.pi * y / 16)
    thumb = power_spectrum_thumbnail(image, size=128)
    assert thumb.shape == (128, 128) and thumb.dtype == np.uint8
    column = thumb[:, 64].astype(int)
    column[60:69] = 0  # the centre
    brightest = np.flatnonzero(column == column.max()) - 64
    assert {-8, 8} <= set(brightest) and set(np.abs(brightest)) <= {7, 8, 9}


def test_thumbnail_of_a_ramp_has_no_cross_on_its_axes():
    # a gradient across each tile puts a cross on the axes of an unwindowed spectrum
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:512, 0:512]
    thumb = power_spectrum_thumbnail(rng.normal(size=(512, 512)) + 0.05 * (xx + yy), 64)
    away = np.r_[0:24, 41:64]  # more than 1/4 of Nyquist from the centre
    axis = np.r_[thumb[32, away], thumb[away, 32]].astype(float)
    elsewhere = thumb[np.ix_(away, away)].astype(float)
    assert axis.mean() < elsewhere.mean() + 2 * elsewhere.std() / 4


def test_thumbnail_small_constant_and_bad_images():
    assert power_spectrum_thumbnail(np.random.default_rng(0).random((40, 70)), 64).shape == (
        64,
        64,
    )
    assert not power_spectrum_thumbnail(np.ones((64, 64)), 32).any()
    with_nan = np.random.default_rng(0).random((64, 64))
    with_nan[3, 4] = np.nan
    assert power_spectrum_thumbnail(with_nan, 32).shape == (32, 32)
    for bad, size in [(np.ones(10), 16), (np.ones((64, 64)), 15), (np.ones((64, 64)), 8)]:
        with pytest.raises(DedkitError):
            power_spectrum_thumbnail(bad, size)
    with pytest.raises(DedkitError):
        power_spectrum_thumbnail(np.ones((8, 8), complex), 16)
