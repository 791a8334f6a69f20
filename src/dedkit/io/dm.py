"""Gatan DigitalMicrograph DM3/DM4 images, such as the gain references of K2/K3 cameras.

Files are parsed by ncempy (the 'dm' extra). DM stores row 0 at the TOP of the image, as
TIFF does; :func:`read_dm` flips the rows so that the array follows dedkit's Y-up
convention, just as IMOD reads DM files Y-inverted. A DM4 gain reference read here
therefore lines up with frames read from MRC or TIFF files by :mod:`dedkit.io.stack`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.inputs import check_input_file

__all__ = ["DM_SUFFIXES", "DmImage", "is_dm", "read_dm"]

DM_SUFFIXES = (".dm3", ".dm4")

# The version word and byte-order word of the smaller (DM3) header, plus an empty root
# tag group: no DM file can be shorter.
_MIN_DM_BYTES = 18

# Keys are lower case: both Angstrom characters lower to U+00E5.
_ANGSTROM_PER_UNIT = {"nm": 10.0, "\u00b5m": 1e4, "um": 1e4, "\u00e5": 1.0}


@dataclass
class DmImage:
    """One image from a DM3/DM4 file.

    Attributes
    ----------
    data : (ny, nx) ndarray
        The image, Y up (flipped from DM's top-first rows), in the file's own dtype
        (float32 for a gain reference).
    pixel_size : (x, y) in Angstrom, or None
        When the file calibrates both axes in a length unit (nm, um, Angstrom).
    metadata : dict
        ncempy's selection of the image tags ('Calibrations ...', 'Acquisition ...',
        'Microscope Info ...' and the like), keyed by the tag path joined with blanks.
    """

    data: np.ndarray
    pixel_size: tuple[float, float] | None = None
    metadata: dict = field(default_factory=dict)


def is_dm(path) -> bool:
    """True when ``path`` has a DM3 or DM4 suffix (any case)."""
    return Path(path).suffix.lower() in DM_SUFFIXES


def read_dm(path) -> DmImage:
    """Read the image of a DM3 or DM4 file, flipped to Y up.

    Parameters
    ----------
    path : path-like
        A DM3 or DM4 file holding one 2-D image (a thumbnail, if present, is skipped).

    Returns
    -------
    DmImage

    Raises
    ------
    DedkitError
        When ncempy is not installed, the file is missing, not DM3/DM4, truncated or
        corrupt, or holds no 2-D image.
    """
    path = Path(path)
    try:
        from ncempy.io import dm as ncempy_dm
    except ImportError:
        raise DedkitError(
            "reading DM3/DM4 needs the 'dm' extra: pip install 'dedkit[dm]'", path=path
        ) from None
    check_input_file(path, "DM file")
    with open(path, "rb") as file:
        head = file.read(_MIN_DM_BYTES)
    # ncempy fails with obscure messages on empty and foreign files.
    if len(head) < _MIN_DM_BYTES or int.from_bytes(head[:4], "big") not in (3, 4):
        raise DedkitError("not a DM3/DM4 file (no DM header)", path=path)
    try:
        with ncempy_dm.fileDM(path, on_memory=False) as dm_file:
            if dm_file.numObjects == 0:
                raise DedkitError("DM file holds no image", path=path)
            dataset = dm_file.getDataset(0)
            metadata = dm_file.getMetadata(0)
    except DedkitError:
        raise
    # ncempy reports damaged files with whatever numpy or its parser raises.
    except Exception as e:
        raise DedkitError(
            f"cannot read DM file, truncated or corrupt ({one_line(e)})", path=path
        ) from None
    data = dataset["data"]
    if data.ndim != 2:
        raise DedkitError(
            f"DM file holds a {data.ndim}-D dataset of shape {data.shape}; expected one image",
            path=path,
        )
    return DmImage(
        data=np.ascontiguousarray(data[::-1]),
        pixel_size=_pixel_size(dataset.get("pixelSize", ()), dataset.get("pixelUnit", ())),
        metadata=metadata,
    )


def _pixel_size(sizes, units) -> tuple[float, float] | None:
    """(x, y) in Angstrom from ncempy's (y, x) calibration, when both are lengths."""
    if len(sizes) != 2 or len(units) != 2:
        return None
    factors = [_ANGSTROM_PER_UNIT.get(str(unit).strip().lower()) for unit in units]
    if None in factors:
        return None
    (y_size, x_size), (y_factor, x_factor) = sizes, factors
    if x_size <= 0 or y_size <= 0:
        return None
    return (float(x_size) * x_factor, float(y_size) * y_factor)
