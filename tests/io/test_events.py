"""HDF5 cluster and event tables: round trips, appending, attributes, atomicity."""

import h5py
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.events import TableWriter, read_attrs, read_table, table_length, write_table
from dedkit.records.tables import ClusterTable, EventTable


def clusters(rng, n=500, features=True):
    return ClusterTable(
        frame=np.sort(rng.integers(0, 1000, n)).astype(np.int64),
        x=rng.integers(0, 400, n).astype(np.int32),
        y=rng.integers(0, 400, n).astype(np.int32),
        data=rng.normal(size=(n, 3, 3)).astype(np.float32),
        units="keV",
        features=rng.normal(size=(n, 7)).astype(np.float32) if features else None,
        extra={"centroid_x": rng.normal(size=n), "n_pixels": rng.integers(1, 9, n)},
    )


def events(rng, n=300):
    return EventTable(
        frame=np.arange(n, dtype=np.int64),
        x=rng.uniform(0, 400, n),
        y=rng.uniform(0, 400, n),
        energy=rng.uniform(20, 200, n).astype(np.float32),
        method="eta2",
        extra={"cluster_index": np.arange(n)},
    )


def assert_same(a, b):
    assert type(a) is type(b)
    for name in ("frame", "x", "y", "data", "energy", "features"):
        if hasattr(a, name):
            left, right = getattr(a, name), getattr(b, name)
            if left is None:
                assert right is None
            else:
                np.testing.assert_array_equal(left, right)
                assert left.dtype == right.dtype
    assert a.extra.keys() == b.extra.keys()
    for name in a.extra:
        np.testing.assert_array_equal(a.extra[name], b.extra[name])
    assert getattr(a, "units", None) == getattr(b, "units", None)
    assert getattr(a, "method", None) == getattr(b, "method", None)


@pytest.mark.parametrize("make", [clusters, events])
def test_round_trip(tmp_path, rng, make):
    table = make(rng)
    write_table(tmp_path / "t.h5", table)
    assert_same(read_table(tmp_path / "t.h5"), table)
    assert table_length(tmp_path / "t.h5") == len(table)


def test_round_trip_without_features(tmp_path, rng):
    table = clusters(rng, features=False)
    write_table(tmp_path / "t.h5", table, compression="lzf")
    assert read_table(tmp_path / "t.h5").features is None


def test_row_range(tmp_path, rng):
    table = clusters(rng)
    write_table(tmp_path / "t.h5", table, chunk_rows=64)
    assert_same(read_table(tmp_path / "t.h5", 100, 230), table[100:230])
    with pytest.raises(DedkitError, match="outside the table"):
        read_table(tmp_path / "t.h5", 400, 600)


def test_append_in_pieces_equals_one_write(tmp_path, rng):
    table = clusters(rng, n=1000)
    write_table(tmp_path / "one.h5", table, attrs={"n_sigma": 5})
    with TableWriter(tmp_path / "pieces.h5", "clusters", chunk_rows=128,
                     attrs={"n_sigma": 5}) as writer:  # fmt: skip
        for start in range(0, 1000, 333):
            writer.append(table[start : start + 333])
    assert_same(read_table(tmp_path / "pieces.h5"), read_table(tmp_path / "one.h5"))
    with h5py.File(tmp_path / "pieces.h5") as f:
        assert f["clusters/data"].chunks == (128, 3, 3)
        assert f["clusters/frame"].maxshape == (None,)


def test_attrs_preserved(tmp_path, rng):
    attrs = {
        "threshold_keV": 1.0,
        "n_sigma": 5,
        "finder": "connected",
        "calibrated": True,
        "gain_map": np.array([1.0, 2.0]),
        "pedestal": {"frames": 1000, "source": "dark_master_0.json"},
        "energy_window_keV": [20, 205],
        "notes": None,
    }
    write_table(tmp_path / "t.h5", events(rng), attrs=attrs)
    back = read_attrs(tmp_path / "t.h5")
    np.testing.assert_array_equal(back.pop("gain_map"), attrs.pop("gain_map"))
    assert back == attrs
    assert isinstance(back["calibrated"], bool) and isinstance(back["n_sigma"], int)


def test_attr_not_serialisable_or_reserved(tmp_path, rng):
    with pytest.raises(DedkitError, match="JSON"):
        write_table(tmp_path / "t.h5", events(rng), attrs={"bad": object()})
    with pytest.raises(DedkitError, match="reserved"):
        write_table(tmp_path / "t.h5", events(rng), attrs={"dedkit_kind": "x"})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_compressed_chunked_datasets(tmp_path, rng, compression):
    write_table(tmp_path / "t.h5", clusters(rng), compression=compression)
    with h5py.File(tmp_path / "t.h5") as f:
        for name in ("frame", "x", "y", "data", "features", "extra/centroid_x"):
            dataset = f["clusters"][name]
            assert dataset.compression == compression and dataset.chunks is not None
            assert dataset.maxshape[0] is None
        assert f["clusters"].attrs["dedkit_units"] == "keV"


def test_exception_inside_with_leaves_nothing(tmp_path, rng):
    with pytest.raises(RuntimeError), TableWriter(tmp_path / "t.h5", "events") as writer:
        writer.append(events(rng))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_existing_file(tmp_path, rng):
    original = events(rng, 10)
    write_table(tmp_path / "t.h5", original)
    with pytest.raises(RuntimeError), TableWriter(tmp_path / "t.h5", "events", force=True) as w:
        w.append(events(rng, 20))
        raise RuntimeError("interrupted")
    assert_same(read_table(tmp_path / "t.h5"), original)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]


def test_existing_output_needs_force(tmp_path, rng):
    write_table(tmp_path / "t.h5", events(rng))
    with pytest.raises(DedkitError, match="exists"):
        write_table(tmp_path / "t.h5", events(rng))
    write_table(tmp_path / "t.h5", events(rng, 5), force=True)
    assert table_length(tmp_path / "t.h5") == 5


def test_mismatched_pieces_refused(tmp_path, rng):
    with TableWriter(tmp_path / "t.h5", "clusters") as writer:
        writer.append(clusters(rng, 10))
        with pytest.raises(DedkitError, match="columns"):
            writer.append(clusters(rng, 10, features=False))
        other_units = clusters(rng, 10)
        other_units.units = "ADU"
        with pytest.raises(DedkitError, match="units"):
            writer.append(other_units)
        with pytest.raises(DedkitError, match="cannot append events"):
            writer.append(events(rng))
        wider = clusters(rng, 10)
        wider.data = np.zeros((10, 5, 5), np.float32)
        with pytest.raises(DedkitError, match="column data"):
            writer.append(wider)
    assert len(read_table(tmp_path / "t.h5")) == 10


def test_empty_writer_gives_empty_table(tmp_path):
    TableWriter(tmp_path / "e.h5", "clusters").close()
    table = read_table(tmp_path / "e.h5")
    assert isinstance(table, ClusterTable) and len(table) == 0


def test_corrupt_or_foreign_file(tmp_path, rng):
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DedkitError, match="not a readable HDF5"):
        read_table(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(DedkitError, match="expected one dedkit table"):
        read_table(tmp_path / "other.h5")
    write_table(tmp_path / "t.h5", clusters(rng))
    with h5py.File(tmp_path / "t.h5", "a") as f:
        del f["clusters/data"]
    with pytest.raises(DedkitError, match="damaged"):
        read_table(tmp_path / "t.h5")
    with pytest.raises(DedkitError, match="not found"):
        read_table(tmp_path / "missing.h5")
