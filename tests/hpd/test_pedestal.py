import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.hpd.pedestal import Pedestal, pedestal_from_frames

#: only the comparison with aare needs it; the other tests check the pedestal on its own
AARE_MISSING = "aare (PSI) is not installed: pip install aare==2025.11.21"

SHAPE = (23, 31)


@pytest.fixture(scope="module")
def dark():
    rng = np.random.default_rng(7)
    base = rng.normal(1200, 40, SHAPE)
    noise = rng.uniform(3, 15, SHAPE)
    values = base + noise * rng.standard_normal((160, *SHAPE))
    return np.clip(np.rint(values), 0, 16383).astype(np.uint16)


def aare_pedestal(frames, window, dtype):
    aare = pytest.importorskip("aare", reason=AARE_MISSING)
    cls = aare.Pedestal_d if dtype == np.float64 else aare.Pedestal_f
    pedestal = cls(*SHAPE, window)
    for frame in frames:
        pedestal.push(frame)
    return pedestal


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("window", [1, 40, 160, 1000])
def test_same_numbers_as_aare(dark, window, dtype):
    # full windows (1, 40), exactly full (160) and not full (1000)
    reference = aare_pedestal(dark, window, dtype)
    ours = pedestal_from_frames(dark, window=window, dtype=dtype)
    assert ours.mean.dtype == dtype
    np.testing.assert_array_equal(ours.mean, reference.mean())
    np.testing.assert_array_equal(ours.variance, reference.variance())
    np.testing.assert_array_equal(ours.std, reference.std())
    assert np.all(ours.count == min(window, len(dark)))


def test_push_one_by_one_equals_push_frames(dark):
    one_by_one = Pedestal(SHAPE, window=50)
    for frame in dark:
        one_by_one.push(frame)
    mixed = Pedestal(SHAPE, window=50)
    mixed.push_frames(dark[:17])
    mixed.push_frames(dark[17:])
    for name in ("sum", "sum2", "mean", "count"):
        np.testing.assert_array_equal(getattr(one_by_one, name), getattr(mixed, name))


def test_plain_mode_is_mean_and_std_of_all_frames(dark):
    pedestal = pedestal_from_frames(dark, window=None)
    assert pedestal.window is None
    frames = dark.astype(np.float64)
    np.testing.assert_allclose(pedestal.mean, frames.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pedestal.std, frames.std(axis=0), rtol=1e-6)
    assert np.all(pedestal.count == len(dark))


def test_state_round_trip_and_copy(dark):
    pedestal = pedestal_from_frames(dark[:100], window=60)
    arrays = pedestal.to_arrays()
    assert set(arrays) == {"sum", "sum2", "mean", "count", "window"}
    restored = Pedestal.from_arrays(arrays)
    copy = pedestal.copy()
    pedestal.push_frames(dark[100:])
    restored.push_frames(dark[100:])
    np.testing.assert_array_equal(restored.mean, pedestal.mean)
    np.testing.assert_array_equal(restored.std, pedestal.std)
    # the copy did not move with the original
    np.testing.assert_array_equal(copy.mean, Pedestal.from_arrays(arrays).mean)
    arrays["mean"][0, 0] = -1  # to_arrays hands out copies
    assert copy.mean[0, 0] != -1


def test_empty_pedestal_and_clear(dark):
    pedestal = Pedestal(SHAPE, window=10)
    assert np.all(pedestal.variance == 0) and np.all(pedestal.std == 0)
    pedestal.push(dark[0])
    pedestal.clear()
    assert np.all(pedestal.count == 0) and np.all(pedestal.mean == 0)


def test_bad_input(dark):
    pedestal = Pedestal(SHAPE)
    with pytest.raises(DedkitError, match="23 x 31"):
        pedestal.push(dark[0, :10])
    with pytest.raises(DedkitError, match="integer"):
        pedestal.push(dark[0].astype(np.float32))
    with pytest.raises(DedkitError, match="window"):
        Pedestal(SHAPE, window=0)
    with pytest.raises(DedkitError, match="float64 or float32"):
        Pedestal(SHAPE, dtype=np.int32)
    arrays = pedestal.to_arrays()
    del arrays["count"]
    with pytest.raises(DedkitError, match="count"):
        Pedestal.from_arrays(arrays)
