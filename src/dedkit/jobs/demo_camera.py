"""The counting-camera part of ``dedkit demo``: a simulated K3 movie, aligned, checked.

What is made (the truth is kept):

- **specimen**: :mod:`dedkit.sim.movies`'s model (a 1/f random field plus particle-like
  discs, mean 1), contrast :data:`CONTRAST`, on the super-resolution grid of a K3
  (physical pixel :data:`PHYSICAL_PIXEL_A` at the specimen, super-resolution half that);
- **motion**: a beam-induced track (fast at first, then slow, curving; path length
  ``drift_A``) and a smooth local deformation (largest ``local_A``), as the model makes;
- **radiation damage**: frame i shows the specimen faded by Grant & Grigorieff's
  exposure filter at the exposure of its middle, so that dose weighting has something
  to recover (the undamaged specimen is the truth);
- **camera**: Poisson counts of each super-resolution pixel times a gain non-uniformity
  (:func:`dedkit.sim.counting_raw.gain_nonuniformity`), hot and dead pixels, hot columns
  and a dead row, clipped at 15 and saved as SerialEM saves unnormalised K3 frames: 4-bit
  MRC mode 101, rotated by r/f 2 with the title saying so, the gain reference and
  defect list in camera orientation, and an .mdoc giving the dose and pixel size.

Then :func:`dedkit.jobs.align.align_movie` normalises, corrects the defects, reduces by
2 (as K3 users do), aligns (global and local patches), and writes the plain,
dose-weighted and even/odd sums, the shifts and RELION's STAR file. Checked against the
truth: the rms error of the global shifts, the FRC of the sums with the true specimen
(reduced to the output grid by the same filter), compared with an unaligned sum, and
that no defective column, row or pixel is left.

Examples
--------
>>> CAMERA_SIZES["default"].shape, CAMERA_SIZES["default"].frames
((2046, 2880), 24)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft

from dedkit.errors import DedkitError
from dedkit.jobs.demo_part import DemoCheck, DemoPart
from dedkit.jobs.streaming import ProgressCallback

__all__ = ["CAMERA_SIZES", "CameraSize", "run_camera_demo"]

#: A per physical K3 pixel at the specimen (a common Krios magnification)
PHYSICAL_PIXEL_A = 0.83
#: kV
VOLTAGE_KV = 300.0
#: r/f of the saved frames relative to the camera (SerialEM's K3 default on many scopes)
ROTFLIP = 2
#: standard deviation of the specimen at the super-resolution pixel over its mean
CONTRAST = 0.2
#: the largest rms error of the global shifts, output pixels
SHIFT_TARGET_PX = 0.5
#: the aligned sum's mean FRC with the truth over :data:`FRC_BAND` must exceed the
#: unaligned sum's by this factor
FRC_GAIN_TARGET = 2.0
#: band of the mean FRC, fractions of the output Nyquist frequency
FRC_BAND = (0.25, 0.6)
#: the largest robust z-score of a column or row mean of the aligned sum, and of a pixel
#: against its 3 x 3 median (a hot column left gives hundreds)
LINE_Z_TARGET = 6.0
PIXEL_Z_TARGET = 12.0


@dataclass(frozen=True)
class CameraSize:
    """The size of the simulated movie.

    Attributes
    ----------
    shape : (ny, nx)
        Super-resolution frame size (even: 2 x 2 per physical pixel).
    frames : int
    dose_per_frame : float
        e/A^2 per frame.
    drift_A, local_A : float
        Path length of the global track and the largest local displacement, A.
    patches : str
        Patches of the local alignment.
    """

    shape: tuple[int, int]
    frames: int
    dose_per_frame: float
    drift_A: float
    local_A: float
    patches: str


#: the sizes: 'default' is a quarter of a K3 in X and Y, 'full' half; 'small' and 'tiny'
#: are for tests and examples
CAMERA_SIZES = {
    "full": CameraSize((4092, 5760), 40, 1.2, 15.0, 2.5, "7x5"),
    "default": CameraSize((2046, 2880), 24, 2.0, 15.0, 2.5, "5x4"),
    "small": CameraSize((512, 720), 16, 3.0, 10.0, 2.0, "3x3"),
    "tiny": CameraSize((256, 384), 10, 4.0, 8.0, 0.0, "1x1"),
}

NAMES = dict(
    raw="k3_movie.mrc",
    gain="k3_SuperRef.mrc",
    defects="k3_defects.txt",
    mdoc="k3_movie.mrc.mdoc",
    sum="k3_sum.mrc",
    shifts="k3_shifts.csv",
    star="k3_movie.star",
    truth_shifts="k3_true_shifts.csv",
    truth="k3_true_specimen.mrc",
)
FIGURES = dict(
    trajectory="camera_trajectory.png",
    frc="camera_frc.png",
    images="camera_images.png",
)


# ----------------------------------------------------------------------------- making


def _defect_list(shape, rng):
    """Hot pixels, two hot columns and a dead row of a K3-like camera of physical size
    ``shape``, in camera orientation."""
    from dedkit.records.defects import DefectList

    ny, nx = shape
    n = max(8, nx * ny // 20000)
    return DefectList(
        camera_size_x=nx,
        camera_size_y=ny,
        rotation_and_flip=0,
        k2_type=1,
        bad_pixels=[
            (int(x), int(y))
            for x, y in zip(rng.integers(4, nx - 4, n), rng.integers(4, ny - 4, n), strict=True)
        ],
        bad_columns=[int(nx * 0.31), int(nx * 0.67)],
        bad_rows=[int(ny * 0.7)],
        comments=["# dedkit demo camera: a K3 cut to the demo's size"],
    )


def _damage(shape, pixel_A, exposure, voltage_kv):
    """rfft2 filter of the specimen's fading after ``exposure`` e/A^2."""
    from dedkit.frames.doseweight import critical_exposure

    ky = scipy.fft.fftfreq(shape[0], pixel_A)[:, None]
    kx = scipy.fft.rfftfreq(shape[1], pixel_A)[None, :]
    ne = critical_exposure(np.hypot(ky, kx), voltage_kv)
    return np.exp(-exposure / (2 * ne)).astype(np.float32)


def _write_movie(folder: Path, size: CameraSize, seed, progress):
    """Simulate the movie and write it with its gain reference, defect list and mdoc as
    SerialEM saves them; return the truth."""
    from dedkit.frames.rotflip import rotflip
    from dedkit.io.defects import write_defects
    from dedkit.io.mdoc import Mdoc, write_mdoc
    from dedkit.io.stack import create_stack
    from dedkit.io.titles import FrameTitleInfo, format_frame_titles

    # the demo's private helper: a SerialEM list's bad pixels as super-resolution masks
    from dedkit.jobs.demo import _defect_masks
    from dedkit.sim.counting_raw import gain_nonuniformity, simulate_counting_frames
    from dedkit.sim.movies import movie_model

    ny, nx = size.shape
    super_A = PHYSICAL_PIXEL_A / 2
    rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
    model = movie_model(
        (ny, nx),
        size.frames,
        1.0,
        drift=size.drift_A / super_A,
        local_amplitude=size.local_A / super_A,
        contrast=CONTRAST,
        seed=[seed, 1],
    )
    defects = _defect_list((ny // 2, nx // 2), rng)
    sensitivity_camera = gain_nonuniformity((ny, nx), rng)
    hot_camera, dead_camera = _defect_masks(defects, (ny, nx))
    sensitivity = rotflip(sensitivity_camera, ROTFLIP)
    hot, dead = rotflip(hot_camera, ROTFLIP), rotflip(dead_camera, ROTFLIP)
    per_pixel = size.dose_per_frame * super_A**2  # electrons per super-resolution pixel
    titles = format_frame_titles(FrameTitleInfo(packed_4bit=True, rotflip=ROTFLIP)) + [
        f"  {NAMES['gain']}",
        f"  {NAMES['defects']}",
    ]
    raw_sum = np.zeros((ny, nx))
    first = None
    saturated = 0
    with create_stack(
        folder / NAMES["raw"],
        (size.frames, ny, nx),
        np.uint8,
        packing="mode101",
        titles=titles,
        pixel_size=super_A,
        force=True,
    ) as writer:
        for i in range(size.frames):
            image = model.expected_frame(i)
            exposure = (i + 0.5) * size.dose_per_frame
            spectrum = scipy.fft.rfft2(image, workers=-1)
            spectrum *= _damage(image.shape, super_A, exposure, VOLTAGE_KV)
            image = scipy.fft.irfft2(spectrum, image.shape, workers=-1)
            (frame,) = simulate_counting_frames(
                np.maximum(image, 0), per_pixel, 1, sensitivity, rng, hot=hot, dead=dead
            )
            saturated += int(np.count_nonzero(frame == 15) - np.count_nonzero(hot))
            raw_sum += frame
            if first is None:
                first = frame.copy()
            writer.write(frame)
            if progress is not None:
                progress(i + 1)
    with create_stack(
        folder / NAMES["gain"],
        (1, ny, nx),
        np.float32,
        titles=["dedkit demo: K3 gain reference, camera orientation"],
        force=True,
    ) as w:
        w.write((1.0 / sensitivity_camera).astype(np.float32))
    (folder / NAMES["defects"]).unlink(missing_ok=True)
    write_defects(defects, folder / NAMES["defects"])
    mdoc = Mdoc()
    mdoc.set("Voltage", VOLTAGE_KV)
    section = mdoc.add_section("FrameSet", 0)
    for key, value in [
        ("ExposureDose", round(size.dose_per_frame * size.frames, 4)),
        ("PixelSpacing", super_A),  # the acquired image's pixel, at Binning 0.5
        ("Binning", 0.5),
        ("TiltAngle", 0),
        ("SubFramePath", f"X:\\Frames\\{NAMES['raw']}"),
        ("NumSubFrames", size.frames),
        ("FrameDosesAndNumber", f"{size.dose_per_frame:g} {size.frames}"),
        ("RotationAndFlip", ROTFLIP),
        ("GainReference", NAMES["gain"]),
        ("DefectFile", NAMES["defects"]),
        ("CountsPerElectron", 1),
    ]:
        section.set(key, value)
    write_mdoc(mdoc, folder / NAMES["mdoc"], force=True)
    return dict(
        model=model,
        raw_sum=raw_sum,
        first=first,
        defects=defects,
        gain=(1.0 / sensitivity).astype(np.float32),
        hot=hot,
        dead=dead,
        saturated=saturated,
    )


# ----------------------------------------------------------------------------- measuring


def _window(shape):
    """A separable cosine edge taper (8 % of each side), so the FRC sees no edges."""
    out = []
    for n in shape:
        w = np.ones(n)
        m = max(2, int(0.08 * n))
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
        w[:m], w[-m:] = ramp, ramp[::-1]
        out.append(w)
    return np.outer(out[0], out[1])


def _frc_with(truth, image, crop):
    from dedkit.metrics.frc import frc

    (y0, y1), (x0, x1) = crop
    t = truth[y0:y1, x0:x1].astype(np.float64)
    a = image[y0:y1, x0:x1].astype(np.float64)
    w = _window(t.shape)
    return frc((t - t.mean()) * w, (a - a.mean()) * w)


def _crossing_A(result, threshold, pixel_A):
    f = result.crossing(threshold)
    # 1.0: the FRC stays above the threshold up to Nyquist
    return 2 * pixel_A / (1.0 if f is None else f)


def _robust_z(values):
    values = np.asarray(values, np.float64)
    med = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - med))
    return np.abs(values - med) / max(mad, 1e-12)


def _defects_left(image):
    """Largest robust z of a column mean, a row mean and a pixel against its 3 x 3
    median, over the (cropped) aligned sum."""
    from scipy.ndimage import median_filter

    img = image.astype(np.float64)
    col = float(_robust_z(img.mean(axis=0)).max())
    row = float(_robust_z(img.mean(axis=1)).max())
    pixel = float(_robust_z(img - median_filter(img, 3)).max())
    return col, row, pixel


def _read(path):
    from dedkit.io.stack import open_stack

    with open_stack(path) as s:
        return s.read(0).astype(np.float32)


# ----------------------------------------------------------------------------- figures


def _trajectory_figure(true_A, est_A, error_A):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(true_A[:, 0], true_A[:, 1], "-o", color="0.4", ms=4, label="true")
    ax.plot(est_A[:, 0], est_A[:, 1], "-x", color="C3", ms=5, label="estimated")
    ax.plot(true_A[0, 0], true_A[0, 1], "o", mfc="none", mec="C0", ms=11, label="frame 1")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("dx (A)")
    ax.set_ylabel("dy (A)")
    ax.set_title(f"Global drift: true vs estimated (rms error {error_A:.2f} A)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def _frc_figure(curves, pixel_A):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    styles = {"aligned": "C0", "dose-weighted": "C2", "unaligned": "0.5"}
    for name, result in curves.items():
        k = result.frequency / (2 * pixel_A)
        ax.plot(k[1:], result.frc[1:], color=styles.get(name), lw=1.4, label=name)
    for level in (0.5, 0.143):
        ax.axhline(level, color="k", lw=0.6, ls=":")
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("FRC with the true specimen")
    ax.set_ylim(-0.1, 1.02)
    ax.set_xlim(0, 1 / (2 * pixel_A))
    ax.set_title("Sums of the movie against the truth")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def _images_figure(raw, dw, pixel_A):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    axes[0].imshow(raw, cmap="gray", origin="lower", vmin=0, vmax=max(1, np.percentile(raw, 99.5)))
    axes[0].set_title("raw frame 1 (4-bit counts, r/f 2)")
    lo, hi = np.percentile(dw, [1, 99])
    axes[1].imshow(dw, cmap="gray", origin="lower", vmin=lo, vmax=hi)
    axes[1].set_title("aligned, dose-weighted sum")
    d = dw - dw.mean()
    d = d * _window(d.shape)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(d))) ** 2
    axes[2].imshow(
        np.log10(spectrum + spectrum.mean() * 1e-3),
        cmap="gray",
        origin="lower",
        extent=(-1, 1, -1, 1),
    )
    axes[2].set_title(f"its power spectrum (edge {2 * pixel_A:.2f} A)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the part


def run_camera_demo(
    folder,
    *,
    full: bool = False,
    seed: int = 1,
    progress: ProgressCallback | None = None,
    size: str | None = None,
) -> DemoPart:
    """Simulate a K3 movie as SerialEM saves it, align it, and check it against the truth.

    Parameters
    ----------
    folder : path-like
        Folder to write into (made if missing; files of the same names are replaced).
    full : bool
        Half a K3 (4092 x 5760 super-resolution pixels, 40 frames) instead of a quarter
        (2046 x 2880, 24 frames).
    seed : int
        The same seed gives the same movie.
    progress : callable(done, total), optional
        Frames simulated, then :func:`~dedkit.jobs.align.align_movie`'s steps.
    size : str, optional
        A key of :data:`CAMERA_SIZES` overriding ``full`` (``'small'``, ``'tiny'``: tests).

    Returns
    -------
    DemoPart
        ``rows`` (quantity, value, target), ``checks`` (shift error, FRC of the aligned
        and dose-weighted sums with the truth against the unaligned sum's, defects left),
        ``figures``, ``files`` (paths under ``folder``), ``seconds``, ``details``.

    Raises
    ------
    DedkitError
        An unknown ``size``, or ``folder`` is a file.

    Examples
    --------
    >>> part = run_camera_demo("cam", size="tiny", seed=2)
    >>> [c.passed for c in part.checks]
    [True, True, True, True]
    """
    from dedkit.frames.defects.correct import DefectCorrector
    from dedkit.frames.reduce import reduce_image
    from dedkit.io.figures import save_figure
    from dedkit.io.motion_files import write_shifts_csv
    from dedkit.io.stack import create_stack
    from dedkit.jobs.align import align_movie, output_paths

    started = time.perf_counter()
    key = size or ("full" if full else "default")
    if key not in CAMERA_SIZES:
        raise DedkitError(f"unknown camera demo size {key!r}; one of {', '.join(CAMERA_SIZES)}")
    spec = CAMERA_SIZES[key]
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DedkitError("the camera demo's folder is a file", path=folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = spec.frames
    total = n + 2 * n + 1

    def sim_progress(done):
        if progress is not None:
            progress(done, total)

    def align_progress(done, _total):
        if progress is not None:
            progress(n + done, total)

    # ---- the movie as SerialEM saves it
    t0 = time.perf_counter()
    truth = _write_movie(folder, spec, seed, sim_progress)
    simulate_s = time.perf_counter() - t0
    model = truth["model"]

    # ---- dedkit align, as a K3 user runs it
    t0 = time.perf_counter()
    out = folder / NAMES["sum"]
    report = align_movie(
        folder / NAMES["raw"],
        out,
        gain=folder / NAMES["gain"],
        defects=folder / NAMES["defects"],
        rotflip_value=-1,
        reduce=2,
        patches=spec.patches,
        even_odd=True,
        shifts=folder / NAMES["shifts"],
        star=folder / NAMES["star"],
        force=True,
        progress=align_progress,
    )
    align_s = time.perf_counter() - t0
    paths = output_paths(out, dose_weighted=True, even_odd=True)

    # ---- against the truth
    t0 = time.perf_counter()
    super_A = PHYSICAL_PIXEL_A / 2
    out_A = PHYSICAL_PIXEL_A
    true_shifts = model.shifts - model.shifts.mean(axis=0)
    est = np.asarray(report.shifts_px, float)
    est = est - est.mean(axis=0)
    err = np.sqrt(np.mean(np.sum((est - true_shifts) ** 2, axis=1)))  # super-res pixels
    err_out, err_A = err / 2, err * super_A
    path_A = float(np.hypot(*np.diff(true_shifts, axis=0).T).sum() * super_A)

    true_out = reduce_image(model.specimen.astype(np.float32), 2)
    plain, dw = _read(paths["sum"]), _read(paths["dose_weighted"])
    # the unaligned sum: the raw sum normalised and corrected as align does each frame
    # (both are linear in the counts), reduced the same way
    unaligned = (truth["raw_sum"] * truth["gain"]).astype(np.float32)
    DefectCorrector.from_defects(truth["defects"], unaligned.shape, rotflip=ROTFLIP).apply(
        unaligned, out=unaligned
    )
    unaligned = reduce_image(unaligned, 2)
    reach = np.abs(true_shifts).max() / 2 + (model.local.peak / 2 if model.local else 0.0)
    m = int(math.ceil(reach)) + 4
    ny, nx = true_out.shape
    crop = ((m, ny - m), (m, nx - m))
    curves = {
        "aligned": _frc_with(true_out, plain, crop),
        "dose-weighted": _frc_with(true_out, dw, crop),
        "unaligned": _frc_with(true_out, unaligned, crop),
    }
    from dedkit.metrics.frc import mean_frc

    band = {k: mean_frc(v, *FRC_BAND) for k, v in curves.items()}
    res05 = {k: _crossing_A(v, 0.5, out_A) for k, v in curves.items()}
    res0143 = {k: _crossing_A(v, 0.143, out_A) for k, v in curves.items()}
    col_z, row_z, pix_z = _defects_left(plain[m : ny - m, m : nx - m])
    band_A = (2 * out_A / FRC_BAND[1], 2 * out_A / FRC_BAND[0])

    # ---- truth files and figures
    write_shifts_csv(folder / NAMES["truth_shifts"], true_shifts, force=True)
    with create_stack(
        folder / NAMES["truth"],
        (1, *true_out.shape),
        np.float32,
        pixel_size=out_A,
        titles=["dedkit demo: the true specimen on the output grid (undamaged)"],
        force=True,
    ) as w:
        w.write(true_out)
    figures = {
        "Drift: true vs estimated": folder / FIGURES["trajectory"],
        "FRC with the true specimen": folder / FIGURES["frc"],
        "Raw frame, aligned dose-weighted sum, power spectrum": folder / FIGURES["images"],
    }
    save_figure(_trajectory_figure(true_shifts * super_A, est * super_A, err_A),
                figures["Drift: true vs estimated"])  # fmt: skip
    save_figure(_frc_figure(curves, out_A), figures["FRC with the true specimen"])
    save_figure(
        _images_figure(truth["first"], dw, out_A),
        figures["Raw frame, aligned dose-weighted sum, power spectrum"],
    )
    check_s = time.perf_counter() - t0

    checks = [
        DemoCheck(
            "rms error of the global shifts vs the true track",
            f"{err_out:.3f} output px ({err_A:.3f} A)",
            f"< {SHIFT_TARGET_PX:g} output px",
            bool(err_out < SHIFT_TARGET_PX),
        ),
        DemoCheck(
            f"mean FRC with the truth {band_A[0]:.1f}-{band_A[1]:.1f} A: aligned vs unaligned",
            f"{band['aligned']:.3f} vs {band['unaligned']:.3f}",
            f"aligned > {FRC_GAIN_TARGET:g} x unaligned",
            bool(band["aligned"] > FRC_GAIN_TARGET * max(band["unaligned"], 0.0)),
        ),
        DemoCheck(
            f"mean FRC with the truth {band_A[0]:.1f}-{band_A[1]:.1f} A: dose-weighted vs "
            "aligned sum",
            f"{band['dose-weighted']:.3f} vs {band['aligned']:.3f}",
            "dose-weighted > aligned (the specimen fades with dose)",
            bool(band["dose-weighted"] > band["aligned"]),
        ),
        DemoCheck(
            "defects left in the aligned sum (robust z: column, row, pixel)",
            f"{col_z:.1f}, {row_z:.1f}, {pix_z:.1f}",
            f"< {LINE_Z_TARGET:g}, {LINE_Z_TARGET:g}, {PIXEL_Z_TARGET:g}",
            bool(col_z < LINE_Z_TARGET and row_z < LINE_Z_TARGET and pix_z < PIXEL_Z_TARGET),
        ),
    ]
    ny_in, nx_in = spec.shape
    rows = [
        {
            "quantity": "movie",
            "value": f"{n} x {nx_in} x {ny_in} super-res, 4-bit mode 101, r/f {ROTFLIP}",
            "target": "",
        },  # fmt: skip
        {
            "quantity": "dose",
            "value": f"{spec.dose_per_frame:g} e/A^2/frame, {spec.dose_per_frame * n:g} e/A^2",
            "target": "",
        },  # fmt: skip
        {"quantity": "true drift (path)", "value": f"{path_A:.1f} A", "target": ""},
        {
            "quantity": "shift error (rms)",
            "value": f"{err_out:.3f} px = {err_A:.3f} A",
            "target": f"< {SHIFT_TARGET_PX:g} px",
        },  # fmt: skip
    ]
    for name in ("aligned", "dose-weighted", "unaligned"):
        rows.append({
            "quantity": f"FRC vs truth, {name}",
            "value": f"0.5 at {res05[name]:.2f} A, 0.143 at {res0143[name]:.2f} A, "
                     f"mean {band[name]:.3f}",
            "target": "" if name != "aligned" else f"mean > {FRC_GAIN_TARGET:g} x unaligned",
        })  # fmt: skip
    z_target = f"< {LINE_Z_TARGET:g}, {LINE_Z_TARGET:g}, {PIXEL_Z_TARGET:g}"
    rows.append(
        {
            "quantity": "defects left (z col, row, px)",
            "value": f"{col_z:.1f}, {row_z:.1f}, {pix_z:.1f}",
            "target": z_target,
        }
    )
    rows.append({"quantity": "time", "value": f"simulate {simulate_s:.1f} s, align "
                 f"{align_s:.1f} s, check {check_s:.1f} s", "target": ""})  # fmt: skip

    files = {
        "raw movie (4-bit MRC mode 101, r/f 2)": folder / NAMES["raw"],
        "gain reference (camera orientation)": folder / NAMES["gain"],
        "defect list (SerialEM)": folder / NAMES["defects"],
        "frame mdoc": folder / NAMES["mdoc"],
        "aligned sum": paths["sum"],
        "aligned dose-weighted sum": paths["dose_weighted"],
        "even / odd sums": paths["even"],
        "even/odd FRC": paths["frc"],
        "shifts (CSV, input pixels)": folder / NAMES["shifts"],
        "RELION motion STAR": folder / NAMES["star"],
        "true shifts (CSV, input pixels)": folder / NAMES["truth_shifts"],
        "true specimen (output grid)": folder / NAMES["truth"],
    }
    files = {k: str(v) for k, v in files.items() if Path(v).exists()}
    details = {
        "size": key,
        "frame_shape": [ny_in, nx_in],
        "output_shape": list(report.output_shape),
        "frames": n,
        "pixel_size_A": {"super_resolution": super_A, "output": out_A},
        "voltage_kV": VOLTAGE_KV,
        "dose_per_frame_e_per_A2": spec.dose_per_frame,
        "contrast": CONTRAST,
        "drift_path_A": round(path_A, 3),
        "local_peak_A": round(model.local.peak * super_A, 3) if model.local else 0.0,
        "patches": spec.patches,
        "defect_pixels": int(np.count_nonzero(truth["hot"] | truth["dead"])),
        "saturated_counts": truth["saturated"],
        "shift_rms_error": {
            "super_px": round(err, 4),
            "output_px": round(err_out, 4),
            "A": round(err_A, 4),
        },  # fmt: skip
        "frc_band_nyquist": list(FRC_BAND),
        "frc_mean": {k: round(v, 4) for k, v in band.items()},
        "frc_0.5_A": {k: round(v, 3) for k, v in res05.items()},
        "frc_0.143_A": {k: round(v, 3) for k, v in res0143.items()},
        "frc_crop_px": m,
        "defect_z": {"column": round(col_z, 2), "row": round(row_z, 2), "pixel": round(pix_z, 2)},
        "even_odd_0.143_A": report.frc_0143_A,
        "seconds": {
            "simulate": round(simulate_s, 2),
            "align": round(align_s, 2),
            "check": round(check_s, 2),
        },  # fmt: skip
        "align_stage_seconds": {k: round(v, 2) for k, v in report.stage_seconds.items()},
        "align_warnings": list(report.warnings),
    }
    return DemoPart(
        name="camera",
        title="a simulated K3 movie as SerialEM saves it, aligned and "
        "dose-weighted, against the truth",
        rows=rows,
        checks=checks,
        figures={k: str(v) for k, v in figures.items()},
        files=files,
        seconds=time.perf_counter() - started,
        details=details,
    )
