"""Localisers: charge centroid, eta2 / eta3 interpolation (checked against aare), registry."""

import numpy as np
import pytest
from scipy.special import ndtr

from dedkit.errors import DedkitError
from dedkit.hpd.finder_connected import find_connected_clusters
from dedkit.hpd.localize import (
    CentroidLocalizer,
    EtaInterpolator,
    Localizer,
    available_localizers,
    compute_eta,
    get_localizer,
    raw_eta_positions,
    register_localizer,
)
from dedkit.records.tables import ClusterTable, EventTable


def table_of(data, x=None, y=None):
    data = np.asarray(data)
    n = len(data)
    x = np.full(n, 10, np.int32) if x is None else np.asarray(x, np.int32)
    y = np.full(n, 20, np.int32) if y is None else np.asarray(y, np.int32)
    return ClusterTable(np.arange(n, dtype=np.int64), x, y, data, "keV")


def gaussian_clusters(rng, n, sigma=0.3, energy=100.0):
    """3x3 clusters of a Gaussian charge cloud hitting the centre pixel uniformly.

    Returns the table (reference pixel x=10, y=20) and the true impact positions.
    """
    local = rng.uniform(1, 2, (n, 2))  # (x, y) inside the centre pixel of the 3x3
    edges = np.arange(4)
    fx = np.diff(ndtr((edges[None, :] - local[:, :1]) / sigma), axis=1)
    fy = np.diff(ndtr((edges[None, :] - local[:, 1:]) / sigma), axis=1)
    data = energy * fy[:, :, None] * fx[:, None, :]
    table = table_of(data)
    return table, table.x - 1 + local[:, 0], table.y - 1 + local[:, 1]


def test_centroid_of_hand_made_clusters():
    data = np.zeros((2, 3, 3))
    data[0, 1, 1] = 3
    data[0, 1, 2] = 1  # x = 10 - 1 + (3 * 1.5 + 1 * 2.5) / 4
    data[1, 0, 0] = 2
    data[1, 2, 2] = 2
    data[1, 0, 2] = -5  # negative pixels are noise and left out
    events = CentroidLocalizer().localize(table_of(data))
    np.testing.assert_allclose(events.x, [10.75, 10.5])
    np.testing.assert_allclose(events.y, [20.5, 20.5])
    np.testing.assert_allclose(events.energy, [4, -1])
    assert events.method == "centroid"


def test_centroid_without_positive_pixels_is_the_reference_pixel_centre():
    events = CentroidLocalizer().localize(table_of(np.zeros((1, 3, 3))))
    assert (events.x[0], events.y[0]) == (10.5, 20.5)


def test_centroid_uses_the_connected_finder_centroid_and_matches_its_crop():
    frame = np.zeros((50, 50), np.float32)
    frame[20, 20:23] = [5, 30, 12]
    frame[21, 22] = 4
    frame[40, 7] = 9
    table = find_connected_clusters(frame, 0.18)
    events = CentroidLocalizer().localize(table)
    np.testing.assert_array_equal(events.x, table.extra["centroid_x"])
    np.testing.assert_allclose(events.energy, [51, 9])
    from_crop = CentroidLocalizer().localize(
        ClusterTable(table.frame, table.x, table.y, table.data)
    )
    np.testing.assert_allclose(from_crop.x, events.x, rtol=1e-12)
    np.testing.assert_allclose(from_crop.y, events.y, rtol=1e-12)


def test_eta_values_by_hand():
    data = np.zeros((2, 3, 3))
    # quadrant (column, row) offsets (0, 0): centre 6, right 2, next row 4 and 0
    data[0, 1, 1], data[0, 1, 2], data[0, 2, 1] = 6, 2, 4
    # quadrant (-1, -1): left 3, previous row 1
    data[1, 1, 1], data[1, 1, 0], data[1, 0, 1] = 6, 3, 1
    eta = compute_eta(table_of(data), "eta2")
    np.testing.assert_allclose(eta.x, [2 / 8, 6 / 9])
    np.testing.assert_allclose(eta.y, [4 / 10, 6 / 7])
    np.testing.assert_array_equal(eta.dx, [0, -1])
    np.testing.assert_array_equal(eta.dy, [0, -1])
    np.testing.assert_allclose(eta.sum, [12, 10])
    x, y = raw_eta_positions(table_of(data), "eta2")
    np.testing.assert_allclose(x, [10.5 + 0.25, 9.5 + 6 / 9])
    eta3 = compute_eta(table_of(data), "eta3")
    np.testing.assert_allclose(eta3.x, [2 / 12, -3 / 10])
    np.testing.assert_allclose(eta3.y, [4 / 12, -1 / 10])
    x, y = raw_eta_positions(table_of(data), "eta3")
    np.testing.assert_allclose(y, [20.5 + 4 / 12, 20.5 - 0.1])


def test_eta_of_large_crops_uses_the_central_3x3(rng):
    big = rng.normal(0, 1, (50, 15, 15))
    small = big[:, 6:9, 6:9]
    for kind in ("eta2", "eta3"):
        a, b = compute_eta(table_of(big), kind), compute_eta(table_of(small), kind)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.sum, b.sum)


def aare_clusters(aare, table):
    clusters = aare.ClusterVector((3, 3), np.float64)
    for x, y, d in zip(table.x, table.y, table.data, strict=True):
        clusters.push_back(aare.Cluster(int(x), int(y), d.ravel(), (3, 3), np.float64))
    return clusters


@pytest.mark.parametrize("kind", ["eta2", "eta3"])
@pytest.mark.parametrize("transform", ["conditional", "rosenblatt"])
@pytest.mark.parametrize("integer_values", [False, True])
def test_eta_interpolation_matches_aare(rng, kind, transform, integer_values):
    aare = pytest.importorskip(
        "aare", reason="aare (PSI) is not installed: pip install aare==2025.11.21"
    )
    n = 3000
    data = rng.gamma(2.0, 5.0, (n, 3, 3))
    data[:, 1, 1] += 40
    if integer_values:
        # small integers put many eta values exactly on bin edges (0.25, 0.5, ...)
        data = rng.integers(0, 5, (n, 3, 3)).astype(np.float64)
    table = table_of(data, rng.integers(1, 400, n), rng.integers(1, 400, n))
    clusters = aare_clusters(aare, table)

    reference = (aare.calculate_eta2 if kind == "eta2" else aare.calculate_eta3)(clusters)
    eta = compute_eta(table, kind)
    np.testing.assert_array_equal(eta.x, reference["x"])
    np.testing.assert_array_equal(eta.y, reference["y"])
    np.testing.assert_array_equal(eta.sum, reference["sum"])
    if kind == "eta2":
        np.testing.assert_array_equal(2 * (eta.dy + 1) + eta.dx + 1, reference["c"])

    # eta values must stay inside the edges: aare reads past its tables otherwise
    low = 0.0 if kind == "eta2" else -1.0
    edges = np.linspace(low, 1.0, 21)
    energy_edges = np.linspace(eta.sum.min(), eta.sum.max(), 4)
    histogram, _ = np.histogramdd((eta.x, eta.y, eta.sum), bins=(edges, edges, energy_edges))
    if transform == "conditional":
        interpolator = aare.Interpolator(histogram, edges, edges, energy_edges)
    else:
        interpolator = aare.Interpolator(edges, edges, energy_edges)
        interpolator.rosenblatttransform(histogram)
    photons = (interpolator.interpolate if kind == "eta2" else interpolator.interpolate_eta3)(
        clusters
    )

    ours = EtaInterpolator.from_histogram(
        histogram, edges, edges, energy_edges, kind=kind, transform=transform
    )
    np.testing.assert_array_equal(ours.u, interpolator.get_ietax())
    np.testing.assert_array_equal(ours.v, interpolator.get_ietay())
    events = ours.localize(table)
    np.testing.assert_array_equal(events.x, photons["x"])
    np.testing.assert_array_equal(events.y, photons["y"])
    assert events.method == kind


@pytest.mark.parametrize("kind", ["eta2", "eta3"])
def test_flat_field_linearisation_recovers_the_impact_point(rng, kind):
    # a narrow cloud (sigma 0.2 pixel) makes the raw eta position strongly non-linear
    flat, _, _ = gaussian_clusters(rng, 40000, sigma=0.2)
    interpolator = EtaInterpolator(kind, transform="rosenblatt").fit(flat, bins=100)
    test, true_x, true_y = gaussian_clusters(rng, 5000, sigma=0.2)
    events = interpolator.localize(test)
    rms = np.sqrt(np.mean((events.x - true_x) ** 2 + (events.y - true_y) ** 2))
    raw_x, raw_y = raw_eta_positions(test, kind)
    raw_rms = np.sqrt(np.mean((raw_x - true_x) ** 2 + (raw_y - true_y) ** 2))
    assert rms < 0.06
    assert rms < raw_rms / 2

    # a flat illumination comes out flat inside the pixel: half the events in the central
    # half, where the raw eta positions crowd
    def central(position):
        return np.mean(np.abs(position % 1 - 0.5) < 0.25)

    assert central(events.x) == pytest.approx(0.5, abs=0.04)
    assert central(events.y) == pytest.approx(0.5, abs=0.04)
    assert central(raw_x) > 0.65


def test_fit_from_clusters_equals_the_histogram_route(rng):
    flat, _, _ = gaussian_clusters(rng, 2000)
    fitted = EtaInterpolator("eta2").fit(flat, bins=30, energy_bins=2)
    assert fitted.histogram.shape == (30, 30, 2)
    assert fitted.histogram.sum() == len(flat)
    again = EtaInterpolator.from_histogram(
        fitted.histogram, fitted.x_edges, fitted.y_edges, fitted.energy_edges
    )
    test, _, _ = gaussian_clusters(rng, 100)
    np.testing.assert_array_equal(fitted.localize(test).x, again.localize(test).x)


def test_registry():
    assert {"centroid", "eta2", "eta3"} <= set(available_localizers())
    assert isinstance(get_localizer("centroid"), CentroidLocalizer)
    eta3 = get_localizer("eta3", transform="rosenblatt")
    assert (eta3.name, eta3.transform) == ("eta3", "rosenblatt")
    with pytest.raises(DedkitError, match="unknown localizer"):
        get_localizer("magic")

    class Fixed(Localizer):
        name = "test-fixed"

        def localize(self, table):
            n = len(table)
            return EventTable(table.frame, np.zeros(n), np.zeros(n), np.zeros(n, np.float32))

    register_localizer("test-fixed", Fixed)
    assert isinstance(get_localizer("test-fixed"), Fixed)
    with pytest.raises(ValueError, match="already registered"):
        register_localizer("test-fixed", CentroidLocalizer)


def test_bad_use_is_refused(rng):
    with pytest.raises(DedkitError, match="fit it first"):
        EtaInterpolator("eta2").localize(table_of(np.ones((1, 3, 3))))
    with pytest.raises(DedkitError, match="at least 3 x 3"):
        compute_eta(table_of(np.ones((1, 2, 2))), "eta2")
    with pytest.raises(DedkitError, match="unknown eta"):
        EtaInterpolator("eta5")
    with pytest.raises(DedkitError, match="unknown transform"):
        EtaInterpolator("eta2", transform="magic")
    with pytest.raises(DedkitError, match="does not match"):
        EtaInterpolator.from_histogram(np.ones((3, 3, 1)), np.arange(5), np.arange(4), [0, 1])
    with pytest.raises(DedkitError, match="no clusters"):
        EtaInterpolator("eta2").fit(table_of(np.ones((0, 3, 3))))
    with pytest.raises(DedkitError, match="bins"):
        EtaInterpolator("eta2").fit(table_of(np.ones((4, 3, 3))), bins=1)
