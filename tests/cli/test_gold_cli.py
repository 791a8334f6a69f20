"""``dedkit sim frames --specimen`` and ``dedkit hpd align`` (issue 17): a drifting
specimen simulated with Geant4 and processed from the command line; bad input refused."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest

from dedkit.sim.transport import geant4_available

needs_geant4 = pytest.mark.skipif(not geant4_available(), reason="geant4-pybind not installed")


def _refused(result, *words):
    assert result.status == 2, result
    assert len(result.err_lines) == 1 and "Traceback" not in result.err, result
    for word in words:
        assert word in result.err, result


def _specimen(path, side=420, pixel=1.0):
    # dark discs on a bright background, 1 A pixels: any MRC with a pixel size will do
    y, x = np.mgrid[0:side, 0:side]
    image = np.ones((side, side), np.float32)
    for cx, cy in ((100, 120), (300, 250), (200, 330)):
        image[(x - cx) ** 2 + (y - cy) ** 2 < 30**2] = 0.6
    with mrcfile.new(path) as mrc:
        mrc.set_data(image)
        mrc.voxel_size = pixel
    return path


@pytest.mark.slow
@needs_geant4
def test_a_drifting_specimen_simulated_and_aligned(run, tmp_path):
    spec = _specimen(tmp_path / "spec.mrc")
    sim = tmp_path / "sim"
    r = run("sim", "frames", "--energy", "200", "--specimen", spec, "--pixel-size", "1",
            "--drift", "3", "--tracks", "500", "--frames", "40", "--flux", "60",
            "--dark-frames", "100", "--workers", "1", "-o", sim, "--json")  # fmt: skip
    assert r.status == 0, r
    assert r.json["details"]["pattern"]["kind"] == "specimen"
    out = tmp_path / "out"
    r = run("hpd", "align", sim / "sim_master_0.json", "--dark", sim / "sim_dark_master_0.json",
            "--gain", sim / "sim_gain.npy", "--pixel-size", "1", "--group", "10",
            "--methods", "centroid", "--truth", sim / "sim_truth.h5", "--workers", "0",
            "-o", out, "--json")  # fmt: skip
    assert r.status == 0, r
    record = json.loads((out / "rings.json").read_text())
    assert set(record["localisers"]) == {"centroid", "truth"}
    assert record["groups"] == 4 and record["pixel_size_A"] == 0.25
    with mrcfile.open(out / "image_centroid.mrc", permissive=True) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            [
                "hpd",
                "align",
                "M.json",
                "--dark",
                "D.json",
                "--gain",
                "g.npy",
                "--pixel-size",
                "0",
                "-o",
                "out",
            ],
            ["--pixel-size"],
        ),
        (
            [
                "hpd",
                "align",
                "M.json",
                "--dark",
                "D.json",
                "--gain",
                "g.npy",
                "--pixel-size",
                "1",
                "--methods",
                "cnn,cnn",
                "-o",
                "out",
            ],
            ["twice"],
        ),
        (
            [
                "hpd",
                "align",
                "M.json",
                "--dark",
                "D.json",
                "--gain",
                "g.npy",
                "--pixel-size",
                "1",
                "--spacing",
                "2.35,x",
                "-o",
                "out",
            ],
            ["spacings"],
        ),
        (
            [
                "hpd",
                "align",
                "missing_master_0.json",
                "--dark",
                "D.json",
                "--gain",
                "g.npy",
                "--pixel-size",
                "1",
                "-o",
                "out",
            ],
            ["missing_master_0.json"],
        ),
        (
            [
                "sim",
                "frames",
                "--energy",
                "200",
                "--frames",
                "3",
                "--flux",
                "2",
                "--specimen",
                "nothing.mrc",
                "-o",
                "run",
            ],
            ["nothing.mrc"],
        ),
    ],
)
def test_bad_input_is_one_line(run, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    _refused(run(*args), *words)
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_a_specimen_too_small_for_the_sensor(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _specimen(tmp_path / "small.mrc", side=300)
    _refused(run("sim", "frames", "--energy", "200", "--frames", "3", "--flux", "2",
                 "--specimen", "small.mrc", "-o", "run"), "does not cover")  # fmt: skip
    assert not (tmp_path / "run").exists()
