"""4-bit packing, byte truncation and dtype conversion."""

import numpy as np
import pytest

from dedkit.frames.pack import (
    convert_dtype,
    pack_4bit,
    packed_row_bytes,
    truncate_to_bytes,
    unpack_nibbles,
)


@pytest.mark.parametrize("nx", [1, 2, 7, 8])
@pytest.mark.parametrize("low_first", [True, False])
def test_round_trip_and_layout(rng, nx, low_first):
    a = rng.integers(0, 16, (3, nx)).astype(np.uint8)
    packed = pack_4bit(a, low_first=low_first)
    assert packed.data.shape == (3, packed_row_bytes(nx)) and packed.n_changed == 0
    np.testing.assert_array_equal(unpack_nibbles(packed.data, nx, low_first=low_first), a)
    first = packed.data[0, 0]
    if nx > 1:
        lo, hi = (a[0, 0], a[0, 1]) if low_first else (a[0, 1], a[0, 0])
        assert first == lo | (hi << 4)
    if nx % 2:  # the padding nibble of an odd row is 0
        last = packed.data[0, -1]
        assert (last >> 4 if low_first else last & 15) == 0


def test_pack_counts_what_does_not_fit():
    result = pack_4bit(np.array([[16.0, -1.0, 2.4, 2.6, 15.0]]))
    assert unpack_nibbles(result.data, 5).tolist() == [[15, 0, 2, 3, 15]]
    assert (result.n_saturated, result.n_negative, result.n_rounded) == (1, 1, 2)


def test_truncate_to_bytes_saturates_and_counts():
    result = truncate_to_bytes(np.array([[300, -2, 5, 255]], np.int32))
    assert result.data.tolist() == [[255, 0, 5, 255]]
    assert (result.n_saturated, result.n_negative) == (1, 1)


def test_convert_dtype_rounds_half_up_and_passes_safe_casts():
    result = convert_dtype(np.array([[0.5, 1.49, -0.5, 70000.0]], np.float32), np.uint16)
    assert result.data.tolist() == [[1, 1, 0, 65535]]
    assert (result.n_saturated, result.n_negative, result.n_rounded) == (1, 0, 3)
    same = convert_dtype(np.array([[1, 2]], np.uint8), np.uint16)
    assert same.data.dtype == np.uint16 and same.n_changed == 0
    signed = convert_dtype(np.array([[-40000, 5]], np.int32), np.int16)
    assert signed.data.tolist() == [[-32768, 5]] and signed.n_negative == 1


def test_unpack_rejects_short_rows():
    with pytest.raises(ValueError):
        unpack_nibbles(np.zeros((2, 3), np.uint8), 7)


def test_issue13_item12_pack_and_convert_count_nan():
    """issue 13 item 12: NaN is written as 0 and counted (not as a rounding)."""
    from dedkit.frames.pack import convert_dtype, pack_4bit

    frame = np.array([[1.0, np.nan, 3.0, 20.0]], np.float32)
    packed = pack_4bit(frame)
    assert (packed.n_nan, packed.n_rounded, packed.n_saturated) == (1, 0, 1)
    assert packed.data.tolist() == [[1, 3 | (15 << 4)]]
    converted = convert_dtype(frame.astype(np.float64), np.uint8)
    assert (converted.n_nan, converted.n_rounded) == (1, 0)
    assert converted.data.tolist() == [[1, 0, 3, 20]]
    # float to float keeps NaN: nothing changed, nothing counted
    assert np.isnan(convert_dtype(frame.astype(np.float64), np.float32).data[0, 1])


def test_issue13_item6_complex_frames_are_refused():
    """issue 13 item 6: complex frames hold no counts (was a numba TypingError)."""
    from dedkit.errors import DedkitError
    from dedkit.frames.pack import convert_dtype, pack_4bit

    frame = np.ones((2, 4), np.complex64)
    with pytest.raises(DedkitError, match="complex"):
        pack_4bit(frame)
    with pytest.raises(DedkitError, match="complex"):
        convert_dtype(frame, np.uint8)
