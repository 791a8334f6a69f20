"""A SerialEM camera defect list as a record: what a "defects...txt" file says.

:class:`DefectList` holds every entry of the file, coordinates exactly as written there
(unbinned, 0-based, y = 0 at the TOP, in the orientation named by RotationAndFlip).
:mod:`dedkit.io.defects` reads and writes it; :mod:`dedkit.frames.defects` turns it into
corrections of dedkit's Y-up frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["DefectList", "PartialBadLine", "UsableArea"]


class UsableArea(NamedTuple):
    """Limits of the good area, inclusive, y = 0 at the top; 0 means "no limit".

    ``top`` and ``left`` are the first good row and column, ``bottom`` and ``right`` the
    last good ones.
    """

    top: int = 0
    left: int = 0
    bottom: int = 0
    right: int = 0


class PartialBadLine(NamedTuple):
    """A band of bad columns (or rows) over part of the image.

    For a PartialBadColumn: ``start`` is the first bad column, ``width`` the number of
    columns, ``first`` and ``last`` the rows (inclusive) it covers; for a PartialBadRow
    the roles of rows and columns swap.
    """

    start: int
    width: int
    first: int
    last: int


@dataclass
class DefectList:
    """Everything in a SerialEM defect list, coordinates as in the file.

    Attributes
    ----------
    camera_size_x, camera_size_y : int
        Camera size the coordinates refer to (CameraSizeX/Y), in the list's orientation.
    rotation_and_flip : int
        r/f value (0-7) of the orientation the coordinates are in.
    was_scaled : int
        1 when the list was scaled up to super-resolution (each bad pixel is the corner
        of a 2x2 block), 2 for a 4x4 block, -1 when scaled down, 0 otherwise.
    k2_type, falcon_type : int
        Camera family flags.
    num_to_avg_super_res : int
        Columns beside a Falcon bad column whose super-resolution pairs are averaged.
    usable_area : UsableArea
        Limits of the good area (0 = no limit).
    partial_bad_columns, partial_bad_rows : list of PartialBadLine
    bad_pixels : list of (x, y)
    bad_columns, bad_rows : list of int
        One index per bad column (row), in file order.
    comments : list of str
        Comment lines (with their ``#``), in file order.
    unknown_lines : list of str
        Lines with keywords this module does not know, in file order.
    ignored : list of str
        Entries of the file left out because they do not fit in the camera, each as
        "line N: what" (see :mod:`dedkit.io.defects`); not written back by
        :func:`dedkit.io.defects.format_defects`.
    """

    camera_size_x: int
    camera_size_y: int
    rotation_and_flip: int = 0
    was_scaled: int = 0
    k2_type: int = 0
    falcon_type: int = 0
    num_to_avg_super_res: int = 0
    usable_area: UsableArea = field(default_factory=UsableArea)
    partial_bad_columns: list[PartialBadLine] = field(default_factory=list)
    partial_bad_rows: list[PartialBadLine] = field(default_factory=list)
    bad_pixels: list[tuple[int, int]] = field(default_factory=list)
    bad_columns: list[int] = field(default_factory=list)
    bad_rows: list[int] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    unknown_lines: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
