import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.hpd.calibrate import apply_gain, clusters_to_kev
from dedkit.records.tables import ClusterTable


def test_scalar_gain_multiplies():
    signal = np.array([[20, 40], [0, -10]], np.int32)
    np.testing.assert_allclose(apply_gain(signal, 0.05), [[1.0, 2.0], [0.0, -0.5]])


def test_gain_map_per_pixel_and_zero_is_uncalibrated():
    signal = np.full((3, 2, 2), 10.0)
    gain = np.array([[0.5, 0.0], [0.25, 0.1]])
    energy = apply_gain(signal, gain)
    assert energy.dtype == np.float32 and energy.shape == (3, 2, 2)
    np.testing.assert_allclose(energy[1], [[5.0, 0.0], [2.5, 1.0]])
    assert signal[0, 0, 0] == 10.0  # input untouched


def test_clusters_to_kev_uses_the_gain_under_each_cluster_pixel():
    gain = np.arange(1, 21, dtype=np.float32).reshape(4, 5) / 100  # 4 rows, 5 columns
    data = np.ones((2, 3, 3), np.int32) * 10
    table = ClusterTable(np.array([0, 1]), np.array([2, 0]), np.array([1, 3]), data)
    kev = clusters_to_kev(table, gain)
    assert kev.units == "keV" and kev.data.dtype == np.float32
    np.testing.assert_allclose(kev.data[0], gain[0:3, 1:4] * 10)
    # second cluster at (x 0, y 3): the top row and left column are outside the frame
    expected = np.zeros((3, 3))
    expected[:2, 1:] = gain[2:4, 0:2] * 10
    np.testing.assert_allclose(kev.data[1], expected)
    np.testing.assert_allclose(clusters_to_kev(table, 0.5).data, 5.0)
    with pytest.raises(DedkitError, match="already in keV"):
        clusters_to_kev(kev, gain)


@pytest.mark.parametrize(
    "gain, message",
    [(0.0, "positive"), (np.ones((3, 3)), "does not fit"), (-np.ones((2, 2)), ">= 0")],
)
def test_bad_gain(gain, message):
    with pytest.raises(DedkitError, match=message):
        apply_gain(np.ones((2, 2)), gain)
