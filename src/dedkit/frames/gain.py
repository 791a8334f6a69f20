"""Gain normalisation of frames with IMOD ``clip norm`` semantics.

``output = raw x gain x scale``, plus 0.5 before truncation when the output is an integer
type. ``scale`` defaults to 16 with a float gain reference (the smallest multiplier
SerialEM applies when saving normalised frames; K3 users pass 32) and to 1 otherwise. A
gain reference 2 or 4 times smaller than the frames (e.g. a counting-mode reference for
super-resolution frames) is expanded by replication, without making the large copy.

High truncation (``clip -h v``), as IMOD's ``clipUnpack`` does it: a pixel whose value
``raw x gain x scale + offset`` exceeds ``v x scale`` is replaced by the mean raw value of
its 7x7 neighbourhood without the central 3x3 (clipped at the frame edges), leaving out
raw values above ``v``, times the pixel's own ``gain x scale`` (plus the offset); with a
low value (``clip -l w``) the replacement is ``w x gain x scale`` instead. If every
neighbour is left out the mean is 0, as in IMOD. ``-l`` alone does nothing.

4-bit packed input (MRC mode 101, IMOD's half-X bytes, SerialEMCCD TIFF) is read from the
packed bytes directly: unpacking, scaling, rounding and clipping are one fused pass over
the frame, as fast as a memory copy of the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.rotflip import check_rotflip
from dedkit.frames.rotflip import rotflip as apply_rotflip
from dedkit.io.pack import kernel_input

__all__ = [
    "GainReference",
    "NormalizedFrame",
    "OUTPUT_DTYPES",
    "default_scale",
    "prepare_gain",
    "normalize_frame",
    "check_options",
]

#: Output types by ``clip -m`` name
OUTPUT_DTYPES = {
    "byte": np.dtype(np.uint8),
    "short": np.dtype(np.int16),
    "ushort": np.dtype(np.uint16),
    "float": np.dtype(np.float32),
}


@dataclass
class GainReference:
    """A gain reference ready to apply: oriented like the frames, float32, Y up.

    Attributes
    ----------
    data : (gy, gx) ndarray of float32
    factor : int
        Frames are ``factor`` times larger in X and Y (1, 2 or 4); each gain pixel covers
        a ``factor x factor`` block of frame pixels.
    rotflip : int
        The r/f value that was applied to the file's reference.
    """

    data: np.ndarray
    factor: int = 1
    rotflip: int = 0

    @property
    def minimum(self) -> float:
        return float(self._extremes[0])

    @property
    def maximum(self) -> float:
        return float(self._extremes[1])

    def __post_init__(self):
        self._extremes = (self.data.min(), self.data.max()) if self.data.size else (0.0, 0.0)

    @property
    def frame_shape(self) -> tuple[int, int]:
        gy, gx = self.data.shape
        return gy * self.factor, gx * self.factor


def default_scale(gain) -> float:
    """``clip``'s default scale: 16 with a float gain reference, 1 otherwise."""
    if gain is None:
        return 1.0
    data = gain.data if isinstance(gain, GainReference) else np.asarray(gain)
    return 16.0 if data.dtype.kind == "f" else 1.0


def prepare_gain(
    gain: np.ndarray,
    frames,
    *,
    rotflip: int | None = None,
    name: str = "gain reference",
) -> GainReference:
    """Orient a gain reference like the frames and check that its size fits them.

    The r/f value is never assumed: a reference in the camera's orientation applied to
    frames saved with another r/f is wrong in most pixels and fits them just as well.
    Pass the stack's info (``stack.info``) to apply the r/f recorded in the frame
    titles, as ``clip norm -R -1`` and ``dedkit norm -R -1`` do, or give ``rotflip``.

    Parameters
    ----------
    gain : (gy, gx) ndarray
        The reference as read (Y up), in the camera's orientation.
    frames : StackInfo or (ny, nx)
        The frames to normalise: a stack's info (:class:`dedkit.io.stack.StackInfo`,
        or anything with ``ny``, ``nx`` and ``rotflip``), or their size.
    rotflip : int
        r/f value (0-7) to apply to the reference (``clip -R``): the r/f the frames were
        saved with. Required with a frame size (0 when the reference is already oriented
        like the frames); with a stack's info it defaults to ``info.rotflip``, the value
        in its titles, and an error is raised when the titles do not record one.
    name : str
        How to call the reference in error messages (e.g. its file name).

    Returns
    -------
    GainReference

    Raises
    ------
    TypeError
        A frame size without ``rotflip``.
    DedkitError
        A stack whose titles record no r/f without ``rotflip``; a reference that is not
        one finite 2-D image fitting the frames.
    """
    frame_shape, rotflip_value = _frames_and_rotflip(frames, rotflip)
    gain = np.asarray(gain)
    if gain.ndim == 3 and gain.shape[0] == 1:
        gain = gain[0]
    if gain.ndim != 2:
        raise DedkitError(f"{name} must be one 2-D image, got shape {gain.shape}")
    if gain.dtype.kind not in "uif":
        raise DedkitError(f"{name} has unusable data type {gain.dtype}")
    oriented = np.ascontiguousarray(apply_rotflip(gain, rotflip_value), dtype=np.float32)
    ny, nx = frame_shape
    gy, gx = oriented.shape
    for factor in (1, 2, 4):
        if gy * factor == ny and gx * factor == nx:
            if not np.all(np.isfinite(oriented)):
                raise DedkitError(f"{name} contains NaN or infinite values")
            return GainReference(oriented, factor, rotflip_value)
    hint = ""
    if (gx, gy) != (gy, gx) and any(gx * f == ny and gy * f == nx for f in (1, 2, 4)):
        hint = " (it fits if rotated by 90 degrees: check --rotflip)"
    raise DedkitError(
        f"{name} is {gx} x {gy} after r/f {rotflip_value}, which does not fit frames of "
        f"{nx} x {ny}: it must be the same size or 2 or 4 times smaller{hint}"
    )


def _frames_and_rotflip(frames, rotflip) -> tuple[tuple[int, int], int]:
    """(ny, nx) and the r/f to apply, from a stack's info or a frame size and ``rotflip``."""
    if all(hasattr(frames, a) for a in ("ny", "nx", "rotflip")):
        shape = (int(frames.ny), int(frames.nx))
        if rotflip is None:
            if frames.rotflip is None:
                where = getattr(frames, "path", None)
                raise DedkitError(
                    "the frame titles record no r/f value, so the orientation of the gain "
                    "reference is unknown; give rotflip= (0-7)",
                    path=where,
                )
            rotflip = frames.rotflip
        return shape, check_rotflip(rotflip)
    if rotflip is None:
        raise TypeError(
            "prepare_gain needs rotflip= (0-7, the r/f the frames were saved with) with a "
            "frame size; or pass the stack's info (stack.info) to use the r/f in its titles"
        )
    ny, nx = frames
    return (int(ny), int(nx)), check_rotflip(rotflip)


@dataclass
class NormalizedFrame:
    """One normalised frame and what normalising it had to change.

    Attributes
    ----------
    data : (ny, nx) ndarray of the output dtype
    n_truncated : int
        Pixels replaced by high truncation (``high``).
    n_saturated : int
        Pixels above the output type's maximum, set to it.
    n_negative : int
        Pixels below the output type's minimum, set to it.
    n_nan : int
        NaN pixels of float input written as 0 in an integer output (a float output
        keeps them).
    """

    data: np.ndarray
    n_truncated: int = 0
    n_saturated: int = 0
    n_negative: int = 0
    n_nan: int = 0


@numba.njit(inline="always")
def _raw(src, packed, y, x):
    if packed:
        # np.uint8: the kernels are typed for float input too, where this branch never runs
        b = np.uint8(src[y, x >> 1])
        return np.float32((b >> 4) if (x & 1) else (b & 15))
    return np.float32(src[y, x])


@numba.njit(nogil=True, error_model="numpy")
def _ring_mean(src, packed, y, x, ny, nx, high, fallback):
    # mean raw value of the 7x7 neighbourhood without the central 3x3, values > high left out
    total = 0.0
    count = 0
    for yy in range(max(y - 3, 0), min(y + 4, ny)):
        for xx in range(max(x - 3, 0), min(x + 4, nx)):
            if abs(yy - y) <= 1 and abs(xx - x) <= 1:
                continue
            v = _raw(src, packed, yy, xx)
            if v <= high:
                total += v
                count += 1
    if count == 0:
        return fallback
    return np.float32(total / count)


@numba.njit(nogil=True, error_model="numpy")
def _normalize_row(
    src, packed, y, nx, grow, factor, scale, offset, lo, hi, rounding, counting, check_nan, orow
):
    # The hot loop. Written out without helper calls and with only loop-invariant flags,
    # which LLVM hoists, so that it vectorises; it runs at about the speed of a memory
    # copy. Loops go over gain pixels and the factor x factor block each one covers, so a
    # replicated reference costs no division per pixel. Returns (saturated, negative,
    # NaN), counted only when ``counting`` (the caller knows when clipping cannot happen);
    # ``check_nan`` (float input, integer output) writes NaN as 0 and counts it.
    nsat = 0
    nneg = 0
    nnan = 0
    srow = src[y]
    if packed and factor == 1:
        for i in range(nx // 2):
            b = np.uint8(srow[i])
            v0 = np.float32(b & 15) * (grow[2 * i] * scale) + offset
            v1 = np.float32(b >> 4) * (grow[2 * i + 1] * scale) + offset
            if rounding:
                v0 = np.floor(v0)
                v1 = np.floor(v1)
            orow[2 * i] = min(max(v0, lo), hi)
            orow[2 * i + 1] = min(max(v1, lo), hi)
            if counting:
                nsat += (v0 > hi) + (v1 > hi)
                nneg += (v0 < lo) + (v1 < lo)
        if nx & 1:
            v = np.float32(np.uint8(srow[nx // 2]) & 15) * (grow[nx - 1] * scale) + offset
            if rounding:
                v = np.floor(v)
            orow[nx - 1] = min(max(v, lo), hi)
            nsat += v > hi
            nneg += v < lo
    elif packed:
        half = factor // 2
        for j in range(nx // factor):
            g = grow[j] * scale
            for k in range(half):
                b = np.uint8(srow[j * half + k])
                x = j * factor + 2 * k
                v0 = np.float32(b & 15) * g + offset
                v1 = np.float32(b >> 4) * g + offset
                if rounding:
                    v0 = np.floor(v0)
                    v1 = np.floor(v1)
                orow[x] = min(max(v0, lo), hi)
                orow[x + 1] = min(max(v1, lo), hi)
                if counting:
                    nsat += (v0 > hi) + (v1 > hi)
                    nneg += (v0 < lo) + (v1 < lo)
    else:
        for j in range(nx // factor):
            g = grow[j] * scale
            for k in range(factor):
                x = j * factor + k
                v = np.float32(srow[x]) * g + offset
                if rounding:
                    v = np.floor(v)
                if check_nan and v != v:
                    v = np.float32(0.0)
                    nnan += 1
                orow[x] = min(max(v, lo), hi)
                if counting:
                    nsat += v > hi
                    nneg += v < lo
    return nsat, nneg, nnan


@numba.njit(inline="always")
def _clip_flag(v, lo, hi, rounding):
    # 1 when v would be clipped at the top, -1 at the bottom, else 0
    if rounding:
        v = np.floor(v)
    return np.int64(v > hi) - np.int64(v < lo)


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _normalize_kernel(
    src,
    packed,
    nx,
    gain,
    factor,
    row_factor,
    scale,
    offset,
    use_high,
    high,
    use_low,
    low,
    lo,
    hi,
    rounding,
    counting,
    check_nan,
    out,
    counts,
):
    # counts[y]: truncated, saturated, negative, NaN.
    # Gain row y // row_factor, column x // factor (no reference: one row of ones).
    ny = out.shape[0]
    for y in numba.prange(ny):
        grow = gain[y // row_factor]
        orow = out[y]
        nsat, nneg, nnan = _normalize_row(
            src,
            packed,
            y,
            nx,
            grow,
            factor,
            scale,
            offset,
            lo,
            hi,
            rounding,
            counting,
            check_nan,
            orow,
        )
        ntrunc = 0
        if use_high:
            # rare pixels: redo them after the fast pass rather than branch in it
            for x in range(nx):
                g = grow[x // factor]
                r = _raw(src, packed, y, x)
                if r * (g * scale) + offset > high * scale:
                    ntrunc += 1
                    old_flag = _clip_flag(r * (g * scale) + offset, lo, hi, rounding)
                    if use_low:
                        r = low
                    else:
                        r = _ring_mean(src, packed, y, x, ny, nx, high, np.float32(0.0))
                    v = r * (g * scale) + offset
                    flag = _clip_flag(v, lo, hi, rounding)
                    if rounding:
                        v = np.floor(v)
                    orow[x] = min(max(v, lo), hi)
                    if counting:
                        nsat += (flag > 0) - (old_flag > 0)
                        nneg += (flag < 0) - (old_flag < 0)
        counts[y, 0] = ntrunc
        counts[y, 1] = nsat
        counts[y, 2] = nneg
        counts[y, 3] = nnan


def normalize_frame(
    frame: np.ndarray,
    gain: GainReference | None,
    *,
    scale: float | None = None,
    dtype=np.float32,
    high: float | None = None,
    low: float | None = None,
    packed_nx: int | None = None,
    out: np.ndarray | None = None,
) -> NormalizedFrame:
    """Gain-normalise one frame: ``raw x gain x scale``, rounded for integer output.

    Parameters
    ----------
    frame : (ny, nx) ndarray
        Raw counts (any integer or float type; see :func:`kernel_input`), Y up. With
        ``packed_nx``, instead the packed 4-bit rows (ny, (nx + 1) // 2) uint8, left
        pixel in the low nibble.
    gain : GainReference or None
        From :func:`prepare_gain`; None multiplies by 1 (``clip unpack`` without a
        reference: unpacking, scaling and truncation only).
    scale : float, optional
        Default :func:`default_scale` (16 with a float reference, else 1).
    dtype : dtype
        Output type: uint8, int16, uint16 or float32 (``clip -m`` byte/short/ushort/float).
        Integer outputs get +0.5 before truncation; values beyond the type's range are
        clipped and counted.
    high, low : float, optional
        ``clip -h`` / ``clip -l`` truncation (see the module notes).
    packed_nx : int, optional
        True width when ``frame`` is packed 4-bit rows.
    out : ndarray, optional
        Buffer of shape (ny, nx) and type ``dtype`` to write into.

    Returns
    -------
    NormalizedFrame
    """
    src = np.asarray(frame)
    packed = packed_nx is not None
    if packed:
        if src.dtype != np.uint8 or src.ndim != 2 or src.shape[1] < (packed_nx + 1) // 2:
            raise ValueError("packed input must be uint8 rows holding packed_nx 4-bit pixels")
        ny, nx = src.shape[0], packed_nx
    else:
        if src.ndim != 2:
            raise ValueError("normalize_frame takes one 2-D frame")
        ny, nx = src.shape
        src = kernel_input(src)
    dtype = np.dtype(dtype)
    if dtype not in OUTPUT_DTYPES.values():
        raise DedkitError(f"output type {dtype} is not one of byte, short, ushort, float")
    if gain is None:
        gain_data, factor, row_factor = np.ones((1, nx), np.float32), 1, ny
    else:
        if gain.frame_shape != (ny, nx):
            raise DedkitError(
                f"gain reference fits frames of {gain.frame_shape[1]} x {gain.frame_shape[0]}, "
                f"not {nx} x {ny}"
            )
        gain_data, factor = gain.data, gain.factor
        row_factor = factor
    if scale is None:
        scale = default_scale(gain)
    check_options(scale=scale, high=high, low=low)
    if out is None:
        out = np.empty((ny, nx), dtype)
    elif out.shape != (ny, nx) or out.dtype != dtype:
        raise ValueError("out has the wrong shape or type")
    if dtype.kind == "f":
        lo, hi, rounding, offset = -np.inf, np.inf, False, 0.0
    else:
        info = np.iinfo(dtype)
        lo, hi, rounding, offset = info.min, info.max, True, 0.5
    counting = _may_clip(src, packed, gain, scale, offset, lo, hi, high, low)
    counts = np.zeros((ny, 4), np.int64)
    _normalize_kernel(
        src,
        packed,
        nx,
        gain_data,
        factor,
        row_factor,
        np.float32(scale),
        np.float32(offset),
        high is not None,
        np.float32(high if high is not None else 0.0),
        low is not None,
        np.float32(low if low is not None else 0.0),
        np.float32(lo),
        np.float32(hi),
        rounding,
        counting,
        rounding and src.dtype.kind == "f",
        out,
        counts,
    )
    n_truncated, n_saturated, n_negative, n_nan = (int(c) for c in counts.sum(axis=0))
    return NormalizedFrame(out, n_truncated, n_saturated, n_negative, n_nan)


def check_options(*, scale=None, high=None, low=None) -> None:
    """Refuse normalisation options that would be ignored or give nonsense in silence.

    ``scale`` must be a finite positive number that float32 holds (the kernel's type);
    ``high`` and ``low`` finite (NaN compares false with everything, so ``-H nan`` would
    truncate nothing); ``low`` only together with ``high``, as in ``clip``.

    Raises
    ------
    DedkitError
    """
    # compared with float32's largest value, not cast: a cast of 1e39 warns on overflow
    f32_max = float(np.finfo(np.float32).max)
    if scale is not None and not (np.isfinite(scale) and 0 < scale <= f32_max):
        raise DedkitError(f"scale {scale!r} is not a finite positive number (float32)")
    for what, value in (("high (-H/--high)", high), ("low (-l/--low)", low)):
        if value is not None and not (np.isfinite(value) and abs(value) <= f32_max):
            raise DedkitError(f"truncation value {what} {value!r} is not a finite number")
    if low is not None and high is None:
        raise DedkitError(
            "a low truncation value (-l/--low) is used only together with a high one (-H/--high)"
        )


def _may_clip(src, packed, gain, scale, offset, lo, hi, high, low) -> bool:
    """False when no value can leave the output range, so the kernel can skip counting.

    Bounds come from the input type (15 for 4-bit data) and the reference's extremes;
    when in doubt, count.
    """
    if not np.isfinite(hi):
        return False
    if packed:
        raw_lo, raw_hi = 0.0, 15.0
    elif src.dtype.kind in "ui":
        raw_lo, raw_hi = float(np.iinfo(src.dtype).min), float(np.iinfo(src.dtype).max)
    else:
        return True
    if high is not None:
        raw_hi = max(raw_hi, float(low) if low is not None else raw_hi)
    g_lo, g_hi = (1.0, 1.0) if gain is None else (gain.minimum, gain.maximum)
    products = [r * g * scale for r in (raw_lo, raw_hi) for g in (g_lo, g_hi)]
    return min(products) + offset < lo or max(products) + offset >= hi + 1
