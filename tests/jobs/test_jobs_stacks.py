"""The stack jobs called directly (:mod:`dedkit.jobs.stacks`): the report they return and
the file they write, against numpy expectations and against what the command writes."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import tifffile

from dedkit.io.stack import open_stack
from dedkit.jobs.stacks import (
    StackReport,
    convert_stack,
    describe_stack,
    make_defect_map,
    normalize_stack,
    pack_stack,
    rotflip_stack,
    unpack_stack,
)

NZ, NY, NX = 3, 16, 24


def read_stack(path):
    with open_stack(path) as s:
        return np.stack([s.read(i) for i in range(len(s))])


def write_mrc(path, data):
    data = np.asarray(data)
    with mrcfile.new(path) as m:
        m.set_data(data.view(np.int8) if data.dtype == np.uint8 else data)
    return path


@pytest.fixture
def counts(tmp_path):
    raw = np.random.default_rng(0).integers(0, 16, (NZ, NY, NX)).astype(np.uint8)
    return raw, write_mrc(tmp_path / "raw.mrc", raw)


@pytest.fixture
def gain(tmp_path):
    # multiples of 1/8: raw x gain x scale is exact in float32
    values = (np.random.default_rng(1).integers(4, 17, (NY, NX)) / 8).astype(np.float32)
    return values, write_mrc(tmp_path / "gain.mrc", values)


def check_report(report, command, output, *, dtype, shape=(NZ, NY, NX)):
    assert isinstance(report, StackReport)
    assert report.command == command
    assert report.output == str(output)
    assert report.frames == shape[0]
    assert tuple(report.shape) == shape
    assert report.dtype == dtype
    assert report.output_bytes == output.stat().st_size
    assert report.seconds >= 0
    d = report.to_dict()
    assert d["command"] == command and d["shape"] == list(shape)


def test_normalize_stack_float_is_raw_x_gain_x_16(counts, gain, tmp_path):
    raw, src = counts
    values, ref = gain
    out = tmp_path / "norm.mrc"
    report = normalize_stack(src, ref, out)
    check_report(report, "norm", out, dtype="float32")
    assert report.inputs == [str(src), str(ref)]
    assert report.details["scale"] == 16 and report.details["gain_factor"] == 1
    assert report.n_saturated == report.n_negative == report.n_truncated == 0
    expected = raw.astype(np.float32) * (values * np.float32(16))
    np.testing.assert_array_equal(read_stack(out), expected)


def test_normalize_stack_integer_mode_rounds_and_counts_saturation(counts, gain, tmp_path):
    raw, src = counts
    values, ref = gain
    out = tmp_path / "norm.mrc"
    report = normalize_stack(src, ref, out, scale=12.5, mode="byte")
    check_report(report, "norm", out, dtype="uint8")
    v = np.floor(raw.astype(np.float64) * values * 12.5 + 0.5)
    assert report.n_saturated == int((v > 255).sum()) > 0
    np.testing.assert_array_equal(read_stack(out), np.clip(v, 0, 255).astype(np.uint8))


def test_normalize_stack_without_gain_only_scales(counts, tmp_path):
    raw, src = counts
    out = tmp_path / "scaled.mrc"
    report = normalize_stack(src, None, out, scale=2, mode="short")
    check_report(report, "norm", out, dtype="int16")
    np.testing.assert_array_equal(read_stack(out), raw.astype(np.int16) * 2)


def test_normalize_stack_refuses_an_existing_output_without_force(counts, gain, tmp_path):
    from dedkit.errors import DedkitError

    _, src = counts
    _, ref = gain
    out = tmp_path / "norm.mrc"
    out.write_bytes(b"keep")
    with pytest.raises(DedkitError):
        normalize_stack(src, ref, out)
    assert out.read_bytes() == b"keep"
    normalize_stack(src, ref, out, force=True)
    assert out.stat().st_size > 4


@pytest.mark.slow
def test_normalize_stack_with_defects_and_rotflip_writes_what_norm_writes(sample, tmp_path, cli):
    # the README's command: dedkit norm frames.mrc SuperRef.mrc norm.mrc --scale 32
    #   --mode ushort --rotflip -1 --defects defects.txt
    out = tmp_path / "job.mrc"
    report = normalize_stack(
        sample / "frames.mrc",
        sample / "SuperRef.mrc",
        out,
        scale=32,
        mode="ushort",
        rotflip_value=-1,
        defects=sample / "defects.txt",
    )
    assert report.details == {
        "scale": 32,
        "mode": "ushort",
        "gain_rotflip": 2,  # read from the frames' titles (r/f 2)
        "gain_factor": 1,
        "defects": str(sample / "defects.txt"),
    }
    assert report.dtype == "uint16" and report.frames == 2
    assert report.n_rounded > 0 and report.n_saturated == 0
    status, _, err = cli(
        "norm", sample / "frames.mrc", sample / "SuperRef.mrc", tmp_path / "cli.mrc",
        "--scale", "32", "--mode", "ushort", "--rotflip", "-1",
        "--defects", sample / "defects.txt", "-q",
    )  # fmt: skip
    assert status == 0, err
    assert out.read_bytes() == (tmp_path / "cli.mrc").read_bytes()


@pytest.mark.parametrize("value", [1, 3, 6])
def test_rotflip_stack_turns_every_frame(counts, tmp_path, value):
    raw, src = counts
    out = tmp_path / "turned.mrc"
    report = rotflip_stack(src, out, value)
    turned = raw[:, :, ::-1] if value >= 4 else raw
    turned = np.rot90(turned, -(value % 4), axes=(1, 2))
    check_report(report, "rotflip", out, dtype="uint8", shape=turned.shape)
    np.testing.assert_array_equal(read_stack(out), turned)


@pytest.mark.parametrize("target, suffix", [("mode101", ".mrc"), ("tiff4", ".tif")])
def test_pack_then_unpack_gives_the_counts_back(counts, tmp_path, target, suffix):
    raw, src = counts
    packed = tmp_path / f"packed{suffix}"
    report = pack_stack(src, packed, target)
    check_report(report, "pack", packed, dtype="uint8")
    assert report.packing == target
    if suffix == ".mrc":
        # 4 bits: half a byte per pixel after the 1024-byte header
        assert report.output_bytes == 1024 + raw.nbytes // 2
    assert describe_stack(packed)["packing"] == target
    out = tmp_path / "unpacked.mrc"
    report = unpack_stack(packed, out)
    check_report(report, "unpack", out, dtype="uint8")
    assert report.packing == "none"
    np.testing.assert_array_equal(read_stack(out), raw)


def test_convert_stack_to_tiff_keeps_values_and_orientation(counts, tmp_path):
    raw, src = counts
    out = tmp_path / "frames.tif"
    report = convert_stack(src, out, compression="zip")
    check_report(report, "convert", out, dtype="uint8")
    assert report.details["compression_used"] == "zip"
    # TIFF stores row 0 at the top
    np.testing.assert_array_equal(tifffile.imread(out), raw[:, ::-1, :])


def test_make_defect_map_counts_the_defect_pixels(sample, tmp_path, cli):
    out = tmp_path / "defects.mrc"
    report = make_defect_map(sample / "defects.txt", sample / "frames.mrc", out)
    shape = (1, 816, 1152)
    check_report(report, "defectmap", out, dtype="uint8", shape=shape)
    dmap = read_stack(out)
    assert set(np.unique(dmap)) == {0, 1}
    assert report.details["defect_pixels"] == int(dmap.sum()) > 0
    status, _, err = cli("defectmap", sample / "defects.txt", sample / "frames.mrc",
                         tmp_path / "cli.mrc")  # fmt: skip
    assert status == 0, err
    assert out.read_bytes() == (tmp_path / "cli.mrc").read_bytes()


def test_describe_stack_of_the_sample_frames(sample):
    d = describe_stack(sample / "frames.mrc")
    assert (d["nx"], d["ny"], d["nz"]) == (1152, 816, 2)
    assert d["format"] == "mrc" and d["mode"] == 101 and d["packing"] == "mode101"
    assert d["rotflip"] == 2
    assert d["gain_reference"] == "SuperRef.mrc" and d["defect_file"] == "defects.txt"
