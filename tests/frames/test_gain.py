"""Gain normalisation with clip norm semantics."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.frames.gain import default_scale, normalize_frame, prepare_gain
from dedkit.frames.rotflip import rotflip
from dedkit.io.pack import pack_4bit


def expand(gain, factor):
    return np.repeat(np.repeat(gain, factor, 0), factor, 1)


def clip_norm(raw, gain, scale, integer):
    """The reference formula: raw x (gain x scale), + 0.5 and truncation for integers."""
    value = raw.astype(np.float32) * (gain.astype(np.float32) * np.float32(scale))
    return np.floor(value + np.float32(0.5)) if integer else value


@pytest.mark.parametrize("factor", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32])
def test_formula_and_replicated_reference(rng, factor, dtype):
    raw = rng.poisson(0.7, (8, 16)).astype(np.uint8)
    gain = rng.uniform(0.8, 1.25, (8 // factor, 16 // factor)).astype(np.float32)
    ref = prepare_gain(gain, raw.shape, rotflip=0)
    assert ref.factor == factor
    result = normalize_frame(raw, ref, scale=4, dtype=dtype)
    expected = clip_norm(raw, expand(gain, factor), 4, np.dtype(dtype).kind != "f")
    np.testing.assert_array_equal(result.data, expected.astype(dtype))
    assert result.data.dtype == dtype
    assert (result.n_saturated, result.n_negative, result.n_truncated) == (0, 0, 0)


@pytest.mark.parametrize("nx", [16, 15])
def test_packed_input_gives_the_same_result(rng, nx):
    raw = rng.integers(0, 16, (6, nx)).astype(np.uint8)
    ref = prepare_gain(rng.uniform(0.9, 1.1, (6, nx)).astype(np.float32), raw.shape, rotflip=0)
    direct = normalize_frame(raw, ref, dtype=np.uint16)
    packed = normalize_frame(pack_4bit(raw).data, ref, dtype=np.uint16, packed_nx=nx)
    np.testing.assert_array_equal(direct.data, packed.data)


def test_default_scale_is_16_with_float_reference_else_1(rng):
    raw = np.ones((2, 2), np.uint8)
    assert default_scale(None) == 1
    assert default_scale(np.ones((2, 2), np.int16)) == 1
    ref = prepare_gain(np.full((2, 2), 1.5, np.float32), (2, 2), rotflip=0)
    assert default_scale(ref) == 16
    assert normalize_frame(raw, ref, dtype=np.float32).data[0, 0] == 24.0
    assert normalize_frame(raw, None, dtype=np.float32).data[0, 0] == 1.0


def test_rounding_adds_half_then_truncates():
    raw = np.array([[1, 1, 1]], np.uint8)
    gain = np.array([[0.49, 0.5, 1.51]], np.float32)
    ref = prepare_gain(gain, raw.shape, rotflip=0)
    out = normalize_frame(raw, ref, scale=1, dtype=np.int16).data
    assert out.tolist() == [[0, 1, 2]]


def test_saturation_counted_not_hidden():
    raw = np.array([[15, 1, 0]], np.uint8)
    result = normalize_frame(raw, None, scale=20, dtype=np.uint8)
    assert result.data.tolist() == [[255, 20, 0]]
    assert result.n_saturated == 1
    negative = normalize_frame(
        raw, prepare_gain(-np.ones((1, 3), np.float32), (1, 3), rotflip=0), scale=1, dtype=np.uint16
    )
    assert negative.n_negative == 2 and negative.data.max() == 0


def test_high_truncation_uses_ring_mean_without_hot_neighbours():
    raw = np.full((9, 9), 2, np.uint8)
    raw[4, 4] = 14  # the hot pixel to replace
    raw[4, 5] = 9  # inside the central 3x3: ignored
    raw[0, 1] = 12  # in the 7x7 ring but above the limit: left out
    raw[1, 1] = 5  # in the ring
    gain = np.ones((9, 9), np.float32)
    gain[4, 4] = 2.0
    ref = prepare_gain(gain, raw.shape, rotflip=0)
    result = normalize_frame(raw, ref, scale=3, dtype=np.float32, high=10)
    ring = [
        raw[y, x]
        for y in range(1, 8)
        for x in range(1, 8)
        if max(abs(y - 4), abs(x - 4)) >= 2 and raw[y, x] <= 10
    ]
    assert len(ring) == 40
    assert result.data[4, 4] == pytest.approx(np.mean(ring) * 2.0 * 3)
    # raw x gain x 3 + 0 > 10 x 3 at (4,4) (28 x 3) and at (0,1) (12 x 3), which gets its
    # own ring mean
    assert result.n_truncated == 2
    assert result.data[4, 5] == 27.0


def test_high_compares_the_scaled_value_with_the_offset_as_imod():
    # integer output: raw x gain x scale + 0.5 > high x scale; 10 x 1 x 2 + 0.5 = 20.5 > 20
    raw = np.full((9, 9), 10, np.uint8)
    ref = prepare_gain(np.ones((9, 9), np.float32), raw.shape, rotflip=0)
    assert normalize_frame(raw, ref, scale=2, dtype=np.uint16, high=10).n_truncated == 81
    assert normalize_frame(raw, ref, scale=2, dtype=np.float32, high=10).n_truncated == 0


def test_all_neighbours_too_high_gives_zero_as_imod():
    raw = np.full((5, 5), 12, np.uint8)
    result = normalize_frame(raw, None, scale=1, dtype=np.float32, high=10)
    assert result.n_truncated == 25 and (result.data == 0).all()


def test_high_with_low_replaces_by_low_times_gain_times_scale():
    raw = np.array([[1, 12, 3]], np.uint8)
    ref = prepare_gain(np.array([[1.0, 0.5, 1.0]], np.float32), raw.shape, rotflip=0)
    result = normalize_frame(raw, ref, scale=2, dtype=np.float32, high=5, low=3)
    assert result.data.tolist() == [[2.0, 3.0, 6.0]]
    assert result.n_truncated == 1


def test_low_without_high_refused():
    with pytest.raises(DedkitError, match="only together"):
        normalize_frame(np.ones((2, 2), np.uint8), None, low=3)


def test_reference_rotflip_matches_rotating_the_frames(rng):
    raw = rng.poisson(1.0, (6, 10)).astype(np.uint8)
    gain_camera = rng.uniform(0.8, 1.2, (10, 6)).astype(np.float32)  # before r/f 1
    ref = prepare_gain(gain_camera, raw.shape, rotflip=1)
    expected = clip_norm(raw, rotflip(gain_camera, 1), 16, False)
    np.testing.assert_array_equal(normalize_frame(raw, ref).data, expected)


def test_incompatible_reference_refused_with_hint():
    with pytest.raises(DedkitError, match="2 or 4 times smaller"):
        prepare_gain(np.ones((3, 5), np.float32), (8, 16), rotflip=0)
    with pytest.raises(DedkitError, match="rotated by 90"):
        prepare_gain(np.ones((16, 8), np.float32), (8, 16), rotflip=0)
    with pytest.raises(DedkitError, match="NaN"):
        prepare_gain(np.full((2, 2), np.nan, np.float32), (2, 2), rotflip=0)
    with pytest.raises(DedkitError, match="2-D"):
        prepare_gain(np.ones((3, 2, 2), np.float32), (2, 2), rotflip=0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int8])
def test_issue13_item6_normalize_frame_takes_any_real_type(dtype):
    """issue 13 item 6: float (and other) input normalises instead of a numba TypingError."""
    raw = (np.arange(12).reshape(3, 4) % 7).astype(dtype)
    gain = np.full((3, 4), 1.5, np.float32)
    ref = prepare_gain(gain, raw.shape, rotflip=0)
    out = normalize_frame(raw, ref, scale=2, dtype=np.float32).data
    np.testing.assert_array_equal(out, raw.astype(np.float32) * 3)
    out = normalize_frame(raw, ref, scale=2, dtype=np.uint16).data
    np.testing.assert_array_equal(out, raw.astype(np.float32) * 3)


def test_issue13_item6_normalize_frame_refuses_complex():
    """issue 13 item 6: complex frames are refused with one clear line."""
    with pytest.raises(DedkitError, match="complex"):
        normalize_frame(np.ones((2, 2), np.complex64), None)


@pytest.mark.parametrize(
    "kwargs",
    [{"scale": np.nan}, {"scale": np.inf}, {"scale": 0}, {"high": np.nan}, {"low": 1.0}],
)
def test_issue13_item12_normalize_frame_refuses_options(kwargs):
    """issue 13 item 12: non-finite scale/high/low and -l without -H are refused."""
    with pytest.raises(DedkitError, match="-H|finite"):
        normalize_frame(np.ones((2, 2), np.uint8), None, **kwargs)
