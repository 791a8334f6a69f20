"""The aare-compatible finder's kernels against the plain reference of aare's loop.

No aare needed: :class:`dedkit.hpd.finder_reference.ReferenceFinder` is aare's
``ClusterFinder`` written out pixel by pixel. Every path of
:class:`dedkit.hpd.finder.ClusterFinder` must give its clusters and its pedestal state
bit for bit: the fast kernels of a full window (one thread, and row bands on several),
and the exact path (an incomplete window, or the fast kernels not allowed). Where aare
is installed, the last test checks the reference itself against aare.
"""

import warnings

import numpy as np
import pytest

from dedkit.hpd.finder import ClusterFinder
from dedkit.hpd.finder_reference import ReferenceFinder

SHAPE = (32, 32)  # rows, columns


def photon_frames(n_dark, n_data, seed, shape=SHAPE, photons_per_frame=6):
    """Dark frames, and data frames with photons: lone, touching, cut by the borders,
    spread thin (each pixel below the threshold, their sum above), and a few pixels far
    below the pedestal."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    pedestal = rng.normal(1000, 30, shape)
    noise = rng.uniform(1.5, 6, shape)

    def noisy(n):
        return pedestal + noise * rng.standard_normal((n, ny, nx))

    dark = np.clip(np.rint(noisy(n_dark)), 0, 65535).astype(np.uint16)
    data = noisy(n_data)
    yy, xx = np.mgrid[0:ny, 0:nx]
    for frame in data:
        centres = rng.uniform([-1, -1], [ny, nx], (photons_per_frame, 2))
        partners = centres[:2] + rng.choice([-2, -1, 1, 2], (2, 2))
        for cy, cx in np.concatenate([centres, partners]):
            width = rng.uniform(0.3, 1.5)
            frame += rng.uniform(15, 400) * np.exp(
                -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2)
            )
        holes = rng.integers(0, [ny, nx], (3, 2))
        frame[holes[:, 0], holes[:, 1]] -= 80
    data = np.clip(np.rint(data), 0, 65535).astype(np.uint16)
    return dark, data


def reference_run(dark, data, cluster_size, window, nsigma=5.0, dtype=np.int32):
    reference = ReferenceFinder(data.shape[1:], cluster_size, nsigma, window, dtype)
    for frame in dark:
        reference.push_pedestal_frame(frame)
    return reference.find_clusters_in_frames(data), reference


def dedkit_finder(dark, cluster_size, window, nsigma=5.0, dtype=np.int32):
    finder = ClusterFinder(dark.shape[1:], cluster_size, nsigma, window, dtype)
    finder.push_pedestal_frames(dark)
    return finder


def assert_same(table, finder, clusters, reference):
    assert len(table) == len(clusters.x)
    np.testing.assert_array_equal(table.frame, clusters.frame)
    np.testing.assert_array_equal(table.x, clusters.x)
    np.testing.assert_array_equal(table.y, clusters.y)
    assert table.data.dtype == clusters.data.dtype
    np.testing.assert_array_equal(table.data, clusters.data)
    state = finder.pedestal.to_arrays()
    for name in ("sum", "sum2", "mean", "count"):
        np.testing.assert_array_equal(state[name], getattr(reference, name), err_msg=name)
    with np.errstate(invalid="ignore"):
        variance = reference.sum2 / reference.count - reference.mean**2
        np.testing.assert_array_equal(finder.noise, np.sqrt(variance))


def one_at_a_time(finder, data):
    tables = [finder.find_clusters(frame, k) for k, frame in enumerate(data)]
    return type(tables[0]).concatenate(tables)


def every_path(dark, data, cluster_size, window, nsigma=5.0, dtype=np.int32):
    """The reference's clusters and state, and dedkit's by each path of a full window."""
    clusters, reference = reference_run(dark, data, cluster_size, window, nsigma, dtype)
    runs = {
        "fast, one thread": lambda f: f.find_clusters_in_frames(data),
        "fast, 2 bands": lambda f: f.find_clusters_parallel(data, n_threads=2),
        "fast, 3 bands": lambda f: f.find_clusters_parallel(data, n_threads=3),
        "frame by frame": lambda f: one_at_a_time(f, data),
    }
    for run in runs.values():
        finder = dedkit_finder(dark, cluster_size, window, nsigma, dtype)
        assert finder._fast_parameters(data) is not None, "the fast kernels must run"
        assert_same(run(finder), finder, clusters, reference)
    exact = dedkit_finder(dark, cluster_size, window, nsigma, dtype)
    exact._fast_budget = 0  # the fast kernels may not run: the exact path
    assert_same(exact.find_clusters_in_frames(data), exact, clusters, reference)
    return clusters


@pytest.mark.parametrize("cluster_size", [(3, 3), (5, 5)])
@pytest.mark.parametrize("window", [8, 64, 200])
def test_every_path_matches_the_reference(cluster_size, window):
    # windows of a refresh every frame (8 // 32 -> 1), of 2 and of 6 frames
    dark, data = photon_frames(window, 24, seed=window + cluster_size[0])
    clusters = every_path(dark, data, cluster_size, window)
    assert len(clusters.x) > 3 * len(data)
    # clusters cut by the borders were among them
    assert {0, SHAPE[1] - 1} & set(clusters.x.tolist())
    assert {0, SHAPE[0] - 1} & set(clusters.y.tolist())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_clusters_match_the_reference(dtype):
    dark, data = photon_frames(64, 16, seed=5)
    every_path(dark, data, (3, 3), 64, dtype=dtype)


def test_frame_already_the_first_after_the_window_matches_the_reference():
    # the steady regime from the very first data frame: more dark frames than the window
    # (the window full and then sliding), then photons
    dark, data = photon_frames(150, 20, seed=9)
    every_path(dark, data, (3, 3), 50)


@pytest.mark.parametrize("cluster_size", [(3, 3), (5, 5)])
@pytest.mark.parametrize("nsigma, amplitude", [(5.0, 1), (3.0, 2)])
def test_values_at_the_thresholds_match_the_reference(cluster_size, nsigma, amplitude):
    # dark frames alternating +-amplitude give a noise of exactly `amplitude`: data
    # values and neighbourhood sums land on, just below and just above both thresholds,
    # and flat neighbourhoods tie for the maximum
    rng = np.random.default_rng(int(10 * nsigma) + amplitude)
    window = 32
    pedestal = rng.integers(900, 1100, SHAPE)
    dark = np.stack([pedestal + (amplitude if k % 2 else -amplitude) for k in range(window)])
    limit = int(np.ceil(nsigma * amplitude))
    offsets = np.arange(-limit - 2, limit + 3)
    p = np.where(abs(offsets) <= amplitude, 12.0, 1.0)
    p[abs(abs(offsets) - nsigma * amplitude) <= 1] = 4.0
    data = pedestal + rng.choice(offsets, (20, *SHAPE), p=p / p.sum())
    clusters = every_path(
        dark.astype(np.uint16), data.astype(np.uint16), cluster_size, window, nsigma
    )
    assert len(clusters.x) > 0


@pytest.mark.parametrize("cluster_size", [(3, 3), (5, 5)])
def test_incomplete_window_matches_the_reference(cluster_size):
    # fewer dark frames than the window: the exact path, whose push_fast divides by the
    # window all the same (the pedestal is scaled down, as in aare)
    window = 40
    dark, data = photon_frames(window // 2, 6, seed=21)
    clusters, reference = reference_run(dark, data, cluster_size, window)
    finder = dedkit_finder(dark, cluster_size, window)
    assert finder._fast_parameters(data) is None
    with pytest.warns(UserWarning, match="fewer than its window"):
        table = finder.find_clusters_in_frames(data)
    assert_same(table, finder, clusters, reference)
    assert len(clusters.x) > 0


def test_state_hand_over_between_chunks_matches_the_reference():
    dark, data = photon_frames(64, 20, seed=4)
    clusters, reference = reference_run(dark, data, (3, 3), 64)
    first = dedkit_finder(dark, (3, 3), 64)
    part1 = first.find_clusters_in_frames(data[:7])
    second = ClusterFinder(SHAPE, (3, 3), 5.0, 64)
    second.pedestal = first.pedestal
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        part2 = second.find_clusters_parallel(data[7:], np.arange(7, 20), n_threads=2)
    assert_same(type(part1).concatenate([part1, part2]), second, clusters, reference)


@pytest.mark.parametrize("cluster_size, dtype", [((3, 3), np.int32), ((5, 5), np.float32)])
def test_the_reference_is_aare(cluster_size, dtype):
    # the reference itself against aare 2025.11.21, where aare is installed (its
    # cluster finder's pedestal window is 1000 frames)
    aare = pytest.importorskip("aare", reason="aare (PSI) is not installed")
    dark, data = photon_frames(1000, 12, seed=31, shape=(20, 24))
    clusters, reference = reference_run(dark, data, cluster_size, 1000, dtype=dtype)
    finder = aare.ClusterFinder(data.shape[1:], cluster_size, n_sigma=5.0, dtype=dtype)
    for frame in dark:
        finder.push_pedestal_frame(frame)
    for number, frame in enumerate(data):
        finder.find_clusters(frame, number)
        records = np.array(finder.steal_clusters())
        here = clusters.frame == number
        np.testing.assert_array_equal(records["x"], clusters.x[here])
        np.testing.assert_array_equal(records["y"], clusters.y[here])
        np.testing.assert_array_equal(records["data"], clusters.data[here])
    assert len(clusters.x) > 2 * len(data)
    np.testing.assert_array_equal(finder.pedestal, reference.mean)
    np.testing.assert_array_equal(finder.noise, np.sqrt(reference.sum2 / 1000 - reference.mean**2))
