"""EER movies: the encoder against tifffile + imagecodecs (the reference decoder) at 1x,
2x and 4x, grouping and dropped fractions, lazy reading, bad files (one line naming the
file), the gain reference (RELION's rule and orientation), and alignment end to end."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import tifffile

from dedkit.errors import DedkitError
from dedkit.io import open_stack
from dedkit.io.eer import DEFAULT_EER_GROUP, EerReader, is_eer_file, read_eer_gain, write_eer
from dedkit.io.stack import create_stack
from eermovie import drifting_eer_movie

BITS = {65000: (8, 2, 2), 65001: (7, 2, 2)}


def random_fractions(n, shape, *, bits=(7, 2, 2), density=0.3, seed=0):
    """``n`` fractions of random events, (x, y) on the sub-pixel grid, one per pixel at
    most; fraction 1 is empty and fraction 2 has an event in the last pixel."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    _, horz, vert = bits
    out = []
    for i in range(n):
        hit = rng.random(shape) < density
        if i == 1:
            hit[:] = False
        if i == 2:
            hit[-1, -1] = True
        y, x = np.nonzero(hit)
        sx = rng.integers(0, 2**horz, x.size)
        sy = rng.integers(0, 2**vert, y.size)
        out.append(np.stack([(x << horz) + sx, (y << vert) + sy], axis=1))
    return out


def counts(events, shape, sampling, bits=(7, 2, 2)) -> np.ndarray:
    """The image of ``events`` at ``sampling`` (the truth, made without any decoder)."""
    _, horz, vert = bits
    level = sampling.bit_length() - 1
    image = np.zeros((shape[0] * sampling, shape[1] * sampling), np.int64)
    np.add.at(image, (events[:, 1] >> (vert - level), events[:, 0] >> (horz - level)), 1)
    return image


# ------------------------------------------------------------------ the encoder


@pytest.mark.parametrize(
    "compression,bits",
    [(65001, None), (65000, None), (65002, (7, 2, 2)), (65002, (6, 3, 3)), (65002, (9, 2, 2))],
)
@pytest.mark.parametrize("sampling", [1, 2, 4])
def test_encoder_round_trips_through_tifffile(tmp_path, compression, bits, sampling):
    layout = bits or BITS[compression]
    shape = (40, 56)
    fractions = random_fractions(4, shape, bits=layout)
    path = tmp_path / "movie.eer"
    write_eer(path, fractions, shape=shape, compression=compression, bits=bits)
    with tifffile.TiffFile(path, superres=sampling.bit_length() - 1) as tif:
        assert tif.is_eer
        decoded = tif.asarray()
    assert decoded.shape == (4, shape[0] * sampling, shape[1] * sampling)
    for i, events in enumerate(fractions):
        assert np.array_equal(decoded[i].astype(np.int64), counts(events, shape, sampling, layout))


def test_encoder_takes_sub_pixel_images_and_long_empty_runs(tmp_path):
    image = np.zeros((4 * 300, 4 * 5), np.uint8)  # 1500 pixels: runs longer than 127
    image[4 * 299 + 3, 4 * 4 + 1] = 1
    image[2, 9] = 1
    write_eer(tmp_path / "m.eer", [image], shape=(300, 5))
    with tifffile.TiffFile(tmp_path / "m.eer", superres=2) as tif:
        assert np.array_equal(tif.asarray(), image.astype(bool))


def test_encoder_writes_metadata_tifffile_reads(tmp_path):
    write_eer(
        tmp_path / "m.eer",
        [np.zeros((0, 2), int)] * 3,
        shape=(8, 8),
        metadata={"exposureTime": 2.5, "exposureTime.unit": "s", "totalDose": 40.0},
    )
    with tifffile.TiffFile(tmp_path / "m.eer") as tif:
        meta = tif.eer_metadata
    assert meta["numberOfFrames"] == 3
    assert meta["exposureTime"] == 2.5 and meta["exposureTime.unit"] == "s"
    with EerReader(tmp_path / "m.eer", group=1) as movie:
        assert movie.info.extra["exposure_time"] == 2.5
        assert movie.info.extra["total_dose"] == 40.0


def test_encoder_refuses_two_events_in_one_pixel(tmp_path):
    with pytest.raises(DedkitError, match="one event per pixel"):
        write_eer(tmp_path / "m.eer", [np.array([[0, 0], [3, 3]])], shape=(4, 4))
    with pytest.raises(DedkitError, match="outside"):
        write_eer(tmp_path / "m.eer", [np.array([[16, 0]])], shape=(4, 4))


# ------------------------------------------------------------------- the reader


@pytest.mark.parametrize("sampling", [1, 2, 4])
def test_reader_sums_groups_and_drops_the_leftover(tmp_path, sampling):
    shape = (24, 32)
    fractions = random_fractions(11, shape, density=0.2, seed=sampling)
    write_eer(tmp_path / "m.eer", fractions, shape=shape)
    with open_stack(tmp_path / "m.eer", eer_group=3, eer_sampling=sampling) as movie:
        info = movie.info
        assert info.format == "eer" and info.compression == "eer_v1"
        assert info.shape == (3, 24 * sampling, 32 * sampling)
        assert info.dtype == np.uint8
        assert info.extra["fractions"] == 11
        assert info.extra["group"] == 3 and info.extra["sampling"] == sampling
        assert info.extra["dropped_fractions"] == 2
        for k in range(3):
            truth = sum(counts(fractions[3 * k + j], shape, sampling) for j in range(3))
            frame = movie.read(k)
            assert frame.dtype == np.uint8
            assert np.array_equal(frame, truth)
        # the two dropped fractions are nowhere
        assert sum(int(movie.read(k).sum()) for k in range(3)) == sum(len(f) for f in fractions[:9])


def test_frames_are_in_bitstream_order_as_tifffile_gives_them(tmp_path):
    # RELION and MotionCor3 do not flip EER frames: neither does dedkit
    write_eer(tmp_path / "m.eer", [np.array([[0, 0]])], shape=(4, 4))
    with EerReader(tmp_path / "m.eer", group=1) as movie:
        frame = movie.read(0)
    assert frame[0, 0] == 1 and frame.sum() == 1
    assert np.array_equal(frame, tifffile.imread(tmp_path / "m.eer").astype(np.uint8))


def test_large_groups_are_uint16_and_default_group_is_relions(tmp_path):
    fractions = [np.array([[1, 1]])] * 300
    write_eer(tmp_path / "m.eer", fractions, shape=(2, 2))
    with EerReader(tmp_path / "m.eer", group=300) as movie:
        assert movie.info.dtype == np.uint16
        assert movie.read(0)[0, 0] == 300
    with EerReader(tmp_path / "m.eer") as movie:
        assert movie.info.extra["group"] == DEFAULT_EER_GROUP == 40
        assert len(movie) == 7 and movie.info.extra["dropped_fractions"] == 20


def test_eer_tiff_with_tif_suffix_opens_as_eer(tmp_path):
    write_eer(tmp_path / "m.tif", [np.array([[5, 6]])] * 2, shape=(4, 4))
    assert is_eer_file(tmp_path / "m.tif")
    with open_stack(tmp_path / "m.tif", eer_group=2) as movie:
        assert movie.info.format == "eer" and movie.read(0)[1, 1] == 2
    # an ordinary TIFF stack ignores the EER options
    with create_stack(tmp_path / "plain.tif", (1, 4, 4), np.uint8) as w:
        w.write(np.ones((4, 4)))
    assert not is_eer_file(tmp_path / "plain.tif")
    with open_stack(tmp_path / "plain.tif", eer_group=5, eer_sampling=4) as stack:
        assert stack.info.format == "tiff"


def test_reading_a_frame_reads_only_its_fractions(tmp_path, monkeypatch):
    write_eer(tmp_path / "m.eer", random_fractions(8, (16, 16)), shape=(16, 16))
    movie = EerReader(tmp_path / "m.eer", group=2)
    spans = [(offs[0], offs[0] + cnts[0]) for _, offs, cnts in movie._strips]
    seen = []
    real = os.pread

    def pread(fd, n, offset):
        seen.append((offset, offset + n))
        return real(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    movie.read(2)
    movie.close()
    assert seen == spans[4:6]


# ------------------------------------------------------------------- bad files


def _one_line_naming(error, path):
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_truncated_file_is_one_line(tmp_path):
    path = tmp_path / "m.eer"
    write_eer(path, random_fractions(6, (16, 16)), shape=(16, 16))
    data = path.read_bytes()
    with EerReader(path, group=1) as movie:
        last_offset = movie._strips[-1][1][0]
    path.write_bytes(data[: last_offset + 4])
    with pytest.raises(DedkitError) as error:
        EerReader(path, group=1)
    _one_line_naming(error, path)


def test_garbage_and_non_eer_files_are_one_line(tmp_path):
    garbage = tmp_path / "g.eer"
    garbage.write_bytes(b"II+\0" + os.urandom(64))
    with pytest.raises(DedkitError) as error:
        open_stack(garbage)
    _one_line_naming(error, garbage)
    plain = tmp_path / "p.eer"
    tifffile.imwrite(plain, np.zeros((4, 4), np.uint8))
    with pytest.raises(DedkitError, match="not an EER file") as error:
        open_stack(plain)
    _one_line_naming(error, plain)


def test_lying_strip_count_is_refused_before_reading(tmp_path):
    path = tmp_path / "m.eer"
    write_eer(path, random_fractions(2, (8, 8)), shape=(8, 8))
    data = bytearray(path.read_bytes())
    # StripByteCounts (tag 279, LONG8) of the first IFD says 2**40 bytes
    entry = data.find(struct.pack("<HHQ", 279, 16, 1))
    data[entry + 12 : entry + 20] = struct.pack("<Q", 2**40)
    path.write_bytes(bytes(data))
    with pytest.raises(DedkitError, match="truncated or corrupt") as error:
        EerReader(path, group=1)
    _one_line_naming(error, path)


def test_corrupt_bitstream_is_one_line(tmp_path):
    path = tmp_path / "m.eer"
    write_eer(path, [np.zeros((0, 2), int)] * 2, shape=(4, 4))
    with EerReader(path, group=1) as movie:
        _, offsets, nbytes = movie._strips[0]
    data = bytearray(path.read_bytes())
    # runs of 127 empty pixels in a 16-pixel fraction
    data[offsets[0] : offsets[0] + nbytes[0]] = b"\xff" * nbytes[0]
    path.write_bytes(bytes(data))
    with EerReader(path, group=1) as movie, pytest.raises(DedkitError) as error:
        movie.read(0)
    assert "fraction 0" in _one_line_naming(error, path)


@pytest.mark.parametrize(
    "kwargs,message",
    [({"group": 0}, "positive integer"), ({"group": 9}, "larger than"), ({"sampling": 3}, "1, 2")],
)
def test_bad_group_or_sampling(tmp_path, kwargs, message):
    write_eer(tmp_path / "m.eer", [np.zeros((0, 2), int)] * 3, shape=(4, 4))
    with pytest.raises(DedkitError, match=message):
        EerReader(tmp_path / "m.eer", **kwargs)


def test_sampling_beyond_the_sub_pixel_bits_is_refused(tmp_path):
    write_eer(tmp_path / "m.eer", [np.zeros((0, 2), int)], shape=(4, 4), compression=65002,
              bits=(8, 1, 1))  # fmt: skip
    with pytest.raises(DedkitError, match="sub-pixel bits"):
        EerReader(tmp_path / "m.eer", group=1, sampling=4)


# ------------------------------------------------------------------- gain reference


def _write_mrc(path, image):
    with create_stack(path, (1, *image.shape), np.float32) as w:
        w.write(image)


def test_mrc_gain_is_inverted_as_relion_does(tmp_path):
    raw = np.array([[1.0, 2.0, 4.0, 0.0]] * 4, np.float32)
    _write_mrc(tmp_path / "gain.mrc", raw)
    gain = read_eer_gain(tmp_path / "gain.mrc", (4, 4))
    mean = raw.mean()
    expected = np.where(raw > 0, mean / np.where(raw > 0, raw, 1), 0)
    assert np.allclose(gain, expected)
    assert gain[0, 3] == 0  # a defect stays 0


def test_falcon_gain_tiff_is_multiplicative_in_the_frames_row_order(tmp_path):
    stored = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    tifffile.imwrite(tmp_path / "ref.gain", stored)
    gain = read_eer_gain(tmp_path / "ref.gain", (3, 4))
    # stored row 0 multiplies EER row 0 (the frames are not flipped either)
    assert np.array_equal(gain, stored)


def test_gain_twice_the_frames_is_binned(tmp_path):
    raw = np.ones((8, 8), np.float32)
    raw[0:2, 0:2] = 2.0
    _write_mrc(tmp_path / "gain8.mrc", raw)
    gain = read_eer_gain(tmp_path / "gain8.mrc", (4, 4))
    assert gain.shape == (4, 4)
    assert gain[0, 0] == pytest.approx(gain[1, 1] / 2)


def _defects(path, ny, nx):
    path.write_text(f"CameraSizeX {nx}\nCameraSizeY {ny}\nBadPixels 1 2\n")


@pytest.mark.parametrize("sampling", [1, 2])
def test_prepare_corrections_fits_physical_gain_and_defects_to_sampled_frames(tmp_path, sampling):
    from dedkit.jobs.stacks import prepare_corrections

    shape = (16, 16)
    write_eer(tmp_path / "m.eer", random_fractions(2, shape), shape=shape)
    raw = np.full(shape, 2.0, np.float32)
    raw[0, 0] = 4.0
    _write_mrc(tmp_path / "gain.mrc", raw)
    _defects(tmp_path / "defects.txt", *shape)
    with open_stack(tmp_path / "m.eer", eer_group=1, eer_sampling=sampling) as movie:
        info = movie.info
    fixes = prepare_corrections(
        info, tmp_path / "m.eer", tmp_path / "gain.mrc", tmp_path / "defects.txt", None
    )
    assert fixes.gain.factor == sampling
    assert fixes.gain.frame_shape == info.shape[1:]
    assert fixes.gain.data[0, 0] == pytest.approx(fixes.gain.data[5, 5] / 2)
    assert fixes.defects is not None


def test_defect_list_at_a_quarter_of_4x_frames_is_a_clear_error(tmp_path):
    # IMOD's rules scale a defect list up to twice its camera size, not 4 times
    from dedkit.jobs.stacks import prepare_corrections

    write_eer(tmp_path / "m.eer", random_fractions(1, (8, 8)), shape=(8, 8))
    _defects(tmp_path / "defects.txt", 8, 8)
    with open_stack(tmp_path / "m.eer", eer_group=1, eer_sampling=4) as movie:
        info = movie.info
    with pytest.raises(DedkitError, match="twice"):
        prepare_corrections(info, tmp_path / "m.eer", None, tmp_path / "defects.txt", None)


# ------------------------------------------------------------------- end to end


def test_align_movie_on_an_eer_file(tmp_path):
    from dedkit.jobs.align import align_movie

    shape, n_frames, group = (96, 96), 6, 4
    drifting_eer_movie(tmp_path / "movie.eer", n_frames=n_frames, group=group, shape=shape)
    report = align_movie(
        tmp_path / "movie.eer", tmp_path / "sum.mrc", eer_group=group, eer_sampling=1,
        align_binning=1,
    )  # fmt: skip
    shifts = np.array(report.shifts_px)
    assert shifts.shape == (n_frames, 2)
    steps = np.diff(shifts, axis=0)
    # content moves +1 row (Y) and -1 column (X) per frame, in the frames' row order
    assert np.allclose(steps, [[-1.0, 1.0]] * (n_frames - 1), atol=0.3), shifts
    with open_stack(tmp_path / "sum.mrc") as total:
        assert total.info.shape == (1, *shape)
