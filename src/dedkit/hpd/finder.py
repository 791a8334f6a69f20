"""aare-compatible cluster finder: local maxima above n sigma, with pedestal tracking.

The decisions are those of PSI aare's ``ClusterFinder::find_clusters`` (aare
2025.11.21), so that on the same frames, after the same dark frames, the clusters are
identical to aare's, pixel value for pixel value. Pixels are visited row by row, column
by column, and for each pixel (row y, column x), with the pixel's noise ``rms`` and
``value = frame - pedestal``:

1. ``value < -nsigma * rms``: nothing happens (no cluster, no pedestal update);
2. over the ``cluster_size`` neighbourhood (inside the frame), ``max`` is the largest
   value, starting from 0, and ``total`` the sum of the values, added row by row;
3. ``max > nsigma * rms``: a cluster is stored if the pixel holds the maximum (ties:
   every pixel equal to the maximum stores one);
   otherwise ``total > sqrt(size_x * size_y) * nsigma * rms``: a cluster is stored if
   the pixel holds the maximum;
   otherwise the pixel is dark and its pedestal takes the frame's value with aare's
   ``push_fast``: ``sum += v - sum/window``, ``sum2 += v*v - sum2/window``,
   ``mean = sum/window``.

The pedestal is updated in place during the scan, so a pixel sees the updated pedestal
of the pixels before it (the rows above, the pixels to its left) and the old one of the
others; a stored cluster holds ``T(frame) - T(pedestal)`` for each pixel of the
neighbourhood (``T`` the cluster dtype: a float pedestal is truncated towards zero for
int32), 0 outside the frame, with the pedestal as it is at that moment. As in aare,
``push_fast`` divides by the window even while fewer samples than the window were
pushed (a pedestal of 100 dark frames with a window of 1000 is scaled down by 10 at
the first data frame): push at least ``window`` dark frames (a warning says so).

How it is fast yet identical: for each row, one vectorised pass finds the pixels that
are dark for certain (their value, neighbourhood maximum and sum clear the thresholds
by a safety margin, whichever the state of the left neighbour, which may be updated
just before); only the few others (photons and their surroundings) go through aare's
exact test, in raster order. Then the whole row takes aare's update in one vectorised
pass and the pixels that were not to be updated are put back. Thresholds are compared
squared, so the noise's square root is only taken for those few pixels. With an
incomplete pedestal window every pixel takes the exact test (slow, but still aare's
result).

Two or more cores with identical results (:meth:`ClusterFinder.find_clusters_parallel`):
the frame is cut into row bands separated by strips ``size_y // 2`` rows high. A band's
neighbourhoods reach into the strips but never into another band, so while band ``b``
scans frame ``f``, band ``b + 1`` scans frame ``f - 1`` (a wavefront over frames); a
strip is scanned alone, between the two bands' turns, when the band above has finished
frame ``f`` and the band below frame ``f - 1``. Every pixel thus sees exactly the
pedestal states the sequential scan shows it. Splitting the frames themselves between
cores cannot give aare's result: the running pedestal makes each frame depend on all
those before it (aare's own ``ClusterFinderMT`` runs independent finders with separate
pedestals, which differ from one ``ClusterFinder``).
"""

from __future__ import annotations

import math
import warnings

import llvmlite.ir as llvm_ir
import numba
import numpy as np
from numba.core import types as numba_types
from numba.extending import intrinsic

from dedkit.errors import DedkitError
from dedkit.hpd.pedestal import Pedestal
from dedkit.hpd.tables import ClusterTable

__all__ = ["ClusterFinder", "CLUSTER_SIZES", "CLUSTER_DTYPES"]

#: Cluster sizes (x, y) of aare's cluster finders
CLUSTER_SIZES = ((3, 3), (5, 5), (7, 7), (9, 9))

#: Cluster pixel types of aare's cluster finders ('i', 'f', 'd')
CLUSTER_DTYPES = (np.dtype(np.int32), np.dtype(np.float32), np.dtype(np.float64))

# Margins of the vectorised "surely dark" test. Thresholds are compared squared (no
# square root) with a relative margin far above the few roundings involved. Sums and
# maxima get an absolute margin far above two effects: the neighbourhood is summed in
# another order than aare's (a difference of at most ~1e-8 ADU for 81 values below
# 2**16), and the left neighbour's value may drop towards 0 by its own update just
# before (its value x becomes about x * (1 - 1/window), so it stays between 0 and x,
# give or take a rounding). A pixel within the margins is decided by the exact test,
# so the margins cost no accuracy.
_RELATIVE_MARGIN = 1e-9
_ABSOLUTE_MARGIN = 1e-6

# Row buffers per worker, each ``nx + 2 * dx`` long: column sums and maxima of the
# neighbourhood rows, then neighbourhood sums and maxima, then the state of the pixels
# that stay as they are (kept while the whole row is updated, then put back)
_COLUMN_SUM, _COLUMN_MAX, _TOTAL, _HIGH = range(4)
_KEEP_SUM, _KEEP_SUM2, _KEEP_MEAN, _KEEP_Q2, _KEEP_VALUE, _KEEP_COLUMN = range(4, 10)
_N_ROW_BUFFERS = 10


@intrinsic
def _fma(typingctx, a, b, c):
    # a * b + c with one rounding (LLVM's fma: the processor's FMA instruction, or an
    # exact software fallback); vectorises to vfmadd
    signature = numba_types.float64(numba_types.float64, numba_types.float64, numba_types.float64)

    def codegen(context, builder, sig, args):
        double = llvm_ir.DoubleType()
        function_type = llvm_ir.FunctionType(double, [double, double, double])
        fma = builder.module.declare_intrinsic("llvm.fma", [double], function_type)
        return builder.call(fma, args)

    return signature, codegen


# Operands of _divide whose quotient is surely correctly rounded (see _divide)
_DIVIDE_LOW = 2.0**-900
_DIVIDE_HIGH = 2.0**1000


@numba.njit(inline="always")
def _divide(a, n, reciprocal):
    """a / n, bit for bit as the division, for _DIVIDE_LOW <= |a| < _DIVIDE_HIGH.

    ``n`` is a whole number 1 <= n < 2**49 and ``reciprocal`` = 1 / n (rounded). With
    u = 2**-53: q0 = a * reciprocal has a relative error below 2u + u**2, the residual
    r0 = fma(-q0, n, a) one below u, so z = q0 + r0 * reciprocal (exact, before the
    last rounding of the fma) is within |a / n| * 2**-103 of a / n. A quotient a / n
    with a = A * 2**e (A a whole number) lies at least |a / n| * 2**-55 / n from every
    midpoint between two floats (the numerator of a / n - midpoint is a non-zero
    multiple of the midpoints' or a's last bit; a / n is never a midpoint itself: an
    odd n times a 54-bit float has 54 bits or more). For n < 2**48 no midpoint lies
    between z and a / n, so rounding z gives the rounded a / n. Outside the range of
    |a| (0, -0, subnormal results, infinities, NaN) the caller uses the division.
    """
    q0 = a * reciprocal
    return _fma(_fma(-q0, n, a), reciprocal, q0)


@numba.njit(inline="always")
def _divide_safe(a):
    # whether _divide is exact for a (False for 0, tiny, huge, infinite or NaN)
    magnitude = abs(a)
    return (magnitude >= _DIVIDE_LOW) & (magnitude < _DIVIDE_HIGH)


@numba.njit(cache=True, nogil=True)
def _fill_row(frame, mean, row, dx, out):
    # value = frame - pedestal of one row as the pedestal stands now (zeros outside).
    # Loops index views from 0, so that no index can be negative and loops vectorise.
    ny, nx = frame.shape
    if row < 0 or row >= ny:
        out[:] = 0.0
        return
    frow = frame[row]
    mrow = mean[row]
    inner = out[dx : dx + nx]
    for ix in range(nx):
        inner[ix] = frow[ix] - mrow[ix]


@numba.njit(cache=True, nogil=True)
def _pushed_mean(value, s, m, window, steady):
    # mean after aare's push_fast of value into a pixel with sum s and mean m. Steady
    # (every count == window): the cached mean is sum / window, bit for bit, which
    # saves a division.
    window_f = np.float64(window)
    if steady:
        return (s + (value - m)) / window_f
    return (s + (value - s / window_f)) / window_f


@numba.njit(cache=True, nogil=True)
def _neighbourhood_row(ring, iy, dy, dx, rowbuf):
    # Sum and maximum (from 0) of each pixel's neighbourhood, over the values as they
    # are before the row's updates: column sums first, then sums of those. The 3 and
    # 5 pixel cases are written out so that their loops vectorise in registers;
    # np.maximum (rather than a comparison) keeps LLVM from turning the maximum into
    # masked stores, which are slow on AMD processors.
    n_ring = ring.shape[0]
    width = ring.shape[1]
    nx = width - 2 * dx
    column_sum = rowbuf[_COLUMN_SUM]
    column_max = rowbuf[_COLUMN_MAX]
    total = rowbuf[_TOTAL, :nx]
    high = rowbuf[_HIGH, :nx]
    if dy == 1:
        r0 = ring[(iy - 1) % n_ring]
        r1 = ring[iy % n_ring]
        r2 = ring[(iy + 1) % n_ring]
        for j in range(width):
            a, b, c = r0[j], r1[j], r2[j]
            column_sum[j] = a + b + c
            column_max[j] = np.maximum(np.maximum(abs(a), abs(b)), abs(c))
    else:
        column_sum[:] = 0.0
        column_max[:] = 0.0
        for k in range(2 * dy + 1):
            rr = ring[(iy - dy + k) % n_ring]
            for j in range(width):
                column_sum[j] += rr[j]
                column_max[j] = np.maximum(column_max[j], abs(rr[j]))
    if dx == 1:
        return  # _dark_row sums the three columns itself, saving a pass
    total[:] = 0.0
    high[:] = 0.0
    for c in range(2 * dx + 1):
        shifted_sum = column_sum[c : c + nx]
        shifted_max = column_max[c : c + nx]
        for ix in range(nx):
            total[ix] += shifted_sum[ix]
            high[ix] = np.maximum(high[ix], shifted_max[ix])


@numba.njit(inline="always")
def _is_dark(left, total, high, var, limits):
    # Surely dark: a negative variance (aare's noise is then NaN and every test fails,
    # so the pixel is updated), or each threshold cleared by the margins. ``high`` is
    # the largest magnitude in the neighbourhood, so that one test bounds both the
    # pixel's value from below and aare's maximum from above. The left neighbour's
    # update may raise the sum by up to -left (when left is negative). A NaN among
    # the values makes the sum NaN, and the pixel is not surely dark.
    nsigma2, c3_nsigma2 = limits
    top = high + _ABSOLUTE_MARGIN
    spread = total + max(-left, 0.0) + _ABSOLUTE_MARGIN
    limit = var * nsigma2
    not_photon = top * top < limit
    not_spread = (spread <= 0.0) | (spread * spread < var * c3_nsigma2)
    return (var < 0.0) | (not_photon & not_spread)


@numba.njit(cache=True, nogil=True)
def _dark_row(centre, rowbuf, mrow, qrow, dx, limits, updated):
    # Marks the pixels that are surely dark and returns how many are not. Only in the
    # steady state, where an update moves a value towards 0 (see _ABSOLUTE_MARGIN).
    nx = mrow.shape[0]
    left = centre[dx - 1 : dx - 1 + nx]
    dark = updated[dx : dx + nx]
    n_unsure = 0
    if dx == 1:
        column_sum = rowbuf[_COLUMN_SUM]
        column_max = rowbuf[_COLUMN_MAX]
        s1 = column_sum[1 : nx + 1]
        s2 = column_sum[2 : nx + 2]
        m1 = column_max[1 : nx + 1]
        m2 = column_max[2 : nx + 2]
        for ix in range(nx):
            m = mrow[ix]
            var = qrow[ix] - m * m
            total = column_sum[ix] + s1[ix] + s2[ix]
            # plain comparisons (vmaxpd): a NaN they drop is caught by the sum
            high = column_max[ix]
            high = m1[ix] if m1[ix] > high else high
            high = m2[ix] if m2[ix] > high else high
            is_dark = _is_dark(left[ix], total, high, var, limits)
            dark[ix] = is_dark
            n_unsure += not is_dark
    else:
        total = rowbuf[_TOTAL]
        high = rowbuf[_HIGH]
        for ix in range(nx):
            m = mrow[ix]
            var = qrow[ix] - m * m
            is_dark = _is_dark(left[ix], total[ix], high[ix], var, limits)
            dark[ix] = is_dark
            n_unsure += not is_dark
    return n_unsure


_SKIP, _UPDATE, _STORE = range(3)


@numba.njit(cache=True, nogil=True)
def _aare_decision(frame, iy, ix, total, mean, q2, count, window, steady, nsigma,
                   c3_nsigma, dy, dx, ring, updated):  # fmt: skip
    # aare's test for pixel (iy, ix), with the values it sees there: rows above after
    # this frame's updates, the pixels to the left after theirs (computed here, the
    # row's pedestal being still the old one), the others before.
    n_ring = ring.shape[0]
    m = mean[iy, ix]
    var = 0.0 if count[iy, ix] == 0 else q2[iy, ix] - m * m
    rms = math.sqrt(var) if var >= 0.0 else np.nan
    value = ring[iy % n_ring, ix + dx]
    if value < -nsigma * rms:
        return _SKIP
    nb_sum = 0.0
    high = 0.0
    for k in range(2 * dy + 1):
        rr = ring[(iy - dy + k) % n_ring]
        for c in range(-dx, dx + 1):
            v = rr[ix + dx + c]
            col = ix + c
            if k == dy and c < 0 and col >= 0 and updated[col + dx]:
                f = np.float64(frame[iy, col])
                v = f - _pushed_mean(f, total[iy, col], mean[iy, col], window, steady)
            nb_sum += v
            high = max(high, v)
    if high > nsigma * rms:
        if value < high:
            return _SKIP
    elif not nb_sum > c3_nsigma * rms:
        return _UPDATE
    return _STORE if value == high else _SKIP


@numba.njit(cache=True, nogil=True)
def _exact_row(
    frame, frame_index, iy, total, total2, mean, q2, count, window, steady, nsigma,
    c3_nsigma, dy, dx, ring, rowbuf, updated, out_frame, out_x, out_y, out_data, n_out,
):  # fmt: skip
    # aare's test, in raster order, for the pixels of row iy not marked dark. Stores
    # their clusters and returns the new number of clusters and the number of pixels
    # kept as they are, whose state is saved in rowbuf for _restore_row.
    ny, nx = frame.shape
    n_ring = ring.shape[0]
    cast = out_data.dtype.type
    n_keep = 0
    for ix in range(nx):
        if updated[ix + dx]:
            continue
        decision = _aare_decision(
            frame, iy, ix, total, mean, q2, count, window, steady, nsigma, c3_nsigma,
            dy, dx, ring, updated,
        )  # fmt: skip
        if decision == _UPDATE:
            updated[ix + dx] = 1
            continue
        rowbuf[_KEEP_COLUMN, n_keep] = ix
        rowbuf[_KEEP_SUM, n_keep] = total[iy, ix]
        rowbuf[_KEEP_SUM2, n_keep] = total2[iy, ix]
        rowbuf[_KEEP_MEAN, n_keep] = mean[iy, ix]
        rowbuf[_KEEP_Q2, n_keep] = q2[iy, ix]
        rowbuf[_KEEP_VALUE, n_keep] = ring[iy % n_ring, ix + dx]
        n_keep += 1
        if decision == _SKIP:
            continue
        out_frame[n_out] = frame_index
        out_x[n_out] = ix
        out_y[n_out] = iy
        for k in range(2 * dy + 1):
            r = iy - dy + k
            for c in range(-dx, dx + 1):
                col = ix + c
                if r < 0 or r >= ny or col < 0 or col >= nx:
                    out_data[n_out, k, c + dx] = 0
                    continue
                ped = mean[r, col]
                if r == iy and c < 0 and updated[col + dx]:
                    ped = _pushed_mean(
                        np.float64(frame[r, col]), total[r, col], ped, window, steady
                    )
                out_data[n_out, k, c + dx] = cast(frame[r, col]) - cast(ped)
        n_out += 1
    return n_out, n_keep


@numba.njit(cache=True, nogil=True)
def _commit_row(frow, srow, s2row, mrow, qrow, crow, centre, window, steady, dx):
    # aare's push_fast for the whole row (the pixels that stay are put back after):
    # plain stores, which vectorise, where choosing per pixel would make LLVM emit
    # masked stores, slow on AMD processors. The row's values become those after the
    # update. Steady: sum / window and sum2 / window are the cached mean and q2, which
    # saves two divisions.
    nx = frow.shape[0]
    window_f = np.float64(window)
    value_row = centre[dx : dx + nx]
    if steady:
        # divisions by the window as multiplications and FMAs (_divide), checked
        reciprocal = 1.0 / window_f
        n_unsafe = 0
        for ix in range(nx):
            value = np.float64(frow[ix])
            new_sum = srow[ix] + (value - mrow[ix])
            new_sum2 = s2row[ix] + (value * value - qrow[ix])
            new_mean = _divide(new_sum, window_f, reciprocal)
            srow[ix] = new_sum
            s2row[ix] = new_sum2
            mrow[ix] = new_mean
            qrow[ix] = _divide(new_sum2, window_f, reciprocal)
            value_row[ix] = value - new_mean
            n_unsafe += not (_divide_safe(new_sum) & _divide_safe(new_sum2))
        if n_unsafe > 0:
            # some sum is 0, tiny, huge or not finite: the row again, with divisions
            for ix in range(nx):
                new_mean = srow[ix] / window_f
                mrow[ix] = new_mean
                qrow[ix] = s2row[ix] / window_f
                value_row[ix] = np.float64(frow[ix]) - new_mean
    else:
        for ix in range(nx):
            value = np.float64(frow[ix])
            s = srow[ix]
            s2 = s2row[ix]
            new_sum = s + (value - s / window_f)
            new_sum2 = s2 + (value * value - s2 / window_f)
            new_mean = new_sum / window_f
            c = crow[ix]
            srow[ix] = new_sum
            s2row[ix] = new_sum2
            mrow[ix] = new_mean
            qrow[ix] = new_sum2 / np.float64(c) if c > 0 else 0.0
            value_row[ix] = value - new_mean


@numba.njit(cache=True, nogil=True)
def _restore_row(srow, s2row, mrow, qrow, centre, rowbuf, n_keep, dx):
    # puts back the state of the pixels that were not updated
    for i in range(n_keep):
        ix = int(rowbuf[_KEEP_COLUMN, i])
        srow[ix] = rowbuf[_KEEP_SUM, i]
        s2row[ix] = rowbuf[_KEEP_SUM2, i]
        mrow[ix] = rowbuf[_KEEP_MEAN, i]
        qrow[ix] = rowbuf[_KEEP_Q2, i]
        centre[ix + dx] = rowbuf[_KEEP_VALUE, i]


@numba.njit(cache=True, nogil=True)
def _scan_rows(
    frame, frame_index, row_start, row_stop, total, total2, mean, q2, count, window,
    steady, nsigma, c3_nsigma, dy, dx, ring, rowbuf, updated, out_frame, out_x, out_y,
    out_data, n_out,
):  # fmt: skip
    """Scan rows ``row_start`` to ``row_stop - 1`` of one frame; see the module docstring.

    Stops before a row when the output has no room for ``nx`` more clusters (a row's
    most) and returns ``(next_row, n_out)``; the state is then that of a scan stopped
    between two rows, and calling again from ``next_row`` continues it exactly.
    """
    nx = frame.shape[1]
    n_ring = ring.shape[0]
    capacity = out_x.shape[0]
    limits = (
        nsigma * nsigma * (1.0 - _RELATIVE_MARGIN),
        c3_nsigma * c3_nsigma * (1.0 - _RELATIVE_MARGIN),
    )
    updated[:] = 0

    # Rows above hold their values after this frame's updates, rows below before: both
    # are simply frame - pedestal as the pedestal stands now.
    for row in range(row_start - dy, row_start + dy):
        _fill_row(frame, mean, row, dx, ring[row % n_ring])

    for iy in range(row_start, row_stop):
        if n_out + nx > capacity:
            return iy, n_out
        _fill_row(frame, mean, iy + dy, dx, ring[(iy + dy) % n_ring])
        centre = ring[iy % n_ring]
        _neighbourhood_row(ring, iy, dy, dx, rowbuf)
        if steady:
            n_unsure = _dark_row(centre, rowbuf, mean[iy], q2[iy], dx, limits, updated)
        else:
            # an incomplete window: aare's update rescales the pedestal, which the
            # margins do not bound, so every pixel takes the exact test
            updated[:] = 0
            n_unsure = nx
        n_keep = 0
        if n_unsure > 0:
            n_out, n_keep = _exact_row(
                frame, frame_index, iy, total, total2, mean, q2, count, window, steady,
                nsigma, c3_nsigma, dy, dx, ring, rowbuf, updated, out_frame, out_x, out_y,
                out_data, n_out,
            )  # fmt: skip
        _commit_row(
            frame[iy], total[iy], total2[iy], mean[iy], q2[iy], count[iy], centre, window,
            steady, dx,
        )  # fmt: skip
        _restore_row(total[iy], total2[iy], mean[iy], q2[iy], centre, rowbuf, n_keep, dx)
    return row_stop, n_out


@numba.njit(cache=True, nogil=True)
def _find_sequential(
    frames,
    frame_start,
    row_start,
    total,
    total2,
    mean,
    q2,
    count,
    window,
    steady,
    nsigma,
    c3_nsigma,
    dy,
    dx,
    ring,
    rowbuf,
    updated,
    out_frame,
    out_x,
    out_y,
    out_data,
    n_out,
):
    # All frames in order in one call; returns where it stopped for lack of output room
    # (frame index, row) and the number of clusters, or (n_frames, 0, n) when done.
    n_frames, ny, _ = frames.shape
    for fi in range(frame_start, n_frames):
        row, n_out = _scan_rows(
            frames[fi], fi, row_start, ny, total, total2, mean, q2, count, window,
            steady, nsigma, c3_nsigma, dy, dx, ring, rowbuf, updated,
            out_frame, out_x, out_y, out_data, n_out,
        )  # fmt: skip
        if row < ny:
            return fi, row, n_out
        row_start = 0
    return n_frames, 0, n_out


@numba.njit(cache=True, nogil=True, parallel=True)
def _find_banded(
    frames,
    step_start,
    bands,
    total,
    total2,
    mean,
    q2,
    count,
    window,
    steady,
    nsigma,
    c3_nsigma,
    dy,
    dx,
    ring,
    rowbuf,
    updated,
    out_frame,
    out_x,
    out_y,
    out_data,
    n_out,
):
    # The wavefront of the module docstring: at step t, strip b (between bands b and
    # b + 1, worker slot n_bands) scans frame t - b - 1 alone, then band b scans frame
    # t - b in parallel with the others. ``bands[b]`` = (first row, end row) of band b;
    # strip b spans bands[b, 1] to bands[b + 1, 0]. Returns the step it stopped at (for
    # lack of room: each slot must hold a whole band's or all strips' worst case).
    n_frames, ny, nx = frames.shape
    n_bands = bands.shape[0]
    capacity = out_x.shape[1]
    strip_rows = ny - np.sum(bands[:, 1] - bands[:, 0])
    n_steps = n_frames + n_bands - 1
    for t in range(step_start, n_steps):
        if n_out[n_bands] + strip_rows * nx > capacity:
            return t
        for b in range(n_bands):
            if n_out[b] + (bands[b, 1] - bands[b, 0]) * nx > capacity:
                return t
        for b in range(n_bands - 1):
            fi = t - b - 1
            if 0 <= fi < n_frames:
                _, n_out[n_bands] = _scan_rows(
                    frames[fi], fi, bands[b, 1], bands[b + 1, 0], total, total2, mean,
                    q2, count, window, steady, nsigma, c3_nsigma, dy, dx,
                    ring[n_bands], rowbuf[n_bands], updated[n_bands], out_frame[n_bands],
                    out_x[n_bands], out_y[n_bands], out_data[n_bands], n_out[n_bands],
                )  # fmt: skip
        for b in numba.prange(n_bands):
            fi = t - b
            if 0 <= fi < n_frames:
                _, n_out[b] = _scan_rows(
                    frames[fi], fi, bands[b, 0], bands[b, 1], total, total2, mean, q2,
                    count, window, steady, nsigma, c3_nsigma, dy, dx, ring[b],
                    rowbuf[b], updated[b], out_frame[b], out_x[b], out_y[b],
                    out_data[b], n_out[b],
                )  # fmt: skip
    return n_steps


def _band_rows(ny: int, n_bands: int, dy: int) -> np.ndarray:
    # (first row, end row) of each band: equal shares of the rows left after the
    # n_bands - 1 strips of dy rows; fewer bands if the frame is too short for them
    n_bands = max(1, min(n_bands, (ny + dy) // (dy + 1)))
    band_total = ny - (n_bands - 1) * dy
    sizes = np.full(n_bands, band_total // n_bands)
    sizes[: band_total % n_bands] += 1
    bands = np.empty((n_bands, 2), np.int64)
    row = 0
    for b, size in enumerate(sizes):
        bands[b] = row, row + size
        row += size + dy
    return bands


class ClusterFinder:
    """Find clusters as aare's ``ClusterFinder`` does, tracking the pedestal.

    Parameters
    ----------
    shape : (ny, nx)
        Frame shape (rows, columns).
    cluster_size : (size_x, size_y)
        Neighbourhood and stored cluster: (3, 3), (5, 5), (7, 7) or (9, 9).
    nsigma : float
        Threshold in units of each pixel's noise.
    window : int
        Pedestal moving-window length in frames (aare's cluster finder uses 1000).
    dtype : int32, float32 or float64
        Type of the stored pixel values (aare's ``Cluster3x3i``, ``f``, ``d``).

    Notes
    -----
    The pedestal is float64, as in aare's Python cluster finders. Frames are raw
    integer ADU (uint16 for MÖNCH, gain bits masked off for Jungfrau).
    """

    def __init__(
        self,
        shape,
        cluster_size=(3, 3),
        nsigma: float = 5.0,
        window: int = 1000,
        dtype=np.int32,
    ):
        self._pedestal = Pedestal(shape, window, np.float64)
        if self._pedestal.window is None:
            raise DedkitError("the cluster finder needs a pedestal window (frames)")
        cluster_size = tuple(int(n) for n in cluster_size)
        if cluster_size not in CLUSTER_SIZES:
            sizes = ", ".join(f"{x}x{y}" for x, y in CLUSTER_SIZES)
            raise DedkitError(f"cluster size must be one of {sizes}, got {cluster_size}")
        self.cluster_size = cluster_size
        self.dtype = np.dtype(dtype)
        if self.dtype not in CLUSTER_DTYPES:
            raise DedkitError(f"cluster dtype must be int32, float32 or float64, not {dtype}")
        self.nsigma = float(nsigma)
        if not np.isfinite(self.nsigma) or self.nsigma <= 0:
            raise DedkitError(f"nsigma must be a positive number, got {nsigma}")
        self._state_changed()

    # -- pedestal ------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        return self._pedestal.shape

    @property
    def window(self) -> int:
        return self._pedestal.window

    @property
    def pedestal(self) -> Pedestal:
        """A copy of the current pedestal state (hand it to the next chunk's finder)."""
        return self._pedestal.copy()

    @pedestal.setter
    def pedestal(self, pedestal: Pedestal) -> None:
        if pedestal.shape != self.shape:
            raise DedkitError(
                f"pedestal of {pedestal.shape[0]} x {pedestal.shape[1]} pixels does not "
                f"fit frames of {self.shape[0]} x {self.shape[1]}"
            )
        state = pedestal.to_arrays()
        if pedestal.window is None:
            # A plain pedestal seeds a full moving window with its mean and mean square.
            with np.errstate(invalid="ignore", divide="ignore"):
                n = np.maximum(state["count"], 1).astype(np.float64)
                state["sum"] = state["mean"].astype(np.float64) * self.window
                state["sum2"] = state["sum2"] / n * self.window
            state["mean"] = state["sum"] / self.window
            state["count"] = np.full(self.shape, self.window, np.uint32)
            state["window"] = np.int64(self.window)
        elif pedestal.window != self.window:
            raise DedkitError(
                f"pedestal window of {pedestal.window} frames differs from the cluster "
                f"finder's {self.window}"
            )
        for name in ("sum", "sum2", "mean"):
            state[name] = state[name].astype(np.float64)
        self._pedestal = Pedestal.from_arrays(state)
        self._state_changed()

    @property
    def noise(self) -> np.ndarray:
        """(ny, nx) float64: each pixel's noise (ADU)."""
        return self._pedestal.std

    def push_pedestal_frame(self, frame: np.ndarray) -> None:
        """Add one dark frame to the pedestal (aare ``push_pedestal_frame``)."""
        self._pedestal.push(frame)
        self._state_changed()

    def push_pedestal_frames(self, frames: np.ndarray) -> None:
        """Add dark frames in order (the same as pushing them one by one)."""
        self._pedestal.push_frames(frames)
        self._state_changed()

    def clear_pedestal(self) -> None:
        self._pedestal.clear()
        self._state_changed()

    def _state_changed(self) -> None:
        # The kernels work on the pedestal's own arrays, in place, plus sum2 / count.
        p = self._pedestal
        self._arrays = (p._sum, p._sum2, p._mean, p._count)
        with np.errstate(invalid="ignore", divide="ignore"):
            self._q2 = np.where(p._count > 0, p._sum2 / np.maximum(p._count, 1), 0.0)
        # Steady state: the cached mean and q2 are sum / window and sum2 / window, which
        # lets the kernels skip two divisions per pixel.
        self._steady = bool(
            np.all(p._count == self.window) and np.array_equal(p._mean, p._sum / self.window)
        )
        self._incomplete = bool(np.any(p._count < self.window))

    # -- finding -------------------------------------------------------------------------

    def _check_frames(self, frames: np.ndarray, ndim: int) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != ndim or frames.shape[-2:] != self.shape:
            what = "a frame" if ndim == 2 else "a stack of frames"
            raise DedkitError(
                f"cluster finder needs {what} of {self.shape[0]} x {self.shape[1]} "
                f"pixels (rows x columns), got shape {frames.shape}"
            )
        if frames.dtype.kind not in "ui" or frames.dtype.itemsize > 4:
            raise DedkitError(f"frames must be raw integer ADU, got {frames.dtype}")
        if self._incomplete:
            warnings.warn(
                f"the pedestal holds fewer than its window of {self.window} frames in "
                "some pixels: like aare, tracking then scales their pedestal down; "
                "push at least a window of dark frames first",
                stacklevel=3,
            )
        return np.ascontiguousarray(frames)

    def _kernel_parameters(self):
        size_x, size_y = self.cluster_size
        c3_nsigma = math.sqrt(size_x * size_y) * self.nsigma
        return (self.window, self._steady, self.nsigma, c3_nsigma, size_y // 2, size_x // 2)

    def _workspace(self, n_workers: int):
        size_x, size_y = self.cluster_size
        nx = self.shape[1]
        ring = np.zeros((n_workers, size_y, nx + size_x - 1))
        rowbuf = np.zeros((n_workers, _N_ROW_BUFFERS, nx + size_x - 1))
        updated = np.zeros((n_workers, nx + size_x - 1), np.uint8)
        return ring, rowbuf, updated

    def _outputs(self, n_workers: int, capacity: int):
        size_x, size_y = self.cluster_size
        return (
            np.empty((n_workers, capacity), np.int64),
            np.empty((n_workers, capacity), np.int32),
            np.empty((n_workers, capacity), np.int32),
            np.empty((n_workers, capacity, size_y, size_x), self.dtype),
        )

    @staticmethod
    def _grown(outputs, n_out, capacity):
        grown = []
        for array in outputs:
            new = np.empty((array.shape[0], capacity, *array.shape[2:]), array.dtype)
            for w, n in enumerate(n_out):
                new[w, :n] = array[w, :n]
            grown.append(new)
        return tuple(grown)

    def _table(self, frame_numbers, pieces) -> ClusterTable:
        # pieces: (frame index, x, y, data) arrays of the workers, joined in raster
        # order (frame, row, column), which is the order aare emits
        frame_index = np.concatenate([p[0] for p in pieces])
        x = np.concatenate([p[1] for p in pieces])
        y = np.concatenate([p[2] for p in pieces])
        data = np.concatenate([p[3] for p in pieces])
        if len(pieces) > 1:
            order = np.lexsort((x, y, frame_index))
            frame_index, x, y, data = frame_index[order], x[order], y[order], data[order]
        return ClusterTable(frame_numbers[frame_index], x, y, data)

    @staticmethod
    def _frame_numbers(frame_numbers, n_frames: int) -> np.ndarray:
        if frame_numbers is None:
            return np.arange(n_frames, dtype=np.int64)
        frame_numbers = np.asarray(frame_numbers, dtype=np.int64).reshape(-1)
        if len(frame_numbers) != n_frames:
            raise DedkitError(f"{len(frame_numbers)} frame numbers given for {n_frames} frames")
        return frame_numbers

    def find_clusters(self, frame: np.ndarray, frame_number: int = 0) -> ClusterTable:
        """Clusters of one frame, updating the pedestal (aare ``find_clusters``).

        Parameters
        ----------
        frame : (ny, nx) integer ndarray
        frame_number : int
            Stored in the table's ``frame`` column.

        Returns
        -------
        ClusterTable
            In aare's order (row by row, column by column of the reference pixel).
        """
        frame = self._check_frames(frame, 2)
        return self._find_in_order(frame[np.newaxis], np.array([frame_number], np.int64))

    def find_clusters_in_frames(self, frames: np.ndarray, frame_numbers=None) -> ClusterTable:
        """Clusters of frames, in order, on one core, in one compiled call.

        The same as :meth:`find_clusters` on each frame in turn.

        Parameters
        ----------
        frames : (n, ny, nx) integer ndarray
        frame_numbers : (n,) ints, optional
            Default: 0 to n - 1.

        Returns
        -------
        ClusterTable
        """
        frames = self._check_frames(frames, 3)
        return self._find_in_order(frames, self._frame_numbers(frame_numbers, len(frames)))

    def _find_in_order(self, frames: np.ndarray, frame_numbers: np.ndarray) -> ClusterTable:
        nx = self.shape[1]
        ring, rowbuf, updated = self._workspace(1)
        capacity = max(4 * nx, 32 * len(frames))
        outputs = self._outputs(1, capacity)
        frame_index, row, n_out = 0, 0, 0
        while True:
            frame_index, row, n_out = _find_sequential(
                frames, frame_index, row, *self._arrays[:3], self._q2, self._arrays[3],
                *self._kernel_parameters(), ring[0], rowbuf[0], updated[0],
                *(array[0] for array in outputs), n_out,
            )  # fmt: skip
            if frame_index == len(frames):
                break
            capacity *= 2
            outputs = self._grown(outputs, [n_out], capacity)
        return self._table(frame_numbers, [tuple(array[0, :n_out] for array in outputs)])

    def find_clusters_parallel(
        self, frames: np.ndarray, frame_numbers=None, n_threads: int | None = None
    ) -> ClusterTable:
        """Clusters of frames on several cores, identical to :meth:`find_clusters_in_frames`.

        The frame is split into row bands that scan successive frames at the same time
        (the wavefront of the module docstring), so results do not depend on the
        number of threads.

        Parameters
        ----------
        frames : (n, ny, nx) integer ndarray
        frame_numbers : (n,) ints, optional
        n_threads : int, optional
            Row bands (default: numba's thread count).

        Returns
        -------
        ClusterTable
        """
        frames = self._check_frames(frames, 3)
        frame_numbers = self._frame_numbers(frame_numbers, len(frames))
        ny, nx = self.shape
        n_threads = numba.get_num_threads() if n_threads is None else int(n_threads)
        if n_threads < 1:
            raise DedkitError(f"n_threads must be at least 1, got {n_threads}")
        bands = _band_rows(ny, n_threads, self.cluster_size[1] // 2)
        n_workers = len(bands) + 1  # the last slot is for the strips
        ring, rowbuf, updated = self._workspace(n_workers)
        strip_rows = ny - int(np.sum(bands[:, 1] - bands[:, 0]))
        worst_step = int(max(np.max(bands[:, 1] - bands[:, 0]), strip_rows)) * nx
        capacity = max(worst_step, 32 * len(frames) // len(bands))
        outputs = self._outputs(n_workers, capacity)
        n_out = np.zeros(n_workers, np.int64)
        n_steps = len(frames) + len(bands) - 1
        step = 0
        while True:
            step = _find_banded(
                frames, step, bands, *self._arrays[:3], self._q2, self._arrays[3],
                *self._kernel_parameters(), ring, rowbuf, updated, *outputs, n_out,
            )  # fmt: skip
            if step >= n_steps:
                break
            capacity *= 2
            outputs = self._grown(outputs, n_out, capacity)
        pieces = [tuple(array[w, : n_out[w]] for array in outputs) for w in range(n_workers)]
        return self._table(frame_numbers, pieces)
