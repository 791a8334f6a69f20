"""The LLVM intrinsics and borrowed views of the fast finder kernels (no aare needed)."""

import numba
import numpy as np
import pytest

from dedkit.hpd.finder_fast import _ALL_DARK
from dedkit.hpd.intrinsics import (
    atomic_load,
    atomic_store,
    borrowed,
    borrowed_part,
    borrowed_row,
    flag_words,
    float_bits,
    fma,
    sub_saturated,
    trailing_zeros,
)


@numba.njit
def _borrowed_views_of(array, row, start, stop):
    view = borrowed_part(borrowed_row(array, row), start, stop)
    view[0] = -1  # writes reach the array
    return view.copy()


@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_borrowed_row_views_are_the_slices(dtype):
    array = np.arange(5 * 7, dtype=dtype).reshape(5, 7)
    expected = array[3, 2:6].copy()
    expected[0] = -1
    np.testing.assert_array_equal(_borrowed_views_of(array, 3, 2, 6), expected)
    assert array[3, 2] == -1 and array[3, 1] == 3 * 7 + 1


@numba.njit
def _borrowed_whole(array):
    view = borrowed(array)
    view[1, 1] = -1  # writes reach the array
    return view.copy()


def test_borrowed_whole_array_is_the_array():
    array = np.arange(4 * 5, dtype=np.float64).reshape(4, 5)
    expected = array.copy()
    expected[1, 1] = -1
    np.testing.assert_array_equal(_borrowed_whole(array), expected)
    assert array[1, 1] == -1


@numba.njit
def _doubtful_pixels(flags):
    # the pixels _exact_row visits: the zero flags, found word by word
    words = flag_words(flags)
    found = []
    for k in range(words.shape[0]):
        doubtful = ~words[k] & _ALL_DARK
        while doubtful != 0:
            found.append(8 * k + (trailing_zeros(doubtful) >> 3))
            doubtful &= doubtful - np.uint64(1)
    return words.shape[0], found


def test_flag_words_find_the_doubtful_pixels():
    flags = np.ones(29, np.uint8)  # three whole words and five flags left over
    doubtful = [0, 7, 8, 13, 14, 23]
    flags[doubtful + [26]] = 0
    n_words, found = _doubtful_pixels(flags)
    assert n_words == 3
    assert list(found) == doubtful


@numba.njit
def _arithmetic(a, b, c, x, y):
    return fma(a, b, c), sub_saturated(x, y), float_bits(a)


def test_fma_rounds_once_and_subtraction_saturates():
    from fractions import Fraction

    a, b, c = 1.0 + 2.0**-30, 1.0 - 2.0**-30, -1.0  # a * b = 1 - 2**-60, lost by a product
    fused, _, bits = _arithmetic(a, b, c, np.int16(0), np.int16(0))
    assert fused == float(Fraction(a) * Fraction(b) + Fraction(c)) == -(2.0**-60)
    assert a * b + c == 0.0
    assert bits == np.float64(a).view(np.int64)
    for x, y, expected in ((-30000, 10000, -32768), (30000, -10000, 32767), (5, 7, -2)):
        assert _arithmetic(a, b, c, np.int16(x), np.int16(y))[1] == expected


@numba.njit
def _counters(array):
    atomic_store(array, 1, atomic_load(array, 0) + 5)
    return atomic_load(array, 1)


def test_atomic_counters_read_and_write_the_array():
    array = np.array([3, 0], np.int64)
    assert _counters(array) == 8
    np.testing.assert_array_equal(array, [3, 8])
