"""Coincidence-loss curve: the seed's points, monotony, inverse, the K3 scaling."""

from __future__ import annotations

import numpy as np
import pytest

from dedkit.camera import coincidence as co
from dedkit.errors import DedkitError


@pytest.mark.parametrize(("rate", "factor"), co.SEED_K2_POINTS)
def test_passes_within_001_of_each_seed_point(rate, factor):
    assert abs(co.coincidence_factor(rate, "K2") - factor) < 0.01


@pytest.mark.parametrize(("rate", "factor"), co.SEED_K2_POINTS)
def test_k3_is_the_same_curve_at_375_times_the_rate(rate, factor):
    assert abs(co.coincidence_factor(3.75 * rate, "K3") - factor) < 0.01
    assert co.coincidence_factor(3.75 * rate, "K3") == pytest.approx(
        co.coincidence_factor(rate, "K2"), rel=1e-12
    )


def test_seed_points_are_the_seeds_numbers():
    assert co.SEED_K2_POINTS == ((5.0, 0.97), (7.5, 0.94), (10.0, 0.87), (20.0, 0.6))
    assert co.DETECTION_EFFICIENCY == 0.87


def test_one_at_zero_and_smooth_monotone():
    r = np.linspace(0, 200, 4001)
    f = co.coincidence_factor(r)
    assert f[0] == 1.0
    assert np.all(np.diff(f) < 0)
    assert np.all((f > 0) & (f <= 1))
    # no kinks: second differences small everywhere
    assert np.abs(np.diff(f, 2)).max() < 1e-4


def test_vectorised_shapes():
    r = np.array([[0.0, 5.0], [10.0, 20.0]])
    assert co.coincidence_factor(r).shape == (2, 2)
    assert co.counted_rate(r).shape == (2, 2)
    assert co.true_rate(co.counted_rate(r)).shape == (2, 2)
    assert np.ndim(co.coincidence_factor(5.0)) == 0


def test_counted_rate_definition():
    r = np.array([0.0, 1.0, 5.0, 20.0])
    expected = r * co.coincidence_factor(r) * 0.87
    np.testing.assert_array_equal(co.counted_rate(r), expected)
    # the seed's 20 e/s point: 20 x 0.6 x 0.87 = 10.44 counted
    assert co.counted_rate(20.0) == pytest.approx(10.44, abs=0.01)


@pytest.mark.parametrize("camera", ["K2", "K3"])
def test_correction_inverts_counting(camera):
    peak = co.peak_true_rate(camera)
    r = np.linspace(0, peak, 501)
    c = co.counted_rate(r, camera)
    # correction(inverse(x)) == x on counted rates ...
    np.testing.assert_allclose(co.counted_rate(co.true_rate(c, camera), camera), c, rtol=1e-13)
    # ... and on true rates below the peak (ill-conditioned only right at the peak)
    np.testing.assert_allclose(co.true_rate(c[:-20], camera), r[:-20], rtol=1e-10, atol=1e-12)


def test_peak_is_where_counting_saturates():
    peak, top = co.peak_true_rate("K2"), co.max_counted_rate("K2")
    r = np.linspace(0, 3 * peak, 30001)
    c = co.counted_rate(r)
    assert r[np.argmax(c)] == pytest.approx(peak, abs=0.01)
    assert c.max() == pytest.approx(top, rel=1e-9)
    # the seed's 20 e/s point must be invertible
    assert peak > 20
    assert co.peak_true_rate("K3") == pytest.approx(3.75 * peak)


def test_beyond_the_curve_is_an_error():
    top = co.max_counted_rate("K2")
    with pytest.raises(DedkitError, match="beyond what the K2 can count"):
        co.true_rate(top * 1.01)
    with pytest.raises(DedkitError, match="must not be negative"):
        co.true_rate(-1.0)
    with pytest.raises(DedkitError, match="finite"):
        co.coincidence_factor(np.nan)
    with pytest.raises(DedkitError, match="does not count"):
        co.coincidence_factor(1.0, "CCD")


def test_rate_sensitivity_is_the_log_slope():
    r = np.array([1.0, 10.0, 20.0, 30.0])
    h = 1e-6
    numeric = (np.log(co.counted_rate(r * (1 + h))) - np.log(co.counted_rate(r * (1 - h)))) / (
        2 * h
    )
    np.testing.assert_allclose(co.rate_sensitivity(r), numeric, rtol=1e-6)
    assert co.rate_sensitivity(co.peak_true_rate()) == pytest.approx(0, abs=1e-9)
