import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.metrics import radial_power_spectrum


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
