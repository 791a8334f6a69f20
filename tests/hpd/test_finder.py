import warnings

import aare
import numba
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.hpd.finder import ClusterFinder
from dedkit.hpd.pedestal import pedestal_from_frames

SHAPE = (48, 40)  # rows, columns
WINDOW = 1000  # aare's cluster finder's pedestal window


def synthetic(n_dark, n_data, clouds_per_frame, seed, shape=SHAPE):
    """Dark frames and data frames with charge clouds, also at the edges and touching."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    pedestal = rng.normal(1000, 30, shape)
    noise = rng.uniform(6, 14, shape)

    def noisy(n):
        return pedestal + noise * rng.standard_normal((n, ny, nx))

    dark = np.clip(np.rint(noisy(n_dark)), 0, 16383).astype(np.uint16)
    data = noisy(n_data)
    yy, xx = np.mgrid[0:ny, 0:nx]
    for frame in data:
        # centres from just outside the frame, so that clusters are cut by the borders,
        # and pairs one or two pixels apart, so that clusters touch
        centres = rng.uniform([-1, -1], [ny, nx], (clouds_per_frame, 2))
        partners = centres[: clouds_per_frame // 3] + rng.choice(
            [-2, -1, 1, 2], (clouds_per_frame // 3, 2)
        )
        for cy, cx in np.concatenate([centres, partners]):
            width = rng.uniform(0.4, 1.2)
            frame += rng.uniform(80, 700) * np.exp(
                -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2)
            )
    data = np.clip(np.rint(data), 0, 16383).astype(np.uint16)
    return dark, data


@pytest.fixture(scope="module")
def frames():
    return synthetic(WINDOW, 120, 9, seed=3)


def aare_run(dark, data, cluster_size=(3, 3), dtype=np.int32, nsigma=5.0):
    finder = aare.ClusterFinder(data.shape[1:], cluster_size, n_sigma=nsigma, dtype=dtype)
    for frame in dark:
        finder.push_pedestal_frame(frame)
    frame_numbers, xs, ys, datas = [], [], [], []
    for number, frame in enumerate(data):
        finder.find_clusters(frame, number)
        clusters = finder.steal_clusters()
        assert clusters.frame_number == number
        records = np.array(clusters)
        frame_numbers.append(np.full(len(records), number))
        xs.append(records["x"])
        ys.append(records["y"])
        datas.append(records["data"])
    found = tuple(np.concatenate(a) for a in (frame_numbers, xs, ys, datas))
    return found, finder.pedestal, finder.noise


def assert_same_clusters(table, found):
    frame, x, y, data = found
    assert len(table) == len(frame)
    np.testing.assert_array_equal(table.frame, frame)
    np.testing.assert_array_equal(table.x, x)
    np.testing.assert_array_equal(table.y, y)
    assert table.data.dtype == data.dtype
    np.testing.assert_array_equal(table.data, data)


def n_overlapping_pairs(table):
    """Pairs of clusters of one frame whose windows overlap (touching clusters)."""
    reach = table.cluster_shape[1] - 1
    n = 0
    for number in np.unique(table.frame):
        x = table.x[table.frame == number].astype(int)
        y = table.y[table.frame == number].astype(int)
        near = np.maximum(abs(x[:, None] - x), abs(y[:, None] - y)) <= reach
        n += (near.sum() - len(x)) // 2
    return n


def assert_same_tables(a, b):
    for name in ("frame", "x", "y", "data"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def ready_finder(dark, **kwargs):
    finder = ClusterFinder(SHAPE, **kwargs)
    finder.push_pedestal_frames(dark)
    return finder


@pytest.mark.parametrize(
    "cluster_size, dtype",
    [((3, 3), np.int32), ((3, 3), np.float32), ((3, 3), np.float64), ((5, 5), np.int32)],
)
def test_identical_to_aare(frames, cluster_size, dtype):
    dark, data = frames
    found, aare_pedestal, aare_noise = aare_run(dark, data, cluster_size, dtype)
    finder = ready_finder(dark, cluster_size=cluster_size, dtype=dtype)
    table = finder.find_clusters_in_frames(data)
    assert len(table) > 5 * len(data)
    assert table.cluster_shape == cluster_size[::-1]
    assert_same_clusters(table, found)
    # clusters cut by every border and clusters side by side were among them
    assert {0, SHAPE[1] - 1} <= set(table.x) and {0, SHAPE[0] - 1} <= set(table.y)
    assert n_overlapping_pairs(table) > 0
    # the tracked pedestal ends up bit for bit like aare's
    np.testing.assert_array_equal(finder.pedestal.mean, aare_pedestal)
    np.testing.assert_array_equal(finder.noise, aare_noise)


def test_one_frame_at_a_time_equals_batch(frames):
    dark, data = frames
    batch = ready_finder(dark).find_clusters_in_frames(data[:40], np.arange(100, 140))
    finder = ready_finder(dark)
    single = [finder.find_clusters(frame, 100 + i) for i, frame in enumerate(data[:40])]
    assert_same_tables(batch, type(batch).concatenate(single))


def test_state_hand_over_between_chunks(frames):
    dark, data = frames
    whole = ready_finder(dark).find_clusters_in_frames(data)
    first = ready_finder(dark)
    part1 = first.find_clusters_in_frames(data[:60])
    state = first.pedestal.to_arrays()  # as the Dask layer hands it on
    second = ClusterFinder(SHAPE)
    second.pedestal = type(first.pedestal).from_arrays(state)
    part2 = second.find_clusters_in_frames(data[60:], np.arange(60, len(data)))
    assert_same_tables(whole, type(whole).concatenate([part1, part2]))


@pytest.mark.parametrize("cluster_size", [(3, 3), (5, 5)])
@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_parallel_identical_to_sequential(frames, cluster_size, n_threads):
    dark, data = frames
    sequential = ready_finder(dark, cluster_size=cluster_size)
    expected = sequential.find_clusters_in_frames(data)
    parallel = ready_finder(dark, cluster_size=cluster_size)
    table = parallel.find_clusters_parallel(data, n_threads=n_threads)
    assert_same_tables(expected, table)
    np.testing.assert_array_equal(parallel.pedestal.sum2, sequential.pedestal.sum2)


def test_parallel_with_numba_threads(frames):
    dark, data = frames
    expected = ready_finder(dark).find_clusters_in_frames(data)
    table = ready_finder(dark).find_clusters_parallel(data)  # numba's thread count
    assert numba.get_num_threads() >= 1
    assert_same_tables(expected, table)


def test_output_grows_when_every_pixel_is_a_cluster():
    # noiseless pedestal, flat frame above it: every pixel ties with its neighbours for
    # the maximum, so aare stores a cluster for each pixel (more than the first output)
    shape = (20, 24)
    dark = np.full((WINDOW, *shape), 1000, np.uint16)
    data = np.full((3, *shape), 1500, np.uint16)
    found, _, _ = aare_run(dark, data)
    assert len(found[0]) == 3 * 20 * 24
    for run in ("find_clusters_in_frames", "find_clusters_parallel"):
        finder = ClusterFinder(shape)
        finder.push_pedestal_frames(dark)
        assert_same_clusters(getattr(finder, run)(data), found)


def test_incomplete_pedestal_warns_and_still_matches_aare(frames):
    dark, data = frames
    found, _, _ = aare_run(dark[:50], data[:5])
    finder = ready_finder(dark[:50])
    with pytest.warns(UserWarning, match="fewer than its window"):
        table = finder.find_clusters_in_frames(data[:5])
    assert_same_clusters(table, found)


def test_plain_pedestal_seeds_a_full_window(frames):
    dark, data = frames
    plain = pedestal_from_frames(dark[:200], window=None)
    finder = ClusterFinder(SHAPE)
    finder.pedestal = plain
    assert np.all(finder.pedestal.count == WINDOW)
    np.testing.assert_allclose(finder.pedestal.mean, plain.mean, rtol=1e-14)
    np.testing.assert_allclose(finder.noise, plain.std, rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(finder.find_clusters_in_frames(data[:10])) > 0


def test_bad_input(frames):
    dark, data = frames
    with pytest.raises(DedkitError, match="cluster size"):
        ClusterFinder(SHAPE, cluster_size=(4, 4))
    with pytest.raises(DedkitError, match="dtype"):
        ClusterFinder(SHAPE, dtype=np.int16)
    with pytest.raises(DedkitError, match="nsigma"):
        ClusterFinder(SHAPE, nsigma=0)
    finder = ready_finder(dark[:1000])
    with pytest.raises(DedkitError, match="48 x 40"):
        finder.find_clusters(data[0, :, :10])
    with pytest.raises(DedkitError, match="frame numbers"):
        finder.find_clusters_in_frames(data[:3], [1, 2])
    with pytest.raises(DedkitError, match="window"):
        finder.pedestal = pedestal_from_frames(dark[:10], window=10)
