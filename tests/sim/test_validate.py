"""Validation of the simulation against published figures (Geant4 runs are slow tests)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from synthetic_tracks import fake_simulate, straight_tracks

from dedkit.errors import DedkitError
from dedkit.sim.transport import geant4_available
from dedkit.sim.validate import REFERENCE, penetration_depth_um, validate

needs_geant4 = pytest.mark.skipif(not geant4_available(), reason="geant4-pybind not installed")


def test_report_on_synthetic_tracks():
    report = validate(200.0, 300, seed=2, chunk_primaries=128, simulate=fake_simulate)
    d = report.to_dict()
    json.dumps(d)  # plain types only
    for key in ("energy_keV", "n_primaries", "backscatter_fraction", "full_absorption_fraction",
                "mean_deposit_keV", "centroid_rmse_px"):  # fmt: skip
        assert key in d
    assert d["n_primaries"] == 300 and set(d["centroid_rmse_px"]) == {"x", "y"}
    # fake_simulate: 10 % backscattered depositing a third, the rest 97-100 %
    assert d["backscatter_fraction"] == pytest.approx(0.1, abs=0.05)
    assert d["full_absorption_fraction"] == pytest.approx(1 - d["backscatter_fraction"])
    assert d["mean_deposit_keV"] == pytest.approx(
        200 * (0.985 * (1 - d["backscatter_fraction"]) + d["backscatter_fraction"] / 3), rel=0.01
    )
    # straight tracks of up to 100 um within 60 degrees: sub-pixel to ~2 px centroids
    assert 0.2 < d["centroid_rmse_px"]["x"] < 1.5
    assert d["csda_range_um"] == pytest.approx(243.2, rel=1e-3)
    assert d["reference"]["centroid_rmse_px"] == 1.73
    assert set(d["checks"]) == {"backscatter_fraction", "centroid_rmse_x", "centroid_rmse_y"}
    assert not d["checks"]["centroid_rmse_x"]  # synthetic tracks are far too short
    assert "centroid RMSE" in report.text()


def test_reference_only_at_published_energies():
    report = validate(150.0, 20, seed=1, simulate=fake_simulate)
    assert report.reference == {} and report.checks == {}
    assert set(REFERENCE) == {60, 100, 200, 300}


def test_penetration_depth_is_the_deepest_deposit():
    deposits = straight_tracks([1000.0, 2000.0], [1000.0, 1000.0], length_um=[50.0, 120.0],
                               n_steps=10)  # fmt: skip
    np.testing.assert_allclose(penetration_depth_um(deposits), [47.5, 114.0], rtol=1e-6)
    empty = deposits.select([0])
    empty.offsets = np.array([0, 0])
    for name in ("step_x_um", "step_y_um", "step_z_um", "step_edep_keV"):
        setattr(empty, name, np.zeros(0, np.float32))
    np.testing.assert_array_equal(penetration_depth_um(empty), [0.0])


@pytest.mark.parametrize(("energy", "n"), [(-200.0, 10), (200.0, 0), (400.0, 10)])
def test_bad_arguments_refused(energy, n):
    with pytest.raises(DedkitError):
        validate(energy, n, seed=1, simulate=fake_simulate)


@pytest.mark.slow
@needs_geant4
def test_geant4_validation_at_200_keV_meets_the_targets():
    """Backscatter 0.13-0.15 and centroid RMSE 1.73 px +- 15 % (the paper, Geant4), with
    three standard errors of the estimate from this small run added to the tolerances."""
    report = validate(200.0, 3000, seed=11, workers=2, chunk_primaries=3000)
    f = report.backscatter_fraction
    slack = 3 * math.sqrt(f * (1 - f) / report.n_primaries)
    assert 0.13 - slack <= f <= 0.15 + slack
    for axis in ("x", "y"):
        rmse, se = report.centroid_rmse_px[axis], report.centroid_rmse_se_px[axis]
        assert 0 < se < 0.05
        assert abs(rmse - 1.73) <= 0.15 * 1.73 + 3 * se
    # most primaries give one selected cluster; deposits and penetration make sense
    assert report.selected_fraction > 0.95
    assert 175 < report.mean_deposit_keV < 195
    assert 0.25 < report.mean_penetration_um / report.csda_range_um < 0.6
    # the Geant4 deposit centroid (before charge transport): physics.md 41.7 um
    assert report.deposit_centroid_rms_um["x"] == pytest.approx(41.7, rel=0.15)
