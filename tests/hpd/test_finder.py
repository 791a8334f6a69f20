import warnings

import numba
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.hpd import finder_fast
from dedkit.hpd.finder import ClusterFinder, _band_rows
from dedkit.hpd.pedestal import Pedestal, pedestal_from_frames

# Only the tests that compare with aare need it (they skip without it, see aare_run);
# the others check dedkit against itself and against the plain reference
AARE_MISSING = "aare (PSI) is not installed: pip install aare==2025.11.21"

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
    """aare's clusters, pedestal and noise; skips the calling test without aare."""
    aare = pytest.importorskip("aare", reason=AARE_MISSING)
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


@pytest.mark.parametrize("cluster_size", [(5, 5), (7, 7)])
def test_parallel_with_the_thinnest_bands(frames, cluster_size):
    # as many threads as the rows allow: bands of about dy rows, each strip reading
    # the whole head of the band below it while that band's thread moves on
    dark, data = frames
    expected = ready_finder(dark, cluster_size=cluster_size).find_clusters_in_frames(data)
    parallel = ready_finder(dark, cluster_size=cluster_size)
    table = parallel.find_clusters_parallel(data, n_threads=64)
    assert_same_tables(expected, table)


@pytest.mark.parametrize("ny", [1, 2, 5, 7, 8, 13, 48, 400])
@pytest.mark.parametrize("dy", [1, 2, 3, 4])
@pytest.mark.parametrize("n_bands", [1, 2, 3, 8, 64])
def test_bands_hold_what_their_strips_read(ny, dy, n_bands):
    bands = _band_rows(ny, n_bands, dy)
    assert 1 <= len(bands) <= n_bands
    assert bands[0, 0] == 0 and bands[-1, 1] == ny
    np.testing.assert_array_equal(bands[1:, 0] - bands[:-1, 1], dy)  # the strips
    if len(bands) > 1:
        assert np.all(bands[:, 1] - bands[:, 0] >= dy)


def test_fast_means_are_the_rounded_quotients():
    rng = np.random.default_rng(4)
    total = rng.normal(1.2e6, 3e4, (7, 9))
    total[0, :3] = (0.0, 3.0, 65535.4e3)
    parameters = finder_fast.steady_parameters(1000, 5.0, (3, 3), 0)
    means = finder_fast.new_means(total, parameters)
    assert means.dtype == np.int16
    shift = 32768  # offset 0 + 32768
    np.testing.assert_array_equal(means.astype(int) + shift, np.rint(total / 1000))


def test_value_offset_spans_frames_and_means():
    total = np.array([[1000.0, 2000.0]]) * 1000  # means 1000 and 2000
    assert finder_fast.value_offset(total, 1000, 0, 65535) == 0
    assert finder_fast.value_offset(total, 1000, -32768, 32767) == -32768
    assert finder_fast.value_offset(total, 1000, 1500, 1600) == 1000
    assert finder_fast.value_offset(total, 1000, 1500, 67000) is None
    assert finder_fast.value_offset(total * 40, 1000, 0, 65535) is None  # mean 80000
    # a mean that rounds to 65536 does not fit either
    assert finder_fast.value_offset(np.array([[65535.6e3]]), 1000, 0, 65535) is None
    assert finder_fast.value_offset(np.array([[np.nan]]), 1000, 0, 65535) is None


def exact_only(finder):
    finder._fast_budget = 0  # the fast kernels may not run: aare's test for every pixel
    return finder


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint32])
def test_frames_of_other_integer_types(frames, dtype):
    dark, data = frames
    expected = ready_finder(dark).find_clusters_in_frames(data[:30])
    table = ready_finder(dark.astype(dtype)).find_clusters_parallel(
        data[:30].astype(dtype), n_threads=2
    )
    assert_same_tables(expected, table)


@pytest.mark.parametrize("jump", [0, 70000])
def test_wide_frames_take_the_fast_path_where_they_fit_16_bits(frames, jump):
    # int32 frames far above 65535: the fast kernels run on values relative to the
    # window that holds them, unless one pixel jumps outside it
    dark, data = frames
    dark = dark.astype(np.int32) + 100_000
    data = data[:30].astype(np.int32) + 100_000
    data[7, 20, 20] += jump
    finder = ready_finder(dark)
    assert (finder._fast_parameters(data) is None) == (jump > 0)
    exact = exact_only(ready_finder(dark))
    expected = exact.find_clusters_in_frames(data)
    assert_same_tables(expected, finder.find_clusters_parallel(data, n_threads=2))
    np.testing.assert_array_equal(finder.pedestal.mean, exact.pedestal.mean)


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


# -- fast path: exact division by the window, the float32 "surely dark" test -------------


@pytest.mark.parametrize("window", [1, 2, 7, 333, 999, 1000, 1001, 12345, 2**30 - 1])
def test_fma_division_is_the_division(window):
    from dedkit.hpd.finder_fast import _divide

    @numba.njit
    def divide_all(a, n, out):
        reciprocal = 1.0 / n
        for i in range(a.shape[0]):
            out[i] = _divide(a[i], n, reciprocal)

    rng = np.random.default_rng(window)
    n = 200_000
    a = np.concatenate(
        [
            rng.uniform(-1, 1, n) * 2.0 ** rng.integers(-80, 80, n),
            np.round(rng.uniform(0, 2**53, n)),  # whole numbers, e.g. sums of ADU
            # near multiples of the window and halfway between: rounding ties
            rng.integers(0, 2**40, n) * float(window) + rng.integers(-3, 4, n) * 0.5,
            rng.integers(0, 2**16, n) ** 2 * 1000.0,
            [2.0**-900, -(2.0**-899), 2.0**999, 0.0],  # the limits, and zero
        ]
    )
    out = np.empty_like(a)
    divide_all(a, float(window), out)
    np.testing.assert_array_equal(abs(out).view(np.int64), abs(a / window).view(np.int64))
    np.testing.assert_array_equal(np.signbit(out[a != 0]), np.signbit(a[a != 0]))


def test_fast_path_budget():
    from dedkit.hpd.finder_fast import fast_path_budget

    rng = np.random.default_rng(1)
    total = rng.normal(1000, 30, (8, 9)) * WINDOW
    total2 = total * total / WINDOW + 100.0 * WINDOW
    assert fast_path_budget(total, total2, WINDOW) > 500_000
    total[3, 4] = 0.0  # a dead pixel: exact zeros divide exactly
    assert fast_path_budget(total, total2, WINDOW) > 500_000
    total[3, 4] = 1e-250  # decays below 2**-900 after a few hundred thousand frames
    budget = fast_path_budget(total, total2, WINDOW)
    assert 0 < budget < 500_000
    assert 1e-250 * (1 - 1 / WINDOW) ** budget > 2.0**-900
    for bad in (1e-300, np.nan, np.inf, 2.0**950):
        total[3, 4] = bad
        assert fast_path_budget(total, total2, WINDOW) == 0


def odd_pixels(seed, shape, n_frames):
    """Dark and data frames with dead (always 0), stuck (constant, no noise), saturated,
    very noisy and very quiet pixels next to ordinary ones and charge clouds."""
    rng = np.random.default_rng(seed)
    dark, data = synthetic(WINDOW, n_frames, 6, seed, shape)
    dark, data = dark.astype(np.int64), data.astype(np.int64)
    kinds = rng.integers(0, 6, shape)
    for kind, value in ((1, 0), (2, 1234), (3, 16383)):
        where = kinds == kind
        dark[:, where] = data[:, where] = value
    noisy = kinds == 4  # noise of 400 ADU
    for frames in (dark, data):
        frames[:, noisy] += rng.normal(0, 400, (len(frames), int(noisy.sum()))).astype(int)
    quiet = kinds == 5  # noise below 1 ADU: mostly the pedestal, sometimes 1 more
    for frames in (dark, data):
        frames[:, quiet] = 1000 + (rng.random((len(frames), int(quiet.sum()))) < 0.05)
    clip = (0, 16383)
    return np.clip(dark, *clip).astype(np.uint16), np.clip(data, *clip).astype(np.uint16)


@pytest.mark.parametrize("cluster_size", [(3, 3), (5, 5)])
@pytest.mark.parametrize("seed", [11, 12])
def test_fast_path_matches_aare_on_odd_pixels(cluster_size, seed):
    dark, data = odd_pixels(seed, (30, 34), 40)
    found, aare_pedestal, _ = aare_run(dark, data, cluster_size)
    for n_threads in (1, 2, 3):
        finder = ClusterFinder((30, 34), cluster_size=cluster_size)
        finder.push_pedestal_frames(dark)
        assert finder._fast_path(len(data))
        table = finder.find_clusters_parallel(data, n_threads=n_threads)
        assert_same_clusters(table, found)
        np.testing.assert_array_equal(finder.pedestal.mean, aare_pedestal)


def test_exact_path_when_the_fast_one_is_not_allowed(frames, monkeypatch):
    dark, data = frames
    expected = ready_finder(dark).find_clusters_in_frames(data[:20])
    state = ready_finder(dark).pedestal.to_arrays()
    state["sum"][5, 6] = 1e-300  # might round differently in the fast arithmetic
    state["mean"][5, 6] = state["sum"][5, 6] / WINDOW
    finder = ClusterFinder(SHAPE)
    finder.pedestal = Pedestal.from_arrays(state)

    def refuse(*args, **kwargs):
        raise AssertionError("the fast kernels must not run")

    monkeypatch.setattr(finder_fast, "scan_all", refuse)
    monkeypatch.setattr(finder_fast, "scan_band", refuse)
    table = finder.find_clusters_parallel(data[:20], n_threads=2)
    # the same clusters away from the odd pixel, whose pedestal is 0 instead of ~1000
    away = (abs(table.x.astype(int) - 6) > 1) | (abs(table.y.astype(int) - 5) > 1)
    away_expected = (abs(expected.x.astype(int) - 6) > 1) | (abs(expected.y.astype(int) - 5) > 1)
    assert np.sum(away) == np.sum(away_expected)
    np.testing.assert_array_equal(table.x[away], expected.x[away_expected])


@pytest.mark.parametrize("cluster_size", [(3, 3), (5, 5)])
def test_values_at_the_thresholds_match_aare(cluster_size):
    # dark frames alternating a +-1 ADU around the pedestal give a noise of exactly
    # 1 ADU, so 5 sigma is 5 ADU: data frames put pixels and neighbourhood sums right
    # at, just below and just above aare's thresholds, where the fast test must hand
    # over to the exact one
    shape = (24, 30)
    rng = np.random.default_rng(7)
    pedestal = rng.integers(900, 1100, shape)
    dark = np.stack([pedestal + (1 if k % 2 else -1) for k in range(WINDOW)])
    dark = dark.astype(np.uint16)
    data = np.repeat(pedestal[np.newaxis], 60, axis=0)
    offsets = np.array([-6, -5, -4, -1, 0, 1, 2, 3, 4, 5, 6])
    weights = np.array([1, 1, 1, 10, 10, 10, 10, 10, 1, 1, 1], float)
    data = data + rng.choice(offsets, data.shape, p=weights / weights.sum())
    data = data.astype(np.uint16)
    found, aare_pedestal, _ = aare_run(dark, data, cluster_size)
    finder = ClusterFinder(shape, cluster_size=cluster_size)
    finder.push_pedestal_frames(dark)
    table = finder.find_clusters_in_frames(data)
    assert len(table) > 0
    assert_same_clusters(table, found)
    np.testing.assert_array_equal(finder.pedestal.mean, aare_pedestal)


def check_thresholds_against_aare(
    shape, pedestal_range, amplitude, nsigma, cluster_size, *, n_frames, weights, seed
):
    """Dark frames alternating +-amplitude around the pedestal (noise exactly
    ``amplitude``), data whose values land on, just below and just above both of aare's
    thresholds (``weights``: within the noise, at a threshold, elsewhere); clusters and
    final pedestal must equal aare's, and two threads must equal one."""
    rng = np.random.default_rng(seed)
    pedestal = rng.integers(*pedestal_range, shape)
    dark = np.stack([pedestal + (amplitude if k % 2 else -amplitude) for k in range(WINDOW)])
    dark = dark.astype(np.uint16)
    limit = int(np.ceil(nsigma * amplitude))
    offsets = np.arange(-limit - 2, limit + 3)
    inside, at_threshold, elsewhere = weights
    p = np.where(abs(offsets) <= amplitude, inside, elsewhere)
    p[abs(abs(offsets) - nsigma * amplitude) <= 1] = at_threshold
    data = np.repeat(pedestal[np.newaxis], n_frames, axis=0)
    data = (data + rng.choice(offsets, data.shape, p=p / p.sum())).astype(np.uint16)
    found, aare_pedestal, _ = aare_run(dark, data, cluster_size, nsigma=nsigma)
    finder = ClusterFinder(shape, cluster_size=cluster_size, nsigma=nsigma)
    finder.push_pedestal_frames(dark)
    table = finder.find_clusters_in_frames(data)
    assert len(table) > 0
    assert_same_clusters(table, found)
    np.testing.assert_array_equal(finder.pedestal.mean, aare_pedestal)
    parallel = ClusterFinder(shape, cluster_size=cluster_size, nsigma=nsigma)
    parallel.push_pedestal_frames(dark)
    assert_same_tables(table, parallel.find_clusters_parallel(data, n_threads=2))


@pytest.mark.parametrize("cluster_size", [(3, 3), (5, 5)])
@pytest.mark.parametrize("nsigma, amplitude", [(3.0, 1), (4.0, 2), (2.5, 2), (5.0, 3)])
def test_values_at_other_thresholds_match_aare(cluster_size, nsigma, amplitude):
    # as above with a noise of exactly `amplitude` ADU and other thresholds: pixel
    # values and neighbourhood sums (of size_x * size_y pixels, compared with
    # sqrt(size_x * size_y) * nsigma * rms) land exactly on, just below and just above
    # both thresholds, and negative left neighbours raise the sums by their update
    check_thresholds_against_aare(
        (20, 26), (900, 1100), amplitude, nsigma, cluster_size, n_frames=50,
        weights=(12.0, 4.0, 1.0), seed=int(10 * nsigma) + amplitude,
    )  # fmt: skip


@pytest.mark.parametrize("cluster_size", [(3, 3), (7, 7)])
@pytest.mark.parametrize("nsigma", [5.0, 3.0])
def test_large_pedestal_and_noise_at_the_thresholds_match_aare(cluster_size, nsigma):
    # as above at other magnitudes: a pedestal near 15000 ADU and a noise of exactly
    # 50 ADU, so that margins relative to the values and thresholds are exercised;
    # values land on, just below and just above both thresholds
    check_thresholds_against_aare(
        (22, 28), (14800, 15200), 50, nsigma, cluster_size, n_frames=40,
        weights=(12.0, 8.0, 0.2), seed=int(nsigma) + cluster_size[0],
    )  # fmt: skip
