"""aare .clust files: round trips with aare's ClusterFile, streaming, bad input."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io import clust
from dedkit.io.clust import cluster_record_dtype, iter_clust, read_clust, write_clust
from dedkit.records.tables import ClusterTable

# (size, dtype) pairs aare's Python bindings provide
AARE_TYPES = [((3, 3), np.int32), ((2, 2), np.float64), ((5, 5), np.float32), ((3, 3), np.int16)]


def random_table(rng, size=(3, 3), dtype=np.int32, frames=(3, 4, 7, 9)):
    """Clusters of a few frames, frame 4 without any."""
    counts = [0 if f == 4 else int(rng.integers(1, 5)) for f in frames]
    n = sum(counts)
    return ClusterTable(
        frame=np.repeat(np.array(frames, np.int64), counts),
        x=rng.integers(0, 400, n).astype(np.int32),
        y=rng.integers(0, 400, n).astype(np.int32),
        data=(rng.normal(size=(n, *size)) * 100).astype(dtype),
    )


def write_with_aare(path, table, frames, size, dtype):
    aare = pytest.importorskip(
        "aare", reason="aare (PSI) is not installed: pip install aare==2025.11.21"
    )
    cluster_file = aare.ClusterFile(str(path), cluster_size=size, dtype=dtype, mode="w")
    for number in frames:
        vector = aare.ClusterVector(size, dtype)
        vector.frame_number = int(number)
        for i in np.flatnonzero(table.frame == number):
            cluster = aare.Cluster(int(table.x[i]), int(table.y[i]), table.data[i].ravel(),
                                   cluster_size=size, dtype=dtype)  # fmt: skip
            vector.push_back(cluster)
        cluster_file.write_frame(vector)
    cluster_file.close()


def assert_tables_equal(a, b):
    np.testing.assert_array_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.data.dtype == b.data.dtype


def test_record_sizes_match_aare():
    aare = pytest.importorskip(
        "aare", reason="aare (PSI) is not installed: pip install aare==2025.11.21"
    )
    for size, dtype in AARE_TYPES:
        expected = aare.ClusterVector(size, dtype).item_size()
        assert cluster_record_dtype(size, dtype).itemsize == expected
    assert cluster_record_dtype((3, 3), np.int32).itemsize == 40


@pytest.mark.parametrize("size, dtype", AARE_TYPES)
def test_aare_writes_we_read(tmp_path, rng, size, dtype):
    table = random_table(rng, size, dtype)
    write_with_aare(tmp_path / "a.clust", table, (3, 4, 7, 9), size, dtype)
    assert_tables_equal(read_clust(tmp_path / "a.clust", size, dtype), table)


@pytest.mark.parametrize("size, dtype", AARE_TYPES)
def test_we_write_aare_reads(tmp_path, rng, size, dtype):
    aare = pytest.importorskip(
        "aare", reason="aare (PSI) is not installed: pip install aare==2025.11.21"
    )
    table = random_table(rng, size, dtype)
    write_clust(tmp_path / "d.clust", table, frames=[3, 4, 7, 9])
    cluster_file = aare.ClusterFile(str(tmp_path / "d.clust"), cluster_size=size, dtype=dtype)
    for number in (3, 4, 7, 9):
        vector = cluster_file.read_frame()
        assert vector.frame_number == number
        got = np.array(vector)
        mine = table[table.frame == number]
        np.testing.assert_array_equal(got["x"], mine.x)
        np.testing.assert_array_equal(got["y"], mine.y)
        np.testing.assert_array_equal(got["data"], mine.data)
    if dtype != np.float64:  # float64 records have padding bytes, undefined in aare's
        write_with_aare(tmp_path / "a.clust", table, (3, 4, 7, 9), size, dtype)
        assert (tmp_path / "a.clust").read_bytes() == (tmp_path / "d.clust").read_bytes()


def test_x_is_column_y_is_row_as_aare_finds_them(tmp_path, rng):
    """aare's finder stores the local maximum's column as x and row as y."""
    aare = pytest.importorskip(
        "aare", reason="aare (PSI) is not installed: pip install aare==2025.11.21"
    )
    finder = aare.ClusterFinder((50, 60), (3, 3), n_sigma=5)
    for _ in range(50):
        finder.push_pedestal_frame((1000 + rng.normal(0, 3, (50, 60))).astype(np.uint16))
    frame = np.full((50, 60), 1000, np.uint16)
    frame[10, 20] += 500
    frame[11, 20] += 200  # the row below
    frame[10, 21] += 100  # the column to the right
    finder.find_clusters(frame, frame_number=7)
    cluster_file = aare.ClusterFile(str(tmp_path / "f.clust"), mode="w")
    cluster_file.write_frame(finder.steal_clusters())
    cluster_file.close()
    table = read_clust(tmp_path / "f.clust")
    assert (table.frame[0], table.x[0], table.y[0]) == (7, 20, 10)
    centre = table.data[0, 1, 1]
    assert table.data[0, 2, 1] - centre == pytest.approx(-300, abs=15)
    assert table.data[0, 1, 2] - centre == pytest.approx(-400, abs=15)


def test_write_sorts_frames_and_omits_empty_ones(tmp_path, rng):
    table = random_table(rng)
    shuffled = table[rng.permutation(len(table))]
    write_clust(tmp_path / "s.clust", shuffled)
    back = read_clust(tmp_path / "s.clust")
    assert np.all(np.diff(back.frame) >= 0)
    assert set(back.frame) == {3, 7, 9}
    n_frames = 3
    size = cluster_record_dtype().itemsize
    assert (tmp_path / "s.clust").stat().st_size == 8 * n_frames + size * len(table)
    # with frames listed, the empty frame 4 is written too (8 more bytes)
    write_clust(tmp_path / "e.clust", shuffled, frames=[3, 4, 7, 9])
    assert (tmp_path / "e.clust").stat().st_size == 8 * 4 + size * len(table)


def test_iter_clust_chunks_at_frame_boundaries(tmp_path, rng, monkeypatch):
    table = random_table(rng, frames=tuple(range(40)))
    write_clust(tmp_path / "big.clust", table)
    monkeypatch.setattr(clust, "_BLOCK_BYTES", 100)  # many blocks, frames split across them
    chunks = list(iter_clust(tmp_path / "big.clust", max_clusters=10))
    assert all(len(c) <= 10 for c in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.frame[-1] != after.frame[0]
    assert_tables_equal(ClusterTable.concatenate(chunks), read_clust(tmp_path / "big.clust"))


def test_iter_clust_splits_a_frame_larger_than_a_chunk(tmp_path, rng):
    table = random_table(rng, frames=(1,))
    table = ClusterTable.concatenate([table] * 10)
    table.frame[:] = 1
    write_clust(tmp_path / "one.clust", table)
    chunks = list(iter_clust(tmp_path / "one.clust", max_clusters=4))
    assert [len(c) for c in chunks] == [4] * (len(table) // 4) + (
        [len(table) % 4] if len(table) % 4 else []
    )


def test_truncated_file(tmp_path, rng):
    write_clust(tmp_path / "t.clust", random_table(rng))
    data = (tmp_path / "t.clust").read_bytes()
    (tmp_path / "t.clust").write_bytes(data[:-7])
    with pytest.raises(DedkitError, match="truncated or corrupt"):
        read_clust(tmp_path / "t.clust")
    with pytest.raises(DedkitError, match="truncated or corrupt"):
        list(iter_clust(tmp_path / "t.clust"))


def test_wrong_cluster_size_detected(tmp_path, rng):
    write_clust(tmp_path / "w.clust", random_table(rng))
    with pytest.raises(DedkitError, match="cluster size and type"):
        read_clust(tmp_path / "w.clust", (5, 5))


def test_missing_file(tmp_path):
    with pytest.raises(DedkitError, match="not found"):
        read_clust(tmp_path / "none.clust")


def test_write_refusals(tmp_path, rng):
    table = random_table(rng)
    write_clust(tmp_path / "x.clust", table)
    with pytest.raises(DedkitError, match="exists"):
        write_clust(tmp_path / "x.clust", table)
    with pytest.raises(DedkitError, match="not listed"):
        write_clust(tmp_path / "y.clust", table, frames=[3])
    bad = table[:]
    bad.x = bad.x.copy()
    bad.x[0] = 70000
    with pytest.raises(DedkitError, match="0..65535"):
        write_clust(tmp_path / "z.clust", bad)
    huge = table[:]
    huge.frame = huge.frame + 2**31
    with pytest.raises(DedkitError, match="int32"):
        write_clust(tmp_path / "z.clust", huge)
    assert not (tmp_path / "y.clust").exists() and not (tmp_path / "z.clust").exists()
