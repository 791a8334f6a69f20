"""Rotation and flip by SerialEM's r/f value (RotationAndFlip, 0-7).

The value is the counter-clockwise rotation divided by 90 (0-3) plus 4 for a flip around
the Y axis (left-right mirror) done before the rotation; IMOD's ``rotateFlipImage`` does
the same. Counter-clockwise is as the image is displayed, so the numpy rotation direction
depends on which way the rows run: with row 0 at the bottom (Y up: MRC and dedkit's own
convention) a counter-clockwise turn is ``np.rot90(a, -k)``; with row 0 at the top (TIFF,
DM, SerialEM's own buffers) it is ``np.rot90(a, k)``.
"""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError

__all__ = ["check_rotflip", "rotflip", "inverse_rotflip", "compose_rotflip", "rotflip_shape"]


def check_rotflip(value: int) -> int:
    """Return ``value`` as an int if it is a valid r/f value (0-7), else raise DedkitError."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise DedkitError(f"r/f value {value!r} is not an integer 0-7") from None
    if v != value or not 0 <= v <= 7:
        raise DedkitError(f"r/f value {value!r} is not an integer 0-7")
    return v


def rotflip(image: np.ndarray, value: int, *, y_up: bool = True) -> np.ndarray:
    """Rotate and flip an image (or each frame of a stack) by r/f value 0-7.

    Parameters
    ----------
    image : ndarray, (ny, nx) or (nz, ny, nx)
    value : int
        r/f value: counter-clockwise rotation / 90 plus 4 for a flip around Y first.
    y_up : bool
        True when row 0 is the bottom row (dedkit, MRC); False when it is the top (TIFF, DM).

    Returns
    -------
    ndarray
        A view where numpy allows one; shape (nx, ny) for odd rotations.
    """
    value = check_rotflip(value)
    a = np.asarray(image)
    axes = (a.ndim - 2, a.ndim - 1)
    if value >= 4:
        a = np.flip(a, axis=a.ndim - 1)
    k = value % 4
    return np.rot90(a, -k if y_up else k, axes=axes)


def inverse_rotflip(value: int) -> int:
    """The r/f value that undoes ``value`` (flips are their own inverse)."""
    value = check_rotflip(value)
    if value >= 4:
        return value
    return (4 - value) % 4


def compose_rotflip(first: int, then: int) -> int:
    """The one r/f value that does ``first`` and then ``then``.

    ``rotflip(rotflip(a, first), then)`` equals ``rotflip(a, compose_rotflip(first, then))``
    (for either row order). An r/f value is the rotation ``R**k`` after the flip ``F**f``
    (``value = k + 4 f``), and a flip reverses the sense of a rotation done before it
    (``F R**k = R**-k F``), so ``R**k2 F**f2 R**k1 F**f1 = R**(k2 +- k1) F**(f1 xor f2)``.
    """
    first = check_rotflip(first)
    then = check_rotflip(then)
    k1, f1 = first % 4, first // 4
    k2, f2 = then % 4, then // 4
    k = (k2 - k1 if f2 else k2 + k1) % 4
    return k + 4 * (f1 ^ f2)


def rotflip_shape(shape: tuple[int, int], value: int) -> tuple[int, int]:
    """(ny, nx) after rotflip by ``value``."""
    value = check_rotflip(value)
    ny, nx = shape
    return (nx, ny) if value % 2 else (ny, nx)
