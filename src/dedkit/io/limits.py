"""Bounds on what a file's header can make dedkit allocate (hybrid-pixel detectors).

A header is a claim: a master's ``Pixels``, a ``PED.h5`` dataset's shape, a ``.npy``
header or an events file's ``detector_shape`` may declare far more than the file holds
(a 1.8 MB gzip-compressed ``PED.h5`` can declare 16000 x 16000). Every reader checks such
sizes here *before* it allocates or reads, and refuses with one line naming the file:

- a detector side is at most :data:`MAX_DETECTOR_SIDE` pixels: about twice the side of
  the largest hybrid-pixel detectors built (JUNGFRAU and EIGER 16M, about 4400 pixels
  with the gaps between modules);
- an image built from a detector (``hpd image``: detector pixels x upsampling squared) is
  at most :data:`MAX_IMAGE_PIXELS`, the pixels of a 1024 x 1024 detector (a JUNGFRAU 1M)
  upsampled 8 times: 256 MiB of float32.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from tokenize import TokenError

import numpy as np

from dedkit.errors import DedkitError

__all__ = [
    "MAX_DETECTOR_SIDE",
    "MAX_IMAGE_PIXELS",
    "check_detector_shape",
    "check_image_size",
    "read_npy_header",
    "read_npy_stream_header",
]

#: Largest detector side (rows or columns) dedkit accepts from a file
MAX_DETECTOR_SIDE = 8192
#: Largest image (pixels) a file can make dedkit build: 1024 x 1024 detector pixels x 8^2
MAX_IMAGE_PIXELS = (1024 * 8) ** 2
# numpy's own limit on a .npy header it parses without allow_pickle
_MAX_NPY_HEADER = 10000


def check_detector_shape(shape, *, path=None, what: str = "detector shape") -> tuple[int, int]:
    """``(rows, cols)`` as two ints in 1..:data:`MAX_DETECTOR_SIDE`, or DedkitError.

    Parameters
    ----------
    shape : sequence
        What the file says (any type: it comes from a header).
    path : path-like, optional
        The file, named in the error.
    what : str
        How the error names the value ("master's Pixels", "detector_shape", ...).
    """
    try:
        values = [v for v in shape]
        if len(values) != 2 or any(isinstance(v, bool | str | bytes | float) for v in values):
            raise TypeError
        rows, cols = (int(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        raise DedkitError(
            f"{what} must be two integers (rows, cols), not {shape!r}", path=path
        ) from None
    if not (1 <= rows <= MAX_DETECTOR_SIDE and 1 <= cols <= MAX_DETECTOR_SIDE):
        raise DedkitError(
            f"{what} is {cols} x {rows}: not a detector dedkit reads (each side 1 to "
            f"{MAX_DETECTOR_SIDE} pixels)",
            path=path,
        )
    return rows, cols


def check_image_size(shape, upsample: int, *, path=None) -> None:
    """Refuse an image of ``shape`` detector pixels x ``upsample`` above the limit."""
    rows, cols = shape
    if rows * cols * upsample * upsample > MAX_IMAGE_PIXELS:
        raise DedkitError(
            f"a {cols} x {rows} detector upsampled {upsample} times makes a "
            f"{cols * upsample} x {rows * upsample} image, more than dedkit's limit of "
            f"{MAX_IMAGE_PIXELS // 2**20} M pixels; use a smaller --upsample",
            path=path,
        )


def read_npy_header(path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file, checked against its size.

    Only the header is read, so a header declaring (131072, 131072) is refused without
    allocating anything.

    Raises
    ------
    DedkitError
        Not a .npy file, an object array, or fewer bytes than the header declares.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DedkitError(f"cannot read ({error.strerror})", path=path) from None
    with open(path, "rb") as f:
        return read_npy_stream_header(f, size, path=path)


def read_npy_stream_header(
    f, size: int, *, path=None, what: str = ".npy file"
) -> tuple[tuple[int, ...], np.dtype, int]:
    """:func:`read_npy_header` of an open binary stream of ``size`` bytes (a member of
    an ``.npz`` zip, say); ``what`` names it in the error ("model tensor x", ...)."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unknown .npy format version {version}")
        # the header's length is checked before numpy reads (allocates) that many bytes
        length_format = "<H" if version == (1, 0) else "<I"
        start = 6 + 2  # magic string and version
        (length,) = struct.unpack(length_format, f.read(struct.calcsize(length_format)))
        if length > _MAX_NPY_HEADER or start + length > size:
            raise ValueError(f"header length {length} does not fit the file")
        # the length again, for numpy's reader (a zip member cannot seek back cheaply)
        header = f.read(length)
        stream = io.BytesIO(struct.pack(length_format, length) + header)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        offset = start + struct.calcsize(length_format) + length
    # numpy parses the header with ast and tokenize: their errors too mean 'not .npy'
    except (ValueError, EOFError, SyntaxError, TypeError, struct.error, TokenError) as error:
        message = " ".join(str(error).split())
        raise DedkitError(f"not a readable {what} ({message})", path=path) from None
    if dtype.hasobject:
        raise DedkitError(f"{what} holds Python objects, not numbers", path=path)
    n_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offset + n_bytes > size:
        raise DedkitError(
            f"{what}: its .npy header declares {' x '.join(map(str, shape))} {dtype} "
            f"({n_bytes} bytes) but it holds {size - offset} bytes of data",
            path=path,
        )
    return tuple(int(v) for v in shape), dtype, offset
