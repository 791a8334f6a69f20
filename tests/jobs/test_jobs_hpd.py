"""The hybrid-pixel jobs called directly (:mod:`dedkit.jobs.hpd`) on the sample's MÖNCH
run: pedestal, clusters (both finders), localisation (centroid, eta, the shipped CNN) and
the image, each report against the file it wrote, and against what the command writes."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from dedkit.io.calibration import read_pedestal_file
from dedkit.io.clust import read_clust
from dedkit.io.events import read_attrs, read_table
from dedkit.jobs.hpd import (
    HpdReport,
    compute_pedestal,
    describe_run,
    find_clusters_in_run,
    localize_clusters,
    make_image,
)
from dedkit.report import JobReport

SHAPE = (400, 400)  # the MÖNCH sensor of the sample run


def check_report(report, command, output, **counts):
    assert isinstance(report, HpdReport) and isinstance(report, JobReport)
    assert report.command == command
    assert report.output == str(output)
    assert output.exists()
    assert report.seconds >= 0
    for key, value in counts.items():
        assert report.counts[key] == value, (key, report.counts)
    d = report.to_dict()
    assert d["command"] == command and d["counts"] == report.counts
    assert report.text().startswith(f"{command}: wrote {output}")


@pytest.fixture(scope="module")
def run(sample, tmp_path_factory):
    """Pedestal and connected-finder clusters (keV) of the sample run, made once."""
    folder = tmp_path_factory.mktemp("hpd")
    ped = folder / "PED.h5"
    compute_pedestal(sample / "run_dark_master_0.json", ped)
    clusters = folder / "clusters.h5"
    report = find_clusters_in_run(
        sample / "run_master_0.json",
        ped,
        clusters,
        finder="connected",
        gain=sample / "run_gain.npy",
        workers=1,
    )
    return {"ped": ped, "clusters": clusters, "clusters_report": report}


def test_describe_run(sample):
    d = describe_run(sample / "run_master_0.json")
    assert d["detector_type"] == "Moench"
    assert d["shape"] == list(SHAPE) and d["frames"] == 20
    assert d["incomplete_frames"] == 0 and d["truncated"] is None


def test_compute_pedestal_report_and_file(sample, tmp_path, cli):
    out = tmp_path / "PED.h5"
    report = compute_pedestal(sample / "run_dark_master_0.json", out, window=20)
    check_report(report, "pedestal", out, frames=50)
    arrays, attrs = read_pedestal_file(out, SHAPE)
    assert attrs["frames"] == [0, 50] and attrs["window"] == 20
    assert report.details["window"] == 20
    assert report.details["median_pedestal_adu"] == pytest.approx(
        float(np.median(arrays["mean"])), abs=0.05
    )
    assert arrays["mean"].shape == SHAPE and np.all(arrays["count"] > 0)
    # the same file as the command's
    status, _, err = cli("hpd", "pedestal", sample / "run_dark_master_0.json",
                         "-o", tmp_path / "cli.h5", "--window", "20", "-q")  # fmt: skip
    assert status == 0, err
    cli_arrays, cli_attrs = read_pedestal_file(tmp_path / "cli.h5", SHAPE)
    assert cli_attrs == attrs
    for name, values in arrays.items():
        np.testing.assert_array_equal(cli_arrays[name], values)


def test_compute_pedestal_frame_range(sample, tmp_path):
    out = tmp_path / "PED.h5"
    report = compute_pedestal(sample / "run_dark_master_0.json", out, start=10, stop=30)
    check_report(report, "pedestal", out, frames=20)
    _, attrs = read_pedestal_file(out, SHAPE)
    assert attrs["frames"] == [10, 30]


def test_find_clusters_connected_report_and_file(sample, run):
    report, clusters = run["clusters_report"], run["clusters"]
    check_report(report, "clusters", clusters, frames=20)
    assert report.details["finder"] == "connected" and report.details["dask"] is False
    table = read_table(clusters)
    assert report.counts["clusters"] == len(table.x) > 100
    # frame numbers as the detector numbers them (slsDetector: from 1)
    assert set(np.unique(table.frame)) <= set(range(1, 21))
    attrs = read_attrs(clusters)
    assert attrs["finder"] == "connected" and attrs["frames"] == [0, 20]
    assert attrs["detector_shape"] == list(SHAPE) and attrs["beam_energy_keV"] == 200.0


def test_find_clusters_aare_writes_what_the_command_writes(sample, run, tmp_path, cli):
    out = tmp_path / "job.clust"
    master = sample / "run_master_0.json"
    report = find_clusters_in_run(master, run["ped"], out, workers=1)
    check_report(report, "clusters", out, frames=20)
    assert report.details["finder"] == "aare3x3"
    assert report.counts["clusters"] == len(read_clust(out).x) > 100
    status, _, err = cli("hpd", "clusters", master, "-p", run["ped"], "-o", tmp_path / "cli.clust",
                         "--workers", "1", "-q")  # fmt: skip
    assert status == 0, err
    assert out.read_bytes() == (tmp_path / "cli.clust").read_bytes()


@pytest.mark.parametrize("method", ["centroid", "eta2", "eta3"])
def test_localize_clusters_report_and_events(run, tmp_path, method):
    out = tmp_path / "events.h5"
    report = localize_clusters(run["clusters"], out, method=method)
    n_in = run["clusters_report"].counts["clusters"]
    check_report(report, "localize", out, clusters=n_in)
    c = report.counts
    assert c["selected"] + c["rejected"] == n_in
    assert c["events"] == c["selected"] - c["non_finite"]
    events = read_table(out)
    assert events.method == method and len(events.x) == c["events"]
    assert np.all((events.x >= 0) & (events.x < SHAPE[1]))
    assert np.all((events.y >= 0) & (events.y < SHAPE[0]))
    assert report.details["selection"]["window_keV"] == [20.0, 205.0]


def test_localize_clusters_without_selection_keeps_every_cluster(run, tmp_path):
    out = tmp_path / "events.h5"
    report = localize_clusters(run["clusters"], out, select=False)
    n = run["clusters_report"].counts["clusters"]
    check_report(report, "localize", out, clusters=n, events=n)
    assert len(read_table(out).x) == n


def test_localize_aare_clusters_in_adu_with_a_gain(sample, run, tmp_path):
    clust = tmp_path / "c.clust"
    find_clusters_in_run(sample / "run_master_0.json", run["ped"], clust, workers=1)
    out = tmp_path / "events.h5"
    report = localize_clusters(clust, out, gain=sample / "run_gain.npy")
    check_report(report, "localize", out, clusters=len(read_clust(clust).x))
    assert len(read_table(out).x) == report.counts["events"] > 0


@pytest.mark.slow
def test_localize_clusters_with_the_shipped_cnn_writes_what_the_command_writes(run, tmp_path, cli):
    pytest.importorskip("torch")
    out = tmp_path / "job.h5"
    report = localize_clusters(run["clusters"], out, method="cnn")
    check_report(report, "localize", out, clusters=run["clusters_report"].counts["clusters"])
    events = read_table(out)
    assert events.method == "cnn" and len(events.x) == report.counts["events"] > 0
    status, _, err = cli("hpd", "localize", run["clusters"], "--method", "cnn",
                         "-o", tmp_path / "cli.h5", "-q")  # fmt: skip
    assert status == 0, err
    same_table(out, tmp_path / "cli.h5")


def same_table(a, b):
    ta, tb = read_table(a), read_table(b)
    assert type(ta) is type(tb)
    for name in ("frame", "x", "y", "energy"):
        np.testing.assert_array_equal(getattr(ta, name), getattr(tb, name))
    attrs_a, attrs_b = read_attrs(a), read_attrs(b)
    # each records the clusters file it was made from by the name it was given
    assert {k: v for k, v in attrs_a.items() if k != "clusters"} == {
        k: v for k, v in attrs_b.items() if k != "clusters"
    }


def test_make_image_report_and_image(run, tmp_path, cli):
    events = tmp_path / "events.h5"
    localize_clusters(run["clusters"], events, method="eta2")
    n = len(read_table(events).x)
    out = tmp_path / "image.mrc"
    report = make_image(events, out, upsample=2)
    check_report(report, "image", out, events=n, outside=0)
    assert report.details["shape"] == [800, 800]
    # the pitch over the upsampling: 25 um / 2 in Angstrom
    assert report.details["pixel_size_A"] == pytest.approx(125000.0)
    with mrcfile.open(out) as m:
        image = np.array(m.data)
        assert float(m.voxel_size.x) == pytest.approx(125000.0)
    assert image.shape in ((800, 800), (1, 800, 800))
    assert image.dtype == np.float32 and np.count_nonzero(image) > 0
    # without the flat field the image is the event count per sub-pixel
    raw = tmp_path / "raw.mrc"
    make_image(events, raw, upsample=2, flat_field=False)
    with mrcfile.open(raw) as m:
        assert float(np.array(m.data).sum()) == n
    status, _, err = cli("hpd", "image", events, "--upsample", "2", "-o", tmp_path / "cli.mrc")
    assert status == 0, err
    assert out.read_bytes() == (tmp_path / "cli.mrc").read_bytes()
