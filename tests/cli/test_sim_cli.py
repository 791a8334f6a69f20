"""``dedkit sim frames / dataset / validate``: bad input refused in one line, and (slow,
with Geant4) a simulated run read by ``dedkit hpd`` as a measured one."""

from __future__ import annotations

import numpy as np
import pytest

from dedkit.io.events import read_table
from dedkit.io.training import read_training_attrs, read_training_set
from dedkit.sim.transport import geant4_available

needs_geant4 = pytest.mark.skipif(not geant4_available(), reason="geant4-pybind not installed")


def _refused(result, *words):
    assert result.status == 2, result
    assert len(result.err_lines) == 1 and "Traceback" not in result.err, result
    for word in words:
        assert word in result.err, result


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["frames", "--energy", "-200", "--frames", "3", "--flux", "2"], ["20 to 300 keV"]),
        (["frames", "--energy", "200", "--frames", "3", "--flux", "200000"],
         ["saturates every pixel"]),
        (["frames", "--energy", "200", "--frames", "3", "--flux", "0"], ["flux"]),
        (["frames", "--energy", "200", "--frames", "0", "--flux", "2"], ["--frames"]),
        (["frames", "--energy", "200", "--frames", "3", "--flux", "2", "--pitch", "25",
          "--area", "20", "20"], ["pitch 25 um is larger than the sensor"]),
        (["frames", "--energy", "200", "--frames", "3", "--flux", "2", "--pattern", "image"],
         ["--image"]),
        (["frames", "--energy", "200", "--frames", "3", "--flux", "2", "--pattern", "image",
          "--image", "missing.mrc"], ["no such file"]),
        (["frames", "--energy", "200", "--frames", "3", "--flux", "2", "--bias", "10"],
         ["depletion"]),
        (["dataset", "--energy", "-5", "--n", "10"], ["20 to 300 keV"]),
        (["dataset", "--energy", "200", "--n", "0"], ["--n"]),
        (["dataset", "--energy", "200", "--n", "10", "--pitch", "30", "--area", "25", "400"],
         ["larger than the sensor"]),
        (["validate", "--energy", "-1", "--n", "10"], ["20 to 300 keV"]),
        (["validate", "--n", "-3"], ["--n"]),
        (["validate", "--noise", "-0.1"], ["noise"]),
    ],
)  # fmt: skip
def test_bad_parameters_refused(run, tmp_path, args, words):
    out = tmp_path / ("out.h5" if args[0] == "dataset" else "out")
    extra = [] if args[0] == "validate" else ["-o", out]
    result = run("sim", *args, *extra, "--quiet")
    _refused(result, *words)
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_refused(run, tmp_path):
    (tmp_path / "set.h5").write_bytes(b"")
    _refused(run("sim", "dataset", "-E", "200", "--n", "5", "-o", tmp_path / "set.h5"), "exists")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    _refused(
        run("sim", "frames", "-E", "200", "--frames", "2", "--flux", "1", "-o", folder),
        "not empty",
    )


@pytest.mark.slow
@needs_geant4
def test_simulated_run_through_the_hpd_commands(run, tmp_path):
    sim = tmp_path / "sim"
    result = run("sim", "frames", "--energy", "200", "--frames", "6", "--flux", "8",
                 "--dark-frames", "100", "--seed", "5", "--workers", "2", "-o", sim,
                 "--json")  # fmt: skip
    assert result.status == 0, result
    report = result.json
    assert report["counts"]["frames"] == 6 and report["counts"]["electrons"] > 20
    truth = read_table(sim / "sim_truth.h5")
    assert len(truth) == report["counts"]["electrons"]

    ped, clusters, events = tmp_path / "ped.h5", tmp_path / "cl.h5", tmp_path / "ev.h5"
    assert run("hpd", "pedestal", sim / "sim_dark_master_0.json", "-o", ped, "-q").status == 0
    r = run("hpd", "clusters", sim / "sim_master_0.json", "-p", ped, "--finder", "connected",
            "--gain", sim / "sim_gain.npy", "--workers", "0", "-o", clusters, "-q")  # fmt: skip
    assert r.status == 0, r
    r = run("hpd", "localize", clusters, "--method", "centroid", "-o", events, "-q", "--json")
    assert r.status == 0, r
    found = read_table(events)
    assert len(found) >= 0.7 * len(truth)
    # each event near an electron of its frame: the centroid RMSE is 1.7 px, tracks can
    # overlap at 8 electrons per frame, so allow 6 px and 10 % strays
    near = [
        np.min(np.hypot(truth.x[truth.frame == f] - x, truth.y[truth.frame == f] - y)) < 6
        for f, x, y in zip(found.frame, found.x, found.y, strict=True)
    ]
    assert np.mean(near) > 0.9
    image = tmp_path / "image.mrc"
    assert run("hpd", "image", events, "--upsample", "2", "-o", image).status == 0
    assert image.exists()


@pytest.mark.slow
@needs_geant4
def test_dataset_and_validate_commands(run, tmp_path):
    out = tmp_path / "set.h5"
    r = run("sim", "dataset", "-E", "200", "--n", "150", "--chunk", "100", "--seed", "2",
            "--workers", "2", "-o", out, "--json", "-q")  # fmt: skip
    assert r.status == 0, r
    assert r.json["counts"]["clusters"] == 150 and r.json["counts"]["chunks"] == 2
    data = read_training_set(out)
    assert data["image"].shape == (150, 15, 15)
    # the truth lies near the crop's centre: the centroid pixel is pixel 7
    assert np.median(np.abs(data["entry_x"] - 7.5)) < 3
    assert read_training_attrs(out)["parameters"]["energy_keV"] == 200.0

    r = run("sim", "validate", "-E", "100", "--n", "300", "--seed", "4", "--workers", "2",
            "--json", "-q")  # fmt: skip
    assert r.status == 0, r
    d = r.json
    assert d["energy_keV"] == 100.0 and d["n_primaries"] == 300
    assert set(d["centroid_rmse_px"]) == {"x", "y"}
    assert 0.05 < d["backscatter_fraction"] < 0.25


@pytest.mark.parametrize("command", ["electrons", "frames", "dataset", "validate"])
def test_physics_list_checked_alike_issue_13_item_12(run, tmp_path, command):
    """Issue 13 item 12: every Geant4 command refuses an unknown ``--physics`` the same way
    (one shared choice), before any simulation and without leaving anything behind."""
    args = {
        "electrons": ["--energy", "200", "--n", "5", "--seed", "1", "-o", tmp_path / "e.h5"],
        "frames": ["--energy", "200", "--frames", "3", "--flux", "2", "-o", tmp_path / "run"],
        "dataset": ["--energy", "200", "--n", "5", "-o", tmp_path / "set.h5"],
        "validate": ["--energy", "200", "--n", "5"],
    }[command]
    result = run("sim", command, *args, "--physics", "banana", "--quiet")
    _refused(result, "--physics", "banana", "option3")
    assert list(tmp_path.iterdir()) == []
    assert "[default: option3]" in " ".join(run("sim", command, "--help").out.split())
