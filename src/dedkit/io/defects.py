"""SerialEM camera defect lists ("defects...txt"): read, write, round trip.

SerialEMCCD writes a defect list beside frames saved without defect correction; IMOD's
``clip`` and ``alignframes`` correct frames with it. The file has one keyword per line; a
line starting with ``#`` is a comment and the keyword ends at the first blank or tab::

    CameraSizeX 5760
    CameraSizeY 4092
    RotationAndFlip 0
    WasScaled 0
    K2Type 1
    FalconType 0
    NumToAvgSuperRes 0
    UsableArea top left bottom right
    PartialBadColumn column width startY endY
    PartialBadRow row height startX endX
    BadPixels x y x y ...            (up to 10 pairs a line)
    BadColumns c c ...               (up to 20 a line)
    BadRows r r ...                  (up to 20 a line)

Coordinates are kept here exactly as in the file: unbinned, 0-based, y = 0 at the TOP,
in the orientation named by RotationAndFlip. Converting them to dedkit's Y-up arrays is
the job of :mod:`dedkit.frames.defects`. Comments and unknown keywords are kept so that
reading and writing a file loses nothing; they are written after the known entries.

Values are read as IMOD reads them, into 32-bit integers: a number beyond that range is
an error. An entry that does not fit in the camera (CameraSizeX x CameraSizeY) -- a bad
pixel, column or row beyond it, a partial band reaching past its edge, a UsableArea that
is empty or outside it -- is ignored with a :class:`DefectListWarning` naming the file,
the line and the entry, and listed in :attr:`DefectList.ignored`; such entries cannot
describe a defect of that camera, and IMOD too corrects a list without them.

The record read and written, :class:`~dedkit.records.defects.DefectList`, lives in
:mod:`dedkit.records` so that :mod:`dedkit.frames.defects` takes it without importing io.
"""

from __future__ import annotations

import os
import re
import warnings

from dedkit.errors import DedkitError
from dedkit.io.atomic import check_output_path, write_atomic
from dedkit.io.inputs import check_input_file
from dedkit.records.defects import DefectList, PartialBadLine, UsableArea

__all__ = [
    "DefectListWarning",
    "format_defects",
    "parse_defects",
    "read_defects",
    "write_defects",
]

#: IMOD reads every value into a C int.
INT32_MAX = 2**31 - 1

# SerialEM's own line layout (CorDefDefectsToString in CorrectDefects.cpp).
PIXEL_PAIRS_PER_LINE = 10
LINES_PER_LINE = 20

#: ignored entries named one by one in warnings; the rest are counted in one line
_WARNINGS_SHOWN = 5


class DefectListWarning(UserWarning):
    """An entry of a defect list was ignored (it does not fit in the camera)."""


# Keyword -> (attribute, whether the value may be negative).
_SCALAR_KEYWORDS = {
    "CameraSizeX": ("camera_size_x", False),
    "CameraSizeY": ("camera_size_y", False),
    "RotationAndFlip": ("rotation_and_flip", False),
    "WasScaled": ("was_scaled", True),
    "K2Type": ("k2_type", False),
    "FalconType": ("falcon_type", False),
    "NumToAvgSuperRes": ("num_to_avg_super_res", False),
}
_LINE_LIST_KEYWORDS = {"BadColumns": "bad_columns", "BadRows": "bad_rows"}
_KEYWORD_END = re.compile(r"[ \t]")


class _LineErrors:
    """Makes DedkitErrors that name the file and one line of it."""

    def __init__(self, path, line: int):
        self.path = path
        self.line = line

    def __call__(self, message: str) -> DedkitError:
        return DedkitError(message, path=self.path, line=self.line)


def read_defects(path) -> DefectList:
    """Read a SerialEM defect list file.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    DefectList

    Raises
    ------
    DedkitError
        If the file cannot be read or a line is malformed (with its line number).
    """
    if not os.path.lexists(path):
        raise DedkitError("defect list not found", path=path)
    check_input_file(path, "defect list")
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            text = f.read()
    except FileNotFoundError:
        raise DedkitError("defect list not found", path=path) from None
    except UnicodeDecodeError:
        raise DedkitError("defect list is not a text file", path=path) from None
    except OSError as exc:
        raise DedkitError(f"cannot read defect list: {exc.strerror}", path=path) from None
    return parse_defects(text, path=path)


def parse_defects(text: str, path=None) -> DefectList:
    """Parse the text of a SerialEM defect list.

    Parameters
    ----------
    text : str
        The whole file.
    path : path-like, optional
        Named in error messages.

    Returns
    -------
    DefectList

    Raises
    ------
    DedkitError
        For a known keyword with unexpected values (not integers, wrong count, negative
        coordinates, values beyond 32-bit integers, odd number of BadPixels values, r/f
        out of 0-7), a scalar keyword given twice, or a missing CameraSizeX/CameraSizeY.

    Warns
    -----
    DefectListWarning
        For each entry ignored because it does not fit in the camera (file, line, entry).
    """
    scalars: dict[str, int] = {}
    scalar_lines: dict[str, int] = {}
    usable: UsableArea | None = None
    usable_line = 0
    # every entry with the number of its line, for the camera-size check at the end
    partial_columns: list[tuple[PartialBadLine, int]] = []
    partial_rows: list[tuple[PartialBadLine, int]] = []
    pixels: list[tuple[tuple[int, int], int]] = []
    line_lists: dict[str, list[tuple[int, int]]] = {"bad_columns": [], "bad_rows": []}
    comments: list[str] = []
    unknown: list[str] = []

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        if line.startswith("#"):
            comments.append(line)
            continue
        # The keyword ends at the first blank or tab, as in IMOD's CorDefParseDefects.
        keyword, rest = (_KEYWORD_END.split(line, maxsplit=1) + [""])[:2]
        fail = _LineErrors(path, number)
        if keyword in _SCALAR_KEYWORDS:
            attribute, may_be_negative = _SCALAR_KEYWORDS[keyword]
            (value,) = _integers(rest, keyword, 1, fail, allow_negative=may_be_negative)
            if keyword in scalars:
                raise fail(f"{keyword} given twice (first on line {scalar_lines[keyword]})")
            if keyword == "RotationAndFlip" and value > 7:
                raise fail(f"RotationAndFlip {value} is not an r/f value 0-7")
            if keyword.startswith("CameraSize") and value == 0:
                raise fail(f"{keyword} must be positive")
            scalars[keyword] = value
            scalar_lines[keyword] = number
        elif keyword == "UsableArea":
            if usable is not None:
                raise fail(f"UsableArea given twice (first on line {usable_line})")
            usable = UsableArea(*_integers(rest, keyword, 4, fail))
            usable_line = number
        elif keyword in ("PartialBadColumn", "PartialBadRow"):
            band = PartialBadLine(*_integers(rest, keyword, 4, fail))
            if band.width < 1:
                raise fail(f"{keyword} width must be at least 1")
            if band.last < band.first:
                raise fail(f"{keyword} ends ({band.last}) before it starts ({band.first})")
            (partial_columns if keyword == "PartialBadColumn" else partial_rows).append(
                (band, number)
            )
        elif keyword == "BadPixels":
            values = _integers(rest, keyword, None, fail)
            if len(values) % 2:
                raise fail(f"BadPixels needs x y pairs; got {len(values)} values")
            pixels.extend((p, number) for p in zip(values[0::2], values[1::2], strict=True))
        elif keyword in _LINE_LIST_KEYWORDS:
            line_lists[_LINE_LIST_KEYWORDS[keyword]].extend(
                (v, number) for v in _integers(rest, keyword, None, fail)
            )
        else:
            unknown.append(line)

    for required in ("CameraSizeX", "CameraSizeY"):
        if required not in scalars:
            raise DedkitError(f"defect list has no {required} entry", path=path)
    kwargs = {_SCALAR_KEYWORDS[k][0]: v for k, v in scalars.items()}
    sx, sy = scalars["CameraSizeX"], scalars["CameraSizeY"]
    ignored: list[str] = []

    def keep(entries, keyword, fits, show):
        kept = []
        for entry, number in entries:
            if fits(entry):
                kept.append(entry)
            else:
                ignored.append(f"line {number}: {keyword} {show(entry)}")
        return kept

    def span(start, count, size):
        return 0 <= start and start + count <= size

    def show_all(entry):
        return " ".join(map(str, entry))

    bad_pixels = keep(pixels, "BadPixels", lambda p: p[0] < sx and p[1] < sy, show_all)
    bad_columns = keep(line_lists["bad_columns"], "BadColumns", lambda c: c < sx, str)
    bad_rows = keep(line_lists["bad_rows"], "BadRows", lambda r: r < sy, str)
    partial_columns = keep(
        partial_columns,
        "PartialBadColumn",
        lambda b: span(b.start, b.width, sx) and b.last < sy,
        show_all,
    )
    partial_rows = keep(
        partial_rows,
        "PartialBadRow",
        lambda b: span(b.start, b.width, sy) and b.last < sx,
        show_all,
    )
    usable_area = UsableArea()
    if usable is not None:
        kept = keep([(usable, usable_line)], "UsableArea", _usable_fits(sx, sy), show_all)
        usable_area = kept[0] if kept else UsableArea()
    where = path if path is not None else "defect list"
    # the first few by name, then one line with the count: a list written for another
    # camera should not bury the terminal under hundreds of lines
    for entry in ignored[:_WARNINGS_SHOWN]:
        warnings.warn(
            DefectListWarning(f"{where}: {entry} does not fit in the {sx} x {sy} camera; ignored"),
            stacklevel=2,
        )
    if len(ignored) > _WARNINGS_SHOWN:
        warnings.warn(
            DefectListWarning(
                f"{where}: {len(ignored) - _WARNINGS_SHOWN} more entries do not fit in the "
                f"{sx} x {sy} camera ({len(ignored)} ignored in all)"
            ),
            stacklevel=2,
        )
    return DefectList(
        **kwargs,
        usable_area=usable_area,
        partial_bad_columns=partial_columns,
        partial_bad_rows=partial_rows,
        bad_pixels=bad_pixels,
        bad_columns=bad_columns,
        bad_rows=bad_rows,
        comments=comments,
        unknown_lines=unknown,
        ignored=ignored,
    )


def _usable_fits(sx: int, sy: int):
    """Whether a UsableArea leaves a non-empty area inside the camera (0 = no limit)."""

    def fits(a: UsableArea) -> bool:
        last_row = a.bottom if a.bottom else sy - 1
        last_column = a.right if a.right else sx - 1
        return a.top <= last_row < sy and a.left <= last_column < sx

    return fits


def _integers(rest: str, keyword: str, count: int | None, fail, *, allow_negative=False):
    """The integer values after a keyword; ``count`` None means one or more."""
    words = rest.split()
    values = []
    for word in words:
        try:
            value = int(word)
        except ValueError:
            raise fail(f"{keyword}: {word!r} is not an integer") from None
        if abs(value) > INT32_MAX:
            raise fail(f"{keyword}: {word} is beyond the 32-bit integers IMOD reads")
        values.append(value)
    if count is None and not values:
        raise fail(f"{keyword} has no values")
    if count is not None and len(values) != count:
        raise fail(f"{keyword} needs {count} value{'s' * (count > 1)}; got {len(values)}")
    if not allow_negative and any(v < 0 for v in values):
        raise fail(f"{keyword}: negative value {min(values)}")
    return values


def format_defects(defects: DefectList) -> str:
    """The text of a defect list in SerialEM's layout.

    Comments come first, then the entries in the order SerialEM writes them (all scalar
    keywords, UsableArea, partial columns and rows, BadPixels with up to 10 pairs a line,
    BadColumns and BadRows with up to 20 values a line), then unknown keyword lines.
    """
    d = defects
    lines = list(d.comments)
    lines += [
        f"CameraSizeX {d.camera_size_x}",
        f"CameraSizeY {d.camera_size_y}",
        f"RotationAndFlip {d.rotation_and_flip}",
        f"WasScaled {d.was_scaled}",
        f"K2Type {d.k2_type}",
        f"FalconType {d.falcon_type}",
        f"NumToAvgSuperRes {d.num_to_avg_super_res}",
        "UsableArea {} {} {} {}".format(*d.usable_area),
    ]
    lines += ["PartialBadColumn {} {} {} {}".format(*b) for b in d.partial_bad_columns]
    lines += ["PartialBadRow {} {} {} {}".format(*b) for b in d.partial_bad_rows]
    for i in range(0, len(d.bad_pixels), PIXEL_PAIRS_PER_LINE):
        chunk = d.bad_pixels[i : i + PIXEL_PAIRS_PER_LINE]
        lines.append("BadPixels " + " ".join(f"{x} {y}" for x, y in chunk))
    for keyword, values in (("BadColumns", d.bad_columns), ("BadRows", d.bad_rows)):
        for i in range(0, len(values), LINES_PER_LINE):
            lines.append(keyword + " " + " ".join(str(v) for v in values[i : i + LINES_PER_LINE]))
    lines += d.unknown_lines
    return "\n".join(lines) + "\n"


def write_defects(defects: DefectList, path, force: bool = False) -> None:
    """Write a defect list atomically in SerialEM's layout.

    Parameters
    ----------
    defects : DefectList
    path : path-like
    force : bool
        Replace an existing file.
    """
    out = check_output_path(path, force=force)
    text = format_defects(defects)
    write_atomic(out, text, fsync=True)
