"""``dedkit reduce``: every frame reduced as dedkit.frames.reduce does, any stack format
in, the pixel size scaled, reports, and bad input refused with one line and exit 2."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import tifffile

from dedkit.cli.reduce import FILTER_CHOICES, MODE_CHOICES
from dedkit.frames.reduce import REDUCTIONS, reduce_image
from dedkit.jobs.reduce import REDUCE_MODES, reduce_stack


def read_mrc(path):
    with mrcfile.open(path, permissive=True) as m:
        return (
            np.array(m.data),
            m.voxel_size,
            [t.decode() for t in m.header.label[: m.header.nlabl]],
        )


def assert_refused(r, *words):
    assert r.status == 2, r
    assert "Traceback" not in r.out + r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("dedkit"), r
    for w in words:
        assert w in r.err_lines[0], r


def test_cli_choices_are_the_library_ones():
    assert tuple(FILTER_CHOICES) == tuple(REDUCTIONS)
    assert tuple(MODE_CHOICES) == tuple(REDUCE_MODES)


def test_mrc_reduced_by_lanczos3_with_scaled_pixel_size(run, mk, unchanged):
    frames = mk.counts(nz=3, ny=32, nx=48)
    src = mk.mrc(
        "in.mrc",
        frames,
        titles=["SerialEMCCD: Frames . ., scaled by 16.00  r/f 2"],
        voxel_size=(1.25, 1.25, 2.0),
    )
    out = mk.path("out.mrc")
    with unchanged(src):
        r = run("reduce", src, out, "--factor", "2")
    assert r.status == 0, r
    assert r.out.startswith(f"reduce: wrote {out} (24 x 16 x 3, float32)")
    data, voxel, titles = read_mrc(out)
    assert data.dtype == np.float32 and data.shape == (3, 16, 24)
    for got, frame in zip(data, frames, strict=True):
        assert np.array_equal(got, reduce_image(frame, 2, "lanczos3"))
    assert (float(voxel.x), float(voxel.y), float(voxel.z)) == pytest.approx((2.5, 2.5, 2.0))
    assert "scaled by 16.00" in titles[0] and "r/f 2" in titles[0]
    assert titles[-1].startswith("dedkit reduce: lanczos3 by 2, sum")


def test_4bit_input_binned_by_4_to_bytes_with_json(run, mk):
    frames = mk.counts(nz=2, ny=16, nx=24)
    src = mk.mrc_4bit("raw.mrc", frames)
    out = mk.path("binned.tif")
    r = run("reduce", src, out, "-f", "4", "--filter", "bin", "--mode", "byte", "--json")
    assert r.status == 0, r
    report = r.json
    assert report["command"] == "reduce" and report["shape"] == [2, 4, 6]
    assert report["dtype"] == "uint8" and report["details"]["factor"] == 4
    assert report["details"]["filter"] == "bin" and report["details"]["values"] == "sum"
    data = np.flipud(tifffile.imread(out).transpose(1, 2, 0)).transpose(2, 0, 1)
    expect = frames.astype(int).reshape(2, 4, 4, 6, 4).sum(axis=(2, 4))
    assert np.array_equal(data, expect)
    assert report["n_saturated"] == 0


def test_mean_values_and_saturation_counted(run, mk):
    frames = np.full((1, 8, 8), 200, np.uint8)
    src = mk.mrc("bright.mrc", frames)
    r = run("reduce", src, mk.path("sum.mrc"), "-f", "2", "-m", "byte", "--json")
    assert r.status == 0 and r.json["n_saturated"] == 16  # 800 does not fit a byte
    assert "saturated" in r.err
    r = run("reduce", src, mk.path("mean.mrc"), "-f", "2", "--values", "mean", "-m", "byte")
    assert r.status == 0, r
    # mrcfile reads mode 0 as int8
    assert np.all(read_mrc(mk.path("mean.mrc"))[0].view(np.uint8) == 200)


def test_reduce_stack_from_python_with_a_folder_output(mk, tmp_path):
    frames = mk.counts(nz=2, ny=12, nx=18)
    src = mk.tiff("in.tif", frames)
    report = reduce_stack(src, tmp_path / "outdir", 3, filter="mitchell", values="mean")
    assert report.shape == (2, 4, 6) and report.frames == 2
    pages = sorted(p for p in (tmp_path / "outdir").iterdir() if not p.name.startswith("."))
    assert len(pages) == 2
    got = np.flipud(tifffile.imread(pages[0]))
    assert np.allclose(got, reduce_image(frames[0], 3, "mitchell", values="mean"))


def test_existing_output_needs_force(run, mk, unchanged):
    src = mk.mrc("in.mrc", mk.counts())
    out = mk.path("out.mrc")
    out.write_bytes(b"keep")
    with unchanged(out):
        assert_refused(run("reduce", src, out, "-f", "2"), "--force")
    assert run("reduce", src, out, "-f", "2", "--force").status == 0
    assert read_mrc(out)[0].shape == (3, 8, 12)


@pytest.mark.parametrize(
    "args, words",
    [
        (["-f", "100"], ["smaller than the reduction factor 100"]),
        (["-f", "0"], ["--factor"]),
        (["-f", "2", "--filter", "cubic"], ["--filter"]),
        (["-f", "2", "--mode", "4bit"], ["--mode"]),
        ([], ["--factor"]),
    ],
)
def test_bad_options_leave_nothing(run, mk, snap, tmp_path, args, words):
    src = mk.mrc("in.mrc", mk.counts())
    before = snap(tmp_path)
    assert_refused(run("reduce", src, mk.path("out.mrc"), *args), *words)
    assert snap(tmp_path) == before


def test_missing_and_same_file(run, mk):
    assert_refused(run("reduce", mk.path("nothere.mrc"), mk.path("o.mrc"), "-f", "2"), "no such")
    src = mk.mrc("in.mrc", mk.counts())
    assert_refused(run("reduce", src, src, "-f", "2", "--force"), "same file")
