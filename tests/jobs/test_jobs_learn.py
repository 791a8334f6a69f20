"""The beam-scan labelling job called directly
(:func:`dedkit.jobs.learn.write_scan_training_set`, ``dedkit learn scan-labels``) on a
small simulated scan run (straight tracks, no Geant4), through the hpd jobs."""

from __future__ import annotations

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.training import read_training_attrs, read_training_set
from dedkit.jobs.hpd import compute_pedestal, find_clusters_in_run
from dedkit.jobs.learn import read_simulated_scan, write_scan_training_set
from dedkit.jobs.sim import beam_pattern, write_simulated_run
from dedkit.sim.runs import straight_track_stream

POINTS, DWELL = 4, 15


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A 4-point scan run and its clusters (keV, connected finder)."""
    folder = tmp_path_factory.mktemp("scan")
    run = folder / "scan_run"
    write_simulated_run(
        run,
        energy_keV=200.0,
        n_frames=POINTS * DWELL,
        flux=1.0,
        pattern=beam_pattern("scan", scan_points=POINTS, dwell_frames=DWELL, seed=5),
        dark_frames=20,
        seed=5,
        stream=straight_track_stream,
    )
    ped = folder / "ped.h5"
    compute_pedestal(run / "sim_dark_master_0.json", ped)
    clusters = folder / "clusters.h5"
    report = find_clusters_in_run(
        run / "sim_master_0.json",
        ped,
        clusters,
        finder="connected",
        gain=run / "sim_gain.npy",
        workers=1,
    )
    return {"run": run, "clusters": clusters, "n_clusters": report.counts["clusters"]}


def test_read_simulated_scan(scan):
    schedule, truth, attrs = read_simulated_scan(scan["run"])
    assert attrs["pattern"]["kind"] == "scan" and attrs["pattern"]["n_points"] == POINTS
    assert len(truth.x) > 0 and truth.method == "truth"
    assert schedule is not None


@pytest.mark.parametrize("labels", ["scan", "truth"])
def test_write_scan_training_set_report_and_file(scan, tmp_path, labels):
    out = tmp_path / "train.h5"
    report = write_scan_training_set(
        scan["clusters"], out, sim_run=scan["run"], min_clusters=2, labels=labels
    )
    d = report.to_dict()
    assert d["output"] == str(out) and d["labels"] == labels
    assert report.n_points == POINTS and report.n_points_used <= POINTS
    assert report.n_input == scan["n_clusters"]
    # every cluster is accounted for: kept or rejected for one reason
    rejected = (
        report.not_single
        + report.outside_scan
        + report.no_centroid
        + report.too_few
        + report.far
        + report.not_covering
    )
    assert rejected + report.n_kept == report.n_input
    assert report.n_kept > 0
    data = read_training_set(out)
    assert all(len(column) == report.n_kept for column in data.values())
    assert read_training_attrs(out)["n_rows"] == report.n_kept
    # labels are entry points on the detector, in pixels
    assert np.all(np.isfinite(data["entry_x"])) and np.all(np.isfinite(data["entry_y"]))
    assert np.all((data["entry_x"] >= 0) & (data["entry_x"] <= 400))


def test_write_scan_training_set_needs_a_scan(scan, tmp_path):
    out = tmp_path / "train.h5"
    with pytest.raises(DedkitError):
        write_scan_training_set(scan["clusters"], out)
    assert not out.exists()
