"""Gold nanoparticles end to end (dedkit.jobs.gold, issue 17): a small simulated run of
a synthetic lattice specimen (straight tracks, no Geant4) through the processing."""

import json
from dataclasses import dataclass

import mrcfile
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.jobs.gold import GoldAcquisition, process_gold_run, simulate_gold_run
from dedkit.sim.runs import straight_track_stream


@dataclass
class _Specimen:
    intensity: np.ndarray
    sampling_A: float


def _lattice_specimen(seed=0, n=2080, sampling=0.2):
    # dark round particles holding {111}-spaced fringes, on a flat background
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] * sampling
    image = np.ones((n, n), np.float32)
    for _ in range(60):
        cx, cy = rng.uniform(0, n * sampling, 2)
        r = rng.uniform(15, 40)
        inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        theta = rng.uniform(0, np.pi)
        phase = (x[inside] * np.cos(theta) + y[inside] * np.sin(theta)) / 2.3544
        image[inside] = 0.5 + 0.35 * np.cos(2 * np.pi * phase)
    return _Specimen(image, sampling)


@pytest.fixture(scope="module")
def gold_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gold")
    acquisition = GoldAcquisition(
        dose_A2=0.6, flux=400.0, drift_A=3.0, group_frames=60, tracks=0, dark_frames=100
    )
    report = simulate_gold_run(
        folder / "run", _lattice_specimen(), acquisition, stream=straight_track_stream
    )
    return folder, report


@pytest.mark.slow
def test_simulated_run_records_the_drift_in_its_truth(gold_run):
    from dedkit.io.events import read_table

    folder, report = gold_run
    assert report.counts["frames"] == 240
    assert report.details["drift_px"] == pytest.approx(3.0)
    truth = read_table(folder / "run" / "gold_truth.h5", group="truth", kind="events")
    # every electron displaced by its frame's drift (frames numbered from 1), exactly
    from dedkit.jobs.gold import specimen_pattern

    pattern = specimen_pattern(_lattice_specimen(), 1.0, 3.0, 240)
    drift = pattern.drift_px[truth.frame - 1]
    assert np.allclose(truth.x - truth.extra["specimen_x"], drift[:, 0])
    assert np.allclose(truth.y - truth.extra["specimen_y"], drift[:, 1])
    assert np.hypot(*(drift.max(axis=0) - drift.min(axis=0))) > 1.0


@pytest.mark.slow
def test_processing_writes_images_rings_and_figures(gold_run):
    folder, _ = gold_run
    run = folder / "run"
    out = folder / "out"
    report = process_gold_run(
        run / "gold_master_0.json", run / "gold_dark_master_0.json", run / "gold_gain.npy",
        out, pixel_size_A=1.0, group_frames=60, methods=("centroid",),
        truth=run / "gold_truth.h5", workers=0,
    )  # fmt: skip
    names = {p.name for p in out.iterdir()}
    for name in ("image_centroid.mrc", "image_truth.mrc", "events_centroid.h5", "rings.json",
                 "figure6.png", "dose_snr.png", "radial.png", "shifts_truth.csv"):  # fmt: skip
        assert name in names
    with mrcfile.open(out / "image_truth.mrc", permissive=True) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(0.25)
        assert mrc.data.mean() == pytest.approx(1.0, rel=1e-3)
    record = json.loads((out / "rings.json").read_text())
    truth = record["localisers"]["truth"]
    # the arrival points carry the fringes: the ring stands far above the noise, and
    # their motion correction follows the true drift
    assert truth["rings"][0]["snr"] > 8
    assert truth["shift_error_A"] < 0.3
    assert report.details["rings"]["truth"]["rings"][0]["spacing_A"] == pytest.approx(2.3544, 1e-3)
    with pytest.raises(DedkitError, match="exists"):
        process_gold_run(
            run / "gold_master_0.json", run / "gold_dark_master_0.json", run / "gold_gain.npy",
            out, pixel_size_A=1.0, group_frames=60, methods=("centroid",), workers=0,
        )  # fmt: skip


def test_a_specimen_too_small_for_the_sensor_is_refused(tmp_path):
    small = _Specimen(np.ones((100, 100), np.float32), 0.2)
    with pytest.raises(DedkitError, match="does not cover"):
        simulate_gold_run(tmp_path / "run", small, GoldAcquisition(tracks=0),
                          stream=straight_track_stream)  # fmt: skip
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_sparse_groups_warn_and_far_rings_are_refused(gold_run):
    folder, _ = gold_run
    run = folder / "run"
    args = (run / "gold_master_0.json", run / "gold_dark_master_0.json", run / "gold_gain.npy")
    with pytest.raises(DedkitError, match="beyond the Nyquist"):
        process_gold_run(*args, folder / "far", pixel_size_A=1.0, group_frames=60, upsample=2,
                         spacings_A=(0.9,), methods=("centroid",), workers=0)  # fmt: skip
    assert not (folder / "far").exists()
    report = process_gold_run(*args, folder / "sparse", pixel_size_A=1.0, group_frames=2,
                              methods=("centroid",), workers=0)  # fmt: skip
    assert any("too few to measure the drift" in w for w in report.warnings)
    record = json.loads((folder / "sparse" / "rings.json").read_text())
    shifts = np.loadtxt(folder / "sparse" / "shifts_centroid.csv", delimiter=",", skiprows=1)
    assert np.abs(shifts[:, 3:5]).max() <= 30.0 + 1e-6
    doses = record["localisers"]["centroid"]["snr_versus_dose"]["dose_A2"]
    assert len(doses) == len(set(doses))


@pytest.mark.slow
def test_the_demo_part_end_to_end_with_stand_ins(tmp_path, monkeypatch):
    # the demo's chain with a synthetic specimen and straight tracks (no abTEM, no
    # Geant4): the part's table, checks, figures and files, and no raw run left behind
    import dedkit.jobs.gold as gold
    import dedkit.jobs.specimen as specimen_job

    small = GoldAcquisition(dose_A2=0.6, flux=400.0, drift_A=3.0, group_frames=60,
                            tracks=100, dark_frames=100)  # fmt: skip
    monkeypatch.setattr(gold, "DEMO", small)
    monkeypatch.setattr(specimen_job, "specimen_image", lambda *a, **k: _lattice_specimen())
    monkeypatch.setattr(gold, "track_stream", lambda *a, **k: straight_track_stream)
    steps = []
    part = gold.run_gold_demo(tmp_path, progress=lambda done, total: steps.append(done))
    assert part.name == "hpd" and len(part.checks) == 3
    assert [row["localiser"] for row in part.rows] == ["truth", "cnn", "eta2", "centroid"]
    for name in ("image_centroid.mrc", "image_cnn.mrc", "figure6.png", "rings.json",
                 "truth.h5"):  # fmt: skip
        assert (tmp_path / name).exists()
    assert all((tmp_path / path).exists() for path in part.figures.values())
    assert not any(p.name.startswith(".run") for p in tmp_path.iterdir())
    assert steps == sorted(steps) and steps[-1] == 1000
