"""Global frame motion: each frame (or group of frames) against the sum of the others.

The estimator works on a reduced, gain-normalised copy of the movie (the caller makes it
with :func:`dedkit.frames.reduce_image`; the job does it on the fly). Every frame is
tapered at its edges, Fourier transformed once, and band-pass filtered: a B-factor low
pass ``exp(-B k^2 / 4)`` (k in cycles per pixel, B in square pixels of the frames given)
that keeps the frequencies where a low-dose frame has signal, and a high pass that
removes the lowest rings (intensity ramps, the taper). Each frame is then cross-correlated
with the sum of all the *other* frames, aligned with the current estimate, so that its
own shot noise does not pull the peak to zero; the peak's position, refined to sub-pixel
precision, is the frame's new shift. The sum is rebuilt and the loop repeats until no
shift moves by more than ``tolerance`` (MotionCor2's and alignframes' iterative scheme).

``method="pairs"`` instead measures every pair of frames (or groups) and solves for the
shifts by a robust least-squares fit, as alignframes' ``-pair`` does. It costs n^2/2
correlations instead of n per iteration, and on simulated 1024 x 1024 x 30 movies (1/f
specimen, 5 % contrast, a 15-pixel beam-induced track) it was less accurate: RMS errors of
0.58 / 0.20 / 0.14 pixel at 0.5 / 1 / 2 e/pixel/frame against 0.38 / 0.19 / 0.13 for the
iterative scheme (a correlation of two single frames is noisier than one of a frame
against the sum of all the others). Iterative is the default.

Low dose per frame: ``group`` sums each frame with its neighbours (a running window of
``group`` frames) before correlating, and the final trajectory is a smoothing spline
through the per-frame estimates with its stiffness chosen by generalised
cross-validation (beam-induced motion is smooth in time; the noise of a single-frame
estimate is not).

Shifts are ``(dx, dy)`` in the pixels of the frames given: the specimen's displacement in
frame i relative to the aligned sum (a feature at (x, y) in the sum lies at
``(x + dx, y + dy)`` in frame i; x along columns, y along rows). The sum's reference is
the mean position over all frames, so the shifts have zero mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import scipy.fft
import scipy.interpolate

from dedkit.errors import DedkitError
from dedkit.threads import thread_count

__all__ = [
    "DEFAULT_BFACTOR",
    "MotionEstimate",
    "estimate_global_motion",
    "prepare_spectra",
    "correlation_peak",
]

#: Default B-factor of the alignment filter, in square pixels of the alignment copy:
#: exp(-B k^2 / 4) is 0.5 at k = 0.096 cycles/pixel. Chosen on the simulated movies of the
#: validation (1/f specimens at 0.5-2 e/pixel/frame); MotionCor2's 500 A^2 at its usual
#: 1 A pixel and binning 1 would be 500 here.
DEFAULT_BFACTOR = 300.0

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class MotionEstimate:
    """Estimated motion of a movie's frames.

    Attributes
    ----------
    shifts : ndarray, shape (n_frames, 2)
        Global ``(dx, dy)`` of each frame in pixels (see the module for the convention).
    local : LocalMotion or None
        The local (patch) model on top of the global shifts, or None.
    iterations : int
        Iterations the global estimate took.
    converged : bool
        Whether the last iteration moved no shift by more than the tolerance.
    """

    shifts: np.ndarray
    local: object | None = None
    iterations: int = 0
    converged: bool = True

    @property
    def n_frames(self) -> int:
        return len(self.shifts)

    @property
    def total_drift(self) -> float:
        """Path length of the global trajectory, in pixels."""
        steps = np.diff(np.asarray(self.shifts, np.float64), axis=0)
        return float(np.hypot(steps[:, 0], steps[:, 1]).sum())

    def scaled(self, factor: float) -> MotionEstimate:
        """The same motion for frames ``factor`` times larger (pixels ``1/factor`` as big).

        Examples
        --------
        >>> import numpy as np
        >>> m = MotionEstimate(np.array([[0.5, -1.0], [-0.5, 1.0]]))
        >>> m.scaled(4).shifts
        array([[ 2., -4.],
               [-2.,  4.]])
        """
        local = None if self.local is None else self.local.scaled(factor)
        return replace(self, shifts=np.asarray(self.shifts, np.float64) * factor, local=local)

    def displacement(self, index: int, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Total ``(dx, dy)`` of frame ``index`` at positions ``x, y`` (global + local)."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        dx = np.full(np.broadcast(x, y).shape, self.shifts[index, 0])
        dy = np.full(dx.shape, self.shifts[index, 1])
        if self.local is not None:
            lx, ly = self.local.displacement(index, x, y)
            dx = dx + lx
            dy = dy + ly
        return dx, dy


def _taper(shape: tuple[int, int], width: int) -> np.ndarray:
    """A separable cosine edge taper: 1 inside, falling to 0 over ``width`` pixels, so
    that the frame edges (which do not wrap) make no cross in the spectrum."""
    out = []
    for n in shape:
        w = np.ones(n)
        m = min(width, n // 4)
        if m > 0:
            ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
            w[:m] = ramp
            w[n - m :] = ramp[::-1]
        out.append(w)
    return np.outer(out[0], out[1]).astype(np.float32)


def frequency_grids(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Spatial frequencies (cycles/pixel) of an ``rfft2`` of ``shape``: ky column, kx row."""
    ky = scipy.fft.fftfreq(shape[0])[:, None]
    kx = scipy.fft.rfftfreq(shape[1])[None, :]
    return ky, kx


def alignment_filter(shape, bfactor: float, highpass: float | None = None) -> np.ndarray:
    """Band-pass used for correlations: exp(-B k^2/4) times a smooth high pass.

    ``highpass`` (cycles/pixel) defaults to two rings of the larger dimension."""
    ky, kx = frequency_grids(shape)
    k2 = ky**2 + kx**2
    filt = np.exp(-bfactor * k2 / 4.0)
    if highpass is None:
        highpass = 2.0 / max(shape)
    if highpass > 0:
        filt *= 1.0 - np.exp(-k2 / (2 * highpass**2))
    return filt.astype(np.float32)


def fast_shape(shape) -> tuple[int, int]:
    """``shape`` padded to lengths the FFT handles fast (1023 takes 3 times 1024's time)."""
    return tuple(scipy.fft.next_fast_len(int(n), real=True) for n in shape)


def prepare_spectra(
    frames, *, taper: int | None = None, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted, edge-tapered frames, zero-padded to :func:`fast_shape` (the taper
    takes them to zero at the edges, so the padding adds no edge), and their ``rfft2``
    spectra.

    Returns ``(spectra (n, py, px//2+1) complex64, taper image)``."""
    frames = np.asarray(frames)
    n, ny, nx = frames.shape
    if taper is None:
        taper = max(4, min(ny, nx) // 20)
    window = _taper((ny, nx), taper)
    py, px = fast_shape((ny, nx))
    spectra = np.empty((n, py, px // 2 + 1), np.complex64)
    f = np.zeros((py, px), np.float32)
    for i in range(n):
        f[:ny, :nx] = frames[i]
        f[:ny, :nx] -= np.float32(frames[i].mean())
        f[:ny, :nx] *= window
        spectra[i] = scipy.fft.rfft2(f, workers=thread_count() if workers is None else workers)
    return spectra, window


def phase_ramp(shape, dx: float, dy: float, ky=None, kx=None) -> np.ndarray:
    """``exp(2 pi i k.s)``: multiplying a spectrum by it moves the image by ``-s``."""
    if ky is None:
        ky, kx = frequency_grids(shape)
    ey = np.exp(2j * np.pi * ky * dy).astype(np.complex64)
    ex = np.exp(2j * np.pi * kx * dx).astype(np.complex64)
    return ey * ex


def _subpixel(cm: float, c0: float, cp: float) -> float:
    """Vertex of a Gaussian through three samples (log-parabola), parabolic if any <= 0."""
    if cm > 0 and c0 > 0 and cp > 0:
        lm, l0, lp = np.log(cm), np.log(c0), np.log(cp)
        denom = lm - 2 * l0 + lp
        if denom < 0:
            return float(np.clip(0.5 * (lm - lp) / denom, -0.5, 0.5))
    denom = cm - 2 * c0 + cp
    if denom < 0:
        return float(np.clip(0.5 * (cm - cp) / denom, -0.5, 0.5))
    return 0.0


def correlation_peak(cc: np.ndarray, max_shift: float | None = None) -> tuple[float, float, float]:
    """Sub-pixel position ``(dx, dy)`` and height of the highest peak of a correlation map
    whose origin is at index (0, 0) (wrapped), searched within ``max_shift`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> y, x = np.mgrid[-16:16, -16:16]
    >>> cc = np.fft.ifftshift(np.exp(-((x - 2.3) ** 2 + (y + 1.6) ** 2) / 4.0))
    >>> dx, dy, _ = correlation_peak(cc)
    >>> round(dx, 2), round(dy, 2)
    (2.3, -1.6)
    """
    ny, nx = cc.shape
    if max_shift is not None:
        r = int(np.ceil(max_shift))
        ys = np.r_[0 : min(r + 1, ny // 2), max(ny - r, ny // 2) : ny]
        xs = np.r_[0 : min(r + 1, nx // 2), max(nx - r, nx // 2) : nx]
        sub = cc[np.ix_(ys, xs)]
        iy, ix = np.unravel_index(int(np.argmax(sub)), sub.shape)
        iy, ix = int(ys[iy]), int(xs[ix])
    else:
        iy, ix = np.unravel_index(int(np.argmax(cc)), cc.shape)
    c0 = float(cc[iy, ix])
    fy = _subpixel(float(cc[(iy - 1) % ny, ix]), c0, float(cc[(iy + 1) % ny, ix]))
    fx = _subpixel(float(cc[iy, (ix - 1) % nx]), c0, float(cc[iy, (ix + 1) % nx]))
    dy = (iy + ny // 2) % ny - ny // 2 + fy
    dx = (ix + nx // 2) % nx - nx // 2 + fx
    return float(dx), float(dy), c0


def group_spectra(spectra: np.ndarray, group: int) -> np.ndarray:
    """Sums of ``group`` consecutive spectra centred on each frame; at the ends of the
    movie the window shrinks rather than slides, so that every frame keeps a window of
    its own (a frame whose window is shared with its neighbour would not be constrained)."""
    n = len(spectra)
    if group <= 1:
        return spectra
    out = np.empty_like(spectra)
    for i in range(n):
        lo = i - (group - 1) // 2
        hi = min(n, lo + group)
        lo = max(0, lo)
        # windows are a few frames: adding them beats a cumulative sum over the movie
        np.copyto(out[i], spectra[lo])
        for j in range(lo + 1, hi):
            out[i] += spectra[j]
    return out


def window_matrix(n: int, group: int) -> np.ndarray:
    """(n, n) matrix whose row i averages the frames of frame i's window (as
    :func:`group_spectra` forms it)."""
    a = np.zeros((n, n))
    for i in range(n):
        lo = i - (group - 1) // 2
        hi = min(n, lo + group)
        lo = max(0, lo)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def _unmix_windows(means: np.ndarray, averaging: np.ndarray) -> np.ndarray:
    """Per-frame shifts whose window means are ``means`` (least squares with a light
    penalty on the second difference, which the averaging leaves least determined)."""
    n = len(means)
    d2 = np.diff(np.eye(n), 2, axis=0)
    lhs = averaging.T @ averaging + 1e-3 * d2.T @ d2
    return np.linalg.solve(lhs, averaging.T @ means)


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise DedkitError(f"motion estimation needs a (frames, ny, nx) array, got {frames.shape}")
    if len(frames) < 2:
        raise DedkitError(f"a movie of {len(frames)} frame(s) has no motion to estimate")
    if min(frames.shape[1:]) < 16:
        raise DedkitError(f"frames of {frames.shape[1:]} pixels are too small to align")
    return frames


def _check_group(group: int, n: int) -> int:
    group = int(group)
    if group < 1:
        raise DedkitError(f"group must be at least 1, got {group}")
    if group > n // 2 and group > 1:
        raise DedkitError(f"group {group} needs at least {2 * group} frames, the movie has {n}")
    return group


def smooth_trajectory(shifts: np.ndarray) -> np.ndarray:
    """Smoothing spline through per-frame shifts, stiffness by generalised cross-validation
    (scipy's ``make_smoothing_spline``); fewer than 5 frames are returned as they are."""
    n = len(shifts)
    if n < 5:
        return shifts.copy()
    t = np.arange(n, dtype=np.float64)
    out = np.empty_like(shifts)
    for axis in range(2):
        spline = scipy.interpolate.make_smoothing_spline(t, shifts[:, axis])
        out[:, axis] = spline(t)
    return out


def _iterate(
    spectra,
    group,
    filt,
    shifts,
    *,
    iterations,
    tolerance,
    max_shift,
    ky,
    kx,
    shape,
    progress,
    workers=None,
):
    """The iterative frame-against-the-others loop on (filtered) spectra."""
    n = len(spectra)
    averaging = window_matrix(n, group)
    converged = False
    it = 0
    for it in range(1, iterations + 1):  # noqa: B007 - `it` is reported
        aligned = np.empty_like(spectra)
        for i in range(n):
            np.multiply(
                spectra[i], phase_ramp(shape, shifts[i, 0], shifts[i, 1], ky, kx), out=aligned[i]
            )
        total = aligned.sum(axis=0)
        # a window of `group` aligned frames against the sum of all frames outside it: the
        # peak is the window's remaining error, given to the frame at its centre
        windows = group_spectra(aligned, group)
        residual = np.empty_like(shifts)
        for i in range(n):
            window = windows[i]
            cc = scipy.fft.irfft2(
                window * np.conj(total - window) * filt,
                s=shape,
                workers=thread_count() if workers is None else workers,
            )
            residual[i] = correlation_peak(cc, max_shift)[:2]
            # the peak is the window's offset from the others' mean: the window holds
            # size/n of the frames, so moving it the whole way overshoots by n/(n - size)
            size = float(np.sum(averaging[i] > 0))
            residual[i] *= (n - size) / n
        if group > 1:
            # each peak measures the mean shift of a window's frames: solve for the frames
            new = _unmix_windows(averaging @ shifts + residual, averaging)
        else:
            new = shifts + residual
        new -= new.mean(axis=0)
        # noise peaks must not walk a shift off beyond the search range, one step at a time
        np.clip(new, -max_shift, max_shift, out=new)
        change = float(np.max(np.abs(new - shifts)))
        shifts = new
        if progress is not None:
            progress(it, iterations)
        if change < tolerance:
            converged = True
            break
    return shifts, it, converged


def _pairs(spectra, group, filt, *, max_shift, shape):
    """All pairs of (grouped) frames, robust least-squares fit of the shifts."""
    n = len(spectra)
    gspectra = group_spectra(spectra, group)
    rows, dxy, weights = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            if group > 1 and abs(i - j) < group:
                continue  # overlapping windows share frames and noise
            cc = scipy.fft.irfft2(
                gspectra[j] * np.conj(gspectra[i]) * filt, s=shape, workers=thread_count()
            )
            dx, dy, _ = correlation_peak(cc, max_shift)
            rows.append((i, j))
            dxy.append((dx, dy))
            weights.append(1.0)
    if not rows:
        raise DedkitError(f"too few frames for pairwise alignment with group {group}")
    rows = np.array(rows)
    dxy = np.array(dxy)
    w = np.array(weights)
    a = np.zeros((len(rows) + 1, n))
    a[np.arange(len(rows)), rows[:, 1]] = 1.0
    a[np.arange(len(rows)), rows[:, 0]] = -1.0
    a[-1, :] = 1.0  # zero mean
    shifts = np.zeros((n, 2))
    for _ in range(5):  # iteratively reweighted: a pair far from the fit counts little
        sw = np.sqrt(np.r_[w, 1e3])
        for axis in range(2):
            b = np.r_[dxy[:, axis], 0.0]
            shifts[:, axis] = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)[0]
        resid = np.hypot(*(dxy - (shifts[rows[:, 1]] - shifts[rows[:, 0]])).T)
        scale = max(1.4826 * float(np.median(resid)), 0.05)
        w = 1.0 / (1.0 + (resid / (2.5 * scale)) ** 2)
    return shifts


def estimate_global_motion(
    frames,
    *,
    group: int = 1,
    bfactor: float = DEFAULT_BFACTOR,
    iterations: int = 20,
    tolerance: float = 0.01,
    method: str = "iterative",
    max_shift: float | None = None,
    smooth: bool = True,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> MotionEstimate:
    """Global shift of every frame of a movie (see the module for the method).

    Parameters
    ----------
    frames : array, shape (n, ny, nx)
        Gain-normalised frames, usually an antialiased reduced copy of the movie.
    group : int
        Frames summed in a running window before correlating (alignframes ``-group``).
    bfactor : float
        Low-pass of the correlations, exp(-B k^2/4), B in square pixels of ``frames``.
    iterations, tolerance : int, float
        Stop after ``iterations`` or when no shift changes by more than ``tolerance`` px.
    method : {'iterative', 'pairs'}
    max_shift : float, optional
        Largest shift searched, pixels (default: a quarter of the smaller dimension).
    smooth : bool
        Fit a smoothing spline through the trajectory (GCV-chosen stiffness).
    progress : callable(done, total), optional
    workers : int
        Threads of each FFT (scipy.fft ``workers``; None: :func:`dedkit.threads.thread_count`).

    Returns
    -------
    MotionEstimate

    Examples
    --------
    A 1/f random specimen moved by known shifts, with Poisson noise:

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> k = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128)))
    >>> spec = np.fft.fft2(rng.normal(size=(128, 128))) / np.maximum(k, 1 / 128)
    >>> truth = np.array([[-3.0, 2.0], [-1.0, 1.0], [1.0, -1.0], [3.0, -2.0]])
    >>> ky, kx = np.fft.fftfreq(128)[:, None], np.fft.fftfreq(128)[None, :]
    >>> frames = []
    >>> for dx, dy in truth:
    ...     img = np.fft.ifft2(spec * np.exp(-2j * np.pi * (kx * dx + ky * dy))).real
    ...     frames.append(rng.poisson(20 * (1 + 0.2 * img / img.std())))
    >>> m = estimate_global_motion(np.array(frames, np.float32), smooth=False)
    >>> np.round(m.shifts).astype(int).tolist()
    [[-3, 2], [-1, 1], [1, -1], [3, -2]]
    """
    frames = _check_frames(frames)
    n, ny, nx = frames.shape
    group = _check_group(group, n)
    if method not in ("iterative", "pairs"):
        raise DedkitError(f"unknown alignment method {method!r} (iterative or pairs)")
    if not (bfactor >= 0 and np.isfinite(bfactor)):
        raise DedkitError(f"the B-factor must be 0 or more, got {bfactor}")
    if iterations < 1:
        raise DedkitError(f"iterations must be at least 1, got {iterations}")
    if not tolerance > 0:
        raise DedkitError(f"the tolerance must be positive, got {tolerance}")
    if max_shift is None:
        max_shift = min(ny, nx) / 4
    spectra, _ = prepare_spectra(frames, workers=thread_count() if workers is None else workers)
    shape = fast_shape((ny, nx))
    filt = alignment_filter(shape, bfactor)
    ky, kx = frequency_grids(shape)
    if method == "pairs":
        shifts = _pairs(spectra, group, filt, max_shift=max_shift, shape=shape)
        it, converged = 1, True
    else:
        shifts, it, converged = _iterate(
            spectra,
            group,
            filt,
            np.zeros((n, 2)),
            iterations=iterations,
            tolerance=tolerance,
            max_shift=max_shift,
            ky=ky,
            kx=kx,
            shape=shape,
            progress=progress,
            workers=workers,
        )
    if smooth:
        shifts = smooth_trajectory(shifts)
    shifts = shifts - shifts.mean(axis=0)
    return MotionEstimate(shifts=shifts, local=None, iterations=it, converged=converged)
