"""SerialEM defect list files: parsing, layout, errors with line numbers, round trip."""

import pytest

from dedkit.errors import DedkitError
from dedkit.io.defects import (
    format_defects,
    parse_defects,
    read_defects,
    write_defects,
)
from dedkit.records.defects import DefectList, PartialBadLine, UsableArea

SAMPLE = """\
# written by SerialEMCCD
CameraSizeX 5760
CameraSizeY 4092
RotationAndFlip 2
WasScaled 0
K2Type 1
FalconType 0
NumToAvgSuperRes 0
UsableArea 2 3 4089 5757
PartialBadColumn 100 2 0 2047
PartialBadRow 40 1 10 99
BadPixels 1 2 3 4
BadPixels 5 6
BadColumns 7 8 9
BadRows 11
FutureKeyword 1 2 3
"""


def test_parse_reads_every_entry():
    d = parse_defects(SAMPLE)
    assert (d.camera_size_x, d.camera_size_y) == (5760, 4092)
    assert d.rotation_and_flip == 2
    assert d.k2_type == 1
    assert d.usable_area == UsableArea(top=2, left=3, bottom=4089, right=5757)
    assert d.partial_bad_columns == [PartialBadLine(100, 2, 0, 2047)]
    assert d.partial_bad_rows == [PartialBadLine(40, 1, 10, 99)]
    assert d.bad_pixels == [(1, 2), (3, 4), (5, 6)]
    assert d.bad_columns == [7, 8, 9]
    assert d.bad_rows == [11]
    assert d.comments == ["# written by SerialEMCCD"]
    assert d.unknown_lines == ["FutureKeyword 1 2 3"]


def test_keyword_may_end_at_a_tab_and_lines_may_end_in_crlf():
    d = parse_defects("CameraSizeX\t10\r\nCameraSizeY 8\r\nBadPixels\t1 2\r\n")
    assert (d.camera_size_x, d.camera_size_y, d.bad_pixels) == (10, 8, [(1, 2)])


def test_optional_entries_default_to_zero():
    d = parse_defects("CameraSizeX 10\nCameraSizeY 8\n")
    assert d.usable_area == UsableArea(0, 0, 0, 0)
    assert d.was_scaled == d.rotation_and_flip == 0
    assert d.bad_pixels == d.bad_columns == d.bad_rows == []


def test_format_uses_serialem_line_lengths():
    d = DefectList(
        100,
        100,
        bad_pixels=[(i, i + 1) for i in range(23)],
        bad_columns=list(range(45)),
        bad_rows=[1, 2],
    )
    lines = format_defects(d).splitlines()
    pixel_lines = [line for line in lines if line.startswith("BadPixels")]
    assert [len(line.split()) - 1 for line in pixel_lines] == [20, 20, 6]
    column_lines = [line for line in lines if line.startswith("BadColumns")]
    assert [len(line.split()) - 1 for line in column_lines] == [20, 20, 5]
    assert lines[:2] == ["CameraSizeX 100", "CameraSizeY 100"]
    assert "UsableArea 0 0 0 0" in lines


def test_write_read_round_trip_keeps_comments_and_unknown_keywords(tmp_path):
    original = parse_defects(SAMPLE)
    path = tmp_path / "defects.txt"
    write_defects(original, path)
    again = read_defects(path)
    assert again == original
    text = path.read_text()
    assert "# written by SerialEMCCD" in text
    assert "FutureKeyword 1 2 3" in text


def test_write_refuses_existing_file_without_force(tmp_path):
    path = tmp_path / "defects.txt"
    path.write_text("keep me")
    d = DefectList(10, 8)
    with pytest.raises(DedkitError, match="exists"):
        write_defects(d, path)
    assert path.read_text() == "keep me"
    write_defects(d, path, force=True)
    assert read_defects(path) == d
    assert [p.name for p in tmp_path.iterdir()] == ["defects.txt"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("BadPixels 1 2 3", "pairs"),
        ("BadPixels 1 x", "not an integer"),
        ("BadColumns 4 -5", "negative"),
        ("BadRows", "no values"),
        ("UsableArea 1 2 3", "needs 4 values"),
        ("PartialBadColumn 1 2 3 4 5", "needs 4 values"),
        ("PartialBadRow 1 0 3 4", "width"),
        ("PartialBadColumn 1 1 9 4", "before it starts"),
        ("RotationAndFlip 9", "0-7"),
        ("CameraSizeX 12", "twice"),
        ("K2Type 1.5", "not an integer"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "defects.txt"
    path.write_text(f"CameraSizeX 10\n# note\nCameraSizeY 8\n{bad_line}\nBadPixels 1 1\n")
    with pytest.raises(DedkitError, match=message) as info:
        read_defects(path)
    assert info.value.line == 4
    assert info.value.path == str(path)
    assert f"{path}:4:" in str(info.value)


def test_missing_camera_size_is_an_error():
    with pytest.raises(DedkitError, match="CameraSizeY"):
        parse_defects("CameraSizeX 10\nBadPixels 1 2\n", path="d.txt")


def test_missing_file_is_a_dedkit_error(tmp_path):
    with pytest.raises(DedkitError, match="not found"):
        read_defects(tmp_path / "absent.txt")


def test_issue13_item11_value_beyond_int32_is_an_error_with_its_line():
    """issue 13 item 11: BadColumns 9999...9 was an OverflowError later; now one line."""
    with pytest.raises(DedkitError, match=r"d\.txt:3: BadColumns: 9+ is beyond the 32-bit"):
        parse_defects(
            "CameraSizeX 10\nCameraSizeY 8\nBadColumns 99999999999999999999999999999\n",
            path="d.txt",
        )


@pytest.mark.parametrize(
    ("line", "field", "kept"),
    [
        ("BadPixels 1 2 99999 99999", "bad_pixels", [(1, 2)]),
        ("BadColumns 3 10", "bad_columns", [3]),
        ("BadRows 8 7", "bad_rows", [7]),
        ("PartialBadColumn 3 1000000000 0 5", "partial_bad_columns", []),
        ("PartialBadColumn 3 1 0 8", "partial_bad_columns", []),
        ("PartialBadRow 2 1 0 10", "partial_bad_rows", []),
        ("UsableArea 60 40 5 3", "usable_area", UsableArea()),
        ("UsableArea 0 0 9 0", "usable_area", UsableArea()),
    ],
)
def test_issue13_item12_entries_outside_the_camera_are_ignored_with_a_warning(line, field, kept):
    """issue 13 item 12 (decision): an entry that does not fit in the camera is left out,
    with a warning naming file, line and entry, and listed in ``ignored``."""
    from dedkit.io.defects import DefectListWarning

    with pytest.warns(DefectListWarning, match=r"d\.txt: line 3: .* does not fit in the 10 x 8"):
        d = parse_defects(f"CameraSizeX 10\nCameraSizeY 8\n{line}\n", path="d.txt")
    assert getattr(d, field) == kept
    assert len(d.ignored) == 1 and d.ignored[0].startswith("line 3: ")


def test_issue13_item12_entries_inside_the_camera_warn_nothing():
    """issue 13 item 12: the edges of the camera are inside it."""
    import warnings

    text = (
        "CameraSizeX 10\nCameraSizeY 8\nBadPixels 9 7\nBadColumns 9\nBadRows 7\n"
        "PartialBadColumn 8 2 0 7\nPartialBadRow 6 2 0 9\nUsableArea 1 1 7 9\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = parse_defects(text)
    assert d.ignored == []
