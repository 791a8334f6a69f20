"""MRC frame stacks: streaming reads and writes, including IMOD's 4-bit forms.

The header layout and mode table come from ``mrcfile`` (``mrcfile.dtypes.HEADER_DTYPE``,
``mrcfile.utils``); what mrcfile lacks is added here:

- mode 101: 4-bit pixels, each row packed on its own into ``(nx + 1) // 2`` bytes, left
  pixel in the low nibble; the header's nx is the true width.
- the older form: mode 0 bytes with half the true X size, recognised as IMOD does by the
  IMOD stamp (1146047817 at byte 152) with flag bit value 16 at byte 156, or by a single
  title containing "4 bits packed" on a K2/K3 super-resolution size.
- IMOD's mode-0 convention: bytes are unsigned unless the IMOD stamp is present with
  flag bit value 1 ("signed bytes"); mrcfile always reads mode 0 as int8.

Data are read and written frame by frame with plain file reads and writes rather than
mrcfile's memory maps: a memory map of a multi-GB output keeps every written page
resident, while streaming keeps memory at one frame.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from mrcfile.dtypes import HEADER_DTYPE
from mrcfile.utils import machine_stamp_from_byte_order

from dedkit.errors import DedkitError
from dedkit.io.blockio import pwrite_all
from dedkit.io.header_stats import FrameStats, frame_stats, nibble_stats
from dedkit.io.inputs import check_input_file
from dedkit.io.pack import packed_row_bytes, unpack_nibbles
from dedkit.io.stack import FrameReader, FrameWriter, StackInfo, pixel_size_xyz

__all__ = [
    "IMOD_STAMP",
    "IMOD_FLAG_SIGNED_BYTES",
    "IMOD_FLAG_4BIT",
    "MrcReader",
    "MrcWriter",
    "read_header",
    "is_packed_by_title",
]

IMOD_STAMP = 1146047817
#: imodFlags bit values (IMOD's iimage.h / mrcfiles.h)
IMOD_FLAG_SIGNED_BYTES = 1
IMOD_FLAG_4BIT = 16
_IMOD_STAMP_OFFSET = 152
_IMOD_FLAGS_OFFSET = 156
HEADER_BYTES = 1024

#: MRC mode -> dtype of the stored pixels (4-bit modes handled separately)
_MODE_DTYPES = {
    0: np.dtype(np.uint8),
    1: np.dtype(np.int16),
    2: np.dtype(np.float32),
    4: np.dtype(np.complex64),
    6: np.dtype(np.uint16),
    12: np.dtype(np.float16),
}
_DTYPE_MODES = {
    np.dtype(np.uint8): 0,
    np.dtype(np.int8): 0,
    np.dtype(np.int16): 1,
    np.dtype(np.float32): 2,
    np.dtype(np.complex64): 4,
    np.dtype(np.uint16): 6,
    np.dtype(np.float16): 12,
}

#: True (width, height) of K2 and K3 super-resolution frames: IMOD accepts a single
#: "4 bits packed" title as marking packed bytes only on these sizes (or transposed).
_SUPERRES_SIZES = [(7676, 7420), (7680, 7424), (11520, 8184)]


def is_packed_by_title(titles: list[str], stored_nx: int, ny: int) -> bool:
    """IMOD's title rule for mode-0 files with half the true X size.

    True when there is exactly one title, it contains "4 bits packed", and the true size
    (2 x stored nx by ny) is within 2 pixels of a K2/K3 super-resolution size or its
    transpose.
    """
    if len(titles) != 1 or "4 bits packed" not in titles[0]:
        return False
    true_nx = 2 * stored_nx
    for w, h in _SUPERRES_SIZES:
        for sx, sy in ((w, h), (h, w)):
            if abs(true_nx - sx) <= 2 and abs(ny - sy) <= 2:
                return True
    return False


def _header_dtype(little: bool) -> np.dtype:
    return HEADER_DTYPE if little else HEADER_DTYPE.newbyteorder()


def read_header(path) -> tuple[np.ndarray, bool]:
    """Read and sanity-check the 1024-byte header of an MRC file.

    Returns
    -------
    header : numpy structured scalar of mrcfile's HEADER_DTYPE (file byte order)
    little_endian : bool
    """
    path = check_input_file(path, "MRC file")
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES:
        raise DedkitError(
            f"not an MRC file: {len(raw)} bytes, shorter than the 1024-byte header", path=path
        )
    # The machine stamp says the byte order; old files have none, so fall back to the
    # order under which the sizes and mode make sense (as mrcfile does).
    stamp = raw[212:214]
    orders = [True, False] if stamp[:1] != b"\x11" else [False, True]
    for little in orders:
        header = np.frombuffer(raw, _header_dtype(little), count=1)[0]
        nx, ny, nz, mode = (int(header[k]) for k in ("nx", "ny", "nz", "mode"))
        if 0 < nx < 2**20 and 0 < ny < 2**20 and 0 < nz < 2**31 and mode in (*_MODE_DTYPES, 101):
            return header, little
    header = np.frombuffer(raw, HEADER_DTYPE, count=1)[0]
    raise DedkitError(
        "not a readable MRC file: header gives size "
        f"{int(header['nx'])} x {int(header['ny'])} x {int(header['nz'])}, "
        f"mode {int(header['mode'])} (dedkit reads modes 0, 1, 2, 4, 6, 12 and 101)",
        path=path,
    )


def _imod_flags(header: np.ndarray, little: bool) -> int | None:
    raw = header.tobytes()
    order = "<" if little else ">"
    stamp = int(np.frombuffer(raw, order + "i4", 1, _IMOD_STAMP_OFFSET)[0])
    if stamp != IMOD_STAMP:
        return None
    return int(np.frombuffer(raw, order + "i4", 1, _IMOD_FLAGS_OFFSET)[0])


def _titles(header: np.ndarray) -> list[str]:
    n = max(0, min(int(header["nlabl"]), 10))
    out = []
    for i in range(n):
        text = bytes(header["label"][i]).split(b"\0")[0].decode("ascii", "replace")
        out.append(text.rstrip())
    return out


def _pixel_size(header: np.ndarray) -> tuple[float, float, float] | None:
    """(x, y, z) in Angstrom from the cell size and sampling (cella / mx, my, mz).

    None unless both X and Y are calibrated (positive, finite); z is 0.0 when the file
    has no Z spacing (mz = 0 or a zero cell height, as for a 2-D image or a stack of
    frames from DE-Server), the value mrcfile's ``voxel_size`` gives too. Issue 13
    item 14: such a file is valid and its pixel size is (x, y).
    """
    mx, my, mz = (int(header[k]) for k in ("mx", "my", "mz"))
    cell = [float(header["cella"][k]) for k in ("x", "y", "z")]
    if mx <= 0 or my <= 0 or not all(math.isfinite(v) and v > 0 for v in cell[:2]):
        return None
    z = cell[2] / mz if mz > 0 and math.isfinite(cell[2]) and cell[2] > 0 else 0.0
    return (cell[0] / mx, cell[1] / my, z)


class MrcReader(FrameReader):
    """Lazy frame-by-frame reader of an MRC stack (modes 0, 1, 2, 4, 6, 12 and 101).

    Parameters
    ----------
    path : path-like

    Notes
    -----
    The header is checked against the file size before anything is allocated: a header
    that claims more data than the file holds is refused.
    """

    def __init__(self, path):
        self.path = Path(path)
        header, little = read_header(self.path)
        self._little = little
        self.header = header
        nx, ny, nz, mode = (int(header[k]) for k in ("nx", "ny", "nz", "mode"))
        flags = _imod_flags(header, little)
        titles = _titles(header)
        packing = "none"
        if mode == 101:
            packing = "mode101"
            stored_nx = packed_row_bytes(nx)
            stored = np.dtype(np.uint8)
            dtype = np.dtype(np.uint8)
        elif mode == 0 and (
            (flags is not None and flags & IMOD_FLAG_4BIT) or is_packed_by_title(titles, nx, ny)
        ):
            packing = "half-bytes"
            stored_nx = nx
            nx = 2 * nx
            stored = dtype = np.dtype(np.uint8)
        else:
            stored_nx = nx
            stored = _MODE_DTYPES[mode]
            if mode == 0 and flags is not None and flags & IMOD_FLAG_SIGNED_BYTES:
                stored = np.dtype(np.int8)
            dtype = stored
        self._stored = stored.newbyteorder("<" if little else ">")
        self._stored_shape = (ny, stored_nx)
        self._frame_bytes = ny * stored_nx * stored.itemsize
        nsymbt = int(header["nsymbt"])
        if nsymbt < 0:
            raise DedkitError(f"corrupt MRC header: extended header size {nsymbt}", path=path)
        self._offset = HEADER_BYTES + nsymbt
        needed = self._offset + nz * self._frame_bytes
        size = os.path.getsize(self.path)
        if size < needed:
            raise DedkitError(
                f"truncated or corrupt MRC file: header claims {nz} frames of {nx} x {ny} "
                f"(mode {mode}), {needed} bytes, but the file has {size} bytes",
                path=path,
            )
        self.info = StackInfo(
            path=str(self.path),
            format="mrc",
            shape=(nz, ny, nx),
            dtype=dtype,
            packing=packing,
            titles=titles,
            pixel_size=_pixel_size(header),
            mode=mode,
            extra={"imod_flags": flags, "little_endian": little, "extended_header_bytes": nsymbt},
        )
        self._file = open(self.path, "rb")  # noqa: SIM115 - kept open for lazy reads

    def _read_stored(self, index: int) -> np.ndarray:
        index = self._check_index(index)
        buf = np.empty(self._stored_shape, self._stored)
        self._file.seek(self._offset + index * self._frame_bytes)
        n = self._file.readinto(memoryview(buf).cast("B"))
        if n != self._frame_bytes:
            raise DedkitError(f"file ended inside frame {index}", path=self.path)
        if not self._stored.isnative:
            buf = buf.byteswap().view(buf.dtype.newbyteorder())
        return buf

    def read(self, index: int) -> np.ndarray:
        stored = self._read_stored(index)
        if self.info.packing != "none":
            return unpack_nibbles(stored, self.info.nx)
        return stored

    def read_packed(self, index: int) -> np.ndarray | None:
        if self.info.packing == "none":
            return None
        return self._read_stored(index)

    def close(self) -> None:
        self._file.close()


class MrcWriter(FrameWriter):
    """Streaming MRC stack writer (header finished with whole-stack statistics on close).

    Parameters
    ----------
    path : path-like
    shape : (nz, ny, nx)
        True size (for 4-bit data, the unpacked width).
    dtype : dtype
        uint8, int8, int16, uint16, float16, float32 or complex64.
    packing : {'none', 'mode101', 'half-bytes'}
        4-bit forms; 'half-bytes' needs an even nx and sets the IMOD 4-bit flag.
    titles : sequence of str
        Up to 10 titles of at most 80 characters.
    pixel_size : float, (x, y) or (x, y, z), optional
        Angstrom per pixel (see :func:`dedkit.io.stack.pixel_size_xyz`); a z of 0 (no Z
        spacing) is written as a zero cell height.
    force, inputs
        See :func:`dedkit.io.atomic.check_output_path`.
    """

    def __init__(
        self,
        path,
        shape,
        dtype,
        *,
        packing="none",
        titles=(),
        pixel_size=None,
        force=False,
        inputs=(),
    ):
        titles = [str(t) for t in titles]
        if len(titles) > 10:
            raise DedkitError(f"MRC holds at most 10 titles, got {len(titles)}", path=path)
        for t in titles:
            if len(t) > 80 or not t.isascii():
                raise DedkitError(f"MRC title is not ASCII of at most 80 characters: {t!r}")
        if packing not in ("none", "mode101", "half-bytes"):
            raise DedkitError(f"MRC files cannot hold {packing!r} packing", path=path)
        if packing == "none" and np.dtype(dtype) not in _DTYPE_MODES:
            raise DedkitError(f"MRC cannot store {np.dtype(dtype)} data", path=path)
        if packing == "half-bytes" and int(shape[2]) % 2:
            raise DedkitError(
                f"cannot write an odd width ({shape[2]}) as bytes with half the X size", path=path
            )
        self.titles = titles
        self.pixel_size = pixel_size_xyz(pixel_size, path)
        self.stats = FrameStats()
        super().__init__(path, shape, dtype, packing=packing, force=force, inputs=inputs)

    def _open(self) -> None:
        self._file = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in _finish/_abort
        self._file.write(bytes(HEADER_BYTES))
        self._file.flush()
        self._offset = HEADER_BYTES

    def _write(self, frame: np.ndarray) -> None:
        self.stats = self.stats + frame_stats(frame)
        data = np.ascontiguousarray(frame.astype(frame.dtype.newbyteorder("<"), copy=False))
        self._offset = pwrite_all(self._file.fileno(), data, self._offset)

    def _write_packed(self, packed: np.ndarray) -> None:
        nx = self.shape[2]
        self.stats = self.stats + nibble_stats(packed, nx)
        self._offset = pwrite_all(self._file.fileno(), packed, self._offset)

    def _finish(self) -> None:
        self._file.seek(0)
        self._file.write(self._header().tobytes())
        self._file.close()

    def _abort_files(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    def _header(self) -> np.ndarray:
        nz, ny, nx = self.shape
        h = np.zeros((), HEADER_DTYPE)
        flags = 0
        if self.packing == "mode101":
            mode = 101
        elif self.packing == "half-bytes":
            mode, nx, flags = 0, nx // 2, IMOD_FLAG_4BIT
        else:
            mode = _DTYPE_MODES[self.dtype]
            if self.dtype == np.int8:
                flags = IMOD_FLAG_SIGNED_BYTES
        h["nx"], h["ny"], h["nz"], h["mode"] = nx, ny, nz, mode
        h["mx"], h["my"], h["mz"] = nx, ny, nz
        # no pixel size is written as a zero cell (mrcfile's voxel_size 0, "not set"),
        # not as IMOD's 1 A default, which would claim a size nobody measured; IMOD's
        # programs read a zero cell as 1 A all the same
        ps = self.pixel_size or (0.0, 0.0, 0.0)
        h["cella"] = (ps[0] * nx, ps[1] * ny, ps[2] * nz)
        h["cellb"] = (90.0, 90.0, 90.0)
        h["mapc"], h["mapr"], h["maps"] = 1, 2, 3
        # ispg 0 marks an image stack (MRC2014), which a frame stack is
        h["ispg"] = 0
        h["exttyp"] = b"\0\0\0\0"
        h["nversion"] = 20141
        h["map"] = b"MAP "
        h["machst"] = machine_stamp_from_byte_order("<")
        s = self.stats
        h["dmin"], h["dmax"], h["dmean"], h["rms"] = s.minimum, s.maximum, s.mean, s.rms
        h["nlabl"] = len(self.titles)
        for i, t in enumerate(self.titles):
            h["label"][i] = t.encode("ascii").ljust(80)
        raw = bytearray(h.tobytes())
        raw[_IMOD_STAMP_OFFSET : _IMOD_STAMP_OFFSET + 4] = np.int32(IMOD_STAMP).tobytes()
        raw[_IMOD_FLAGS_OFFSET : _IMOD_FLAGS_OFFSET + 4] = np.int32(flags).tobytes()
        return np.frombuffer(bytes(raw), HEADER_DTYPE, 1)[0]
