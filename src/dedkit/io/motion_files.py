"""The side files of frame alignment: shifts (CSV), even/odd FRC (CSV), RELION's STAR.

- :func:`write_shifts_csv` / :func:`read_shifts_csv`: columns ``frame,dx,dy``; ``frame``
  is **1-based** (as RELION's ``rlnMicrographFrameNumber`` and the frame numbers people
  read in IMOD and SerialEM); ``dx, dy`` in pixels of the frames, dedkit's convention:
  the specimen's displacement in that frame relative to the aligned sum (a feature at
  ``(x, y)`` in the sum is at ``(x + dx, y + dy)`` in the frame), ``x`` along columns,
  ``y`` along rows with row 0 at the bottom. Numbers are written in the shortest form that
  reads back exactly.
- :func:`write_frc_csv`: an FRC curve (e.g. of the even and odd half sums).
- :func:`write_motioncorr_star`: the per-movie STAR file RELION's own motion correction
  writes beside each micrograph (``Micrograph::write`` in RELION's
  ``src/micrograph_model.cpp``), so that RELION's Bayesian polishing can follow.

The RELION convention (``src/motioncorr_runner.cpp``, ``src/micrograph_model.cpp``,
``src/jaz/single_particle/micrograph_handler.cpp``): ``rlnMicrographShiftX/Y`` is the
shift *applied to* frame ``i`` to align it, in unbinned movie pixels, so a particle
sits at ``position - shift`` in frame ``i`` (polishing builds its tracks as
``-shift``): ``rlnMicrographShift = -(dx, dy)``. RELION's y index is the MRC row index
(it flips TIFF on reading, as dedkit does), so no axis is flipped. The local model
(``rlnMotionModelVersion`` 1) is RELION's third-order polynomial: 18 coefficients per
axis (``rlnMotionModelCoeffsIdx`` 0-17 for x, 18-35 for y), shift at frame ``z``
(0-based from the first frame) and normalised position ``x = X / width - 0.5``,
``y = Y / height - 0.5``::

    (c0 z + c1 z² + c2 z³) + (c3 z + c4 z² + c5 z³) x + (c6 ...) x² + (c9 ...) y
    + (c12 ...) y² + (c15 ...) x y

so it is zero at the first frame; the global shifts are added to it.

Every writer refuses an existing output without ``force`` and writes under a temporary
name renamed into place (:mod:`dedkit.io.atomic`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import check_output_path, write_atomic
from dedkit.io.text import read_text_file

__all__ = [
    "MOTION_MODEL_NONE",
    "MOTION_MODEL_THIRD_ORDER_POLYNOMIAL",
    "read_shifts_csv",
    "write_frc_csv",
    "write_motioncorr_star",
    "write_shifts_csv",
]

#: ``rlnMotionModelVersion``: no local model, RELION's third-order polynomial
MOTION_MODEL_NONE = 0
MOTION_MODEL_THIRD_ORDER_POLYNOMIAL = 1
#: the STAR version line RELION 3.1 and later write and read
_STAR_VERSION = 30001
_SHIFT_COLUMNS = ("frame", "dx", "dy")


def _number(value: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(value))


def _check_shifts(shifts) -> np.ndarray:
    shifts = np.asarray(shifts, dtype=np.float64)
    if shifts.ndim != 2 or shifts.shape[1] != 2 or shifts.shape[0] == 0:
        raise DedkitError(f"shifts must be (n_frames, 2) values (dx, dy), not {shifts.shape}")
    if not np.all(np.isfinite(shifts)):
        raise DedkitError("shifts must be finite numbers")
    return shifts


def write_shifts_csv(path, shifts, *, force: bool = False, inputs=()) -> Path:
    """Write per-frame shifts as CSV: ``frame,dx,dy``, frames numbered from 1.

    Parameters
    ----------
    path : path-like
        The CSV file.
    shifts : (n_frames, 2) array
        ``(dx, dy)`` per frame in pixels (dedkit's convention, see the module notes).
    force : bool
        Replace an existing file.
    inputs : iterable of path-like
        The command's inputs, which the output must not be.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> _ = write_shifts_csv("shifts.csv", [[0.5, -0.25], [-0.5, 0.25]])
    >>> print(open("shifts.csv").read(), end="")
    frame,dx,dy
    1,0.5,-0.25
    2,-0.5,0.25
    >>> read_shifts_csv("shifts.csv")
    array([[ 0.5 , -0.25],
           [-0.5 ,  0.25]])
    """
    shifts = _check_shifts(shifts)
    output = check_output_path(path, inputs, force)
    lines = [",".join(_SHIFT_COLUMNS)]
    lines += [f"{i + 1},{_number(dx)},{_number(dy)}" for i, (dx, dy) in enumerate(shifts)]
    return write_atomic(output, "\n".join(lines) + "\n")


def read_shifts_csv(path) -> np.ndarray:
    """Read a shifts CSV (columns ``frame,dx,dy``, other columns ignored).

    Frames are 1-based and must be 1 to n, each once, in any order.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_frames, 2)``, ``(dx, dy)`` of frame 1 first.

    Raises
    ------
    DedkitError
        A missing column, a value that is not a number, a frame missing or repeated; the
        message names the file (and line).
    """
    text = read_text_file(path, "shifts CSV")
    rows = list(csv.reader(io.StringIO(text)))
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()
    if not rows:
        raise DedkitError("shifts CSV is empty", path=path)
    header = [cell.strip().lower() for cell in rows[0]]
    missing = [c for c in _SHIFT_COLUMNS if c not in header]
    if missing:
        raise DedkitError(
            f"shifts CSV needs the columns frame,dx,dy (missing {', '.join(missing)})",
            path=path,
            line=1,
        )
    columns = [header.index(c) for c in _SHIFT_COLUMNS]
    found: dict[int, tuple[float, float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            frame_text, dx_text, dy_text = (row[c].strip() for c in columns)
            frame = int(frame_text)
            dx, dy = float(dx_text), float(dy_text)
        except (IndexError, ValueError):
            raise DedkitError(
                "expected a frame number and two numbers dx, dy", path=path, line=line
            ) from None
        if not (math.isfinite(dx) and math.isfinite(dy)):
            raise DedkitError("shift is not a finite number", path=path, line=line)
        if frame in found:
            raise DedkitError(f"frame {frame} is listed twice", path=path, line=line)
        found[frame] = (dx, dy)
    n = len(found)
    if n == 0:
        raise DedkitError("shifts CSV lists no frames", path=path)
    if set(found) != set(range(1, n + 1)):
        wrong = sorted(set(found) - set(range(1, n + 1)))[:3]
        raise DedkitError(
            f"frames must be numbered 1 to {n} (frame numbers are 1-based); found "
            f"{', '.join(map(str, wrong))}",
            path=path,
        )
    return np.array([found[i] for i in range(1, n + 1)], dtype=np.float64)


def write_frc_csv(
    path, frc_result, pixel_size: float | None = None, *, force: bool = False, inputs=()
) -> Path:
    """Write an FRC curve (e.g. even against odd half sums) as CSV.

    Columns: ``ring``, ``frequency_per_pixel`` (0 to 0.5), then, with ``pixel_size``,
    ``frequency_per_angstrom`` and ``resolution_angstrom`` (empty at frequency 0), then
    ``frc`` (``nan`` where a ring has no power), ``half_bit_threshold`` and ``n_pixels``.

    Parameters
    ----------
    path : path-like
        The CSV file.
    frc_result : dedkit.metrics.FRCResult
        Anything with ``frequency`` (fractions of Nyquist), ``frc``, ``threshold`` and
        ``n_pixels`` arrays of one length.
    pixel_size : float, optional
        Å per pixel of the images compared.
    force : bool
        Replace an existing file.
    inputs : iterable of path-like
        The command's inputs.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> curve = SimpleNamespace(frequency=np.array([0.0, 0.5, 1.0]),
    ...                         frc=np.array([1.0, 0.5, np.nan]),
    ...                         threshold=np.array([1.0, 0.3, 0.2]),
    ...                         n_pixels=np.array([1, 12, 20]))
    >>> _ = write_frc_csv("frc.csv", curve, pixel_size=2.0)
    >>> print(open("frc.csv").read(), end="")
    ring,frequency_per_pixel,frequency_per_angstrom,resolution_angstrom,frc,half_bit_threshold,n_pixels
    0,0.0,0.0,,1.0,1.0,1
    1,0.25,0.125,8.0,0.5,0.3,12
    2,0.5,0.25,4.0,nan,0.2,20
    """
    try:
        frequency = np.asarray(frc_result.frequency, dtype=np.float64)
        values = np.asarray(frc_result.frc, dtype=np.float64)
        threshold = np.asarray(frc_result.threshold, dtype=np.float64)
        n_pixels = np.asarray(frc_result.n_pixels)
    except AttributeError as error:
        raise TypeError(f"frc_result needs frequency, frc, threshold, n_pixels: {error}") from None
    if not frequency.shape == values.shape == threshold.shape == n_pixels.shape:
        raise DedkitError("the FRC curve's arrays differ in length")
    if pixel_size is not None:
        pixel_size = float(pixel_size)
        if not (math.isfinite(pixel_size) and pixel_size > 0):
            raise DedkitError(f"pixel size must be positive (Å), not {pixel_size!r}")
    output = check_output_path(path, inputs, force)
    header = ["ring", "frequency_per_pixel"]
    if pixel_size is not None:
        header += ["frequency_per_angstrom", "resolution_angstrom"]
    header += ["frc", "half_bit_threshold", "n_pixels"]
    lines = [",".join(header)]
    per_pixel = frequency / 2.0  # FRCResult holds fractions of Nyquist (0.5 / pixel)
    for ring in range(frequency.size):
        cells = [str(ring), _number(per_pixel[ring])]
        if pixel_size is not None:
            per_angstrom = per_pixel[ring] / pixel_size
            resolution = _number(1.0 / per_angstrom) if per_angstrom > 0 else ""
            cells += [_number(per_angstrom), resolution]
        cells += [_number(values[ring]), _number(threshold[ring]), str(int(n_pixels[ring]))]
        lines.append(",".join(cells))
    return write_atomic(output, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------- RELION STAR


def _star_string(value, what: str) -> str:
    text = str(value)
    if any(c in text for c in "\n\r\"'") or not text.isprintable():
        raise DedkitError(f"{what} {text!r} cannot be written in a STAR file")
    if text == "":
        return '""'
    # RELION quotes a value holding white space (strings.cpp, escapeStringForSTAR)
    return f'"{text}"' if any(c in text for c in " \t") else text


def _star_list(name: str, items: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in items) + 4
    body = "".join(f"_{label:<{width}}{value}\n" for label, value in items)
    return f"\n# version {_STAR_VERSION}\n\ndata_{name}\n\n{body}\n"


def _star_loop(name: str, labels: list[str], rows: list[list[str]]) -> str:
    header = "".join(f"_{label} #{i} \n" for i, label in enumerate(labels, start=1))
    body = "".join(" ".join(f"{cell:>12}" for cell in row) + " \n" for row in rows)
    return f"\n# version {_STAR_VERSION}\n\ndata_{name}\n\nloop_ \n{header}{body} \n"


def _star_float(value: float) -> str:
    # rounded first and + 0.0: no "-0.000000" for a value that rounds to zero
    return f"{round(float(value), 6) + 0.0:.6f}"


def _local_arrays(local, n_frames: int):
    get = local.get if isinstance(local, Mapping) else lambda key, d=None: getattr(local, key, d)
    centres = get("patch_centres")
    shifts = get("patch_shifts")
    if centres is None or shifts is None:
        raise DedkitError("local motion needs patch_centres (P, 2) and patch_shifts (n, P, 2)")
    centres = np.asarray(centres, dtype=np.float64)
    shifts = np.asarray(shifts, dtype=np.float64)
    weights = get("patch_weights")
    weights = np.ones(len(centres)) if weights is None else np.asarray(weights, np.float64)
    n_patches = centres.shape[0] if centres.ndim == 2 else -1
    if (
        centres.shape != (n_patches, 2)
        or shifts.shape != (n_frames, n_patches, 2)
        or weights.shape != (n_patches,)
    ):
        raise DedkitError(
            f"local motion arrays do not fit {n_frames} frames: patch_centres "
            f"{centres.shape}, patch_shifts {shifts.shape}, patch_weights {weights.shape}"
        )
    if not (np.all(np.isfinite(centres)) and np.all(np.isfinite(shifts))):
        raise DedkitError("local motion holds values that are not finite")
    return centres, shifts, weights


def _third_order_design(z, x, y) -> np.ndarray:
    """RELION's design matrix (motioncorr_runner.cpp): 6 spatial terms times z, z², z³."""
    spatial = [np.ones_like(x), x, x * x, y, y * y, x * y]
    return np.stack([s * z**p for s in spatial for p in (1, 2, 3)], axis=-1)


def _fit_third_order(centres, relion_shifts, shape):
    """Least-squares fit of the polynomial to the RELION-signed residual tracks."""
    height, width = shape
    n_frames, n_patches, _ = relion_shifts.shape
    z = np.repeat(np.arange(n_frames, dtype=np.float64), n_patches)
    x = np.tile(centres[:, 0] / width - 0.5, n_frames)
    y = np.tile(centres[:, 1] / height - 0.5, n_frames)
    design = _third_order_design(z, x, y)
    obs = relion_shifts.reshape(-1, 2)
    coefficients, *_ = np.linalg.lstsq(design, obs, rcond=None)
    return coefficients[:, 0], coefficients[:, 1]


def write_motioncorr_star(
    path,
    *,
    movie_name,
    shifts,
    n_frames: int,
    shape,
    pixel_size: float,
    voltage_kv: float,
    dose_per_frame: float,
    pre_dose: float,
    binning: float,
    gain=None,
    defects=None,
    local=None,
    start_frame: int = 1,
    force: bool = False,
    inputs=(),
) -> Path:
    """Write the per-movie STAR file of RELION's own motion correction.

    Blocks, as ``Micrograph::write`` (RELION ``src/micrograph_model.cpp``) writes them:
    ``data_general`` (``rlnImageSizeX/Y/Z``, ``rlnMicrographMovieName``,
    ``rlnMicrographGainName``, ``rlnMicrographDefectFile``, ``rlnMicrographBinning``,
    ``rlnMicrographOriginalPixelSize``, ``rlnMicrographDoseRate``,
    ``rlnMicrographPreExposure``, ``rlnVoltage``, ``rlnMicrographStartFrame``,
    ``rlnMotionModelVersion``), ``data_global_shift`` (``rlnMicrographFrameNumber``,
    ``rlnMicrographShiftX/Y``), then with local motion ``data_local_motion_model``
    (``rlnMotionModelCoeffsIdx``, ``rlnMotionModelCoeff``) and ``data_local_shift``
    (``rlnMicrographFrameNumber``, ``rlnCoordinateX/Y``, ``rlnMicrographShiftX/Y``).

    Parameters
    ----------
    path : path-like
        The STAR file (RELION names it after the micrograph: ``movie.star``).
    movie_name : str or path
        The movie as RELION should open it (``rlnMicrographMovieName``).
    shifts : (n_frames, 2) array
        Global ``(dx, dy)`` per frame in **unbinned movie pixels**, dedkit's convention
        (relative to the aligned sum); written negated, RELION's convention.
    n_frames : int
        Frames of the movie (``rlnImageSizeZ``).
    shape : (int, int)
        ``(ny, nx)`` of the movie's frames (``rlnImageSizeY``, ``rlnImageSizeX``).
    pixel_size : float
        Å per unbinned movie pixel (``rlnMicrographOriginalPixelSize``).
    voltage_kv, dose_per_frame, pre_dose : float
        ``rlnVoltage`` (kV), ``rlnMicrographDoseRate`` (e/Å² per frame),
        ``rlnMicrographPreExposure`` (e/Å²).
    binning : float
        ``rlnMicrographBinning``: movie pixels per pixel of the written micrograph
        (2 for a super-resolution movie summed to counting size).
    gain, defects : str or path, optional
        ``rlnMicrographGainName``, ``rlnMicrographDefectFile`` (RELION reads MotionCor2's
        ``x y w h`` defect files, not SerialEM's).
    local : mapping or object, optional
        Local motion in unbinned movie pixels: ``patch_centres`` (P, 2) ``(x, y)``,
        ``patch_shifts`` (n_frames, P, 2) residual ``(dx, dy)`` beyond the global shift,
        optional ``patch_weights`` (P,) (patches of weight 0 are left out). A
        ``LocalMotion`` of frame alignment, scaled to movie pixels, will do.
        Its tracks are written re-referenced to the first frame as RELION does (the
        polynomial is zero there), and the polynomial is fitted to them by least
        squares as RELION fits it; with 18 or fewer usable values no model is written.
    start_frame : int
        ``rlnMicrographStartFrame`` (1-based first frame of the model).
    force : bool
        Replace an existing file.
    inputs : iterable of path-like
        The command's inputs.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> _ = write_motioncorr_star(
    ...     "movie.star", movie_name="Movies/movie.tif", shifts=[[1.0, 0.5], [-1.0, -0.5]],
    ...     n_frames=2, shape=(4092, 5760), pixel_size=0.83, voltage_kv=300,
    ...     dose_per_frame=1.2, pre_dose=0, binning=1)
    >>> text = open("movie.star").read()
    >>> print(text[text.index("data_global_shift"):].strip())
    data_global_shift
    <BLANKLINE>
    loop_
    _rlnMicrographFrameNumber #1
    _rlnMicrographShiftX #2
    _rlnMicrographShiftY #3
               1    -1.000000    -0.500000
               2     1.000000     0.500000
    """
    shifts = _check_shifts(shifts)
    n_frames = int(n_frames)
    if shifts.shape[0] != n_frames:
        raise DedkitError(f"{shifts.shape[0]} shifts for a movie of {n_frames} frames")
    try:
        height, width = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise DedkitError(f"movie shape must be (ny, nx), not {shape!r}") from None
    if height < 1 or width < 1:
        raise DedkitError(f"movie shape must be positive, not {shape!r}")
    numbers = {
        "pixel size": pixel_size,
        "voltage": voltage_kv,
        "dose per frame": dose_per_frame,
        "pre-dose": pre_dose,
        "binning": binning,
    }
    for what, value in numbers.items():
        if value is None or not math.isfinite(float(value)) or float(value) < 0:
            raise DedkitError(f"the STAR file needs a {what} >= 0, not {value!r}")
    if float(pixel_size) <= 0 or float(binning) <= 0:
        raise DedkitError("the STAR file needs a positive pixel size and binning")
    output = check_output_path(path, inputs, force)

    model = None
    local_rows: list[list[str]] = []
    if local is not None:
        centres, residual, weights = _local_arrays(local, n_frames)
        usable = weights > 0
        centres, residual = centres[usable], residual[:, usable]
        # RELION's sign, re-referenced to the first frame (its polynomial is 0 there)
        relion_tracks = -(residual - residual[:1])
        for p in range(centres.shape[0]):
            for f in range(n_frames):
                local_rows.append(
                    [
                        str(f + 1),
                        _star_float(centres[p, 0]),
                        _star_float(centres[p, 1]),
                        _star_float(relion_tracks[f, p, 0]),
                        _star_float(relion_tracks[f, p, 1]),
                    ]
                )
        if relion_tracks.size // 2 > 18:
            model = _fit_third_order(centres, relion_tracks, (height, width))

    general = [
        ("rlnImageSizeX", str(width)),
        ("rlnImageSizeY", str(height)),
        ("rlnImageSizeZ", str(n_frames)),
        ("rlnMicrographMovieName", _star_string(movie_name, "movie name")),
    ]
    if gain is not None:
        general.append(("rlnMicrographGainName", _star_string(gain, "gain name")))
    if defects is not None:
        general.append(("rlnMicrographDefectFile", _star_string(defects, "defect file")))
    general += [
        ("rlnMicrographBinning", _star_float(binning)),
        ("rlnMicrographOriginalPixelSize", _star_float(pixel_size)),
        ("rlnMicrographDoseRate", _star_float(dose_per_frame)),
        ("rlnMicrographPreExposure", _star_float(pre_dose)),
        ("rlnVoltage", _star_float(voltage_kv)),
        ("rlnMicrographStartFrame", str(int(start_frame))),
        (
            "rlnMotionModelVersion",
            str(MOTION_MODEL_NONE if model is None else MOTION_MODEL_THIRD_ORDER_POLYNOMIAL),
        ),
    ]
    text = _star_list("general", general)
    # RELION's sign: the shift applied to the frame, the negative of dedkit's (dx, dy)
    global_rows = [
        [str(i + 1), _star_float(-dx), _star_float(-dy)] for i, (dx, dy) in enumerate(shifts)
    ]
    text += _star_loop(
        "global_shift",
        ["rlnMicrographFrameNumber", "rlnMicrographShiftX", "rlnMicrographShiftY"],
        global_rows,
    )
    if model is not None:
        coefficients = np.concatenate(model)
        text += _star_loop(
            "local_motion_model",
            ["rlnMotionModelCoeffsIdx", "rlnMotionModelCoeff"],
            [[str(i), f"{c:.10g}"] for i, c in enumerate(coefficients)],
        )
    if local_rows:
        text += _star_loop(
            "local_shift",
            [
                "rlnMicrographFrameNumber",
                "rlnCoordinateX",
                "rlnCoordinateY",
                "rlnMicrographShiftX",
                "rlnMicrographShiftY",
            ],
            local_rows,
        )
    return write_atomic(output, text)
