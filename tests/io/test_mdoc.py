"""SerialEM .mdoc files: lossless round trip, typed access, edits, errors."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.mdoc import (
    Mdoc,
    MdocComment,
    MdocEntry,
    MdocSection,
    format_mdoc,
    parse_mdoc,
    read_mdoc,
    write_mdoc,
)


def serialem_title(text: str, stamp: str) -> str:
    """A title as SerialEM makes it: sprintf("SerialEM: %-45s %s    ", text, stamp)."""
    return f"SerialEM: {text:<45} {stamp}    "


# A frame-stack mdoc as SerialEM writes it for saved frames: the titles as global keys
# T, T1 (so the line of T ends in blanks), then one [FrameSet = 0] section.
SERIALEM_TITLE = serialem_title("Digitized on Krios G4 TFS", "21-Mar-23  14:02:11")
FRAME_MDOC = (
    f"T = {SERIALEM_TITLE}\n"
    + """\
T1 = grid 3 square 12
Voltage = 300

[FrameSet = 0]
TiltAngle = -0.00170391
StagePosition = 143.062 -305.487
StageZ = -39.0577
Magnification = 105000
Intensity = 0.0798467
ExposureDose = 50.2381
DoseRate = 14.6397
PixelSpacing = 0.834
SpotSize = 7
Defocus = -1.55913
ImageShift = -0.307022 0.251232
RotationAngle = -94.3598
ExposureTime = 2.4
Binning = 0.5
CameraIndex = 1
DividedBy2 = 0
MagIndex = 31
CountsPerElectron = 32
TargetDefocus = -1.5
DateTime = 21-Mar-23  14:02:11
SubFramePath = X:\\Frames\\grid3_00012_-0.0_20230321_140211.tif
NumSubFrames = 40
FrameDosesAndNumber = 1.25595 40
DefectFile = defects_grid3_0011.txt
GainReference = CountRef_grid3_00001.dm4
RotationAndFlip = 7
PriorRecordDose = 0
"""
)

# An image-stack (tilt series) mdoc: global keys, title lines as [T = ...] sections,
# one [ZValue = n] section per image.
IMAGE_TITLE = serialem_title("Digitized on EMBL Krios", "30-Nov-15  15:14:20")
IMAGE_MDOC = (
    """\
PixelSpacing = 5.4
Voltage = 300
ImageFile = tilt.mrc
ImageSize = 1024 1024
DataMode = 1

"""
    + f"[T = {IMAGE_TITLE}]\n"
    + """
[T =     Tilt axis angle = 85.3, binning = 4  spot = 9  camera = 0]

[ZValue = 0]
TiltAngle = 0.000999877
StagePosition = 20.3601 155.196
StageZ = 18.5
Magnification = 6500
Intensity = 0.144952
ExposureDose = 0
PixelSpacing = 5.4
SpotSize = 9
Defocus = 2.68083
ImageShift = 0.0412322 -0.0787216
RotationAngle = 175.3
ExposureTime = 0.8
Binning = 4
CameraIndex = 0
DividedBy2 = 1
MagIndex = 17
CountsPerElectron = 35.3
MinMaxMean = 36 2304 1200.51
TargetDefocus = -3
SubFramePath = X:\\DoseFractions\\tilt_001_0.0_Nov30_15.14.25.tif
NumSubFrames = 8
FrameDosesAndNumber = 0 8
DateTime = 30-Nov-15  15:14:25
FilterSlitAndLoss = 20 0
UncroppedSize = -3710 -3838
RotationAndFlip = 0

[ZValue = 1]
TiltAngle = 2.99925
StagePosition = 20.3601 155.196
Magnification = 6500
ExposureDose = 0.4
ExposureTime = 0.8
Binning = 4
SubFramePath = X:\\DoseFractions\\tilt_002_3.0_Nov30_15.15.01.tif
NumSubFrames = 8
FrameDosesAndNumber = 0.05 8
PriorRecordDose = 0.4
DateTime = 30-Nov-15  15:15:01
"""
)

# Comments, blank lines, blanks and tabs, continuation lines (also across a comment),
# a key with blanks, a repeated key, a section of another kind, no final newline.
ODD_MDOC = (
    "# written by hand\n"
    "\n"
    "  PixelSpacing\t=  1.5  \n"
    "Long List = 1 2 3\n"
    "  4 5\n"
    "# between\n"
    "6\n"
    "Empty =\n"
    "Voltage = 200\n"
    "Voltage = 300\n"
    "\t[ Montage = yes ] trailing text\n"
    "   # indented comment\n"
    "Key = a = b"
)


@pytest.mark.parametrize("text", [FRAME_MDOC, IMAGE_MDOC, ODD_MDOC, "", "\n\n", "# only\n"])
def test_round_trip_is_lossless(text):
    assert format_mdoc(parse_mdoc(text)) == text


@pytest.mark.parametrize("text", [FRAME_MDOC, IMAGE_MDOC, ODD_MDOC])
def test_round_trip_keeps_crlf(text):
    crlf = text.replace("\n", "\r\n")
    mdoc = parse_mdoc(crlf)
    assert mdoc.newline == "\r\n"
    assert format_mdoc(mdoc) == crlf
    assert mdoc.globals == parse_mdoc(text).globals


def test_round_trip_keeps_missing_final_newline_and_mixed_endings():
    text = "A = 1\r\nB = 2\nC = 3"
    assert format_mdoc(parse_mdoc(text)) == text


def test_frame_mdoc_contents():
    mdoc = parse_mdoc(FRAME_MDOC)
    assert list(mdoc.globals) == ["T", "T1", "Voltage"]
    assert mdoc.globals["T"] == SERIALEM_TITLE.rstrip()
    assert [(s.kind, s.value) for s in mdoc.sections] == [("FrameSet", "0")]
    frames = ("FrameSet", 0)
    assert mdoc.get("SubFramePath", frames) == "X:\\Frames\\grid3_00012_-0.0_20230321_140211.tif"
    assert mdoc.get_int("NumSubFrames", frames) == 40
    assert mdoc.get_float("Binning", frames) == 0.5
    assert mdoc.get_floats("FrameDosesAndNumber", frames) == [1.25595, 40.0]
    assert mdoc.get_int("RotationAndFlip", frames) == 7
    assert mdoc.get("GainReference", frames) == "CountRef_grid3_00001.dm4"
    assert mdoc.get("DefectFile", frames) == "defects_grid3_0011.txt"
    assert mdoc.get_float("Voltage") == 300.0


def test_image_mdoc_contents():
    mdoc = parse_mdoc(IMAGE_MDOC)
    assert mdoc.get("ImageFile") == "tilt.mrc"
    assert mdoc.get_ints("ImageSize") == [1024, 1024]
    titles = [s.value for s in mdoc.sections_of("T")]
    assert titles == [
        IMAGE_TITLE.rstrip(),
        "Tilt axis angle = 85.3, binning = 4  spot = 9  camera = 0",
    ]
    assert [s.value for s in mdoc.sections_of("ZValue")] == ["0", "1"]
    assert mdoc.get_float("TiltAngle", ("ZValue", 1)) == 2.99925
    assert mdoc.get_float("PriorRecordDose", ("ZValue", 1)) == 0.4
    assert mdoc.get_float("PriorRecordDose", ("ZValue", 0)) is None
    assert mdoc.get_float("PriorRecordDose", ("ZValue", 0), default=0.0) == 0.0
    assert mdoc.get_floats("MinMaxMean", 2) == [36.0, 2304.0, 1200.51]


def test_section_choices():
    mdoc = parse_mdoc(IMAGE_MDOC)
    zvalue0 = mdoc.find_section("ZValue", 0)
    assert mdoc.section(None) is mdoc.globals
    assert mdoc.section(2) is zvalue0
    assert mdoc.section(zvalue0) is zvalue0
    assert mdoc.section(("ZValue", "0")) is zvalue0
    assert mdoc.find_section("ZValue", 7) is None
    with pytest.raises(DedkitError, match=r"no section \[ZValue = 7\]"):
        mdoc.get("TiltAngle", ("ZValue", 7))


def test_odd_mdoc_rules():
    mdoc = parse_mdoc(ODD_MDOC)
    assert mdoc.get_float("PixelSpacing") == 1.5
    # Continuations join with one blank, also across a comment line.
    assert mdoc.get_ints("Long List") == [1, 2, 3, 4, 5, 6]
    assert mdoc.get("Empty") == ""
    # A repeated key takes its later value.
    assert mdoc.get_int("Voltage") == 300
    assert len(mdoc.globals) == 4
    (montage,) = mdoc.sections
    assert (montage.kind, montage.value) == ("Montage", "yes")
    assert mdoc.get("Key", montage) == "a = b"
    assert isinstance(montage.entries[0], MdocComment)


def test_mapping_view_of_globals():
    mdoc = parse_mdoc(IMAGE_MDOC)
    assert mdoc.sections[2] != mdoc.sections[3]
    assert mdoc.sections[2] == parse_mdoc(IMAGE_MDOC).sections[2]
    assert "Voltage" in mdoc.globals
    assert "TiltAngle" not in mdoc.globals
    assert dict(mdoc.globals)["DataMode"] == "1"
    with pytest.raises(KeyError):
        mdoc.globals["TiltAngle"]


def test_set_existing_value_changes_only_that_line():
    mdoc = parse_mdoc(FRAME_MDOC.replace("\n", "\r\n"))
    mdoc.set("RotationAndFlip", 3, ("FrameSet", 0))
    expected = FRAME_MDOC.replace("RotationAndFlip = 7", "RotationAndFlip = 3")
    assert format_mdoc(mdoc) == expected.replace("\n", "\r\n")


def test_set_new_key_goes_after_last_entry_of_its_section():
    mdoc = parse_mdoc(IMAGE_MDOC)
    mdoc.set("Montage", 0)
    mdoc.set("Defocus", -2.5, ("ZValue", 1))
    text = format_mdoc(mdoc)
    assert "DataMode = 1\nMontage = 0\n\n[T = SerialEM: " in text
    assert text.endswith("DateTime = 30-Nov-15  15:15:01\nDefocus = -2.5\n")


def test_set_value_forms():
    mdoc = Mdoc()
    mdoc.set("ImageSize", np.array([1024, 2048]))
    mdoc.set("PixelSpacing", 0.1 + 0.2)
    mdoc.set("ImageFile", "  a b.mrc ")
    assert format_mdoc(mdoc) == (
        "ImageSize = 1024 2048\nPixelSpacing = 0.30000000000000004\nImageFile = a b.mrc\n"
    )
    assert parse_mdoc(format_mdoc(mdoc)).get_float("PixelSpacing") == 0.1 + 0.2


@pytest.mark.parametrize("key", ["", " A", "A=B", "[A", "#A", "A\nB"])
def test_set_refuses_keys_the_file_cannot_hold(key):
    with pytest.raises(ValueError):
        Mdoc().set(key, 1)


def test_set_refuses_line_break_in_value():
    with pytest.raises(ValueError):
        Mdoc().set("A", "1\n2")


def test_added_line_after_missing_final_newline_gets_one():
    mdoc = parse_mdoc("A = 1\r\nB = 2")
    mdoc.set("C", 3)
    assert format_mdoc(mdoc) == "A = 1\r\nB = 2\r\nC = 3\r\n"


def test_add_section_like_imod_writer():
    mdoc = parse_mdoc("Voltage = 300\n")
    section = mdoc.add_section("FrameSet", 0)
    section.set("NumSubFrames", 40)
    mdoc.add_section("FrameSet", 1).set("NumSubFrames", 20)
    assert format_mdoc(mdoc) == (
        "Voltage = 300\n\n[FrameSet = 0]\nNumSubFrames = 40\n\n[FrameSet = 1]\nNumSubFrames = 20\n"
    )
    assert mdoc.get_int("NumSubFrames", ("FrameSet", 1)) == 20


def test_add_section_to_empty_mdoc_has_no_leading_blank_line():
    mdoc = Mdoc()
    mdoc.add_section("ZValue", 0)
    assert format_mdoc(mdoc) == "[ZValue = 0]\n"


def test_edited_objects_are_written_anew():
    mdoc = parse_mdoc(IMAGE_MDOC)
    zvalue1 = mdoc.find_section("ZValue", 1)
    zvalue1.value = "5"
    zvalue1.entry("TiltAngle").value = "3.0"
    text = format_mdoc(mdoc)
    assert "\n[ZValue = 5]\nTiltAngle = 3.0\n" in text


def test_built_from_objects():
    section = MdocSection("ZValue", "0", [MdocEntry("TiltAngle", "1.5"), MdocComment("# x")])
    mdoc = Mdoc(MdocSection(None, None, [MdocEntry("Voltage", "300")]), [section])
    assert format_mdoc(mdoc) == "Voltage = 300\n[ZValue = 0]\nTiltAngle = 1.5\n# x\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A = 1\n[ZValue = 0\nB = 2\n", 2, "no closing ']'"),
        ("A = 1\n\n[ZValue]\n", 3, "no '='"),
        ("[ = 3]\n", 1, "nothing before '='"),
        ("A = 1\n[ZValue = ]\n", 2, "no value after '='"),
        ("# comment\nno equals sign here\n", 2, "does not continue a value"),
        ("A = 1\n[ZValue = 0]\ncontinued\n", 3, "does not continue a value"),
        ("A =\ncontinued\n", 2, "does not continue a value"),
        ("A = 1\r\n = 2\r\n", 2, "nothing before '='"),
        ("KeyValueDelimiter = :\n", 1, "changes the autodoc syntax"),
        ("CommentCharacter = %\n", 1, "changes the autodoc syntax"),
    ],
)
def test_malformed_lines_name_their_line(text, line, message):
    with pytest.raises(DedkitError, match=message) as caught:
        parse_mdoc(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    with pytest.raises(DedkitError) as caught:
        parse_mdoc(text, path="run.mdoc")
    assert str(caught.value).startswith(f"run.mdoc:{line}: ")


def test_syntax_keys_with_standard_values_are_accepted():
    text = "KeyValueDelimiter = =\nCommentCharacter = #\n"
    assert format_mdoc(parse_mdoc(text)) == text


def test_typed_access_errors_name_file_and_line():
    mdoc = parse_mdoc("A = 1.5\nB = x\nC = 1 2\nD =\nE = 1_000\n", path="run.mdoc")
    with pytest.raises(DedkitError, match=r"^run\.mdoc:1: A = '1\.5' is not an integer"):
        mdoc.get_int("A")
    with pytest.raises(DedkitError, match=r"^run\.mdoc:2: B = 'x' is not a number"):
        mdoc.get_float("B")
    with pytest.raises(DedkitError, match=r"^run\.mdoc:3: .*more than one value"):
        mdoc.get_float("C")
    with pytest.raises(DedkitError, match=r"^run\.mdoc:4: .*has no value"):
        mdoc.get_floats("D")
    with pytest.raises(DedkitError, match=r"^run\.mdoc:5: "):
        mdoc.get_int("E")
    assert mdoc.get_floats("C") == [1.0, 2.0]
    assert mdoc.get_ints("Missing") is None


def test_lists_may_use_commas():
    assert parse_mdoc("A = 1, 2,3\n").get_ints("A") == [1, 2, 3]


def test_write_and_read_file(tmp_path):
    path = tmp_path / "frames.mdoc"
    crlf = FRAME_MDOC.replace("\n", "\r\n")
    write_mdoc(parse_mdoc(crlf), path)
    assert path.read_bytes() == crlf.encode()
    mdoc = read_mdoc(path)
    assert mdoc.path == str(path)
    assert mdoc.get_int("NumSubFrames", ("FrameSet", 0)) == 40
    assert not list(tmp_path.glob(".*part*"))


def test_write_refuses_existing_file_without_force(tmp_path):
    path = tmp_path / "a.mdoc"
    path.write_text("A = 1\n")
    mdoc = read_mdoc(path)
    mdoc.set("A", 2)
    with pytest.raises(DedkitError, match="output exists"):
        write_mdoc(mdoc, path)
    assert path.read_text() == "A = 1\n"
    write_mdoc(mdoc, path, force=True)
    assert path.read_text() == "A = 2\n"


def test_undecodable_bytes_survive(tmp_path):
    source = tmp_path / "in.mdoc"
    data = b"NavigatorLabel = Gr\xf6\xdfe 3\r\nVoltage = 300\r\n"
    source.write_bytes(data)
    mdoc = read_mdoc(source)
    assert mdoc.get_int("Voltage") == 300
    target = tmp_path / "out.mdoc"
    write_mdoc(mdoc, target)
    assert target.read_bytes() == data


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(DedkitError, match="cannot read mdoc file"):
        read_mdoc(tmp_path / "missing.mdoc")
    bad = tmp_path / "bad.mdoc"
    bad.write_text("A = 1\n[ZValue = 0\n")
    with pytest.raises(DedkitError, match=r"bad\.mdoc:2: section header has no closing"):
        read_mdoc(bad)
