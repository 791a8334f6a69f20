import numpy as np
import pytest

from dedkit.io.header_stats import FrameStats, frame_stats, nibble_stats
from dedkit.io.pack import pack_4bit


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float16])
def test_frame_stats_match_numpy(rng, dtype):
    a = rng.normal(5, 2, (7, 9)).astype(dtype)
    s = frame_stats(a)
    f = a.astype(float)
    assert (s.n, s.minimum, s.maximum) == (a.size, f.min(), f.max())
    assert s.mean == pytest.approx(f.mean()) and s.rms == pytest.approx(f.std())


def test_combining_stats_equals_stats_of_both(rng):
    a, b = rng.normal(size=(4, 5)), rng.normal(3, 1, size=(2, 5))
    both = frame_stats(a) + frame_stats(b)
    whole = frame_stats(np.vstack([a, b]))
    assert both.mean == pytest.approx(whole.mean) and both.rms == pytest.approx(whole.rms)
    assert FrameStats().mean == 0.0


@pytest.mark.parametrize("nx", [6, 7])
def test_nibble_stats_ignore_padding(rng, nx):
    a = rng.integers(1, 16, (3, nx)).astype(np.uint8)
    assert nibble_stats(pack_4bit(a).data, nx) == frame_stats(a)
