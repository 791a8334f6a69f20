"""Simulated dose-fractionated counting movies with known motion, for testing aligners.

The model (issue 15, "How good"):

- **specimen**: a band-limited random image, mean 1, whose standard deviation at the
  pixel is ``contrast`` (5 %): a Gaussian random field with a 1/f amplitude spectrum
  plus particle-like discs (darker, radii 4, 8 and 14 pixels, a fifth of the area), the
  two in equal variance. It is built in Fourier space on a periodic canvas larger than
  the frame by a margin that the motion never crosses, with the Nyquist row and column
  zeroed: the specimen is then the trigonometric polynomial through its samples, a
  continuous image that can be sampled anywhere, and the frame window never sees the
  canvas wrap around (new specimen enters at the edges as on a detector).
- **global motion**: a beam-induced trajectory, a fast start (60 % of the path with a
  time constant of 2 frames) then a slow steady drift, along a heading that turns by
  30-90 degrees (a curved track) in a random direction; its path length over the movie
  (the sum of the frame-to-frame steps) is ``drift`` pixels.
- **local motion**: optionally, a smooth deformation on top of the global shift: two
  vector fields of the lowest spatial frequencies (one cycle across the frame), one
  following the fast start and one growing steadily, each zero on average over the frame
  (so it is separable from the global shift) and over the frames (so the sum stays the
  reference); ``local_amplitude`` is its largest displacement (over the frames and the
  frame's area, relative to the sum: in the first frame). The RMS of the field, what an
  alignment without local motion leaves wrong, is about a quarter of that
  (``local.rms``).
- **counts**: Poisson with mean ``dose_per_pixel x specimen`` at each pixel of each frame,
  as ``uint16``.

Shift convention (dedkit's, :mod:`dedkit.frames.align`): a shift (dx, dy) of frame i is the
specimen's displacement in frame i relative to the sum, x along columns, y along rows: a
feature at (x, y) in the sum (in :attr:`SimulatedMovie.specimen`) is at
``(x + dx + lx, y + dy + ly)`` in frame i, where ``(lx, ly) = local(i, x, y)``. The
shifts have zero mean over the frames, so the specimen is the sum's reference.

How frames are made: without local motion, frame i is the specimen's spectrum times the
phase ramp of its shift, transformed back and cropped: exact for any sub-pixel shift.
With local motion the displacement varies across the frame, which a phase ramp cannot do:
the canvas is oversampled by 2 in Fourier space (exact) and sampled at the displaced
positions by a periodic cubic B-spline, whose error at the specimen's highest frequency
(a quarter of the oversampled grid's sampling rate) is a fraction of a percent of the
specimen's contrast. The inverse of the forward map (where a frame pixel comes from in
the sum) is solved by fixed-point iteration on a coarse grid and interpolated, the field
being smooth.

Examples
--------
>>> movie = simulate_movie((64, 64), n_frames=4, dose_per_pixel=2.0, drift=5.0, seed=1)
>>> movie.frames.shape, movie.frames.dtype.name
((4, 64, 64), 'uint16')
>>> round(float(movie.specimen.mean()), 6), round(float(movie.specimen.std()), 6)
(1.0, 0.05)
>>> bool(abs(movie.shifts.mean(axis=0)).max() < 1e-12)
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import scipy.fft

from dedkit.errors import DedkitError

__all__ = ["MovieModel", "SimulatedMovie", "movie_model", "simulate_movie"]

#: disc radii (pixels) of the particle-like discs, one class each
DISC_RADII = (4.0, 8.0, 14.0)
#: fraction of the area the discs cover (before overlaps), split over the radii
DISC_COVER = 0.2
#: fraction of the path travelled in the fast start, and its time constant (frames)
FAST_FRACTION = 0.6
FAST_FRAMES = 2.0
#: oversampling of the canvas for sampling at deformed positions
OVERSAMPLE = 2
#: step (pixels) of the coarse grid on which the inverse local map is solved
_LOCAL_STEP = 16


@dataclass(frozen=True)
class SimulatedMovie:
    """A simulated movie and its truth.

    Attributes
    ----------
    frames : (n, ny, nx) uint16
        Poisson counts.
    specimen : (ny, nx) float64
        The true specimen in the sum's frame of reference, mean 1 (expected counts per
        frame divided by ``dose_per_pixel``).
    shifts : (n, 2) float64
        True global (dx, dy) of each frame, zero mean over the frames.
    local : callable or None
        ``local(index, x, y) -> (dx, dy)``: the true residual displacement beyond the
        global shift of frame ``index`` of the features at (x, y) in the sum; None
        without local motion.
    dose_per_pixel : float
        Mean electrons per pixel per frame.
    """

    frames: np.ndarray
    specimen: np.ndarray
    shifts: np.ndarray
    local: Callable | None
    dose_per_pixel: float


def _trajectory(n_frames: int, drift: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) positions of a beam-induced track of path length ``drift``, zero mean."""
    if n_frames < 2 or drift == 0:
        return np.zeros((n_frames, 2))
    t = np.arange(n_frames, dtype=np.float64)
    s = FAST_FRACTION * (1 - np.exp(-t / FAST_FRAMES)) + (1 - FAST_FRACTION) * t / t[-1]
    heading = (
        rng.uniform(0, 2 * np.pi)
        + rng.choice((-1, 1)) * np.deg2rad(rng.uniform(30, 90)) * s / s[-1]
    )
    # each step along the heading at its middle: a smoothly curving track
    mid = 0.5 * (heading[1:] + heading[:-1])
    steps = np.diff(s)[:, None] * np.stack([np.cos(mid), np.sin(mid)], axis=1)
    steps *= drift / np.hypot(steps[:, 0], steps[:, 1]).sum()
    positions = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    return positions - positions.mean(axis=0)


class _LocalField:
    """The smooth local displacement: ``sum_j a_j(t) F_j(x, y)`` for two temporal profiles
    (fast start, steady growth), each zero mean over frames; the F_j are sums of the
    modes of one cycle across the frame, with zero mean over the frame's pixels."""

    _MODES = ((1, 0), (0, 1), (1, 1), (1, -1))

    def __init__(self, shape, n_frames, amplitude, rng):
        ny, nx = shape
        self.shape = (ny, nx)
        t = np.arange(n_frames, dtype=np.float64)
        # the global track's profile (fast start, then slow) and a steady one
        steady = t / max(t[-1], 1.0)
        fast = FAST_FRACTION * (1 - np.exp(-t / FAST_FRAMES)) + (1 - FAST_FRACTION) * steady
        self.profiles = np.stack([fast - fast.mean(), steady - steady.mean()])  # (2, n)
        # coefficients: (profile, component, mode) amplitudes and phases
        self.amp = rng.normal(size=(2, 2, len(self._MODES)))
        self.phase = rng.uniform(0, 2 * np.pi, size=(2, 2, len(self._MODES)))
        self.scale = 1.0
        self.peak = 0.0
        self.rms = 0.0
        if n_frames > 1 and amplitude > 0:
            # largest length of the displacement over the frames and an 8-pixel grid
            yy, xx = np.mgrid[0 : ny : _LOCAL_STEP // 2, 0 : nx : _LOCAL_STEP // 2]
            lengths = np.array(
                [np.hypot(*self(i, xx.astype(float), yy.astype(float))) for i in range(n_frames)]
            )
            self.scale = amplitude / lengths.max()
            self.peak = float(amplitude)
            # what an alignment without local motion leaves wrong
            self.rms = float(np.sqrt(np.mean(lengths**2)) * self.scale)
        else:
            self.scale = 0.0

    def __call__(self, index, x, y):
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        ny, nx = self.shape
        out = [np.zeros(np.broadcast(x, y).shape), np.zeros(np.broadcast(x, y).shape)]
        for m, (kx, ky) in enumerate(self._MODES):
            arg = 2 * np.pi * (kx * x / nx + ky * y / ny)
            for c in range(2):
                w = self.profiles[:, index] * self.amp[:, c, m] * self.scale
                out[c] = out[c] + w[0] * np.cos(arg + self.phase[0, c, m])
                out[c] = out[c] + w[1] * np.cos(arg + self.phase[1, c, m])
        return out[0], out[1]


def _frequencies(shape):
    """Frequencies (cycles/pixel) of an rfft2 layout, ky column, kx row."""
    ky = scipy.fft.fftfreq(shape[0])[:, None]
    kx = scipy.fft.rfftfreq(shape[1])[None, :]
    return ky, kx


def _zero_nyquist(spectrum, shape):
    # an even size's Nyquist term is its own conjugate: zeroed, the real trigonometric
    # polynomial through the samples is unique and a sub-pixel shift of it is exact
    if shape[0] % 2 == 0:
        spectrum[shape[0] // 2, :] = 0
    if shape[1] % 2 == 0:
        spectrum[:, -1] = 0
    return spectrum


def _specimen_spectrum(canvas, window, margin, contrast, rng):
    """rfft2 of the canvas specimen, normalised to mean 1 and std ``contrast`` over the
    window (rows/columns ``margin`` .. ``margin + window``)."""
    ky, kx = _frequencies(canvas)
    k = np.sqrt(ky**2 + kx**2)
    with np.errstate(divide="ignore"):
        pink = np.where(k > 0, 1 / k, 0.0)
    noise = scipy.fft.rfft2(rng.standard_normal(canvas))
    field = noise * pink
    # discs: impulses at random pixels convolved with a disc's transform (per radius),
    # softened by a Gaussian of 0.7 pixel so that the edge rings little
    discs = np.zeros_like(field)
    area = canvas[0] * canvas[1]
    for r in DISC_RADII:
        count = rng.poisson(DISC_COVER * area / (len(DISC_RADII) * np.pi * r * r))
        impulses = np.zeros(canvas)
        np.add.at(
            impulses,
            (rng.integers(0, canvas[0], count), rng.integers(0, canvas[1], count)),
            1.0,
        )
        arg = 2 * np.pi * k * r
        with np.errstate(divide="ignore", invalid="ignore"):
            from scipy.special import j1

            disc = np.where(k > 0, r * j1(arg) / np.where(k > 0, k, 1), np.pi * r * r)
        discs += scipy.fft.rfft2(impulses) * disc
    discs *= np.exp(-2 * (np.pi * 0.7 * k) ** 2)
    parts = []
    for spec in (field, -discs):
        spec = _zero_nyquist(spec, canvas)
        img = scipy.fft.irfft2(spec, canvas)
        w = img[margin[0] : margin[0] + window[0], margin[1] : margin[1] + window[1]]
        parts.append(img / max(w.std(), 1e-300))
    z = parts[0] + parts[1]
    w = z[margin[0] : margin[0] + window[0], margin[1] : margin[1] + window[1]]
    specimen = 1.0 + contrast * (z - w.mean()) / max(w.std(), 1e-300)
    return specimen, _zero_nyquist(scipy.fft.rfft2(specimen), canvas)


class MovieModel:
    """A simulated movie before its counts: specimen, motion, and frames on demand.

    Built by :func:`movie_model`; :meth:`frame` draws one frame's counts (the same for
    the same index, in any order), :meth:`iter_frames` streams them, so that a large
    movie need not be held at once.

    Attributes
    ----------
    shape : (ny, nx)
    n_frames : int
    dose_per_pixel : float
    specimen : (ny, nx) float64
        Mean 1, the sum's reference.
    shifts : (n, 2) float64
        True global (dx, dy), zero mean.
    local : callable or None
        ``local(index, x, y) -> (dx, dy)``, the residual beyond the global shift.
    """

    def __init__(self, shape, n_frames, dose_per_pixel, drift, local_amplitude, contrast, seed):
        ny, nx = (int(v) for v in shape)
        if ny < 8 or nx < 8:
            raise DedkitError(f"a simulated movie needs at least 8 x 8 pixels, got {ny} x {nx}")
        if n_frames < 1:
            raise DedkitError(f"a simulated movie needs at least one frame, got {n_frames}")
        if not dose_per_pixel > 0:
            raise DedkitError(f"dose per pixel must be > 0, got {dose_per_pixel}")
        if drift < 0 or local_amplitude < 0 or contrast < 0:
            raise DedkitError("drift, local amplitude and contrast must be >= 0")
        if contrast > 0.3:
            raise DedkitError(f"contrast must be <= 0.3 (counts stay positive), got {contrast}")
        self.shape = (ny, nx)
        self.n_frames = int(n_frames)
        self.dose_per_pixel = float(dose_per_pixel)
        seeds = np.random.SeedSequence(seed).spawn(self.n_frames + 1)
        self._frame_seeds = seeds[1:]
        rng = np.random.default_rng(seeds[0])
        self.shifts = _trajectory(self.n_frames, float(drift), rng)
        self.local = (
            _LocalField(self.shape, self.n_frames, float(local_amplitude), rng)
            if local_amplitude > 0 and self.n_frames > 1
            else None
        )
        # the motion never reaches the canvas's wrap-around
        peak = self.local.peak if self.local is not None else 0.0
        reach = float(np.abs(self.shifts).max()) + peak + 8
        m = int(math.ceil(reach))
        self._margin = (m, m)
        self._canvas = (scipy.fft.next_fast_len(ny + 2 * m), scipy.fft.next_fast_len(nx + 2 * m))
        canvas_image, spectrum = _specimen_spectrum(
            self._canvas, self.shape, self._margin, float(contrast), rng
        )
        self.specimen = canvas_image[m : m + ny, m : m + nx].copy()
        # frames are rendered in single precision: its error (1e-6) is far below the noise
        self._spectrum = spectrum.astype(np.complex64)
        self._ky, self._kx = _frequencies(self._canvas)
        self._fine = None

    # noise-free frames ----------------------------------------------------------------
    def expected_frame(self, index: int) -> np.ndarray:
        """Frame ``index`` without noise, in units of the specimen (mean 1), float32."""
        if self.local is None:
            return self._shifted(index)
        return self._deformed(index)

    def _shifted(self, index):
        dx, dy = self.shifts[index]
        ramp_y = np.exp(-2j * np.pi * self._ky * dy).astype(np.complex64)
        ramp_x = np.exp(-2j * np.pi * self._kx * dx).astype(np.complex64)
        image = scipy.fft.irfft2(self._spectrum * ramp_y * ramp_x, self._canvas, workers=-1)
        (my, mx), (ny, nx) = self._margin, self.shape
        return image[my : my + ny, mx : mx + nx]

    def _prefiltered(self):
        """The canvas oversampled by OVERSAMPLE (Fourier zero-padding, exact), spline
        prefiltered for periodic cubic interpolation; built once."""
        if self._fine is None:
            from scipy.ndimage import spline_filter

            cy, cx = self._canvas
            fy, fx = OVERSAMPLE * cy, OVERSAMPLE * cx
            big = np.zeros((fy, fx // 2 + 1), np.complex128)
            half = (cy + 1) // 2
            big[:half, : cx // 2 + 1] = self._spectrum[:half]
            big[fy - (cy - half) :, : cx // 2 + 1] = self._spectrum[half:]
            fine = scipy.fft.irfft2(big, (fy, fx), workers=-1) * (OVERSAMPLE * OVERSAMPLE)
            self._fine = spline_filter(fine, order=3, mode="grid-wrap", output=np.float32)
        return self._fine

    def _deformed(self, index):
        from scipy.interpolate import RectBivariateSpline
        from scipy.ndimage import map_coordinates

        ny, nx = self.shape
        dx, dy = self.shifts[index]
        # where each frame pixel q comes from in the sum: p + g + l(p) = q, solved on a
        # coarse grid (the field is smooth) and interpolated to every pixel
        step = _LOCAL_STEP
        yc = np.arange(-step, ny + 2 * step, step, dtype=np.float64)
        xc = np.arange(-step, nx + 2 * step, step, dtype=np.float64)
        qy, qx = np.meshgrid(yc, xc, indexing="ij")
        px, py = qx - dx, qy - dy
        for _ in range(6):
            lx, ly = self.local(index, px, py)
            px, py = qx - dx - lx, qy - dy - ly
        ux = RectBivariateSpline(yc, xc, qx - dx - px)(np.arange(ny), np.arange(nx))
        uy = RectBivariateSpline(yc, xc, qy - dy - py)(np.arange(ny), np.arange(nx))
        my, mx = self._margin
        sy = (np.arange(ny)[:, None] - dy - uy + my) * OVERSAMPLE
        sx = (np.arange(nx)[None, :] - dx - ux + mx) * OVERSAMPLE
        return map_coordinates(
            self._prefiltered(),
            [sy, sx],
            order=3,
            mode="grid-wrap",
            prefilter=False,
            output=np.float32,
        )

    # counts ---------------------------------------------------------------------------
    def frame(self, index: int) -> np.ndarray:
        """Poisson counts of frame ``index`` (uint16), reproducible per index."""
        if not 0 <= index < self.n_frames:
            raise DedkitError(f"frame {index} is outside the movie's {self.n_frames} frames")
        lam = np.maximum(self.expected_frame(index), 0) * self.dose_per_pixel
        rng = np.random.default_rng(self._frame_seeds[index])
        return rng.poisson(lam).astype(np.uint16)

    def iter_frames(self) -> Iterator[np.ndarray]:
        """The frames' counts in order, one at a time."""
        for i in range(self.n_frames):
            yield self.frame(i)


def movie_model(
    shape=(1024, 1024),
    n_frames: int = 30,
    dose_per_pixel: float = 1.0,
    *,
    drift: float = 15.0,
    local_amplitude: float = 0.0,
    contrast: float = 0.05,
    seed=0,
) -> MovieModel:
    """The model of :func:`simulate_movie` (same arguments) without drawing the frames:
    stream them with :meth:`MovieModel.iter_frames` (a 4096 x 4096 x 30 movie is 1 GB).

    Examples
    --------
    >>> model = movie_model((32, 32), n_frames=3, seed=2)
    >>> [f.shape for f in model.iter_frames()]
    [(32, 32), (32, 32), (32, 32)]
    >>> bool((model.frame(1) == simulate_movie((32, 32), 3, seed=2).frames[1]).all())
    True
    """
    return MovieModel(shape, n_frames, dose_per_pixel, drift, local_amplitude, contrast, seed)


def simulate_movie(
    shape=(1024, 1024),
    n_frames: int = 30,
    dose_per_pixel: float = 1.0,
    *,
    drift: float = 15.0,
    local_amplitude: float = 0.0,
    contrast: float = 0.05,
    seed=0,
) -> SimulatedMovie:
    """A counting movie of a known specimen moving by known global and local motion.

    Parameters
    ----------
    shape : (ny, nx)
        Frame size in pixels.
    n_frames : int
        Frames.
    dose_per_pixel : float
        Mean electrons per pixel per frame.
    drift : float
        Path length of the global trajectory over the movie, pixels (10-20 typical).
    local_amplitude : float
        Largest local displacement beyond the global shift, pixels (0: none; 2-3 for a
        patch test).
    contrast : float
        Standard deviation of the specimen at the pixel over its mean (0.05).
    seed : int or SeedSequence
        The same seed gives the same movie.

    Returns
    -------
    SimulatedMovie

    Raises
    ------
    DedkitError
        A size under 8 pixels, no frames, a dose <= 0, a negative drift or amplitude, or a
        contrast above 0.3.

    Examples
    --------
    >>> movie = simulate_movie((64, 48), n_frames=5, dose_per_pixel=1.0, seed=3,
    ...                        local_amplitude=2.0)
    >>> movie.frames.shape, round(float(movie.frames.mean()), 1)
    ((5, 64, 48), 1.0)
    >>> dx, dy = movie.local(0, 10.0, 20.0)
    >>> float(dx) != 0.0
    True
    """
    model = movie_model(
        shape,
        n_frames,
        dose_per_pixel,
        drift=drift,
        local_amplitude=local_amplitude,
        contrast=contrast,
        seed=seed,
    )
    frames = np.empty((model.n_frames, *model.shape), np.uint16)
    for i, frame in enumerate(model.iter_frames()):
        frames[i] = frame
    return SimulatedMovie(
        frames=frames,
        specimen=model.specimen,
        shifts=model.shifts,
        local=model.local,
        dose_per_pixel=model.dose_per_pixel,
    )
