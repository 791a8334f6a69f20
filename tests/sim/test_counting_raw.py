import numpy as np

from dedkit.sim.counting_raw import gain_nonuniformity, simulate_counting_frames, specimen_image


def test_counts_follow_dose_times_sensitivity(rng):
    shape = (64, 64)
    sensitivity = gain_nonuniformity(shape, rng, rms=0.1)
    assert abs(sensitivity.mean() - 1) < 1e-9
    # constant over 2x2 physical pixels
    assert np.all(sensitivity[::2, ::2] == sensitivity[1::2, 1::2])
    image = np.ones(shape)
    frames = np.stack(list(simulate_counting_frames(image, 0.5, 400, sensitivity, rng)))
    assert frames.dtype == np.uint8 and frames.shape == (400, 64, 64)
    mean = frames.mean(axis=0)
    # Poisson: the mean count per pixel is 0.5 x sensitivity within counting error
    error = (mean - 0.5 * sensitivity) / np.sqrt(0.5 * sensitivity / 400)
    assert abs(error.mean()) < 0.2 and 0.8 < error.std() < 1.2


def test_defects_and_saturation(rng):
    hot = np.zeros((4, 4), bool)
    dead = np.zeros((4, 4), bool)
    hot[1, 2] = True
    dead[3, :] = True
    frames = list(
        simulate_counting_frames(np.ones((4, 4)), 30.0, 3, np.ones((4, 4)), rng, hot=hot, dead=dead)
    )
    for f in frames:
        assert f[1, 2] == 15 and (f[3] == 0).all() and f.max() == 15


def test_specimen_image_range(rng):
    img = specimen_image((40, 50), rng, contrast=0.3)
    assert img.shape == (40, 50)
    assert img.max() <= 1.0 and img.min() >= 0.7 - 1e-9
