"""Frame-stack title lines as SerialEMCCD writes them and IMOD reads them."""

from datetime import datetime

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.titles import (
    FrameTitleInfo,
    format_frame_titles,
    parse_frame_titles,
    resolve_needed_rotflip,
    resolve_rotflip,
)

# The examples of docs/formats.md, written by SerialEMCCD since 2022.
SCALED = "SerialEMCCD: Frames . ., scaled by 16.00  r/f 0"
PACKED = "SerialEMCCD: Frames . ., 4 bits packed  r/f 0"
# The same line as IMOD's mrc_head_label stores it in an MRC file: cut or padded to
# 55 characters, then a date stamp.
STAMPED = "SerialEMCCD: Frames . ., scaled by 32.00  r/f 0 need 5 " + " 19-Feb-22  10:11:12    "


def test_scaled_line_since_2022():
    info = parse_frame_titles([SCALED])
    assert info.scaling == 16.0
    assert info.rotflip == 0
    assert info.rotflip_needed is None
    assert not info.packed_4bit
    assert not info.legacy
    assert info.titles == (SCALED,)


def test_packed_line_since_2022_has_no_scaling():
    info = parse_frame_titles([PACKED])
    assert info.packed_4bit
    assert info.scaling is None
    assert info.rotflip == 0


def test_need_value_of_frames_saved_without_rotation_in_stamped_mrc_title():
    info = parse_frame_titles([STAMPED])
    assert info.scaling == 32.0
    assert info.rotflip == 0
    assert info.rotflip_needed == 5


@pytest.mark.parametrize(
    ("line", "scaling", "packed", "rotflip", "needed"),
    [
        ("SerialEMCCD: Dose frac. image, scaled by 16.00  r/f 5", 16.0, False, 5, None),
        ("SerialEMCCD: Dose frac. image, 4 bits packed  r/f 7", None, True, 7, None),
        # January-February 2022: 'nrf N' for frames saved without rotation/flip.
        ("SerialEMCCD: Dose frac. image, scaled by 8.00  nrf 6", 8.0, False, 0, 6),
        ("SerialEMCCD: Dose fractionation image, scaled by 20.00", 20.0, False, None, None),
        ("SerialEMCCD: Dose fractionation image, 4 bits packed", None, True, None, None),
    ],
)
def test_legacy_lines(line, scaling, packed, rotflip, needed):
    info = parse_frame_titles([line])
    assert info.legacy
    assert (info.scaling, info.packed_4bit, info.rotflip, info.rotflip_needed) == (
        scaling,
        packed,
        rotflip,
        needed,
    )


def test_gain_reference_and_defect_names_follow_imod_rule():
    titles = [
        SCALED,
        "  CountRef_grid3_00001.dm4",
        "  defects_grid3_0011.txt",
        "  SuperRef_other.mrc",
        "  defects2.txt",
    ]
    info = parse_frame_titles(titles)
    assert info.gain_reference == "CountRef_grid3_00001.dm4"
    assert info.defect_file == "defects_grid3_0011.txt"


def test_names_that_do_not_qualify_are_ignored():
    info = parse_frame_titles([SCALED, "  notes.dm4", "  reference.txt", "  defects.log"])
    assert info.gain_reference is None
    assert info.defect_file is None


def test_other_programs_titles_are_kept_but_not_read():
    titles = ["clip: normalized, scaled by 2.00  r/f 4", SCALED, "newstack: Images copied"]
    info = parse_frame_titles(titles)
    assert info.rotflip == 0
    assert info.scaling == 16.0
    assert info.titles == tuple(titles)


def test_titles_without_serialemccd_line():
    info = parse_frame_titles(["newstack: Images copied"])
    assert info == FrameTitleInfo(titles=("newstack: Images copied",))


def test_tiff_description_lines():
    description = f"{PACKED}\n  SuperRef_a.dm4\n  defects1.txt\ngrid 3 square 12"
    info = parse_frame_titles(description.split("\n"))
    assert info.packed_4bit
    assert info.gain_reference == "SuperRef_a.dm4"
    assert info.defect_file == "defects1.txt"


@pytest.mark.parametrize(
    ("info", "first"),
    [
        (FrameTitleInfo(scaling=16.0, rotflip=0), SCALED),
        (FrameTitleInfo(packed_4bit=True, rotflip=0), PACKED),
        (
            FrameTitleInfo(scaling=32.0, rotflip=0, rotflip_needed=5),
            "SerialEMCCD: Frames . ., scaled by 32.00  r/f 0 need 5",
        ),
        (FrameTitleInfo(), "SerialEMCCD: Frames . ., scaled by 1.00  r/f 0"),
        (
            FrameTitleInfo(scaling=16.0, rotflip=5, legacy=True),
            "SerialEMCCD: Dose frac. image, scaled by 16.00  r/f 5",
        ),
        (
            FrameTitleInfo(packed_4bit=True, rotflip_needed=6, legacy=True),
            "SerialEMCCD: Dose frac. image, 4 bits packed  nrf 6",
        ),
    ],
)
def test_format_first_line_exactly(info, first):
    assert format_frame_titles(info) == [first]


def test_format_round_trips_through_parse():
    info = FrameTitleInfo(
        scaling=32.0,
        rotflip=0,
        rotflip_needed=3,
        gain_reference="CountRef_run_0001.dm4",
        defect_file="defects_run_0001.txt",
    )
    lines = format_frame_titles(info)
    assert lines[1:] == ["  CountRef_run_0001.dm4", "  defects_run_0001.txt"]
    assert parse_frame_titles(lines) == FrameTitleInfo(**{**vars(info), "titles": tuple(lines)})


def test_format_with_stamp_matches_imod_label():
    info = FrameTitleInfo(scaling=32.0, rotflip=0, rotflip_needed=5)
    (line,) = format_frame_titles(info, stamp=datetime(2022, 2, 19, 10, 11, 12))
    assert line == STAMPED
    assert len(line) == 79


def test_format_cuts_long_names_at_80_characters():
    name = "CountRef_" + "x" * 100 + ".dm4"
    lines = format_frame_titles(FrameTitleInfo(scaling=16.0, gain_reference=name))
    assert lines[1] == ("  " + name)[:80]
    assert all(len(line) <= 80 for line in lines)


def test_format_cuts_stamped_line_at_55_characters():
    info = FrameTitleInfo(scaling=123456.0, rotflip=0, rotflip_needed=7)
    (line,) = format_frame_titles(info, stamp=datetime(2023, 12, 1, 1, 2, 3))
    assert line[:55] == "SerialEMCCD: Frames . ., scaled by 123456.00  r/f 0 nee"
    assert line[55:] == " 01-Dec-23  01:02:03    "


@pytest.mark.parametrize(
    "info",
    [
        FrameTitleInfo(rotflip=8),
        FrameTitleInfo(rotflip=-1),
        FrameTitleInfo(rotflip_needed=9),
        FrameTitleInfo(rotflip=3, rotflip_needed=5, legacy=True),
    ],
)
def test_format_refuses_impossible_rotflip(info):
    with pytest.raises(DedkitError):
        format_frame_titles(info)


def test_format_applied_and_needed_rotflip_round_trips():
    """issue 13 item 5: frames saved unrotated ('need 5') and then rotated by 3 record
    both; IMOD reads r/f for the gain reference and need for the sums."""
    info = FrameTitleInfo(scaling=16.0, rotflip=3, rotflip_needed=5)
    (line,) = format_frame_titles(info)
    assert line == "SerialEMCCD: Frames . ., scaled by 16.00  r/f 3 need 5"
    parsed = parse_frame_titles([line])
    assert (parsed.rotflip, parsed.rotflip_needed) == (3, 5)


@pytest.mark.parametrize("value", range(8))
def test_resolve_rotflip_passes_explicit_value(value):
    assert resolve_rotflip(["no r/f here"], value) == value


def test_resolve_rotflip_reads_titles():
    assert resolve_rotflip(["SerialEMCCD: Dose frac. image, scaled by 16.00  r/f 6"], -1) == 6
    assert resolve_rotflip(parse_frame_titles([STAMPED]), -1) == 0
    assert resolve_rotflip([SCALED], np.int64(-1)) == 0


def test_resolve_rotflip_without_r_f_in_titles():
    with pytest.raises(DedkitError, match="cannot find an r/f entry"):
        resolve_rotflip(["SerialEMCCD: Dose fractionation image, scaled by 20.00"], -1)


def test_resolve_rotflip_out_of_range_in_titles():
    with pytest.raises(DedkitError, match="out of the range"):
        resolve_rotflip(["SerialEMCCD: Frames . ., scaled by 16.00  r/f 9"], -1)


@pytest.mark.parametrize("value", [8, -2, 1.0, True, "3"])
def test_resolve_rotflip_unknown_value(value):
    with pytest.raises(DedkitError, match="is not -1 or 0..7"):
        resolve_rotflip([SCALED], value)


def test_resolve_needed_rotflip():
    assert resolve_needed_rotflip([STAMPED], -1) == 5
    # r/f without need: the frames were rotated, the sums need nothing more.
    assert resolve_needed_rotflip([SCALED], -1) == 0
    assert resolve_needed_rotflip([SCALED], 4) == 4
    with pytest.raises(DedkitError, match="cannot find an r/f entry"):
        resolve_needed_rotflip(["newstack: Images copied"], -1)
    with pytest.raises(DedkitError, match="is not -1 or 0..7"):
        resolve_needed_rotflip([SCALED], -2)
