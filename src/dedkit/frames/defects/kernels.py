"""The numba kernels that correct one frame, and IMOD's pseudo-random generators.

Each kernel is one routine of IMOD's ``CorrectDefects.cpp`` (named in its docstring),
with IMOD's rounding: integer frames are rounded up or down at random, from IMOD's own
linear congruential generators, so that the rounding is unbiased. There is no separate
plain version: the kernels are the readable form of IMOD's loops, and the tests
(``tests/frames/test_defects.py``) check each rule against values worked out by hand
on tiny frames.

Arrays are indexed [row, column]; a band of rows is handled as a band of columns of the
transposed view, and so is an edge of columns.
"""

from __future__ import annotations

import numba
import numpy as np

# Rows (columns) outside the usable area over which the fill tapers to the running mean.
EDGE_TAPER_LINES = 5

# Seeds of IMOD's three generators: for fills from an integer sum, from a float value,
# and for sampling beside wide bad columns.
_SEED_INT_SUM, _SEED_FLOAT, _SEED_COLUMN = 482945, 843295, 456789
_GEN_INT_SUM, _GEN_FLOAT, _GEN_COLUMN = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _next_random(state, generator):
    state[generator] = (197 * (state[generator] + 1)) & 0xFFFFF
    return state[generator]


@numba.njit(cache=True, nogil=True)
def _round_sum(state, total, count):
    """IMOD's RandomIntFillFromIntSum: total / count rounded up or down at random."""
    chance = (_next_random(state, _GEN_INT_SUM) >> 2) % count
    quotient = abs(total) // count
    if total < 0:
        quotient = -quotient
    if total - quotient * count > chance:
        quotient += 1
    return quotient


@numba.njit(cache=True, nogil=True)
def _round_float(state, value):
    """IMOD's RandomIntFillFromFloat: up with probability of the fraction (toward 0)."""
    pseudo = _next_random(state, _GEN_FLOAT)
    result = int(value)
    if (value - result) * 262143.0 > (pseudo & 0x3FFFF):
        result += 1
    return result


@numba.njit(cache=True, nogil=True)
def _store(image, row, col, value, integer, state):
    if integer:
        image[row, col] = _round_float(state, value)
    else:
        image[row, col] = value


@numba.njit(cache=True, nogil=True)
def _fill_with_mean(image, xs, ys, blocks, mean, integer, state):
    ny, nx = image.shape
    size = 2 if blocks else 1
    for k in range(len(xs)):
        value = _round_float(state, mean) if integer else mean
        for dy in range(size):
            for dx in range(size):
                if ys[k] + dy < ny and xs[k] + dx < nx:
                    image[ys[k] + dy, xs[k] + dx] = value


@numba.njit(cache=True, nogil=True)
def _fill_from_neighbours(image, xs, ys, blocks, integer, state):
    ny, nx = image.shape
    if blocks:
        # Two pixels deep on each side of the 2x2 block.
        off_x = np.array([-2, -1, 2, 3, -2, -1, 2, 3, 0, 1, 0, 1, 0, 1, 0, 1])
        off_y = np.array([0, 0, 0, 0, 1, 1, 1, 1, -2, -2, -1, -1, 2, 2, 3, 3])
        size = 2
    else:
        off_x = np.array([-1, 1, 0, 0])
        off_y = np.array([0, 0, -1, 1])
        size = 1
    for k in range(len(xs)):
        x, y = xs[k], ys[k]
        total = 0.0
        count = 0
        for i in range(len(off_x)):
            xi, yi = x + off_x[i], y + off_y[i]
            if 0 <= xi < nx and 0 <= yi < ny:
                total += image[yi, xi]
                count += 1
        if count == 0:
            continue
        value = _round_sum(state, int(total), count) if integer else total / count
        for dy in range(size):
            for dx in range(size):
                if y + dy < ny and x + dx < nx:
                    image[y + dy, x + dx] = value


@numba.njit(cache=True, nogil=True)
def _fill_edge(lines, good, step, n_bad, integer, state):
    """Fill ``n_bad`` lines beyond line ``good`` (direction ``step``), IMOD's CorrectEdge.

    Each filled value is ``frac * good_value + (1 - frac) * running_mean`` where the
    running mean is over up to 50 pixels of the good line and ``frac`` falls from 4/5
    to 0 over the first EDGE_TAPER_LINES lines.
    """
    length = lines.shape[1]
    window = min(50, (length + 9) // 10, length)
    add_start = window // 2
    add_end = length - (window - window // 2)
    for r in range(n_bad):
        total = 0.0
        for i in range(window):
            total += lines[good, i]
        drop, add = 0, window
        frac = max(0.0, (EDGE_TAPER_LINES - r - 1.0) / EDGE_TAPER_LINES)
        mean_weight = (1.0 - frac) / window
        dest = good + (r + 1) * step
        for i in range(length):
            if add_start <= i < add_end:
                total += lines[good, add] - lines[good, drop]
                add += 1
                drop += 1
            _store(lines, dest, i, frac * lines[good, i] + mean_weight * total, integer, state)


@numba.njit(cache=True, nogil=True)
def _fill_band(a, start, num, first, last, integer, state):
    """Fill columns ``start..start+num-1`` of ``a`` over rows ``first..last``.

    IMOD's CorrectColumn: a linear blend of the good columns on each side, weight
    (i+1)/(num+1) for the right side; with 3 or more columns, 2- or 3-row averages of
    them, or, for bands of 16 or more rows at least 15 columns from the frame edge,
    pixels copied from random places up to 15 columns away and 7 rows up or down.
    """
    n_along, n_across = a.shape
    left = start - 1
    right = start + num
    if left < 0:
        left = right
    if right >= n_across:
        right = left
    sample_far = num >= 3 and last - first >= 15 and left > 14 and right < n_across - 15
    for col in range(num):
        f_right = (col + 1.0) / (num + 1.0)
        f_left = 1.0 - f_right
        x = start + col
        if sample_far:
            full_start = max(first, 7)
            full_end = min(last, n_along - 8)
            for r in range(first, full_start):
                value = (
                    f_left * (a[r, left] + a[r + 1, left] + a[r, left - 1] + a[r + 1, left - 1])
                    + f_right
                    * (a[r, right] + a[r + 1, right] + a[r, right + 1] + a[r + 1, right + 1])
                ) / 4.0
                # IMOD truncates here rather than rounding at random.
                a[r, x] = int(value) if integer else value
            for r in range(full_start, full_end + 1):
                pseudo = _next_random(state, _GEN_COLUMN)
                dy = (pseudo >> 2) % 15 - 7
                dx = (pseudo >> 6) & 15
                if pseudo & 2048:
                    a[r, x] = a[r + dy, left - dx]
                else:
                    a[r, x] = a[r + dy, right + dx]
            for r in range(full_end + 1, last + 1):
                value = (
                    f_left * (a[r - 1, left] + a[r, left] + a[r - 1, left - 1] + a[r, left - 1])
                    + f_right
                    * (a[r - 1, right] + a[r, right] + a[r - 1, right + 1] + a[r, right + 1])
                ) / 4.0
                a[r, x] = int(value) if integer else value
        elif num >= 3 and last > first:
            for r in range(first, last + 1):
                lo = max(r - 1, 0)
                hi = min(r + 1, n_along - 1)
                side_left = 0.0
                side_right = 0.0
                for s in range(lo, hi + 1):
                    side_left += a[s, left]
                    side_right += a[s, right]
                value = (f_left * side_left + f_right * side_right) / (hi - lo + 1)
                _store(a, r, x, value, integer, state)
        else:
            for r in range(first, last + 1):
                _store(a, r, x, f_left * a[r, left] + f_right * a[r, right], integer, state)


@numba.njit(cache=True, nogil=True)
def _correct_frame(
    image,
    integer,
    sample_rows,
    sample_cols,
    mean_x,
    mean_y,
    near_x,
    near_y,
    blocks,
    edges,
    columns,
    rows,
    state,
):
    ny, nx = image.shape
    if len(mean_x):
        total = 0.0
        for k in range(len(sample_rows)):
            total += image[sample_rows[k], sample_cols[k]]
        mean = np.float32(total / len(sample_rows))
        _fill_with_mean(image, mean_x, mean_y, blocks, mean, integer, state)

    columns_view = image.T
    # the steps as plain int64, not numba literals: each literal would be one more
    # compilation of _fill_edge on a first run (issue 13 item 17)
    down, up = np.int64(-1), np.int64(1)
    if edges[0]:
        _fill_edge(image, edges[0], down, edges[0], integer, state)
    if edges[1]:
        _fill_edge(image, ny - edges[1] - 1, up, edges[1], integer, state)
    if edges[2]:
        _fill_edge(columns_view, edges[2], down, edges[2], integer, state)
    if edges[3]:
        _fill_edge(columns_view, nx - edges[3] - 1, up, edges[3], integer, state)

    for k in range(columns.shape[0]):
        _fill_band(
            image, columns[k, 0], columns[k, 1], columns[k, 2], columns[k, 3], integer, state
        )
    for k in range(rows.shape[0]):
        _fill_band(columns_view, rows[k, 0], rows[k, 1], rows[k, 2], rows[k, 3], integer, state)

    _fill_from_neighbours(image, near_x, near_y, blocks, integer, state)
