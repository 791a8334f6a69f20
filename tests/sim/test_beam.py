"""Beam patterns: Poisson arrivals per frame, entry points, saturating fluxes."""

from __future__ import annotations

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.sim.beam import (
    BeamPattern,
    check_flux,
    expected_energy_map,
    random_scan_points,
    sample_arrivals,
)

SHAPE = (400, 400)


def test_flat_arrivals_are_poisson_and_uniform():
    rng = np.random.default_rng(1)
    a = sample_arrivals(BeamPattern("flat"), 2000, 7.5, SHAPE, rng)
    counts = np.bincount(a.frame, minlength=2000)
    assert counts.mean() == pytest.approx(7.5, rel=0.03)
    assert counts.var() == pytest.approx(7.5, rel=0.1)
    assert np.all(np.diff(a.frame) >= 0)
    assert a.x_px.min() >= 0 and a.x_px.max() < 400
    # uniform: each quarter of the sensor gets a quarter of the electrons
    quarters = np.histogram2d(a.x_px, a.y_px, bins=2, range=[[0, 400], [0, 400]])[0]
    np.testing.assert_allclose(quarters / len(a), 0.25, atol=0.01)


def test_spot_is_a_gaussian_at_its_centre():
    rng = np.random.default_rng(2)
    a = sample_arrivals(BeamPattern("spot", centre_px=(120.3, 80.7), sigma_px=0.5), 3000,
                        2.0, SHAPE, rng)  # fmt: skip
    assert a.x_px.mean() == pytest.approx(120.3, abs=0.02)
    assert a.y_px.std() == pytest.approx(0.5, rel=0.03)
    # default: the sensor centre, about 2 um across
    b = sample_arrivals(BeamPattern("spot"), 500, 2.0, SHAPE, rng)
    assert b.x_px.mean() == pytest.approx(200.0, abs=0.01)
    assert b.x_px.std() * 25 * 2.3548 == pytest.approx(2.0, rel=0.1)


def test_scan_dwells_on_each_point_in_turn():
    points = np.array([[50.5, 60.5], [300.5, 200.5], [10.5, 390.5]])
    pattern = BeamPattern("scan", points_px=points, sigma_px=0.01, dwell_frames=4)
    a = sample_arrivals(pattern, 30, 3.0, SHAPE, np.random.default_rng(3), first_frame=2)
    expected = points[((a.frame + 2) // 4) % 3]
    np.testing.assert_allclose(a.x_px, expected[:, 0], atol=0.1)
    np.testing.assert_allclose(a.y_px, expected[:, 1], atol=0.1)


def test_image_pattern_follows_the_intensity():
    image = np.zeros((4, 2))
    image[0, 1] = 1.0
    image[3, 0] = 3.0
    a = sample_arrivals(BeamPattern("image", image=image), 1000, 4.0, SHAPE,
                        np.random.default_rng(4))  # fmt: skip
    top_right = (a.x_px >= 200) & (a.y_px < 100)
    bottom_left = (a.x_px < 200) & (a.y_px >= 300)
    assert np.all(top_right | bottom_left)
    assert bottom_left.mean() == pytest.approx(0.75, abs=0.03)


def test_spot_off_the_sensor_loses_electrons():
    pattern = BeamPattern("spot", centre_px=(0.0, 200.0), sigma_px=1.0)
    a = sample_arrivals(pattern, 1000, 2.0, SHAPE, np.random.default_rng(5))
    assert len(a) == pytest.approx(1000, rel=0.1)  # half of 2000 land on the sensor
    assert a.x_px.min() >= 0


def test_random_scan_points_stay_inside():
    p = random_scan_points(200, SHAPE, np.random.default_rng(6), margin_px=20)
    assert p.shape == (200, 2) and p.min() >= 20 and p.max() <= 380


def test_expected_energy_map_sums_to_the_beam():
    for pattern in (BeamPattern("flat"), BeamPattern("spot", sigma_px=3.0),
                    BeamPattern("scan", points_px=[[100, 100], [200, 300]], sigma_px=2.0),
                    BeamPattern("image", image=np.arange(12.0).reshape(3, 4))):  # fmt: skip
        m = expected_energy_map(pattern, 5.0, 200.0, SHAPE)
        assert m.sum() == pytest.approx(1000.0, rel=1e-6)


def test_flux_that_saturates_every_pixel_is_refused():
    # 160,000 pixels x 103 keV / 200 keV per electron: about 82,000 electrons per frame
    with pytest.raises(DedkitError, match="saturates every pixel.*below 8"):
        check_flux(BeamPattern("flat"), 1e5, 200.0, SHAPE, 102.6)
    assert check_flux(BeamPattern("flat"), 100.0, 200.0, SHAPE, 102.6) == []
    # a bright spot saturates its own pixels only: a warning, not an error
    warnings = check_flux(BeamPattern("spot"), 1e5, 200.0, SHAPE, 102.6)
    assert len(warnings) == 1 and "saturated" in warnings[0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"kind": "cone"}, "must be one of"), ({"kind": "scan"}, "points"),
     ({"kind": "scan", "points_px": [[1, 2]], "dwell_frames": 0}, "dwell"),
     ({"kind": "image"}, "image"), ({"kind": "image", "image": -np.ones((2, 2))}, "negative"),
     ({"kind": "image", "image": np.zeros((2, 2))}, "zero"),
     ({"kind": "spot", "sigma_px": -1.0}, "sigma")],
)  # fmt: skip
def test_bad_patterns_refused(kwargs, match):
    with pytest.raises(DedkitError, match=match):
        BeamPattern(**kwargs)


@pytest.mark.parametrize("flux", [0, -1.0, float("nan"), "many"])
def test_bad_flux_refused(flux):
    with pytest.raises(DedkitError, match="flux"):
        sample_arrivals(BeamPattern(), 3, flux, SHAPE, np.random.default_rng(0))
