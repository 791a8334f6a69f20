"""``dedkit align``: raw frames to an aligned, dose-weighted sum in two passes.

The movie is read once (pass 1): each raw frame is gain-normalised, defect-corrected
and truncated on the fly (the pieces of ``dedkit norm``, no intermediate file), reduced
to the output size (``reduce``, IMOD's antialiased filter) and reduced again into a small
alignment copy (``align_binning``). The motion is estimated on the alignment copies
(:func:`dedkit.frames.align.estimate_motion`) and scaled to the output pixels; pass 2
shifts every output-size frame and adds it into the plain, dose-weighted and even/odd
sums (:class:`dedkit.frames.align.AlignedSums`).

Pass 2 needs the output-size frames again. They are kept in memory as float32 when the
whole movie at the output size fits :data:`FRAME_MEMORY_BUDGET`, else as float16 (half
the memory; the rounding, 1 part in 2000, is far below the counting noise of the
frames), and only when even float16 does not fit are the frames read and computed again
(the slowest way). A K3 super-resolution movie of 40 frames reduced to 5760 x 4092 is
3.8 GB as float32 and 1.9 GB as float16: it is kept as float16.

Every output is checked against every input before anything is read, written under a
temporary name and renamed into place only when all of them are complete: a failed run
leaves nothing behind and existing files untouched.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, about
from dedkit.frames.align.drift import drift_summary
from dedkit.frames.gain import check_options, normalize_frame
from dedkit.frames.reduce import reduce_image, reduced_shape
from dedkit.io.atomic import StagedOutputs, check_outputs
from dedkit.io.stack import create_stack, format_from_path, open_stack
from dedkit.jobs.stacks import _read_raw, _require_counts, prepare_corrections
from dedkit.jobs.streaming import ProgressCallback, run_pipeline
from dedkit.report import JobReport
from dedkit.threads import limit_threads, thread_count

__all__ = [
    "ALIGN_TARGET_SIZE",
    "FRAME_MEMORY_BUDGET",
    "MIN_PATCH_PIXELS",
    "AlignReport",
    "align_movie",
    "default_align_binning",
    "motion_figure",
    "output_paths",
]

#: the longest side of the alignment copy at most this many pixels with the default
#: binning: large enough for sub-pixel peaks of 0.1 px of the output, small enough that
#: the iterated alignment costs little next to reading the movie (alignframes aims its
#: default binning at a similar size)
ALIGN_TARGET_SIZE = 1500
#: bytes of output-size frames kept in memory between the two passes (see the module)
FRAME_MEMORY_BUDGET = 2 * 1024**3
#: the fewest pixels of the alignment copy a patch may span along each axis
MIN_PATCH_PIXELS = 32
#: the smallest alignment copy (pixels along its shorter side)
MIN_ALIGN_PIXELS = 32
#: float16's largest value, with a margin: a frame beyond it is kept as float32
_FLOAT16_SAFE = 60000.0


@dataclass(kw_only=True)
class AlignReport(JobReport):
    """What :func:`align_movie` did.

    Attributes (beyond :class:`~dedkit.report.JobReport`'s)
    -------------------------------------------------------
    frames : int
        Frames of the movie.
    shifts_px : list of [dx, dy]
        One per input frame: the specimen's displacement in that frame relative to the
        output sum, in input pixels (x along columns, y along rows, Y up).
    total_drift_px : float
        Path length of the trajectory, input pixels.
    dose_per_frame : float or None
        Mean dose per frame, e/A^2 (None: no dose known, no dose-weighted sum).
    frame_doses : list of float or None
        The dose of each frame, e/A^2.
    outputs : dict
        Kind ('sum', 'dose_weighted', 'even', 'odd', 'frc', 'shifts', 'star',
        'figure') -> path written.
    stage_seconds : dict
        Wall time of each stage: 'read_normalize' (pass 1: read, gain, defects,
        reductions), 'motion', 'sum' (pass 2), 'write'.
    frc_half_bit, frc_0143 : float or None
        Where the even/odd FRC falls below the half-bit threshold and below 0.143, as
        fractions of Nyquist (1.0: not before Nyquist); None without half sums.
    frc_0143_A : float or None
        The 0.143 crossing in Angstrom (pixel size known).
    early_drift_px, late_drift_px, early_frames, max_jump_px
        :func:`dedkit.frames.align.drift_summary` of the shifts, input pixels.
    """

    frames: int
    frame_shape: tuple[int, int]
    output_shape: tuple[int, int]
    reduce: int
    align_binning: int
    align_shape: tuple[int, int]
    shifts_px: list
    total_drift_px: float
    iterations: int
    converged: bool
    dose_per_frame: float | None
    frame_doses: list | None
    dose_source: str | None
    pre_dose: float
    voltage_kv: float | None
    pixel_size: float | None
    output_pixel_size: float | None
    frame_store: str
    outputs: dict
    frc_half_bit: float | None = None
    frc_0143: float | None = None
    frc_0143_A: float | None = None
    early_drift_px: float | None = None
    late_drift_px: float | None = None
    early_frames: int | None = None
    max_jump_px: float | None = None
    stage_seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["frame_shape"] = list(self.frame_shape)
        d["output_shape"] = list(self.output_shape)
        d["align_shape"] = list(self.align_shape)
        d["stage_seconds"] = {k: round(v, 4) for k, v in self.stage_seconds.items()}
        return d

    def text(self) -> str:
        ny, nx = self.output_shape
        lines = [
            f"align: {self.frames} frames aligned into {self.output} ({nx} x {ny}) in "
            f"{self.seconds:.2f} s; drift {self.total_drift_px:.2f} px "
            f"({self.iterations} iterations{'' if self.converged else ', not converged'})",
            "  stages: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.stage_seconds.items()),
        ]
        if self.dose_per_frame is not None:
            lines.append(
                f"  dose {self.dose_per_frame:.3g} e/A^2/frame ({self.dose_source}), "
                f"pre-dose {self.pre_dose:g}"
            )
        if self.max_jump_px is not None:
            lines.append(
                f"  drift: early {self.early_drift_px:.2f} px (first {self.early_frames} "
                f"frames), late {self.late_drift_px:.2f} px, largest jump "
                f"{self.max_jump_px:.2f} px"
            )
        if self.frc_half_bit is not None:
            lines.append(f"  even/odd FRC falls below the half-bit threshold at "
                         f"{self.frc_half_bit:.3f} x Nyquist")  # fmt: skip
        if self.frc_0143 is not None:
            where = "" if self.frc_0143_A is None else f" ({self.frc_0143_A:.2f} A)"
            lines.append(
                f"  even/odd FRC falls below 0.143 at {self.frc_0143:.3f} x Nyquist{where}"
            )
        for kind, path in self.outputs.items():
            lines.append(f"  {kind:14s} {path}")
        lines.append("  frame      dx      dy  (input pixels)")
        for i, (dx, dy) in enumerate(self.shifts_px):
            lines.append(f"  {i + 1:5d} {dx:7.2f} {dy:7.2f}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------ options


def default_align_binning(shape) -> int:
    """The binning of the alignment copy when none is given: the smallest that brings
    its longest side to :data:`ALIGN_TARGET_SIZE` pixels or below.

    Examples
    --------
    >>> default_align_binning((4092, 5760))   # a K3 movie at counting size
    4
    >>> default_align_binning((8184, 11520)), default_align_binning((1024, 1024))
    (8, 1)
    """
    return max(1, math.ceil(max(int(v) for v in shape) / ALIGN_TARGET_SIZE))


def output_paths(output, *, dose_weighted=False, even_odd=False) -> dict[str, Path]:
    """The files written beside ``output``, named as MotionCor2 names them: the
    dose-weighted sum ``NAME_DW.mrc``, the half sums ``NAME_EVN.mrc`` and
    ``NAME_ODD.mrc``, and their FRC ``NAME_FRC.csv``.

    Examples
    --------
    >>> {k: p.name for k, p in output_paths("a/sum.mrc", dose_weighted=True).items()}
    {'sum': 'sum.mrc', 'dose_weighted': 'sum_DW.mrc'}
    """
    output = Path(output)
    stem, suffix = output.stem, output.suffix
    paths = {"sum": output}
    if dose_weighted:
        paths["dose_weighted"] = output.with_name(f"{stem}_DW{suffix}")
    if even_odd:
        paths["even"] = output.with_name(f"{stem}_EVN{suffix}")
        paths["odd"] = output.with_name(f"{stem}_ODD{suffix}")
        paths["frc"] = output.with_name(f"{stem}_FRC.csv")
    return paths


def _integer(value, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise DedkitError(f"{what} must be an integer, got {value!r}")
    if value < low:
        raise DedkitError(f"{what} must be at least {low}, got {value}")
    return int(value)


def _positive(value, what: str, *, zero: bool = False):
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DedkitError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        kind = "a finite number >= 0" if zero else "a finite positive number"
        raise DedkitError(f"{what} must be {kind}, got {value!r}")
    return number


def parse_patches(patches) -> tuple[int, int] | None:
    """``"5x5"``, ``(5, 5)`` or None -> (n_x, n_y) or None; 1x1 means no local motion.

    Examples
    --------
    >>> parse_patches("5x3"), parse_patches(None), parse_patches("1x1")
    ((5, 3), None, None)
    """
    if patches is None:
        return None
    if isinstance(patches, str):
        parts = patches.lower().replace("*", "x").split("x")
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
    else:
        try:
            values = [int(p) if float(p) == int(p) else -1 for p in patches]
        except (TypeError, ValueError):
            values = []
    if len(values) != 2 or min(values) < 1:
        raise DedkitError(f"patches {patches!r} must be two positive whole numbers NxM (e.g. 5x5)")
    return None if values == [1, 1] else (values[0], values[1])


def _check_options(
    *, group, patches, align_binning, reduce, truncate, dose, pre_dose, voltage, pixel_size,
    bfactor, iterations, tolerance,
) -> dict:  # fmt: skip
    check_options(high=truncate)
    return dict(
        group=_integer(group, "group (--group)"),
        patches=parse_patches(patches),
        align_binning=None
        if align_binning is None
        else _integer(align_binning, "alignment binning (--align-binning)"),
        reduce=_integer(reduce, "output reduction (--reduce)"),
        dose=_positive(dose, "dose per frame (--dose)"),
        pre_dose=_positive(pre_dose, "pre-dose (--pre-dose)", zero=True),
        voltage=_positive(voltage, "voltage (--voltage)"),
        pixel_size=_positive(pixel_size, "pixel size (--pixel-size)"),
        bfactor=_positive(bfactor, "B-factor (--bfactor)", zero=True),
        iterations=None if iterations is None else _integer(iterations, "--iterations"),
        tolerance=_positive(tolerance, "tolerance (--tolerance)"),
    )


def _mdoc_path(input, mdoc):
    """The mdoc to read: the one given, none for ``False``/'none', else SerialEM's
    ``INPUT.mdoc`` beside the frames when it exists."""
    if mdoc is False or (isinstance(mdoc, str) and mdoc.lower() == "none"):
        return None
    if mdoc is not None:
        return Path(mdoc)
    candidate = Path(f"{input}.mdoc")
    return candidate if candidate.is_file() else None


# ------------------------------------------------------------------------------ outputs


def _write_image(path, image, *, pixel_size, titles, inputs) -> None:
    with create_stack(
        path, (1, *image.shape), np.float32, titles=titles, pixel_size=pixel_size,
        force=True, inputs=inputs,
    ) as writer:  # fmt: skip
        writer.write(np.asarray(image, np.float32))


# ------------------------------------------------------------------------------- figure


def motion_figure(shifts, image, *, pixel_size=None, title=None):
    """The trajectory of the frames and the power spectrum of the aligned sum.

    Parameters
    ----------
    shifts : (n, 2) array
        (dx, dy) of each frame, input pixels.
    image : (ny, nx) array
        The aligned sum (any size: it is reduced to at most 1024 pixels for display).
    pixel_size : float, optional
        A per pixel of ``image``, to label the spectrum's edge.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas (save it with :func:`dedkit.io.figures.save_figure`).

    Examples
    --------
    >>> import numpy as np
    >>> fig = motion_figure([[1, 0], [0, 0], [-1, 0]], np.random.default_rng(0).random((64, 64)))
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['Trajectory (input pixels)', 'Power spectrum of the sum']
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shifts = np.asarray(shifts, float)
    image = np.asarray(image, np.float32)
    factor = max(1, math.ceil(max(image.shape) / 1024))
    small = reduce_image(image, factor) if factor > 1 else image
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(small - small.mean()))) ** 2
    fig = Figure(figsize=(10, 4.6))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(shifts[:, 0], shifts[:, 1], "-", color="0.6", lw=1)
    scatter = ax1.scatter(shifts[:, 0], shifts[:, 1], c=np.arange(1, len(shifts) + 1), s=14)
    ax1.plot(shifts[0, 0], shifts[0, 1], "o", mfc="none", mec="red", ms=10, label="frame 1")
    ax1.set_aspect("equal", adjustable="datalim")
    ax1.set_xlabel("dx (pixels)")
    ax1.set_ylabel("dy (pixels)")
    ax1.set_title("Trajectory (input pixels)")
    ax1.legend(loc="best", fontsize=8)
    fig.colorbar(scatter, ax=ax1, label="frame")
    positive = spectrum[spectrum > 0]
    floor = float(positive.min()) if positive.size else 1.0
    ax2.imshow(np.log10(np.maximum(spectrum, floor)), cmap="gray", origin="lower",
               extent=(-1, 1, -1, 1))  # fmt: skip
    edge = "Nyquist" if pixel_size is None else f"Nyquist = {2 * pixel_size * factor:.2f} A"
    ax2.set_xlabel(f"kx (fraction of {edge})")
    ax2.set_ylabel("ky")
    ax2.set_title("Power spectrum of the sum")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- job


def align_movie(
    input,
    output,
    *,
    gain=None,
    defects=None,
    rotflip_value: int | None = None,
    mdoc=None,
    dose: float | None = None,
    pre_dose: float | None = None,
    voltage: float | None = None,
    pixel_size: float | None = None,
    group: int = 1,
    patches=None,
    align_binning: int | None = None,
    reduce: int = 1,
    truncate: float | None = None,
    bfactor: float | None = None,
    iterations: int | None = None,
    tolerance: float | None = None,
    method: str = "iterative",
    even_odd: bool = False,
    shifts=None,
    star=None,
    figure=None,
    force: bool = False,
    progress: ProgressCallback | None = None,
    memory_budget: int | None = None,
    eer_group: int | None = None,
    eer_sampling: int | None = None,
    threads: int | None = None,
    frc: bool = False,
    thumbnail=None,
    record=None,
    star_needs_pixel_size: bool = True,
) -> AlignReport:
    """Align the frames of a movie and write their plain and dose-weighted sums.

    Parameters
    ----------
    input : path-like
        The frames: any stack dedkit reads (MRC incl. 4-bit, TIFF, numbered folders),
        raw or already normalised.
    output : path-like
        The aligned sum (MRC or TIFF, float32, one image), in counts of the output
        pixels; the dose-weighted sum goes beside it as ``NAME_DW.mrc``
        (:func:`output_paths`), when the dose is known.
    gain, defects : path-like, optional
        Gain reference (MRC, TIFF, DM3/DM4; the frames' size or 2 or 4 times smaller)
        and SerialEM defect list: applied to each frame as it is read.
    rotflip_value : int, optional
        r/f value applied to the gain reference and defect list (0-7), or -1 to read it
        from the frame titles (alignframes ``-rotation -1``). None: the reference is used
        as it is and the defect list with the titles' r/f, as ``dedkit norm`` does.
    mdoc : path-like, False or 'none', optional
        SerialEM's metadata for the dose, pixel size and voltage. Default: ``INPUT.mdoc``
        when it exists; False or 'none' reads none.
    dose : float, optional
        Dose per frame, e/A^2 (overrides the mdoc's).
    pre_dose : float, optional
        Dose before the first frame, e/A^2 (default: the mdoc's, else 0).
    voltage : float, optional
        kV (default: the mdoc's, else 300 with a note).
    pixel_size : float, optional
        A per input pixel (default: the mdoc's, else the stack header's).
    group : int
        Frames summed for the alignment (low dose per frame).
    patches : 'NxM' or (n_x, n_y), optional
        Local motion on n_x x n_y overlapping patches; None (or 1x1) global only.
    align_binning : int, optional
        Binning of the alignment copy relative to the output frames (default
        :func:`default_align_binning`).
    reduce : int
        Antialiased reduction of the output (2: super-resolution to counting size).
    truncate : float, optional
        Pixels whose raw x gain exceeds this are replaced by the mean of their
        neighbours (alignframes ``-truncate``; hot pixels).
    bfactor, iterations, tolerance : optional
        Passed to :func:`dedkit.frames.align.estimate_motion` (its defaults when None).
    method : {'iterative', 'pairs'}
        Each frame against the sum of the others, iterated, or all pairs with a robust
        fit (alignframes ``-pair``).
    even_odd : bool
        Also write the sums of the even and odd frames and their FRC.
    shifts, star, figure : path-like, optional
        CSV of the shifts (input pixels), RELION's per-movie motion STAR file, a PNG/PDF/
        SVG of the trajectory and power spectrum.
    force : bool
        Replace existing outputs.
    progress : callable(done, total), optional
        Over both passes.
    memory_budget : int, optional
        Bytes of output-size frames kept for pass 2 (default :data:`FRAME_MEMORY_BUDGET`).
    eer_group, eer_sampling : int, optional
        For EER movies: fractions summed into each frame (default
        :data:`dedkit.io.eer.DEFAULT_EER_GROUP`) and the sampling, 1, 2 or 4 (default 1:
        the sensor's 4096 x 4096 pixels).
    threads : int, optional
        Threads the alignment may use (default: every core; see :mod:`dedkit.threads`).
    frc : bool
        Compute the even/odd FRC (its 0.143 crossing goes in the report) even when the
        half sums are not written.
    thumbnail : path-like, optional
        A PNG of the sum's power spectrum, 256 x 256 (for session reports).
    record : path-like, optional
        The report as JSON, written last when all outputs are in place: its presence
        means the movie is done (``dedkit align`` on many movies skips such movies).
    star_needs_pixel_size : bool
        True: a STAR file asked for without a known pixel size is an error; False: it is
        left out with a note (sessions, where some movies may lack an mdoc).

    Returns
    -------
    AlignReport

    Examples
    --------
    The sample stack of ``dedkit sample`` (4 raw 4-bit super-resolution frames with their
    gain reference, defect list and mdoc), aligned and reduced to counting size:

    >>> from dedkit.jobs.demo import write_samples
    >>> _ = write_samples("sample")
    >>> report = align_movie(
    ...     "sample/frames.mrc", "sum.mrc", gain="sample/SuperRef.mrc",
    ...     defects="sample/defects.txt", rotflip_value=-1, reduce=2,
    ... )
    >>> report.frames, report.output_shape, len(report.shifts_px)
    (4, (408, 576), 4)
    >>> sorted(report.outputs)
    ['dose_weighted', 'sum']
    """
    with limit_threads(threads):
        return _align_movie(
            input,
            output,
            gain=gain,
            defects=defects,
            rotflip_value=rotflip_value,
            mdoc=mdoc,
            dose=dose,
            pre_dose=pre_dose,
            voltage=voltage,
            pixel_size=pixel_size,
            group=group,
            patches=patches,
            align_binning=align_binning,
            reduce=reduce,
            truncate=truncate,
            bfactor=bfactor,
            iterations=iterations,
            tolerance=tolerance,
            method=method,
            even_odd=even_odd,
            shifts=shifts,
            star=star,
            figure=figure,
            force=force,
            progress=progress,
            memory_budget=memory_budget,
            eer_group=eer_group,
            eer_sampling=eer_sampling,
            frc=frc,
            thumbnail=thumbnail,
            record=record,
            star_needs_pixel_size=star_needs_pixel_size,
        )


def _align_movie(
    input,
    output,
    *,
    gain,
    defects,
    rotflip_value,
    mdoc,
    dose,
    pre_dose,
    voltage,
    pixel_size,
    group,
    patches,
    align_binning,
    reduce,
    truncate,
    bfactor,
    iterations,
    tolerance,
    method,
    even_odd,
    shifts,
    star,
    figure,
    force,
    progress,
    memory_budget,
    eer_group,
    eer_sampling,
    frc,
    thumbnail,
    record,
    star_needs_pixel_size,
) -> AlignReport:
    started = time.perf_counter()
    opts = _check_options(
        group=group, patches=patches, align_binning=align_binning, reduce=reduce,
        truncate=truncate, dose=dose, pre_dose=pre_dose, voltage=voltage,
        pixel_size=pixel_size, bfactor=bfactor, iterations=iterations, tolerance=tolerance,
    )  # fmt: skip
    if method not in ("iterative", "pairs"):
        raise DedkitError(f"unknown alignment method {method!r}; use 'iterative' or 'pairs'")
    mdoc_path = _mdoc_path(input, mdoc)
    output = Path(output)
    if format_from_path(output) == "folder":
        raise DedkitError(
            "the aligned sum is one image: name an .mrc or .tif file (many movies: "
            "-o FOLDER/ with a trailing slash)",
            path=output,
        )
    planned = output_paths(
        output, dose_weighted=dose is not None or mdoc_path is not None, even_odd=even_odd
    )
    inputs = [p for p in (input, gain, defects, mdoc_path) if p is not None]
    extra = {"shifts": shifts, "star": star}
    check_outputs(
        [*planned.values(), *(p for p in extra.values() if p is not None)],
        inputs,
        force,
        figures=[figure] if figure is not None else [],
    )
    if figure is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise DedkitError("--figure needs matplotlib (pip install matplotlib)") from None
    notes: list[str] = []

    eer = (
        {}
        if eer_group is None and eer_sampling is None
        else {"eer_group": eer_group, "eer_sampling": eer_sampling or 1}
    )
    with open_stack(input, **eer) as reader:
        info = reader.info
        _require_counts(info, "align")
        n = info.nz
        if n < 2:
            raise DedkitError(f"a movie of {n} frame has nothing to align", path=input)
        # estimate_motion's own rule, checked here before the frames are read: a window
        # of frames needs at least as many others to be aligned against
        if opts["group"] > 1 and 2 * opts["group"] > n:
            raise DedkitError(
                f"group {opts['group']} is larger than half the movie's {n} frames",
                path=input,
            )
        frame_shape = (info.ny, info.nx)
        with about(input):
            out_shape = reduced_shape(frame_shape, opts["reduce"])
        abin = opts["align_binning"] or default_align_binning(out_shape)
        if min(out_shape) // abin < MIN_ALIGN_PIXELS:
            raise DedkitError(
                f"alignment binning {abin} leaves fewer than {MIN_ALIGN_PIXELS} pixels of "
                f"the {out_shape[1]} x {out_shape[0]} output frames to align on"
            )
        align_shape = reduced_shape(out_shape, abin)
        if opts["patches"] is not None:
            px, py = opts["patches"]
            if align_shape[1] // px < MIN_PATCH_PIXELS or align_shape[0] // py < MIN_PATCH_PIXELS:
                raise DedkitError(
                    f"{px}x{py} patches are too many for the {align_shape[1]} x "
                    f"{align_shape[0]} alignment copy (at least {MIN_PATCH_PIXELS} pixels "
                    "per patch along each axis): use fewer patches or a smaller "
                    "--align-binning"
                )

        # the gain reference and defect list, oriented as dedkit norm orients them
        corrections = prepare_corrections(info, input, gain, defects, rotflip_value)
        applied_rotflip = corrections.rotflip
        reference, corrector = corrections.gain, corrections.defects
        if gain is not None and rotflip_value is None and info.rotflip:
            notes.append(
                f"the frame titles record r/f {info.rotflip} but no --rotflip was given: "
                "the gain reference was used as it is (--rotflip -1 orients it like "
                "the frames)"
            )

        doses = _resolve_doses(
            n, opts, mdoc_path, info, notes, need_pixel=star is not None and star_needs_pixel_size
        )
        if star is not None and doses["pixel_size"] is None:
            notes.append("no STAR file was written: the pixel size is not known (--pixel-size)")
            star = None

        # ---- pass 1: read, normalise, correct, reduce; keep frames for pass 2
        total_steps = 2 * n + 1
        budget = FRAME_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        out_bytes = n * out_shape[0] * out_shape[1] * 4
        store_kind = "float32" if out_bytes <= budget else "float16"
        if store_kind == "float16" and out_bytes // 2 > budget:
            store_kind = "reread"
        store: list = [None] * n
        align_frames = np.empty((n, *align_shape), np.float32)
        read, packed_nx = _read_raw(reader)
        # frame i is normalised into buffer i % 2 while frame i - 1, in the other, is
        # reduced and stored by the pipeline's second thread: the two overlap
        buffers = [np.empty(frame_shape, np.float32) for _ in range(2)]
        n_truncated = 0
        n_kept32 = 0

        def corrected(i, raw):
            """Stage 1 (main thread): gain, truncation and defects, at the input size."""
            nonlocal n_truncated
            result = normalize_frame(
                raw, reference, scale=1.0, dtype=np.float32, high=truncate,
                packed_nx=packed_nx, out=buffers[i % 2],
            )  # fmt: skip
            n_truncated += result.n_truncated
            if corrector is not None:
                corrector.apply(result.data, out=result.data)
            return result.data

        cores = thread_count()

        def to_output(data):
            # the reduction is most of pass 1: its rows are split over the cores
            if opts["reduce"] == 1:
                return data
            return reduce_image(data, opts["reduce"], workers=cores)

        def keep(i, data):
            """Stage 2 (second thread): output size, alignment copy, kept for pass 2."""
            nonlocal n_kept32
            frame = to_output(data)
            align_frames[i] = reduce_image(frame, abin, workers=cores) if abin > 1 else frame
            if store_kind == "float32":
                store[i] = frame.copy() if opts["reduce"] == 1 else frame
            elif store_kind == "float16":
                if max(float(frame.max()), -float(frame.min())) < _FLOAT16_SAFE:
                    store[i] = frame.astype(np.float16)
                else:
                    store[i] = frame.copy()
                    n_kept32 += 1

        def step(offset):
            if progress is None:
                return None
            return lambda done, total: progress(offset + done, total_steps)

        t0 = time.perf_counter()
        run_pipeline(n, read, corrected, keep, progress=step(0))
        stage = {"read_normalize": time.perf_counter() - t0}
        if store_kind != "reread":
            # what pass 1 needed at the input size (0.75 GB of buffers and a 0.4 GB gain
            # reference for a K3 super-resolution movie) is not needed any more
            buffers.clear()
            reference = corrector = None
        if n_kept32:
            notes.append(f"{n_kept32} frames held values beyond float16 and were kept as float32")

        # ---- motion, on the alignment copies
        from dedkit.frames.align import AlignedSums, estimate_motion

        t0 = time.perf_counter()
        kwargs = {k: opts[k] for k in ("bfactor", "iterations", "tolerance") if opts[k] is not None}
        motion = estimate_motion(
            align_frames, group=opts["group"], patches=opts["patches"], method=method,
            **kwargs,
        )  # fmt: skip
        align_frames = None  # the copies are not needed any more
        motion_out = motion.scaled(abin)
        motion_in = motion.scaled(abin * opts["reduce"])
        stage["motion"] = time.perf_counter() - t0
        if progress is not None:
            progress(n + 1, total_steps)
        if not motion.converged:
            notes.append(f"the alignment did not converge in {motion.iterations} iterations")

        # ---- pass 2: aligned sums at the output size
        t0 = time.perf_counter()
        weights = None
        out_pixel = doses["pixel_size"] * opts["reduce"] if doses["pixel_size"] else None
        if doses["doses"] is not None:
            from dedkit.frames.doseweight import DoseWeights

            weights = DoseWeights(
                out_shape, out_pixel, doses["doses"], pre_dose=doses["pre_dose"],
                voltage_kv=doses["voltage"],
            )  # fmt: skip
        sums = AlignedSums(out_shape, motion_out, dose_weights=weights, even_odd=even_odd or frc)
        if store_kind == "reread":
            run_pipeline(
                n, read, corrected, lambda i, d: sums.add(i, to_output(d)), progress=step(n + 1)
            )
        else:
            for i in range(n):
                frame, store[i] = store[i], None
                sums.add(i, np.asarray(frame, np.float32))
                if progress is not None:
                    progress(n + 2 + i, total_steps)
        images = sums.result()
        stage["sum"] = time.perf_counter() - t0

    # ---- outputs, all committed together
    t0 = time.perf_counter()
    shifts_in = np.asarray(motion_in.shifts, float)
    frc_result = None
    if even_odd or frc:
        from dedkit.metrics.frc import frc as fourier_ring_correlation

        frc_result = fourier_ring_correlation(images["even"], images["odd"])
    written = {k: p for k, p in planned.items() if k in images or k == "frc"}
    staged = StagedOutputs()
    titles_for = {
        "sum": f"dedkit align: sum of {n} aligned frames",
        "dose_weighted": f"dedkit align: dose-weighted sum of {n} aligned frames",
        "even": "dedkit align: sum of the even frames (0, 2, 4... from 0)",
        "odd": "dedkit align: sum of the odd frames (1, 3, 5... from 0)",
    }
    try:
        for kind, path in written.items():
            tmp = staged.temporary(path)
            if kind == "frc":
                from dedkit.io.motion_files import write_frc_csv

                write_frc_csv(tmp, frc_result, out_pixel, force=True)
                continue
            _write_image(
                tmp, images[kind], pixel_size=out_pixel, inputs=inputs,
                titles=[titles_for[kind], f"  from {Path(input).name}"[:80]],
            )  # fmt: skip
        if shifts is not None:
            from dedkit.io.motion_files import write_shifts_csv

            write_shifts_csv(staged.temporary(shifts), shifts_in, force=True)
            written["shifts"] = Path(shifts)
        if star is not None:
            from dedkit.io.motion_files import write_motioncorr_star

            if doses["voltage"] is None:
                notes.append("the voltage is not known: the STAR file says 300 kV (--voltage)")
            mean_dose = 0.0 if doses["doses"] is None else float(np.mean(doses["doses"]))
            write_motioncorr_star(
                staged.temporary(star),
                movie_name=str(input),
                shifts=shifts_in,
                n_frames=n,
                shape=frame_shape,
                pixel_size=doses["pixel_size"],
                voltage_kv=doses["voltage"] or 300.0,
                dose_per_frame=mean_dose,
                pre_dose=doses["pre_dose"],
                binning=opts["reduce"],
                gain=None if gain is None else str(gain),
                # RELION reads MotionCor2's defect files or a defect map, not SerialEM's
                # list: naming it would break polishing
                defects=None,
                local=motion_in.local,
                force=True,
            )
            if defects is not None:
                notes.append(
                    "the STAR file names no defect file (RELION does not read SerialEM's "
                    "list; give it a map made by 'dedkit defectmap')"
                )
            if gain is not None and applied_rotflip:
                notes.append(
                    f"the STAR file names the gain reference as it is, but the frames need "
                    f"it turned by r/f {applied_rotflip}: tell RELION (--gain_rot/--gain_flip)"
                )
            written["star"] = Path(star)
        if figure is not None:
            from dedkit.io.figures import save_figure

            fig = motion_figure(
                shifts_in, images["sum"], pixel_size=out_pixel, title=Path(input).name
            )
            save_figure(fig, staged.temporary(figure))
            written["figure"] = Path(figure)
        if thumbnail is not None:
            from dedkit.jobs.session_report import spectrum_thumbnail

            staged.temporary(thumbnail).write_bytes(spectrum_thumbnail(images["sum"]))
            written["thumbnail"] = Path(thumbnail)
        if n_truncated:
            notes.append(f"{n_truncated} pixels were replaced by truncation (--truncate)")
        frame_doses = None if doses["doses"] is None else [float(d) for d in doses["doses"]]
        drift = drift_summary(shifts_in, frame_doses, pre_dose=doses["pre_dose"])
        crossing = None if frc_result is None else frc_result.crossing(0.143)
        if frc_result is not None and crossing is None:
            crossing = 1.0  # the FRC stays above 0.143 up to Nyquist
        if record is not None:
            written["record"] = Path(record)
        stage["write"] = time.perf_counter() - t0
        report = AlignReport(
            command="align",
            inputs=[str(p) for p in inputs],
            output=str(output),
            seconds=time.perf_counter() - started,
            counts={"frames": n},
            details={"gain_rotflip": applied_rotflip, "truncated_pixels": n_truncated},
            frames=n,
            frame_shape=frame_shape,
            output_shape=out_shape,
            reduce=opts["reduce"],
            align_binning=abin,
            align_shape=align_shape,
            shifts_px=[[round(float(dx), 4), round(float(dy), 4)] for dx, dy in shifts_in],
            total_drift_px=round(float(motion_in.total_drift), 4),
            early_drift_px=round(drift.early, 4),
            late_drift_px=round(drift.late, 4),
            early_frames=drift.early_frames,
            max_jump_px=round(drift.max_jump, 4),
            iterations=int(motion.iterations),
            converged=bool(motion.converged),
            dose_per_frame=None if frame_doses is None else float(np.mean(frame_doses)),
            frame_doses=frame_doses,
            dose_source=doses["source"],
            pre_dose=doses["pre_dose"],
            voltage_kv=doses["voltage"],
            pixel_size=doses["pixel_size"],
            output_pixel_size=out_pixel,
            frame_store=store_kind,
            outputs={k: str(p) for k, p in written.items()},
            frc_half_bit=None if frc_result is None else frc_result.half_bit_crossing(),
            frc_0143=crossing,
            frc_0143_A=None
            if crossing is None or out_pixel is None
            else round(2 * out_pixel / crossing, 3),
            stage_seconds=stage,
            warnings=notes,
        )
        if record is not None:
            # last: its presence says that every other output is in place
            import json

            staged.temporary(record).write_text(
                json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8"
            )
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    return report


def _header_pixel_size(info) -> float | None:
    # 1.0 is what many writers put in an MRC header that records no pixel size
    if info.pixel_size and info.pixel_size[0] > 0 and info.pixel_size[0] != 1.0:
        return float(info.pixel_size[0])
    return None


def _resolve_doses(n, opts, mdoc_path, info, notes, *, need_pixel: bool) -> dict:
    """Dose of each frame, pixel size, voltage and pre-dose: the options win over the mdoc
    (:func:`dedkit.camera.frame_dose.frame_doses`), the stack header gives the pixel
    size when neither does."""
    found = None
    if opts["dose"] is not None or mdoc_path is not None:
        from dedkit.camera.frame_dose import frame_doses

        found = frame_doses(
            n, dose_per_frame=opts["dose"], mdoc=mdoc_path, pre_dose=opts["pre_dose"],
            frames_name=Path(info.path).name, pixel_size=opts["pixel_size"],
            voltage_kv=opts["voltage"],
        )  # fmt: skip
    if found is not None:
        doses, source = np.asarray(found.doses, float), found.source
        pixel, voltage, pre = found.pixel_size, found.voltage_kv, float(found.pre_dose)
    else:
        doses, source = None, None
        pixel, voltage, pre = opts["pixel_size"], opts["voltage"], opts["pre_dose"] or 0.0
    if pixel is None:
        pixel = _header_pixel_size(info)
    why_not = None
    if doses is not None and pixel is None:
        why_not, doses = "the pixel size is not known (give --pixel-size)", None
    if doses is None and why_not is None:
        why_not = "the dose is not known (give --dose or an mdoc)"
    if doses is None:
        notes.append(f"only the plain sum was written: {why_not}")
    elif voltage is None:
        voltage = 300.0
        notes.append("the voltage is not known: dose weighting assumes 300 kV (give --voltage)")
    if need_pixel and pixel is None:
        raise DedkitError(
            "the STAR file needs the pixel size, which neither the mdoc nor the stack "
            "header gives: use --pixel-size",
            path=info.path,
        )
    return dict(doses=doses, source=source, pixel_size=pixel, voltage=voltage, pre_dose=pre)
