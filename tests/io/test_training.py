"""Training-set files: the chunked HDF5 writer, reading back, and the resumable parts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.training import (
    TRAINING_COLUMNS,
    TrainingParts,
    TrainingSetWriter,
    parts_folder,
    read_training_attrs,
    read_training_set,
    training_set_length,
)


def _columns(n, seed=0, crop=15):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.uniform(0, 50, (n, crop, crop)).astype(np.float32),
        "features": rng.uniform(0, 200, (n, 7)).astype(np.float32),
        "entry_x": rng.uniform(0, 15, n),
        "entry_y": rng.uniform(0, 15, n),
        "centroid_x": rng.uniform(0, 15, n),
        "centroid_y": rng.uniform(0, 15, n),
        "backscattered": rng.uniform(size=n) < 0.2,
        "deposit_keV": rng.uniform(20, 200, n).astype(np.float32),
        "primary": np.arange(n, dtype=np.int64) * 3,
        "n_selected": np.ones(n, np.int16),
        "chunk": np.full(n, seed, np.int32),
    }


def test_write_and_read_back_in_pieces(tmp_path):
    path = tmp_path / "set.h5"
    a, b = _columns(7, 1), _columns(5, 2)
    with TrainingSetWriter(path, attrs={"parameters": {"energy_keV": 200.0}}) as w:
        w.append(a)
        w.append(b)
        w.set_attrs({"stats": {"n_primaries": 13}})
        assert not path.exists()  # published only on close
    assert training_set_length(path) == 12
    data = read_training_set(path)
    for name in TRAINING_COLUMNS:
        np.testing.assert_array_equal(data[name], np.concatenate([a[name], b[name]]))
        assert data[name].dtype == TRAINING_COLUMNS[name][0]
    part = read_training_set(path, 6, 9)
    np.testing.assert_array_equal(part["image"], np.concatenate([a["image"], b["image"]])[6:9])
    attrs = read_training_attrs(path)
    assert attrs["parameters"] == {"energy_keV": 200.0} and attrs["stats"]["n_primaries"] == 13
    assert attrs["n_rows"] == 12 and attrs["dedkit_kind"] == "training"
    with h5py.File(path) as f:
        assert f["training/image"].chunks[1:] == (15, 15)
        assert f["training/image"].compression == "gzip"


def test_writer_is_atomic_and_refuses_overwrite(tmp_path):
    path = tmp_path / "set.h5"
    with pytest.raises(RuntimeError), TrainingSetWriter(path) as w:
        w.append(_columns(3))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with TrainingSetWriter(path) as w:
        w.append(_columns(3))
    with pytest.raises(DedkitError, match="exists"):
        TrainingSetWriter(path)
    with TrainingSetWriter(path, force=True) as w:
        w.append(_columns(4))
    assert training_set_length(path) == 4


def test_bad_pieces_and_files_refused(tmp_path):
    with TrainingSetWriter(tmp_path / "a.h5") as w:
        cols = _columns(3)
        del cols["chunk"]
        with pytest.raises(DedkitError, match="missing"):
            w.append(cols)
        with pytest.raises(DedkitError, match="rows"):
            w.append({**_columns(3), "entry_x": np.zeros(2)})
        w.append(_columns(3))
        with pytest.raises(DedkitError, match="rows are"):
            w.append(_columns(2, crop=11))
    with pytest.raises(DedkitError, match="at least one row"), TrainingSetWriter(tmp_path / "b.h5"):
        pass
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(DedkitError, match="not a dedkit training set"):
        read_training_set(tmp_path / "other.h5")
    with pytest.raises(DedkitError, match="outside"):
        read_training_set(tmp_path / "a.h5", 2, 9)
    with pytest.raises(DedkitError, match="not found"):
        read_training_set(tmp_path / "missing.h5")


def test_parts_resume_with_the_same_parameters(tmp_path):
    folder = parts_folder(tmp_path / "set.h5")
    assert folder.name == ".set.h5.parts"
    parts = TrainingParts(folder, {"seed": 1, "n": 10})
    parts.write_chunk(0, _columns(4, 0), {"n_primaries": 9})
    parts.write_chunk(2, _columns(3, 2), {"n_primaries": 8})
    # a chunk interrupted while being written leaves a temporary file
    (folder / ".chunk_000001.h5.part-999").write_bytes(b"partial")
    again = TrainingParts(folder, {"seed": 1, "n": 10})
    assert again.completed() == [0, 2]
    assert not list(folder.glob(".*.part-*"))
    columns, stats = again.read_chunk(2)
    np.testing.assert_array_equal(columns["image"], _columns(3, 2)["image"])
    assert stats == {"n_primaries": 8} and again.chunk_length(0) == 4
    with pytest.raises(DedkitError, match=r"other parameters \(n\)"):
        TrainingParts(folder, {"seed": 1, "n": 11})
    fresh = TrainingParts(folder, {"seed": 1, "n": 11}, restart=True)
    assert fresh.completed() == []
    fresh.remove()
    assert not folder.exists()


@pytest.mark.parametrize(
    "column, values",
    [
        ("entry_y", lambda n: np.array([b"x"] * n)),
        ("entry_x", lambda n: np.array(["x"] * n, dtype=h5py.string_dtype())),
        ("deposit_keV", lambda n: np.ones(n, np.complex64)),
        ("image", lambda n: np.zeros((n, 15, 15), "S1")),
    ],
)
def test_issue_13_item_3_a_column_that_is_not_numbers_is_refused(tmp_path, column, values):
    path = tmp_path / "set.h5"
    with TrainingSetWriter(path) as w:
        w.append(_columns(30))
    with h5py.File(path, "a") as f:
        del f["training"][column]
        f["training"].create_dataset(column, data=values(30))
    for read in (training_set_length, read_training_set):
        with pytest.raises(DedkitError, match=f"column {column} holds .* not real numbers") as e:
            read(path)
        assert str(e.value).startswith(f"{path}: damaged training set")


@pytest.mark.parametrize(
    "column, change, count",
    [
        ("image", lambda v: v.__setitem__((3, 7, 7), np.nan), 1),
        ("entry_x", lambda v: v.__setitem__(slice(0, 2), np.inf), 2),
        ("features", lambda v: v.__setitem__((5, 0), -np.inf), 1),
        ("true_entry_y", lambda v: v.__setitem__(9, np.inf), 1),
    ],
)
def test_issue_13_item_4_nan_or_inf_values_are_refused(tmp_path, column, change, count):
    path = tmp_path / "set.h5"
    columns = {**_columns(30), "true_entry_x": np.zeros(30), "true_entry_y": np.zeros(30)}
    change(columns[column])
    with TrainingSetWriter(path) as w:
        w.append(columns)
    assert training_set_length(path) == 30  # the layout is fine
    with pytest.raises(DedkitError, match=f"column {column} holds {count} (NaN or )?inf") as e:
        read_training_set(path)
    assert str(e.value).startswith(f"{path}: damaged training set")
    # rows without the bad values read
    assert len(read_training_set(path, 10, 20)["image"]) == 10


def test_issue_13_item_4_unknown_true_entry_points_may_be_nan(tmp_path):
    # dedkit learn scan-labels writes NaN where a cluster matched no simulated electron
    path = tmp_path / "set.h5"
    columns = {**_columns(10), "true_entry_x": np.full(10, np.nan), "true_entry_y": np.zeros(10)}
    with TrainingSetWriter(path) as w:
        w.append(columns)
    assert np.isnan(read_training_set(path)["true_entry_x"]).all()


def test_issue_14_parts_on_a_full_disk_leave_nothing(tmp_path, monkeypatch):
    # the parameters were written to a temporary renamed into place by hand, which a full
    # disk left behind (issue 14 item 6); now nothing new stays, not even the parts folder
    import builtins
    import errno
    import os

    from dedkit.io import atomic

    def full_disk(path, mode="r", *args, **kwargs):
        builtins.open(path, mode, *args, **kwargs).close()  # the temporary exists
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "open", full_disk, raising=False)
    folder = parts_folder(tmp_path / "set.h5")
    with pytest.raises(DedkitError, match="parameters.json: cannot write: No space left"):
        TrainingParts(folder, {"seed": 1, "n": 10})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    parts = TrainingParts(folder, {"seed": 1, "n": 10})
    monkeypatch.setattr(atomic, "open", full_disk, raising=False)
    with pytest.raises(DedkitError, match="cannot write"):
        parts._write_json("parameters.json", {"seed": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["parameters.json"]
    assert TrainingParts(folder, {"seed": 1, "n": 10}).completed() == []
