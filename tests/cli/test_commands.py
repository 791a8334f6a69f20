"""End-to-end tests of every ``dedkit`` command on small files made on the fly.

Each output is checked exactly against numpy expectations computed here from the input
arrays, and read back with mrcfile / tifffile / plain bytes (not only with dedkit), with
the orientation rules of the formats: a dedkit (and mrcfile) array has row 0 at the
bottom, so ``tifffile.imread(out)[i] == np.flipud(frame_i)``.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from dedkit.io.atomic import MARKER
from dedkit.io.stack import open_stack
from dmwriter import write_dm

NY, NX = 16, 24
IMOD_STAMP = 1146047817


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def rot_yup(a, value):
    """r/f ``value`` on arrays with row 0 at the bottom (formats.md table)."""
    a = np.asarray(a)
    axes = (a.ndim - 2, a.ndim - 1)
    if value >= 4:
        a = np.flip(a, axis=a.ndim - 1)
    return np.rot90(a, -(value % 4), axes=axes)


def rot_top(a, value):
    """r/f ``value`` on arrays with row 0 at the top (TIFF)."""
    a = np.asarray(a)
    axes = (a.ndim - 2, a.ndim - 1)
    if value >= 4:
        a = np.flip(a, axis=a.ndim - 1)
    return np.rot90(a, value % 4, axes=axes)


def unpack_low_first(packed, nx):
    packed = np.asarray(packed, np.uint8)
    out = np.empty(packed.shape[:-1] + (2 * packed.shape[-1],), np.uint8)
    out[..., 0::2] = packed & 15
    out[..., 1::2] = packed >> 4
    return out[..., :nx]


def mrc_header_ints(path):
    """(nx, ny, nz, mode, imod stamp, imod flags, nlabl) straight from the header bytes."""
    raw = Path(path).read_bytes()[:1024]
    nx, ny, nz, mode = struct.unpack_from("<4i", raw, 0)
    stamp, flags = struct.unpack_from("<2i", raw, 152)
    (nlabl,) = struct.unpack_from("<i", raw, 220)
    return nx, ny, nz, mode, stamp, flags, nlabl


def mrc_titles(path):
    raw = Path(path).read_bytes()[:1024]
    n = struct.unpack_from("<i", raw, 220)[0]
    return [raw[224 + 80 * i : 304 + 80 * i].split(b"\0")[0].decode().rstrip() for i in range(n)]


def mrc_data(path):
    """Data as mrcfile reads it (mode 0 viewed as uint8), row 0 at the bottom."""
    with mrcfile.open(path, permissive=False) as m:
        data = np.array(m.data)
    return data.view(np.uint8) if data.dtype == np.int8 else data


def read_4bit_mrc_bytes(path):
    """Frames of a mode-101 file, unpacked from the raw bytes by IMOD's rules."""
    nx, ny, nz, mode, *_ = mrc_header_ints(path)
    assert mode == 101
    nbytes = (nx + 1) // 2
    raw = np.frombuffer(Path(path).read_bytes()[1024:], np.uint8)
    assert raw.size == nz * ny * nbytes
    return unpack_low_first(raw.reshape(nz, ny, nbytes), nx)


def read_stack(path):
    with open_stack(path) as s:
        return np.stack([s.read(i) for i in range(len(s))])


def norm_expected(raw, gain, scale, dtype):
    """clip norm: raw x gain x scale, floor(+0.5) and clipped for integer outputs."""
    v = raw.astype(np.float32) * (np.asarray(gain, np.float32) * np.float32(scale))
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return v.astype(dtype), 0
    info = np.iinfo(dtype)
    r = np.floor(v.astype(np.float64) + 0.5)
    n_sat = int((r > info.max).sum())
    return np.clip(r, info.min, info.max).astype(dtype), n_sat


def one_warning(result, *words):
    lines = [line for line in result.err_lines if line.strip()]
    assert len(lines) == 1, result
    assert lines[0].startswith("dedkit"), result
    for w in words:
        assert str(w) in lines[0], result
    return lines[0]


# --------------------------------------------------------------------------------------
# norm
# --------------------------------------------------------------------------------------


def test_norm_mode101_float_default_scale(mk, run, unchanged):
    raw = mk.counts()
    gain = mk.gain_values()
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", gain)
    out = mk.path("out.mrc")
    with unchanged(src, ref):
        r = run("norm", src, ref, out, "--json")
    assert r.status == 0, r
    expected, _ = norm_expected(raw, gain, 16, np.float32)
    data = mrc_data(out)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(read_stack(out), expected)
    j = r.json
    assert j["command"] == "norm"
    assert j["frames"] == 3
    assert j["shape"] == [3, NY, NX]
    assert j["dtype"] == "float32"
    assert j["n_saturated"] == 0 and j["n_negative"] == 0 and j["n_truncated"] == 0
    assert j["details"]["scale"] == 16
    assert j["details"]["gain_factor"] == 1
    assert j["output"] == str(out)
    assert j["output_bytes"] == out.stat().st_size
    # the header statistics describe the data
    with mrcfile.open(out) as m:
        assert float(m.header.dmax) == pytest.approx(float(expected.max()))
        assert float(m.header.dmin) == pytest.approx(float(expected.min()))
        assert float(m.header.dmean) == pytest.approx(float(expected.mean()), rel=1e-5)


def test_norm_with_a_dm4_gain_reference(mk, run):
    # DigitalMicrograph stores row 0 at the top: the reference as dedkit sees it (Y up) is
    # the file's rows reversed, as IMOD reads DM files.
    raw = mk.counts()
    gain = mk.gain_values()
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.path("SuperRef.dm4")
    write_dm(ref, np.flipud(gain), version=4)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "--json")
    assert r.status == 0, r
    expected, _ = norm_expected(raw, gain, 16, np.float32)
    np.testing.assert_array_equal(mrc_data(out), expected)


def test_norm_text_report(mk, run):
    src = mk.mrc_4bit("raw.mrc", mk.counts())
    ref = mk.gain_mrc("gain.mrc", mk.gain_values())
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out)
    assert r.status == 0, r
    assert r.out.startswith("norm: wrote")
    assert f"{NX} x {NY} x 3" in r.out
    assert r.err == ""


@pytest.mark.parametrize(
    "mode, dtype", [("byte", np.uint8), ("short", np.int16), ("ushort", np.uint16)]
)
def test_norm_integer_modes_round_half_up_and_saturate(mk, run, mode, dtype):
    raw = mk.counts()
    gain = mk.gain_values()
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", gain)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "--mode", mode, "--scale", "12.5", "--json")
    assert r.status == 0, r
    expected, n_sat = norm_expected(raw, gain, 12.5, dtype)
    data = mrc_data(out)
    assert data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(data, expected)
    assert r.json["n_saturated"] == n_sat
    assert r.json["dtype"] == np.dtype(dtype).name
    if mode == "byte":
        assert n_sat > 0  # 15 x 2 x 12.5 > 255: the test exercises saturation
        one_warning(r, n_sat, "saturated")
    else:
        assert n_sat == 0 and r.err == ""
    # halves appear: floor(v + 0.5) rounds them up
    v = raw.astype(np.float64) * gain * 12.5
    assert np.any(v - np.floor(v) == 0.5)


def test_norm_tiff_input_and_tiff_gain_to_tiff(mk, run, unchanged):
    raw = mk.counts(high=40, dtype=np.uint16)
    gain = mk.gain_values()
    src = mk.tiff("raw.tif", raw, description="counts")
    ref = mk.gain_tiff("gain.tif", gain)
    out = mk.path("out.tif")
    with unchanged(src, ref):
        r = run("norm", src, ref, out, "--mode", "ushort", "--json")
    assert r.status == 0, r
    expected, _ = norm_expected(raw, gain, 16, np.uint16)
    tiff = tifffile.imread(out)
    assert tiff.dtype == np.uint16
    np.testing.assert_array_equal(tiff, np.flip(expected, axis=1))
    np.testing.assert_array_equal(read_stack(out), expected)


def test_norm_serialemccd_tiff_to_mrc(mk, run):
    raw = mk.counts()
    gain = mk.gain_values()
    src = mk.serialemccd_tiff("raw.tif", raw)
    ref = mk.gain_mrc("gain.mrc", gain)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out)
    assert r.status == 0, r
    expected, _ = norm_expected(raw, gain, 16, np.float32)
    np.testing.assert_array_equal(mrc_data(out), expected)


@pytest.mark.parametrize("factor", [2, 4])
def test_norm_smaller_gain_is_replicated(mk, run, factor):
    raw = mk.counts()
    small = mk.gain_values(NY // factor, NX // factor)
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", small)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "--scale", "32", "--json")
    assert r.status == 0, r
    full = np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)
    expected, _ = norm_expected(raw, full, 32, np.float32)
    np.testing.assert_array_equal(mrc_data(out), expected)
    assert r.json["details"]["gain_factor"] == factor


@pytest.mark.parametrize("value", range(8))
def test_norm_rotflip_orients_the_gain(mk, run, value):
    raw = mk.counts()
    cam_shape = (NX, NY) if value % 2 else (NY, NX)
    gain_cam = mk.gain_values(*cam_shape)
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", gain_cam)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "--rotflip", value, "--json")
    assert r.status == 0, r
    expected, _ = norm_expected(raw, rot_yup(gain_cam, value), 16, np.float32)
    np.testing.assert_array_equal(mrc_data(out), expected)
    assert r.json["details"]["gain_rotflip"] == value


@pytest.mark.parametrize("gain_format", ["mrc", "tif"])
def test_norm_rotflip_minus_one_reads_the_title(mk, run, gain_format):
    raw = mk.counts()
    gain_cam = mk.gain_values(NX, NY)  # camera orientation: r/f 3 swaps X and Y
    src = mk.mrc_4bit("raw.mrc", raw, titles=[mk.packed_title(3)])
    ref = (mk.gain_mrc if gain_format == "mrc" else mk.gain_tiff)(f"gain.{gain_format}", gain_cam)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "-R", "-1", "--json")
    assert r.status == 0, r
    expected, _ = norm_expected(raw, rot_yup(gain_cam, 3), 16, np.float32)
    np.testing.assert_array_equal(mrc_data(out), expected)
    assert r.json["details"]["gain_rotflip"] == 3
    # the output keeps SerialEMCCD's title with the r/f and the new scaling
    titles = mrc_titles(out)
    assert any("r/f 3" in t and "scaled by 16" in t for t in titles), titles


def _hot_frames(mk):
    """Background 0..3 with isolated hot pixels of 15 (far from each other)."""
    raw = mk.counts(high=4)
    hot = [(0, 2, 3), (0, 10, 20), (1, 7, 11), (2, 0, 0), (2, 15, 23)]
    for z, y, x in hot:
        raw[z, y, x] = 15
    return raw, hot


def test_norm_high_low_truncation(mk, run):
    raw, hot = _hot_frames(mk)
    gain = mk.gain_values()
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", gain)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "-H", "7", "--low", "3", "--json")
    assert r.status == 0, r
    expected, _ = norm_expected(raw, gain, 16, np.float32)
    for z, y, x in hot:
        expected[z, y, x] = np.float32(3) * (gain[y, x] * np.float32(16))
    np.testing.assert_array_equal(mrc_data(out), expected)
    assert r.json["n_truncated"] == len(hot)
    one_warning(r, len(hot), "truncation")


def test_norm_high_truncation_uses_ring_mean(mk, run):
    raw, hot = _hot_frames(mk)
    gain = mk.gain_values()
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", gain)
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "--high", "7", "--json")
    assert r.status == 0, r
    expected, _ = norm_expected(raw, gain, 16, np.float32)
    for z, y, x in hot:
        values = []
        for yy in range(max(y - 3, 0), min(y + 4, NY)):
            for xx in range(max(x - 3, 0), min(x + 4, NX)):
                if abs(yy - y) <= 1 and abs(xx - x) <= 1:
                    continue
                if raw[z, yy, xx] <= 7:
                    values.append(raw[z, yy, xx])
        expected[z, y, x] = np.float32(np.mean(values)) * (gain[y, x] * np.float32(16))
    np.testing.assert_allclose(mrc_data(out), expected, rtol=1e-6)
    assert r.json["n_truncated"] == len(hot)


@pytest.mark.parametrize("suffix", [".mrc", ".tif"])
def test_norm_mode_4bit(mk, run, suffix):
    raw = mk.counts()
    gain = mk.gain_values()
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", gain)
    out = mk.path("out" + suffix)
    r = run("norm", src, ref, out, "--mode", "4bit", "--scale", "1", "--json")
    assert r.status == 0, r
    v = np.floor(raw.astype(np.float64) * gain + 0.5)
    n_sat = int((v > 15).sum())
    assert n_sat > 0
    expected = np.clip(v, 0, 15).astype(np.uint8)
    assert r.json["n_saturated"] == n_sat
    if suffix == ".mrc":
        assert r.json["packing"] == "mode101"
        np.testing.assert_array_equal(read_4bit_mrc_bytes(out), expected)
    else:
        assert r.json["packing"] == "tiff4"
        with tifffile.TiffFile(out) as t:
            assert t.pages[0].bitspersample == 4
            np.testing.assert_array_equal(t.asarray(), np.flip(expected, axis=1))
    np.testing.assert_array_equal(read_stack(out), expected)
    one_warning(r, n_sat, "saturated")


def test_norm_without_gain_unpacks_and_scales(mk, run):
    raw = mk.counts()
    src = mk.mrc_4bit("raw.mrc", raw)
    out = mk.path("out.mrc")
    r = run("norm", src, "none", out, "--json")
    assert r.status == 0, r
    data = mrc_data(out)
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, raw)
    assert mrc_header_ints(out)[3] == 0


def test_norm_defects(mk, run, unchanged):
    raw = mk.counts(high=6)
    raw[:, NY - 1 - 3, 5] = 15  # hot pixel at x 5, y 3 from the top
    raw[:, :, 17] = 0  # dead column 17
    gain = mk.gain_values()
    src = mk.mrc_4bit("raw.mrc", raw)
    ref = mk.gain_mrc("gain.mrc", gain)
    defects = mk.defects("defects.txt", pixels=[(5, 3)], columns=[17])
    out = mk.path("out.mrc")
    with unchanged(src, ref, defects):
        r = run("norm", src, ref, out, "--defects", defects, "--json")
    assert r.status == 0, r
    norm, _ = norm_expected(raw, gain, 16, np.float32)
    data = mrc_data(out)
    y, x = NY - 1 - 3, 5
    for z in range(3):
        neighbours = [norm[z, y - 1, x], norm[z, y + 1, x], norm[z, y, x - 1], norm[z, y, x + 1]]
        assert data[z, y, x] == pytest.approx(np.mean(neighbours), rel=1e-5)
        np.testing.assert_allclose(data[z, :, 17], (norm[z, :, 16] + norm[z, :, 18]) / 2, rtol=1e-5)
    untouched = np.ones((NY, NX), bool)
    untouched[y, x] = False
    untouched[:, 17] = False
    np.testing.assert_array_equal(data[:, untouched], norm[:, untouched])
    assert r.json["details"]["defects"] == str(defects)


def test_norm_defects_follow_the_title_rotflip(mk, run):
    # Camera (and defect list) orientation is 16 wide x 24 high; frames were saved
    # rotated by r/f 3, so they are 24 x 16.
    cam_ny, cam_nx = NX, NY
    bad_x, bad_y = 4, 6  # file coordinates: y from the top of the camera image
    mask_cam = np.zeros((cam_ny, cam_nx), bool)
    mask_cam[cam_ny - 1 - bad_y, bad_x] = True
    (y,), (x,) = np.nonzero(rot_yup(mask_cam, 3))
    raw = mk.counts(high=6)
    raw[:, y, x] = 15
    src = mk.mrc_4bit("raw.mrc", raw, titles=[mk.packed_title(3)])
    ref = mk.gain_mrc("gain.mrc", np.ones((cam_ny, cam_nx), np.float32))
    defects = mk.defects("defects.txt", size=(cam_nx, cam_ny), pixels=[(bad_x, bad_y)])
    out = mk.path("out.mrc")
    r = run("norm", src, ref, out, "-R", "-1", "-D", defects, "--scale", "1")
    assert r.status == 0, r
    data = mrc_data(out)
    for z in range(3):
        neighbours = [raw[z, y - 1, x], raw[z, y + 1, x], raw[z, y, x - 1], raw[z, y, x + 1]]
        assert data[z, y, x] == pytest.approx(np.mean(neighbours, dtype=float), rel=1e-5)
    keep = np.ones((NY, NX), bool)
    keep[y, x] = False
    np.testing.assert_array_equal(data[:, keep], raw[:, keep].astype(np.float32))


# --------------------------------------------------------------------------------------
# defectmap
# --------------------------------------------------------------------------------------


def _defect_list(mk):
    pixels, columns, rows = [(3, 2), (20, 11)], [7], [13]
    path = mk.defects("defects.txt", pixels=pixels, columns=columns, rows=rows)
    top = np.zeros((NY, NX), np.uint8)  # row 0 at the top, as the list counts
    for x, y in pixels:
        top[y, x] = 1
    top[:, columns] = 1
    top[rows, :] = 1
    return path, top


def test_defectmap_like_mrc(mk, run, unchanged):
    defects, top = _defect_list(mk)
    like = mk.mrc_4bit("like.mrc", mk.counts())
    out = mk.path("map.mrc")
    with unchanged(defects, like):
        r = run("defectmap", defects, like, out, "--json")
    assert r.status == 0, r
    data = mrc_data(out)  # mrcfile gives one image as 2-D
    assert mrc_header_ints(out)[:4] == (NX, NY, 1, 0)
    np.testing.assert_array_equal(data.reshape(NY, NX), np.flipud(top))
    assert r.json["details"]["defect_pixels"] == int(top.sum())
    assert r.json["shape"] == [1, NY, NX]


def test_defectmap_like_tiff_to_tiff(mk, run):
    defects, top = _defect_list(mk)
    like = mk.tiff("like.tif", mk.counts(dtype=np.uint16))
    out = mk.path("map.tif")
    r = run("defectmap", defects, like, out)
    assert r.status == 0, r
    assert r.out.startswith("defectmap: wrote")
    np.testing.assert_array_equal(tifffile.imread(out), top)


# --------------------------------------------------------------------------------------
# rotflip
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", range(8))
def test_rotflip_mrc(mk, run, unchanged, value):
    frames = np.random.default_rng(value).integers(-500, 500, (2, NY, NX)).astype(np.int16)
    src = mk.mrc("in.mrc", frames)
    out = mk.path("out.mrc")
    with unchanged(src):
        r = run("rotflip", src, out, "--op", value, "--json")
    assert r.status == 0, r
    expected = rot_yup(frames, value)
    data = mrc_data(out)
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data, expected)
    assert r.json["shape"] == [2, *expected.shape[1:]]
    assert r.json["details"]["rotflip"] == value


@pytest.mark.parametrize("value", [1, 4, 7])
def test_rotflip_tiff_matches_row_0_at_top_rule(mk, run, value):
    frames = mk.counts(dtype=np.uint16, high=1000)
    src = mk.tiff("in.tif", frames)
    out = mk.path("out.tif")
    r = run("rotflip", src, out, "--op", value)
    assert r.status == 0, r
    np.testing.assert_array_equal(tifffile.imread(out), rot_top(tifffile.imread(src), value))


def test_rotflip_keeps_mode101(mk, run):
    raw = mk.counts()
    src = mk.mrc_4bit("in.mrc", raw)
    out = mk.path("out.mrc")
    r = run("rotflip", src, out, "--op", 5, "--json")
    assert r.status == 0, r
    assert r.json["packing"] == "mode101"
    np.testing.assert_array_equal(read_4bit_mrc_bytes(out), rot_yup(raw, 5))


# --------------------------------------------------------------------------------------
# pack
# --------------------------------------------------------------------------------------


def _counts_over_15(mk):
    counts = mk.counts(high=21, dtype=np.uint16)
    return counts, int((counts > 15).sum()), np.minimum(counts, 15).astype(np.uint8)


def test_pack_mode101(mk, run, unchanged):
    counts, n_sat, clipped = _counts_over_15(mk)
    src = mk.mrc("counts.mrc", counts)
    out = mk.path("packed.mrc")
    with unchanged(src):
        r = run("pack", src, out, "--as", "mode101", "--json")
    assert r.status == 0, r
    assert n_sat > 0
    assert r.json["n_saturated"] == n_sat
    assert r.json["packing"] == "mode101"
    one_warning(r, n_sat, "saturated")
    nx, ny, nz, mode, stamp, flags, _ = mrc_header_ints(out)
    assert (nx, ny, nz, mode) == (NX, NY, 3, 101)
    np.testing.assert_array_equal(read_4bit_mrc_bytes(out), clipped)
    np.testing.assert_array_equal(read_stack(out), clipped)
    assert out.stat().st_size == 1024 + 3 * NY * NX // 2


def test_pack_text_report_and_warning(mk, run):
    counts, n_sat, _ = _counts_over_15(mk)
    src = mk.mrc("counts.mrc", counts)
    r = run("pack", src, mk.path("packed.mrc"), "--as", "mode101")
    assert r.status == 0, r
    assert r.out.startswith("pack: wrote") and "mode101" in r.out
    one_warning(r, f"{n_sat} values", "saturated")


def test_pack_half_bytes_follows_imod_rules(mk, run):
    counts, n_sat, clipped = _counts_over_15(mk)
    src = mk.tiff("counts.tif", counts)
    out = mk.path("packed.mrc")
    r = run("pack", src, out, "--as", "half-bytes", "--json")
    assert r.status == 0, r
    assert r.json["n_saturated"] == n_sat
    nx, ny, nz, mode, stamp, flags, _ = mrc_header_ints(out)
    assert (nx, ny, nz, mode) == (NX // 2, NY, 3, 0)
    assert stamp == IMOD_STAMP
    assert flags & 16
    titles = mrc_titles(out)
    assert len(titles) == 1 and "4 bits packed" in titles[0]
    np.testing.assert_array_equal(unpack_low_first(mrc_data(out), NX), clipped)
    with open_stack(out) as s:
        assert s.info.packing == "half-bytes" and s.info.nx == NX
    np.testing.assert_array_equal(read_stack(out), clipped)


def test_pack_tiff4(mk, run):
    counts, n_sat, clipped = _counts_over_15(mk)
    src = mk.mrc("counts.mrc", counts)
    out = mk.path("packed.tif")
    r = run("pack", src, out, "--as", "tiff4", "--json")
    assert r.status == 0, r
    assert r.json["n_saturated"] == n_sat
    with tifffile.TiffFile(out) as t:
        assert len(t.pages) == 3
        assert all(p.bitspersample == 4 for p in t.pages)
        np.testing.assert_array_equal(t.asarray(), np.flip(clipped, axis=1))
    np.testing.assert_array_equal(read_stack(out), clipped)


def test_pack_serialemccd(mk, run):
    counts, n_sat, clipped = _counts_over_15(mk)
    src = mk.mrc("counts.mrc", counts, titles=["SerialEMCCD: Frames . ., scaled by 1.00  r/f 2"])
    out = mk.path("packed.tif")
    r = run("pack", src, out, "--as", "serialemccd", "--json")
    assert r.status == 0, r
    assert r.json["n_saturated"] == n_sat
    with tifffile.TiffFile(out) as t:
        page = t.pages[0]
        assert page.shape == (NY, NX // 2) and page.dtype == np.uint8
        first_line = page.description.splitlines()[0]
        assert "SerialEMCCD" in first_line and "4 bits packed" in first_line
        assert "r/f 2" in first_line
        stored = t.asarray()
    np.testing.assert_array_equal(unpack_low_first(stored, NX), np.flip(clipped, axis=1))
    with open_stack(out) as s:
        assert s.info.packing == "serialemccd"
    np.testing.assert_array_equal(read_stack(out), clipped)


@pytest.mark.parametrize("suffix", [".mrc", ".tif"])
def test_pack_bytes(mk, run, suffix):
    counts = mk.counts(high=300, dtype=np.uint16)
    n_sat = int((counts > 255).sum())
    src = mk.mrc("counts.mrc", counts)
    out = mk.path("bytes" + suffix)
    r = run("pack", src, out, "--as", "bytes", "--json")
    assert r.status == 0, r
    assert n_sat > 0 and r.json["n_saturated"] == n_sat
    expected = np.minimum(counts, 255).astype(np.uint8)
    if suffix == ".mrc":
        assert mrc_header_ints(out)[3] == 0
        np.testing.assert_array_equal(mrc_data(out), expected)
    else:
        np.testing.assert_array_equal(tifffile.imread(out), np.flip(expected, axis=1))
    np.testing.assert_array_equal(read_stack(out), expected)


def test_pack_float_counts_rounded_and_counted(mk, run):
    values = np.random.default_rng(3).uniform(-1, 17, (2, NY, NX)).astype(np.float32)
    src = mk.mrc("float.mrc", values)
    out = mk.path("packed.mrc")
    r = run("pack", src, out, "--as", "mode101", "--json")
    assert r.status == 0, r
    rounded = np.floor(values.astype(np.float64) + 0.5)
    j = r.json
    assert j["n_saturated"] == int((rounded > 15).sum())
    assert j["n_negative"] == int((rounded < 0).sum())
    assert j["n_rounded"] == int((rounded != values).sum())
    np.testing.assert_array_equal(read_4bit_mrc_bytes(out), np.clip(rounded, 0, 15))


# --------------------------------------------------------------------------------------
# unpack
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["mode101", "half-bytes"])
def test_unpack_mrc_4bit_to_bytes(mk, run, unchanged, form):
    raw = mk.counts()
    src = mk.mrc_4bit("in.mrc", raw, form=form)
    out = mk.path("out.mrc")
    with unchanged(src):
        r = run("unpack", src, out, "--json")
    assert r.status == 0, r
    assert r.json["packing"] == "none" and r.json["dtype"] == "uint8"
    assert r.json["shape"] == [3, NY, NX]
    nx, ny, nz, mode, *_ = mrc_header_ints(out)
    assert (nx, ny, nz, mode) == (NX, NY, 3, 0)
    np.testing.assert_array_equal(mrc_data(out), raw)


def test_unpack_serialemccd_tiff_to_tiff(mk, run):
    raw = mk.counts()
    src = mk.serialemccd_tiff("in.tif", raw, rotflip=1)
    out = mk.path("out.tif")
    r = run("unpack", src, out)
    assert r.status == 0, r
    with tifffile.TiffFile(out) as t:
        assert t.pages[0].shape == (NY, NX)
        # the output must not be taken for packed data again
        assert "4 bits packed" not in (t.pages[0].description or "")
        np.testing.assert_array_equal(t.asarray(), np.flip(raw, axis=1))
    with open_stack(out) as s:
        assert s.info.packing == "none"


# --------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression, tag", [("none", 1), ("lzw", 5), ("zip", 8), ("zstd", 50000)])
def test_convert_mrc_to_tiff(mk, run, unchanged, compression, tag):
    frames = np.random.default_rng(0).integers(-3000, 3000, (3, NY, NX)).astype(np.int16)
    src = mk.mrc("in.mrc", frames)
    out = mk.path("out.tif")
    with unchanged(src):
        r = run("convert", src, out, "--compression", compression, "--json")
    assert r.status == 0, r
    assert r.json["details"]["compression_used"] == compression
    with tifffile.TiffFile(out) as t:
        assert len(t.pages) == 3
        assert all(int(p.compression) == tag for p in t.pages)
        data = t.asarray()
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data, np.flip(frames, axis=1))


def test_convert_tiff_to_mrc_float(mk, run, unchanged):
    frames = np.random.default_rng(1).normal(0, 5, (2, NY, NX)).astype(np.float32)
    src = mk.tiff("in.tif", frames, compression="zlib")
    out = mk.path("out.mrc")
    with unchanged(src):
        r = run("convert", src, out, "--json")
    assert r.status == 0, r
    assert mrc_header_ints(out)[3] == 2
    np.testing.assert_array_equal(mrc_data(out), frames)
    assert r.json["frames"] == 2


def test_convert_numbered_folder_to_mrc(mk, run, unchanged):
    frames = mk.counts(dtype=np.uint16, high=5000)
    folder = mk.folder_of_tiffs("frames", frames, numbers=[1, 2, 10])
    out = mk.path("out.mrc")
    with unchanged(folder):
        r = run("convert", folder, out, "--json")
    assert r.status == 0, r
    # numbered 1, 2, 10: ordered by number, not by name
    np.testing.assert_array_equal(mrc_data(out), frames)


def test_convert_mrc_to_folder_and_back(mk, run):
    frames = mk.counts(dtype=np.uint16, high=5000)
    src = mk.mrc("in.mrc", frames)
    folder = mk.path("frames")
    r = run("convert", src, folder, "--compression", "lzw")
    assert r.status == 0, r
    names = sorted(p.name for p in folder.iterdir() if p.name != MARKER)
    assert names == ["frames_001.tif", "frames_002.tif", "frames_003.tif"]
    for i, name in enumerate(names):
        np.testing.assert_array_equal(tifffile.imread(folder / name), np.flipud(frames[i]))
    back = mk.path("back.mrc")
    r = run("convert", folder, back)
    assert r.status == 0, r
    np.testing.assert_array_equal(mrc_data(back), frames)


def test_convert_mode101_to_tiff_stays_packed(mk, run):
    raw = mk.counts()
    src = mk.mrc_4bit("in.mrc", raw, titles=[mk.packed_title(2)])
    out = mk.path("out.tif")
    r = run("convert", src, out, "--json")
    assert r.status == 0, r
    assert r.json["packing"] == "serialemccd"
    with tifffile.TiffFile(out) as t:
        assert t.pages[0].shape == (NY, NX // 2)
        np.testing.assert_array_equal(unpack_low_first(t.asarray(), NX), np.flip(raw, axis=1))
    back = mk.path("back.mrc")
    assert run("convert", out, back).status == 0
    np.testing.assert_array_equal(read_4bit_mrc_bytes(back), raw)


def test_convert_odd_width_4bit_to_tiff(mk, run):
    # SerialEMCCD's byte packing needs an even width, but a 4-bit TIFF holds any width:
    # the frames must stay 4-bit rather than the command fail.
    raw = mk.counts(nx=NX - 1)
    src = mk.mrc_4bit("odd.mrc", raw)
    out = mk.path("odd.tif")
    r = run("convert", src, out, "--json")
    assert r.status == 0, r
    assert r.json["packing"] == "tiff4"
    with tifffile.TiffFile(out) as t:
        assert t.pages[0].bitspersample == 4
        np.testing.assert_array_equal(t.asarray(), np.flip(raw, axis=1))


def test_convert_big_endian_mrc(mk, run):
    frames = np.random.default_rng(5).integers(-1000, 1000, (2, NY, NX)).astype(np.int16)
    src = mk.mrc("big.mrc", frames.astype(">i2"))
    assert Path(src).read_bytes()[212] == 0x11  # big-endian machine stamp
    out = mk.path("out.tif")
    r = run("convert", src, out)
    assert r.status == 0, r
    np.testing.assert_array_equal(tifffile.imread(out), np.flip(frames, axis=1))


def test_convert_mrc_with_extended_header(mk, run):
    frames = mk.counts(dtype=np.uint16, high=3000)
    src = mk.path("ext.mrc")
    with mrcfile.new(src) as m:
        m.set_data(frames)
        extended = np.zeros(100, dtype=[("a", "<i4")])
        extended["a"] = np.arange(100)
        m.set_extended_header(extended)
    out = mk.path("out.mrc")
    r = run("convert", src, out)
    assert r.status == 0, r
    np.testing.assert_array_equal(mrc_data(out), frames)


def test_convert_keeps_pixel_size(mk, run):
    src = mk.mrc("in.mrc", mk.counts(dtype=np.int16), voxel_size=0.83)
    out = mk.path("out.tif")
    assert run("convert", src, out).status == 0
    r = run("header", out, "--json")
    assert r.status == 0, r
    assert r.json["pixel_size"][:2] == pytest.approx([0.83, 0.83], rel=1e-5)


# --------------------------------------------------------------------------------------
# header
# --------------------------------------------------------------------------------------

TITLES_101 = [
    "SerialEMCCD: Frames . ., 4 bits packed  r/f 3",
    "  SuperRef_demo.dm4",
    "  defects_demo.txt",
]


def test_header_mode101_text(mk, run, unchanged):
    src = mk.mrc_4bit("in.mrc", mk.counts(), titles=TITLES_101)
    with unchanged(src):
        r = run("header", src)
    assert r.status == 0, r
    lines = r.out.splitlines()
    assert lines[0] == f"{src}: mrc, {NX} x {NY} x 3, uint8 (MRC mode 101)"
    text = r.out
    assert re.search(r"^\s+packing\s+mode101$", text, re.M)
    assert re.search(r"^\s+r/f\s+3$", text, re.M)
    assert re.search(r"^\s+gain reference\s+SuperRef_demo.dm4$", text, re.M)
    assert re.search(r"^\s+defect file\s+defects_demo.txt$", text, re.M)
    for t in TITLES_101:
        assert t in text
    assert r.err == ""


def test_header_mode101_json(mk, run):
    src = mk.mrc_4bit("in.mrc", mk.counts(), titles=TITLES_101)
    r = run("header", src, "--json")
    assert r.status == 0, r
    j = r.json
    assert (j["format"], j["nx"], j["ny"], j["nz"]) == ("mrc", NX, NY, 3)
    assert (j["mode"], j["packing"], j["dtype"]) == (101, "mode101", "uint8")
    assert j["rotflip"] == 3 and j["rotflip_needed"] is None
    assert j["packed_4bit_title"] is True
    assert j["gain_reference"] == "SuperRef_demo.dm4"
    assert j["defect_file"] == "defects_demo.txt"
    assert j["titles"] == TITLES_101


def test_header_half_bytes(mk, run):
    src = mk.mrc_4bit("in.mrc", mk.counts(), form="half-bytes")
    r = run("header", src, "--json")
    assert r.status == 0, r
    j = r.json
    assert (j["mode"], j["packing"], j["nx"], j["ny"]) == (0, "half-bytes", NX, NY)
    r = run("header", src)
    assert r.status == 0, r
    assert f"{NX} x {NY} x 3, uint8 (MRC mode 0)" in r.out
    assert re.search(r"^\s+packing\s+half-bytes$", r.out, re.M)


def test_header_tiff(mk, run):
    title = "SerialEMCCD: Frames . ., scaled by 16.00  r/f 0 need 5"
    src = mk.tiff("in.tif", mk.counts(dtype=np.uint16), description=title, compression="lzw")
    r = run("header", src, "--json")
    assert r.status == 0, r
    j = r.json
    assert (j["format"], j["nx"], j["ny"], j["nz"], j["dtype"]) == ("tiff", NX, NY, 3, "uint16")
    assert j["mode"] is None and j["compression"] == "lzw" and j["packing"] == "none"
    assert (j["rotflip"], j["rotflip_needed"], j["scaling"]) == (0, 5, 16.0)
    r = run("header", src)
    assert r.status == 0, r
    assert r.out.splitlines()[0] == f"{src}: tiff, {NX} x {NY} x 3, uint16"
    assert re.search(r"^\s+compression\s+lzw$", r.out, re.M)
    assert re.search(r"^\s+r/f needed\s+5$", r.out, re.M)
    assert re.search(r"^\s+scaling\s+16(\.0)?$", r.out, re.M)


def test_header_serialemccd_tiff(mk, run):
    src = mk.serialemccd_tiff("in.tif", mk.counts(), rotflip=6)
    r = run("header", src, "--json")
    assert r.status == 0, r
    j = r.json
    assert (j["packing"], j["nx"], j["rotflip"]) == ("serialemccd", NX, 6)


# --------------------------------------------------------------------------------------
# the installed console script
# --------------------------------------------------------------------------------------


def _dedkit_script():
    script = shutil.which("dedkit")
    if script is None:
        candidate = Path(sys.executable).with_name("dedkit")
        script = str(candidate) if candidate.exists() else None
    if script is None:
        pytest.skip("the dedkit console script is not installed")
    return script


def test_console_script_happy_path_and_json(mk):
    counts, n_sat, clipped = _counts_over_15(mk)
    src = mk.mrc("counts.mrc", counts)
    out = mk.path("packed.mrc")
    p = subprocess.run(
        [_dedkit_script(), "pack", str(src), str(out), "--as", "mode101", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["n_saturated"] == n_sat
    assert "saturated" in p.stderr
    np.testing.assert_array_equal(read_4bit_mrc_bytes(out), clipped)


def test_console_script_bad_input_exit_status(tmp_path):
    p = subprocess.run(
        [_dedkit_script(), "header", str(tmp_path / "missing.mrc")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dedkit"), p.stderr
    assert "Traceback" not in p.stderr
    p = subprocess.run([_dedkit_script(), "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "0.1.0" in p.stdout
