"""r/f values against the table in formats.md for both row orders."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.frames.rotflip import inverse_rotflip, rotflip, rotflip_shape


def test_quarter_turn_counter_clockwise_as_displayed():
    # Y up: row 0 is the bottom. A marker at the bottom-right corner moves to the top-right
    # after a counter-clockwise quarter turn.
    a = np.zeros((3, 4), int)
    a[0, 3] = 1
    b = rotflip(a, 1)
    assert b.shape == (4, 3)
    assert b[3, 2] == 1  # top (last row), right
    # the same scene with row 0 at the top (TIFF): marker at the last row, last column
    t = np.flipud(a)
    np.testing.assert_array_equal(rotflip(t, 1, y_up=False), np.flipud(b))


@pytest.mark.parametrize("value", range(8))
def test_table_of_formats_md(rng, value):
    a = rng.integers(0, 100, (3, 5))
    k = value % 4
    base = np.fliplr(a) if value >= 4 else a
    np.testing.assert_array_equal(rotflip(a, value), np.rot90(base, -k))
    np.testing.assert_array_equal(rotflip(a, value, y_up=False), np.rot90(base, k))
    # the two orders describe the same operation on the displayed image
    np.testing.assert_array_equal(
        np.flipud(rotflip(a, value)), rotflip(np.flipud(a), value, y_up=False)
    )
    np.testing.assert_array_equal(rotflip(rotflip(a, value), inverse_rotflip(value)), a)
    assert rotflip(a, value).shape == rotflip_shape(a.shape, value)


def test_stack_rotates_each_frame(rng):
    s = rng.integers(0, 9, (2, 3, 4))
    out = rotflip(s, 5)
    for i in range(2):
        np.testing.assert_array_equal(out[i], rotflip(s[i], 5))


@pytest.mark.parametrize("bad", [-1, 8, 2.5, "x", None])
def test_bad_values_refused(bad):
    with pytest.raises(DedkitError, match="r/f value"):
        rotflip(np.zeros((2, 2)), bad)


@pytest.mark.parametrize("y_up", [True, False])
def test_compose_rotflip_is_doing_both(y_up):
    """issue 13 item 5: compose_rotflip(a, b) is rotflip by a then by b, for all 64 pairs."""
    from dedkit.frames.rotflip import compose_rotflip, inverse_rotflip

    image = np.arange(12).reshape(3, 4)
    for first in range(8):
        assert compose_rotflip(first, inverse_rotflip(first)) == 0
        for then in range(8):
            both = rotflip(rotflip(image, first, y_up=y_up), then, y_up=y_up)
            np.testing.assert_array_equal(
                both, rotflip(image, compose_rotflip(first, then), y_up=y_up)
            )
