import math

import numpy as np
import pytest

from dedkit.camera.coincidence import DETECTION_EFFICIENCY, coincidence_factor
from dedkit.errors import DedkitError
from dedkit.sim.counting_superres import (
    SuperResModel,
    assignment_probabilities,
    expected_counts,
    localisation_kernel,
    simulate_exposure,
    simulate_frames,
)


def test_localisation_kernel_matches_following_electrons(rng):
    sigma = 0.4  # super-resolution pixels
    q = localisation_kernel(sigma)
    r = len(q) // 2
    assert q.sum() == pytest.approx(1.0)
    assert np.allclose(q, q[::-1])
    # electrons uniform in pixel 0, centroid error Gaussian: where are they counted?
    n = 2_000_000
    pos = rng.random(n) + sigma * rng.standard_normal(n)
    counts = np.bincount(np.floor(pos).astype(int) + r, minlength=len(q))
    assert np.allclose(counts / n, q, atol=4 * np.sqrt(q * (1 - q) / n) + 1e-9)
    assert np.array_equal(localisation_kernel(0.0), [1.0])
    with pytest.raises(DedkitError):
        localisation_kernel(-1.0)


def test_assignment_probabilities_of_the_default_model():
    p = assignment_probabilities()
    assert p["right"] + 4 * p["edge"] + 4 * p["corner"] + p["farther"] == pytest.approx(1.0)
    # documented figures: 47 % right, 11 % per edge neighbour, 2.5 % per corner
    assert p["right"] == pytest.approx(0.466, abs=0.002)
    assert p["edge"] == pytest.approx(0.108, abs=0.002)
    assert p["corner"] == pytest.approx(0.025, abs=0.001)
    assert assignment_probabilities(SuperResModel(localisation_sigma=0))["right"] == 1.0


def test_flat_image_counts_dose_times_efficiency_times_coincidence():
    image = np.ones((8, 12))
    for camera, rate in [("K2", 10.0), ("K3", 30.0)]:
        mean = expected_counts(image, rate, 0.05, SuperResModel(camera=camera))
        expect = rate * 0.05 / 4 * DETECTION_EFFICIENCY * coincidence_factor(rate, camera)
        assert np.allclose(mean, expect)
    plain = expected_counts(image, 10.0, 0.05, SuperResModel(coincidence=False))
    assert np.allclose(plain, 10 * 0.05 / 4 * 0.87)


def test_local_coincidence_uses_each_physical_pixel_rate():
    image = np.ones((4, 4))
    image[:2, :2] = 2.0  # one physical pixel at twice the rate
    model = SuperResModel(localisation_sigma=0, local_coincidence=True)
    mean = expected_counts(image, 10.0, 1.0, model)
    assert np.allclose(mean[:2, :2], 2 * 10 / 4 * 0.87 * coincidence_factor(20.0))
    assert np.allclose(mean[2:, 2:], 10 / 4 * 0.87 * coincidence_factor(10.0))
    frame = expected_counts(image, 10.0, 1.0, SuperResModel(localisation_sigma=0))
    assert np.allclose(frame / image, 10 / 4 * 0.87 * coincidence_factor(10 * image.mean()))


def test_signal_survives_beyond_the_physical_nyquist():
    # a cosine at 0.375 cycles per super-resolution pixel = 1.5 x the physical Nyquist
    x = np.arange(64)
    image = np.tile(1 + 0.5 * np.cos(2 * np.pi * 0.375 * x), (16, 1))
    mean = expected_counts(image, 5.0, 1.0, SuperResModel(coincidence=False))
    row = mean[8, 8:-8] / mean.mean()
    b = np.arange(row.size) + 8
    amp = 2 * np.hypot(
        (row * np.cos(2 * np.pi * 0.375 * b)).mean(), (row * np.sin(2 * np.pi * 0.375 * b)).mean()
    )
    # transfer = the kernel's DFT at that frequency: well above 0, well below 1
    q = localisation_kernel(0.4)
    d = np.arange(len(q)) - len(q) // 2
    transfer = (q * np.cos(2 * np.pi * 0.375 * d)).sum()
    assert amp / 0.5 == pytest.approx(transfer, abs=1e-6)
    assert 0.3 < transfer < 0.8


def test_frames_are_poisson_with_the_expected_mean(rng):
    image = np.ones((16, 16))
    image[:, 8:] = 0.5
    sens = np.ones((16, 16))
    sens[0, 0] = 1.5
    frames = simulate_frames(image, 8.0, 0.1, 3000, rng, sensitivity=sens)
    assert frames.dtype == np.uint8 and frames.shape == (3000, 16, 16)
    mean = expected_counts(image, 8.0, 0.1, sensitivity=sens)
    m, v = frames.mean(axis=0), frames.var(axis=0)
    err = np.sqrt(mean / 3000)
    assert np.all(np.abs(m - mean) < 5 * err)
    assert abs(np.mean((m - mean) / err)) < 0.5
    assert np.allclose(v.mean() / m.mean(), 1.0, atol=0.05)  # Poisson: variance = mean


def test_saturation_defects_and_reproducibility():
    image = np.ones((6, 6))
    hot = np.zeros((6, 6), bool)
    dead = np.zeros((6, 6), bool)
    hot[1, 2] = True
    dead[4, :] = True
    frames = simulate_frames(
        image, 2000.0, 0.1, 4, np.random.default_rng(5), hot=hot, dead=dead, max_count=15
    )
    assert frames.max() == 15 and np.all(frames[:, 1, 2] == 15) and np.all(frames[:, 4] == 0)
    again = simulate_frames(
        image, 2000.0, 0.1, 4, np.random.default_rng(5), hot=hot, dead=dead, max_count=15
    )
    assert np.array_equal(frames, again)
    with pytest.raises(DedkitError):
        simulate_frames(image, 1.0, 0.1, 1, np.random.default_rng(0), max_count=300)


def test_exposure_is_the_sum_of_frames_in_distribution(rng):
    image = np.full((32, 32), 0.8)
    hot = np.zeros((32, 32), bool)
    hot[3, 3] = True
    sums = np.stack([simulate_exposure(image, 5.0, 0.2, 10, rng, hot=hot) for _ in range(200)])
    mean = 10 * expected_counts(image, 5.0, 0.2)
    assert np.all(sums[:, 3, 3] == 150)
    sums = np.delete(sums.reshape(200, -1), 3 * 32 + 3, axis=1)
    assert sums.mean() == pytest.approx(mean.mean(), rel=4 / math.sqrt(sums.size * mean.mean()))
    assert sums.var() == pytest.approx(mean.mean(), rel=0.05)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.ones((5, 6)), "even size"),
        (np.ones(6), "2D"),
        (-np.ones((4, 4)), "not negative"),
        (np.full((4, 4), np.nan), "finite"),
    ],
)
def test_bad_images(image, message):
    with pytest.raises(DedkitError, match=message):
        expected_counts(image, 1.0, 1.0)


def test_bad_rates_and_sensitivity():
    with pytest.raises(DedkitError):
        expected_counts(np.ones((4, 4)), -1.0, 1.0)
    with pytest.raises(DedkitError):
        expected_counts(np.ones((4, 4)), 1.0, 0.0)
    with pytest.raises(DedkitError, match="sensitivity"):
        expected_counts(np.ones((4, 4)), 1.0, 1.0, sensitivity=np.ones((2, 2)))
