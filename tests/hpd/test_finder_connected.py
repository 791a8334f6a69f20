"""The paper's connected-pixel cluster finder: labels, features, crops, flags."""

import numpy as np
import pytest
from scipy import ndimage

from dedkit.errors import DedkitError
from dedkit.hpd.finder_connected import find_connected_clusters, find_connected_clusters_batch
from dedkit.records.tables import FEATURE_NAMES

NOISE = 0.2  # keV; 5 sigma = 1 keV


def feature(table, name):
    return table.features[:, FEATURE_NAMES.index(name)]


def test_hand_placed_clusters_give_exact_features_centroids_and_crops():
    frame = np.zeros((40, 40), np.float32)
    # an L-shaped cloud of 20 keV
    frame[20, 20] = 10
    frame[20, 21] = 6
    frame[21, 21] = 4
    # a lone pixel, and two pixels that do not exceed 5 sigma (1.0 is not above 1.0)
    frame[30, 10] = 3
    frame[10, 30] = 0.9
    frame[12, 30] = 1.0
    table = find_connected_clusters(frame, NOISE, frame_number=7, beam_energy_keV=120)

    assert len(table) == 2
    assert table.units == "keV"
    np.testing.assert_array_equal(table.frame, [7, 7])
    # charge centroid of the L: x = (10*20.5 + 6*21.5 + 4*21.5)/20, y = (16*20.5 + 4*21.5)/20
    np.testing.assert_allclose(table.extra["centroid_x"], [21.0, 10.5])
    np.testing.assert_allclose(table.extra["centroid_y"], [20.7, 30.5])
    np.testing.assert_array_equal(table.x, [21, 10])
    np.testing.assert_array_equal(table.y, [20, 30])
    np.testing.assert_array_equal(table.extra["n_pixels"], [3, 1])
    expected_features = [
        [20, 2, 2, 3, 20 / 3, 10, 120],
        [3, 1, 1, 1, 3, 3, 120],
    ]
    np.testing.assert_allclose(table.features, expected_features, rtol=1e-6)
    assert table.features.dtype == np.float32

    crop = np.zeros((15, 15), np.float32)
    crop[7, 6] = 10  # the centroid pixel (20, 21) sits at the centre (7, 7)
    crop[7, 7] = 6
    crop[8, 7] = 4
    np.testing.assert_array_equal(table.data[0], crop)
    lone = np.zeros((15, 15), np.float32)
    lone[7, 7] = 3
    np.testing.assert_array_equal(table.data[1], lone)
    for flag in ("at_edge", "touches_edge", "exceeds_crop"):
        assert not table.extra[flag].any()


def test_diagonal_neighbours_join_with_8_connectivity_only():
    frame = np.zeros((30, 30), np.float32)
    frame[10, 10] = 5
    frame[11, 11] = 7
    eight = find_connected_clusters(frame, NOISE)
    four = find_connected_clusters(frame, NOISE, connectivity=4)
    assert len(eight) == 1
    np.testing.assert_allclose(feature(eight, "extent_x_px"), [2])
    np.testing.assert_allclose(feature(eight, "charge_keV"), [12])
    assert len(four) == 2
    np.testing.assert_allclose(feature(four, "charge_keV"), [5, 7])


def test_cluster_at_the_frame_corner_is_padded_and_flagged():
    frame = np.full((12, 12), 0.5, np.float32)  # below threshold everywhere
    frame[0, 0] = 8
    frame[0, 1] = 8
    frame[1, 0] = 4
    masked = find_connected_clusters(frame, NOISE)
    kept = find_connected_clusters(frame, NOISE, mask_outside=False)
    assert masked.extra["at_edge"].all() and masked.extra["touches_edge"].all()
    # centroid (0.9, 0.7): the centre pixel is (row 0, column 0), so the crop starts at -7
    assert (masked.x[0], masked.y[0]) == (0, 0)
    expected = np.zeros((15, 15), np.float32)
    expected[7, 7] = 8
    expected[7, 8] = 8
    expected[8, 7] = 4
    np.testing.assert_array_equal(masked.data[0], expected)
    padded = np.zeros((26, 26), np.float32)
    padded[7:19, 7:19] = frame
    np.testing.assert_array_equal(kept.data[0], padded[:15, :15])


def test_crop_of_a_cluster_near_but_not_on_the_edge_is_flagged_at_edge_only():
    frame = np.zeros((30, 30), np.float32)
    frame[3, 3] = 9
    table = find_connected_clusters(frame, NOISE)
    assert table.extra["at_edge"][0] and not table.extra["touches_edge"][0]


def test_mask_outside_false_keeps_neighbouring_values():
    frame = np.zeros((30, 30), np.float32)
    frame[15, 15] = 9
    frame[15, 17] = 0.8  # sub-threshold, two pixels away
    masked = find_connected_clusters(frame, NOISE)
    kept = find_connected_clusters(frame, NOISE, mask_outside=False)
    assert masked.data[0, 7, 9] == 0
    assert kept.data[0, 7, 9] == np.float32(0.8)
    np.testing.assert_array_equal(kept.data[0], frame[8:23, 8:23])


def test_cluster_wider_than_the_crop_keeps_its_features():
    frame = np.zeros((10, 40), np.float32)
    frame[5, 5:25] = 2.0
    table = find_connected_clusters(frame, NOISE)
    assert table.extra["exceeds_crop"][0]
    np.testing.assert_allclose(feature(table, "charge_keV"), [40])
    np.testing.assert_allclose(feature(table, "extent_x_px"), [20])
    assert table.x[0] == 15  # centroid 15.0
    assert table.data[0].sum() == pytest.approx(30)  # 15 of the 20 pixels fit


def test_empty_frame_gives_an_empty_table():
    table = find_connected_clusters(np.zeros((16, 16)), NOISE)
    assert len(table) == 0
    assert table.data.shape == (0, 15, 15)
    assert table.features.shape == (0, len(FEATURE_NAMES))
    assert all(len(v) == 0 for v in table.extra.values())


def test_noise_map_and_nan_exclude_pixels():
    frame = np.zeros((20, 20), np.float32)
    frame[5, 5] = frame[10, 10] = frame[15, 15] = 3.0
    noise = np.full((20, 20), NOISE)
    noise[10, 10] = 1.0  # threshold 5 keV
    noise[15, 15] = np.nan
    table = find_connected_clusters(frame, noise)
    np.testing.assert_array_equal(table.y, [5])


def test_non_finite_pixels_do_not_break_the_finder():
    frame = np.zeros((20, 20), np.float32)
    frame[4, 4] = np.nan
    frame[10, 10] = np.inf
    frame[10, 11] = 3
    table = find_connected_clusters(frame, NOISE)
    assert len(table) == 1
    assert (table.x[0], table.y[0]) == (10, 10)
    assert np.isinf(feature(table, "charge_keV")[0])
    assert np.isnan(table.extra["centroid_x"][0])


def test_integer_frames_are_accepted():
    frame = np.zeros((20, 20), np.int16)
    frame[8, 8] = 4
    table = find_connected_clusters(frame, NOISE)
    np.testing.assert_allclose(feature(table, "charge_keV"), [4])


@pytest.mark.parametrize("connectivity", [4, 8])
def test_batch_agrees_with_scipy_labelling(rng, connectivity):
    frames = rng.normal(0, NOISE, (3, 60, 70)).astype(np.float32)
    frames[rng.random(frames.shape) < 0.08] += 6.0
    table = find_connected_clusters_batch(
        frames, NOISE, frame_numbers=[100, 101, 102], connectivity=connectivity
    )
    structure = np.ones((3, 3)) if connectivity == 8 else None
    charges, centroids_x, sizes, numbers = [], [], [], []
    for i, frame in enumerate(frames):
        labels, n = ndimage.label(frame > 5 * NOISE, structure=structure)
        index = np.arange(1, n + 1)
        charges.append(ndimage.sum(frame.astype(np.float64), labels, index))
        weights = frame.astype(np.float64) * (np.arange(70) + 0.5)
        centroids_x.append(ndimage.sum(weights, labels, index) / charges[-1])
        sizes.append(ndimage.sum(np.ones_like(frame), labels, index))
        numbers.append(np.full(n, 100 + i))
    np.testing.assert_array_equal(table.frame, np.concatenate(numbers))
    np.testing.assert_allclose(feature(table, "charge_keV"), np.concatenate(charges), rtol=1e-5)
    np.testing.assert_allclose(table.extra["centroid_x"], np.concatenate(centroids_x), rtol=1e-9)
    np.testing.assert_array_equal(table.extra["n_pixels"], np.concatenate(sizes))


def test_batch_grows_its_output_and_matches_single_frames():
    # isolated pixels on every other row and column: 1024 clusters per frame, more than
    # the first guess of the output size
    frames = np.zeros((3, 64, 64), np.float32)
    frames[:, ::2, ::2] = np.arange(1, 3 * 32 * 32 + 1, dtype=np.float32).reshape(3, 32, 32)
    table = find_connected_clusters_batch(frames, NOISE, crop=3)
    assert len(table) == 3 * 32 * 32 - 1  # the first pixel (1 keV) is not above 1 keV
    singles = [
        find_connected_clusters(f, NOISE, crop=3, frame_number=i) for i, f in enumerate(frames)
    ]
    for name in ("frame", "x", "y", "data", "features"):
        np.testing.assert_array_equal(
            getattr(table, name), np.concatenate([getattr(s, name) for s in singles])
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crop": 14},
        {"crop": 1},
        {"crop": 15.5},
        {"nsigma": "5"},
        {"nsigma": 0},
        {"nsigma": float("nan")},
        {"connectivity": 6},
        {"beam_energy_keV": -1},
    ],
)
def test_bad_options_are_refused(kwargs):
    with pytest.raises(DedkitError):
        find_connected_clusters(np.zeros((8, 8)), NOISE, **kwargs)


def test_bad_inputs_are_refused():
    with pytest.raises(DedkitError, match="noise map"):
        find_connected_clusters(np.zeros((8, 8)), np.ones((8, 9)))
    with pytest.raises(DedkitError, match="negative"):
        find_connected_clusters(np.zeros((8, 8)), -np.ones((8, 8)))
    with pytest.raises(DedkitError, match="3-D"):
        find_connected_clusters_batch(np.zeros((8, 8)), NOISE)
    with pytest.raises(DedkitError, match="frame numbers"):
        find_connected_clusters_batch(np.zeros((2, 8, 8)), NOISE, frame_numbers=[1])
