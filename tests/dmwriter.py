"""A minimal DM3/DM4 writer for tests: one 2-D image, no thumbnail.

Layout (from the public descriptions of the DigitalMicrograph format):

- header: big-endian version (3 or 4), root length (4 bytes in DM3, 8 in DM4) equal to
  the file length minus 16 (DM3) or 24 (DM4), and byte order 1 (little-endian data);
- a tag group: sorted flag, open flag, tag count (4 or 8 bytes), then its entries;
- a tag entry: 20 (group) or 21 (data), label length (2 bytes), label; in DM4 the number
  of bytes that follow in the entry (8 bytes); then either a group or "%%%%", the count of
  type words, the type words (4 or 8 bytes each) and the little-endian value;
- the file ends with 8 zero bytes.

The image sits in ``ImageList[0].ImageData`` with ``Calibrations.Dimension`` (origin,
scale and units per axis), ``Data``, ``DataType``, ``Dimensions`` (x, then y) and
``PixelDepth``, rows stored top first as DigitalMicrograph stores them.
"""

from __future__ import annotations

import struct

import numpy as np

# Tag value types.
_SHORT, _LONG, _USHORT, _ULONG, _FLOAT, _DOUBLE, _OCTET = 2, 3, 4, 5, 6, 7, 10
_ARRAY = 20
_GROUP_ENTRY, _DATA_ENTRY = 20, 21

_TAG_TYPE_OF_DTYPE = {
    np.dtype(np.int16): _SHORT,
    np.dtype(np.int32): _LONG,
    np.dtype(np.uint16): _USHORT,
    np.dtype(np.uint32): _ULONG,
    np.dtype(np.float32): _FLOAT,
    np.dtype(np.float64): _DOUBLE,
    np.dtype(np.uint8): _OCTET,
}

# ImageData.DataType codes of DigitalMicrograph.
_IMAGE_DATA_TYPE = {
    np.dtype(np.int16): 1,
    np.dtype(np.float32): 2,
    np.dtype(np.uint8): 6,
    np.dtype(np.int32): 7,
    np.dtype(np.uint16): 10,
    np.dtype(np.uint32): 11,
    np.dtype(np.float64): 12,
}


class _Encoder:
    """Encodes tags for one DM version (the width of counts and type words differs)."""

    def __init__(self, version: int):
        self.version = version
        self.word = ">I" if version == 3 else ">Q"

    def group(self, entries: list[tuple[str, bytes, bool]]) -> bytes:
        """A tag group from (label, encoded body, is_group) entries."""
        body = bytes([1, 0]) + struct.pack(self.word, len(entries))
        for label, content, is_group in entries:
            name = label.encode("latin-1")
            body += struct.pack(">BH", _GROUP_ENTRY if is_group else _DATA_ENTRY, len(name))
            body += name
            if self.version == 4:
                body += struct.pack(">Q", len(content))
            body += content
        return body

    def value(self, tag_type: int, value) -> bytes:
        dtype = {v: k for k, v in _TAG_TYPE_OF_DTYPE.items()}[tag_type]
        words = struct.pack(self.word, 1) + struct.pack(self.word, tag_type)
        return b"%%%%" + words + np.asarray(value, dtype.newbyteorder("<")).tobytes()

    def array(self, values: np.ndarray) -> bytes:
        values = np.asarray(values)
        words = [3, _ARRAY, _TAG_TYPE_OF_DTYPE[values.dtype], values.size]
        header = b"".join(struct.pack(self.word, w) for w in words)
        return b"%%%%" + header + values.astype(values.dtype.newbyteorder("<")).tobytes()

    def text(self, text: str) -> bytes:
        return self.array(np.array([ord(c) for c in text], np.uint16))


def dm_bytes(
    image: np.ndarray,
    *,
    version: int,
    scale: tuple[float, float] = (1.0, 1.0),
    units: tuple[str, str] = ("", ""),
    device_name: str = "K3",
    data_type: int | None = None,
) -> bytes:
    """The bytes of a DM file holding ``image`` (row 0 = top row of the picture).

    ``scale`` and ``units`` are the (x, y) calibration; ``device_name`` is stored as the
    ``ImageTags.Acquisition.Device.Name`` tag. ``data_type`` overrides the DM data type
    code written for the image (to make files of types a reader does not support).
    """
    image = np.asarray(image)
    enc = _Encoder(version)
    ny, nx = image.shape
    dimensions = enc.group(
        [
            (
                "",
                enc.group(
                    [
                        ("Origin", enc.value(_FLOAT, 0.0), False),
                        ("Scale", enc.value(_FLOAT, axis_scale), False),
                        ("Units", enc.text(axis_unit), False),
                    ]
                ),
                True,
            )
            for axis_scale, axis_unit in zip(scale, units, strict=True)
        ]
    )
    image_data = enc.group(
        [
            ("Calibrations", enc.group([("Dimension", dimensions, True)]), True),
            ("Data", enc.array(image.ravel()), False),
            ("DataType", enc.value(_LONG, data_type or _IMAGE_DATA_TYPE[image.dtype]), False),
            (
                "Dimensions",
                enc.group([("", enc.value(_ULONG, nx), False), ("", enc.value(_ULONG, ny), False)]),
                True,
            ),
            ("PixelDepth", enc.value(_LONG, image.dtype.itemsize), False),
        ]
    )
    device = enc.group([("Name", enc.text(device_name), False)])
    image_tags = enc.group([("Acquisition", enc.group([("Device", device, True)]), True)])
    image_entry = enc.group([("ImageData", image_data, True), ("ImageTags", image_tags, True)])
    root = enc.group([("ImageList", enc.group([("", image_entry, True)]), True)])
    end = bytes(8)
    if version == 3:
        header = struct.pack(">III", 3, 12 + len(root) + len(end) - 16, 1)
    else:
        header = struct.pack(">IQI", 4, 16 + len(root) + len(end) - 24, 1)
    return header + root + end


def write_dm(path, image: np.ndarray, *, version: int, **calibration) -> None:
    """Write ``image`` to ``path`` as a DM3 (``version=3``) or DM4 (``version=4``) file."""
    with open(path, "wb") as file:
        file.write(dm_bytes(image, version=version, **calibration))
