"""Image reduction by an integer factor: IMOD's antialiased zoom-down and plain binning.

Antialiased reduction follows IMOD's ``zoomdown.c`` (after Heckbert's ``zoom``), which is
what SerialEM's plugin runs on K2/K3 images and frames:

- Pixel ``i`` covers the continuous coordinates ``[i, i + 1)``, its centre is ``i + 0.5``.
- The output of size ``n // factor`` is centred on the input: it starts at the offset
  ``(n - (n // factor) * factor) / 2`` (SerialEMCCD's ``ReduceImage``), so output pixel
  ``b`` is centred at ``c = offset + (b + 0.5) * factor``.
- The filter ``f`` with support radius ``supp`` is stretched by the factor: the taps are
  the input pixels ``i`` in ``[int(c - supp*factor + 0.5), int(c + supp*factor + 0.5))``
  (clipped to the image) with weights ``f((i + 0.5 - c) / factor)``, normalised to sum 1
  over the taps that exist (so the edges are renormalised, not padded).
- The filter is separable: rows are filtered into a line buffer, which is then filtered
  along X (float32 accumulation, as IMOD's float path).

Filters and support radii, in IMOD's order (types 0-5): box 0.5, Blackman 1, triangle 1,
Mitchell-Netravali (B = C = 1/3) 2, Lanczos-2 2, Lanczos-3 3. Lanczos-3 is SerialEM's
filter for frames and the default here.

Values: ``values="sum"`` (the default) multiplies the normalised result by
``factor ** 2``, as SerialEMCCD does (its reductions are scaled by the binning squared), so
an output pixel holds the counts of the ``factor x factor`` input pixels it replaces, as
binning by summing gives: counts stay counts (Poisson statistics, dose per pixel) and the
two reductions can be compared directly. ``values="mean"`` gives IMOD's convention
(newstack -shrink/-bin), the average.

Plain binning (``bin_image``) sums ``factor x factor`` blocks (or averages them with
``values="mean"``); with a size that the factor does not divide, the blocks start at
``round(offset)`` as SerialEMCCD's fallback binning does.
"""

from __future__ import annotations

import concurrent.futures
import functools
import itertools
import math
from dataclasses import dataclass

import numba
import numpy as np

from dedkit.errors import DedkitError

__all__ = [
    "FILTERS",
    "DEFAULT_FILTER",
    "REDUCTIONS",
    "VALUES",
    "WeightTable",
    "filter_function",
    "weight_table",
    "reduced_shape",
    "antialias_reduce",
    "bin_image",
    "reduce_image",
]


def _box(x):
    return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _blackman(x):
    # IMOD evaluates the window without a support test; the taps keep |x| <= 1
    return 0.42 + 0.5 * np.cos(np.pi * x) + 0.08 * np.cos(2 * np.pi * x)


def _triangle(x):
    return np.where(np.abs(x) < 1.0, 1.0 - np.abs(x), 0.0)


def _mitchell(x, b=1.0 / 3.0, c=1.0 / 3.0):
    # Mitchell & Netravali, "Reconstruction filters in computer graphics", SIGGRAPH 1988
    p0 = (6.0 - 2.0 * b) / 6.0
    p2 = (-18.0 + 12.0 * b + 6.0 * c) / 6.0
    p3 = (12.0 - 9.0 * b - 6.0 * c) / 6.0
    q0 = (8.0 * b + 24.0 * c) / 6.0
    q1 = (-12.0 * b - 48.0 * c) / 6.0
    q2 = (6.0 * b + 30.0 * c) / 6.0
    q3 = (-b - 6.0 * c) / 6.0
    t = np.abs(x)
    inner = p0 + t * t * (p2 + t * p3)
    outer = q0 + t * (q1 + t * (q2 + t * q3))
    return np.where(t < 1.0, inner, np.where(t < 2.0, outer, 0.0))


def _lanczos(a):
    def f(x):
        x = np.asarray(x, np.float64)
        small = np.abs(x) < 1e-6
        xs = np.where(small, 1.0, x)
        v = a * np.sin(np.pi * xs) * np.sin(np.pi * xs / a) / (np.pi**2 * xs * xs)
        return np.where(small, 1.0, np.where(np.abs(x) > a, 0.0, v))

    return f


#: filter name -> (function of x in output-pixel units, support radius), IMOD types 0-5
FILTERS = {
    "box": (_box, 0.5),
    "blackman": (_blackman, 1.0),
    "triangle": (_triangle, 1.0),
    "mitchell": (_mitchell, 2.0),
    "lanczos2": (_lanczos(2.0), 2.0),
    "lanczos3": (_lanczos(3.0), 3.0),
}
DEFAULT_FILTER = "lanczos3"
#: every reduction :func:`reduce_image` knows: the antialias filters and plain binning
REDUCTIONS = (*FILTERS, "bin")
#: output values: the sum of the input pixels replaced (SerialEM) or their mean (IMOD)
VALUES = ("sum", "mean")


def filter_function(name: str):
    """The filter ``f(x)`` (x in output-pixel units) and its support radius."""
    try:
        return FILTERS[name]
    except KeyError:
        raise DedkitError(f"unknown filter {name!r}; use one of {', '.join(REDUCTIONS)}") from None


@dataclass
class WeightTable:
    """Sampled filter along one axis: output pixel ``b`` is
    ``sum(weights[b, :count[b]] * input[start[b] : start[b] + count[b]])``."""

    start: np.ndarray
    count: np.ndarray
    weights: np.ndarray


def _check_factor(factor) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int | np.integer):
        if isinstance(factor, float) and factor.is_integer():
            factor = int(factor)
        else:
            raise DedkitError(f"the reduction factor must be an integer, got {factor!r}")
    factor = int(factor)
    if factor < 1:
        raise DedkitError(f"the reduction factor must be at least 1, got {factor}")
    return factor


def reduced_shape(shape, factor: int) -> tuple[int, int]:
    """Output size of a reduction: ``n // factor`` along each axis."""
    factor = _check_factor(factor)
    ny, nx = (int(v) for v in shape)
    if ny < factor or nx < factor:
        raise DedkitError(f"a {nx} x {ny} image is smaller than the reduction factor {factor}")
    return ny // factor, nx // factor


def weight_table(n: int, factor: int, filter: str = DEFAULT_FILTER) -> WeightTable:
    """IMOD's sampled filter for reducing ``n`` pixels by ``factor`` (see the module).

    Parameters
    ----------
    n : int
        Input size along the axis.
    factor : int
    filter : str
        One of :data:`FILTERS`.

    Returns
    -------
    WeightTable
        One row per output pixel, weights normalised to sum 1.
    """
    func, supp = filter_function(filter)
    factor = _check_factor(factor)
    nb = n // factor
    offset = (n - nb * factor) / 2.0
    support = supp * factor
    centre = offset + (np.arange(nb) + 0.5) * factor
    # C's (int) truncates toward zero; negative starts are clipped to 0 just after
    i0 = np.clip(np.trunc(centre - support + 0.5).astype(np.int64), 0, n)
    i1 = np.clip(np.trunc(centre + support + 0.5).astype(np.int64), 0, n)
    width = int(max(1, (i1 - i0).max()))
    idx = i0[:, None] + np.arange(width)[None, :]
    inside = idx < i1[:, None]
    w = np.where(inside, func((idx + 0.5 - centre[:, None]) / factor), 0.0)
    den = w.sum(axis=1)
    empty = den == 0
    w[~empty] /= den[~empty, None]
    count = (i1 - i0).astype(np.int64)
    if empty.any():
        # IMOD: a filter with no weight falls back to the single middle pixel
        i0[empty] = (i0[empty] + i1[empty]) >> 1
        count[empty] = 1
        w[empty] = 0.0
        w[empty, 0] = 1.0
    return WeightTable(i0, count, w.astype(np.float32))


@functools.lru_cache(maxsize=16)
def _cached_table(n: int, factor: int, filter: str) -> WeightTable:
    # a stack's frames share their tables; read-only so that no caller changes them
    table = weight_table(n, factor, filter)
    for a in (table.start, table.count, table.weights):
        a.flags.writeable = False
    return table


@numba.njit(cache=True, nogil=True)
def _zoom_kernel(src, y0, ycount, yw, x0, xcount, xw, scale, out):  # pragma: no cover - jit
    nby, nbx = out.shape
    nx = src.shape[1]
    line = np.empty(nx, np.float32)
    for by in range(nby):
        line[:] = 0.0
        for k in range(ycount[by]):
            w = np.float32(yw[by, k] * scale)
            row = src[y0[by] + k]
            for x in range(nx):
                line[x] += w * np.float32(row[x])
        for bx in range(nbx):
            s = np.float32(0.0)
            start = x0[bx]
            for k in range(xcount[bx]):
                s += xw[bx, k] * line[start + k]
            out[by, bx] = s


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise DedkitError(f"reduction needs a 2D image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise DedkitError(f"cannot reduce an image of type {image.dtype}")
    if image.dtype.kind == "b":
        image = image.astype(np.uint8)
    return image


def _check_values(values: str) -> None:
    if values not in VALUES:
        raise DedkitError(f"unknown values {values!r}; use 'sum' or 'mean'")


def antialias_reduce(
    image: np.ndarray,
    factor: int,
    filter: str = DEFAULT_FILTER,
    *,
    values: str = "sum",
    out: np.ndarray | None = None,
    workers: int = 1,
) -> np.ndarray:
    """Reduce an image by an integer factor with one of IMOD's antialias filters.

    Parameters
    ----------
    image : (ny, nx) array
        Any real type.
    factor : int
        Reduction factor (1 returns a float32 copy).
    filter : str
        'box', 'blackman', 'triangle', 'mitchell', 'lanczos2' or 'lanczos3' (default).
    values : {'sum', 'mean'}
        'sum' scales the result by ``factor ** 2`` (SerialEM: counts of the replaced
        pixels); 'mean' keeps the input's scale (IMOD).
    out : (ny // factor, nx // factor) float32 array, optional
    workers : int
        Threads, each reducing a band of output rows (the kernel releases the GIL).

    Returns
    -------
    (ny // factor, nx // factor) float32 array
    """
    image = _check_image(image)
    factor = _check_factor(factor)
    _check_values(values)
    shape = reduced_shape(image.shape, factor)
    ty = _cached_table(image.shape[0], factor, filter)
    tx = _cached_table(image.shape[1], factor, filter)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {shape}")
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    scale = float(factor * factor) if values == "sum" else 1.0
    bands = np.linspace(0, shape[0], max(1, min(int(workers), shape[0])) + 1).astype(int)

    def band(lo, hi):
        _zoom_kernel(
            image,
            ty.start[lo:hi],
            ty.count[lo:hi],
            ty.weights[lo:hi],
            tx.start,
            tx.count,
            tx.weights,
            scale,
            out[lo:hi],
        )

    if len(bands) == 2:
        band(0, shape[0])
    else:
        with concurrent.futures.ThreadPoolExecutor(len(bands) - 1) as pool:
            jobs = [pool.submit(band, lo, hi) for lo, hi in itertools.pairwise(bands)]
            for job in jobs:
                job.result()
    return out


def bin_image(image: np.ndarray, factor: int, *, values: str = "sum") -> np.ndarray:
    """Plain binning: sum (or average) ``factor x factor`` blocks.

    Parameters
    ----------
    image : (ny, nx) array
    factor : int
    values : {'sum', 'mean'}
        'sum' (default): counts stay counts, as on the camera; 'mean': IMOD's binning.

    Returns
    -------
    (ny // factor, nx // factor) float32 array
        Blocks start at ``round((n - (n // factor) * factor) / 2)`` (centred, leftover
        pixels dropped).
    """
    image = _check_image(image)
    factor = _check_factor(factor)
    _check_values(values)
    nby, nbx = reduced_shape(image.shape, factor)
    ys = math.floor((image.shape[0] - nby * factor) / 2 + 0.5)
    xs = math.floor((image.shape[1] - nbx * factor) / 2 + 0.5)
    # float32 holds sums of up to 16-bit integers exactly; wider types add in float64
    exact32 = image.dtype.kind in "biu" and image.dtype.itemsize <= 2
    acc = np.float32 if exact32 or image.dtype == np.float32 else np.float64
    out = np.zeros((nby, nbx), acc)
    for dy in range(factor):
        rows = image[ys + dy : ys + nby * factor : factor]
        for dx in range(factor):
            out += rows[:, xs + dx : xs + nbx * factor : factor]
    if values == "mean":
        out /= factor * factor
    return out.astype(np.float32, copy=False)


def reduce_image(
    image: np.ndarray,
    factor: int,
    filter: str = DEFAULT_FILTER,
    *,
    values: str = "sum",
    workers: int = 1,
) -> np.ndarray:
    """Antialiased reduction with ``filter``, or plain binning with ``filter='bin'``.

    See :func:`antialias_reduce` and :func:`bin_image`; returns float32.
    """
    if filter == "bin":
        return bin_image(image, factor, values=values)
    return antialias_reduce(image, factor, filter, values=values, workers=workers)
