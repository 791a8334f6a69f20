"""MRC reading and writing, including mode 101 and IMOD's half-X 4-bit bytes."""

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.mrc import (
    IMOD_FLAG_4BIT,
    IMOD_STAMP,
    MrcReader,
    MrcWriter,
    is_packed_by_title,
)
from dedkit.io.pack import pack_4bit
from dedkit.io.stack import create_stack, open_stack


def counts(rng, shape, high=16):
    return rng.integers(0, high, shape).astype(np.uint8)


def write(path, frames, dtype=None, **kw):
    frames = np.asarray(frames)
    with create_stack(path, frames.shape, dtype or frames.dtype, **kw) as w:
        for f in frames:
            w.write(f)
    return w


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.float32, np.float16])
def test_round_trip_and_mrcfile_agree(tmp_path, rng, dtype):
    data = (rng.normal(10, 3, (3, 5, 7))).astype(dtype)
    p = tmp_path / "a.mrc"
    write(p, data, titles=["first", "second"], pixel_size=1.5)
    with open_stack(p) as r:
        assert r.info.shape == (3, 5, 7)
        assert r.info.titles == ["first", "second"]
        assert r.info.pixel_size == (1.5, 1.5, 1.5)
        np.testing.assert_array_equal(np.stack(list(r)), data)
    with mrcfile.open(p) as m:
        got = m.data.view(np.uint8) if dtype == np.uint8 else m.data
        np.testing.assert_array_equal(got, data)
        assert m.header.dmin == pytest.approx(float(data.min()))
        assert m.header.dmax == pytest.approx(float(data.max()))
        assert m.header.dmean == pytest.approx(float(data.astype(float).mean()), rel=1e-5)
        assert m.header.rms == pytest.approx(float(data.astype(float).std()), rel=1e-4)
        assert m.voxel_size.x == pytest.approx(1.5)


def test_reads_files_written_by_mrcfile(tmp_path, rng):
    data = rng.normal(0, 1, (4, 6, 9)).astype(np.float32)
    p = tmp_path / "m.mrc"
    with mrcfile.new(p) as m:
        m.set_data(data)
        m.voxel_size = 2.0
    with open_stack(p) as r:
        assert r.info.mode == 2 and r.info.packing == "none"
        np.testing.assert_array_equal(r.read(2), data[2])
        np.testing.assert_array_equal(r.read(-1), data[-1])
        assert r.info.pixel_size[0] == pytest.approx(2.0)


def test_mode0_is_signed_only_with_imod_flag(tmp_path):
    data = np.array([[[200, 3]]], np.uint8)
    p = tmp_path / "b.mrc"
    write(p, data)
    with open_stack(p) as r:
        assert r.info.dtype == np.uint8
        assert r.read(0)[0, 0] == 200
    signed = tmp_path / "s.mrc"
    write(signed, data.view(np.int8))
    with open_stack(signed) as r:
        assert r.info.dtype == np.int8
        assert r.read(0)[0, 0] == -56


def test_big_endian_file(tmp_path, rng):
    data = rng.normal(0, 1, (2, 3, 4)).astype(np.float32)
    p = tmp_path / "be.mrc"
    with mrcfile.new(p) as m:
        m.set_data(data.astype(">f4"))
    with open_stack(p) as r:
        assert r.info.extra["little_endian"] is False
        np.testing.assert_array_equal(r.read(1), data[1])


@pytest.mark.parametrize("nx", [8, 9])
def test_mode101_layout(tmp_path, rng, nx):
    data = counts(rng, (2, 3, nx))
    p = tmp_path / "p.mrc"
    write(p, data, packing="mode101")
    raw = p.read_bytes()
    header = np.frombuffer(raw[:1024], np.int32)
    assert tuple(header[:4]) == (nx, 3, 2, 101)
    row_bytes = (nx + 1) // 2
    assert len(raw) == 1024 + 2 * 3 * row_bytes
    first = np.frombuffer(raw[1024 : 1024 + row_bytes], np.uint8)
    # left pixel in the low nibble, each row padded to whole bytes
    assert first[0] == data[0, 0, 0] | (data[0, 0, 1] << 4)
    if nx % 2:
        assert first[-1] == data[0, 0, nx - 1]
    with open_stack(p) as r:
        assert r.info.packing == "mode101" and r.info.shape == (2, 3, nx)
        np.testing.assert_array_equal(np.stack(list(r)), data)
        np.testing.assert_array_equal(r.read_packed(1), pack_4bit(data[1]).data)


def test_half_bytes_written_with_imod_flag(tmp_path, rng):
    data = counts(rng, (2, 4, 10))
    p = tmp_path / "h.mrc"
    write(p, data, packing="half-bytes", titles=["anything"])
    raw = p.read_bytes()
    nx, ny, nz, mode = np.frombuffer(raw[:16], np.int32)
    assert (nx, ny, nz, mode) == (5, 4, 2, 0)
    assert np.frombuffer(raw[152:160], np.int32).tolist() == [IMOD_STAMP, IMOD_FLAG_4BIT]
    with open_stack(p) as r:
        assert r.info.packing == "half-bytes" and r.info.shape == (2, 4, 10)
        np.testing.assert_array_equal(r.read(0), data[0])
    with mrcfile.open(p) as m:  # other programs see bytes of half the width
        assert m.data.shape == (2, 4, 5)


def test_half_bytes_odd_width_refused(tmp_path):
    with pytest.raises(DedkitError, match="odd width"):
        MrcWriter(tmp_path / "o.mrc", (1, 2, 7), np.uint8, packing="half-bytes")
    assert not list(tmp_path.iterdir())


def test_title_rule_for_packed_bytes(tmp_path, rng):
    # K3 super-resolution 11520 x 8184 stored as 5760 bytes wide, one "4 bits packed" title,
    # no IMOD flag: IMOD's title rule applies. Keep the file small by using 1 frame of a
    # mrcfile-written byte image of that size.
    assert is_packed_by_title(["SerialEMCCD: Frames . ., 4 bits packed  r/f 0"], 5760, 8184)
    assert is_packed_by_title(["x 4 bits packed"], 4092, 11520)  # transposed
    assert is_packed_by_title(["x 4 bits packed"], 3839, 7421)  # within 2 pixels
    assert not is_packed_by_title(["x 4 bits packed"], 100, 8184)
    assert not is_packed_by_title(["x 4 bits packed", "second"], 5760, 8184)
    assert not is_packed_by_title(["scaled by 16.00"], 5760, 8184)
    p = tmp_path / "k3.mrc"
    data = np.zeros((1, 8184, 5760), np.int8)
    data[0, 0, 0] = 0x21
    with mrcfile.new(p) as m:
        m.set_data(data)
        m.header.label[0] = b"SerialEMCCD: Frames . ., 4 bits packed  r/f 0".ljust(80)
        m.header.nlabl = 1
    with open_stack(p) as r:
        assert r.info.packing == "half-bytes" and r.info.nx == 11520
        assert r.read(0)[0, :2].tolist() == [1, 2]


def test_header_claiming_more_data_refused_before_reading(tmp_path, rng):
    p = tmp_path / "t.mrc"
    write(p, counts(rng, (3, 4, 6)))
    raw = bytearray(p.read_bytes())
    raw[8:12] = np.int32(2**30).tobytes()
    p.write_bytes(bytes(raw))
    with pytest.raises(DedkitError, match="claims"):
        MrcReader(p)


def test_truncated_and_tiny_files(tmp_path, rng):
    p = tmp_path / "t.mrc"
    write(p, counts(rng, (3, 4, 6)))
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DedkitError, match="truncated"):
        MrcReader(p)
    tiny = tmp_path / "tiny.mrc"
    tiny.write_bytes(b"MAP " * 10)
    with pytest.raises(DedkitError, match="1024-byte header"):
        MrcReader(tiny)
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(DedkitError, match="not a readable MRC"):
        MrcReader(junk)


def test_writer_refuses_wrong_frames_and_cleans_up(tmp_path, rng):
    p = tmp_path / "w.mrc"
    w = create_stack(p, (2, 3, 4), np.uint16)
    with pytest.raises(DedkitError, match="does not fit"):
        w.write(np.zeros((4, 3)))
    w.write(np.zeros((3, 4)))
    with pytest.raises(DedkitError, match="2 frames but 1"):
        w.close()
    assert list(tmp_path.iterdir()) == []


def test_exception_inside_writer_leaves_nothing(tmp_path):
    p = tmp_path / "x.mrc"
    with pytest.raises(RuntimeError), create_stack(p, (2, 3, 4), np.uint16) as w:
        w.write(np.ones((3, 4)))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path, rng):
    p = tmp_path / "e.mrc"
    write(p, counts(rng, (1, 2, 2)))
    before = p.read_bytes()
    with pytest.raises(DedkitError, match="--force"):
        create_stack(p, (1, 2, 2), np.uint8)
    assert p.read_bytes() == before
    write(p, np.full((1, 2, 2), 7, np.uint8), force=True)
    with open_stack(p) as r:
        assert (r.read(0) == 7).all()


def test_conversion_counts_changes(tmp_path):
    p = tmp_path / "c.mrc"
    frame = np.array([[1.4, 300.0], [-2.0, 3.0]], np.float32)
    w = write(p, frame[None], dtype=np.uint8)
    assert (w.n_saturated, w.n_negative, w.n_rounded) == (1, 1, 1)
    w = write(tmp_path / "d.mrc", frame[None] * 100, dtype=np.uint8)
    assert w.n_saturated == 2
    w = write(tmp_path / "e.mrc", np.array([[[3, 17]]], np.uint8), packing="mode101")
    assert w.n_saturated == 1
    with open_stack(tmp_path / "e.mrc") as r:
        assert r.read(0).tolist() == [[3, 15]]


@pytest.mark.parametrize("mz, cell_z", [(0, 0.0), (1, 0.0), (0, 5.0)])
@pytest.mark.parametrize("output", ["out.tif", "outdir", "out.mrc"])
def test_issue13_item14_no_z_spacing_converts(tmp_path, mz, cell_z, output):
    """An MRC with mz = 0 or a zero cell height (DE-Server's HAADFscan.mrc) is valid: its
    pixel size is (x, y) with z 0, and convert keeps x and y instead of refusing it."""
    from dedkit.jobs.stacks import convert_stack, describe_stack

    source = tmp_path / "in.mrc"
    data = np.arange(2 * 4 * 6, dtype=np.uint16).reshape(2, 4, 6)
    with mrcfile.new(source) as m:
        m.set_data(data)
        m.header.mx, m.header.my, m.header.mz = 6, 4, mz
        m.header.cella = (6 * 2.5, 4 * 3.0, cell_z)
    with MrcReader(source) as r:
        assert r.info.pixel_size == pytest.approx((2.5, 3.0, 0.0))
    assert describe_stack(source)["pixel_size"] == pytest.approx([2.5, 3.0])
    convert_stack(source, tmp_path / output)
    with open_stack(tmp_path / output) as r:
        assert r.info.pixel_size[:2] == pytest.approx((2.5, 3.0), rel=1e-6)
        np.testing.assert_array_equal(r.read(1), data[1])


def test_issue13_item14_real_file_without_z_spacing(tmp_path):
    """The DE-Server file of the issue converts to TIFF with its 56.79 A pixels."""
    from dedkit.jobs.stacks import convert_stack

    source = Path(__file__).resolve().parents[3] / "shared/cases/external/mrc/rsciio_HAADFscan.mrc"
    if not source.is_file():
        pytest.skip("shared external cases not present")
    convert_stack(source, tmp_path / "out.tif")
    with open_stack(tmp_path / "out.tif") as r, mrcfile.open(source, permissive=True) as ref:
        assert r.info.pixel_size[:2] == pytest.approx(
            (float(ref.voxel_size.x), float(ref.voxel_size.y)), rel=1e-6
        )
        np.testing.assert_array_equal(r.read(0), ref.data)


@pytest.mark.parametrize("bad", [0, -1.0, (1.0, 0.0), (1.0, 1.0, -1.0), float("nan"), "x"])
def test_issue13_item14_pixel_size_option_checked(tmp_path, bad):
    """Writers share one pixel size rule: x, y positive and finite, z positive or 0."""
    with pytest.raises(DedkitError, match="pixel size"):
        create_stack(tmp_path / "o.mrc", (1, 2, 2), np.uint8, pixel_size=bad)
    with pytest.raises(DedkitError, match="pixel size"):
        create_stack(tmp_path / "o.tif", (1, 2, 2), np.uint8, pixel_size=bad)
    assert not list(tmp_path.iterdir())
