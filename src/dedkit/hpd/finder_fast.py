"""Fast kernels of the aare-compatible cluster finder, for a full pedestal window.

:class:`dedkit.hpd.finder.ClusterFinder` uses them when every pixel's pedestal holds
its whole window (aare's ``push_fast`` regime, where the mean is ``sum / window``): the
state after a window of dark frames. The decisions are aare's, pixel for pixel (see
:mod:`dedkit.hpd.finder`); this module makes them with little work per pixel:

- The state is aare's own: ``sum`` and ``sum2`` per pixel (float64). Exact means are
  recomputed where aare's arithmetic is reproduced (``sum / window`` with a
  multiplication and two FMAs that give the correctly rounded quotient,
  :func:`_divide`); the "surely dark" test uses int16 means kept beside the state
  (the mean rounded to a whole ADU, less a ``shift`` that puts the 16-bit window of
  :func:`value_offset` around 0: :func:`new_means`, rewritten with every update).
- The "surely dark" test runs on int16 values ``frame - mean``, saturated, sixteen
  pixels at a time: the neighbourhood's largest magnitude ``H`` and its sum ``S``
  against two whole-number thresholds per pixel, ``H <= t_high`` and ``S <= t_sum``.
  They lie below aare's ``nsigma * rms`` and ``c3 * nsigma * rms`` by the rounding of
  the means (1/2 ADU per value), the updates of the neighbours above and to the left
  (the ring holds their values from before them; an update moves a value towards 0 by
  ``1 / window`` of it) and the decay of the variance until the next refresh: the
  thresholds are refreshed every ``K`` frames from the state, and an update never
  lowers a variance by more than a factor ``1 - 1 / window``
  (``var' = (1 - 1/w) var + (1 - 1/w) (x - mean)**2 / w``). ``t_high`` is at most
  ``32767 // size``, so the sum of a neighbourhood that passes cannot wrap around. A
  pixel that clears the test is one aare updates whatever the order of the scan.
- The few others (photons and their surroundings) take aare's exact test in raster
  order, with values recomputed from the frame and the state in float64 (divisions).
- Then every pixel of the row takes aare's update at once (vector stores), and the
  pixels aare leaves alone are put back from what the exact test saved.

The kernels assume what :func:`fast_path_budget` checks before a call: finite sums
far from overflow, and no sum that can decay to a magnitude where :func:`_divide`
stops being exact within the call; and what :func:`value_offset` checks: frame values
and means within one window of 65536 ADU (means stay there: an update averages a mean
with a frame value).

Row views and the arrays handed to the exact test are borrowed (``borrowed_row``,
``borrowed_part``, ``borrowed`` of :mod:`dedkit.hpd.intrinsics`, with the LLVM
intrinsics the kernels use): a plain ``array[i]``, or an array passed to a function,
costs atomic operations on the array's reference count, and both threads would share
them.

Several cores (:func:`scan_band`): the frame is cut into row bands separated by strips
of ``size_y // 2`` rows, as in :mod:`dedkit.hpd.finder`. Each band runs on its own
thread over all the frames and also scans the strip below it, once the band below has
finished the first ``size_y // 2`` rows of the previous frame (the rows the strip
reads); the band below starts a frame once that strip is done. The threads may thus
drift up to about a frame apart, which absorbs uneven frames and short interruptions.
They wait on counters read and written with acquire/release atomics, so no scheduler
runs between frames. Every pixel sees the pedestal states of the sequential scan, so
the results are identical to it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from dedkit.hpd.intrinsics import (
    atomic_load,
    atomic_store,
    borrowed,
    borrowed_part,
    borrowed_row,
    flag_words,
    float_bits,
    fma,
    sched_yield,
    sub_saturated,
    trailing_zeros,
)

__all__ = [
    "SteadyParameters",
    "Workspace",
    "ClusterOutputs",
    "fast_path_budget",
    "steady_parameters",
    "scan_all",
    "scan_band",
    "new_workspace",
    "new_means",
    "new_thresholds",
    "value_offset",
]

# _divide is exact for magnitudes in [_DIVIDE_LOW, _DIVIDE_HIGH) and for 0 (up to the sign
# of a zero quotient, which changes no value the finder computes)
_DIVIDE_LOW = 2.0**-900
_SAFE_STATE_LIMIT = 2.0**900
# A sum only gets close to 0 by cancellation (an integer frame value against a sum of
# order 1 or more leaves at least ~2**-54) or by decaying by 1 - 1/window per frame of
# zeros. Sums below this floor are assumed to decay from it.
_CANCELLATION_FLOOR = 2.0**-60

# Relative margin of the threshold: far above the few roundings between it and aare's
# nsigma * sqrt(var) (square roots, products)
_THRESHOLD_RELATIVE = 1e-6
# Bound of |rounded mean - aare's mean| beyond the 1/2 of rounding to a whole number
# (the roundings of sum * (1 / window) and of aare's own quotient and differences)
_MEAN_SLACK = 2.0**-10
# int16 values are frame - mean in whole ADU, saturated to +-_VALUE_LIMIT
_VALUE_LIMIT = 32767
# Refresh the thresholds every K frames, K = window // _FRAMES_PER_REFRESH (1 to
# _MAX_REFRESH): the margin (1 - 1/window)**K stays above 96 %
_FRAMES_PER_REFRESH = 32
_MAX_REFRESH = 32


@numba.njit(inline="always")
def _divide(a, n, reciprocal):
    """a / n, bit for bit as the division, for 2**-900 <= |a| < 2**1000 (and a = 0, up to
    the sign of the zero).

    ``n`` is a whole number 1 <= n < 2**48 and ``reciprocal`` = 1 / n (rounded). With
    u = 2**-53: q0 = a * reciprocal has a relative error below 2u + u**2, the residual
    r0 = fma(-q0, n, a) one below u, so z = q0 + r0 * reciprocal (exact, before the
    last rounding of the fma) is within |a / n| * 2**-103 of a / n. A quotient a / n
    with a = A * 2**e (A a whole number) lies at least |a / n| * 2**-55 / n from every
    midpoint between two floats (the numerator of a / n - midpoint is a non-zero
    multiple of the midpoints' or a's last bit; a / n is never a midpoint itself: an
    odd n times a 54-bit float has 54 bits or more). For n < 2**48 no midpoint lies
    between z and a / n, so rounding z gives the rounded a / n.
    """
    q0 = a * reciprocal
    return fma(fma(-q0, n, a), reciprocal, q0)


# ~1 ms of spinning (an atomic load a few ns each) before a waiting thread yields
_SPINS_BEFORE_YIELD = 200_000


# -- parameters and checks -------------------------------------------------------------------


def fast_path_budget(total: np.ndarray, total2: np.ndarray, window: int) -> int:
    """How many frames the fast kernels may scan from this state and stay exact.

    Sums must be finite and far below overflow (an update then keeps them so, as it
    averages them towards ``window`` times the frame values), and a non-zero sum must
    stay above 2**-900 even if it decays by ``1 - 1/window`` in every frame. 0 if the
    fast kernels must not run at all.
    """
    with np.errstate(invalid="ignore"):
        for array in (total, total2):
            if not np.all(np.abs(array) < _SAFE_STATE_LIMIT):
                return 0
    floor = _CANCELLATION_FLOOR
    for array in (total, total2):
        magnitude = np.abs(array[array != 0])
        if magnitude.size:
            floor = min(floor, float(magnitude.min()))
    # log2(floor) + n log2(decay) must stay above -899
    per_frame = -math.log2(1.0 - 1.0 / window - 2.0**-50)
    return max(0, int((math.log2(floor) + 899.0) / per_frame) - 1)


def value_offset(total: np.ndarray, window: int, low: int, high: int) -> int | None:
    """The whole number ``offset`` such that frame values in [low, high] and the means
    ``sum / window`` all lie in [offset, offset + 65535], or None (no such window of
    16 bits: the fast kernels must not run).

    The int16 values of the dark test are ``frame - round(mean)`` relative to it, and
    the means stay in that window while the kernels run, as an update averages a mean
    with a frame value.
    """
    if total.size == 0:
        return int(low)
    means = total / window
    smallest, largest = float(means.min()), float(means.max())
    if not (math.isfinite(smallest) and math.isfinite(largest)):
        return None
    # rounded means, with room for the last bits of the quotients
    mean_low = math.floor(smallest + 0.5 - _MEAN_SLACK)
    mean_high = math.ceil(largest - 0.5 + _MEAN_SLACK)
    offset = min(int(low), mean_low)
    if max(int(high), mean_high) - offset > 65535:
        return None
    return offset


class SteadyParameters(NamedTuple):
    """The kernels' parameters (made by :func:`steady_parameters`).

    A NamedTuple, so that numba passes it to the kernels as one argument (a tuple of
    scalars, read field by field at no cost).
    """

    #: pedestal window (frames): aare's push_fast divides by it
    window: int
    #: threshold in units of each pixel's noise
    nsigma: float
    #: sqrt(size_x * size_y) * nsigma, the threshold of a neighbourhood's sum
    c3_nsigma: float
    #: half the cluster's height (rows above and below the pixel)
    dy: int
    #: half the cluster's width (columns left and right of the pixel)
    dx: int
    #: frames between threshold refreshes (K)
    refresh: int
    #: nsigma**2 (1 - 1e-6) (1 - 1/window)**K, the threshold's factor
    factor: float
    #: relative bound of the threshold's variance rounding, over K updates
    slack: float
    #: offset + 32768, taken from frame values and means before they are stored as
    #: int16 (see :func:`value_offset`)
    shift: int
    #: the largest int16 magnitude the dark test accepts: the sum of a neighbourhood
    #: of such values cannot wrap around
    value_cap: int
    #: (neighbours aare updates before a pixel's test) / window, the part of a value
    #: those updates may take away
    carry: float


class Workspace(NamedTuple):
    """Row buffers of one thread (made by :func:`new_workspace`)."""

    #: (size_y, nx + size_x - 1) int16: the int16 values of the rows around the scan
    #: row (a ring indexed by row % size_y), with zero margins of dx columns
    ring: np.ndarray
    #: (2, nx + size_x - 1) int16: column sums and largest magnitudes over the ring
    columns: np.ndarray
    #: (nx,) uint8: the scan row's dark (updated) flags
    updated: np.ndarray
    #: (nx,) int64: columns of the pixels the row keeps as they are
    keep_ix: np.ndarray
    #: (3, nx) float64: their sum, sum2 and int16 mean before the row's update
    keep_state: np.ndarray


class ClusterOutputs(NamedTuple):
    """The clusters found so far, in raster order (grown by the kernels as needed)."""

    #: (capacity,) int64: index of the cluster's frame in the frames scanned
    frame: np.ndarray
    #: (capacity,) int32: column of the cluster's reference pixel
    x: np.ndarray
    #: (capacity,) int32: row of the cluster's reference pixel
    y: np.ndarray
    #: (capacity, size_y, size_x): frame - pedestal of the cluster's pixels
    data: np.ndarray


def steady_parameters(window, nsigma, cluster_size, offset) -> SteadyParameters:
    """The kernels' parameters (see :class:`SteadyParameters`) for frame values and
    means in [offset, offset + 65535] (:func:`value_offset`)."""
    size_x, size_y = cluster_size
    size = size_x * size_y
    c3_nsigma = math.sqrt(size) * nsigma
    refresh = max(1, min(_MAX_REFRESH, window // _FRAMES_PER_REFRESH))
    decay = (1.0 - 1.0 / window) ** refresh * (1.0 - 1e-12)
    factor = nsigma * nsigma * (1.0 - _THRESHOLD_RELATIVE) * decay
    slack = (16.0 + 32.0 * refresh) * 2.0**-52
    dy, dx = size_y // 2, size_x // 2
    carry = (dy * size_x + dx) / window
    return SteadyParameters(
        window=int(window), nsigma=float(nsigma), c3_nsigma=c3_nsigma, dy=dy, dx=dx,
        refresh=refresh, factor=factor, slack=slack, shift=int(offset) + 32768,
        value_cap=_VALUE_LIMIT // size, carry=carry,
    )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def new_means(total, parameters):
    """The kernels' int16 means, round(sum * (1 / window)) - shift, kept with the state."""
    window, shift = parameters.window, parameters.shift
    reciprocal = 1.0 / np.float64(window)
    means = np.empty(total.shape, np.int16)
    for iy in range(total.shape[0]):
        for ix in range(total.shape[1]):
            means[iy, ix] = _rounded_mean(total[iy, ix], reciprocal, shift)
    return means


def new_thresholds(shape) -> np.ndarray:
    """Scratch for the kernels' per-pixel thresholds: (2, ny, nx) int16."""
    return np.empty((2, *shape), np.int16)


def new_workspace(nx: int, cluster_size) -> Workspace:
    """Row buffers of one thread (see :class:`Workspace`)."""
    size_x, size_y = cluster_size
    width = nx + size_x - 1
    return Workspace(
        np.zeros((size_y, width), np.int16),
        np.zeros((2, width), np.int16),
        np.zeros(nx, np.uint8),
        np.zeros(nx, np.int64),
        np.zeros((3, nx), np.float64),
    )


# -- one row ---------------------------------------------------------------------------------


# The per-row functions called once per row are inlined into _scan_rows: a call with
# its array arguments costs about as much as a short row's work


# 1.5 * 2**52: a float64 in [2**52, 2**53) has the whole numbers as its last bits
_ROUNDER = 1.5 * 2.0**52


@numba.njit(inline="always")
def _rounded_mean(total, reciprocal, shift):
    # round(total * reciprocal) - shift as int16, rounded once (to the nearest, ties to
    # even) by the fma; its last 16 bits are the whole number, in two's complement
    return np.int16(float_bits(fma(total, reciprocal, _ROUNDER - shift)))


@numba.njit(cache=True, nogil=True, inline="always")
def _refresh_thresholds(srow, s2row, t_high, t_sum, window, factor, slack, size, value_cap,
                        carry):  # fmt: skip
    # Whole-number bounds of the dark test for the next K frames: a pixel is surely dark
    # when its neighbourhood's largest |value| is at most t_high and its sum at most
    # t_sum. aare's values differ from the int16 ones by at most 1/2 + _MEAN_SLACK
    # (rounded means), less the 1/window of a value that the updates of the neighbours
    # above and to the left take away (carry). Where the variance may be <= 0, t_high
    # is -1: those pixels always take the exact test.
    reciprocal = 1.0 / np.float64(window)
    root_size = math.sqrt(np.float64(size))
    shrink = 1.0 - _THRESHOLD_RELATIVE
    error = 0.5 + _MEAN_SLACK
    cap = np.float64(value_cap)
    for ix in range(srow.shape[0]):
        m = srow[ix] * reciprocal
        q = s2row[ix] * reciprocal
        var = fma(-m, m, q) - slack * abs(q)
        # a lower bound of aare's nsigma * rms for the next K frames (np.floor, not
        # math.floor, which returns an integer and stops the loop from vectorising)
        limit = math.sqrt(factor * var) * shrink if var > 0.0 else -1.0
        high = min(max(np.floor(limit - error), -1.0), cap)
        total = np.floor(limit * root_size - size * error - carry * (high + error))
        total = min(max(total, -32767.0), 32767.0)
        t_high[ix] = np.int16(np.int32(high))
        t_sum[ix] = np.int16(np.int32(total))


@numba.njit(inline="always")
def _value(f, mean, shift):
    # frame - mean in whole ADU (mean: int16 from _rounded_mean), saturated to
    # +-_VALUE_LIMIT so that its magnitude fits an int16
    value = sub_saturated(np.int16(np.int64(f) - shift), mean)
    return value if value > -_VALUE_LIMIT else np.int16(-_VALUE_LIMIT)


@numba.njit(inline="always")
def _magnitude(a):
    # |a| of an int16 above -32768 (one vpabsw)
    return np.int16(a if a >= 0 else -a)


@numba.njit(inline="always")
def _larger(a, b):
    return a if a > b else b


@numba.njit(cache=True, nogil=True)
def _fill_row(frame, means, row, dx, shift, out):
    # int16 values of one row, 0 outside the frame
    ny, nx = frame.shape
    if row < 0 or row >= ny:
        out[:] = 0
        return
    frow = borrowed_row(frame, row)
    mrow = borrowed_row(means, row)
    inner = borrowed_part(out, dx, dx + nx)
    for ix in range(nx):
        inner[ix] = _value(frow[ix], mrow[ix], shift)


@numba.njit(cache=True, nogil=True, inline="always")
def _fill_row_columns(frame, means, iy, dx, shift, ring, columns):
    # 3-row neighbourhoods: _fill_row for row iy + 1 and, in the same pass, the column
    # sums and largest magnitudes of rows iy - 1, iy, iy + 1. The sums wrap around only
    # where a magnitude exceeds value_cap, which fails the dark test anyway.
    ny, nx = frame.shape
    below = borrowed_row(ring, (iy + 1) % 3)
    r0 = borrowed_row(ring, (iy - 1) % 3)
    r1 = borrowed_row(ring, iy % 3)
    column_sum = borrowed_row(columns, 0)
    column_max = borrowed_row(columns, 1)
    width = nx + 2 * dx
    if iy + 1 >= ny:
        below[:] = 0
        for j in range(width):
            a, b = r0[j], r1[j]
            column_sum[j] = a + b
            column_max[j] = _larger(_magnitude(a), _magnitude(b))
        return
    frow = borrowed_row(frame, iy + 1)
    mrow = borrowed_row(means, iy + 1)
    for j in range(dx):  # the zero margins
        for k in (j, width - 1 - j):
            a, b = r0[k], r1[k]
            column_sum[k] = a + b
            column_max[k] = _larger(_magnitude(a), _magnitude(b))
    r0 = borrowed_part(r0, dx, dx + nx)
    r1 = borrowed_part(r1, dx, dx + nx)
    inner = borrowed_part(below, dx, dx + nx)
    inner_sum = borrowed_part(column_sum, dx, dx + nx)
    inner_max = borrowed_part(column_max, dx, dx + nx)
    for ix in range(nx):
        c = _value(frow[ix], mrow[ix], shift)
        inner[ix] = c
        a, b = r0[ix], r1[ix]
        inner_sum[ix] = a + b + c
        inner_max[ix] = _larger(_larger(_magnitude(a), _magnitude(b)), _magnitude(c))


@numba.njit(cache=True, nogil=True)
def _columns(ring, iy, dy, dx, columns):
    # column sums and largest magnitudes of the rows iy - dy to iy + dy
    n_ring = 2 * dy + 1
    column_sum = borrowed_row(columns, 0)
    column_max = borrowed_row(columns, 1)
    column_sum[:] = 0
    column_max[:] = 0
    for k in range(n_ring):
        rr = borrowed_row(ring, (iy - dy + k) % n_ring)
        for j in range(column_sum.shape[0]):
            column_sum[j] += rr[j]
            column_max[j] = _larger(column_max[j], _magnitude(rr[j]))


@numba.njit(cache=True, nogil=True, inline="always")
def _dark_row(columns, t_high, t_sum, dx, dark):
    # Marks the row's surely dark pixels (see _refresh_thresholds) and returns whether
    # any is not
    nx = t_high.shape[0]
    column_sum = borrowed_row(columns, 0)
    column_max = borrowed_row(columns, 1)
    if dx == 1:
        s1 = borrowed_part(column_sum, 1, nx + 1)
        s2 = borrowed_part(column_sum, 2, nx + 2)
        m1 = borrowed_part(column_max, 1, nx + 1)
        m2 = borrowed_part(column_max, 2, nx + 2)
        for ix in range(nx):
            total = np.int16(column_sum[ix] + s1[ix] + s2[ix])
            high = _larger(_larger(column_max[ix], m1[ix]), m2[ix])
            dark[ix] = (high <= t_high[ix]) & (total <= t_sum[ix])
    else:
        for ix in range(nx):
            total = np.int16(0)
            high = np.int16(0)
            for c in range(2 * dx + 1):
                total = np.int16(total + column_sum[ix + c])
                high = _larger(high, column_max[ix + c])
            dark[ix] = (high <= t_high[ix]) & (total <= t_sum[ix])
    # apart: in the loops above it would make them run four lanes wide
    all_dark = np.uint8(1)
    for ix in range(nx):
        all_dark = np.uint8(all_dark & dark[ix])
    return all_dark == 0


@numba.njit(inline="always")
def _seen_value(frame, total, window_f, reciprocal, iy, ix, r, col, updated):
    # The value aare sees at (r, col) while testing pixel (iy, ix): frame - pedestal,
    # the pedestal updated for this frame in rows above and in updated pixels to the
    # left. Divisions by the window as _divide: bit for bit the same, cheaper.
    f = np.float64(frame[r, col])
    s = total[r, col]
    if r == iy and col < ix and updated[col]:
        s = s + (f - _divide(s, window_f, reciprocal))
    return f, _divide(s, window_f, reciprocal)


_SKIP, _UPDATE, _STORE = range(3)
_ALL_DARK = np.uint64(0x0101010101010101)  # eight dark flags read as one word


@numba.njit(cache=True, nogil=True, inline="always")
def _exact_row(frame, frame_index, iy, total, total2, parameters, means, updated, keep_ix,
               keep_state, out_frame, out_x, out_y, out_data, n_out):  # fmt: skip
    # aare's test, in raster order, for the row's pixels not marked dark (see
    # _exact_pixel). Returns (n_out, n_keep).
    nx = frame.shape[1]
    # the row's dark flags eight at a time: most words are all dark (skipped four at a
    # time), and the others' doubtful pixels are found from their zero bytes
    words = flag_words(updated)
    n_words = words.shape[0]
    n_keep = 0
    k = 0
    while k < n_words:
        while k + 4 <= n_words:
            if (words[k] & words[k + 1] & words[k + 2] & words[k + 3]) != _ALL_DARK:
                break
            k += 4
        if k >= n_words:
            break
        doubtful = ~words[k] & _ALL_DARK
        while doubtful != 0:
            ix = 8 * k + (trailing_zeros(doubtful) >> 3)
            doubtful &= doubtful - np.uint64(1)
            n_out, n_keep = _exact_pixel(
                frame, frame_index, iy, ix, total, total2, parameters, means, updated,
                keep_ix, keep_state, out_frame, out_x, out_y, out_data, n_out, n_keep,
            )  # fmt: skip
        k += 1
    for ix in range(8 * n_words, nx):
        if not updated[ix]:
            n_out, n_keep = _exact_pixel(
                frame, frame_index, iy, ix, total, total2, parameters, means, updated,
                keep_ix, keep_state, out_frame, out_x, out_y, out_data, n_out, n_keep,
            )  # fmt: skip
    return n_out, n_keep


@numba.njit(cache=True, nogil=True, inline="always")
def _exact_pixel(frame, frame_index, iy, ix, total, total2, parameters, means, updated, keep_ix,
                 keep_state, out_frame, out_x, out_y, out_data, n_out, n_keep):  # fmt: skip
    # aare's test of pixel (iy, ix) with float64 values from the frame and the state
    # (row iy's state is still the old one). Stores a cluster, or saves the state of a
    # pixel aare does not update (keep_*), or marks it updated. Returns (n_out, n_keep).
    ny, nx = frame.shape
    window, nsigma, c3_nsigma = parameters.window, parameters.nsigma, parameters.c3_nsigma
    dy, dx = parameters.dy, parameters.dx
    window_f = np.float64(window)
    cast = out_data.dtype.type
    reciprocal = 1.0 / window_f
    m = _divide(total[iy, ix], window_f, reciprocal)
    var = _divide(total2[iy, ix], window_f, reciprocal) - m * m
    rms = math.sqrt(var) if var >= 0.0 else np.nan
    value = np.float64(frame[iy, ix]) - m
    decision = _SKIP
    if not value < -nsigma * rms:
        nb_sum = 0.0
        high = 0.0
        for r in range(iy - dy, iy + dy + 1):
            if r < 0 or r >= ny:
                continue
            for col in range(ix - dx, ix + dx + 1):
                if col < 0 or col >= nx:
                    continue
                f, ped = _seen_value(frame, total, window_f, reciprocal, iy, ix, r, col, updated)
                v = f - ped
                nb_sum += v
                high = max(high, v)
        if high > nsigma * rms:
            decision = _STORE if value == high else _SKIP
        elif not nb_sum > c3_nsigma * rms:
            decision = _UPDATE
        else:
            decision = _STORE if value == high else _SKIP
    if decision == _UPDATE:
        updated[ix] = 1
        return n_out, n_keep
    keep_ix[n_keep] = ix
    keep_state[0, n_keep] = total[iy, ix]
    keep_state[1, n_keep] = total2[iy, ix]
    keep_state[2, n_keep] = means[iy, ix]
    n_keep += 1
    if decision == _SKIP:
        return n_out, n_keep
    out_frame[n_out] = frame_index
    out_x[n_out] = ix
    out_y[n_out] = iy
    for k in range(2 * dy + 1):
        r = iy - dy + k
        for c in range(2 * dx + 1):
            col = ix - dx + c
            if r < 0 or r >= ny or col < 0 or col >= nx:
                out_data[n_out, k, c] = 0
                continue
            _, ped = _seen_value(frame, total, window_f, reciprocal, iy, ix, r, col, updated)
            out_data[n_out, k, c] = cast(frame[r, col]) - cast(ped)
    return n_out + 1, n_keep


@numba.njit(cache=True, nogil=True, inline="always")
def _update_row(frow, srow, s2row, mrow, window, shift):
    # aare's push_fast for every pixel of the row (the pixels aare leaves alone are put
    # back after), and the int16 means. Two loops: in one, LLVM packs the means to
    # int16 sixteen at a time (four at a time beside the update), 3-4 % of the time.
    nx = frow.shape[0]
    window_f = np.float64(window)
    reciprocal = 1.0 / window_f
    for ix in range(nx):
        f = np.float64(frow[ix])
        s = srow[ix]
        s2 = s2row[ix]
        srow[ix] = s + (f - _divide(s, window_f, reciprocal))
        s2row[ix] = s2 + (f * f - _divide(s2, window_f, reciprocal))
    for ix in range(nx):
        mrow[ix] = _rounded_mean(srow[ix], reciprocal, shift)


@numba.njit(cache=True, nogil=True, inline="always")
def _restore_row(srow, s2row, mrow, keep_ix, keep_state, n_keep):
    for i in range(n_keep):
        ix = keep_ix[i]
        srow[ix] = keep_state[0, i]
        s2row[ix] = keep_state[1, i]
        mrow[ix] = np.int16(keep_state[2, i])


# -- rows, frames, bands ---------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _scan_rows(frame, frame_index, row_start, row_stop, total, total2, means, threshold,
               parameters, workspace, out_frame, out_x, out_y, out_data, n_out, progress,
               band, head_row):  # fmt: skip
    # Rows row_start to row_stop - 1 of one frame. Stops before a row when the output
    # has no room for nx more clusters and returns (next_row, n_out); a call from
    # next_row continues exactly. Once row head_row is done, progress[band] says so
    # (frames done: frame_index + 1).
    window, nsigma, c3_nsigma, dy, dx, refresh, factor, slack, shift, value_cap, carry = parameters
    ring, columns, updated, keep_ix, keep_state = workspace
    size = (2 * dy + 1) * (2 * dx + 1)
    nx = frame.shape[1]
    n_ring = 2 * dy + 1
    capacity = out_x.shape[0]
    refreshing = frame_index % refresh == 0
    # rows above hold their values after this frame's updates, rows below before: both
    # are frame - sum / window as the state stands now
    for row in range(row_start - dy, row_start + dy):
        _fill_row(frame, means, row, dx, shift, borrowed_row(ring, row % n_ring))
    high_thresholds = threshold[0]
    sum_thresholds = threshold[1]
    for iy in range(row_start, row_stop):
        if n_out + nx > capacity:
            return iy, n_out
        if dy == 1:
            _fill_row_columns(frame, means, iy, dx, shift, ring, columns)
        else:
            _fill_row(frame, means, iy + dy, dx, shift, borrowed_row(ring, (iy + dy) % n_ring))
            _columns(ring, iy, dy, dx, columns)
        t_high = borrowed_row(high_thresholds, iy)
        t_sum = borrowed_row(sum_thresholds, iy)
        srow = borrowed_row(total, iy)
        s2row = borrowed_row(total2, iy)
        mrow = borrowed_row(means, iy)
        if refreshing:
            _refresh_thresholds(
                srow, s2row, t_high, t_sum, window, factor, slack, size, value_cap, carry
            )
        n_keep = 0
        if _dark_row(columns, t_high, t_sum, dx, updated):
            n_out, n_keep = _exact_row(
                borrowed(frame), frame_index, iy, borrowed(total), borrowed(total2), parameters,
                borrowed(means), borrowed(updated),
                borrowed(keep_ix), borrowed(keep_state), borrowed(out_frame), borrowed(out_x),
                borrowed(out_y), borrowed(out_data), n_out,
            )  # fmt: skip
        _update_row(borrowed_row(frame, iy), srow, s2row, mrow, window, shift)
        _restore_row(srow, s2row, mrow, keep_ix, keep_state, n_keep)
        if iy == head_row:
            atomic_store(progress, band, frame_index + 1)
    return row_stop, n_out


@numba.njit(cache=True, nogil=True)
def _grown(out_frame, out_x, out_y, out_data, n_out):
    capacity = 2 * out_x.shape[0]
    new_frame = np.empty(capacity, out_frame.dtype)
    new_x = np.empty(capacity, out_x.dtype)
    new_y = np.empty(capacity, out_y.dtype)
    new_data = np.empty((capacity,) + out_data.shape[1:], out_data.dtype)
    new_frame[:n_out] = out_frame[:n_out]
    new_x[:n_out] = out_x[:n_out]
    new_y[:n_out] = out_y[:n_out]
    new_data[:n_out] = out_data[:n_out]
    return ClusterOutputs(new_frame, new_x, new_y, new_data)


@numba.njit(cache=True, nogil=True)
def _scan_rows_growing(frame, fi, row_start, row_stop, total, total2, means, threshold, parameters,
                       workspace, outputs, n_out, progress, band, head_row):  # fmt: skip
    # _scan_rows, growing the outputs whenever they run short
    out_frame, out_x, out_y, out_data = outputs
    row = row_start
    while True:
        row, n_out = _scan_rows(
            frame, fi, row, row_stop, total, total2, means, threshold, parameters, workspace,
            out_frame, out_x, out_y, out_data, n_out, progress, band, head_row,
        )  # fmt: skip
        if row >= row_stop:
            return ClusterOutputs(out_frame, out_x, out_y, out_data), n_out
        out_frame, out_x, out_y, out_data = _grown(out_frame, out_x, out_y, out_data, n_out)


@numba.njit(inline="always")
def _untyped_ints():
    # 0 (clusters so far), 0 (band) and -1 (no head row) as plain int64, not as numba
    # literals: a literal argument makes numba compile _scan_rows_growing and
    # _scan_rows once more for each literal (three times each), which tripled the
    # first-run compilation of this finder (issue 13 item 17); the code run is the same
    return np.int64(0), np.int64(0), np.int64(-1)


@numba.njit(cache=True, nogil=True)
def scan_all(frames, total, total2, means, threshold, parameters, workspace, outputs):
    """All frames in order, all rows: returns the grown outputs and the number of
    clusters. ``threshold``: scratch from :func:`new_thresholds`, refreshed from frame 0."""
    n_frames, ny, _ = frames.shape
    n_out, no_band, no_head = _untyped_ints()
    no_progress = np.zeros(1, np.int64)
    for fi in range(n_frames):
        outputs, n_out = _scan_rows_growing(
            frames[fi], fi, 0, ny, total, total2, means, threshold, parameters, workspace,
            outputs, n_out, no_progress, no_band, no_head,
        )  # fmt: skip
    return outputs, n_out


@numba.njit(cache=True, nogil=True)
def _wait(counters, index, target, abort):
    # spins until counters[index] >= target; False if the run was aborted meanwhile.
    # After a while (the other thread is not running: a busy machine) it yields the
    # core at each turn rather than burn it.
    spins = 0
    while atomic_load(counters, index) < target:
        if atomic_load(abort, 0) != 0:
            return False
        spins += 1
        if spins > _SPINS_BEFORE_YIELD:
            sched_yield()
    return True


@numba.njit(cache=True, nogil=True)
def scan_band(frames, band, bands, total, total2, means, threshold, parameters, workspace,
              outputs, head_done, strip_done, abort):  # fmt: skip
    """One thread's share of a banded run: band ``band`` of every frame, then the strip
    below it (all but the last band), synchronised with the neighbouring bands'
    threads through ``head_done`` (frames whose first ``dy`` rows a band has finished),
    ``strip_done`` (frames whose strip a band has finished) and ``abort`` (non-zero:
    stop). Returns the outputs, the number of clusters and whether the run went to the
    end.

    A strip reads the first ``dy`` rows of the band below as they stand before its
    frame, so it waits only until that band has finished those rows of the previous
    frame (the band below cannot go further: it waits for the strip): the two threads
    may drift up to about a frame apart, which absorbs uneven frames and interruptions.
    """
    n_frames = frames.shape[0]
    n_bands = bands.shape[0]
    dy = parameters.dy
    first, end = bands[band, 0], bands[band, 1]
    head_row = min(first + dy, end) - 1
    n_out, no_band, no_head = _untyped_ints()
    no_progress = np.zeros(1, np.int64)
    for fi in range(n_frames):
        if band > 0 and not _wait(strip_done, band - 1, fi + 1, abort):
            return outputs, n_out, False
        outputs, n_out = _scan_rows_growing(
            frames[fi], fi, first, end, total, total2, means, threshold, parameters, workspace,
            outputs, n_out, head_done, band, head_row,
        )  # fmt: skip
        if band < n_bands - 1:
            # the strip's rows below belong to the next band: it must have finished
            # them for the previous frame (and waits for this strip before this frame)
            if not _wait(head_done, band + 1, fi, abort):
                return outputs, n_out, False
            outputs, n_out = _scan_rows_growing(
                frames[fi], fi, end, bands[band + 1, 0], total, total2, means, threshold,
                parameters, workspace, outputs, n_out, no_progress, no_band, no_head,
            )  # fmt: skip
            atomic_store(strip_done, band, fi + 1)
    return outputs, n_out, True
