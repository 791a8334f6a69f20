"""dedkit.frames.align.local: a movie with a smooth known deformation, vacuum patches,
the LocalMotion model and the patch checks."""

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from dedkit.errors import DedkitError
from dedkit.frames.align import (
    LocalMotion,
    MotionEstimate,
    estimate_global_motion,
    estimate_local_motion,
    estimate_motion,
)
from dedkit.frames.align.local import _check_patches, patch_grid

N = 192  # frames N x N
N_FRAMES = 8
GRID = (3, 3)
TIME = np.linspace(-1.0, 1.0, N_FRAMES)  # zero mean over the frames


def specimen(n=N, seed=0, cutoff=0.25):
    """A 1/f random specimen, band-limited to ``cutoff`` cycles/pixel, unit std."""
    rng = np.random.default_rng(seed)
    ky, kx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    k = np.hypot(kx, ky)
    spec = np.fft.fft2(rng.normal(size=(n, n))) / np.maximum(k, 1 / n)
    spec *= k < cutoff
    img = np.fft.ifft2(spec).real
    return img / img.std()


def global_truth():
    return np.stack([2.0 * TIME, -1.0 * TIME + 0.3 * (TIME**2 - np.mean(TIME**2))], axis=1)


def local_truth(i, x, y, amplitude=1.5):
    """A smooth deformation (about half a cycle across the frame), linear in time, zero
    mean over the frames at every position: shear in x, a bulge in y."""
    u, v = np.asarray(x) / N - 0.5, np.asarray(y) / N - 0.5
    rx = amplitude * TIME[i] * 2.0 * v
    ry = amplitude * TIME[i] * (np.cos(np.pi * u) * np.cos(np.pi * v) - 0.4)
    return rx, ry


def deformed_movie(seed=0, dose=None, amplitude=1.5):
    """Frame i shows the specimen's point q at q + s_i + r_i(q)."""
    spec = specimen(seed=seed)
    shifts = global_truth()
    y, x = np.mgrid[0:N, 0:N].astype(np.float64)
    rng = np.random.default_rng(seed + 1)
    frames = []
    for i in range(N_FRAMES):
        qx, qy = x.copy(), y.copy()
        for _ in range(20):  # invert p = q + s + r(q) by fixed-point iteration
            rx, ry = local_truth(i, qx, qy, amplitude)
            qx, qy = x - shifts[i, 0] - rx, y - shifts[i, 1] - ry
        img = map_coordinates(spec, [qy, qx], order=3, mode="grid-wrap")
        if dose is not None:
            img = rng.poisson(dose * np.clip(1 + 0.3 * img, 0, None))
        frames.append(img)
    return np.array(frames, np.float32)


def displacement_error(motion, amplitude=1.5, margin=24, mask=None):
    """RMS error of the total displacement on a grid of positions inside the frame."""
    pos = np.arange(margin, N - margin + 1, 12.0)
    x, y = np.meshgrid(pos, pos)
    keep = np.ones(x.shape, bool) if mask is None else mask(x, y)
    truth = global_truth()
    err = []
    for i in range(N_FRAMES):
        dx, dy = motion.displacement(i, x, y)
        rx, ry = local_truth(i, x, y, amplitude)
        ex = dx - (truth[i, 0] + rx)
        ey = dy - (truth[i, 1] + ry)
        err.append((ex**2 + ey**2)[keep])
    return float(np.sqrt(np.mean(err)))


@pytest.fixture(scope="module")
def clean_movie():
    return deformed_movie()


def test_local_model_beats_global_only(clean_movie):
    glob = estimate_global_motion(clean_movie, smooth=False)
    local = estimate_local_motion(clean_movie, glob.shifts, GRID, bfactor=150)
    assert isinstance(local, LocalMotion)
    assert local.control.shape == (N_FRAMES, 5, 5, 2)
    assert local.patch_shifts.shape == (N_FRAMES, 9, 2)
    assert local.n_used == 9 and np.all(local.patch_weights > 0)
    with_local = MotionEstimate(glob.shifts, local=local)
    global_error = displacement_error(glob)
    local_error = displacement_error(with_local)
    assert global_error > 0.4  # the deformation is there to find
    assert local_error < 0.35 * global_error, (local_error, global_error)
    # zero mean over the frames at every position, like the global shifts
    dx, dy = np.array([local.displacement(i, 50.0, 140.0) for i in range(N_FRAMES)]).T
    assert abs(dx.mean()) < 1e-9 and abs(dy.mean()) < 1e-9
    # the patch measurements agree with the truth at the patch centres
    truth = np.array([local_truth(i, *local.patch_centres.T) for i in range(N_FRAMES)]).transpose(
        0, 2, 1
    )
    truth -= truth.mean(axis=1, keepdims=True)  # the global shift takes the mean
    measured = local.patch_shifts - local.patch_shifts.mean(axis=1, keepdims=True)
    assert np.sqrt(np.mean((measured - truth) ** 2)) < 0.2


def test_estimate_motion_with_patches(clean_movie):
    calls = []
    m = estimate_motion(
        clean_movie, patches=GRID, local_bfactor=150, progress=lambda d, t: calls.append((d, t))
    )
    assert m.local is not None and m.local.grid == GRID
    assert (9, 9) in calls  # the patches report after the global iterations
    assert displacement_error(m) < 0.35 * displacement_error(MotionEstimate(m.shifts))


def test_no_deformation_gives_small_field():
    frames = deformed_movie(seed=3, amplitude=0.0)
    glob = estimate_global_motion(frames, smooth=False)
    local = estimate_local_motion(frames, glob.shifts, GRID, bfactor=150)
    pos = np.linspace(0, N, 9)
    x, y = np.meshgrid(pos, pos)
    worst = max(np.abs(np.array(local.displacement(i, x, y))).max() for i in range(N_FRAMES))
    assert worst < 0.1


VACUUM = (slice(0, 100), slice(0, 100))  # covers patch 0 (rows and columns 0..96)


def _inside_vacuum(x, y):
    return ~((x < 110) & (y < 110))


def test_constant_vacuum_patch_has_weight_zero(clean_movie):
    frames = clean_movie.copy()
    frames[(slice(None), *VACUUM)] = 0.0
    glob = estimate_global_motion(frames, smooth=False)
    rows, cols, _, _ = patch_grid((N, N), GRID)[0]
    assert rows.stop <= 100 and cols.stop <= 100  # the patch is all vacuum
    local = estimate_local_motion(frames, glob.shifts, GRID, bfactor=150)
    assert local.patch_weights[0] == 0.0
    assert np.all(local.patch_weights[1:] > 0)
    assert np.all(np.isfinite(local.control))
    err = displacement_error(MotionEstimate(glob.shifts, local=local), mask=_inside_vacuum)
    assert err < 0.35 * displacement_error(glob, mask=_inside_vacuum)


def test_noise_vacuum_patch_has_weight_zero():
    """Pure noise (vacuum at the same mean count) gets weight 0 and does not pull the
    field: the fit with it equals the fit without its measurements."""
    frames = deformed_movie(seed=5, dose=20.0)
    rng = np.random.default_rng(9)
    frames[(slice(None), *VACUUM)] = rng.poisson(20.0, size=(N_FRAMES, 100, 100))
    glob = estimate_global_motion(frames)
    local = estimate_local_motion(frames, glob.shifts, GRID, bfactor=150)
    assert local.patch_weights[0] == 0.0
    assert local.n_used >= 7
    with_local = MotionEstimate(glob.shifts, local=local)
    assert displacement_error(with_local, mask=_inside_vacuum) < 0.6 * displacement_error(
        glob, mask=_inside_vacuum
    )
    assert np.abs(local.control).max() < 5.0


def test_local_motion_model():
    control = np.zeros((3, 5, 4, 2))
    control[1] = (0.75, -1.25)
    control[2, 2, 1] = (2.0, 0.0)  # one bump
    m = LocalMotion(
        (100.0, 80.0), 3, (2, 3), control, np.array([[20.0, 30.0], [60.0, 70.0]]),
        np.ones((3, 2, 2)), np.array([1.0, 0.0]),
    )  # fmt: skip
    assert m.n_used == 1
    x, y = np.meshgrid(np.linspace(0, 80, 7), np.linspace(0, 100, 5))
    dx, dy = m.displacement(1, x, y)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, 0.75, atol=1e-12)  # B-splines reproduce constants
    np.testing.assert_allclose(dy, -1.25, atol=1e-12)
    np.testing.assert_allclose(m.displacement(0, x, y), 0.0, atol=1e-15)
    bump = m.displacement(2, x, y)[0]
    assert bump.max() > 0.5 and np.all(bump >= -1e-12)
    s = m.scaled(4)
    assert s.shape == (400.0, 320.0) and s.grid == m.grid and s.n_frames == 3
    np.testing.assert_allclose(s.displacement(2, 4 * x, 4 * y)[0], 4 * bump, atol=1e-12)
    np.testing.assert_allclose(s.patch_centres, 4 * m.patch_centres)
    np.testing.assert_allclose(s.patch_shifts, 4 * m.patch_shifts)
    np.testing.assert_array_equal(s.patch_weights, m.patch_weights)
    model = m.model_shifts()
    assert model.shape == (3, 2, 2)
    np.testing.assert_allclose(model[1], [[0.75, -1.25]] * 2, atol=1e-12)
    # field(): the displacement sampled every `step` pixels, past the far edge
    fx, fy, step = m.field(1, (100, 80), step=16)
    assert step == 16 and fx.shape == (8, 6)  # samples 0..112 x 0..80
    np.testing.assert_allclose(fx[:-1], 0.75)  # rows 0..96: inside the frame
    # (row 112 lies past the spline's domain, where it no longer sums to one; the warp
    # gives it a weight under (99 - 96) / 16 for the last rows only)
    np.testing.assert_allclose(fx[-1], 0.75, rtol=0.01)
    # MotionEstimate scales its local model with it and adds the global shift
    me = MotionEstimate(np.array([[1.0, 2.0]] * 3), local=m)
    dx, dy = me.scaled(2).displacement(1, 10.0, 10.0)
    assert (float(dx), float(dy)) == pytest.approx((2 + 1.5, 4 - 2.5))


def test_check_patches():
    assert _check_patches((5, 5), (400, 400)) == (5, 5)
    assert _check_patches([2, 1], (64, 96)) == (2, 1)
    for bad, match in [
        ((0, 5), "at least 1 x 1"),
        ((5, 0), "at least 1 x 1"),
        ((-1, 3), "at least 1 x 1"),
        ((1, 1), "at least 2 patches"),
        ((8, 8), "too small"),
        ((2, 9), "too small"),
        ("ab", "two numbers"),
        (5, "two numbers"),
        ((1, 2, 3), "two numbers"),
    ]:
        with pytest.raises(DedkitError, match=match):
            _check_patches(bad, (128, 128))
    frames = np.zeros((4, 64, 64), np.float32)
    with pytest.raises(DedkitError, match="too small"):
        estimate_local_motion(frames, np.zeros((4, 2)), (4, 4))
    with pytest.raises(DedkitError, match="too small"):
        estimate_motion(frames, patches=(4, 4))  # refused before the global estimate


def test_patch_grid_covers_and_overlaps():
    patches = patch_grid((192, 256), (3, 2))
    assert len(patches) == 6
    for rows, cols, cx, cy in patches:
        assert 0 <= rows.start < rows.stop <= 192 and 0 <= cols.start < cols.stop <= 256
        assert cols.start <= cx <= cols.stop and rows.start <= cy <= rows.stop
    # neighbours overlap
    assert patches[0][1].stop > patches[1][1].start
    assert patches[0][0].stop > patches[3][0].start


def test_aligned_sum_with_local_field_is_sharper(clean_movie):
    """Applying the local field brings the sum closer to the specimen than global only."""
    from dedkit.frames.align import AlignedSums

    m = estimate_motion(clean_movie, patches=GRID, local_bfactor=150, smooth=False)
    spec = specimen()
    inner = (slice(24, -24), slice(24, -24))
    errors = {}
    for name, motion in [("global", MotionEstimate(m.shifts)), ("local", m)]:
        sums = AlignedSums((N, N), motion)
        for i, frame in enumerate(clean_movie):
            sums.add(i, frame)
        got = sums.result()["sum"] / N_FRAMES
        errors[name] = float(np.sqrt(np.mean((got[inner] - spec[inner]) ** 2)))
    assert errors["local"] < 0.5 * errors["global"], errors
