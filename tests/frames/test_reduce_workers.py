"""frames.reduce with ``workers``: threads reduce bands of output rows, and the result is
bit-identical to one thread whatever the split."""

import numpy as np
import pytest

from dedkit.frames.reduce import FILTERS, antialias_reduce, reduce_image

SHAPES = [(64, 64), (97, 131), (50, 17), (9, 40), (200, 123)]


def image(shape, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.poisson(3.0, size=shape).astype(dtype)
    return rng.normal(10.0, 3.0, size=shape).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("factor", [1, 2, 3, 4])
@pytest.mark.parametrize("workers", [2, 3, 7])
def test_antialias_reduce_workers_bit_identical(shape, factor, workers):
    img = image(shape, seed=shape[0] * factor)
    one = antialias_reduce(img, factor, workers=1)
    many = antialias_reduce(img, factor, workers=workers)
    assert many.dtype == np.float32 and many.shape == one.shape
    np.testing.assert_array_equal(many, one)


@pytest.mark.parametrize("filter", sorted(FILTERS))
@pytest.mark.parametrize("values", ["sum", "mean"])
def test_every_filter_and_values_workers_bit_identical(filter, values):
    img = image((83, 77), seed=5, dtype=np.uint16)
    one = antialias_reduce(img, 3, filter, values=values, workers=1)
    two = antialias_reduce(img, 3, filter, values=values, workers=2)
    np.testing.assert_array_equal(two, one)


@pytest.mark.parametrize("filter", ["lanczos3", "mitchell", "bin"])
@pytest.mark.parametrize(("shape", "factor"), [((128, 96), 2), ((75, 61), 3), ((33, 64), 4)])
def test_reduce_image_workers_bit_identical(shape, factor, filter):
    img = image(shape, seed=1, dtype=np.uint8)
    one = reduce_image(img, factor, filter, workers=1)
    two = reduce_image(img, factor, filter, workers=2)
    np.testing.assert_array_equal(two, one)


def test_more_workers_than_rows():
    """More workers than output rows: each row on its own, still identical."""
    img = image((12, 300), seed=2)
    one = antialias_reduce(img, 4, workers=1)
    assert one.shape == (3, 75)
    np.testing.assert_array_equal(antialias_reduce(img, 4, workers=16), one)


def test_workers_fill_out_array():
    img = image((90, 70), seed=3, dtype=np.float64)
    want = antialias_reduce(img, 2, workers=1)
    out = np.full(want.shape, np.nan, np.float32)
    got = antialias_reduce(img, 2, out=out, workers=2)
    assert got is out
    np.testing.assert_array_equal(out, want)
    # a strided (non-contiguous) input view gives the same as its contiguous copy
    view = image((180, 70), seed=4)[::2]
    np.testing.assert_array_equal(
        antialias_reduce(view, 2, workers=2), antialias_reduce(np.ascontiguousarray(view), 2)
    )


@pytest.mark.parametrize("workers", [0, -1])
def test_nonpositive_workers_accepted(workers):
    img = image((40, 40), seed=6)
    np.testing.assert_array_equal(
        antialias_reduce(img, 2, workers=workers), antialias_reduce(img, 2)
    )
