"""Packing frames into fewer bits: 4-bit nibbles and bytes, with saturation counted.

Two 4-bit pixels share a byte. MRC mode 101, the older "half X size" byte form and
SerialEMCCD's packed TIFF put the left pixel in the LOW nibble; a true 4-bit TIFF
(BitsPerSample 4, FillOrder 1) puts it in the HIGH nibble. Each row is packed on its own
into ``(nx + 1) // 2`` bytes; for odd ``nx`` the last byte's second nibble is 0.

Packing never hides lost information: values above the largest representable value are
clipped to it and counted, as are negative values (clipped to 0), NaN (written as 0)
and, for float input, values that are not whole numbers (rounded half up, as ``clip``
does). Complex data is refused (:func:`kernel_input`).

The codec is part of the file formats (MRC mode 101, 4-bit TIFF) and the conversion is
what the writers do to reach their output mode, so both live in :mod:`dedkit.io`. Each
numba kernel here has a plain numpy version beside it (``_*_plain``) that states what it
computes; the tests check the kernels against them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from dedkit.errors import DedkitError

__all__ = [
    "KERNEL_INPUT_DTYPES",
    "kernel_input",
    "PackResult",
    "packed_row_bytes",
    "unpack_nibbles",
    "pack_4bit",
    "truncate_to_bytes",
    "convert_dtype",
]


@dataclass
class PackResult:
    """A packed frame and what packing had to change.

    Attributes
    ----------
    data : ndarray of uint8
        The packed frame: ``(ny, (nx + 1) // 2)`` for 4-bit, ``(ny, nx)`` for bytes.
    n_saturated : int
        Pixels above the largest value (15 or 255) that were set to it.
    n_negative : int
        Pixels below 0 that were set to 0.
    n_rounded : int
        Float pixels that were not whole numbers and were rounded.
    n_nan : int
        NaN pixels written as 0 (integer output).
    """

    data: np.ndarray
    n_saturated: int = 0
    n_negative: int = 0
    n_rounded: int = 0
    n_nan: int = 0

    @property
    def n_changed(self) -> int:
        return self.n_saturated + self.n_negative + self.n_rounded + self.n_nan


#: Input types the frame kernels (here and in :mod:`dedkit.frames.gain`, which imports
#: these two from here so that both agree) are compiled for. Others are converted to one
#: of them, frame by frame, rather than compiling (and caching) a kernel per type; the
#: kernels compute in float32 whatever the input.
KERNEL_INPUT_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.int16, np.uint16, np.float32))


def kernel_input(frame: np.ndarray) -> np.ndarray:
    """``frame`` as one of :data:`KERNEL_INPUT_DTYPES` (a copy only when it is not one).

    int8 becomes int16, bool uint8, any other integer or float type float32 (MRC modes 2
    and 12, float TIFF). Complex data (MRC mode 4) is refused: frames to normalise or
    pack hold counts, and a complex stack is not counts (a Fourier transform, a phase
    image), so no real number taken from it (magnitude, real part) would be right.

    Raises
    ------
    DedkitError
        For complex or non-numeric data.
    """
    dtype = frame.dtype
    if dtype in KERNEL_INPUT_DTYPES:
        return frame
    if dtype.kind == "c":
        raise DedkitError(
            f"complex frames ({dtype}, MRC mode 4) hold no counts to normalise or pack"
        )
    if dtype.kind == "b":
        return frame.astype(np.uint8)
    if dtype.kind == "i" and dtype.itemsize == 1:
        return frame.astype(np.int16)
    if dtype.kind in "uif":
        return frame.astype(np.float32)
    raise DedkitError(f"frames of type {dtype} hold no counts to normalise or pack")


def packed_row_bytes(nx: int) -> int:
    """Bytes one row of ``nx`` 4-bit pixels takes (rows are padded to whole bytes)."""
    return (nx + 1) // 2


@numba.njit(parallel=True, cache=True, nogil=True)
def _unpack_kernel(packed, nx, low_first, out):
    ny = packed.shape[0]
    half = nx // 2
    lo_shift = 0 if low_first else 4
    hi_shift = 4 if low_first else 0
    for y in numba.prange(ny):
        for i in range(half):
            b = packed[y, i]
            out[y, 2 * i] = (b >> lo_shift) & 15
            out[y, 2 * i + 1] = (b >> hi_shift) & 15
        if nx & 1:
            out[y, nx - 1] = (packed[y, half] >> lo_shift) & 15


def _unpack_nibbles_plain(packed: np.ndarray, nx: int, *, low_first: bool = True) -> np.ndarray:
    # plain numpy version of _unpack_kernel (the reference it is tested against)
    packed = np.asarray(packed, np.uint8)[:, : packed_row_bytes(nx)]
    low, high = packed & 15, packed >> 4
    first, second = (low, high) if low_first else (high, low)
    out = np.empty((packed.shape[0], 2 * packed.shape[1]), np.uint8)
    out[:, 0::2] = first
    out[:, 1::2] = second
    return out[:, :nx]


def unpack_nibbles(packed: np.ndarray, nx: int, *, low_first: bool = True, out=None) -> np.ndarray:
    """Unpack 4-bit pixels, two per byte, into one uint8 per pixel.

    Parameters
    ----------
    packed : (ny, nbytes) ndarray of uint8
        Packed rows; ``nbytes >= (nx + 1) // 2``.
    nx : int
        True width in pixels.
    low_first : bool
        True when the left pixel is in the low nibble (MRC mode 101, SerialEMCCD).
    out : (ny, nx) ndarray of uint8, optional
        Where to write the result.

    Returns
    -------
    (ny, nx) ndarray of uint8
    """
    packed = np.asarray(packed)
    if packed.dtype != np.uint8:
        packed = packed.view(np.uint8)
    if packed.ndim != 2 or packed.shape[1] < packed_row_bytes(nx):
        raise ValueError(f"packed rows of shape {packed.shape} cannot hold {nx} 4-bit pixels")
    if out is None:
        out = np.empty((packed.shape[0], nx), np.uint8)
    _unpack_kernel(packed, nx, low_first, out)
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _pack_kernel(values, low_first, out, counts):
    # counts[y]: saturated, negative, rounded, NaN (per row: no races)
    ny, nx = values.shape
    lo_shift = 0 if low_first else 4
    hi_shift = 4 if low_first else 0
    for y in numba.prange(ny):
        nsat = 0
        nneg = 0
        nrnd = 0
        nnan = 0
        for i in range((nx + 1) // 2):
            b = 0
            for k in range(2):
                x = 2 * i + k
                if x >= nx:
                    break
                v = values[y, x]
                r = np.floor(v + 0.5)
                if v != v:
                    # NaN: no count to keep
                    r = 0
                    nnan += 1
                elif r != v:
                    nrnd += 1
                if r > 15:
                    r = 15
                    nsat += 1
                elif r < 0:
                    r = 0
                    nneg += 1
                b |= np.uint8(r) << (lo_shift if k == 0 else hi_shift)
            out[y, i] = b
        counts[y, 0] = nsat
        counts[y, 1] = nneg
        counts[y, 2] = nrnd
        counts[y, 3] = nnan


def _round_and_count(values: np.ndarray, lo: float, hi: float, rounding: bool):
    # the per-pixel rule of _pack_kernel and _convert_kernel in plain numpy: round half up
    # (NaN to 0) when rounding, then clip to [lo, hi]; float64 throughout, as the kernels
    r = values.astype(np.float64)
    n_nan = n_rounded = 0
    if rounding:
        nan = np.isnan(r)
        rounded = np.floor(r + 0.5)
        n_nan = int(nan.sum())
        n_rounded = int(((rounded != r) & ~nan).sum())
        r = np.where(nan, 0.0, rounded)
    n_saturated = int((r > hi).sum())
    n_negative = int((r < lo).sum())
    r = np.where(r > hi, hi, np.where(r < lo, lo, r))
    return r, n_saturated, n_negative, n_rounded, n_nan


def _pack_4bit_plain(frame: np.ndarray, *, low_first: bool = True) -> PackResult:
    # plain numpy version of pack_4bit (the reference _pack_kernel is tested against)
    values = kernel_input(np.asarray(frame))
    r, *counts = _round_and_count(values, 0.0, 15.0, True)
    ny, nx = r.shape
    nibbles = np.zeros((ny, 2 * packed_row_bytes(nx)), np.uint8)
    nibbles[:, :nx] = r
    left, right = nibbles[:, 0::2], nibbles[:, 1::2]
    data = left | (right << 4) if low_first else (left << 4) | right
    return PackResult(data.astype(np.uint8), *counts)


def pack_4bit(frame: np.ndarray, *, low_first: bool = True) -> PackResult:
    """Pack a frame into 4-bit pixels, two per byte, counting what did not fit.

    Parameters
    ----------
    frame : (ny, nx) ndarray, integer or float
        Values 0-15 are stored exactly; larger values saturate at 15, negative values
        and NaN become 0 and floats are rounded half up. Each is counted in the result.
    low_first : bool
        Left pixel in the low nibble (MRC mode 101, SerialEMCCD) or the high one (TIFF).

    Returns
    -------
    PackResult
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError("pack_4bit takes one 2-D frame")
    ny, nx = frame.shape
    out = np.empty((ny, packed_row_bytes(nx)), np.uint8)
    counts = np.zeros((ny, 4), np.int64)
    _pack_kernel(np.ascontiguousarray(kernel_input(frame)), low_first, out, counts)
    return PackResult(out, *(int(c) for c in counts.sum(axis=0)))


def truncate_to_bytes(frame: np.ndarray) -> PackResult:
    """Store a frame as unsigned bytes, as SerialEMCCD packs counting-mode integers.

    Values above 255 saturate at 255, negative values and NaN become 0, floats are
    rounded half up; each is counted.
    """
    frame = np.asarray(frame)
    if frame.ndim != 2:
        raise ValueError("truncate_to_bytes takes one 2-D frame")
    return convert_dtype(frame, np.uint8)


@numba.njit(parallel=True, cache=True, nogil=True)
def _convert_kernel(values, lo, hi, rounding, out, counts):
    ny, nx = values.shape
    for y in numba.prange(ny):
        nsat = 0
        nneg = 0
        nrnd = 0
        nnan = 0
        for x in range(nx):
            v = values[y, x]
            r = v
            if rounding:
                r = np.floor(v + 0.5)
                if v != v:
                    # NaN to an integer type: no count to keep
                    r = 0
                    nnan += 1
                elif r != v:
                    nrnd += 1
            if r > hi:
                r = hi
                nsat += 1
            elif r < lo:
                r = lo
                nneg += 1
            out[y, x] = r
        counts[y, 0] = nsat
        counts[y, 1] = nneg
        counts[y, 2] = nrnd
        counts[y, 3] = nnan


def _convert_dtype_plain(frame: np.ndarray, dtype) -> PackResult:
    # plain numpy version of convert_dtype's kernel path (the reference _convert_kernel is
    # tested against); the trivial cases and refusals are convert_dtype's own
    frame = np.asarray(frame)
    dtype = np.dtype(dtype)
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    rounding = dtype.kind != "f" and frame.dtype.kind == "f"
    r, *counts = _round_and_count(frame, float(info.min), float(info.max), rounding)
    return PackResult(r.astype(dtype), *counts)


def convert_dtype(frame: np.ndarray, dtype) -> PackResult:
    """Convert a frame to another dtype the way ``clip`` writes integers, counting changes.

    Float to integer rounds half up (``floor(v + 0.5)``) and writes NaN as 0; values
    beyond the target's range are clipped to it. Conversions that cannot lose anything are
    plain casts. In the result, ``n_negative`` counts values clipped at the low end (below
    0 for unsigned types, below the minimum for signed ones). Complex frames are refused
    unless the target is their own type (see :func:`kernel_input`).
    """
    frame = np.asarray(frame)
    dtype = np.dtype(dtype)
    if frame.dtype == dtype:
        return PackResult(frame)
    if np.can_cast(frame.dtype, dtype, "safe"):
        return PackResult(frame.astype(dtype))
    if frame.dtype.kind == "c" or dtype.kind == "c":
        raise DedkitError(f"cannot convert {frame.dtype} frames to {dtype} without loss")
    if frame.dtype == np.float16:
        # numba has no float16 arithmetic; float32 holds every float16 exactly
        frame = frame.astype(np.float32)
    if dtype.kind == "f":
        info = np.finfo(dtype)
        lo, hi, rounding = float(info.min), float(info.max), False
    else:
        info = np.iinfo(dtype)
        lo, hi, rounding = float(info.min), float(info.max), frame.dtype.kind == "f"
    squeeze = frame.ndim == 1
    values = np.ascontiguousarray(frame.reshape(1, -1) if squeeze else frame)
    if values.ndim != 2:
        raise ValueError("convert_dtype takes a 1-D or 2-D frame")
    out = np.empty(values.shape, dtype)
    counts = np.zeros((values.shape[0], 4), np.int64)
    _convert_kernel(values, lo, hi, rounding, out, counts)
    return PackResult(out.reshape(frame.shape), *(int(c) for c in counts.sum(axis=0)))
