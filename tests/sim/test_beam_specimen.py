"""The 'specimen' beam pattern: an image at a magnification, drifting (issue 17)."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.sim.beam import BeamPattern, check_flux, drift_trajectory, sample_arrivals


def _pattern(image=None, step=0.5, drift=None):
    image = np.ones((100, 100)) if image is None else image
    return BeamPattern("specimen", image=image, image_pixel_px=step, drift_px=drift)


def test_flux_is_the_sensors_at_mean_intensity():
    pattern = _pattern()
    rng = np.random.default_rng(0)
    arrivals = sample_arrivals(pattern, 2000, 50.0, (40, 40), rng)
    # 2000 frames x 50 electrons; Poisson sd of the total ~316
    assert abs(len(arrivals) - 100000) < 1500
    assert arrivals.x_px.min() >= 0 and arrivals.x_px.max() < 40


def test_electrons_follow_the_image_and_the_drift():
    image = np.ones((100, 100))
    image[:, 50:] = 3.0  # right half three times brighter (sensor columns >= 20)
    drift = np.zeros((10, 2))
    drift[5:, 0] = 2.0  # frames 5-9 shifted 2 px to the right
    pattern = _pattern(image, 0.5, drift)
    rng = np.random.default_rng(1)
    a = sample_arrivals(pattern, 10, 4000.0, (40, 40), rng)
    early, late = a.frame < 5, a.frame >= 5
    ratio = np.mean(a.x_px[early] >= 20) / np.mean(a.x_px[early] < 20)
    assert 2.8 < ratio < 3.2
    # the edge moved by the drift to 22 px in the late frames: 18 bright columns (x3)
    # and 22 dim ones
    assert abs(np.mean(a.x_px[late] >= 22) - 54 / 76) < 0.01
    assert abs(np.mean((a.x_px[late] >= 20) & (a.x_px[late] < 22)) - 2 / 76) < 0.005


def test_first_frame_selects_the_drift():
    drift = np.array([[0.0, 0.0], [3.0, 0.0]])
    pattern = _pattern(np.ones((100, 100)), 0.5, drift)
    assert pattern.drift_at([0, 1, 7]).tolist() == [[0.0, 0.0], [3.0, 0.0], [3.0, 0.0]]


def test_image_must_cover_the_sensor_as_it_drifts():
    pattern = _pattern(np.ones((100, 100)), 0.5, np.array([[0.0, 0.0], [6.0, 0.0]]))
    with pytest.raises(DedkitError, match="does not cover"):
        sample_arrivals(pattern, 1, 1.0, (40, 48), np.random.default_rng(0))
    with pytest.raises(DedkitError, match="does not cover"):
        check_flux(pattern, 1.0, 200.0, (40, 48), 1e4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_pixel_px": 0.0}, "positive"),
        ({"drift_px": np.zeros((3, 3))}, r"\(n, 2\)"),
        ({"drift_px": np.full((3, 2), np.nan)}, "finite"),
    ],
)
def test_bad_specimen_patterns_are_refused(kwargs, message):
    with pytest.raises(DedkitError, match=message):
        BeamPattern("specimen", image=np.ones((4, 4)), **kwargs)


def test_to_dict_describes_the_drift_without_the_whole_trajectory():
    drift = drift_trajectory(5000, 4.0, np.random.default_rng(2))
    d = _pattern(np.ones((100, 100)), 0.5, drift).to_dict()
    assert d["kind"] == "specimen" and d["drift_frames"] == 5000
    assert d["drift_path_px"] == pytest.approx(4.0)
    assert len(str(d)) < 500


def test_drift_slows_down():
    drift = drift_trajectory(1000, 10.0, np.random.default_rng(3))
    speed = np.hypot(*np.diff(drift, axis=0).T)
    assert speed[:100].mean() > 2 * speed[-100:].mean()
    with pytest.raises(DedkitError):
        drift_trajectory(0, 1.0, np.random.default_rng(0))
    with pytest.raises(DedkitError):
        drift_trajectory(10, -1.0, np.random.default_rng(0))
