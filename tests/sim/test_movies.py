"""Simulated movies with known motion (dedkit.sim.movies): convention and statistics."""

import numpy as np
import pytest
from scipy import ndimage

from dedkit.errors import DedkitError
from dedkit.sim import SimulatedMovie, movie_model, simulate_movie


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def test_specimen_statistics():
    movie = simulate_movie((128, 96), n_frames=2, dose_per_pixel=1.0, seed=4)
    assert isinstance(movie, SimulatedMovie)
    assert movie.specimen.shape == (128, 96) and movie.specimen.dtype == np.float64
    # std at the pixel 5 % of the mean, mean 1, positive
    assert movie.specimen.mean() == pytest.approx(1.0, abs=1e-12)
    assert movie.specimen.std() == pytest.approx(0.05, rel=1e-9)
    assert movie.specimen.min() > 0.5
    custom = simulate_movie((64, 64), n_frames=1, contrast=0.1, seed=4)
    assert custom.specimen.std() == pytest.approx(0.1, rel=1e-9)


@pytest.mark.parametrize("dose", [0.5, 2.0])
def test_mean_dose_and_poisson(dose):
    movie = simulate_movie((128, 128), n_frames=6, dose_per_pixel=dose, seed=1)
    frames = movie.frames.astype(np.float64)
    assert movie.frames.dtype == np.uint16 and movie.dose_per_pixel == dose
    n = frames.size
    assert frames.mean() == pytest.approx(dose, abs=4 * np.sqrt(dose / n))
    # Poisson: variance ~ mean (the specimen's 5 % adds 0.25 % of dose^2)
    assert frames.var() == pytest.approx(dose + (0.05 * dose) ** 2, rel=0.03)


def test_trajectory():
    model = movie_model((64, 64), n_frames=30, drift=15.0, seed=7)
    shifts = model.shifts
    assert shifts.shape == (30, 2)
    np.testing.assert_allclose(shifts.mean(axis=0), 0, atol=1e-12)
    steps = np.hypot(*np.diff(shifts, axis=0).T)
    assert steps.sum() == pytest.approx(15.0)
    # fast start: the first 5 steps cover more path than the last 20
    assert steps[:5].sum() > steps[-20:].sum()
    # some curvature: the heading turns
    heading = np.unwrap(np.arctan2(*np.diff(shifts, axis=0).T[::-1]))
    assert np.deg2rad(25) < abs(heading[-1] - heading[0]) < np.deg2rad(95)
    assert not simulate_movie((16, 16), 3, drift=0, seed=1).shifts.any()


def test_frame_is_specimen_moved_by_plus_shift():
    """A feature at (x, y) in the sum is at (x + dx, y + dy) in the frame."""
    model = movie_model((96, 128), n_frames=8, drift=12.0, seed=3)
    s = model.specimen
    inner = (slice(24, -24), slice(24, -24))
    for i in (0, 7):
        dx, dy = model.shifts[i]
        frame = model.expected_frame(i)
        right = ndimage.shift(s, (dy, dx), order=5)
        wrong = ndimage.shift(s, (-dy, -dx), order=5)
        swapped = ndimage.shift(s, (dx, dy), order=5)
        err = _rms(frame[inner] - right[inner])
        assert err < 0.15 * 0.05
        assert _rms(frame[inner] - wrong[inner]) > 5 * err
        assert _rms(frame[inner] - swapped[inner]) > 5 * err


def test_integer_shift_is_exact():
    model = movie_model((64, 64), n_frames=2, drift=6.0, seed=5)
    # an integer shift of the band-limited specimen is a plain roll (inside the window)
    model.shifts[:] = [[3.0, -2.0], [-3.0, 2.0]]
    frame = model.expected_frame(0)
    np.testing.assert_allclose(frame[:-3, 3:], model.specimen[2:-1, :-3], atol=1e-5)


def test_reproducible_and_streamed():
    a = simulate_movie((48, 40), 3, seed=11, local_amplitude=1.0)
    b = simulate_movie((48, 40), 3, seed=11, local_amplitude=1.0)
    np.testing.assert_array_equal(a.frames, b.frames)
    model = movie_model((48, 40), 3, seed=11, local_amplitude=1.0)
    np.testing.assert_array_equal(model.frame(2), a.frames[2])
    assert (simulate_movie((48, 40), 3, seed=12).frames != a.frames).any()


def test_local_field():
    model = movie_model((128, 128), n_frames=10, drift=8.0, local_amplitude=2.5, seed=2)
    yy, xx = np.mgrid[0:128:4, 0:128:4].astype(float)
    fields = np.array([model.local(i, xx, yy) for i in range(10)])  # (n, 2, gy, gx)
    # zero mean over the frame (separable from the global shift) and over the frames
    np.testing.assert_allclose(fields.mean(axis=(2, 3)), 0, atol=1e-9)
    np.testing.assert_allclose(fields.mean(axis=0), 0, atol=1e-9)
    lengths = np.hypot(fields[:, 0], fields[:, 1])
    assert lengths.max() == pytest.approx(2.5, rel=0.02)
    assert np.sqrt(np.mean(lengths**2)) == pytest.approx(model.local.rms, rel=0.05)
    # smooth in time: the deformation changes most at the start
    change = np.abs(np.diff(fields, axis=0)).mean(axis=(1, 2, 3))
    assert change[0] > change[-1]


def test_local_frame_is_specimen_deformed():
    """With local motion, frame(p + g + l(p)) = specimen(p)."""
    model = movie_model((96, 96), n_frames=4, drift=6.0, local_amplitude=2.5, seed=9)
    i = 0
    frame = model.expected_frame(i)
    yy, xx = np.mgrid[20:76, 20:76].astype(float)
    lx, ly = model.local(i, xx, yy)
    dx, dy = model.shifts[i]
    # the frame's band-limited samples, interpolated at the moved positions
    coarse = ndimage.map_coordinates(frame, [yy + dy + ly, xx + dx + lx], order=5)
    err = _rms(coarse - model.specimen[20:76, 20:76])
    assert err < 0.15 * 0.05
    without = ndimage.map_coordinates(frame, [yy + dy, xx + dx], order=5)
    assert _rms(without - model.specimen[20:76, 20:76]) > 4 * err


def test_interpolated_path_matches_fourier_shift():
    # the local path (oversampled cubic spline) with a null field equals the exact shift
    model = movie_model((64, 64), n_frames=3, drift=5.0, local_amplitude=1.0, seed=6)
    model.local.scale = 0.0
    for i in range(3):
        assert _rms(model._deformed(i) - model._shifted(i)) < 0.01 * 0.05


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (4, 64)},
        {"n_frames": 0},
        {"dose_per_pixel": 0.0},
        {"drift": -1.0},
        {"contrast": 0.5},
    ],
)
def test_bad_settings(kwargs):
    with pytest.raises(DedkitError):
        simulate_movie(**{"shape": (16, 16), "n_frames": 2, **kwargs})


def test_frame_index_checked():
    with pytest.raises(DedkitError, match="outside"):
        movie_model((16, 16), 2).frame(2)
