import json

import h5py
import numpy as np
import pytest

from dedkit import __version__
from dedkit.errors import DedkitError
from dedkit.io.deposits import DepositsWriter, deposits_length, read_deposits, write_deposits
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import SensorGeometry


def deposits(counts, energy=200.0, start=0.0) -> ElectronDeposits:
    n, m = len(counts), int(sum(counts))
    rng = np.random.default_rng(len(counts) + m)
    return ElectronDeposits(
        energy_keV=energy,
        sensor=SensorGeometry(thickness_um=300.0, pitch_um=50.0, nx=8, ny=6),
        entry_x_um=start + np.arange(n, dtype=float),
        entry_y_um=rng.uniform(0, 300, n),
        direction=np.tile([0.0, 0.6, 0.8], (n, 1)),
        deposit_keV=rng.uniform(0, energy, n),
        backscattered=rng.random(n) < 0.5,
        transmitted=np.zeros(n, bool),
        offsets=np.concatenate([[0], np.cumsum(counts)]),
        step_x_um=rng.uniform(0, 400, m),
        step_y_um=rng.uniform(0, 300, m),
        step_z_um=rng.uniform(0, 300, m),
        step_edep_keV=rng.uniform(0, 5, m),
        primary_path_um=rng.uniform(10, 300, n),
        physics="option3",
        seed=42,
        workers=2,
        transport={"production_cut_um": 10.0, "msc_step_limit": None},
        geant4_seconds=2.0,
    )


def same(a: ElectronDeposits, b: ElectronDeposits) -> bool:
    names = [
        "entry_x_um",
        "entry_y_um",
        "direction",
        "deposit_keV",
        "backscattered",
        "transmitted",
        "offsets",
        "step_x_um",
        "step_y_um",
        "step_z_um",
        "step_edep_keV",
        "primary_path_um",
    ]
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in names) and (
        a.energy_keV,
        a.sensor,
        a.physics,
        a.seed,
        a.workers,
        a.transport,
    ) == (b.energy_keV, b.sensor, b.physics, b.seed, b.workers, b.transport)


def test_round_trip_and_attributes(tmp_path):
    d = deposits([3, 0, 5, 1])
    path = write_deposits(tmp_path / "d.h5", d)
    back = read_deposits(path)
    assert same(back, d) and back.geant4_seconds == 2.0
    with h5py.File(path) as f:
        assert f.attrs["energy_keV"] == 200.0 and f.attrs["physics"] == "option3"
        assert json.loads(f.attrs["sensor"]) == d.sensor.to_dict()
        assert f.attrs["seed"] == 42 and f.attrs["workers"] == 2
        assert f.attrs["dedkit_version"] == __version__
        assert f["steps/offsets"][:].tolist() == [0, 3, 3, 8, 9]


def test_batches_append_and_ranges_read_back(tmp_path):
    parts = [deposits([2, 4]), deposits([0, 3, 1], start=10), deposits([5], start=20)]
    with DepositsWriter(tmp_path / "d.h5") as w:
        for p in parts:
            w.append(p)
    path = tmp_path / "d.h5"
    whole = ElectronDeposits.concatenate(parts)
    assert deposits_length(path) == 6
    assert same(read_deposits(path), whole)
    assert same(read_deposits(path, 1, 4), whole.select([1, 2, 3]))
    assert len(read_deposits(path, 6)) == 0
    with pytest.raises(DedkitError, match="bad primary range"):
        read_deposits(path, 5, 2)


def test_refusals_leave_nothing_behind(tmp_path):
    path = tmp_path / "d.h5"
    with pytest.raises(DedkitError, match="another energy"):
        with DepositsWriter(path) as w:
            w.append(deposits([1]))
            w.append(deposits([1], energy=100.0))
    with pytest.raises(DedkitError, match="no deposits were written"):
        with DepositsWriter(path):
            pass
    without_path = deposits([1])
    without_path.primary_path_um = None
    with pytest.raises(DedkitError, match="with and without primary path"):
        with DepositsWriter(path) as w:
            w.append(deposits([1]))
            w.append(without_path)
    assert list(tmp_path.iterdir()) == []
    write_deposits(path, without_path)
    assert read_deposits(path).primary_path_um is None
    path.unlink()
    write_deposits(path, deposits([1]))
    before = path.read_bytes()
    with pytest.raises(DedkitError, match="output exists"):
        write_deposits(path, deposits([2]))
    assert path.read_bytes() == before
    write_deposits(path, deposits([2, 2]), force=True)
    assert deposits_length(path) == 2


def test_other_files_are_refused(tmp_path):
    with pytest.raises(DedkitError, match="not found"):
        read_deposits(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DedkitError, match="not a readable HDF5 file"):
        read_deposits(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DedkitError, match="not a dedkit electron deposits file"):
        deposits_length(tmp_path / "other.h5")
