"""The defect map of ``clip defectmap``: 1 where a pixel is defective, 0 elsewhere."""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.defects.prepare import (
    _oriented_geometry,
    _scale_geometry,
    file_rows_to_array_rows,
)
from dedkit.records.defects import DefectList

__all__ = ["defect_map"]

# clip defectmap accepts an image within this many pixels of the list's camera size.
MAP_SIZE_TOLERANCE = 10


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
