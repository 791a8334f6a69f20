"""io.npz: the Geant4 workers' batches, written whole or not at all."""

from __future__ import annotations

import builtins
import errno
import os

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io import atomic
from dedkit.io.npz import write_npz


def test_write_npz_round_trip(tmp_path):
    arrays = {"x_um": np.arange(5, dtype=np.float32), "seconds": np.float64(1.5)}
    path = write_npz(tmp_path / "batch-000000.npz", arrays, record=False)
    with np.load(path) as z:
        assert sorted(z.files) == ["seconds", "x_um"]
        np.testing.assert_array_equal(z["x_um"], arrays["x_um"])
        assert z["x_um"].dtype == np.float32 and z["seconds"] == 1.5
    assert [p.name for p in tmp_path.iterdir()] == ["batch-000000.npz"]


def test_write_npz_on_a_full_disk_leaves_nothing(tmp_path, monkeypatch):
    # the worker used to leave its hand-made temporary behind when the write failed
    def full_disk(path, mode="r", *args, **kwargs):
        builtins.open(path, mode, *args, **kwargs).close()  # the temporary exists
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "open", full_disk, raising=False)
    with pytest.raises(DedkitError, match="cannot write: No space left on device"):
        write_npz(tmp_path / "batch-000001.npz", {"x": np.zeros(3)}, record=False)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
