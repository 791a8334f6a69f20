"""TIFF stacks and frame folders: round trips, files from tifffile, orientation, 4-bit forms."""

import struct

import numpy as np
import pytest
import tifffile

from dedkit.errors import DedkitError
from dedkit.io import tiff
from dedkit.io.pack import pack_4bit, unpack_nibbles
from dedkit.io.stack import create_stack, open_stack
from dedkit.io.tiff import (
    FolderReader,
    FolderWriter,
    TiffReader,
    TiffWriter,
    numbered_frame_files,
)

DTYPES = [np.uint8, np.int16, np.uint16, np.float32]
COMPRESSIONS = ["none", "lzw", "zip", "zstd"]
TIFFFILE_COMPRESSION = {"none": None, "lzw": "lzw", "zip": "zlib", "zstd": "zstd"}
SERIALEMCCD_TITLE = "SerialEMCCD: Frames . ., 4 bits packed  r/f 0"


def frames_of(dtype, shape=(3, 5, 6), seed=0):
    """Random frames that use the range of ``dtype`` (negative values where signed)."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(0, 100, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)


def four_bit_frames(shape=(3, 5, 6), seed=0):
    return np.random.default_rng(seed).integers(0, 16, shape).astype(np.uint8)


def write_stack(path, frames, **options):
    with TiffWriter(path, frames.shape, frames.dtype, **options) as writer:
        for frame in frames:
            writer.write(frame)


def read_all(reader):
    return np.stack([reader.read(i) for i in range(len(reader))])


def tiff4_fill_order_2(path, packed_rows, width):
    """An uncompressed one-page TIFF with BitsPerSample 4 and FillOrder 2 (tifffile cannot
    write FillOrder); ``packed_rows`` are the stored bytes, row 0 at the top."""
    height, row_bytes = packed_rows.shape
    short, long_ = 3, 4
    n_entries = 10
    data_offset = 8 + 2 + 12 * n_entries + 4
    entries = [
        (256, short, width),
        (257, short, height),
        (258, short, 4),
        (259, short, 1),
        (262, short, 1),
        (266, short, 2),
        (273, long_, data_offset),
        (277, short, 1),
        (278, short, height),
        (279, long_, height * row_bytes),
    ]
    ifd = struct.pack("<H", n_entries)
    for tag, kind, value in entries:
        field = struct.pack("<HH", value, 0) if kind == short else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + field
    ifd += struct.pack("<I", 0)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + packed_rows.tobytes())


# --- round trips and interchange with tifffile -------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_compression_and_dtype(tmp_path, dtype, compression):
    frames = frames_of(dtype)
    path = tmp_path / "stack.tif"
    write_stack(path, frames, compression=compression, titles=["first", "second"])
    with TiffReader(path) as reader:
        assert reader.info.format == "tiff"
        assert reader.info.shape == frames.shape
        assert reader.info.dtype == np.dtype(dtype)
        assert reader.info.packing == "none"
        assert reader.info.compression == compression
        assert reader.info.titles == ["first", "second"]
        assert reader.read_packed(0) is None
        np.testing.assert_array_equal(read_all(reader), frames)
        assert reader.read(-1).flags.c_contiguous


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reads_files_written_by_tifffile(tmp_path, dtype, compression):
    stored = frames_of(dtype, seed=1)
    path = tmp_path / "from_tifffile.tif"
    tifffile.imwrite(
        path, stored, photometric="minisblack", compression=TIFFFILE_COMPRESSION[compression]
    )
    with TiffReader(path) as reader:
        assert reader.info.compression == compression
        for i, page in enumerate(stored):
            np.testing.assert_array_equal(reader.read(i), np.flipud(page))


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tifffile_reads_what_tiffwriter_wrote(tmp_path, dtype, compression):
    frames = frames_of(dtype, seed=2)
    path = tmp_path / "for_tifffile.tif"
    write_stack(path, frames, compression=compression)
    stored = tifffile.imread(path)
    assert stored.dtype == np.dtype(dtype)
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(stored[i], np.flipud(frame))
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == len(frames)


def test_orientation_top_row_of_a_frame_is_tiff_row_0(tmp_path):
    """dedkit row ny-1 is the top of the image, which TIFF stores first (row 0)."""
    ny, nx = 4, 5
    frame = np.zeros((ny, nx), np.uint16)
    frame[ny - 1, 2] = 1000
    path = tmp_path / "bright_top.tif"
    write_stack(path, frame[None])
    stored = tifffile.imread(path)
    assert stored[0, 2] == 1000
    assert stored.sum() == 1000
    with TiffReader(path) as reader:
        assert reader.read(0)[ny - 1, 2] == 1000


def test_pixel_size_written_per_centimetre_and_read_back(tmp_path):
    path = tmp_path / "calibrated.tif"
    write_stack(path, frames_of(np.uint16), pixel_size=(1.06, 1.1, 1.06))
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].resolutionunit == tifffile.RESUNIT.CENTIMETER
    with TiffReader(path) as reader:
        assert reader.info.pixel_size == pytest.approx((1.06, 1.1, 1.06), rel=1e-9)


def test_pixel_size_from_imagej_metadata(tmp_path):
    path = tmp_path / "imagej.tif"
    tifffile.imwrite(
        path,
        frames_of(np.uint16),
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"unit": "nm", "axes": "ZYX"},
    )
    with TiffReader(path) as reader:
        assert reader.info.pixel_size == pytest.approx((2.5, 2.5, 2.5))


@pytest.mark.parametrize(
    "resolution",
    [None, {"resolution": (300, 300), "resolutionunit": "INCH"}, {"resolution": (2, 2)}],
    ids=["no tags", "inch", "no unit"],
)
def test_pixel_size_is_none_when_the_file_does_not_state_a_length(tmp_path, resolution):
    path = tmp_path / "uncalibrated.tif"
    tifffile.imwrite(path, frames_of(np.uint8), photometric="minisblack", **(resolution or {}))
    with TiffReader(path) as reader:
        assert reader.info.pixel_size is None


# --- SerialEMCCD packed 4-bit ------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_serialemccd_round_trip(tmp_path, compression):
    frames = four_bit_frames()
    path = tmp_path / "packed.tif"
    write_stack(path, frames, packing="serialemccd", compression=compression)

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.shape == (5, 3) and page.dtype == np.uint8
        assert "SerialEMCCD" in page.description and "4 bits packed" in page.description
        assert "DateTime" in page.tags
        stored = page.asarray()
    np.testing.assert_array_equal(stored, pack_4bit(np.flipud(frames[0]), low_first=True).data)
    np.testing.assert_array_equal(stored[:, 0] & 15, frames[0, ::-1, 0])

    with TiffReader(path) as reader:
        assert reader.info.packing == "serialemccd"
        assert reader.info.shape == frames.shape
        assert reader.info.dtype == np.uint8
        np.testing.assert_array_equal(read_all(reader), frames)
        np.testing.assert_array_equal(reader.read_packed(1), pack_4bit(frames[1]).data)


def test_serialemccd_detected_from_a_file_as_serialemccd_writes_it(tmp_path):
    frames = four_bit_frames(shape=(2, 4, 8))
    packed_top_first = np.stack([pack_4bit(np.flipud(f)).data for f in frames])
    path = tmp_path / "semccd.tif"
    tifffile.imwrite(
        path,
        packed_top_first,
        photometric="minisblack",
        description=SERIALEMCCD_TITLE,
        metadata=None,
    )
    with TiffReader(path) as reader:
        assert reader.info.packing == "serialemccd"
        assert reader.info.shape == (2, 4, 8)
        assert reader.info.titles == [SERIALEMCCD_TITLE]
        np.testing.assert_array_equal(read_all(reader), frames)


def test_serialemccd_write_packed_stores_the_rows_as_given(tmp_path):
    frames = four_bit_frames(shape=(2, 4, 8))
    path = tmp_path / "from_packed.tif"
    with TiffWriter(path, frames.shape, np.uint8, packing="serialemccd") as writer:
        for frame in frames:
            writer.write_packed(pack_4bit(frame).data)
    with TiffReader(path) as reader:
        np.testing.assert_array_equal(read_all(reader), frames)


def test_serialemccd_puts_an_existing_packed_title_first_and_adds_none(tmp_path):
    path = tmp_path / "titled.tif"
    titles = ["gain.dm4", SERIALEMCCD_TITLE]
    write_stack(path, four_bit_frames(), packing="serialemccd", titles=titles)
    with TiffReader(path) as reader:
        assert reader.info.titles == [SERIALEMCCD_TITLE, "gain.dm4"]


def test_unpacked_output_with_a_packed_title_is_not_taken_for_packed(tmp_path):
    frames = four_bit_frames()
    path = tmp_path / "unpacked.tif"
    write_stack(path, frames, titles=[SERIALEMCCD_TITLE])
    with TiffReader(path) as reader:
        assert reader.info.packing == "none"
        assert reader.info.titles == [SERIALEMCCD_TITLE.replace("4 bits", "4-bits")]
        np.testing.assert_array_equal(read_all(reader), frames)


def test_serialemccd_needs_even_width(tmp_path):
    with pytest.raises(DedkitError, match="even width") as err:
        TiffWriter(tmp_path / "odd.tif", (1, 4, 7), np.uint8, packing="serialemccd")
    assert str(tmp_path / "odd.tif") in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("packing", ["serialemccd", "tiff4"])
def test_four_bit_values_above_15_are_saturated_and_counted(tmp_path, packing):
    path = tmp_path / "too_big.tif"
    frame = np.full((4, 6), 16, np.uint16)
    with TiffWriter(path, (1, 4, 6), np.uint8, packing=packing) as writer:
        writer.write(frame)
    assert writer.n_saturated == frame.size
    with TiffReader(path) as reader:
        np.testing.assert_array_equal(reader.read(0), np.full((4, 6), 15, np.uint8))


# --- true 4-bit TIFF ---------------------------------------------------------------------


@pytest.mark.parametrize("nx", [6, 7])
def test_tiff4_round_trip_with_high_nibble_first_and_padded_rows(tmp_path, nx):
    frames = four_bit_frames(shape=(2, 5, nx))
    path = tmp_path / "four_bit.tif"
    write_stack(path, frames, packing="tiff4")

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.tags["BitsPerSample"].value == 4
        assert page.bitspersample == 4
        tif.filehandle.seek(page.dataoffsets[0])
        raw = tif.filehandle.read(sum(page.databytecounts))
    expected = pack_4bit(np.flipud(frames[0]), low_first=False).data
    np.testing.assert_array_equal(np.frombuffer(raw, np.uint8).reshape(expected.shape), expected)
    np.testing.assert_array_equal(tifffile.imread(path)[1], np.flipud(frames[1]))

    with TiffReader(path) as reader:
        assert reader.info.packing == "tiff4"
        assert reader.info.shape == frames.shape
        assert reader.info.dtype == np.uint8
        assert reader.read_packed(0) is None
        np.testing.assert_array_equal(read_all(reader), frames)


def test_tiff4_write_packed(tmp_path):
    frames = four_bit_frames(shape=(1, 3, 5))
    path = tmp_path / "four_bit_packed.tif"
    with TiffWriter(path, frames.shape, np.uint8, packing="tiff4") as writer:
        writer.write_packed(pack_4bit(frames[0]).data)
    with TiffReader(path) as reader:
        np.testing.assert_array_equal(reader.read(0), frames[0])


def test_tiff4_fill_order_2_puts_the_left_pixel_in_the_low_nibble(tmp_path):
    width = 5
    stored = np.random.default_rng(3).integers(0, 256, (3, 3)).astype(np.uint8)
    stored[:, -1] &= 15  # the padding nibble of the last byte is 0
    path = tmp_path / "fill_order_2.tif"
    tiff4_fill_order_2(path, stored, width)
    with TiffReader(path) as reader:
        assert reader.info.packing == "tiff4"
        assert reader.info.extra["fill_order"] == 2
        expected = unpack_nibbles(stored, width, low_first=True)
        np.testing.assert_array_equal(reader.read(0), np.flipud(expected))


def test_tiff4_cannot_be_compressed(tmp_path):
    with pytest.raises(DedkitError, match="uncompressed"):
        TiffWriter(tmp_path / "c.tif", (1, 4, 4), np.uint8, packing="tiff4", compression="lzw")


# --- options and errors -----------------------------------------------------------------


def test_unknown_compression_lists_the_choices(tmp_path):
    with pytest.raises(DedkitError, match="none, lzw, zip, zstd") as err:
        TiffWriter(tmp_path / "x.tif", (1, 4, 4), np.uint16, compression="jpeg")
    assert str(tmp_path / "x.tif") in str(err.value)


@pytest.mark.parametrize("packing", ["mode101", "half-bytes", "nonsense"])
def test_mrc_and_unknown_packings_are_refused(tmp_path, packing):
    with pytest.raises(DedkitError, match="cannot be written to TIFF"):
        TiffWriter(tmp_path / "x.tif", (1, 4, 4), np.uint8, packing=packing)


@pytest.mark.parametrize("dtype", [np.int32, np.float64, np.int8])
def test_unsupported_dtypes_are_refused(tmp_path, dtype):
    with pytest.raises(DedkitError, match="uint8, int16, uint16, float32"):
        TiffWriter(tmp_path / "x.tif", (1, 4, 4), dtype)


def test_titles_must_be_ascii(tmp_path):
    with pytest.raises(DedkitError, match="ASCII"):
        TiffWriter(tmp_path / "x.tif", (1, 4, 4), np.uint8, titles=["gain \u00e5"])


def test_existing_output_needs_force(tmp_path):
    path = tmp_path / "exists.tif"
    path.write_bytes(b"old")
    frames = frames_of(np.uint16)
    with pytest.raises(DedkitError, match="exists") as err:
        write_stack(path, frames)
    assert str(path) in str(err.value)
    assert path.read_bytes() == b"old"
    write_stack(path, frames, force=True)
    with TiffReader(path) as reader:
        np.testing.assert_array_equal(read_all(reader), frames)


@pytest.mark.parametrize("writer_class", [TiffWriter, FolderWriter])
def test_exception_mid_write_leaves_nothing_behind(tmp_path, writer_class):
    frames = frames_of(np.uint16)
    with pytest.raises(RuntimeError, match="interrupted"):
        with writer_class(tmp_path / "out.tif", frames.shape, frames.dtype) as writer:
            writer.write(frames[0])
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_missing_frames_leave_nothing_behind(tmp_path):
    frames = frames_of(np.uint16)
    writer = TiffWriter(tmp_path / "short.tif", frames.shape, frames.dtype)
    writer.write(frames[0])
    with pytest.raises(DedkitError, match="1 were written"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_large_stacks_are_written_as_bigtiff(tmp_path, monkeypatch):
    monkeypatch.setattr(tiff, "_CLASSIC_TIFF_LIMIT", 100)
    path = tmp_path / "big.tif"
    frames = frames_of(np.uint16)
    write_stack(path, frames)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
    with TiffReader(path) as reader:
        np.testing.assert_array_equal(read_all(reader), frames)


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("fraction", [0.5, 0.95])
def test_truncated_tiff_raises_dedkit_error(tmp_path, compression, fraction):
    path = tmp_path / "cut.tif"
    write_stack(path, frames_of(np.uint16, shape=(2, 64, 64)), compression=compression)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DedkitError) as err:
        with TiffReader(path) as reader:
            for i in range(len(reader)):
                reader.read(i)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"", b"II*\x00", b"not a tiff at all" * 10])
def test_corrupt_tiff_raises_dedkit_error_when_opening(tmp_path, content):
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(DedkitError) as err:
        TiffReader(path)
    assert str(path) in str(err.value)


def test_pages_of_different_shapes_are_refused(tmp_path):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((4, 4), np.uint8), photometric="minisblack")
        tif.write(np.zeros((4, 5), np.uint8), photometric="minisblack")
    with pytest.raises(DedkitError, match="page 1"):
        TiffReader(path)


def test_open_stack_and_create_stack_use_these_classes(tmp_path):
    frames = frames_of(np.float32)
    for name, writer_class, reader_class in [
        ("stack.tif", TiffWriter, TiffReader),
        ("folder", FolderWriter, FolderReader),
    ]:
        path = tmp_path / name
        with create_stack(path, frames.shape, frames.dtype, compression="zstd") as writer:
            assert type(writer) is writer_class
            for frame in frames:
                writer.write(frame)
        with open_stack(path) as reader:
            assert type(reader) is reader_class
            np.testing.assert_array_equal(read_all(reader), frames)


# --- folders of numbered files -----------------------------------------------------------


def test_folder_files_are_ordered_by_their_last_number(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    pages = {}
    for number in [10, 2, 1, 33]:
        page = np.full((3, 4), number, np.uint16)
        pages[number] = page
        tifffile.imwrite(folder / f"tilt5_frame_{number}.tif", page, photometric="minisblack")
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden_7.tif").write_bytes(b"")

    assert [p.name for p in numbered_frame_files(folder)] == [
        "tilt5_frame_1.tif",
        "tilt5_frame_2.tif",
        "tilt5_frame_10.tif",
        "tilt5_frame_33.tif",
    ]
    with FolderReader(folder) as reader:
        assert reader.info.format == "folder"
        assert reader.info.shape == (4, 3, 4)
        assert [int(reader.read(i)[0, 0]) for i in range(4)] == [1, 2, 10, 33]


@pytest.mark.parametrize("packing", ["none", "serialemccd", "tiff4"])
def test_folder_write_and_read(tmp_path, packing):
    frames = four_bit_frames(shape=(3, 4, 6))
    folder = tmp_path / "movie"
    options = dict(packing=packing, titles=["one title"], pixel_size=0.83)
    if packing != "tiff4":
        options["compression"] = "lzw"
    with FolderWriter(folder, frames.shape, np.uint8, **options) as writer:
        for frame in frames:
            writer.write(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie"]
    # the frames and dedkit's manifest (issue 13 item 1)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".dedkit-output.json",
        "movie_001.tif",
        "movie_002.tif",
        "movie_003.tif",
    ]
    np.testing.assert_array_equal(tifffile.imread(folder / "movie_002.tif").shape[0], 4)
    with FolderReader(folder) as reader:
        assert reader.info.packing == packing
        assert reader.info.shape == frames.shape
        assert reader.info.pixel_size == pytest.approx((0.83, 0.83, 0.83))
        assert "one title" in reader.info.titles
        np.testing.assert_array_equal(read_all(reader), frames)
        if packing == "serialemccd":
            np.testing.assert_array_equal(reader.read_packed(2), pack_4bit(frames[2]).data)


def test_folder_numbers_have_at_least_three_digits(tmp_path):
    frames = np.zeros((12, 2, 2), np.uint8)
    folder = tmp_path / "many"
    with FolderWriter(folder, frames.shape, frames.dtype) as writer:
        for frame in frames:
            writer.write(frame)
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert names[0] == "many_001.tif" and names[-1] == "many_012.tif"


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DedkitError, match="no .tif") as err:
        FolderReader(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_folder_file_without_number_is_an_error(tmp_path):
    tifffile.imwrite(tmp_path / "frame_1.tif", np.zeros((2, 2), np.uint8))
    tifffile.imwrite(tmp_path / "frame.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(DedkitError, match="frame.tif has no frame number"):
        FolderReader(tmp_path)


def test_folder_duplicate_numbers_are_an_error(tmp_path):
    tifffile.imwrite(tmp_path / "a_1.tif", np.zeros((2, 2), np.uint8))
    tifffile.imwrite(tmp_path / "b_01.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(DedkitError, match="same frame number 1"):
        FolderReader(tmp_path)


def test_folder_with_mixed_shapes_is_an_error(tmp_path):
    tifffile.imwrite(tmp_path / "f_1.tif", np.zeros((2, 2), np.uint8))
    tifffile.imwrite(tmp_path / "f_2.tif", np.zeros((2, 3), np.uint8))
    with pytest.raises(DedkitError, match="f_2.tif"):
        FolderReader(tmp_path)


def test_folder_file_with_several_frames_is_an_error(tmp_path):
    tifffile.imwrite(tmp_path / "f_1.tif", np.zeros((2, 3, 3), np.uint8), photometric="minisblack")
    with pytest.raises(DedkitError, match="one per file"):
        FolderReader(tmp_path)
