"""Chunked runs on a real Dask LocalCluster, including a worker killed mid-run."""

import sys
from pathlib import Path

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.parallel.chunks import plan_chunks
from dedkit.parallel.scheduler import dask_client, run_chained, run_independent

sys.path.insert(0, str(Path(__file__).parent))
import chunkfns  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    with dask_client(n_workers=2) as c:
        c.upload_file(str(Path(__file__).parent / "chunkfns.py"))
        yield c


def test_plan_covers_every_frame_once():
    chunks = plan_chunks(23, 5, start=7)
    frames = [f for c in chunks for f in range(c.start, c.stop)]
    assert frames == list(range(7, 30)) and chunks[-1].n_frames == 3
    with pytest.raises(DedkitError):
        plan_chunks(10, 0)


def test_chained_equals_sequential(client):
    data = np.arange(50, dtype=float)
    got = []
    final = run_chained(
        client,
        plan_chunks(50, 7),
        chunkfns.running_sum,
        0.0,
        data,
        consume=lambda c, r: got.append(r),
        window=2,
    )
    frames = np.concatenate([g[0] for g in got])
    totals = np.concatenate([g[1] for g in got])
    np.testing.assert_array_equal(frames, np.arange(50))
    np.testing.assert_array_equal(totals, np.cumsum(data))
    assert final == data.sum()


def test_independent_results_in_order(client):
    data = np.arange(40.0)
    got = []
    run_independent(
        client,
        plan_chunks(40, 6),
        chunkfns.square,
        data,
        consume=lambda c, r: got.append((c.index, r)),
        window=3,
    )
    assert [i for i, _ in got] == list(range(7))
    np.testing.assert_array_equal(np.concatenate([r[1] for _, r in got]), data**2)


def test_killed_worker_is_retried_without_loss_or_duplicates(client, tmp_path):
    data = np.arange(30.0)
    got = []
    run_independent(
        client,
        plan_chunks(30, 5),
        chunkfns.die_once_then_square,
        data,
        str(tmp_path),
        consume=lambda c, r: got.append(r),
    )
    assert (tmp_path / "died-1").exists()  # a worker really died
    frames = np.concatenate([r[0] for r in got])
    np.testing.assert_array_equal(frames, np.arange(30))
    np.testing.assert_array_equal(np.concatenate([r[1] for r in got]), data**2)


def test_killed_worker_in_a_chain_keeps_the_state(client, tmp_path):
    data = np.arange(40.0)
    got = []
    run_chained(
        client,
        plan_chunks(40, 6),
        chunkfns.die_once_in_chain,
        0.0,
        data,
        str(tmp_path),
        consume=lambda c, r: got.append(r),
    )
    assert (tmp_path / "died-2").exists()
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), np.arange(40))
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), np.cumsum(data))


def test_unreachable_scheduler_is_one_clear_error():
    with (
        pytest.raises(DedkitError, match="cannot reach the Dask scheduler"),
        dask_client("tcp://127.0.0.1:1"),
    ):
        pass
