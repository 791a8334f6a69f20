"""Camera defect correction as IMOD does it (``clip -D``, ``alignframes``, ``clip defect``).

The rules follow IMOD/SerialEM's shared ``CorrectDefects.cpp`` (``CorDefCorrectDefects``
and the routines it calls, ``CorDefFlipDefectsInY``, ``CorDefFindTouchingPixels``,
``CorDefSetupToCorrect``, ``CorDefRotateFlipDefects``, ``CorDefFillDefectArray``) and
IMOD's ``sampleMinMaxMeanSD``. Preparation, once per stack:

1. Adjacent entries of BadColumns/BadRows are merged into bands as they are read.
2. If the frames were saved with a different rotation/flip than the list's
   RotationAndFlip, the list is rotated/flipped to match (a 2x2 super-resolution block
   keeps its lower-left corner as its coordinate).
3. The list is flipped in Y (:func:`file_rows_to_array_rows`), the one place where
   SerialEM's "y = 0 at the top" becomes dedkit's "row 0 at the bottom".
4. Bad pixels that touch another bad pixel, a bad line or the edge of the usable area
   are marked to be filled with the image mean.
5. A list smaller than the frames (up to half their size) is scaled up by 2; a list
   for a larger camera applies to binned frames, binning being the largest b with
   ``nx * b <= CameraSizeX`` and ``ny * b <= CameraSizeY``; the frame is taken to be
   centred on the camera.

Correction of one frame, in IMOD's order: touching pixels get the (sampled) image mean;
rows and columns outside the usable area are filled from the last good line, tapering
over 5 lines from that line's value to a running mean along it; bad column bands, then
partial columns, bad row bands and partial rows are interpolated from the good lines
beside them; the remaining bad pixels get the mean of their 4 neighbours (a 2x2
super-resolution block: of the 16 pixels two deep on each of its sides).

Integer frames are rounded as IMOD rounds them: randomly up or down with the probability
that makes the rounding unbiased, from IMOD's own linear congruential generators. Like
IMOD's static generators, a :class:`DefectCorrector` carries their state from one frame
to the next, so rounding errors do not repeat from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numba
import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.rotflip import check_rotflip, inverse_rotflip
from dedkit.records.defects import DefectList

__all__ = [
    "DefectCorrector",
    "DefectGeometry",
    "GoodArea",
    "PreparedDefects",
    "correct_defects",
    "defect_map",
    "file_rows_to_array_rows",
    "prepare_defects",
]

# Rows (columns) outside the usable area over which the fill tapers to the running mean.
EDGE_TAPER_LINES = 5
# IMOD samples about this many pixels for the image mean given to touching pixels.
MEAN_SAMPLE_PIXELS = 30000
# clip defectmap accepts an image within this many pixels of the list's camera size.
MAP_SIZE_TOLERANCE = 10

# Seeds of IMOD's three generators: for fills from an integer sum, from a float value,
# and for sampling beside wide bad columns.
_SEED_INT_SUM, _SEED_FLOAT, _SEED_COLUMN = 482945, 843295, 456789
_GEN_INT_SUM, _GEN_FLOAT, _GEN_COLUMN = 0, 1, 2


class GoodArea(NamedTuple):
    """First and last good row and column (inclusive); 0 means "no limit"."""

    first_row: int = 0
    first_column: int = 0
    last_row: int = 0
    last_column: int = 0


@dataclass(frozen=True)
class DefectGeometry:
    """Defects as bands and points, the form IMOD computes with.

    Attributes
    ----------
    camera_size_x, camera_size_y : int
        Camera size the coordinates refer to.
    was_scaled : int
        1 when each bad pixel is the lower corner of a 2x2 super-resolution block.
    y_up : bool
        False while rows count from the top (as in the file), True once converted to
        dedkit's rows (row 0 at the bottom) by :func:`file_rows_to_array_rows`.
    good_area : GoodArea
    column_bands, row_bands : ndarray (n, 2)
        ``start, width`` of each band of full bad columns (rows), in IMOD's order.
    partial_columns : ndarray (n, 4)
        ``start, width, first_row, last_row`` of each partial bad column band.
    partial_rows : ndarray (n, 4)
        ``start, height, first_column, last_column`` of each partial bad row band.
    bad_pixels : ndarray (n, 2)
        ``x, y`` of each bad pixel (or block corner), in file order.
    """

    camera_size_x: int
    camera_size_y: int
    was_scaled: int
    y_up: bool
    good_area: GoodArea
    column_bands: np.ndarray
    row_bands: np.ndarray
    partial_columns: np.ndarray
    partial_rows: np.ndarray
    bad_pixels: np.ndarray

    @classmethod
    def from_defect_list(cls, defects: DefectList) -> DefectGeometry:
        """Bands and points of a defect list, rows still counted from the top."""
        _check_supported(defects)
        u = defects.usable_area
        return cls(
            camera_size_x=defects.camera_size_x,
            camera_size_y=defects.camera_size_y,
            was_scaled=defects.was_scaled,
            y_up=False,
            good_area=GoodArea(u.top, u.left, u.bottom, u.right),
            column_bands=_merge_lines_into_bands(defects.bad_columns),
            row_bands=_merge_lines_into_bands(defects.bad_rows),
            partial_columns=_int_array(defects.partial_bad_columns, 4),
            partial_rows=_int_array(defects.partial_bad_rows, 4),
            bad_pixels=_int_array(defects.bad_pixels, 2),
        )


@dataclass(frozen=True)
class PreparedDefects:
    """A defect list made ready for frames of one shape (see :func:`prepare_defects`).

    Attributes
    ----------
    geometry : DefectGeometry
        In dedkit's rows (Y up), in the frames' orientation, scaled if needed; unbinned.
    pixel_uses_mean : ndarray of bool
        For each bad pixel, whether it touches other defects and gets the image mean.
    frame_shape : (ny, nx)
    binning : int
        Camera pixels (of the geometry) per frame pixel.
    offset_x, offset_y : int
        Binned camera coordinates of the frame's pixel (0, 0).
    """

    geometry: DefectGeometry
    pixel_uses_mean: np.ndarray
    frame_shape: tuple[int, int]
    binning: int
    offset_x: int
    offset_y: int


def _int_array(rows, width: int) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(-1, width)


def _check_supported(defects: DefectList) -> None:
    # Falcon super-resolution lists need IMOD's extra averaging beside bad columns and
    # 4x4 blocks; no K2/K3 list uses either.
    if defects.falcon_type and defects.was_scaled:
        raise DedkitError("defect lists of scaled Falcon images are not supported")
    if defects.was_scaled > 1:
        raise DedkitError(f"WasScaled {defects.was_scaled} (4x4 blocks) is not supported")


def _merge_lines_into_bands(lines: list[int]) -> np.ndarray:
    """IMOD's CorDefAddBadColumn: a line extends the first band it directly follows."""
    starts: list[int] = []
    widths: list[int] = []
    for line in lines:
        for k, (start, width) in enumerate(zip(starts, widths, strict=True)):
            if line == start + width:
                widths[k] += 1
                break
        else:
            starts.append(line)
            widths.append(1)
    return np.array([starts, widths], dtype=np.int64).T.reshape(-1, 2)


# --------------------------------------------------------------------------------------
# Geometry operations (coordinates of whole camera pixels, never of a binned frame)
# --------------------------------------------------------------------------------------


def _rotflip_points(x, y, value: int, size_x: int, size_y: int):
    """Where pixel (x, y) of a rows-from-top image goes under r/f ``value``.

    The same mapping as ``rotflip(image, value, y_up=False)`` applies to the pixels.
    """
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    if value >= 4:
        x = size_x - 1 - x
    for _ in range(value % 4):
        x, y = y, size_x - 1 - x
        size_x, size_y = size_y, size_x
    return x, y


def _rotflip_geometry(g: DefectGeometry, value: int) -> DefectGeometry:
    """IMOD's CorDefRotateFlipDefects for one r/f operation (rows from the top)."""
    if value == 0:
        return g
    sx, sy = g.camera_size_x, g.camera_size_y
    transposes = value % 2 == 1
    block = 1 if g.was_scaled > 0 else 0

    # A block's new corner is the lower of its two transformed corners.
    px, py = g.bad_pixels[:, 0], g.bad_pixels[:, 1]
    x1, y1 = _rotflip_points(px, py, value, sx, sy)
    x2, y2 = _rotflip_points(px + block, py + block, value, sx, sy)
    pixels = np.stack([np.minimum(x1, x2), np.minimum(y1, y2)], axis=1)

    def full_bands(bands, across_is_x: bool):
        zero = np.zeros(len(bands), dtype=np.int64)
        ends = bands[:, 0] + bands[:, 1] - 1
        if across_is_x:
            a1 = _rotflip_points(bands[:, 0], zero, value, sx, sy)
            a2 = _rotflip_points(ends, zero, value, sx, sy)
        else:
            a1 = _rotflip_points(zero, bands[:, 0], value, sx, sy)
            a2 = _rotflip_points(zero, ends, value, sx, sy)
        # Which coordinate is "across" the band after the operation.
        axis = 0 if across_is_x != transposes else 1
        return np.stack([np.minimum(a1[axis], a2[axis]), bands[:, 1]], axis=1)

    def partial_bands(bands, across_is_x: bool):
        ends = bands[:, 0] + bands[:, 1] - 1
        if across_is_x:
            p1 = _rotflip_points(bands[:, 0], bands[:, 2], value, sx, sy)
            p2 = _rotflip_points(ends, bands[:, 3], value, sx, sy)
        else:
            p1 = _rotflip_points(bands[:, 2], bands[:, 0], value, sx, sy)
            p2 = _rotflip_points(bands[:, 3], ends, value, sx, sy)
        across = 0 if across_is_x != transposes else 1
        along = 1 - across
        return np.stack(
            [
                np.minimum(p1[across], p2[across]),
                bands[:, 1],
                np.minimum(p1[along], p2[along]),
                np.maximum(p1[along], p2[along]),
            ],
            axis=1,
        ).reshape(-1, 4)

    new_from_columns = full_bands(g.column_bands, True)
    new_from_rows = full_bands(g.row_bands, False)
    new_from_partial_columns = partial_bands(g.partial_columns, True)
    new_from_partial_rows = partial_bands(g.partial_rows, False)
    if transposes:
        column_bands, row_bands = new_from_rows, new_from_columns
        partial_columns, partial_rows = new_from_partial_rows, new_from_partial_columns
    else:
        column_bands, row_bands = new_from_columns, new_from_rows
        partial_columns, partial_rows = new_from_partial_columns, new_from_partial_rows

    # The good area as a rectangle, an unset limit being the camera edge.
    a = g.good_area
    last_column = a.last_column if a.last_column else sx - 1
    last_row = a.last_row if a.last_row else sy - 1
    cx, cy = _rotflip_points([a.first_column, last_column], [a.first_row, last_row], value, sx, sy)
    good = GoodArea(
        first_row=max(0, int(cy.min())),
        first_column=max(0, int(cx.min())),
        last_row=int(cy.max()),
        last_column=int(cx.max()),
    )
    new_sx, new_sy = (sy, sx) if transposes else (sx, sy)
    return replace(
        g,
        camera_size_x=new_sx,
        camera_size_y=new_sy,
        good_area=good,
        column_bands=column_bands.reshape(-1, 2),
        row_bands=row_bands.reshape(-1, 2),
        partial_columns=partial_columns,
        partial_rows=partial_rows,
        bad_pixels=pixels.reshape(-1, 2),
    )


def file_rows_to_array_rows(g: DefectGeometry) -> DefectGeometry:
    """Convert rows counted from the top (SerialEM) to dedkit's rows (row 0 at the bottom).

    This is IMOD's CorDefFlipDefectsInY and the only place in dedkit where defect
    coordinates change direction: row ``y`` becomes ``CameraSizeY - 1 - y``; a band of
    rows keeps its extent; a 2x2 super-resolution block, named by its lower corner,
    becomes ``CameraSizeY - 2 - y``.
    """
    if g.y_up:
        raise DedkitError("defect rows are already counted from the bottom")
    last = g.camera_size_y - 1
    block_last = g.camera_size_y - 2 if g.was_scaled > 0 else last
    a = g.good_area
    good = GoodArea(
        first_row=last - a.last_row if a.last_row else 0,
        first_column=a.first_column,
        last_row=last - a.first_row if a.first_row else 0,
        last_column=a.last_column,
    )
    row_bands = g.row_bands.copy()
    row_bands[:, 0] = last - (row_bands[:, 0] + row_bands[:, 1] - 1)
    partial_rows = g.partial_rows.copy()
    partial_rows[:, 0] = last - (partial_rows[:, 0] + partial_rows[:, 1] - 1)
    partial_columns = g.partial_columns.copy()
    partial_columns[:, 2] = last - g.partial_columns[:, 3]
    partial_columns[:, 3] = last - g.partial_columns[:, 2]
    pixels = g.bad_pixels.copy()
    pixels[:, 1] = block_last - pixels[:, 1]
    return replace(
        g,
        y_up=True,
        good_area=good,
        row_bands=row_bands,
        partial_rows=partial_rows,
        partial_columns=partial_columns,
        bad_pixels=pixels,
    )


def _scale_geometry(g: DefectGeometry, up: bool) -> DefectGeometry:
    """IMOD's CorDefScaleDefectsForK2: x2 to super-resolution, or /2 back down."""
    factor_up, factor_down, extend = (2, 1, 1) if up else (1, 2, 0)

    def scale(values):
        return values * factor_up // factor_down

    def scale_bands(bands):
        out = bands.copy()
        out[:, 0] = scale(bands[:, 0])
        out[:, 1] = np.maximum(1, scale(bands[:, 1]))
        if bands.shape[1] == 4:
            out[:, 2] = scale(bands[:, 2])
            out[:, 3] = scale(bands[:, 3]) + extend
        return out

    a = g.good_area
    good = GoodArea(
        first_row=scale(a.first_row),
        first_column=scale(a.first_column),
        last_row=scale(a.last_row) + extend if a.last_row else 0,
        last_column=scale(a.last_column) + extend if a.last_column else 0,
    )
    return replace(
        g,
        camera_size_x=scale(g.camera_size_x),
        camera_size_y=scale(g.camera_size_y),
        was_scaled=1 if up else -1,
        good_area=good,
        column_bands=scale_bands(g.column_bands),
        row_bands=scale_bands(g.row_bands),
        partial_columns=scale_bands(g.partial_columns),
        partial_rows=scale_bands(g.partial_rows),
        bad_pixels=scale(g.bad_pixels),
    )


def _pixels_touching_defects(g: DefectGeometry) -> np.ndarray:
    """IMOD's CorDefFindTouchingPixels: bad pixels to be filled with the image mean."""
    step = 2 if g.was_scaled > 0 else 1  # neighbouring blocks are 2 apart
    x = g.bad_pixels[:, 0]
    y = g.bad_pixels[:, 1]
    a = g.good_area
    sx, sy = g.camera_size_x, g.camera_size_y
    touching = np.zeros(len(x), dtype=bool)
    if a.first_column > 0:
        touching |= x <= a.first_column
    if 0 < a.last_column < sx - 1:
        touching |= x >= a.last_column
    if a.first_row > 0:
        touching |= y <= a.first_row
    if 0 < a.last_row < sy - 1:
        touching |= y >= a.last_row

    def near(coord, starts, widths):
        c = coord[:, None]
        return (c >= starts - step) & (c <= starts + widths)

    touching |= near(x, g.column_bands[:, 0], g.column_bands[:, 1]).any(axis=1)
    touching |= near(y, g.row_bands[:, 0], g.row_bands[:, 1]).any(axis=1)
    for across, along, bands in ((x, y, g.partial_columns), (y, x, g.partial_rows)):
        touching |= (
            near(across, bands[:, 0], bands[:, 1])
            & near(along, bands[:, 2], bands[:, 3] - bands[:, 2] + 1)
        ).any(axis=1)

    occupied = set(zip(x.tolist(), y.tolist(), strict=True))
    for i, (xi, yi) in enumerate(zip(x.tolist(), y.tolist(), strict=True)):
        if touching[i]:
            continue
        touching[i] = (
            (xi > 0 and (xi - step, yi) in occupied)
            or (xi < sx - 1 and (xi + step, yi) in occupied)
            or (yi > 0 and (xi, yi - step) in occupied)
            or (yi < sy - 1 and (xi, yi + step) in occupied)
        )
    return touching


def _oriented_geometry(defects: DefectList, rotflip: int | None) -> DefectGeometry:
    """Bands and points in the frames' orientation, still rows from the top."""
    g = DefectGeometry.from_defect_list(defects)
    if rotflip is None:
        return g
    target = check_rotflip(rotflip)
    own = check_rotflip(defects.rotation_and_flip)
    if target != own:
        # IMOD handles own == 0 or target == 0; undoing then applying covers any pair.
        g = _rotflip_geometry(g, inverse_rotflip(own))
        g = _rotflip_geometry(g, target)
    return g


def prepare_defects(
    defects: DefectList,
    frame_shape: tuple[int, int],
    *,
    rotflip: int | None = None,
    binning: int | None = None,
) -> PreparedDefects:
    """Make a defect list ready to correct frames of one shape, as IMOD does.

    Parameters
    ----------
    defects : DefectList
        As read from the file.
    frame_shape : (ny, nx)
        Shape of the frames (dedkit arrays, row 0 at the bottom).
    rotflip : int, optional
        r/f value (0-7) the frames were saved with (the ``r/f N`` of the frame title; 0 for
        ``r/f 0 need N``). None: the frames are in the list's orientation (IMOD's default).
    binning : int, optional
        Camera pixels of the (possibly scaled) list per frame pixel. None: the largest b
        with ``nx * b <= CameraSizeX`` and ``ny * b <= CameraSizeY``.

    Returns
    -------
    PreparedDefects

    Raises
    ------
    DedkitError
        If the frames are more than twice the list's camera size, larger than a list
        that is already at super-resolution, or do not fit the camera at ``binning``.
    """
    ny, nx = (int(n) for n in frame_shape)
    g = file_rows_to_array_rows(_oriented_geometry(defects, rotflip))
    uses_mean = _pixels_touching_defects(g)

    sx, sy = g.camera_size_x, g.camera_size_y
    if nx > 2 * sx or ny > 2 * sy:
        raise DedkitError(
            f"frames ({nx} x {ny}) are more than twice the defect list's camera size ({sx} x {sy})"
        )
    if nx > sx or ny > sy:
        if g.was_scaled > 0:
            raise DedkitError(
                f"frames ({nx} x {ny}) are larger than the super-resolution defect list "
                f"({sx} x {sy})"
            )
        g = _scale_geometry(g, up=True)
        sx, sy = g.camera_size_x, g.camera_size_y

    if binning is None:
        # the largest b with nx * b <= sx and ny * b <= sy (at least 1: checked above)
        binning = max(1, min(sx // nx, sy // ny))
    elif int(binning) != binning or binning < 1 or nx * binning > sx or ny * binning > sy:
        raise DedkitError(
            f"binning {binning} does not fit frames of {nx} x {ny} on a {sx} x {sy} camera"
        )
    binning = int(binning)
    return PreparedDefects(
        geometry=g,
        pixel_uses_mean=uses_mean,
        frame_shape=(ny, nx),
        binning=binning,
        offset_x=(sx // binning - nx) // 2,
        offset_y=(sy // binning - ny) // 2,
    )


# --------------------------------------------------------------------------------------
# Correction plan and kernels
# --------------------------------------------------------------------------------------


def _mean_sample_positions(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns IMOD's sampleMinMaxMeanSD reads for the image mean."""
    n_pixels = nx * ny
    sample = np.float32(min(1.0, MEAN_SAMPLE_PIXELS / n_pixels))
    n_sample = int(np.float64(sample) * n_pixels)
    if nx < 2 or ny < 2 or n_sample < 5 or n_sample >= n_pixels:
        # IMOD gives no mean for a tiny image; every pixel is the natural sample.
        dx = dy = 1
    else:
        dy = int(np.floor(1.0 / np.float64(np.float32(np.sqrt(np.float64(sample)))) + 0.5))
        dy = min(max(dy, 1), ny // 4)
        per_row = np.float32(max(1.0, np.float32(n_sample) / np.float32(ny // dy)))
        dx = int(np.floor(np.float32(nx) / per_row + 0.5))
        dx = min(max(dx, 1), nx // 4)
    rows, cols = [], []
    for j in range(0, ny, dy):
        # Starting each row at a different column keeps the sample off single columns.
        c = np.arange((j % 17) % dx, nx, dx)
        rows.append(np.full(len(c), j))
        cols.append(c)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def _band_plan(bands, binning, offset_across, offset_along, n_across, n_along, partial):
    """Frame coordinates ``start, num, first, last`` of bands, as CorDefCorrectDefects."""
    plan = []
    for band in bands.tolist():
        start = band[0] // binning
        num = (band[0] + band[1] - 1) // binning + 1 - start
        start -= offset_across
        first, last = 0, n_along - 1
        if partial:
            first = band[2] // binning - offset_along
            last = band[3] // binning - offset_along
            if first >= n_along or last < 0 or first > last:
                continue
            first, last = max(0, first), min(n_along - 1, last)
        if start < 0:
            num += start
            start = 0
        num = min(num, n_across - start)
        # A band covering the whole frame has no good neighbours to fill it from.
        if num <= 0 or num >= n_across:
            continue
        plan.append((start, num, first, last))
    return np.array(plan, dtype=np.int64).reshape(-1, 4)


class DefectCorrector:
    """Corrects frames of one shape with one defect list; build once, apply per frame.

    Parameters
    ----------
    prepared : PreparedDefects
        From :func:`prepare_defects`.

    Notes
    -----
    The pseudo-random generators used for integer rounding and for sampling beside wide
    bad columns start from IMOD's seeds and continue from frame to frame, as in IMOD, so
    the first frame corrected equals IMOD's first frame. Use one corrector per thread.
    """

    def __init__(self, prepared: PreparedDefects):
        g = prepared.geometry
        if not g.y_up:
            raise DedkitError("prepared defects must be in dedkit's rows (Y up)")
        self.prepared = prepared
        ny, nx = prepared.frame_shape
        b, ox, oy = prepared.binning, prepared.offset_x, prepared.offset_y
        self.frame_shape = (ny, nx)

        x = g.bad_pixels[:, 0] // b - ox
        y = g.bad_pixels[:, 1] // b - oy
        inside = (x >= 0) & (y >= 0) & (x < nx) & (y < ny)
        uses_mean = prepared.pixel_uses_mean
        self._mean_x, self._mean_y = x[inside & uses_mean], y[inside & uses_mean]
        self._near_x, self._near_y = x[inside & ~uses_mean], y[inside & ~uses_mean]
        # A binned super-resolution block is a single frame pixel.
        self._blocks = bool(g.was_scaled > 0 and b == 1)
        self._sample_rows, self._sample_cols = _mean_sample_positions(ny, nx)

        a = g.good_area
        low_rows = (a.first_row - 1) // b + 1 - oy if a.first_row > 0 else 0
        high_rows = ny - ((a.last_row + 1) // b - oy) if a.last_row > 0 else 0
        low_cols = (a.first_column - 1) // b + 1 - ox if a.first_column > 0 else 0
        high_cols = nx - ((a.last_column + 1) // b - ox) if a.last_column > 0 else 0
        # Lines to fill at each edge, never so many that no good line is left to copy.
        self._edges = np.array(
            [
                low_rows if 0 < low_rows < ny else 0,
                high_rows if 0 < high_rows < ny else 0,
                low_cols if 0 < low_cols < nx else 0,
                high_cols if 0 < high_cols < nx else 0,
            ],
            dtype=np.int64,
        )
        self._columns = np.concatenate(
            [
                _band_plan(g.column_bands, b, ox, oy, nx, ny, partial=False),
                _band_plan(g.partial_columns, b, ox, oy, nx, ny, partial=True),
            ]
        )
        self._rows = np.concatenate(
            [
                _band_plan(g.row_bands, b, oy, ox, ny, nx, partial=False),
                _band_plan(g.partial_rows, b, oy, ox, ny, nx, partial=True),
            ]
        )
        self.reset_random_state()

    @classmethod
    def from_defects(
        cls,
        defects: DefectList,
        frame_shape: tuple[int, int],
        *,
        rotflip: int | None = None,
        binning: int | None = None,
    ) -> DefectCorrector:
        """Prepare ``defects`` for frames of ``frame_shape`` (see :func:`prepare_defects`)."""
        return cls(prepare_defects(defects, frame_shape, rotflip=rotflip, binning=binning))

    def reset_random_state(self) -> None:
        """Restart IMOD's generators from their seeds (as for a new IMOD run)."""
        self._random_state = np.array([_SEED_INT_SUM, _SEED_FLOAT, _SEED_COLUMN], np.int64)

    def apply(self, frames: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """Correct one frame ``(ny, nx)`` or a stack ``(nz, ny, nx)``, frames in order.

        Parameters
        ----------
        frames : ndarray
            Integer or float frames, row 0 at the bottom.
        out : ndarray, optional
            Where to put the result (same shape and dtype); may be ``frames`` itself to
            correct in place. None: a corrected copy is returned.

        Returns
        -------
        ndarray
            The corrected frames, in the input dtype.
        """
        frames = np.asarray(frames)
        if frames.ndim not in (2, 3) or frames.shape[-2:] != self.frame_shape:
            raise DedkitError(
                f"frames of shape {frames.shape} do not match the defect correction "
                f"prepared for {self.frame_shape[1]} x {self.frame_shape[0]}"
            )
        if frames.dtype.kind not in "iuf":
            raise DedkitError(f"cannot correct defects in {frames.dtype} data")
        if out is None:
            out = frames.copy()
        elif out.shape != frames.shape or out.dtype != frames.dtype:
            raise DedkitError("out must have the same shape and dtype as the frames")
        elif not np.shares_memory(out, frames):
            np.copyto(out, frames)
        elif not _same_array_memory(out, frames):
            raise DedkitError("out overlaps the frames without being the same array")
        stack = out if out.ndim == 3 else out[np.newaxis]
        integer = out.dtype.kind in "iu"
        for frame in stack:
            _correct_frame(
                frame,
                integer,
                self._sample_rows,
                self._sample_cols,
                self._mean_x,
                self._mean_y,
                self._near_x,
                self._near_y,
                self._blocks,
                self._edges,
                self._columns,
                self._rows,
                self._random_state,
            )
        return out


def _same_array_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` view the same elements in the same order (in place)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
    )


def correct_defects(
    frames: np.ndarray,
    defects: DefectList | PreparedDefects,
    *,
    out: np.ndarray | None = None,
    rotflip: int | None = None,
    binning: int | None = None,
) -> np.ndarray:
    """Correct camera defects in a frame or stack as IMOD does.

    For many frames of one stack, build a :class:`DefectCorrector` once and call its
    ``apply``; this function prepares the list anew on every call.

    Parameters
    ----------
    frames : ndarray, (ny, nx) or (nz, ny, nx)
        Row 0 at the bottom; integer or float.
    defects : DefectList or PreparedDefects
    out : ndarray, optional
        See :meth:`DefectCorrector.apply`.
    rotflip, binning : int, optional
        See :func:`prepare_defects` (only for a DefectList).

    Returns
    -------
    ndarray
        Corrected frames in the input dtype.
    """
    frames = np.asarray(frames)
    if isinstance(defects, PreparedDefects):
        if rotflip is not None or binning is not None:
            raise DedkitError("rotflip and binning apply only to an unprepared defect list")
        prepared = defects
    else:
        prepared = prepare_defects(defects, frames.shape[-2:], rotflip=rotflip, binning=binning)
    return DefectCorrector(prepared).apply(frames, out=out)


# --------------------------------------------------------------------------------------
# Numba kernels. Arrays are indexed [row, column]; a band of rows is handled as a band
# of columns of the transposed view, and so is an edge of columns.
# --------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _next_random(state, generator):
    state[generator] = (197 * (state[generator] + 1)) & 0xFFFFF
    return state[generator]


@numba.njit(cache=True, nogil=True)
def _round_sum(state, total, count):
    """IMOD's RandomIntFillFromIntSum: total / count rounded up or down at random."""
    chance = (_next_random(state, _GEN_INT_SUM) >> 2) % count
    quotient = abs(total) // count
    if total < 0:
        quotient = -quotient
    if total - quotient * count > chance:
        quotient += 1
    return quotient


@numba.njit(cache=True, nogil=True)
def _round_float(state, value):
    """IMOD's RandomIntFillFromFloat: up with probability of the fraction (toward 0)."""
    pseudo = _next_random(state, _GEN_FLOAT)
    result = int(value)
    if (value - result) * 262143.0 > (pseudo & 0x3FFFF):
        result += 1
    return result


@numba.njit(cache=True, nogil=True)
def _store(image, row, col, value, integer, state):
    if integer:
        image[row, col] = _round_float(state, value)
    else:
        image[row, col] = value


@numba.njit(cache=True, nogil=True)
def _fill_with_mean(image, xs, ys, blocks, mean, integer, state):
    ny, nx = image.shape
    size = 2 if blocks else 1
    for k in range(len(xs)):
        value = _round_float(state, mean) if integer else mean
        for dy in range(size):
            for dx in range(size):
                if ys[k] + dy < ny and xs[k] + dx < nx:
                    image[ys[k] + dy, xs[k] + dx] = value


@numba.njit(cache=True, nogil=True)
def _fill_from_neighbours(image, xs, ys, blocks, integer, state):
    ny, nx = image.shape
    if blocks:
        # Two pixels deep on each side of the 2x2 block.
        off_x = np.array([-2, -1, 2, 3, -2, -1, 2, 3, 0, 1, 0, 1, 0, 1, 0, 1])
        off_y = np.array([0, 0, 0, 0, 1, 1, 1, 1, -2, -2, -1, -1, 2, 2, 3, 3])
        size = 2
    else:
        off_x = np.array([-1, 1, 0, 0])
        off_y = np.array([0, 0, -1, 1])
        size = 1
    for k in range(len(xs)):
        x, y = xs[k], ys[k]
        total = 0.0
        count = 0
        for i in range(len(off_x)):
            xi, yi = x + off_x[i], y + off_y[i]
            if 0 <= xi < nx and 0 <= yi < ny:
                total += image[yi, xi]
                count += 1
        if count == 0:
            continue
        value = _round_sum(state, int(total), count) if integer else total / count
        for dy in range(size):
            for dx in range(size):
                if y + dy < ny and x + dx < nx:
                    image[y + dy, x + dx] = value


@numba.njit(cache=True, nogil=True)
def _fill_edge(lines, good, step, n_bad, integer, state):
    """Fill ``n_bad`` lines beyond line ``good`` (direction ``step``), IMOD's CorrectEdge.

    Each filled value is ``frac * good_value + (1 - frac) * running_mean`` where the
    running mean is over up to 50 pixels of the good line and ``frac`` falls from 4/5
    to 0 over the first EDGE_TAPER_LINES lines.
    """
    length = lines.shape[1]
    window = min(50, (length + 9) // 10, length)
    add_start = window // 2
    add_end = length - (window - window // 2)
    for r in range(n_bad):
        total = 0.0
        for i in range(window):
            total += lines[good, i]
        drop, add = 0, window
        frac = max(0.0, (EDGE_TAPER_LINES - r - 1.0) / EDGE_TAPER_LINES)
        mean_weight = (1.0 - frac) / window
        dest = good + (r + 1) * step
        for i in range(length):
            if add_start <= i < add_end:
                total += lines[good, add] - lines[good, drop]
                add += 1
                drop += 1
            _store(lines, dest, i, frac * lines[good, i] + mean_weight * total, integer, state)


@numba.njit(cache=True, nogil=True)
def _fill_band(a, start, num, first, last, integer, state):
    """Fill columns ``start..start+num-1`` of ``a`` over rows ``first..last``.

    IMOD's CorrectColumn: a linear blend of the good columns on each side, weight
    (i+1)/(num+1) for the right side; with 3 or more columns, 2- or 3-row averages of
    them, or, for bands of 16 or more rows at least 15 columns from the frame edge,
    pixels copied from random places up to 15 columns away and 7 rows up or down.
    """
    n_along, n_across = a.shape
    left = start - 1
    right = start + num
    if left < 0:
        left = right
    if right >= n_across:
        right = left
    sample_far = num >= 3 and last - first >= 15 and left > 14 and right < n_across - 15
    for col in range(num):
        f_right = (col + 1.0) / (num + 1.0)
        f_left = 1.0 - f_right
        x = start + col
        if sample_far:
            full_start = max(first, 7)
            full_end = min(last, n_along - 8)
            for r in range(first, full_start):
                value = (
                    f_left * (a[r, left] + a[r + 1, left] + a[r, left - 1] + a[r + 1, left - 1])
                    + f_right
                    * (a[r, right] + a[r + 1, right] + a[r, right + 1] + a[r + 1, right + 1])
                ) / 4.0
                # IMOD truncates here rather than rounding at random.
                a[r, x] = int(value) if integer else value
            for r in range(full_start, full_end + 1):
                pseudo = _next_random(state, _GEN_COLUMN)
                dy = (pseudo >> 2) % 15 - 7
                dx = (pseudo >> 6) & 15
                if pseudo & 2048:
                    a[r, x] = a[r + dy, left - dx]
                else:
                    a[r, x] = a[r + dy, right + dx]
            for r in range(full_end + 1, last + 1):
                value = (
                    f_left * (a[r - 1, left] + a[r, left] + a[r - 1, left - 1] + a[r, left - 1])
                    + f_right
                    * (a[r - 1, right] + a[r, right] + a[r - 1, right + 1] + a[r, right + 1])
                ) / 4.0
                a[r, x] = int(value) if integer else value
        elif num >= 3 and last > first:
            for r in range(first, last + 1):
                lo = max(r - 1, 0)
                hi = min(r + 1, n_along - 1)
                side_left = 0.0
                side_right = 0.0
                for s in range(lo, hi + 1):
                    side_left += a[s, left]
                    side_right += a[s, right]
                value = (f_left * side_left + f_right * side_right) / (hi - lo + 1)
                _store(a, r, x, value, integer, state)
        else:
            for r in range(first, last + 1):
                _store(a, r, x, f_left * a[r, left] + f_right * a[r, right], integer, state)


@numba.njit(cache=True, nogil=True)
def _correct_frame(
    image,
    integer,
    sample_rows,
    sample_cols,
    mean_x,
    mean_y,
    near_x,
    near_y,
    blocks,
    edges,
    columns,
    rows,
    state,
):
    ny, nx = image.shape
    if len(mean_x):
        total = 0.0
        for k in range(len(sample_rows)):
            total += image[sample_rows[k], sample_cols[k]]
        mean = np.float32(total / len(sample_rows))
        _fill_with_mean(image, mean_x, mean_y, blocks, mean, integer, state)

    columns_view = image.T
    # the steps as plain int64, not numba literals: each literal would be one more
    # compilation of _fill_edge on a first run (issue 13 item 17)
    down, up = np.int64(-1), np.int64(1)
    if edges[0]:
        _fill_edge(image, edges[0], down, edges[0], integer, state)
    if edges[1]:
        _fill_edge(image, ny - edges[1] - 1, up, edges[1], integer, state)
    if edges[2]:
        _fill_edge(columns_view, edges[2], down, edges[2], integer, state)
    if edges[3]:
        _fill_edge(columns_view, nx - edges[3] - 1, up, edges[3], integer, state)

    for k in range(columns.shape[0]):
        _fill_band(
            image, columns[k, 0], columns[k, 1], columns[k, 2], columns[k, 3], integer, state
        )
    for k in range(rows.shape[0]):
        _fill_band(columns_view, rows[k, 0], rows[k, 1], rows[k, 2], rows[k, 3], integer, state)

    _fill_from_neighbours(image, near_x, near_y, blocks, integer, state)


# --------------------------------------------------------------------------------------
# Defect map (clip defectmap)
# --------------------------------------------------------------------------------------


def _c_half(value: int) -> int:
    """value / 2 rounded toward zero, as C does."""
    return -((-value) // 2) if value < 0 else value // 2


def defect_map(
    defects: DefectList, shape: tuple[int, int], *, rotflip: int | None = None
) -> np.ndarray:
    """Map of defective pixels as ``clip defectmap`` makes it: 1 = defect, 0 elsewhere.

    Pixels outside the usable area count as defects. A K2/K3 list is scaled up or down
    by 2 when the image is within 10 pixels of twice or half its camera size; the image
    must then be within 10 pixels of the camera size and is taken to be centred on it
    (lines reach to the image edges when it is larger).

    Parameters
    ----------
    defects : DefectList
    shape : (ny, nx)
        Image shape.
    rotflip : int, optional
        r/f value of the images, when it differs from the list's RotationAndFlip.

    Returns
    -------
    ndarray of uint8, (ny, nx), row 0 at the bottom
    """
    ny, nx = (int(n) for n in shape)
    g = file_rows_to_array_rows(_oriented_geometry(defects, rotflip))
    sx, sy = g.camera_size_x, g.camera_size_y
    if defects.k2_type > 0:
        if (
            g.was_scaled > 0
            and abs(sx // 2 - nx) < MAP_SIZE_TOLERANCE
            and abs(sy // 2 - ny) < MAP_SIZE_TOLERANCE
        ):
            g = _scale_geometry(g, up=False)
        elif (
            g.was_scaled <= 0
            and abs(sx * 2 - nx) < MAP_SIZE_TOLERANCE
            and abs(sy * 2 - ny) < MAP_SIZE_TOLERANCE
        ):
            g = _scale_geometry(g, up=True)
    sx, sy = g.camera_size_x, g.camera_size_y
    if abs(sx - nx) >= MAP_SIZE_TOLERANCE or abs(sy - ny) >= MAP_SIZE_TOLERANCE:
        raise DedkitError(
            f"image size {nx} x {ny} is not within {MAP_SIZE_TOLERANCE} pixels of the "
            f"defect list's camera size {sx} x {sy} (after scaling by 2 for K2/K3)"
        )

    off_x, off_y = _c_half(nx - sx), _c_half(ny - sy)
    # Camera coordinates covered by the image, beyond the camera when it is oversized.
    x_low, x_high = (-off_x, nx - off_x) if off_x > 0 else (0, sx)
    y_low, y_high = (-off_y, ny - off_y) if off_y > 0 else (0, sy)
    out = np.zeros((ny, nx), dtype=np.uint8)

    def mark(x0, x1, y0, y1):
        """Mark camera columns x0..x1-1 and rows y0..y1-1."""
        c0, c1 = max(0, x0 + off_x), min(nx, x1 + off_x)
        r0, r1 = max(0, y0 + off_y), min(ny, y1 + off_y)
        if c0 < c1 and r0 < r1:
            out[r0:r1, c0:c1] = 1

    block = 2 if g.was_scaled > 0 else 1
    for x, y in g.bad_pixels.tolist():
        mark(x, x + block, y, y + block)
    for start, width in g.column_bands.tolist():
        mark(start, start + width, y_low, y_high)
    for start, width in g.row_bands.tolist():
        mark(x_low, x_high, start, start + width)
    for start, width, first, last in g.partial_columns.tolist():
        mark(start, start + width, first, last + 1)
    for start, width, first, last in g.partial_rows.tolist():
        mark(first, last + 1, start, start + width)
    a = g.good_area
    if a.first_column > 0:
        mark(x_low, a.first_column, y_low, y_high)
    if a.last_column > 0:
        mark(a.last_column + 1, x_high, y_low, y_high)
    if a.first_row > 0:
        mark(x_low, x_high, y_low, a.first_row)
    if a.last_row > 0:
        mark(x_low, x_high, a.last_row + 1, y_high)
    return out
