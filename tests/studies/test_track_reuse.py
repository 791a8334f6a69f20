"""Study track-reuse: library placements localise as fresh electrons do, and a library
that does not (its tracks shifted) is caught."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import SensorGeometry
from dedkit.sim.runs import straight_track_stream
from dedkit.sim.transport import geant4_available
from dedkit.studies import track_reuse


def straight(*args, **kw):
    """Straight tracks in random directions in place of Geant4 (fast, no physics)."""
    return ElectronDeposits.concatenate(list(straight_track_stream(*args, **kw)))


def test_placements_of_straight_tracks_localise_as_fresh_ones():
    r = track_reuse.run(
        n=1500, library_size=500, methods=("centroid", "eta"), bootstrap=100, simulate=straight
    )
    assert set(r.z) >= {"centroid_rmse_x", "eta_rmse_y", "selected_fraction"}
    for key, z in r.z.items():
        assert not math.isfinite(z) or abs(z) < 3.5, (key, z, r.text())
    # the standard errors are of the right size: the library's, resampled by track, larger
    assert 0.005 < r.fresh_se["centroid_rmse_x"] < 0.1
    assert r.library_se["centroid_rmse_x"] > r.fresh_se["centroid_rmse_x"]
    assert [row["quantity"] for row in r.rows] == list(r.z)


def test_a_shifted_library_is_caught():
    # tracks entering a pixel away from where they say (in a random direction once
    # rotated): the centroid error grows on both axes
    lib = track_reuse._library_from(straight, 200.0, 500, 3, SensorGeometry())
    lib.deposits.step_x_um = lib.deposits.step_x_um + np.float32(25.0)
    r = track_reuse.run(
        n=1500, methods=("centroid",), bootstrap=100, simulate=straight, library=lib
    )
    assert r.z["centroid_rmse_x"] > 4 and r.z["centroid_rmse_y"] > 4, r.text()
    assert not r.consistent()


def test_bad_settings_are_refused():
    with pytest.raises(DedkitError, match="methods must be among"):
        track_reuse.run(n=100, methods=("psf",), simulate=straight)
    with pytest.raises(DedkitError, match="library_size must be an integer"):
        track_reuse.run(n=100, library_size=0, simulate=straight)
    with pytest.raises(DedkitError, match="beam energy"):
        track_reuse.run(energy_keV=1000.0, simulate=straight)


@pytest.mark.slow
@pytest.mark.skipif(not geant4_available(), reason="Geant4 is not installed")
def test_geant4_library_localises_as_fresh_geant4():
    pytest.importorskip("torch")
    r = track_reuse.run(n=3000, library_size=1500, bootstrap=150, workers=1, seed=4)
    for key, z in r.z.items():
        assert not math.isfinite(z) or abs(z) < 3.5, (key, z, r.text())
    # the paper's figures: centroid ~1.7 px, CNN ~0.46 px
    assert 1.4 < r.fresh["centroid_rmse_x"] < 2.0
    assert 0.35 < r.library["cnn_rmse_x"] < 0.6
