"""Gatan DigitalMicrograph DM3/DM4 images, such as the gain references of K2/K3 cameras.

Files are parsed by ncempy (the 'dm' extra). DM stores row 0 at the TOP of the image, as
TIFF does; :func:`read_dm` flips the rows so that the array follows dedkit's Y-up
convention, just as IMOD reads DM files Y-inverted. A DM4 gain reference read here
therefore lines up with frames read from MRC or TIFF files by :mod:`dedkit.io.stack`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.inputs import check_input_file
from dedkit.io.stack import FrameReader, StackInfo

__all__ = ["DM_SUFFIXES", "DM_DATA_TYPES", "DmImage", "DmReader", "is_dm", "read_dm"]

DM_SUFFIXES = (".dm3", ".dm4")

# The version word and byte-order word of the smaller (DM3) header, plus an empty root
# tag group: no DM file can be shorter.
_MIN_DM_BYTES = 18

#: Angstrom per calibration unit, for the units DigitalMicrograph writes for lengths.
#: Keys are lower case: both Angstrom characters lower to U+00E5, and DM also writes a
#: plain "A"; the micro sign (U+00B5), the Greek mu (U+03BC) and "u" all mean micro.
_ANGSTROM_PER_UNIT = {
    "pm": 0.01,
    "a": 1.0,
    "\u00e5": 1.0,
    "angstrom": 1.0,
    "nm": 10.0,
    "\u00b5m": 1e4,
    "\u03bcm": 1e4,
    "um": 1e4,
    "micron": 1e4,
    "mm": 1e7,
}

#: DigitalMicrograph's image data types (ImageData/DataType) and their names; the ones
#: ncempy (and dedkit) cannot read are refused by name, not as a corrupt file.
DM_DATA_TYPES = {
    0: "null",
    1: "int16",
    2: "float32",
    3: "complex64",
    4: "obsolete",
    5: "packed complex",
    6: "uint8",
    7: "int32",
    8: "RGB colour",
    9: "int8",
    10: "uint16",
    11: "uint32",
    12: "float64",
    13: "complex128",
    14: "bool",
    15: "RGB colour",
    16: "RGB colour",
    17: "RGB colour",
    18: "RGB colour",
    19: "RGB colour",
    20: "RGBA colour",
    21: "RGBA colour",
    22: "RGBA colour",
    23: "RGBA colour",
    24: "RGBA colour",
    25: "RGBA colour",
    26: "RGBA colour",
    27: "packed complex FFT",
}


@dataclass
class DmImage:
    """One image from a DM3/DM4 file.

    Attributes
    ----------
    data : (ny, nx) ndarray
        The image, Y up (flipped from DM's top-first rows), in the file's own dtype
        (float32 for a gain reference).
    pixel_size : (x, y) in Angstrom, or None
        When the file calibrates both axes in a length unit (pm, A, nm, um, mm).
    metadata : dict
        ncempy's selection of the image tags ('Calibrations ...', 'Acquisition ...',
        'Microscope Info ...' and the like), keyed by the tag path joined with blanks.
    units : (x, y) str
        The calibration units as the file names them ('' when uncalibrated).
    scale : (x, y) float
        The calibration per pixel in those units.
    dm_type : int
        DigitalMicrograph's data type number (see :data:`DM_DATA_TYPES`).
    """

    data: np.ndarray
    pixel_size: tuple[float, float] | None = None
    metadata: dict = field(default_factory=dict)
    units: tuple[str, ...] = ()
    scale: tuple[float, ...] = ()
    dm_type: int | None = None


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
        corrupt, holds a data type dedkit cannot read (bool, RGB(A), packed complex), or
        holds no 2-D image (a spectrum, 1 x N or N x 1, or a 3-D stack).
    """
    image = _load(path)
    if image.data.ndim != 2:
        raise DedkitError(
            f"DM file holds a {image.data.ndim}-D dataset of shape {image.data.shape}; "
            "expected one image",
            path=path,
        )
    image.data = np.ascontiguousarray(image.data[::-1])
    return image


def _load(path) -> DmImage:
    """The dataset of a DM file as stored (2-D or 3-D, rows top first), checked."""
    path = Path(path)
    try:
        from ncempy.io import dm as ncempy_dm
    except ImportError:
        raise DedkitError(
            "reading DM3/DM4 needs the 'dm' extra: pip install 'dedkit[dm]'", path=path
        ) from None
    check_input_file(path, "DM file")
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(_MIN_DM_BYTES)
    # ncempy fails with obscure messages on empty and foreign files.
    if len(head) < _MIN_DM_BYTES or int.from_bytes(head[:4], "big") not in (3, 4):
        raise DedkitError("not a DM3/DM4 file (no DM header)", path=path)
    try:
        with ncempy_dm.fileDM(path, on_memory=False) as dm_file:
            if dm_file.numObjects == 0:
                raise DedkitError("DM file holds no image", path=path)
            index = 0 if dm_file.numObjects == 1 else 1  # ncempy skips the thumbnail
            dm_type = _check_dataset(dm_file, index, size, path)
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
    scale = tuple(float(v) for v in dataset.get("pixelSize", ()))[::-1]
    units = tuple(str(u).strip() for u in dataset.get("pixelUnit", ()))[::-1]
    return DmImage(
        data=data,
        pixel_size=_pixel_size(scale[:2], units[:2]),
        metadata=metadata,
        units=units,
        scale=scale,
        dm_type=dm_type,
    )


def _check_dataset(dm_file, index: int, file_size: int, path) -> int:
    """Refuse, before ncempy reads anything, what it would misread or allocate wildly.

    Checks the data type (named when dedkit cannot read it), the number of dimensions
    (a 1-D spectrum or profile is not an image) and that the declared size fits in the
    file, so that a lying header cannot make dedkit allocate more than the file holds.
    Returns the DM data type number.
    """
    dm_type = int(dm_file.dataType[index])
    dtype = dm_file._DM2NPDataTypes.get(dm_type)
    if dtype is None:
        name = DM_DATA_TYPES.get(dm_type, "unknown")
        raise DedkitError(f"unsupported DM data type {dm_type} ({name})", path=path)
    sizes = [
        int(dm_file.xSize[index]),
        int(dm_file.ySize[index]),
        int(dm_file.zSize[index]),
        int(dm_file.zSize2[index]),
    ]
    ndim = int(dm_file.dataShape[index])
    if ndim < 2 or sizes[0] <= 1 or sizes[1] <= 1:
        shape = " x ".join(str(v) for v in sizes[: max(ndim, 1)][::-1])
        raise DedkitError(
            f"DM file holds 1-D data ({shape} values: a spectrum or profile), not an image",
            path=path,
        )
    if min(sizes) < 1 or ndim > 3 or sizes[3] > 1:
        raise DedkitError(
            f"DM file holds a {ndim}-D dataset of {' x '.join(map(str, sizes[:ndim]))}; "
            "dedkit reads images and stacks of images",
            path=path,
        )
    needed = int(np.prod(sizes, dtype=object)) * np.dtype(dtype).itemsize
    offset = int(dm_file.dataOffset[index])
    if offset < 0 or offset + needed > file_size:
        raise DedkitError(
            f"truncated or corrupt DM file: the image needs {needed} bytes from offset "
            f"{offset}, the file has {file_size}",
            path=path,
        )
    return dm_type


def _pixel_size(sizes, units) -> tuple[float, float] | None:
    """(x, y) in Angstrom from (x, y) calibrations, when both are lengths."""
    if len(sizes) != 2 or len(units) != 2:
        return None
    factors = [_ANGSTROM_PER_UNIT.get(str(unit).strip().lower()) for unit in units]
    if None in factors:
        return None
    (x_size, y_size), (x_factor, y_factor) = sizes, factors
    if not all(math.isfinite(v) and v > 0 for v in (x_size, y_size)):
        return None
    return (float(x_size) * x_factor, float(y_size) * y_factor)


class DmReader(FrameReader):
    """A DM3/DM4 image (one frame) or 3-D stack as a frame stack, Y up.

    DM files are references and small stacks, so the dataset is read whole when the
    file is opened (never more than the file holds: see :func:`read_dm`'s checks).
    ``info.format`` is 'dm'; ``info.pixel_size`` is (x, y, 0.0) in Angstrom when both
    axes are calibrated in a length unit; ``info.extra`` keeps the file's own
    calibration (``units``, ``scale``, per x, y[, z]) and ``dm_type``.
    """

    def __init__(self, path):
        self.path = Path(path)
        image = _load(self.path)
        data = image.data
        if data.ndim == 2:
            data = data[np.newaxis]
        # DM stores rows top first, as TIFF does: flipped to dedkit's Y up
        self._data = np.ascontiguousarray(data[:, ::-1])
        nz, ny, nx = self._data.shape
        self.info = StackInfo(
            path=str(self.path),
            format="dm",
            shape=(nz, ny, nx),
            dtype=self._data.dtype,
            pixel_size=None if image.pixel_size is None else (*image.pixel_size, 0.0),
            extra={
                "units": list(image.units),
                "scale": list(image.scale),
                "dm_type": image.dm_type,
            },
        )

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` (the image itself for a 2-D file), Y up."""
        return self._data[self._check_index(index)].copy()
