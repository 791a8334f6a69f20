"""Study ``align-accuracy``: how well dedkit's aligner recovers known motion.

Issue 15's "How good": simulated counting movies (:func:`dedkit.sim.simulate_movie`: a
specimen whose standard deviation at the pixel is 5 % of its mean, a 1/f random field
plus particle-like discs; Poisson counts at 0.5, 1 and 2 e/pixel/frame; 30 frames; a
beam-induced track of 15 pixels, fast start then slow drift) are aligned by
:func:`dedkit.frames.align.estimate_motion`, globally, and with patches on movies that also
carry a smooth local deformation of at most 3 pixels (relative to the sum; its RMS over
frames and pixels, what a global alignment leaves wrong, is about 0.6 pixel: column
"global-only field"). Measured per movie:

- **global RMS**: RMS over the frames of the length of (estimated - true) global shift,
  after removing the constant offset (the mean difference: where the sum sits is free);
- **local RMS**: RMS of the error of the whole displacement (global shift plus local
  residual) on an 8 x 8 grid of points inside the frame, over all frames, after removing
  one constant offset: what the correction of every pixel depends on; without local
  motion in the movie or the estimate it is the global error spread over the grid;
- **FRC** of the aligned sum (:class:`dedkit.frames.align.AlignedSums`) with the true
  specimen, averaged over the rings within 0.05 of 0.25, 0.5 and 0.75 of Nyquist, inside
  a margin that the motion leaves empty; next to it the **ideal** FRC of the sum
  corrected with the true motion: what a perfect estimate would give.

Targets (the issue): global RMS <= 0.30 px at 1024 x 1024 x 30 and 1 e/px/frame, <= 0.10 px
at 4096 x 4096; local RMS <= 0.5 px.

The correction of the frames: with the true shifts of the global movies at each dose, the
sum is made by shifting each frame by its phase ramp in Fourier space (exact for a
band-limited image), by cubic B-spline interpolation (``scipy.ndimage.shift``, order 3) and
by bilinear interpolation, and by :class:`dedkit.frames.align.AlignedSums` with its
``interpolation='fourier'`` and ``'cubic'`` (Keys), and each sum's FRC with the specimen is
reported (``report["correction"]``): the evidence for the way
:func:`dedkit.frames.align.apply_motion` applies a shift.

The comparison with torch-motion-correction on the same movies is
``benchmarks/validate_align.py`` (dedkit does not import it); docs/validation.md has the
figures and the commands.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.fft

from dedkit.errors import DedkitError
from dedkit.metrics import frc
from dedkit.studies import LIMITS as _STUDY_LIMITS
from dedkit.studies import StudyResult

__all__ = [
    "DOSES",
    "LIMITS",
    "TARGETS",
    "FRC_AT",
    "MovieCase",
    "cases",
    "shift_rms",
    "field_rms",
    "frc_bands",
    "fourier_shift",
    "corrected_sum",
    "ideal_sum",
    "dedkit_true_sum",
    "measure_dedkit",
    "run",
    "FIGURE_DPI",
    "figure",
]

#: electrons per pixel per frame of the study's movies
DOSES = (0.5, 1.0, 2.0)
#: FRC reported at these fractions of Nyquist (mean over the rings within +-0.05)
FRC_AT = (0.25, 0.5, 0.75)
#: the issue's targets, pixels
TARGETS = {"global_1k": 0.30, "global_4k": 0.10, "local": 0.5}
#: bounds of the settings (memory and time of one run)
LIMITS = _STUDY_LIMITS["align-accuracy"]
#: points per side of the grid on which the local field is compared
GRID = 8


class MovieCase:
    """One study movie's settings (the arguments of :func:`dedkit.sim.simulate_movie`)
    and how it is aligned (``patches`` None: global only)."""

    def __init__(self, mode, size, n_frames, dose, drift, local_amplitude, patches, seed):
        self.mode = mode
        self.size = int(size)
        self.n_frames = int(n_frames)
        self.dose = float(dose)
        self.drift = float(drift)
        self.local_amplitude = float(local_amplitude)
        self.patches = patches
        self.seed = seed

    def simulate(self):
        """The movie (:class:`dedkit.sim.SimulatedMovie`)."""
        from dedkit.sim.movies import simulate_movie

        return simulate_movie(
            (self.size, self.size),
            self.n_frames,
            self.dose,
            drift=self.drift,
            local_amplitude=self.local_amplitude,
            seed=self.seed,
        )

    def label(self) -> str:
        return f"{self.mode} {self.size}x{self.size}x{self.n_frames} {self.dose:g} e/px"


def cases(
    *,
    size=1024,
    n_frames=30,
    doses=DOSES,
    drift=15.0,
    local_amplitude=3.0,
    patches=(5, 5),
    seed=1,
) -> list[MovieCase]:
    """The study's movies: per dose a global one and (``local_amplitude`` > 0) one with
    local deformation aligned with ``patches``; seeds differ per movie, reproducibly."""
    out = []
    for i, dose in enumerate(doses):
        out.append(MovieCase("global", size, n_frames, dose, drift, 0.0, None, [seed, i, 0]))
        if local_amplitude > 0:
            out.append(
                MovieCase(
                    "local", size, n_frames, dose, drift, local_amplitude, patches, [seed, i, 1]
                )
            )
    return out


# measures ------------------------------------------------------------------------------
def shift_rms(estimated, true) -> tuple[float, np.ndarray]:
    """RMS length of (estimated - true) per-frame shifts after removing their mean.

    Returns
    -------
    rms : float
    offset : (2,) array
        The constant (dx, dy) removed.

    Examples
    --------
    >>> true = np.array([[0.0, 0.0], [1.0, 2.0]])
    >>> rms, offset = shift_rms(true + [[5.0, 1.0], [5.0, 1.0]], true)
    >>> rms, offset.tolist()
    (0.0, [5.0, 1.0])
    """
    diff = np.asarray(estimated, np.float64) - np.asarray(true, np.float64)
    offset = diff.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum((diff - offset) ** 2, axis=1)))), offset


def grid_points(shape, n=GRID):
    """(x, y) of an n x n grid of cell centres covering the frame (pixels)."""
    ny, nx = shape
    x = (np.arange(n) + 0.5) * nx / n
    y = (np.arange(n) + 0.5) * ny / n
    xx, yy = np.meshgrid(x, y)
    return xx.ravel(), yy.ravel()


def field_rms(estimated, movie, n=GRID) -> float:
    """RMS error of the whole displacement (global + local) on an n x n grid over all
    frames, after removing one constant offset.

    Parameters
    ----------
    estimated : callable
        ``estimated(index, x, y) -> (dx, dy)``: the estimate's whole displacement of
        frame ``index`` at points (x, y) of the sum.
    movie : dedkit.sim.SimulatedMovie
    """
    x, y = grid_points(movie.specimen.shape, n)
    errors = []
    for i, (gx, gy) in enumerate(movie.shifts):
        tx, ty = gx + np.zeros_like(x), gy + np.zeros_like(y)
        if movie.local is not None:
            lx, ly = movie.local(i, x, y)
            tx, ty = tx + lx, ty + ly
        ex, ey = estimated(i, x, y)
        errors.append(np.stack([np.asarray(ex) - tx, np.asarray(ey) - ty], axis=-1))
    errors = np.asarray(errors).reshape(-1, 2)
    errors -= errors.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(errors**2, axis=1))))


def fourier_shift(image, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (+dx, +dy) by its Fourier phase ramp (periodic), float64."""
    image = np.asarray(image, np.float64)
    ky = scipy.fft.fftfreq(image.shape[0])[:, None]
    kx = scipy.fft.rfftfreq(image.shape[1])[None, :]
    ramp = np.exp(-2j * np.pi * ky * dy) * np.exp(-2j * np.pi * kx * dx)
    return scipy.fft.irfft2(scipy.fft.rfft2(image) * ramp, image.shape)


def frc_bands(image, specimen, margin: int, offset=(0.0, 0.0)) -> tuple[dict, object]:
    """FRC of ``image`` with ``specimen`` inside ``margin``.

    ``offset`` is the constant (dx, dy) error of the shifts the image was corrected with
    (estimated - true, :func:`shift_rms`): it leaves the sum moved by ``-offset``, and the
    specimen is moved alike so that a constant offset, which is free, costs no FRC.

    Returns
    -------
    bands : dict
        ``{"frc_25": ..., "frc_50": ..., "frc_75": ...}``: mean FRC within 0.05 of 0.25,
        0.5, 0.75 of Nyquist.
    curve : dedkit.metrics.FRCResult
    """
    reference = specimen
    if np.any(np.abs(offset) > 0):
        reference = fourier_shift(specimen, -offset[0], -offset[1])
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    curve = frc(np.asarray(image, np.float64)[inner], reference[inner])
    bands = {}
    for f in FRC_AT:
        ring = np.abs(curve.frequency - f) <= 0.05 + 1e-12
        bands[f"frc_{round(100 * f)}"] = float(np.nanmean(curve.frc[ring]))
    return bands, curve


def corrected_sum(frames, shifts, method: str = "fourier") -> np.ndarray:
    """Sum of ``frames`` each moved back by its (dx, dy): ``fourier`` (phase ramp),
    ``spline`` (cubic B-spline, scipy.ndimage.shift order 3) or ``linear`` (order 1)."""
    from scipy import ndimage

    total = np.zeros(frames.shape[1:], np.float64)
    for frame, (dx, dy) in zip(frames, shifts, strict=True):
        if method == "fourier":
            total += fourier_shift(frame, -dx, -dy)
        elif method in ("spline", "linear"):
            order = 3 if method == "spline" else 1
            total += ndimage.shift(
                frame.astype(np.float64), (-dy, -dx), order=order, mode="nearest"
            )
        else:
            raise DedkitError(f"unknown correction method {method!r}")
    return total


def ideal_sum(movie) -> np.ndarray:
    """The sum corrected with the true motion: a Fourier shift without local motion, a
    cubic B-spline resampling at the true displacement with it."""
    if movie.local is None:
        return corrected_sum(movie.frames, movie.shifts, "fourier")
    from scipy import ndimage

    ny, nx = movie.specimen.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    total = np.zeros((ny, nx))
    for i, frame in enumerate(movie.frames):
        lx, ly = movie.local(i, xx, yy)
        dx, dy = movie.shifts[i]
        total += ndimage.map_coordinates(
            frame.astype(np.float64), [yy + dy + ly, xx + dx + lx], order=3, mode="nearest"
        )
    return total


def dedkit_true_sum(movie, interpolation: str = "fourier") -> np.ndarray:
    """The sum by :class:`dedkit.frames.align.AlignedSums` with the true global shifts,
    applied by ``interpolation`` (its ``'fourier'`` phase ramp or ``'cubic'`` Keys
    interpolation)."""
    from dedkit.frames.align import AlignedSums, MotionEstimate

    sums = AlignedSums(
        movie.specimen.shape,
        MotionEstimate(shifts=np.asarray(movie.shifts)),
        interpolation=interpolation,
    )
    for i, frame in enumerate(movie.frames):
        sums.add(i, frame.astype(np.float32))
    return sums.result()["sum"]


def _true_global(movie):
    """``whole(index, x, y)`` of the true global shifts alone (local motion ignored)."""

    def whole(i, x, y):
        return movie.shifts[i][0] + np.zeros_like(x), movie.shifts[i][1] + np.zeros_like(y)

    return whole


def _margin(movie) -> int:
    reach = np.abs(movie.shifts).max()
    if movie.local is not None:
        x, y = grid_points(movie.specimen.shape, 4)
        reach += max(np.hypot(*movie.local(i, x, y)).max() for i in range(len(movie.shifts)))
    return int(np.ceil(reach)) + 8


def measure_dedkit(movie, *, patches=None, group=1, align_binning=1) -> dict:
    """Align ``movie`` with dedkit and measure: the row of one movie.

    The estimate is made on the frames as float32 (reduced by ``align_binning`` with the
    antialiased filter first, the estimate then scaled back), the sum with
    :class:`dedkit.frames.align.AlignedSums`.
    """
    from dedkit.frames.align import AlignedSums, estimate_motion

    frames = movie.frames
    start = time.perf_counter()
    if align_binning > 1:
        from dedkit.frames.reduce import reduce_image

        small = np.stack([reduce_image(f, align_binning, values="mean") for f in frames])
        estimate = estimate_motion(small, group=group, patches=patches).scaled(align_binning)
    else:
        estimate = estimate_motion(frames.astype(np.float32), group=group, patches=patches)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    sums = AlignedSums(movie.specimen.shape, estimate)
    for i, frame in enumerate(frames):
        sums.add(i, frame.astype(np.float32))
    aligned = sums.result()["sum"]
    sum_seconds = time.perf_counter() - start

    def whole(i, x, y):
        dx, dy = estimate.shifts[i]
        if estimate.local is None:
            return dx + np.zeros_like(x), dy + np.zeros_like(y)
        lx, ly = estimate.local.displacement(i, x, y)
        return dx + np.asarray(lx), dy + np.asarray(ly)

    rms_global, offset = shift_rms(estimate.shifts, movie.shifts)
    bands, curve = frc_bands(aligned, movie.specimen, _margin(movie), offset)
    return {
        "rms_global": rms_global,
        "rms_local": field_rms(whole, movie),
        **bands,
        "seconds": seconds,
        "sum_seconds": sum_seconds,
        "iterations": int(estimate.iterations),
        "converged": bool(estimate.converged),
        "shifts": np.asarray(estimate.shifts),
        "frc_curve": curve,
    }


def _check(size, n_frames, doses, drift, local_amplitude):
    def bounded(name, value):
        low, high = LIMITS[name]
        if not low <= value <= high:
            raise DedkitError(f"{name.replace('_', ' ')} must be {low:g} to {high:g}, got {value}")

    bounded("size", size)
    bounded("n_frames", n_frames)
    bounded("drift", drift)
    bounded("local_amplitude", local_amplitude)
    if not doses or len(doses) > LIMITS["n_doses"]:
        raise DedkitError(f"give 1 to {LIMITS['n_doses']} doses, got {len(doses)}")
    for d in doses:
        bounded("doses", d)


COLUMNS = [
    ("mode", "movie", ""),
    ("dose", "e/px/frame", "g"),
    ("rms_global", "global RMS px", ".3f"),
    ("rms_local", "field RMS px", ".3f"),
    ("frc_25", "FRC .25", ".3f"),
    ("frc_50", "FRC .50", ".3f"),
    ("frc_75", "FRC .75", ".3f"),
    ("rms_ignoring_local", "global-only field", ".3f"),
    ("ideal_50", "ideal .50", ".3f"),
    ("ideal_75", "ideal .75", ".3f"),
    ("seconds", "estimate s", ".1f"),
]


def run(
    seed: int = 1,
    *,
    size: int = 1024,
    n_frames: int = 30,
    doses=DOSES,
    drift: float = 15.0,
    local_amplitude: float = 3.0,
    patches=(5, 5),
    group: int = 1,
    corrections: bool = True,
    progress=None,
) -> StudyResult:
    """Run the study.

    Parameters
    ----------
    seed : int
        Seeds the movies (each movie its own stream).
    size : int
        Frames are size x size pixels (1024: the issue's movie).
    n_frames : int
        Frames per movie (30).
    doses : sequence of float
        e/pixel/frame (0.5, 1, 2).
    drift : float
        Path length of the global track, pixels (15).
    local_amplitude : float
        Largest local deformation of the patch-mode movies, pixels (3; 0: no patch mode).
    patches : (n_x, n_y)
        Patches of the patch mode.
    group : int
        Frames grouped for the estimate (``estimate_motion(group=...)``).
    corrections : bool
        Also compare Fourier shift and interpolation for applying the true shifts.
    progress : callable (done, total), optional
        Called after each movie.

    Returns
    -------
    StudyResult
        Rows per movie; ``report["correction"]`` the correction comparison;
        ``curves`` what :func:`figure` draws.
    """
    doses = [float(d) for d in doses]
    _check(size, n_frames, doses, drift, local_amplitude)
    movies = cases(
        size=size,
        n_frames=n_frames,
        doses=doses,
        drift=drift,
        local_amplitude=local_amplitude,
        patches=tuple(patches) if patches else None,
        seed=seed,
    )
    rows, curves, correction = [], {"frc": {}, "tracks": {}}, []
    for done, case in enumerate(movies):
        movie = case.simulate()
        found = measure_dedkit(movie, patches=case.patches, group=group)
        ideal, ideal_curve = frc_bands(ideal_sum(movie), movie.specimen, _margin(movie))
        key = f"{case.mode} {case.dose:g}"
        curves["frc"][key] = (found["frc_curve"].frequency, found["frc_curve"].frc, ideal_curve.frc)
        curves["tracks"][key] = (movie.shifts, found["shifts"])
        rows.append(
            {
                "mode": case.mode,
                "dose": case.dose,
                **{k: v for k, v in found.items() if k not in ("shifts", "frc_curve")},
                "rms_ignoring_local": (
                    field_rms(_true_global(movie), movie) if movie.local is not None else None
                ),
                "ideal_25": ideal["frc_25"],
                "ideal_50": ideal["frc_50"],
                "ideal_75": ideal["frc_75"],
            }
        )
        if corrections and case.mode == "global":
            entry = {"dose": case.dose}
            for method in ("fourier", "spline", "linear"):
                total = corrected_sum(movie.frames, movie.shifts, method)
                entry[method] = frc_bands(total, movie.specimen, _margin(movie))[0]
            for method in ("fourier", "cubic"):
                total = dedkit_true_sum(movie, method)
                entry[f"dedkit_{method}"] = frc_bands(total, movie.specimen, _margin(movie))[0]
            correction.append(entry)
        if progress is not None:
            progress(done + 1, len(movies))
    notes = [
        f"{size} x {size} x {n_frames} simulated counting movies (specimen std 5 % of its "
        f"mean), a {drift:g}-pixel track; 'local' adds a {local_amplitude:g}-pixel smooth "
        f"deformation, aligned with {patches} patches.",
        "global RMS: per-frame shift error; field RMS: error of the whole displacement on "
        f"a {GRID}x{GRID} grid; both after removing a constant offset. FRC with the true "
        "specimen at 0.25/0.5/0.75 Nyquist; 'ideal': corrected with the true motion.",
        f"Targets: global <= {TARGETS['global_1k']} px (1024^2, 1 e/px), <= "
        f"{TARGETS['global_4k']} px (4096^2); field <= {TARGETS['local']} px.",
    ]
    for entry in correction:
        notes.append(
            f"true shifts at {entry['dose']:g} e/px, FRC .50/.75 by Fourier shift "
            f"{entry['fourier']['frc_50']:.4f}/{entry['fourier']['frc_75']:.4f}, cubic spline "
            f"{entry['spline']['frc_50']:.4f}/{entry['spline']['frc_75']:.4f}, bilinear "
            f"{entry['linear']['frc_50']:.4f}/{entry['linear']['frc_75']:.4f}; AlignedSums "
            f"fourier {entry['dedkit_fourier']['frc_50']:.4f}/"
            f"{entry['dedkit_fourier']['frc_75']:.4f}, cubic "
            f"{entry['dedkit_cubic']['frc_50']:.4f}/{entry['dedkit_cubic']['frc_75']:.4f}"
        )
    report = {
        "rows": rows,
        "correction": correction,
        "settings": {
            "size": size,
            "n_frames": n_frames,
            "doses": doses,
            "drift": drift,
            "local_amplitude": local_amplitude,
            "patches": list(patches) if patches else None,
            "group": group,
            "seed": seed,
        },
        "targets": TARGETS,
    }
    return StudyResult(
        name="align-accuracy",
        columns=COLUMNS,
        rows=rows,
        report=report,
        notes=notes,
        curves=curves,
    )


#: Resolution of the saved figure (dots per inch)
FIGURE_DPI = 120


def figure(result: StudyResult):
    """The study's figure: RMS errors against dose with the targets, the FRC of the
    aligned sums against the ideal ones, and the true and estimated tracks. Needs
    matplotlib (else DedkitError); nothing is written.

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas (no pyplot state).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DedkitError("matplotlib is not installed: no figure written") from None

    fig = Figure(figsize=(13, 4.2))
    FigureCanvasAgg(fig)
    ax_rms, ax_frc, ax_track = fig.subplots(1, 3)
    for mode, marker in (("global", "o"), ("local", "s")):
        rows = [r for r in result.rows if r["mode"] == mode]
        if not rows:
            continue
        doses = [r["dose"] for r in rows]
        ax_rms.plot(doses, [r["rms_global"] for r in rows], marker, ls="-", label=f"{mode}: shifts")
        ax_rms.plot(
            doses,
            [r["rms_local"] for r in rows],
            marker,
            ls="--",
            mfc="none",
            label=f"{mode}: field",
        )
    ax_rms.axhline(TARGETS["global_1k"], color="gray", lw=0.8, ls=":", label="targets")
    ax_rms.axhline(TARGETS["local"], color="gray", lw=0.8, ls=":")
    ax_rms.set_xscale("log")
    ax_rms.set_xlabel("e/pixel/frame")
    ax_rms.set_ylabel("RMS error (pixels)")
    ax_rms.set_ylim(0, None)
    ax_rms.legend(fontsize=7)
    ax_rms.set_title("Motion error")
    for key, (freq, aligned, ideal) in result.curves["frc"].items():
        (line,) = ax_frc.plot(freq, aligned, lw=1, label=key)
        ax_frc.plot(freq, ideal, lw=0.8, ls=":", color=line.get_color())
    ax_frc.set_xlabel("fraction of Nyquist")
    ax_frc.set_ylabel("FRC with the true specimen")
    ax_frc.set_title("Aligned sum (dotted: true motion)")
    ax_frc.legend(fontsize=7)
    for key, (true, estimated) in result.curves["tracks"].items():
        if not key.startswith("global"):
            continue
        (line,) = ax_track.plot(true[:, 0], true[:, 1], "-", lw=1, label=f"{key} true")
        ax_track.plot(estimated[:, 0], estimated[:, 1], ".", ms=4, color=line.get_color())
    ax_track.set_aspect("equal", adjustable="datalim")
    ax_track.set_xlabel("dx (pixels)")
    ax_track.set_ylabel("dy (pixels)")
    ax_track.set_title("Tracks (dots: estimated)")
    ax_track.legend(fontsize=7)
    fig.tight_layout()
    return fig
