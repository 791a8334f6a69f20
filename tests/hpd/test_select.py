"""Single-electron selection by cluster energy (the paper's 20-205 keV window at 200 keV)."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.hpd.finder_connected import find_connected_clusters
from dedkit.hpd.select import SelectionReport, select_single_electrons
from dedkit.records.tables import FEATURE_NAMES, ClusterTable


def clusters_with_charges(charges, **extra):
    n = len(charges)
    features = np.zeros((n, len(FEATURE_NAMES)), np.float32)
    features[:, FEATURE_NAMES.index("charge_keV")] = charges
    return ClusterTable(
        np.arange(n, dtype=np.int64),
        np.arange(n, dtype=np.int32),
        np.zeros(n, np.int32),
        np.zeros((n, 3, 3), np.float32),
        "keV",
        features,
        {k: np.asarray(v) for k, v in extra.items()},
    )


def test_default_window_at_200_keV_counts_every_rejection():
    charges = [10, 19.9, 20, 100, 205, 205.5, 500, np.nan]
    selected, report = select_single_electrons(clusters_with_charges(charges))
    np.testing.assert_array_equal(selected.frame, [2, 3, 4])
    assert report.window_keV == (20.0, 205.0)
    assert (report.below_window, report.above_window, report.non_finite) == (2, 2, 1)
    assert (report.n_input, report.n_selected, report.n_rejected) == (8, 3, 5)
    as_dict = report.to_dict()
    assert as_dict["n_rejected"] == 5
    assert as_dict["window_keV"] == [20.0, 205.0]
    assert as_dict["touches_edge"] == as_dict["exceeds_crop"] == 0


def test_window_scales_with_beam_energy_or_is_given():
    table = clusters_with_charges([9, 10, 60, 102.5, 103])
    selected, report = select_single_electrons(table, beam_energy_keV=100)
    assert report.window_keV == pytest.approx((10.0, 102.5))
    np.testing.assert_array_equal(selected.frame, [1, 2, 3])
    selected, report = select_single_electrons(table, window_keV=(50, 70))
    np.testing.assert_array_equal(selected.frame, [2])
    assert (report.below_window, report.above_window) == (2, 2)


def test_edge_and_crop_rejections_come_first_and_counts_add_up():
    table = clusters_with_charges(
        [100, 100, 5, 100],
        touches_edge=[True, False, True, False],
        exceeds_crop=[True, True, False, False],
    )
    selected, report = select_single_electrons(
        table, reject_touching_edge=True, reject_exceeding_crop=True
    )
    np.testing.assert_array_equal(selected.frame, [3])
    assert (report.touches_edge, report.exceeds_crop, report.below_window) == (2, 1, 0)
    assert (
        sum(
            getattr(report, k)
            for k in ("touches_edge", "exceeds_crop", "non_finite", "below_window", "above_window")
        )
        == report.n_rejected
    )


def test_edge_rejection_needs_the_finder_flag():
    with pytest.raises(DedkitError, match="touches_edge"):
        select_single_electrons(clusters_with_charges([100]), reject_touching_edge=True)


def test_clusters_without_features_use_the_sum_of_their_pixels():
    data = np.zeros((2, 3, 3), np.float32)
    data[0, 1, 1] = 150
    data[1] = 30  # 270 keV: pile-up
    table = ClusterTable(np.arange(2), np.zeros(2, np.int32), np.zeros(2, np.int32), data, "keV")
    selected, report = select_single_electrons(table)
    np.testing.assert_array_equal(selected.frame, [0])
    assert report.above_window == 1
    table.units = "ADU"
    with pytest.raises(DedkitError, match="ADU"):
        select_single_electrons(table)


def test_selection_after_the_connected_finder():
    frame = np.zeros((64, 64), np.float32)
    frame[10, 10:12] = 60  # one electron, 120 keV
    frame[40, 40:43] = 100  # pile-up, 300 keV
    frame[20, 50] = 5  # a low-energy hit
    frame[0, 30] = 150  # on the edge
    table = find_connected_clusters(frame, 0.18)
    selected, report = select_single_electrons(table, reject_touching_edge=True)
    assert isinstance(report, SelectionReport)
    np.testing.assert_array_equal(selected.y, [10])
    assert (report.touches_edge, report.below_window, report.above_window) == (1, 1, 1)


@pytest.mark.parametrize(
    "kwargs", [{"beam_energy_keV": 0}, {"window_keV": (50, 20)}, {"window_keV": (0, np.inf)}]
)
def test_bad_options_are_refused(kwargs):
    with pytest.raises(DedkitError):
        select_single_electrons(clusters_with_charges([100]), **kwargs)
