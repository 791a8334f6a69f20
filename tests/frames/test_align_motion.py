"""dedkit.frames.align.motion: the correlation peak, and global shifts of movies of known
motion (a band-limited 1/f random specimen moved by Fourier shifts)."""

import numpy as np
import pytest
from aligntools import fourier_shift, specimen

from dedkit.errors import DedkitError
from dedkit.frames.align import (
    MotionEstimate,
    estimate_global_motion,
    estimate_motion,
)
from dedkit.frames.align.motion import correlation_peak


def trajectory(n, seed=0, scale=3.0):
    """A smooth drift (beam-induced motion: fast at first, slowing), sub-pixel values,
    zero mean."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / (n - 1)
    direction = rng.normal(size=2)
    direction /= np.hypot(*direction)
    path = scale * np.sqrt(t + 0.05)[:, None] * direction[None, :]
    path[:, 1] += 0.6 * np.sin(3 * t)  # some curvature
    return path - path.mean(axis=0)


def movie(truth, n=128, seed=0, dose=None):
    """Frames of the specimen moved by ``truth``; with ``dose`` (counts/pixel/frame),
    Poisson noise on a 30 % contrast image."""
    spec = specimen(n, seed)
    rng = np.random.default_rng(seed + 100)
    frames = []
    for dx, dy in truth:
        img = fourier_shift(spec, dx, dy)
        if dose is not None:
            img = rng.poisson(dose * np.clip(1 + 0.3 * img, 0, None))
        frames.append(img)
    return np.array(frames, np.float32)


# ----- correlation_peak --------------------------------------------------------------------


def gaussian_map(shape, dx, dy, sigma=1.5):
    """Wrapped correlation map (origin at index 0) with a Gaussian peak at (dx, dy)."""
    ny, nx = shape
    y = (np.arange(ny) + ny // 2) % ny - ny // 2
    x = (np.arange(nx) + nx // 2) % nx - nx // 2
    yy, xx = y[:, None] - dy, x[None, :] - dx
    # add the wrapped images so that peaks near the edges stay periodic
    out = np.zeros(shape)
    for oy in (-ny, 0, ny):
        for ox in (-nx, 0, nx):
            out += np.exp(-((xx + ox) ** 2 + (yy + oy) ** 2) / (2 * sigma**2))
    return out


@pytest.mark.parametrize(
    ("dx", "dy"),
    [(0.0, 0.0), (2.3, -1.6), (-7.45, 3.2), (0.49, -0.49), (-0.51, 0.51), (-15.2, -14.8),
     (11.0, -3.0), (-3.7, 14.6)],
)  # fmt: skip
@pytest.mark.parametrize("shape", [(32, 32), (40, 36), (33, 35)])
def test_correlation_peak_gaussian_subpixel(shape, dx, dy):
    cc = gaussian_map(shape, dx, dy)
    gx, gy, height = correlation_peak(cc)
    # a log-parabola is exact for a Gaussian
    assert gx == pytest.approx(dx, abs=1e-6)
    assert gy == pytest.approx(dy, abs=1e-6)
    assert height == pytest.approx(cc.max())


def test_correlation_peak_broad_non_gaussian():
    """A peak that is not Gaussian (a sinc-like band-limited one) still within 0.1 px."""
    n = 64
    for dx, dy in [(3.3, -2.8), (-0.4, 0.2), (-10.75, 6.5)]:
        k = np.fft.fftfreq(n)
        spec = np.exp(-2j * np.pi * (k[None, :] * dx + k[:, None] * dy))
        spec *= np.exp(-30 * (k[None, :] ** 2 + k[:, None] ** 2))
        cc = np.fft.ifft2(spec).real
        gx, gy, _ = correlation_peak(cc)
        assert abs(gx - dx) < 0.1 and abs(gy - dy) < 0.1


def test_correlation_peak_max_shift_limits_the_search():
    shape = (64, 64)
    cc = gaussian_map(shape, 20.0, -18.0) + 0.5 * gaussian_map(shape, -2.4, 1.3)
    assert correlation_peak(cc)[:2] == pytest.approx((20.0, -18.0), abs=1e-3)
    gx, gy, h = correlation_peak(cc, max_shift=5)
    assert (gx, gy) == pytest.approx((-2.4, 1.3), abs=0.05)
    assert h < cc.max()
    # a limit beyond half the map searches everything
    assert correlation_peak(cc, max_shift=100)[:2] == pytest.approx((20.0, -18.0), abs=1e-3)
    # negative shifts near the limit are inside the window, on both axes
    cc = gaussian_map(shape, -4.2, -3.9) + 0.5 * gaussian_map(shape, 25.0, 25.0)
    assert correlation_peak(cc, max_shift=5)[:2] == pytest.approx((-4.2, -3.9), abs=1e-3)


def test_correlation_peak_flat_neighbourhood():
    """A flat (or non-positive) neighbourhood gives the integer position, finite."""
    cc = np.zeros((16, 16))
    cc[3, -2] = 1.0
    dx, dy, h = correlation_peak(cc)
    assert (dx, dy, h) == (-2.0, 3.0, 1.0)
    cc = -np.ones((16, 16))
    cc[0, 0] = -0.5
    assert correlation_peak(cc)[:2] == (0.0, 0.0)


# ----- estimate_global_motion --------------------------------------------------------------


def rms_error(shifts, truth):
    return float(np.sqrt(np.mean(np.sum((shifts - truth) ** 2, axis=1))))


def test_recovers_subpixel_shifts_noiseless():
    truth = trajectory(8, seed=1)
    m = estimate_global_motion(movie(truth), smooth=False)
    assert isinstance(m, MotionEstimate)
    assert m.shifts.shape == (8, 2) and m.n_frames == 8
    assert rms_error(m.shifts, truth) < 0.03
    assert np.abs(m.shifts.mean(axis=0)).max() < 1e-9
    assert m.converged and 1 <= m.iterations <= 20


def test_recovers_shifts_with_poisson_noise():
    truth = trajectory(10, seed=2)
    m = estimate_global_motion(movie(truth, seed=2, dose=3.0))
    assert rms_error(m.shifts, truth) < 0.15
    assert np.abs(m.shifts.mean(axis=0)).max() < 1e-9


def test_large_shifts_and_random_walk():
    rng = np.random.default_rng(7)
    truth = np.cumsum(rng.normal(0, 2.0, size=(8, 2)), axis=0)
    truth -= truth.mean(axis=0)
    m = estimate_global_motion(movie(truth, seed=7), smooth=False)
    assert rms_error(m.shifts, truth) < 0.05


def blobs(positions, n=64):
    """Frames with a Gaussian blob at each ``(x, y)`` (x = column, y = row), faint noise."""
    y, x = np.mgrid[0:n, 0:n]
    frames = np.array([np.exp(-((x - px) ** 2 + (y - py) ** 2) / 8.0) for px, py in positions])
    frames += 0.01 * np.random.default_rng(0).normal(size=frames.shape)
    return frames.astype(np.float32)


def test_sign_convention():
    """A feature at (x, y) in the sum lies at (x + dx, y + dy) in frame i (x = column)."""
    positions = np.array([[20.0, 30.0], [23.0, 29.0], [26.0, 28.0]])
    m = estimate_global_motion(blobs(positions), smooth=False)
    # the sum's reference is the mean position (23, 29)
    np.testing.assert_allclose(m.shifts, positions - [23.0, 29.0], atol=0.1)
    dx, dy = m.displacement(2, 23.0, 29.0)
    assert (float(dx), float(dy)) == pytest.approx((3.0, -1.0), abs=0.1)
    assert m.converged


def test_two_frames_converge():
    positions = np.array([[20.0, 30.0], [26.0, 28.0]])
    m = estimate_global_motion(blobs(positions), smooth=False)
    np.testing.assert_allclose(m.shifts, [[-3.0, 1.0], [3.0, -1.0]], atol=0.1)
    assert m.converged


def test_group_stays_stable_and_accurate():
    """At low dose grouping three frames keeps the estimate close; no runaway."""
    truth = trajectory(12, seed=3, scale=4.0)
    frames = movie(truth, seed=3, dose=1.0)
    single = estimate_global_motion(frames, smooth=True)
    grouped = estimate_global_motion(frames, group=3, smooth=True)
    assert np.all(np.isfinite(grouped.shifts))
    assert rms_error(grouped.shifts, truth) < 0.25
    assert np.abs(grouped.shifts).max() < 2 * np.abs(truth).max()
    assert np.abs(grouped.shifts.mean(axis=0)).max() < 1e-9
    # not worse than a third more than frame by frame
    assert rms_error(grouped.shifts, truth) < 1.33 * rms_error(single.shifts, truth) + 0.05


@pytest.mark.parametrize("group", [2, 3, 4])
def test_group_noiseless_exact(group):
    """Any group the checks accept (up to n/2) converges to the truth without noise."""
    truth = trajectory(8, seed=4)
    m = estimate_global_motion(movie(truth, seed=4), group=group, smooth=False, tolerance=0.001)
    assert rms_error(m.shifts, truth) < 0.05
    assert m.converged


@pytest.mark.parametrize("group", [1, 2])
def test_pairs_method(group):
    truth = trajectory(8, seed=5)
    m = estimate_global_motion(movie(truth, seed=5, dose=5.0), method="pairs", group=group)
    assert rms_error(m.shifts, truth) < 0.15
    assert np.abs(m.shifts.mean(axis=0)).max() < 1e-9


def test_smooth_on_off():
    truth = trajectory(12, seed=6)
    frames = movie(truth, seed=6, dose=1.5)
    rough = estimate_global_motion(frames, smooth=False)
    smooth = estimate_global_motion(frames, smooth=True)
    assert not np.allclose(rough.shifts, smooth.shifts)
    # a smooth trajectory: the spline removes noise, it does not add error
    assert rms_error(smooth.shifts, truth) <= rms_error(rough.shifts, truth) + 0.01
    second = np.abs(np.diff(smooth.shifts, 2, axis=0)).sum()
    assert second < np.abs(np.diff(rough.shifts, 2, axis=0)).sum()


def test_max_shift_limits_global_search():
    truth = np.array([[-6.0, 0.0], [-2.0, 0.0], [2.0, 0.0], [6.0, 0.0]])
    frames = movie(truth, seed=8)
    assert rms_error(estimate_global_motion(frames, smooth=False).shifts, truth) < 0.05
    limited = estimate_global_motion(frames, smooth=False, max_shift=1.5, iterations=1)
    # one iteration against a sum of the others: no step beyond the limit
    assert np.abs(limited.shifts).max() <= 1.5 + 1.0


def test_progress_and_estimate_motion_without_patches():
    truth = trajectory(6, seed=9)
    calls = []
    m = estimate_motion(
        movie(truth, n=96, seed=9), smooth=False, progress=lambda d, t: calls.append((d, t))
    )
    assert m.local is None
    assert calls and calls[-1][0] == m.iterations and all(t == 20 for _, t in calls)
    assert rms_error(m.shifts, truth) < 0.05


def test_bad_input():
    frames = movie(trajectory(6), n=64)
    with pytest.raises(DedkitError, match="frame"):
        estimate_global_motion(frames[:1])
    with pytest.raises(DedkitError, match="frames, ny, nx"):
        estimate_global_motion(frames[0])
    with pytest.raises(DedkitError, match="too small"):
        estimate_global_motion(frames[:, :8, :8])
    with pytest.raises(DedkitError, match="group"):
        estimate_global_motion(frames, group=4)
    with pytest.raises(DedkitError, match="group"):
        estimate_global_motion(frames, group=0)
    with pytest.raises(DedkitError, match="B-factor"):
        estimate_global_motion(frames, bfactor=-1)
    with pytest.raises(DedkitError, match="B-factor"):
        estimate_global_motion(frames, bfactor=float("nan"))
    with pytest.raises(DedkitError, match="unknown alignment method"):
        estimate_global_motion(frames, method="fast")
    with pytest.raises(DedkitError, match="iterations"):
        estimate_global_motion(frames, iterations=0)
    with pytest.raises(DedkitError, match="tolerance"):
        estimate_global_motion(frames, tolerance=0)
    # the same checks through estimate_motion
    with pytest.raises(DedkitError):
        estimate_motion(frames[0])
    with pytest.raises(DedkitError):
        estimate_motion(frames, method="fast")
    with pytest.raises(DedkitError, match="patches"):
        estimate_motion(frames, patches=5)


# ----- MotionEstimate ----------------------------------------------------------------------


def test_motion_estimate_properties():
    shifts = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]])
    m = MotionEstimate(shifts)
    assert m.n_frames == 3
    assert m.total_drift == pytest.approx(5.0 + 4.0)
    s = m.scaled(2.5)
    np.testing.assert_allclose(s.shifts, shifts * 2.5)
    assert s.total_drift == pytest.approx(2.5 * 9.0)
    assert s.local is None and s.iterations == m.iterations and s.converged == m.converged
    np.testing.assert_array_equal(m.shifts, shifts)  # not changed in place
    dx, dy = m.displacement(1, np.zeros((2, 3)), np.ones((2, 3)))
    assert dx.shape == (2, 3)
    assert np.all(dx == 3.0) and np.all(dy == 4.0)
    assert MotionEstimate(np.zeros((1, 2))).total_drift == 0.0
