"""Scan labels (dedkit.learn.scan): synthetic clusters made here, no Geant4."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dedkit.cli.main import main
from dedkit.errors import DedkitError
from dedkit.io.events import write_table
from dedkit.io.training import read_training_attrs, read_training_set
from dedkit.learn.data import load_training_arrays
from dedkit.learn.scan import (
    ScanSchedule,
    match_truth,
    parse_scan_csv,
    scan_labels,
    simulated_scan_schedule,
)
from dedkit.records.tables import FEATURE_NAMES, ClusterTable

CROP = 15
HALF = CROP // 2


def make_clusters(centroids, frames, *, charge=150.0, block=1):
    """Clusters whose crop is a (2 block + 1)^2 square of charge around the pixel that
    holds the centroid (the connected finder's reference pixel)."""
    centroids = np.asarray(centroids, dtype=np.float64)
    n = len(centroids)
    x = np.floor(centroids[:, 0]).astype(np.int32)
    y = np.floor(centroids[:, 1]).astype(np.int32)
    data = np.zeros((n, CROP, CROP), np.float32)
    data[:, HALF - block : HALF + block + 1, HALF - block : HALF + block + 1] = 1.0
    data *= np.float32(charge) / data[0].sum()
    features = np.zeros((n, len(FEATURE_NAMES)), np.float32)
    features[:, 0] = charge
    features[:, 6] = 200.0
    return ClusterTable(
        np.asarray(frames, np.int64), x, y, data, "keV", features,
        {"centroid_x": centroids[:, 0], "centroid_y": centroids[:, 1]},
    )  # fmt: skip


def concat(*tables):
    return ClusterTable.concatenate(tables)


@pytest.fixture
def scan_case():
    """Two points of 200 frames, one cluster per frame, centroids spread by 1 px, plus
    one far cluster, one near cluster not covering its point, one pile-up, one cluster
    outside the scan and a third point with too few clusters."""
    rng = np.random.default_rng(3)
    points = np.array([[100.3, 50.7], [200.9, 300.2], [30.5, 30.5]])
    good = [points[p] + rng.normal(0, 1.0, (200, 2)) for p in (0, 1)]
    frames = [np.arange(1, 201), np.arange(201, 401)]
    normal = make_clusters(np.concatenate(good), np.concatenate(frames), block=5)
    far = make_clusters([points[0] + [20.0, 0.0]], [5], block=3)
    # 2.5 px away (well inside the cut) but a single pixel: cannot cover the point
    lone = make_clusters([points[1] + [2.5, 0.0]], [210], block=0)
    pile = make_clusters([points[0]], [7], charge=380.0, block=3)
    stray = make_clusters([[10.0, 10.0]], [1000], block=3)
    few = make_clusters(points[2] + rng.normal(0, 1.0, (5, 2)), np.arange(401, 406), block=3)
    table = concat(normal, far, lone, pile, stray, few)
    scan = ScanSchedule([1, 201, 401], [200, 400, 405], points)
    return table, scan, points


def test_labels_are_point_means_and_rejections_counted(scan_case):
    table, scan, _ = scan_case
    columns, report = scan_labels(table, scan, sigma_px=1.0, min_clusters=10)
    assert report.n_input == len(table) == 409
    assert (report.not_single, report.outside_scan, report.too_few) == (1, 1, 5)
    assert (report.far, report.not_covering, report.n_kept) == (1, 1, 400)
    assert report.n_points_used == 2
    assert report.cut_radius_px == pytest.approx(5 * math.sqrt(2))
    # the estimate: the mean centroid of all single-electron clusters of the point,
    # the rejected ones included (as the paper: the mean over all frames)
    cx, cy = table.extra["centroid_x"], table.extra["centroid_y"]
    for p, frames in enumerate([(1, 200), (201, 400)]):
        inside = (table.frame >= frames[0]) & (table.frame <= frames[1])
        inside &= table.features[:, 0] < 205
        mean = cx[inside].mean(), cy[inside].mean()
        mine = columns["chunk"] == p
        origin_x = table.x[columns["primary"][mine]] - HALF
        origin_y = table.y[columns["primary"][mine]] - HALF
        np.testing.assert_allclose(columns["entry_x"][mine] + origin_x, mean[0], atol=1e-9)
        np.testing.assert_allclose(columns["entry_y"][mine] + origin_y, mean[1], atol=1e-9)
    # centroids in the same crop frame, and crops and features carried over
    rows = columns["primary"]
    np.testing.assert_allclose(columns["centroid_x"], cx[rows] - (table.x[rows] - HALF))
    np.testing.assert_array_equal(columns["image"], table.data[rows])
    assert "true_entry_x" not in columns and report.label_error_rmse_px is None


def test_sigma_estimated_from_the_data_by_default(scan_case):
    table, scan, _ = scan_case
    _, report = scan_labels(table, scan, min_clusters=10)
    assert report.sigma_source.startswith("estimated")
    # 400 clusters spread by 1 px per axis, plus the far cluster (20 px) in the rms
    sx, sy = report.sigma_xy_px
    assert 0.9 < sy < 1.12 and 1.1 < sx < 1.7
    # a cut radius tight enough to reject some of the normal clusters
    _, tight = scan_labels(table, scan, sigma_px=1.0, n_sigma=1.0, min_clusters=10)
    assert tight.far > 50


def test_coverage_is_the_pixel_holding_the_point():
    # the point, (20 x 10.05 + 9.5) / 21 = 10.024 in x, lies in pixel column 10: a
    # one-pixel cluster whose reference pixel is column 10 covers it, column 9 does not
    centroids = np.array([[10.05, 20.5]] * 20 + [[9.5, 20.5]])
    table = make_clusters(centroids, np.arange(1, 22), block=0)
    scan = ScanSchedule([1], [21])
    columns, report = scan_labels(table, scan, sigma_px=1.0)
    assert report.not_covering == 1 and report.n_kept == 20
    assert 20 not in columns["primary"]
    assert columns["entry_x"][0] == pytest.approx(HALF + (20 * 10.05 + 9.5) / 21 - 10)


def test_label_error_against_truth(scan_case):
    table, scan, points = scan_case
    truth = np.full((len(table), 2), np.nan)
    truth[:400] = np.repeat(points[:2], 200, axis=0)
    columns, report = scan_labels(table, scan, sigma_px=1.0, min_clusters=10, true_entry_px=truth)
    rows = columns["primary"]
    origin = np.stack([table.x[rows] - HALF, table.y[rows] - HALF], 1)
    est = np.stack([columns["entry_x"], columns["entry_y"]], 1) + origin
    true = np.stack([columns["true_entry_x"], columns["true_entry_y"]], 1) + origin
    finite = np.isfinite(true[:, 0])
    np.testing.assert_allclose(true[finite], truth[rows][finite])
    err = np.sqrt(np.mean((est - true)[finite] ** 2, axis=0))
    assert report.label_error_rmse_px["x"] == pytest.approx(err[0])
    assert report.n_with_truth == int(finite.sum()) == 400
    # 200 centroids of 1 px rms: the mean is off by about 0.07 px
    assert 0 < err.max() < 0.3


def test_bad_inputs(scan_case):
    table, scan, _ = scan_case
    with pytest.raises(DedkitError, match="at least 2 clusters|no scan point"):
        scan_labels(table, scan, min_clusters=1000)
    with pytest.raises(DedkitError, match="sigma"):
        scan_labels(table, scan, sigma_px=-1)
    adu = ClusterTable(table.frame, table.x, table.y, table.data, "ADU", None)
    with pytest.raises(DedkitError, match="connected finder"):
        scan_labels(adu, scan)


def test_schedule_points_and_checks():
    scan = ScanSchedule([10, 1], [19, 9])
    np.testing.assert_array_equal(scan.point_of([0, 1, 9, 10, 19, 20]), [-1, 1, 1, 0, 0, -1])
    with pytest.raises(DedkitError, match="overlap"):
        ScanSchedule([1, 5], [5, 9])
    with pytest.raises(DedkitError, match="before"):
        ScanSchedule([5], [4])
    sim = simulated_scan_schedule([[1, 2], [3, 4]], 10, 45)
    np.testing.assert_array_equal(sim.first_frame, [1, 11, 21, 31, 41])
    np.testing.assert_array_equal(sim.last_frame, [10, 20, 30, 40, 45])
    np.testing.assert_array_equal(sim.nominal_px[:, 0], [1, 3, 1, 3, 1])


def test_parse_scan_csv():
    scan = parse_scan_csv("first_frame,last_frame,x_px,y_px\n# comment\n1,10,5.5,6\n\n11,20,7,8\n")
    np.testing.assert_array_equal(scan.first_frame, [1, 11])
    np.testing.assert_allclose(scan.nominal_px, [[5.5, 6], [7, 8]])
    assert parse_scan_csv("1,10\n11,20\n").nominal_px is None
    for text, message in [
        ("1,10,5\n", "fields"),
        ("1,10,5,6\n11,20\n", "every scan line"),
        ("1,x\n1,2\n", "not numbers"),
        ("", "no points"),
    ]:
        with pytest.raises(DedkitError, match=message):
            parse_scan_csv(text)


def test_match_truth_nearest_in_the_same_frame():
    truth_frame = np.array([1, 1, 2, 4])
    truth_xy = np.array([[0.0, 0], [10, 10], [5, 5], [1, 1]])
    got = match_truth([1, 1, 2, 3], [[9, 9], [1, 0], [0, 0], [1, 1]], truth_frame, truth_xy)
    np.testing.assert_array_equal(got, [1, 0, 2, -1])


def _cli(capsys, *args):
    capsys.readouterr()
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_writes_a_training_set(scan_case, tmp_path, capsys):
    table, scan, points = scan_case
    clusters = write_table(tmp_path / "clusters.h5", table, attrs={"beam_energy_keV": 200.0})
    csv = tmp_path / "scan.csv"
    csv.write_text("first_frame,last_frame\n1,200\n201,400\n401,405\n")
    out = tmp_path / "train.h5"
    status, text, err = _cli(capsys, "learn", "scan-labels", clusters, "--scan", csv,
                             "--sigma", "1.0", "--min-clusters", "10", "-o", out)  # fmt: skip
    assert status == 0, err
    assert "kept                400" in text and "not covering        1" in text
    arrays = load_training_arrays(out)
    columns = read_training_set(out)
    assert len(arrays) == 400 and "true_entry_x" not in columns
    np.testing.assert_allclose(arrays.targets[:, 0], columns["entry_x"] - 7.5, atol=1e-6)
    assert read_training_attrs(out)["parameters"]["source"] == "beam scan"
    # refuses to overwrite; --json report
    status, _, err = _cli(capsys, "learn", "scan-labels", clusters, "--scan", csv, "-o", out)
    assert status == 2 and len(err.strip().splitlines()) == 1
    status, text, _ = _cli(capsys, "learn", "scan-labels", clusters, "--scan", csv,
                           "--min-clusters", "10", "-o", out, "--force", "--json")  # fmt: skip
    assert status == 0 and '"sigma_source": "estimated from the data"' in text


def test_cli_bad_input(scan_case, tmp_path, capsys):
    table, _, _ = scan_case
    clusters = write_table(tmp_path / "clusters.h5", table)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,10,3\n")
    out = tmp_path / "train.h5"
    for args in (
        ("--scan", bad),
        ("--scan", tmp_path / "missing.csv"),
        ("--sim-run", tmp_path),
        ("--scan", bad, "--sim-run", tmp_path),
        ("--scan", bad, "--labels", "truth"),
    ):
        status, _, err = _cli(capsys, "learn", "scan-labels", clusters, *args, "-o", out)
        assert status == 2, args
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()
