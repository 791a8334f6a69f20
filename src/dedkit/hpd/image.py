"""Super-resolution images: localised electrons histogrammed on a finer grid.

An image upsampled ``n`` times has bins of 1/n pixel over the whole detector: event
(x, y) counts in bin ``(floor(y * n), floor(x * n))`` (pixel (r, c) covers [c, c+1) x
[r, r+1)); events outside the detector or with non-finite positions are left out.

**Flat-field normalisation.** No localiser puts the electrons of a flat illumination
uniformly inside a pixel: the charge centroid, for one, piles them up near pixel centres,
which shows as a grid pattern at the pixel period. The sub-pixel response ``R[a, b]`` is the
histogram of the sub-bin (``floor(y * n) mod n``, ``floor(x * n) mod n``) of flat-field
events, scaled to mean 1; every n x n block of the image is divided by ``R``, so a flat
illumination gives a flat image and the total count is kept on average. The flat field is
either the events themselves (``flat_field='counts'``, fine when the sample covers many
pixels evenly on the scale of a pixel) or a separate flat-field :class:`EventTable`
localised the same way. Sub-pixel bins that the flat field never hit cannot be corrected
and are set to 0.

The functions here compute arrays and write no files: ``dedkit hpd image`` writes the
image (:func:`dedkit.jobs.hpd.write_image`).
"""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.tables import EventTable

__all__ = [
    "check_upsample",
    "divide_by_response",
    "MAX_UPSAMPLE",
    "subpixel_response",
    "super_resolution_image",
]

#: Largest upsampling factor (bins of 1/8 pixel, 3.1 um on MÖNCH)
MAX_UPSAMPLE = 8


def check_upsample(upsample) -> int:
    """``upsample`` as an int from 1 to :data:`MAX_UPSAMPLE`, or DedkitError."""
    message = f"upsampling must be an integer from 1 to {MAX_UPSAMPLE}, got {upsample!r}"
    if isinstance(upsample, bool | str):
        raise DedkitError(message)
    try:
        factor = int(upsample)
    except (TypeError, ValueError):
        raise DedkitError(message) from None
    if factor != upsample or not 1 <= factor <= MAX_UPSAMPLE:
        raise DedkitError(message)
    return factor


def _fine_bins(events: EventTable, upsample: int) -> tuple[np.ndarray, np.ndarray]:
    # fine-grid column and row of every event with a finite position
    x = np.asarray(events.x, dtype=np.float64)
    y = np.asarray(events.y, dtype=np.float64)
    # beyond 2**40 pixels is outside any detector, and would overflow the int64 bins
    finite = (np.abs(x) < 2.0**40) & (np.abs(y) < 2.0**40)
    return (
        np.floor(x[finite] * upsample).astype(np.int64),
        np.floor(y[finite] * upsample).astype(np.int64),
    )


def subpixel_response(events: EventTable, upsample: int) -> np.ndarray:
    """How a set of events spreads over the sub-pixel bins, scaled to mean 1.

    Parameters
    ----------
    events : EventTable
        Flat-field events.
    upsample : int
        Sub-bins per pixel along each axis (1-8).

    Returns
    -------
    (upsample, upsample) ndarray of float64
        ``[row sub-bin, column sub-bin]``.
    """
    upsample = check_upsample(upsample)
    column, row = _fine_bins(events, upsample)
    if len(column) == 0:
        raise DedkitError("the flat field has no events to measure the sub-pixel response")
    counts = np.bincount(
        (row % upsample) * upsample + column % upsample, minlength=upsample * upsample
    ).astype(np.float64)
    return (counts / counts.mean()).reshape(upsample, upsample)


def super_resolution_image(
    events: EventTable,
    shape: tuple[int, int],
    upsample: int = 1,
    *,
    flat_field: EventTable | str | None = None,
) -> np.ndarray:
    """Histogram event positions on a grid ``upsample`` times finer than the pixels.

    Parameters
    ----------
    events : EventTable
        Localised electrons (positions in pixels).
    shape : (rows, cols)
        Detector size in pixels.
    upsample : int
        1 to 8: bins of 1/upsample pixel.
    flat_field : None, 'counts' or EventTable
        None: plain counts; 'counts': divide by the sub-pixel response of ``events``
        themselves; an EventTable: divide by the sub-pixel response of those flat-field
        events.

    Returns
    -------
    (rows * upsample, cols * upsample) ndarray of float32
        Row i of the image covers ``i / upsample <= y < (i + 1) / upsample``.
    """
    upsample = check_upsample(upsample)
    try:
        rows, cols = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise DedkitError(f"detector shape must be (rows, cols), got {shape!r}") from None
    if rows <= 0 or cols <= 0:
        raise DedkitError(f"detector shape must be positive, got {shape!r}")
    if flat_field is None:
        response = None
    elif isinstance(flat_field, EventTable):
        response = subpixel_response(flat_field, upsample)
    elif isinstance(flat_field, str) and flat_field == "counts":
        response = subpixel_response(events, upsample)
    else:
        raise DedkitError(f"flat_field must be None, 'counts' or an EventTable, got {flat_field!r}")

    fine_rows, fine_cols = rows * upsample, cols * upsample
    column, row = _fine_bins(events, upsample)
    inside = (column >= 0) & (column < fine_cols) & (row >= 0) & (row < fine_rows)
    counts = np.bincount(
        row[inside] * fine_cols + column[inside], minlength=fine_rows * fine_cols
    ).reshape(fine_rows, fine_cols)
    if response is None:
        return counts.astype(np.float32)
    return divide_by_response(counts, response)


def divide_by_response(counts: np.ndarray, response: np.ndarray) -> np.ndarray:
    """A super-resolution count image divided, sub-bin by sub-bin, by the sub-pixel
    response (``(upsample, upsample)``, from :func:`subpixel_response`); sub-bins the
    response never saw become 0."""
    upsample = response.shape[0]
    fine_rows, fine_cols = counts.shape
    rows, cols = fine_rows // upsample, fine_cols // upsample
    blocks = counts.reshape(rows, upsample, cols, upsample).astype(np.float64)
    tiled = np.broadcast_to(response[np.newaxis, :, np.newaxis, :], blocks.shape)
    image = np.divide(blocks, tiled, out=np.zeros_like(blocks), where=tiled > 0)
    return image.reshape(fine_rows, fine_cols).astype(np.float32)
