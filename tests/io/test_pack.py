"""4-bit packing, byte truncation and dtype conversion."""

import numpy as np
import pytest

from dedkit.io.pack import (
    _convert_dtype_plain,
    _pack_4bit_plain,
    _unpack_nibbles_plain,
    convert_dtype,
    pack_4bit,
    packed_row_bytes,
    truncate_to_bytes,
    unpack_nibbles,
)

# values at the edges of every rule: halves, just below halves (float32 and float64),
# the 4-bit and byte limits, negatives, NaN and infinities
EDGES = [0.0, 0.5, 1.5, 2.5, 0.49999997, 0.4999999999999999, 14.5, 15.0, 15.49, 15.5, 16.0,
         -0.4, -0.5, -0.6, -1.0, 254.5, 255.5, 256.0, -129.0, 65535.4, 65535.5, 70000.0,
         np.nan, np.inf, -np.inf]  # fmt: skip


def _edge_frame(rng, dtype, ny=5, nx=9):
    """Random values of ``dtype`` with the edge values (those it can hold) mixed in."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = rng.normal(8, 30, (ny, nx))
        edges = np.array(EDGES)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, int(info.max) + 1, (ny, nx))
        edges = np.array([e for e in EDGES if np.isfinite(e) and e == int(e)])
        edges = edges[(edges >= info.min) & (edges <= info.max)]
    flat = values.ravel()
    flat[: len(edges)] = edges[: flat.size]
    with np.errstate(over="ignore"):  # 70000 is inf in float16, as it should be
        return rng.permutation(flat).reshape(ny, nx).astype(dtype)


def _same_result(fast, plain):
    assert fast.data.dtype == plain.data.dtype
    np.testing.assert_array_equal(fast.data, plain.data)
    counts = ("n_saturated", "n_negative", "n_rounded", "n_nan")
    assert [getattr(fast, c) for c in counts] == [getattr(plain, c) for c in counts]


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
    from dedkit.io.pack import convert_dtype, pack_4bit

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
    from dedkit.io.pack import convert_dtype, pack_4bit

    frame = np.ones((2, 4), np.complex64)
    with pytest.raises(DedkitError, match="complex"):
        pack_4bit(frame)
    with pytest.raises(DedkitError, match="complex"):
        convert_dtype(frame, np.uint8)


# --------------------------------------------------------------------------------------
# the numba kernels against their plain numpy versions
# --------------------------------------------------------------------------------------

DTYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.float16,
          np.float32, np.float64, np.bool_]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nx", [1, 8, 9])
@pytest.mark.parametrize("low_first", [True, False])
def test_pack_4bit_matches_plain_numpy(rng, dtype, nx, low_first):
    frame = _edge_frame(rng, dtype, nx=nx) if dtype is not np.bool_ else rng.random((5, nx)) < 0.5
    _same_result(
        pack_4bit(frame, low_first=low_first), _pack_4bit_plain(frame, low_first=low_first)
    )


@pytest.mark.parametrize("nx", [1, 2, 7, 8])
@pytest.mark.parametrize("low_first", [True, False])
def test_unpack_nibbles_matches_plain_numpy(rng, nx, low_first):
    # any byte, padding nibbles included, and rows wider than they need be
    packed = rng.integers(0, 256, (4, packed_row_bytes(nx) + 1)).astype(np.uint8)
    fast = unpack_nibbles(packed, nx, low_first=low_first)
    np.testing.assert_array_equal(fast, _unpack_nibbles_plain(packed, nx, low_first=low_first))


@pytest.mark.parametrize("low_first", [True, False])
def test_plain_pack_and_unpack_round_trip(rng, low_first):
    a = rng.integers(0, 16, (3, 11)).astype(np.uint8)
    packed = _pack_4bit_plain(a, low_first=low_first)
    assert packed.n_changed == 0
    np.testing.assert_array_equal(_unpack_nibbles_plain(packed.data, 11, low_first=low_first), a)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (np.float64, np.uint8),
        (np.float32, np.uint16),
        (np.float32, np.int16),
        (np.float16, np.uint8),
        (np.float64, np.int32),
        (np.float64, np.float32),
        (np.int32, np.uint8),
        (np.int32, np.int16),
        (np.int64, np.uint16),
        (np.uint16, np.int8),
        (np.int16, np.uint8),
    ],
)
def test_convert_dtype_matches_plain_numpy(rng, source, target):
    frame = _edge_frame(rng, source)
    if np.dtype(source) == np.float64 and np.dtype(target).kind == "f":
        frame.flat[:2] = (1e300, -1e300)  # beyond the target's range
    fast = convert_dtype(frame, target)
    plain = _convert_dtype_plain(frame, target)
    if np.dtype(target).kind == "f":  # NaN stays NaN: compare where it is, then the rest
        np.testing.assert_array_equal(np.isnan(fast.data), np.isnan(plain.data))
        fast.data[np.isnan(fast.data)] = plain.data[np.isnan(plain.data)] = 0
    _same_result(fast, plain)
    one_row = convert_dtype(frame[0], target)  # the 1-D path
    np.testing.assert_array_equal(one_row.data, fast.data[0])
