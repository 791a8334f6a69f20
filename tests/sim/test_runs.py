"""End-to-end simulation on hand-made tracks: frames, runs, training clusters, and the
hpd pipeline reading a simulated run as it reads a measured one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf
from synthetic_tracks import fake_simulate, fake_stream, straight_tracks

from dedkit.errors import DedkitError
from dedkit.io.events import read_attrs, read_table
from dedkit.io.sls import RawRun
from dedkit.jobs.hpd import compute_pedestal, find_clusters_in_run, localize_clusters
from dedkit.jobs.sim import write_simulated_run
from dedkit.records.sensor import SensorGeometry
from dedkit.sim.beam import BeamPattern
from dedkit.sim.charge import ChargeModel
from dedkit.sim.response import DetectorResponse
from dedkit.sim.runs import (
    SimulatedDetector,
    detector_maps,
    iter_run_chunks,
    render_frames,
    stamp_half_width,
    training_clusters,
)

SENSOR = SensorGeometry()
PITCH = SENSOR.pitch_um


def test_render_conserves_charge_and_places_it():
    deposits = straight_tracks([1000.0, 2012.5], [3000.0, 1012.5], energy_keV=100.0,
                               length_um=40.0)  # fmt: skip
    exact = ChargeModel(fano=0.0)
    frames = render_frames(deposits, np.array([0, 1]), 2, SENSOR.shape,
                           np.random.default_rng(0), exact)  # fmt: skip
    assert frames.shape == (2, 400, 400) and frames.dtype == np.float32
    np.testing.assert_allclose(frames.sum(axis=(1, 2)), 100.0, rtol=1e-5)
    # with Fano fluctuations the charge varies by sqrt(F W E), 0.2 keV at 100 keV
    noisy = render_frames(deposits, np.array([0, 1]), 2, SENSOR.shape,
                          np.random.default_rng(0))  # fmt: skip
    assert np.all(np.abs(noisy.sum(axis=(1, 2)) - 100.0) < 1.0)
    # vertical track entering at the centre of pixel (row 40, column 80): its charge
    # centroid is that pixel's centre
    rows, cols = np.mgrid[0:400, 0:400]
    f = frames[1].astype(np.float64)
    assert (f * (cols + 0.5)).sum() / f.sum() == pytest.approx(80.5, abs=1e-3)
    assert (f * (rows + 0.5)).sum() / f.sum() == pytest.approx(40.5, abs=1e-3)
    assert f.argmax() == 40 * 400 + 80


def test_render_cloud_width_follows_the_model():
    # a point deposit at the back spreads by the 7.7 um sigma of diffusion (physics.md)
    deposits = straight_tracks([5012.5], [5012.5], energy_keV=200.0, length_um=0.002,
                               n_steps=1)  # fmt: skip
    model = ChargeModel(coulomb=False, initial_cloud=False, fano=0.0)
    frame = render_frames(deposits, [0], 1, SENSOR.shape, np.random.default_rng(0), model)[0]
    sigma = 7.729 / PITCH
    inner = erf(0.5 / (sigma * np.sqrt(2)))
    side = 0.5 * (erf(1.5 / (sigma * np.sqrt(2))) - inner)
    assert frame[200, 200] == pytest.approx(200.0 * inner**2, rel=1e-3)
    assert frame[200, 201] == pytest.approx(200.0 * inner * side, rel=1e-3)
    # repulsion widens the cloud: less charge in the central pixel
    wide = render_frames(deposits, [0], 1, SENSOR.shape, np.random.default_rng(0),
                         ChargeModel(initial_cloud=False, fano=0.0))[0]  # fmt: skip
    assert wide[200, 200] < 0.9 * frame[200, 200]


def test_training_clusters_truth_convention():
    # vertical tracks: the centroid sits on the entry point, so the truth relative to
    # the crop equals the centroid relative to the crop
    rng = np.random.default_rng(1)
    x = (200 + rng.uniform(0, 1, 50)) * PITCH
    y = (200 + rng.uniform(0, 1, 50)) * PITCH
    # 100 keV: no pixel reaches the ADC's 103 keV
    deposits = straight_tracks(x, y, energy_keV=200.0, deposit_keV=100.0, length_um=200.0)
    batch = training_clusters(deposits, rng)
    assert len(batch) == 50
    assert batch.image.shape == (50, 15, 15) and batch.features.shape == (50, 7)
    # entry pixel (200, 200) holds the centroid, so it is the crop's centre: 7 <= e < 8
    np.testing.assert_allclose(batch.entry_x, x / PITCH - 193.0)
    np.testing.assert_allclose(batch.entry_y, y / PITCH - 193.0)
    assert np.all((batch.entry_x >= 7) & (batch.entry_x < 8))
    # the pixel centroid is pulled towards the pixel centre (a narrow cloud) but stays
    # in the pixel and on the entry's side of it
    assert np.all(np.abs(batch.centroid_x - batch.entry_x) < 0.4)
    assert np.corrcoef(batch.centroid_x, batch.entry_x)[0, 1] > 0.9
    # the image is the cluster in keV, centred on the centroid pixel
    np.testing.assert_allclose(batch.image.sum(axis=(1, 2)), batch.features[:, 0], rtol=1e-5)
    assert np.all(batch.image[:, 7, 7] == batch.image.max(axis=(1, 2)))
    assert np.all(np.abs(batch.features[:, 0] - 100.0) < 3.0)
    assert batch.stats["n_primaries"] == 50 and batch.stats["n_full_absorption"] == 0


def test_training_clusters_select_by_energy_and_keep_flags():
    x = np.full(4, 200.5 * PITCH)
    deposits = straight_tracks(x, x, energy_keV=200.0, deposit_keV=[200.0, 60.0, 10.0, 120.0],
                               backscattered=[False, True, True, False])  # fmt: skip
    batch = training_clusters(deposits, np.random.default_rng(2))
    # 10 keV is below the 20-205 keV window
    np.testing.assert_array_equal(batch.primary, [0, 1, 3])
    np.testing.assert_array_equal(batch.backscattered, [False, True, False])
    np.testing.assert_allclose(batch.deposit_keV, [200.0, 60.0, 120.0])
    assert batch.stats["selection"]["below_window"] == 1
    assert np.all(batch.n_selected == 1)


def test_broken_track_keeps_the_largest_cluster():
    # one primary, two separate blobs of 150 and 40 keV: both selected, the larger kept
    base = straight_tracks([5000.0, 5250.0], [5000.0, 5000.0], energy_keV=200.0,
                           deposit_keV=[150.0, 40.0], length_um=1.0, n_steps=2)  # fmt: skip
    joined = straight_tracks([5000.0], [5000.0], energy_keV=200.0, deposit_keV=[190.0])
    joined.offsets = np.array([0, 4])
    for name in ("step_x_um", "step_y_um", "step_z_um", "step_edep_keV"):
        setattr(joined, name, getattr(base, name))
    batch = training_clusters(joined, np.random.default_rng(3))
    assert len(batch) == 1 and batch.n_selected[0] == 2
    assert batch.features[0, 0] == pytest.approx(150.0, abs=2.0)


def test_training_clusters_are_reproducible_and_adc_saturates():
    deposits = fake_simulate(200.0, 40, seed=4, entry=(np.full(40, 5000.0), np.full(40, 5000.0)))
    a = training_clusters(deposits, np.random.default_rng(5))
    b = training_clusters(deposits, np.random.default_rng(5))
    for name in a.COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # a vertical 200 keV point deposit saturates its pixel at the ADC range
    spike = straight_tracks([5012.5], [5012.5], energy_keV=200.0, length_um=300.0, n_steps=60)
    hot = training_clusters(spike, np.random.default_rng(6), model=ChargeModel(coulomb=False))
    assert hot.image.max() == pytest.approx((16383 - 1500) / 145, abs=0.01)
    free = training_clusters(spike, np.random.default_rng(6), model=ChargeModel(coulomb=False),
                             adc=False)  # fmt: skip
    assert free.image.max() > 110


def test_stamp_is_wider_than_the_tracks():
    half = stamp_half_width(200.0, SENSOR, ChargeModel())
    assert half * PITCH > 1.1 * 243.2 + 5 * 9.6
    assert stamp_half_width(300.0, SENSOR, ChargeModel()) > half


def _detector(seed=1):
    response = DetectorResponse()
    return SimulatedDetector(SENSOR, ChargeModel(), response,
                             detector_maps(SENSOR, response, seed))  # fmt: skip


def test_run_chunks_frames_and_truth():
    chunks = list(
        iter_run_chunks(
            _detector(),
            200.0,
            7,
            3.0,
            BeamPattern("flat"),
            seed=2,
            chunk_frames=3,
            stream=fake_stream,
        )  # fmt: skip
    )
    assert [len(c.frames) for c in chunks] == [3, 3, 1]
    numbers = np.concatenate([c.frame_numbers for c in chunks])
    np.testing.assert_array_equal(numbers, np.arange(1, 8))
    truth = [c.truth for c in chunks]
    assert sum(len(t) for t in truth) == sum(c.n_electrons for c in chunks) > 5
    primaries = np.concatenate([t.extra["primary"] for t in truth])
    np.testing.assert_array_equal(primaries, np.arange(len(primaries)))
    # the stream's batches of 7 primaries are regrouped by chunk without loss or reorder
    from dedkit.sim.runs import _STREAM_RUN, chunk_seed

    x = np.concatenate([t.x for t in truth]) * PITCH
    y = np.concatenate([t.y for t in truth]) * PITCH
    whole = fake_simulate(200.0, len(x), seed=chunk_seed(2, _STREAM_RUN, 0), entry=(x, y))
    np.testing.assert_array_equal(np.concatenate([t.energy for t in truth]),
                                  whole.deposit_keV.astype(np.float32))  # fmt: skip
    for c in chunks:
        assert c.frames.dtype == np.uint16 and c.frames.shape[1:] == (400, 400)
        assert set(c.truth.frame) <= set(c.frame_numbers)
    # the same seed gives the same run
    again = next(iter_run_chunks(_detector(), 200.0, 7, 3.0, BeamPattern("flat"), seed=2,
                                 chunk_frames=3, stream=fake_stream))  # fmt: skip
    np.testing.assert_array_equal(again.frames, chunks[0].frames)


def test_run_refuses_bad_parameters_before_simulating():
    def never(*args, **kwargs):
        raise AssertionError("simulated despite bad parameters")

    with pytest.raises(DedkitError, match="saturates every pixel"):
        iter_run_chunks(_detector(), 200.0, 2, 1e6, BeamPattern("flat"), seed=1, stream=never)
    with pytest.raises(DedkitError, match="20 to 300 keV"):
        iter_run_chunks(_detector(), -5.0, 2, 1.0, BeamPattern("flat"), seed=1, stream=never)
    with pytest.raises(DedkitError, match="at least 1"):
        iter_run_chunks(_detector(), 200.0, 0, 1.0, BeamPattern("flat"), seed=1, stream=never)


def test_simulated_run_goes_through_the_hpd_pipeline(tmp_path):
    out = tmp_path / "run"
    report = write_simulated_run(out, energy_keV=200.0, n_frames=20, flux=5.0,
                                 pattern=BeamPattern("flat"), dark_frames=60, seed=3,
                                 stream=fake_stream)  # fmt: skip
    assert report.counts["frames"] == 20 and report.counts["electrons"] > 40
    run = RawRun(out / "sim_master_0.json")
    assert run.master.detector_type == "Moench" and run.shape == (400, 400)
    assert run.n_frames == 20 and RawRun(out / "sim_dark_master_0.json").n_frames == 60
    truth = read_table(out / "sim_truth.h5")
    assert truth.method == "truth" and len(truth) == report.counts["electrons"]
    assert read_attrs(out / "sim_truth.h5")["pattern"]["kind"] == "flat"

    ped = tmp_path / "ped.h5"
    compute_pedestal(out / "sim_dark_master_0.json", ped)
    clusters = tmp_path / "clusters.h5"
    find_clusters_in_run(out / "sim_master_0.json", ped, clusters, finder="connected",
                         gain=out / "sim_gain.npy", workers=0)  # fmt: skip
    events_path = tmp_path / "events.h5"
    localize_clusters(clusters, events_path, method="centroid")
    events = read_table(events_path)
    assert len(events) > 0.5 * len(truth)
    # every event lies near an electron that entered in its frame
    matched = 0
    for frame, x, y in zip(events.frame, events.x, events.y, strict=True):
        same = truth.frame == frame
        d = np.hypot(truth.x[same] - x, truth.y[same] - y)
        matched += d.min() < 3.0
    assert matched >= 0.9 * len(events)
    # the selected energies are the deposits (within noise and gain calibration)
    assert np.median(events.energy) == pytest.approx(np.median(truth.energy), rel=0.03)


def test_run_folder_rules(tmp_path):
    kwargs = dict(energy_keV=200.0, n_frames=2, flux=1.0, dark_frames=2, seed=1,
                  stream=fake_stream)  # fmt: skip
    out = tmp_path / "run"
    write_simulated_run(out, **kwargs)
    with pytest.raises(DedkitError, match="not empty"):
        write_simulated_run(out, **kwargs)
    write_simulated_run(out, force=True, **kwargs)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DedkitError, match="refusing to replace"):
        write_simulated_run(out, force=True, **kwargs)
    assert (out / "notes.txt").exists() and (out / "sim_master_0.json").exists()
    with pytest.raises(DedkitError, match="400 x 400"):
        write_simulated_run(tmp_path / "small", sensor=SensorGeometry(nx=100, ny=100), **kwargs)
    assert not (tmp_path / "small").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


class _Interrupt(Exception):
    pass


def _dataset(path, **kwargs):
    from dedkit.jobs.sim import build_training_set

    args = dict(energy_keV=200.0, n=130, seed=7, chunk_primaries=40, simulate=fake_simulate)
    args.update(kwargs)
    return build_training_set(path, **args)


def test_dataset_resumes_after_an_interruption(tmp_path):
    from dedkit.io.training import parts_folder, read_training_attrs, read_training_set

    whole = tmp_path / "whole.h5"
    report = _dataset(whole)
    assert report.counts["clusters"] == 130 and report.counts["resumed_chunks"] == 0
    expected = read_training_set(whole)
    assert len(expected["primary"]) == 130
    # chunk k's primaries are numbered from k x chunk_primaries
    assert np.all(expected["primary"] // 40 == expected["chunk"])

    calls = []

    def stop_after_two(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise _Interrupt

    partial = tmp_path / "partial.h5"
    with pytest.raises(_Interrupt):
        _dataset(partial, progress=stop_after_two)
    assert not partial.exists() and len(list(parts_folder(partial).glob("chunk_*.h5"))) == 2
    # other parameters do not reuse the parts
    with pytest.raises(DedkitError, match="other parameters"):
        _dataset(partial, seed=8)
    resumed = _dataset(partial)
    assert resumed.counts["resumed_chunks"] == 2
    assert not parts_folder(partial).exists()
    got = read_training_set(partial)
    for name, column in expected.items():
        np.testing.assert_array_equal(got[name], column, err_msg=name)
    a, b = read_training_attrs(whole), read_training_attrs(partial)
    assert a["parameters"] == b["parameters"] and a["stats"] == b["stats"]
    assert a["stats"]["n_primaries"] == 40 * report.counts["chunks"]


def test_dataset_refuses_bad_arguments(tmp_path):
    with pytest.raises(DedkitError, match="positive integer"):
        _dataset(tmp_path / "a.h5", n=0)
    with pytest.raises(DedkitError, match="20 to 300 keV"):
        _dataset(tmp_path / "a.h5", energy_keV=-200.0)
    (tmp_path / "b.h5").write_bytes(b"")
    with pytest.raises(DedkitError, match="exists"):
        _dataset(tmp_path / "b.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.h5"]
    # an absurd --n is refused for the disk it would need, before any simulation
    with pytest.raises(DedkitError, match="No space left on device"):
        _dataset(tmp_path / "c.h5", n=10**22)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.h5"]


def test_dataset_chunk_at_most_n_and_progress_within_a_chunk_issue_13_item_20(tmp_path):
    """Issue 13 item 20: ``sim dataset --n 1000`` simulated a whole default chunk of
    20,000 primaries, and its bar stood at 0 until a chunk ended. A chunk is now at most
    ``n`` primaries, and the bar moves while a chunk is transported, never backwards."""
    asked, shown = [], []

    def streaming_simulate(energy_keV, n, *, progress=None, **options):
        asked.append(n)
        for done in range(0, n + 1, max(n // 4, 1)):
            if progress is not None:
                progress(done, n)
        return fake_simulate(energy_keV, n, **options)

    report = _dataset(
        tmp_path / "set.h5",
        n=60,
        chunk_primaries=20000,
        simulate=streaming_simulate,
        progress=lambda done, total: shown.append((done, total)),
    )
    assert asked and set(asked) == {60}  # never the default chunk of 20,000
    assert report.counts["primaries"] == 60 * len(asked)
    assert all(total == 60 for _, total in shown)
    values = [done for done, _ in shown]
    assert values == sorted(values) and values[-1] == 60
    # the bar moved before the first chunk ended
    assert any(0 < done < 60 for done in values[: len(values) - 1])
