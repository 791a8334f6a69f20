"""dedkit.frames.align.apply: the warp and accumulate kernels against their references,
and the streamed aligned sums on movies of known motion."""

import numpy as np
import pytest
from aligntools import fourier_shift, specimen

from dedkit.errors import DedkitError
from dedkit.frames import DoseWeights
from dedkit.frames.align import AlignedSums, LocalMotion, MotionEstimate, apply_motion
from dedkit.frames.align.apply import (
    accumulate,
    accumulate_reference,
    warp_frame,
    warp_reference,
)

# ----- warp kernel against its reference ---------------------------------------------------


@pytest.mark.parametrize("move", [True, False])
@pytest.mark.parametrize(
    ("shape", "grid", "step", "offset", "amplitude"),
    [
        ((64, 80), (5, 6), 16, (0.0, 0.0), 1.5),
        ((64, 80), (5, 6), 16, (3.7, -2.2), 1.5),
        ((48, 40), (2, 2), 48, (-9.4, 12.6), 4.0),  # shifts past the edges: clamped
        ((33, 47), (4, 3), 20, (0.5, 0.25), 30.0),  # field taking samples far outside
        ((40, 40), (1, 1), 40, (1.25, -0.75), 0.5),  # a 1 x 1 field grid
    ],
)
def test_warp_frame_matches_reference(shape, grid, step, offset, amplitude, move):
    rng = np.random.default_rng(hash((shape, grid, move)) % 2**32)
    frame = rng.normal(size=shape).astype(np.float32)
    fx = rng.uniform(-amplitude, amplitude, size=grid)
    fy = rng.uniform(-amplitude, amplitude, size=grid)
    got = warp_frame(frame, fx, fy, step, offset, move)
    want = warp_reference(frame, fx, fy, step, offset, move)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_warp_frame_out_argument_and_input_types():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 50, size=(32, 36)).astype(np.uint16)
    fx = rng.uniform(-1, 1, (3, 3))
    fy = rng.uniform(-1, 1, (3, 3))
    out = np.full((32, 36), np.nan, np.float32)
    got = warp_frame(frame, fx, fy, 16, (0.3, 0.6), out=out)
    assert got is out
    np.testing.assert_allclose(got, warp_reference(frame, fx, fy, 16, (0.3, 0.6)), atol=2e-4)


def test_warp_zero_field_integer_shift_is_exact():
    """A zero field and an integer shift move the frame by whole pixels (Keys' kernel is
    interpolating): out[r, c] = frame[r + dy, c + dx] inside, edge pixels repeated outside."""
    rng = np.random.default_rng(4)
    frame = rng.normal(size=(24, 30)).astype(np.float32)
    zero = np.zeros((2, 2))
    out = warp_frame(frame, zero, zero, 30, (3.0, -2.0))
    np.testing.assert_allclose(out[2:, :-3], frame[:-2, 3:], atol=1e-6)
    # rows 0, 1 sample rows -2, -1: the edge row repeated
    np.testing.assert_allclose(out[0, :-3], frame[0, 3:], atol=1e-6)
    np.testing.assert_allclose(out[:, -1], frame[np.clip(np.arange(24) - 2, 0, 23), -1], atol=1e-6)
    # without move the shift is only where the field is evaluated: identity
    np.testing.assert_allclose(warp_frame(frame, zero, zero, 30, (3.0, -2.0), move=False), frame)


def test_warp_sign_convention():
    """A feature at (x, y) in the frame lands at (x - dx, y - dy): the warp undoes a shift."""
    frame = np.zeros((32, 32), np.float32)
    frame[20, 12] = 1.0  # row (y) 20, column (x) 12
    field_x = np.full((2, 2), 2.0)
    field_y = np.full((2, 2), 5.0)
    out = warp_frame(frame, field_x, field_y, 32)
    assert np.unravel_index(np.argmax(out), out.shape) == (15, 10)


def test_warp_reproduces_quadratic():
    """Keys' cubic (a = -0.5) is exact for quadratics: a smooth field moving a quadratic
    ramp gives the ramp at the displaced positions (away from the edges)."""
    ny, nx = 40, 48
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)

    def ramp(x, y):
        return 0.01 * x**2 - 0.02 * x * y + 0.3 * y + 1.0

    frame = ramp(x, y).astype(np.float32)
    # a linear field (bilinear interpolation of it is exact): r = (0.02 x, -0.01 y)
    gy, gx = np.mgrid[0:3, 0:3] * 24.0
    fx, fy = 0.02 * gx, -0.01 * gy
    # move=False: the field taken at p - offset, the offset itself left to a Fourier shift
    out = warp_frame(frame, fx, fy, 24, (0.4, 0.7), move=False)
    sx = x + 0.02 * (x - 0.4)
    sy = y - 0.01 * (y - 0.7)
    inner = (slice(3, 30), slice(3, 40))
    np.testing.assert_allclose(out[inner], ramp(sx, sy)[inner], rtol=2e-5, atol=2e-5)


# ----- accumulate kernel against its reference ----------------------------------------------


@pytest.mark.parametrize("with_weights", [False, True])
@pytest.mark.parametrize("with_half", [False, True])
@pytest.mark.parametrize("shape", [(16, 9), (31, 17)])
def test_accumulate_matches_reference(shape, with_weights, with_half):
    rng = np.random.default_rng(shape[0] + 2 * with_weights + with_half)

    def cplx(s):
        return (rng.normal(size=s) + 1j * rng.normal(size=s)).astype(np.complex64)

    spectrum = cplx(shape)
    ey = np.exp(2j * np.pi * rng.uniform(size=shape[0])).astype(np.complex64)
    ex = np.exp(2j * np.pi * rng.uniform(size=shape[1])).astype(np.complex64)
    start = cplx(shape)
    weights = rng.uniform(0, 2, shape).astype(np.float32) if with_weights else None
    start_w = cplx(shape) if with_weights else None
    start_h = cplx(shape) if with_half else None

    def fresh():
        return (
            start.copy(),
            None if start_w is None else start_w.copy(),
            None if start_h is None else start_h.copy(),
        )

    s1, w1, h1 = fresh()
    accumulate(spectrum, ey, ex, s1, weights, w1, h1)
    s2, w2, h2 = fresh()
    accumulate_reference(spectrum, ey, ex, s2, weights, w2, h2)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-5)
    assert not np.allclose(s1, start)  # it added something
    if with_weights:
        np.testing.assert_allclose(w1, w2, rtol=1e-5, atol=1e-5)
    if with_half:
        np.testing.assert_allclose(h1, h2, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h1 - start_h, s1 - start, rtol=1e-5, atol=1e-5)


# ----- AlignedSums on movies of known motion -------------------------------------------------

TRUTH = np.array(
    [[-3.2, 1.9], [-2.1, 1.4], [-1.3, 0.6], [-0.4, 0.1], [0.5, -0.2], [1.2, -0.9], [2.4, -1.2],
     [2.9, -1.7]]
)  # fmt: skip


def shifted_movie(n=128, truth=TRUTH, seed=0):
    spec = specimen(n, seed)
    frames = np.array([fourier_shift(spec, dx, dy) for dx, dy in truth], np.float32)
    return spec, frames


def test_fourier_sum_reproduces_specimen():
    spec, frames = shifted_movie()
    sums = AlignedSums(frames.shape[1:], MotionEstimate(TRUTH), even_odd=True)
    for i, f in enumerate(frames):
        sums.add(i, f)
    res = sums.result()
    assert set(res) == {"sum", "even", "odd"}
    assert res["sum"].dtype == np.float32 and res["sum"].shape == spec.shape
    np.testing.assert_allclose(res["sum"], len(TRUTH) * spec, atol=2e-4 * len(TRUTH))
    np.testing.assert_allclose(res["even"] + res["odd"], res["sum"], atol=1e-4)
    np.testing.assert_allclose(res["even"], 4 * spec, atol=1e-3)
    assert sums.added.all()


def test_cubic_sum_close_to_specimen():
    spec, frames = shifted_movie()
    sums = AlignedSums(frames.shape[1:], MotionEstimate(TRUTH), interpolation="cubic")
    for i, f in enumerate(frames):
        sums.add(i, f)
    got = sums.result()["sum"] / len(TRUTH)
    inner = (slice(8, -8), slice(8, -8))  # the edges repeat pixels instead of wrapping
    err = np.abs(got[inner] - spec[inner])
    # cubic interpolation smooths a little: small but not float-exact
    assert np.sqrt(np.mean(err**2)) < 0.05
    assert np.corrcoef(got[inner].ravel(), spec[inner].ravel())[0, 1] > 0.998


def test_wrong_shifts_do_not_reproduce_specimen():
    """The sums depend on the motion (guards the tests above against a no-op)."""
    spec, frames = shifted_movie()
    sums = AlignedSums(frames.shape[1:], MotionEstimate(-TRUTH))
    for i, f in enumerate(frames):
        sums.add(i, f)
    assert np.abs(sums.result()["sum"] - len(TRUTH) * spec).max() > 1.0


def test_dose_weighted_sum_keeps_the_mean():
    spec, frames = shifted_movie()
    # a mean to keep, and noise of its own in each frame (identical aligned frames would
    # give the plain sum: the weights of all frames add up to n at every frequency)
    frames = frames + 5.0 + np.random.default_rng(1).normal(size=frames.shape).astype(np.float32)
    dw = DoseWeights(frames.shape[1:], 1.0, [4.0] * len(TRUTH))
    sums = AlignedSums(frames.shape[1:], MotionEstimate(TRUTH), dose_weights=dw, even_odd=True)
    for i, f in enumerate(frames):
        sums.add(i, f)
    res = sums.result()
    assert set(res) == {"sum", "dose_weighted", "even", "odd"}
    assert res["dose_weighted"].mean() == pytest.approx(res["sum"].mean(), rel=1e-5)
    assert res["sum"].mean() == pytest.approx(frames.mean() * len(TRUTH), rel=1e-5)
    # the weighting did something: late frames lose high frequencies
    assert not np.allclose(res["dose_weighted"], res["sum"], atol=1e-2)


def test_dose_weighted_sum_matches_direct_computation():
    spec, frames = shifted_movie(n=64, seed=2)
    dw = DoseWeights((64, 64), 1.0, [3.0] * len(TRUTH))
    sums = AlignedSums((64, 64), MotionEstimate(TRUTH), dose_weights=dw)
    for i, f in enumerate(frames):
        sums.add(i, f)
    want = sum(np.fft.rfft2(spec) * dw.frame(i) for i in range(len(TRUTH)))
    np.testing.assert_allclose(
        sums.result()["dose_weighted"], np.fft.irfft2(want, s=(64, 64)), atol=2e-3
    )


def test_aligned_sums_bad_input():
    motion = MotionEstimate(np.zeros((3, 2)))
    sums = AlignedSums((32, 32), motion)
    with pytest.raises(DedkitError, match="frame 0 is"):
        sums.add(0, np.zeros((32, 30), np.float32))
    for index in (3, -1):
        with pytest.raises(DedkitError, match="outside"):
            sums.add(index, np.zeros((32, 32), np.float32))
    with pytest.raises(DedkitError, match="interpolation"):
        AlignedSums((32, 32), motion, interpolation="linear")
    with pytest.raises(DedkitError, match="MotionEstimate"):
        AlignedSums((32, 32), np.zeros((3, 2)))
    with pytest.raises(DedkitError, match="dose weights for 4 frames"):
        AlignedSums((32, 32), motion, dose_weights=DoseWeights((32, 32), 1.0, [1.0] * 4))
    assert not sums.added.any()


def test_dose_weights_of_another_shape_are_refused():
    motion = MotionEstimate(np.zeros((3, 2)))
    with pytest.raises(DedkitError):
        AlignedSums((64, 64), motion, dose_weights=DoseWeights((32, 32), 1.0, [1.0] * 3))


def test_apply_motion():
    spec, frames = shifted_movie()
    motion = MotionEstimate(TRUTH)
    for i in (0, 5):
        np.testing.assert_allclose(apply_motion(frames[i], motion, i), spec, atol=2e-4)
    cubic = apply_motion(frames[0], motion, 0, interpolation="cubic")
    assert cubic.dtype == np.float32
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(cubic[inner] - spec[inner]).max() < 0.3
    with pytest.raises(DedkitError):
        apply_motion(frames[0], TRUTH, 0)


# ----- local field applied -----------------------------------------------------------------


def _constant_local(n_frames, values, shape=(128.0, 128.0)):
    control = np.zeros((n_frames, 4, 4, 2))
    for i, v in enumerate(values):
        control[i] = v
    return LocalMotion(
        shape, n_frames, (2, 2), control, np.zeros((0, 2)), np.zeros((n_frames, 0, 2)), np.zeros(0)
    )


@pytest.mark.parametrize("interpolation", ["fourier", "cubic"])
def test_constant_local_field_adds_to_global_shift(interpolation):
    """A constant local field is a shift: global + local together reproduce the specimen."""
    spec = specimen(128, 5)
    glob = np.array([[1.5, -1.0], [-1.5, 1.0]])
    loc = np.array([[0.5, 0.25], [-0.5, -0.25]])
    frames = [fourier_shift(spec, *(g + r)) for g, r in zip(glob, loc, strict=True)]
    motion = MotionEstimate(glob, local=_constant_local(2, loc))
    inner = (slice(10, -10), slice(10, -10))
    for i in range(2):
        got = apply_motion(frames[i], motion, i, interpolation=interpolation)
        assert np.sqrt(np.mean((got[inner] - spec[inner]) ** 2)) < 0.05


def _linear_field_motion(shift):
    """Frame 0 moved by the global ``shift`` plus a local field r(x, y) = (0.04 (x - 64), 0),
    built as a spline whose control points are linear in x (B-splines reproduce lines)."""
    local = _constant_local(1, [(0.0, 0.0)])
    # control x positions: (j - 1) / n_intervals * nx, j = 0..3, one interval
    cx = (np.arange(4) - 1) * 128.0
    control = np.zeros((1, 4, 4, 2))
    control[0, :, :, 0] = 0.04 * (cx[None, :] - 64.0)
    local = LocalMotion(
        local.shape, 1, (2, 2), control, local.patch_centres, local.patch_shifts,
        local.patch_weights,
    )  # fmt: skip
    return MotionEstimate(np.array([shift]), local=local)


def test_linear_field_is_linear():
    motion = _linear_field_motion((0.0, 0.0))
    dx, dy = motion.local.displacement(0, np.array([0.0, 64.0, 100.0]), np.array([5.0, 64, 120]))
    np.testing.assert_allclose(dx, [-2.56, 0.0, 1.44], atol=1e-9)
    np.testing.assert_allclose(dy, 0.0, atol=1e-12)


def _warped_specimen(spec, motion):
    """Frame whose pixel q + s + r(q) shows the specimen's pixel q: built by sampling a
    smooth specimen (band-limited, evaluated exactly by its Fourier series)."""
    from scipy.ndimage import map_coordinates

    ny, nx = spec.shape
    # invert p = q + s + r(q) for q by fixed-point iteration (r is smooth and small)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    qx, qy = x.copy(), y.copy()
    for _ in range(30):
        dx, dy = motion.displacement(0, qx, qy)
        qx, qy = x - dx, y - dy
    return map_coordinates(spec, [qy, qx], order=5, mode="grid-wrap").astype(np.float32)


@pytest.mark.parametrize(
    "interpolation",
    [
        "fourier",
        "cubic",
    ],
)
def test_local_field_with_large_global_shift(interpolation):
    """The field is a function of the position in the aligned sum, whatever the global
    shift: both interpolations must put the frame back onto the specimen."""
    spec = specimen(128, 6, cutoff=0.15)
    motion = _linear_field_motion((12.0, -7.0))
    frame = _warped_specimen(spec, motion)
    got = apply_motion(frame, motion, 0, interpolation=interpolation)
    inner = (slice(20, -20), slice(20, -20))
    err = np.sqrt(np.mean((got[inner] - spec[inner]) ** 2))
    assert err < 0.05, err


def test_odd_shape_and_odd_frame_count():
    """Odd sizes (rfft layout without a Nyquist column) and an odd number of frames."""
    rng = np.random.default_rng(11)
    n = 63
    ky, kx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(70)[None, :]
    k = np.hypot(kx, ky)
    spec = np.fft.fft2(rng.normal(size=(n, 70))) / np.maximum(k, 1 / 70) * (k < 0.3)
    img = np.fft.ifft2(spec).real
    truth = TRUTH[:5]
    frames = [fourier_shift(img, dx, dy) for dx, dy in truth]
    # periodic test image: no padding, so that Fourier shifts stay exact
    sums = AlignedSums((n, 70), MotionEstimate(truth), even_odd=True, pad=False)
    for i, f in enumerate(frames):
        sums.add(i, f)
    res = sums.result()
    assert res["sum"].shape == (n, 70)
    np.testing.assert_allclose(res["sum"], 5 * img, atol=1e-3 * np.abs(img).max())
    np.testing.assert_allclose(res["even"], 3 * img, atol=1e-3 * np.abs(img).max())
    np.testing.assert_allclose(res["odd"], 2 * img, atol=1e-3 * np.abs(img).max())


def test_motion_from_reduced_copy_scaled_to_full_frames():
    """The job's path: estimate on a 2x reduced copy, scale by 2, sum the full frames."""
    from dedkit.frames import reduce_image
    from dedkit.frames.align import estimate_motion

    spec = specimen(256, 12, cutoff=0.2)
    truth = 2 * TRUTH
    frames = np.array([fourier_shift(spec, dx, dy) for dx, dy in truth], np.float32)
    small = np.array([reduce_image(f, 2) for f in frames])
    motion = estimate_motion(small, smooth=False)
    np.testing.assert_allclose(motion.shifts, truth / 2, atol=0.05)
    full = motion.scaled(2)
    sums = AlignedSums(frames.shape[1:], full)
    for i, f in enumerate(frames):
        sums.add(i, f)
    got = sums.result()["sum"] / len(truth)
    assert np.sqrt(np.mean((got - spec) ** 2)) < 0.03
