"""TIFF frame stacks and folders of numbered single-image files.

TIFF stores row 0 at the TOP of the image; dedkit arrays have row 0 at the bottom (Y up,
see :mod:`dedkit`). Every page read here is flipped in Y and every frame written is
flipped back, so ``tifffile.imread(path)[i]`` equals ``np.flipud(reader.read(i))``.

Three layouts of 4-bit data are understood:

- 'serialemccd': 8-bit pages of half the true width, left pixel in the LOW nibble, as
  SerialEMCCD saves K2/K3 frames; recognised by "SerialEMCCD" and "4 bits packed" in the
  ImageDescription of the first page.
- 'tiff4': BitsPerSample 4, left pixel in the HIGH nibble (FillOrder 1) or the LOW
  nibble (FillOrder 2), each row padded to whole bytes.
- 'none': any other page is read as it is stored.

Pages are decoded one at a time through tifffile and imagecodecs; a stack is never
loaded whole.
"""

from __future__ import annotations

import abc
import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from dedkit.errors import DedkitError, one_line
from dedkit.io.inputs import check_input_file
from dedkit.io.pack import packed_row_bytes, unpack_nibbles
from dedkit.io.stack import FOLDER_KIND, FrameReader, FrameWriter, StackInfo, pixel_size_xyz

__all__ = [
    "COMPRESSIONS",
    "TIFF_PACKINGS",
    "TiffReader",
    "TiffWriter",
    "FolderReader",
    "FolderWriter",
    "numbered_frame_files",
]

#: Compressions the writers produce (and the names :attr:`StackInfo.compression` uses).
COMPRESSIONS = ("none", "lzw", "zip", "zstd")

#: Packings a TIFF file can hold.
TIFF_PACKINGS = ("none", "serialemccd", "tiff4")

#: Page dtypes read and written (4-bit data is read as uint8).
TIFF_DTYPES = (np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.uint16), np.dtype(np.float32))

#: Suffixes of the single-image files a frame folder may hold.
FOLDER_SUFFIXES = (".tif", ".tiff", ".mrc")

SERIALEMCCD_MARKERS = ("SerialEMCCD", "4 bits packed")

# Title line added to a 'serialemccd' stack whose titles do not already carry both markers.
SERIALEMCCD_PACKED_TITLE = "SerialEMCCD-style frames, 4 bits packed low nibble first (dedkit)"

_TIFFFILE_COMPRESSION = {"none": None, "lzw": "lzw", "zip": "adobe_deflate", "zstd": "zstd"}

_COMPRESSION_NAMES = {
    tifffile.COMPRESSION.NONE: "none",
    tifffile.COMPRESSION.LZW: "lzw",
    tifffile.COMPRESSION.ADOBE_DEFLATE: "zip",
    tifffile.COMPRESSION.DEFLATE: "zip",
    tifffile.COMPRESSION.ZSTD: "zstd",
    tifffile.COMPRESSION.ZSTD_DEPRECATED: "zstd",
}

# Angstrom per resolution unit for the units that name a length.
_ANGSTROM_PER_RESUNIT = {
    tifffile.RESUNIT.CENTIMETER: 1e8,
    tifffile.RESUNIT.MILLIMETER: 1e7,
    tifffile.RESUNIT.MICROMETER: 1e4,
}
# Keys are lower case (both Angstrom characters lower to U+00E5); ImageJ may write the
# micro sign as the escape sequence itself.
_ANGSTROM_PER_IMAGEJ_UNIT = {
    "micron": 1e4,
    "um": 1e4,
    "\u00b5m": 1e4,
    "\\u00b5m": 1e4,
    "nm": 10.0,
    "nanometer": 10.0,
    "\u00e5": 1.0,
    "angstrom": 1.0,
}

# Classic TIFF addresses at most 4 GiB; LZW can expand incompressible 8-bit data by up to
# 12/8, so compressed stacks are sized for that worst case before choosing BigTIFF.
_CLASSIC_TIFF_LIMIT = 3.9e9
_WORST_CASE_EXPANSION = {"none": 1.0, "lzw": 1.5, "zip": 1.01, "zstd": 1.01}

# The most a page can grow when decoded, per compression: deflate's limit is 1032:1,
# PackBits' 64:1; LZW codes of at most 12 bits stand for strings of at most 4096 bytes.
# zstd, LZMA and others have no such limit: 65536:1 still admits an empty 24 MB K3
# frame. Anything declaring more is refused before the decoder allocates it.
_MAX_EXPANSION = {
    tifffile.COMPRESSION.ADOBE_DEFLATE: 1032,
    tifffile.COMPRESSION.DEFLATE: 1032,
    tifffile.COMPRESSION.PACKBITS: 64,
    tifffile.COMPRESSION.LZW: 4096,
}
_MAX_EXPANSION_OTHER = 65536
# Pages of a few bytes (a 1 x 1 image, the writer's padding) need no ratio.
_EXPANSION_SLACK = 4096

# tifffile reverses the bit order of each byte for FillOrder 2 and then takes the high
# nibble first; reversing the 4 bits of each value gives the pixels of the spec's layout,
# where the left pixel sits in the low nibble with its bits in their usual order.
_REVERSE_4_BITS = np.array([int(f"{v:04b}"[::-1], 2) for v in range(16)], np.uint8)


def _is_serialemccd_title(text: str) -> bool:
    return all(marker in text for marker in SERIALEMCCD_MARKERS)


def _resolution_unit_name(value: int) -> str:
    try:
        return tifffile.RESUNIT(value).name.lower()
    except ValueError:
        return f"resolution unit {int(value)}"


def _read_compression_name(value: int) -> str:
    """dedkit's name for a Compression tag value; tifffile's for schemes dedkit never writes."""
    if value in _COMPRESSION_NAMES:
        return _COMPRESSION_NAMES[value]
    try:
        return tifffile.COMPRESSION(value).name.lower()
    except ValueError:
        return f"tiff compression {int(value)}"


class TiffReader(FrameReader):
    """Reads a TIFF stack one page at a time.

    Parameters
    ----------
    path : path-like
        A TIFF file whose pages all have the same shape and dtype: uint8, int16, uint16 or
        float32, SerialEMCCD's packed 4-bit bytes or 4-bit pages.

    Attributes
    ----------
    info : StackInfo
        ``format`` 'tiff'; ``titles`` the first page's ImageDescription split into lines;
        ``compression`` 'none', 'lzw', 'zip', 'zstd' (or tifffile's lower-case name for
        other schemes); ``pixel_size`` in Angstrom only where the file states it without
        ambiguity (ResolutionUnit centimetre, millimetre or micrometre, or ImageJ metadata
        with a length unit), else None. ``extra['resolution']`` keeps the raw
        (XResolution, YResolution, unit name) when the file has them.

    Raises
    ------
    DedkitError
        When the file cannot be parsed as TIFF or its pages differ or hold unsupported
        data.
    """

    def __init__(self, path):
        self.path = check_input_file(path, "TIFF file")
        try:
            self._tiff = tifffile.TiffFile(self.path)
        except FileNotFoundError:
            raise DedkitError("no such file", path=self.path) from None
        # tifffile raises struct, value and OS errors of its own on damaged files.
        except Exception as e:
            raise DedkitError(f"cannot read as TIFF: {one_line(e)}", path=self.path) from None
        try:
            self.info = self._inspect()
        except BaseException:
            self._tiff.close()
            raise

    def _inspect(self) -> StackInfo:
        try:
            pages = list(self._tiff.pages)
        except Exception as e:
            raise DedkitError(
                f"cannot read the TIFF directories: {one_line(e)}", path=self.path
            ) from None
        if not pages:
            raise DedkitError("TIFF file has no images", path=self.path)
        first = pages[0]
        layout = (first.shape, first.dtype, first.bitspersample)
        for index, page in enumerate(pages[1:], start=1):
            if (page.shape, page.dtype, page.bitspersample) != layout:
                raise DedkitError(
                    f"page {index} is {page.bitspersample}-bit {page.dtype} of shape "
                    f"{page.shape}, page 0 is {first.bitspersample}-bit {first.dtype} of "
                    f"shape {first.shape}; all pages of a frame stack must match",
                    path=self.path,
                )
        file_size = self.path.stat().st_size
        for index, page in enumerate(pages):
            self._check_page_size(index, page, file_size)
        if len(first.shape) != 2:
            raise DedkitError(
                f"pages of shape {first.shape} are not single-channel 2-D images",
                path=self.path,
            )
        dtype = np.dtype(first.dtype)
        if dtype not in TIFF_DTYPES:
            names = ", ".join(d.name for d in TIFF_DTYPES)
            raise DedkitError(
                f"{first.bitspersample}-bit {dtype} pages are not supported; use {names}",
                path=self.path,
            )
        description = first.description or ""
        ny, page_width = first.shape
        if first.bitspersample == 4:
            packing, nx = "tiff4", page_width
        elif dtype == np.uint8 and _is_serialemccd_title(description):
            packing, nx = "serialemccd", 2 * page_width
        else:
            packing, nx = "none", page_width
        extra = {}
        if "XResolution" in first.tags:
            extra["resolution"] = (*first.resolution, _resolution_unit_name(first.resolutionunit))
        if packing == "tiff4":
            extra["fill_order"] = first.fillorder
        return StackInfo(
            path=str(self.path),
            format="tiff",
            shape=(len(pages), ny, nx),
            dtype=dtype,
            packing=packing,
            titles=description.splitlines(),
            pixel_size=self._pixel_size(first),
            compression=_read_compression_name(first.compression),
            extra=extra,
        )

    def _check_page_size(self, index: int, page, file_size: int) -> None:
        """Refuse a page whose header declares more than its stored bytes can hold.

        A lying ImageWidth/ImageLength would otherwise make the decoder allocate the
        declared size (64 GB for a 178-byte file): the page's strips or tiles must lie
        inside the file, and the decoded page may exceed them only by what its
        compression can achieve (:data:`_MAX_EXPANSION`).
        """
        try:
            offsets, counts = page.dataoffsets, page.databytecounts
            decoded = int(page.nbytes)
        # tifffile computes these from the tags, which a damaged file may not have.
        except Exception as e:
            raise DedkitError(
                f"page {index}: unreadable layout ({one_line(e)})", path=self.path
            ) from None
        stored = 0
        for offset, count in zip(offsets, counts, strict=False):
            if offset < 0 or count < 0 or offset + count > file_size:
                raise DedkitError(
                    f"truncated or corrupt TIFF: page {index} has data at bytes "
                    f"{offset}-{offset + count}, the file has {file_size}",
                    path=self.path,
                )
            stored += int(count)
        ratio = _MAX_EXPANSION.get(page.compression, _MAX_EXPANSION_OTHER)
        bits = max(1, int(page.bitspersample or 8))
        if page.compression == tifffile.COMPRESSION.NONE:
            ratio = max(1, 8 // bits) if bits < 8 else 1
        if decoded > ratio * stored + _EXPANSION_SLACK:
            raise DedkitError(
                f"truncated or corrupt TIFF: page {index} declares {page.shape} "
                f"({decoded} bytes) but stores {stored} bytes",
                path=self.path,
            )

    def _pixel_size(self, page) -> tuple[float, float, float] | None:
        """(x, y, z) in Angstrom from the resolution tags, when their unit is a length.

        Inch resolutions are left out: most software writes a nominal 72 or 300 dpi there,
        and SerialEMCCD writes 1e8 / (pixel in Angstrom) labelled as per inch.
        """
        if "XResolution" not in page.tags:
            return None
        x_resolution, y_resolution = page.resolution
        if x_resolution <= 0 or y_resolution <= 0:
            return None
        angstrom_per_unit = _ANGSTROM_PER_RESUNIT.get(page.resolutionunit)
        imagej = self._tiff.imagej_metadata
        if angstrom_per_unit is None and imagej and page.resolutionunit == tifffile.RESUNIT.NONE:
            unit = str(imagej.get("unit", "")).strip().lower()
            angstrom_per_unit = _ANGSTROM_PER_IMAGEJ_UNIT.get(unit)
        if angstrom_per_unit is None:
            return None
        x = angstrom_per_unit / x_resolution
        return (x, angstrom_per_unit / y_resolution, x)

    def _page(self, index: int) -> np.ndarray:
        """Page ``index`` as tifffile decodes it (row 0 at the top)."""
        index = self._check_index(index)
        try:
            return self._tiff.pages[index].asarray()
        # Damaged data surfaces as whatever tifffile or the codec raises.
        except Exception as e:
            raise DedkitError(f"cannot read frame {index}: {one_line(e)}", path=self.path) from None

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as a (ny, nx) array, Y up; 4-bit data unpacked to uint8."""
        page = self._page(index)[::-1]
        if self.info.packing == "serialemccd":
            return unpack_nibbles(np.ascontiguousarray(page), self.info.nx, low_first=True)
        if self.info.packing == "tiff4" and self.info.extra["fill_order"] == 2:
            return _REVERSE_4_BITS[page]
        return np.ascontiguousarray(page)

    def read_packed(self, index: int) -> np.ndarray | None:
        """SerialEMCCD's packed rows of frame ``index`` (low nibble first), Y up.

        None for other stacks: a 4-bit TIFF packs the high nibble first.
        """
        if self.info.packing != "serialemccd":
            return None
        return np.ascontiguousarray(self._page(index)[::-1])

    def close(self) -> None:
        """Release the file."""
        self._tiff.close()


@dataclass(frozen=True)
class _TiffPageFormat:
    """How every page of one output is encoded; shared by the stack and folder writers."""

    compression: str | None
    bitspersample: int | None
    description: str
    resolution: tuple[float, float] | None

    def write(self, tiff: tifffile.TiffWriter, page: np.ndarray, *, first: bool) -> None:
        """Append ``page`` (row 0 at the top, as stored) to ``tiff`` as its own IFD.

        The first page of a file carries the description and the DateTime tag, which
        IMOD requires before it treats 8-bit pages as SerialEMCCD's packed 4-bit data.
        """
        tiff.write(
            page,
            photometric="minisblack",
            compression=self.compression,
            bitspersample=self.bitspersample,
            description=self.description if first and self.description else None,
            datetime=True if first else None,
            software="dedkit" if first else False,
            resolution=self.resolution,
            resolutionunit=tifffile.RESUNIT.CENTIMETER if self.resolution else None,
            metadata=None,
            contiguous=False,
        )


def _compression_name(path, compression) -> str:
    """One of :data:`COMPRESSIONS` for a compression option (None means 'none')."""
    name = "none" if compression is None else str(compression).lower()
    if name not in _TIFFFILE_COMPRESSION:
        raise DedkitError(
            f"unknown TIFF compression {compression!r}; use one of {', '.join(COMPRESSIONS)}",
            path=path,
        )
    return name


def _tiff_page_format(
    path, compression: str, packing: str, dtype: np.dtype, nx: int, titles, pixel_size
) -> _TiffPageFormat:
    """Check the options of a TIFF output and turn them into a page format."""
    if packing not in TIFF_PACKINGS:
        raise DedkitError(
            f"packing {packing!r} cannot be written to TIFF; use one of "
            f"{', '.join(TIFF_PACKINGS)} ('mode101' and 'half-bytes' are MRC layouts)",
            path=path,
        )
    if packing == "none" and dtype not in TIFF_DTYPES:
        names = ", ".join(d.name for d in TIFF_DTYPES)
        raise DedkitError(f"cannot write {dtype} frames to TIFF; use {names}", path=path)
    if packing == "serialemccd" and nx % 2:
        raise DedkitError(
            f"SerialEMCCD packing stores two pixels per byte and needs an even width, not {nx}",
            path=path,
        )
    if packing == "tiff4" and compression != "none":
        raise DedkitError(
            "4-bit TIFF pages can only be written uncompressed (tifffile cannot compress "
            "them); use compression 'none' or packing 'serialemccd'",
            path=path,
        )
    lines = [line for title in titles for line in str(title).splitlines()]
    if packing == "serialemccd":
        # IMOD only looks for the markers in the first line.
        marked = [line for line in lines if _is_serialemccd_title(line)]
        first_line = marked[0] if marked else SERIALEMCCD_PACKED_TITLE
        lines = [first_line] + [line for line in lines if line is not first_line]
    else:
        # As IMOD does when it copies titles: a reader must not take these pages for
        # SerialEMCCD's packed bytes.
        lines = [
            line.replace("4 bits packed", "4-bits packed") if _is_serialemccd_title(line) else line
            for line in lines
        ]
    description = "\n".join(lines)
    if not description.isascii():
        raise DedkitError("TIFF titles must be plain ASCII text", path=path)
    return _TiffPageFormat(
        compression=_TIFFFILE_COMPRESSION[compression],
        bitspersample=4 if packing == "tiff4" else None,
        description=description,
        resolution=_resolution_per_cm(path, pixel_size),
    )


#: largest resolution (pixels per cm) a TIFF RATIONAL of two uint32 holds
_MAX_RESOLUTION_PER_CM = float(2**32 - 1)


def _resolution_per_cm(path, pixel_size) -> tuple[float, float] | None:
    """(XResolution, YResolution) in pixels per centimetre for a pixel size in Angstrom."""
    sizes = pixel_size_xyz(pixel_size, path)
    if sizes is None:
        return None
    # TIFF has no Z spacing: only x and y are written
    per_cm = (1e8 / sizes[0], 1e8 / sizes[1])
    # a resolution is a RATIONAL of two uint32: more than 2**32 - 1 pixels per cm (pixels
    # under 0.0233 A) cannot be stored, and a pixel size is never dropped in silence
    if max(per_cm) > _MAX_RESOLUTION_PER_CM:
        raise DedkitError(
            f"pixel size {min(sizes[:2]):.3g} A is smaller than a TIFF resolution tag can "
            f"hold ({1e8 / _MAX_RESOLUTION_PER_CM:.4f} A); write MRC instead",
            path=path,
        )
    return per_cm


class _TiffFrameWriter(FrameWriter):
    """What the TIFF stack and folder writers share: option checks and page encoding."""

    def __init__(
        self,
        path,
        shape,
        dtype,
        *,
        compression=None,
        packing="none",
        titles=(),
        pixel_size=None,
        force=False,
        inputs=(),
    ):
        self._compression = _compression_name(path, compression)
        self._page_format = _tiff_page_format(
            path, self._compression, packing, np.dtype(dtype), int(shape[2]), titles, pixel_size
        )
        super().__init__(path, shape, dtype, packing=packing, force=force, inputs=inputs)

    def expected_nbytes(self) -> int:
        """Uncompressed size; 0 (not checked ahead) when compressed, as the ratio is
        unknown."""
        return super().expected_nbytes() if self._compression == "none" else 0

    def _stored_page_nbytes(self) -> int:
        ny, nx = self.shape[1:]
        if self.packing == "none":
            return ny * nx * self.dtype.itemsize
        return ny * packed_row_bytes(nx)

    def _write(self, frame: np.ndarray) -> None:
        self._write_page(np.ascontiguousarray(frame[::-1]))

    def _write_packed(self, packed: np.ndarray) -> None:
        if self.packing == "serialemccd":
            self._write_page(np.ascontiguousarray(packed[::-1]))
        else:
            # tifffile packs 4-bit pages itself (high nibble first) from one value per byte.
            unpacked = unpack_nibbles(packed, self.shape[2], low_first=True)
            self._write_page(np.ascontiguousarray(unpacked[::-1]))

    @abc.abstractmethod
    def _write_page(self, page: np.ndarray) -> None:
        """Store one page, already in TIFF order (row 0 at the top) and packed form."""


class TiffWriter(_TiffFrameWriter):
    """Streams frames into a multi-page TIFF, one page per frame.

    Parameters
    ----------
    path : path-like
        The TIFF file to create; written under a temporary name and renamed by
        :meth:`close`.
    shape : (nz, ny, nx)
        True frame size (unpacked width for 4-bit data).
    dtype : numpy dtype
        uint8, int16, uint16 or float32 (4-bit stacks are always uint8). Frames are
        converted or packed by :meth:`FrameWriter.write`, which counts changed values.
    compression : {None, 'none', 'lzw', 'zip', 'zstd'}
        'zip' writes Adobe Deflate (tag value 8), which IMOD and libtiff read.
    packing : {'none', 'serialemccd', 'tiff4'}
        'serialemccd' writes 8-bit pages of half width, left pixel in the low nibble, and
        puts first the title line with "SerialEMCCD" and "4 bits packed" (the first such
        line of ``titles``, or one added), where IMOD looks for it. IMOD also needs the
        DateTime tag, which is written, and no later title line whose first word ends in
        a colon. 'tiff4' writes BitsPerSample 4 pages, left
        pixel in the high nibble, uncompressed only.
    titles : sequence of str
        Lines of the ImageDescription of the first page (ASCII). With any packing but
        'serialemccd', "4 bits packed" in a SerialEMCCD title becomes "4-bits packed",
        as IMOD writes it, so that the output is not mistaken for packed data.
    pixel_size : float or (x, y, z) in Angstrom, optional
        Written as XResolution / YResolution in pixels per centimetre.
    force : bool
        Replace an existing file.
    inputs : sequence of path-like
        Files being read, which the output may not replace.

    Raises
    ------
    DedkitError
        For an unknown compression or packing, an unsupported dtype, an odd width with
        'serialemccd', a compressed 'tiff4' stack, non-ASCII titles or a pixel size that
        is not positive.
    """

    _tiff: tifffile.TiffWriter | None = None

    def _open(self) -> None:
        expansion = _WORST_CASE_EXPANSION[self._compression]
        worst_case_bytes = self.shape[0] * self._stored_page_nbytes() * expansion
        self._tiff = tifffile.TiffWriter(
            self.tmp_path, bigtiff=worst_case_bytes > _CLASSIC_TIFF_LIMIT
        )

    def _write_page(self, page: np.ndarray) -> None:
        self._page_format.write(self._tiff, page, first=self.n_written == 0)

    def _finish(self) -> None:
        self._tiff.close()
        self._tiff = None

    def _abort_files(self) -> None:
        if self._tiff is not None:
            # The temporary file is about to be deleted; a failing close changes nothing.
            with contextlib.suppress(Exception):
                self._tiff.close()
            self._tiff = None


class FolderWriter(_TiffFrameWriter):
    """Writes one single-page TIFF file per frame into a new folder.

    The files are named as SerialEMCCD names them when saving one frame per file,
    ``<folder name>_<number>.tif`` with the number from 1 and at least 3 digits
    (``%03d``). The folder is built under a temporary name and renamed by :meth:`close`.
    Parameters are those of :class:`TiffWriter`; every file carries the titles,
    compression, packing and pixel size. The folder carries dedkit's manifest (kind
    "numbered images"), so that ``--force`` may later replace it, and only it.
    """

    folder_kind = FOLDER_KIND

    def _open(self) -> None:
        self.tmp_path.mkdir()

    def _write_page(self, page: np.ndarray) -> None:
        file = self.tmp_path / f"{self.path.name}_{self.n_written + 1:03d}.tif"
        with tifffile.TiffWriter(file) as tiff:
            self._page_format.write(tiff, page, first=True)

    def _finish(self) -> None:
        """Nothing is left open between frames."""


def numbered_frame_files(folder) -> list[Path]:
    """The single-image files of a frame folder, in the order of their numbers.

    Files with suffix .tif, .tiff or .mrc (any case) count, except hidden ones (name
    starting with '.'). Each is ordered by the last run of digits in its name, compared
    as a number, so ``frame_2.tif`` comes before ``frame_10.tif``.

    Raises
    ------
    DedkitError
        When there are no such files, one has no number or two have the same number.
    """
    folder = Path(folder)
    candidates = [
        p
        for p in folder.iterdir()
        # not is_dir(): a FIFO or device among the frames is refused by the reader, not skipped
        if p.suffix.lower() in FOLDER_SUFFIXES and not p.name.startswith(".") and not p.is_dir()
    ]
    if not candidates:
        raise DedkitError(
            f"folder has no {', '.join(FOLDER_SUFFIXES)} files to read as frames", path=folder
        )
    numbered = {}
    for file in candidates:
        digits = re.findall(r"\d+", file.stem)
        if not digits:
            raise DedkitError(
                f"{file.name} has no frame number in its name; files in a frame folder "
                "are ordered by the last number in their names",
                path=folder,
            )
        number = int(digits[-1])
        if number in numbered:
            raise DedkitError(
                f"{numbered[number].name} and {file.name} have the same frame number {number}",
                path=folder,
            )
        numbered[number] = file
    return [numbered[number] for number in sorted(numbered)]


def _open_frame_file(file: Path) -> FrameReader:
    if file.suffix.lower() == ".mrc":
        from dedkit.io.mrc import MrcReader

        return MrcReader(file)
    return TiffReader(file)


class FolderReader(FrameReader):
    """Reads a folder of numbered single-image files as one stack.

    Parameters
    ----------
    path : path-like
        A folder such as SerialEM creates to save one frame per file: files ending in
        .tif, .tiff or .mrc, each holding one frame, ordered by the last number in their
        names (see :func:`numbered_frame_files`).

    Attributes
    ----------
    info : StackInfo
        ``format`` 'folder'; titles, packing, compression and pixel size are those of the
        first file; ``extra['files']`` lists the file names in frame order.

    Raises
    ------
    DedkitError
        When the folder holds no frame files, a name has no number, a file holds more
        than one frame or the files differ in shape, dtype or packing.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DedkitError("not a folder", path=self.path)
        self._files = numbered_frame_files(self.path)
        first = None
        for file in self._files:
            with _open_frame_file(file) as reader:
                info = reader.info
            if info.nz != 1:
                raise DedkitError(
                    f"{file.name} holds {info.nz} frames; a frame folder has one per file",
                    path=self.path,
                )
            layout = (info.shape, info.dtype, info.packing)
            if first is None:
                first, first_layout = info, layout
            elif layout != first_layout:
                raise DedkitError(
                    f"{file.name} holds a {info.packing} {info.dtype} frame of "
                    f"{info.nx} x {info.ny}, {self._files[0].name} a {first.packing} "
                    f"{first.dtype} frame of {first.nx} x {first.ny}",
                    path=self.path,
                )
        self.info = StackInfo(
            path=str(self.path),
            format="folder",
            shape=(len(self._files), first.ny, first.nx),
            dtype=first.dtype,
            packing=first.packing,
            titles=list(first.titles),
            pixel_size=first.pixel_size,
            mode=first.mode,
            compression=first.compression,
            extra={"files": [file.name for file in self._files]},
        )

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` (the file at that place in number order), Y up."""
        with _open_frame_file(self._files[self._check_index(index)]) as reader:
            return reader.read(0)

    def read_packed(self, index: int) -> np.ndarray | None:
        """Packed rows of frame ``index`` where its file stores them low nibble first."""
        with _open_frame_file(self._files[self._check_index(index)]) as reader:
            return reader.read_packed(0)
