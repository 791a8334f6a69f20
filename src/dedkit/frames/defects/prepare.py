"""Preparation of a defect list for frames of one shape, as IMOD does it.

:func:`prepare_defects` turns a :class:`~dedkit.records.defects.DefectList` (coordinates
as in the file) into :class:`PreparedDefects`: bands and points
(:class:`DefectGeometry`) rotated/flipped to the frames' orientation, flipped to dedkit's
rows (row 0 at the bottom, :func:`file_rows_to_array_rows`), the bad pixels that touch
other defects marked, scaled to super-resolution when the frames need it, with the
binning and offset of the frames on the camera (steps 1-5 of :mod:`dedkit.frames.defects`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.rotflip import check_rotflip, inverse_rotflip
from dedkit.records.defects import DefectList

__all__ = [
    "DefectGeometry",
    "GoodArea",
    "PreparedDefects",
    "file_rows_to_array_rows",
    "prepare_defects",
]


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
