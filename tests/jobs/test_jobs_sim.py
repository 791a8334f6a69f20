"""The simulation jobs called directly (:mod:`dedkit.jobs.sim`): a simulated run and a
training set, with the straight-track stand-in for Geant4 that ``dedkit sample`` uses
(no Geant4 needed), each report against the files it wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dedkit.io.events import read_attrs, read_table
from dedkit.io.training import read_training_attrs, read_training_set
from dedkit.jobs.sim import SimReport, beam_pattern, build_training_set, write_simulated_run
from dedkit.report import JobReport
from dedkit.sim.runs import straight_track_stream

# the tests' stand-in for one Geant4 call (straight tracks), as tests/learn use it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))
from synthetic_tracks import fake_simulate  # noqa: E402

RUN_FILES = [
    "sim_d0_f0_0.raw",
    "sim_d1_f0_0.raw",
    "sim_dark_d0_f0_0.raw",
    "sim_dark_d1_f0_0.raw",
    "sim_dark_master_0.json",
    "sim_gain.npy",
    "sim_master_0.json",
    "sim_truth.h5",
]


def simulate_run(out, **kwargs):
    args = dict(energy_keV=200.0, n_frames=6, flux=2.0, dark_frames=20, seed=1)
    args.update(kwargs)
    return write_simulated_run(out, stream=straight_track_stream, **args)


def test_write_simulated_run_report_and_files(tmp_path):
    out = tmp_path / "run"
    report = simulate_run(out)
    assert isinstance(report, SimReport) and isinstance(report, JobReport)
    assert report.command == "frames" and report.output == str(out)
    c = report.counts
    assert c["frames"] == 6 and c["dark_frames"] == 20 and c["electrons"] > 0
    assert report.details["files"] == RUN_FILES
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == RUN_FILES
    assert report.details["master"] == str(out / "sim_master_0.json")
    assert report.details["pattern"] == {"kind": "flat"} and report.details["seed"] == 1
    assert report.text().startswith(f"sim frames: wrote {out} in ")
    # the truth holds every electron, in the frames of the run
    truth = read_table(out / "sim_truth.h5")
    assert truth.method == "truth" and len(truth.x) == c["electrons"]
    assert read_attrs(out / "sim_truth.h5")["pattern"]["kind"] == "flat"
    master = json.loads((out / "sim_master_0.json").read_text())
    assert master["Frames in File"] == 6 or master.get("Total Frames", 6) == 6
    dark = json.loads((out / "sim_dark_master_0.json").read_text())
    assert dark.get("Total Frames", 20) == 20
    # keV per ADU, one value per pixel of the 400 x 400 sensor
    gain = np.load(out / "sim_gain.npy")
    assert gain.shape == (400, 400) and np.all(gain > 0)


def test_write_simulated_run_is_the_same_for_the_same_seed(tmp_path):
    a = simulate_run(tmp_path / "a", seed=4)
    b = simulate_run(tmp_path / "b", seed=4)
    simulate_run(tmp_path / "c", seed=5)
    assert a.counts == b.counts
    for name in ("sim_d0_f0_0.raw", "sim_d1_f0_0.raw", "sim_gain.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "sim_d0_f0_0.raw").read_bytes() != (
        tmp_path / "c" / "sim_d0_f0_0.raw"
    ).read_bytes()


def test_write_simulated_run_scan_pattern(tmp_path):
    out = tmp_path / "scan"
    pattern = beam_pattern("scan", scan_points=4, dwell_frames=5, seed=5)
    report = simulate_run(out, n_frames=20, pattern=pattern, seed=5)
    assert report.details["pattern"]["kind"] == "scan"
    assert report.details["pattern"]["n_points"] == 4
    assert report.details["pattern"]["dwell_frames"] == 5
    assert read_attrs(out / "sim_truth.h5")["pattern"]["kind"] == "scan"


def test_build_training_set_report_and_file(tmp_path):
    out = tmp_path / "train.h5"
    report = build_training_set(
        out, energy_keV=200.0, n=60, seed=3, chunk_primaries=50, simulate=fake_simulate
    )
    assert isinstance(report, SimReport) and isinstance(report, JobReport)
    assert report.command == "dataset" and report.output == str(out)
    assert report.counts["clusters"] == 60 and report.counts["resumed_chunks"] == 0
    data = read_training_set(out)
    assert all(len(column) == 60 for column in data.values())
    # chunk k's primaries are numbered from k x chunk_primaries
    assert np.all(data["primary"] // 50 == data["chunk"])
    # two chunks of 50 primaries (a straight track makes one cluster each)
    assert report.counts["chunks"] == 2 and report.counts["primaries"] == 100
    assert report.details["energy_keV"] == 200.0 and report.details["seed"] == 3
    attrs = read_training_attrs(out)
    assert attrs["dedkit_kind"] == "training" and attrs["n_rows"] == 60


@pytest.mark.parametrize("bad", [{"n": 0}, {"energy_keV": 5.0}])
def test_build_training_set_refuses_bad_settings_before_writing(tmp_path, bad):
    from dedkit.errors import DedkitError

    args = dict(energy_keV=200.0, n=10, seed=1, simulate=fake_simulate)
    args.update(bad)
    out = tmp_path / "train.h5"
    with pytest.raises(DedkitError):
        build_training_set(out, **args)
    assert not out.exists()
