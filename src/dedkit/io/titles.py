"""Title lines that SerialEMCCD writes into frame stacks, as IMOD reads them.

SerialEMCCD (SerialEM's plugin to DigitalMicrograph, ``TemplatePlugIn.cpp``) puts one
line describing the frames first, then the names of the gain reference and the defect
file it saved beside the frames, each indented by two blanks.  The first line has had
three forms:

========================  =============================================================
since February 2022       ``SerialEMCCD: Frames . ., scaled by 16.00  r/f 0``
                          ``SerialEMCCD: Frames . ., 4 bits packed  r/f 0``
                          ``... r/f 0 need 5`` for frames saved without rotation/flip
January-February 2022     ``SerialEMCCD: Dose frac. image, scaled by 16.00  nrf 5``
2014-2022                 ``SerialEMCCD: Dose frac. image, scaled by 16.00  r/f 5``
                          ``SerialEMCCD: Dose frac. image, 4 bits packed  r/f 5``
2013-2014                 ``SerialEMCCD: Dose fractionation image, scaled by 16.00``
                          ``SerialEMCCD: Dose fractionation image, 4 bits packed``
========================  =============================================================

In an MRC file the first line goes through IMOD's ``mrc_head_label``, which cuts it at
55 characters and appends a date stamp; the name lines are cut at the 80 characters of
an MRC title.  A TIFF file holds the same lines, uncut and without the stamp, joined by
newlines in its ImageDescription (pass ``description.split("\\n")`` to
:func:`parse_frame_titles`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dedkit.errors import DedkitError

#: Characters in one MRC title.
MRC_TITLE_LENGTH = 80
#: Characters of a title that IMOD's ``mrc_head_label`` keeps before its date stamp.
STAMPED_TEXT_LENGTH = 55

_SERIALEMCCD_PREFIX = "SerialEMCCD:"
_CURRENT_LEAD = "SerialEMCCD: Frames . ., "
_LEGACY_LEAD = "SerialEMCCD: Dose frac. image, "
_LEGACY_MARKER = "SerialEMCCD: Dose frac"
_PACKED_TEXT = "4 bits packed"
_NAME_INDENT = "  "
# The ``%b`` of C's strftime in the "C" locale SerialEMCCD runs in; Python's own %b
# follows the current locale, so the names are spelled out here.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# What C's atoi/atof accept after the marker: leading blanks, then a number.
_INT_AFTER = re.compile(r"[ \t]*([+-]?\d+)")
_FLOAT_AFTER = re.compile(r"[ \t]*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")

_GAIN_EXTENSIONS = (".mrc", ".dm4", ".tif")


@dataclass(frozen=True)
class FrameTitleInfo:
    """What SerialEMCCD recorded about a frame stack in its title lines.

    Attributes
    ----------
    scaling : float or None
        The factor the frames were multiplied by (``scaled by``); None for packed data or
        when no title says.
    packed_4bit : bool
        The frames are 4-bit values packed two to a byte.
    rotflip : int or None
        The rotation/flip operation applied to the frames (0..7), which is the one the
        gain reference needs; 0 when frames were saved without it; None if not recorded.
    rotflip_needed : int or None
        For frames saved without rotation/flip: the operation they still need to match
        the images SerialEM shows (the ``need`` value, or ``nrf`` in early 2022).
    gain_reference : str or None
        File name of the gain reference saved beside the frames.
    defect_file : str or None
        File name of the defect list saved beside the frames.
    legacy : bool
        The first line has the pre-2022 ``Dose frac. image`` (or older) form.
    titles : tuple of str
        All title lines as read, including those of other programs.
    """

    scaling: float | None = None
    packed_4bit: bool = False
    rotflip: int | None = None
    rotflip_needed: int | None = None
    gain_reference: str | None = None
    defect_file: str | None = None
    legacy: bool = False
    titles: tuple[str, ...] = ()


def parse_frame_titles(titles: Sequence[str]) -> FrameTitleInfo:
    """Read SerialEMCCD's description of a frame stack from its title lines.

    The first line starting with ``SerialEMCCD:`` gives scaling, packing and
    rotation/flip, read as IMOD does: the integer after ``" r/f "``, the number after
    ``", scaled by"``, the integer after ``" need "``.  Gain reference and defect file
    names are found by IMOD's rule (alignframes ``-rdtitle``): a title that, without its
    surrounding blanks, contains "ref" or "Ref" and ends in .mrc, .dm4 or .tif, or
    contains "defect" and ends in .txt; the first of each counts.  Other titles are kept
    in ``titles`` and otherwise ignored.

    Parameters
    ----------
    titles : sequence of str
        The MRC title lines, or the lines of a TIFF ImageDescription.

    Returns
    -------
    FrameTitleInfo
    """
    kept = tuple(titles)
    main_index = next(
        (i for i, t in enumerate(kept) if t.lstrip(" ").startswith(_SERIALEMCCD_PREFIX)), None
    )
    fields: dict = {}
    if main_index is not None:
        fields = _parse_main_line(kept[main_index])
    gain_reference = defect_file = None
    for index, title in enumerate(kept):
        if index == main_index:
            continue
        name = title.strip(" ")
        if gain_reference is None and _looks_like_gain_reference(name):
            gain_reference = name
        elif defect_file is None and _looks_like_defect_file(name):
            defect_file = name
    return FrameTitleInfo(
        gain_reference=gain_reference, defect_file=defect_file, titles=kept, **fields
    )


def _parse_main_line(line: str) -> dict:
    legacy = line.lstrip(" ").startswith(_LEGACY_MARKER)
    packed = _PACKED_TEXT in line
    scaling = _number_after(line, ", scaled by", _FLOAT_AFTER, float)
    rotflip = _number_after(line, " r/f ", _INT_AFTER, int)
    if rotflip is not None:
        needed = _number_after(line, " need ", _INT_AFTER, int)
    else:
        # Early-2022 form for frames saved without rotation/flip: nothing was applied.
        needed = _number_after(line, " nrf ", _INT_AFTER, int)
        if needed is not None:
            rotflip = 0
    return {
        "scaling": scaling,
        "packed_4bit": packed,
        "rotflip": rotflip,
        "rotflip_needed": needed,
        "legacy": legacy,
    }


def _number_after(line: str, marker: str, pattern: re.Pattern, convert):
    start = line.find(marker)
    if start < 0:
        return None
    match = pattern.match(line, start + len(marker))
    return None if match is None else convert(match.group(1))


def _looks_like_gain_reference(name: str) -> bool:
    return ("ref" in name or "Ref" in name) and name.endswith(_GAIN_EXTENSIONS)


def _looks_like_defect_file(name: str) -> bool:
    return "defect" in name and name.endswith(".txt")


def format_frame_titles(info: FrameTitleInfo, stamp: datetime | None = None) -> list[str]:
    """The title lines SerialEMCCD would write for ``info``.

    The first line has the since-2022 form, or the 2014-2022 form when ``info.legacy``
    (with ``nrf N``, its early-2022 variant, when ``rotflip_needed`` is set).  Then come
    the gain reference and defect file names, indented by two blanks and cut at 80
    characters as SerialEMCCD cuts them.  Missing values are written as SerialEMCCD's
    defaults: scaling 1.00 and r/f 0.  ``info.titles`` is not written.

    Parameters
    ----------
    info : FrameTitleInfo
        What to describe.
    stamp : datetime, optional
        Give the time to get the first line as it appears in an MRC file: cut or padded
        to 55 characters and followed by IMOD's date stamp.  Without it the first line is
        the bare text SerialEMCCD puts in a TIFF description.

    Returns
    -------
    list of str
        Lines of at most 80 characters.

    SerialEMCCD itself writes a ``need`` value only after ``r/f 0``; ``r/f A need N``
    with A other than 0 is what dedkit writes for such frames after rotating them by A
    (``dedkit rotflip``): the gain reference needs A and the sums still need N, which is
    how IMOD reads the two numbers.

    Raises
    ------
    DedkitError
        If a rotation/flip value is outside 0..7, or an applied rotation/flip other than
        0 is combined with a needed one in the legacy (``nrf``) form.
    """
    rotflip = 0 if info.rotflip is None else info.rotflip
    _check_rotflip_range(rotflip, "applied rotation/flip")
    if info.rotflip_needed is not None:
        _check_rotflip_range(info.rotflip_needed, "needed rotation/flip")
        if rotflip != 0 and info.legacy:
            raise DedkitError(
                f"the early-2022 'nrf' title cannot record rotation/flip {rotflip} applied "
                f"as well as {info.rotflip_needed} needed"
            )
    if info.packed_4bit:
        content = _PACKED_TEXT
    else:
        content = f"scaled by {1.0 if info.scaling is None else info.scaling:.2f}"
    needed = info.rotflip_needed
    if info.legacy:
        operation = f"r/f {rotflip}" if needed is None else f"nrf {needed}"
        first = f"{_LEGACY_LEAD}{content}  {operation}"
    else:
        operation = f"r/f {rotflip}" if needed is None else f"r/f {rotflip} need {needed}"
        first = f"{_CURRENT_LEAD}{content}  {operation}"
    if stamp is None:
        lines = [first[:MRC_TITLE_LENGTH]]
    else:
        lines = [first[:STAMPED_TEXT_LENGTH].ljust(STAMPED_TEXT_LENGTH) + _date_stamp(stamp)]
    for name in (info.gain_reference, info.defect_file):
        if name:
            lines.append((_NAME_INDENT + name)[:MRC_TITLE_LENGTH])
    return lines


def _date_stamp(when: datetime) -> str:
    # IMOD's strftime(" %d-%b-%y  %H:%M:%S    "), 24 characters.
    month = _MONTHS[when.month - 1]
    return f" {when:%d}-{month}-{when:%y}  {when:%H:%M:%S}    "


def _check_rotflip_range(value: int, what: str) -> None:
    if not 0 <= value <= 7:
        raise DedkitError(f"{what} {value} is out of the range 0..7")


def resolve_rotflip(titles: Sequence[str] | FrameTitleInfo, value: int) -> int:
    """The rotation/flip to apply to a gain reference, like ``clip norm -R value``.

    Parameters
    ----------
    titles : sequence of str or FrameTitleInfo
        The frame stack's titles (or what :func:`parse_frame_titles` made of them).
    value : int
        0..7 for that operation, or -1 for the r/f value in the titles.

    Returns
    -------
    int
        An operation in 0..7.

    Raises
    ------
    DedkitError
        For a value other than -1..7, or -1 when the titles have no r/f value or one
        outside 0..7.
    """
    value = _option_value(value, "rotation/flip value")
    if value == -1:
        info = _as_info(titles)
        if info.rotflip is None:
            raise DedkitError("cannot find an r/f entry in the frame titles")
        _check_rotflip_range(info.rotflip, "rotation/flip from the frame titles")
        return info.rotflip
    return value


def resolve_needed_rotflip(titles: Sequence[str] | FrameTitleInfo, value: int) -> int:
    """The rotation/flip to apply to aligned sums, like alignframes ``-rfsum value``.

    ``alignframes -rotation -2`` is ``resolve_rotflip(titles, -1)`` for the gain
    reference together with ``resolve_needed_rotflip(titles, -1)`` for the sums.

    Parameters
    ----------
    titles : sequence of str or FrameTitleInfo
        The frame stack's titles (or what :func:`parse_frame_titles` made of them).
    value : int
        0..7 for that operation, or -1 for the ``need`` value in the titles, which is 0
        when the titles have an r/f value and no ``need`` (the frames were rotated).

    Returns
    -------
    int
        An operation in 0..7.

    Raises
    ------
    DedkitError
        For a value other than -1..7, or -1 when the titles have no r/f value or a need
        value outside 0..7.
    """
    value = _option_value(value, "rotation/flip value for sums")
    if value == -1:
        info = _as_info(titles)
        if info.rotflip is None:
            raise DedkitError("cannot find an r/f entry in the frame titles")
        needed = 0 if info.rotflip_needed is None else info.rotflip_needed
        _check_rotflip_range(needed, "needed rotation/flip from the frame titles")
        return needed
    return value


def _option_value(value, what: str) -> int:
    # Accept any integer type (numpy's too) but not 1.0 or True, which only look like one.
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or not -1 <= number <= 7:
        raise DedkitError(f"{what} {value!r} is not -1 or 0..7")
    return number


def _as_info(titles: Sequence[str] | FrameTitleInfo) -> FrameTitleInfo:
    if isinstance(titles, FrameTitleInfo):
        return titles
    return parse_frame_titles(titles)
