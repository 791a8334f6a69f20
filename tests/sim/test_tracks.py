"""Track library placements (dedkit.sim.tracks) on a small hand-made library: no Geant4."""

from __future__ import annotations

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import SensorGeometry
from dedkit.sim.tracks import (
    TrackLibrary,
    library_stream,
    place_tracks,
    placement_plan,
)


def _library(n=40, seed=0, energy=200.0, sensor=None) -> TrackLibrary:
    """Random walks from (0, 0): every track a different number of points."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 30, n)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    m = int(offsets[-1])
    x = np.concatenate([np.cumsum(rng.normal(0, 3, c)) for c in counts])
    y = np.concatenate([np.cumsum(rng.normal(1, 3, c)) for c in counts])
    z = np.concatenate([np.cumsum(rng.uniform(0, 4, c)) for c in counts])
    edep = rng.uniform(0.5, 5, m)
    direction = np.column_stack([rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), np.ones(n)])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    primary = np.repeat(np.arange(n), counts)
    d = ElectronDeposits(
        energy_keV=energy,
        sensor=sensor or SensorGeometry(),
        entry_x_um=np.zeros(n),
        entry_y_um=np.zeros(n),
        direction=direction,
        deposit_keV=np.bincount(primary, edep, n),
        backscattered=rng.random(n) < 0.15,
        transmitted=rng.random(n) < 0.05,
        offsets=offsets,
        step_x_um=x,
        step_y_um=y,
        step_z_um=z,
        step_edep_keV=edep,
        primary_path_um=rng.uniform(10, 300, n),
        physics="option3",
        transport={"physics": "option3", "production_cut_um": 10.0, "segment_um": 2.0},
    )
    return TrackLibrary(d, energy, "option3", seed)


def _placed(lib, n=500, seed=1, mirror=True, entry=None):
    entry = entry or (np.full(n, 5000.0), np.full(n, 4000.0))
    parts = list(library_stream(lib, mirror=mirror)(200.0, n, seed=seed, entry=entry))
    return ElectronDeposits.concatenate(parts)


def test_rotation_keeps_depth_energy_steps_and_flags():
    lib = _library()
    d = _placed(lib)
    index = placement_plan(len(lib), 500, 1)[0]
    src = lib.deposits.select(index)
    np.testing.assert_array_equal(np.diff(d.offsets), np.diff(src.offsets))
    np.testing.assert_array_equal(d.step_z_um, src.step_z_um)
    np.testing.assert_array_equal(d.step_edep_keV, src.step_edep_keV)
    for name in ("deposit_keV", "backscattered", "transmitted", "primary_path_um"):
        np.testing.assert_array_equal(getattr(d, name), getattr(src, name))
    # lateral distance from the entry point kept, direction's z and length kept
    r_placed = np.hypot(d.step_x_um - 5000.0, d.step_y_um - 4000.0)
    np.testing.assert_allclose(r_placed, np.hypot(src.step_x_um, src.step_y_um), atol=2e-3)
    np.testing.assert_allclose(d.direction[:, 2], src.direction[:, 2])
    np.testing.assert_allclose(np.linalg.norm(d.direction, axis=1), 1.0)


def test_rotations_spread_the_azimuth():
    # every library track leans towards +y; placed, the mean lateral position is ~0
    lib = _library()
    d = _placed(lib, n=4000)
    c = d.centroid_um()
    assert abs(np.mean(c[:, 0] - 5000.0)) < 1.0
    assert abs(np.mean(c[:, 1] - 4000.0)) < 1.0
    assert np.mean(lib.deposits.centroid_um()[:, 1]) > 5.0


def test_entry_translation_is_exact():
    lib = _library()
    x = np.linspace(100.0, 9000.0, 7)
    y = np.linspace(9000.0, 50.0, 7)
    d = place_tracks(lib, np.arange(7), np.zeros(7), np.zeros(7, bool), x, y)
    np.testing.assert_array_equal(d.entry_x_um, x)
    np.testing.assert_array_equal(d.entry_y_um, y)
    src = lib.deposits.select(np.arange(7))
    who = src.primary_of_step()
    np.testing.assert_allclose(d.step_x_um, src.step_x_um + x[who], atol=1e-3)
    np.testing.assert_allclose(d.step_y_um, src.step_y_um + y[who], atol=1e-3)


def test_quarter_turn_and_mirror():
    lib = _library()
    src = lib.deposits.select([3])
    d = place_tracks(lib, [3], [np.pi / 2], [False], 0.0, 0.0)
    np.testing.assert_allclose(d.step_x_um, -src.step_y_um, atol=1e-5)
    np.testing.assert_allclose(d.step_y_um, src.step_x_um, atol=1e-5)
    m = place_tracks(lib, [3], [0.0], [True], 0.0, 0.0)
    np.testing.assert_allclose(m.step_x_um, src.step_x_um, atol=1e-6)
    np.testing.assert_allclose(m.step_y_um, -src.step_y_um, atol=1e-6)
    np.testing.assert_allclose(m.direction[0, :2], src.direction[0, :2] * [1, -1])


def test_mirror_half_of_the_placements_or_none():
    _, _, flip = placement_plan(10, 10000, 5)
    assert 0.47 < flip.mean() < 0.53
    assert not placement_plan(10, 100, 5, mirror=False)[2].any()


def test_deterministic_and_independent_of_batch_size():
    lib = _library()
    entry = (np.full(300, 1000.0), np.full(300, 2000.0))
    a = _placed(lib, 300, seed=7, entry=entry)
    b = _placed(lib, 300, seed=7, entry=entry)
    parts = list(library_stream(lib, batch=64)(200.0, 300, seed=7, entry=entry))
    assert [len(p) for p in parts] == [64, 64, 64, 64, 44]
    c = ElectronDeposits.concatenate(parts)
    for other in (b, c):
        np.testing.assert_array_equal(a.step_x_um, other.step_x_um)
        np.testing.assert_array_equal(a.step_y_um, other.step_y_um)
    d = _placed(lib, 300, seed=8, entry=entry)
    assert not np.array_equal(a.step_x_um[:50], d.step_x_um[:50])


def test_scalar_and_drawn_entry_points_and_progress():
    lib = _library()
    calls = []
    stream = library_stream(lib, batch=40)
    d = ElectronDeposits.concatenate(
        list(stream(200.0, 100, seed=1, entry=(250.0, 300.0), progress=lambda *a: calls.append(a)))
    )
    assert np.all(d.entry_x_um == 250.0) and calls[-1] == (100, 100)
    d = ElectronDeposits.concatenate(list(stream(200.0, 100, seed=1, entry="random")))
    assert np.all((d.entry_x_um >= 500) & (d.entry_x_um <= 9500))


def test_refusals_are_one_line():
    lib = _library()
    stream = library_stream(lib)
    entry = (100.0, 100.0)
    with pytest.raises(DedkitError, match="holds 200 keV electrons, not 200.01 keV"):
        stream(200.01, 5, seed=1, entry=entry)
    stream(200.0005, 5, seed=1, entry=entry)  # within the tolerance
    with pytest.raises(DedkitError, match="320 um sensor of 25 um pixels, not 500 um"):
        stream(200.0, 5, seed=1, entry=entry, sensor=SensorGeometry(thickness_um=500))
    with pytest.raises(DedkitError, match="physics='option3', not 'standard'"):
        stream(200.0, 5, seed=1, entry=entry, physics="standard")
    with pytest.raises(DedkitError, match="normal incidence"):
        stream(200.0, 5, seed=1, entry=entry, incidence_deg=30.0)
    with pytest.raises(DedkitError, match="on the sensor"):
        stream(200.0, 5, seed=1, entry=(-5.0, 0.0))
    # the Geant4 batch size and another sensor size are accepted
    stream(200.0, 5, seed=1, entry=entry, batch_size=100, sensor=SensorGeometry(nx=40, ny=40))
    with pytest.raises(DedkitError, match="made in a 320 um sensor of 25 um pixels, not 320"):
        stream(200.0, 5, seed=1, entry=entry, sensor=SensorGeometry(pitch_um=75.0))
    with pytest.raises(DedkitError, match="positive integer"):
        stream(200.0, 0, seed=1, entry=entry)


def test_arrays_round_trip_and_bad_arrays(tmp_path):
    lib = _library()
    path = tmp_path / "lib.npz"
    np.savez(path, **lib.to_arrays())
    with np.load(path, allow_pickle=False) as z:
        again = TrackLibrary.from_arrays(z)
    for name in ("offsets", "step_x_um", "step_z_um", "direction", "backscattered"):
        np.testing.assert_array_equal(getattr(again.deposits, name), getattr(lib.deposits, name))
    assert again.deposits.transport == lib.deposits.transport
    assert (again.energy_keV, again.physics, again.seed) == (200.0, "option3", 0)
    arrays = lib.to_arrays()
    arrays["offsets"] = arrays["offsets"][:-1]
    with pytest.raises(DedkitError, match="not a track library"):
        TrackLibrary.from_arrays(arrays, path=path)


def test_library_must_enter_at_origin():
    d = _library().deposits
    d.entry_x_um = d.entry_x_um + 1.0
    with pytest.raises(DedkitError, match=r"enter at \(0, 0\)"):
        TrackLibrary(d, 200.0, "x", 0)


def test_track_library_job_caches(tmp_path, monkeypatch):
    import dedkit.jobs.tracks as jobs

    monkeypatch.setenv("DEDKIT_CACHE", str(tmp_path))
    made = []

    def fake(energy_keV, n, *, seed, workers=None, progress=None, **options):
        made.append(n)
        return _library(n, seed)

    monkeypatch.setattr(jobs, "simulate_track_library", fake)
    a = jobs.track_library(200.0, 12, seed=2)
    b = jobs.track_library(200.0, 12, seed=2, workers=1, physics="option3")
    c = jobs.track_library(200.0, 12, seed=3)
    assert made == [12, 12] and len(a) == len(b) == len(c) == 12
    np.testing.assert_array_equal(a.deposits.step_x_um, b.deposits.step_x_um)
    assert len(list(tmp_path.glob("tracks-*.npz"))) == 2


def test_a_library_is_the_stream_of_a_simulated_run():
    from dedkit.sim.beam import BeamPattern
    from dedkit.sim.charge import ChargeModel
    from dedkit.sim.response import DetectorResponse
    from dedkit.sim.runs import SimulatedDetector, detector_maps, iter_run_chunks

    sensor = SensorGeometry(nx=64, ny=64)
    response = DetectorResponse()
    detector = SimulatedDetector(
        sensor, ChargeModel(), response, detector_maps(sensor, response, 1)
    )
    lib = _library()
    chunks = list(
        iter_run_chunks(detector, 200.0, 6, 2.0, BeamPattern("flat"), seed=3, chunk_frames=4,
                        stream=library_stream(lib, batch=5),
                        transport_options={"physics": "option3"})
    )  # fmt: skip
    assert [len(c.frames) for c in chunks] == [4, 2]
    truth = np.concatenate([c.truth.energy for c in chunks])
    assert len(truth) == sum(c.n_electrons for c in chunks) > 0
    # every electron's deposit is one of the library's
    assert np.isin(truth, lib.deposits.deposit_keV.astype(np.float32)).all()
    assert chunks[0].frames.max() > chunks[0].frames.min()
