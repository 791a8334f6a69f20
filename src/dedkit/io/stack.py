"""Frame stacks, whatever the file format: one lazy reader and one streaming writer API.

``open_stack(path)`` opens an MRC file, a TIFF file, an EER movie or a folder of numbered
single-image files and returns a :class:`FrameReader` that reads one frame at a time (never
the whole stack). ``create_stack(path, ...)`` returns a :class:`FrameWriter` that takes one
frame at a time and writes to a temporary name, renamed to ``path`` only when
:meth:`FrameWriter.close` completes (see :mod:`dedkit.io.atomic`).

Every frame crossing this API is in dedkit's convention: row 0 at the bottom (Y up), 4-bit
data unpacked to one uint8 per pixel. Packed data is available as-is through
:meth:`FrameReader.read_packed` for code that works on nibbles directly. EER movies are
the exception: their frames keep the bitstream's row order, as RELION and MotionCor3
render them (see :mod:`dedkit.io.eer`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import (
    CommitOnSuccess,
    FolderOutput,
    atomic_output,
    check_free_space,
    check_outputs,
)
from dedkit.io.pack import PackResult, convert_dtype, pack_4bit, packed_row_bytes
from dedkit.io.titles import FrameTitleInfo, parse_frame_titles

__all__ = [
    "PACKINGS",
    "StackInfo",
    "FrameReader",
    "FrameWriter",
    "open_stack",
    "create_stack",
    "format_from_path",
    "pixel_size_xyz",
]

#: How 4-bit data is laid out in a file. 'none': not packed; 'mode101': MRC mode 101;
#: 'half-bytes': MRC mode 0 with half the true X size; 'serialemccd': SerialEMCCD's 8-bit
#: TIFF pages of half width, low nibble first; 'tiff4': TIFF with BitsPerSample 4.
PACKINGS = ("none", "mode101", "half-bytes", "serialemccd", "tiff4")

MRC_SUFFIXES = {".mrc", ".mrcs", ".st", ".ali", ".map", ".rec", ".preali"}
TIFF_SUFFIXES = {".tif", ".tiff"}
#: Read only (DigitalMicrograph images and stacks, see :class:`dedkit.io.dm.DmReader`).
DM_SUFFIXES = {".dm3", ".dm4"}
#: Read only (Falcon EER movies, see :class:`dedkit.io.eer.EerReader`).
EER_SUFFIX = ".eer"


@dataclass
class StackInfo:
    """What a frame stack holds, independent of its format.

    Attributes
    ----------
    path : str
    format : str
        'mrc', 'tiff', 'folder', 'dm' (DM3/DM4, read only) or 'eer' (read only).
    shape : (nz, ny, nx)
        True size in pixels (unpacked width for 4-bit data).
    dtype : numpy.dtype
        dtype of the frames :meth:`FrameReader.read` returns (uint8 for 4-bit data).
    packing : str
        One of :data:`PACKINGS`.
    titles : list of str
        MRC title lines, or the TIFF ImageDescription split into lines. The r/f value
        they record is :attr:`rotflip`.
    pixel_size : tuple of float or None
        (x, y, z) pixel size in Angstrom when the file records X and Y; z is 0.0 when it
        records no Z spacing (an MRC file with mz = 0 or a zero cell height).
    mode : int or None
        MRC mode number (101 for 4-bit), None for other formats.
    compression : str or None
        TIFF compression ('none', 'lzw', 'zip', 'zstd'), None for MRC.
    extra : dict
        Format-specific details (e.g. the IMOD flags of an MRC header).
    """

    path: str
    format: str
    shape: tuple[int, int, int]
    dtype: np.dtype
    packing: str = "none"
    titles: list[str] = field(default_factory=list)
    pixel_size: tuple[float, float, float] | None = None
    mode: int | None = None
    compression: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def nz(self) -> int:
        return self.shape[0]

    @property
    def ny(self) -> int:
        return self.shape[1]

    @property
    def nx(self) -> int:
        return self.shape[2]

    @property
    def frame_titles(self) -> FrameTitleInfo:
        """What SerialEMCCD's title lines say about the frames (see :mod:`dedkit.io.titles`)."""
        return parse_frame_titles(self.titles)

    @property
    def rotflip(self) -> int | None:
        """The r/f value (0-7) the frames were saved with, from their titles; None when the
        titles do not record it.

        It is the operation that turns the camera's orientation (that of the gain
        reference and the defect list) into the frames' orientation, the value
        ``clip norm -R -1`` applies to the gain reference. Pass the whole info to
        :func:`dedkit.frames.gain.prepare_gain` to have it applied.
        """
        value = self.frame_titles.rotflip
        return value if value is None or 0 <= value <= 7 else None

    @property
    def is_4bit(self) -> bool:
        return self.packing != "none"

    @property
    def frame_nbytes(self) -> int:
        """Bytes of one frame as :meth:`FrameReader.read` returns it."""
        return self.ny * self.nx * np.dtype(self.dtype).itemsize


class FrameReader(abc.ABC):
    """Reads frames one at a time. Use as a context manager or call :meth:`close`."""

    info: StackInfo

    def __len__(self) -> int:
        return self.info.nz

    @abc.abstractmethod
    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as a (ny, nx) array, Y up, 4-bit data unpacked to uint8."""

    def read_packed(self, index: int) -> np.ndarray | None:
        """Frame ``index`` as packed rows (ny, (nx+1)//2) uint8, left pixel in the LOW
        nibble, Y up; None when the stack is not 4-bit or the file packs differently."""
        return None

    def __iter__(self):
        for i in range(len(self)):
            yield self.read(i)

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range for a stack of {n} frames")
        return index % n

    def close(self) -> None:  # noqa: B027 - readers without resources need no close
        """Release the file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FrameWriter(CommitOnSuccess, abc.ABC):
    """Writes frames one at a time to a temporary name; :meth:`close` renames it into place.

    Subclasses implement :meth:`_open`, :meth:`_write` (frames of the stack's dtype),
    :meth:`_write_packed` (4-bit stacks: low-nibble-first rows) and :meth:`_finish`
    against ``self.tmp_path``; this class handles the output-path rules, dtype conversion
    and 4-bit packing with counts of changed values, the atomic rename, the frame count
    and cleanup on error.

    A writer whose :attr:`folder_kind` is set writes a folder: an existing folder is
    replaced only when it is a dedkit output of that kind (see :mod:`dedkit.io.atomic`).
    Before anything is written the output's file system must have room for the
    uncompressed data (:meth:`expected_nbytes`).
    """

    #: kind of folder output ("numbered images"), None for a file
    folder_kind: str | None = None

    def __init__(self, path, shape, dtype, *, packing="none", force=False, inputs=()):
        output = FolderOutput(path, self.folder_kind) if self.folder_kind else path
        self.path = check_outputs([output], inputs, force)[0]
        nz, ny, nx = (int(v) for v in shape)
        if min(nz, ny, nx) <= 0:
            raise DedkitError(f"cannot write a stack of shape {tuple(shape)}")
        if packing not in PACKINGS:
            raise DedkitError(f"unknown packing {packing!r}; use one of {', '.join(PACKINGS)}")
        self.shape = (nz, ny, nx)
        self.dtype = np.dtype(np.uint8 if packing != "none" else dtype)
        self.packing = packing
        self.n_written = 0
        self.n_saturated = self.n_negative = self.n_rounded = self.n_nan = 0
        check_free_space(self.path, self.expected_nbytes())
        self._atomic = atomic_output(self.path, kind=self.folder_kind)
        self.tmp_path = self._atomic.__enter__()
        self._closed = False
        try:
            self._open()
        except BaseException as e:
            self._closed = True
            self._abort_files()
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise

    def write(self, frame: np.ndarray) -> None:
        """Append one (ny, nx) frame (Y up).

        The frame is converted to the stack's dtype as ``clip`` writes integers (floats
        rounded half up, out-of-range values clipped, NaN written as 0) or packed to 4
        bits; every value that had to change is counted in :attr:`n_saturated`,
        :attr:`n_negative`, :attr:`n_rounded` and :attr:`n_nan`, never silently.
        """
        self._check_room()
        frame = np.asarray(frame)
        if frame.shape != self.shape[1:]:
            raise DedkitError(f"frame of shape {frame.shape} does not fit stack {self.shape}")
        if self.packing == "none":
            result = convert_dtype(frame, self.dtype)
            self._count(result)
            self._write(np.ascontiguousarray(result.data))
        else:
            result = pack_4bit(frame)
            self._count(result)
            self._write_packed(result.data)
        self.n_written += 1

    def write_packed(self, packed: np.ndarray) -> None:
        """Append one 4-bit frame given as packed rows, left pixel in the LOW nibble, Y up."""
        if self.packing == "none":
            raise DedkitError("write_packed needs a 4-bit stack")
        self._check_room()
        packed = np.asarray(packed)
        expected = (self.shape[1], packed_row_bytes(self.shape[2]))
        if packed.dtype != np.uint8 or packed.shape != expected:
            raise DedkitError(f"packed frame must be uint8 of shape {expected}")
        self._write_packed(np.ascontiguousarray(packed))
        self.n_written += 1

    def expected_nbytes(self) -> int:
        """Bytes the output will take, about (uncompressed data; 0 when unknown)."""
        nz, ny, nx = self.shape
        if self.packing != "none":
            return nz * ny * ((nx + 1) // 2)
        return nz * ny * nx * self.dtype.itemsize

    @property
    def n_changed(self) -> int:
        """Values changed by conversion so far (saturated + negative + rounded + NaN)."""
        return self.n_saturated + self.n_negative + self.n_rounded + self.n_nan

    def _count(self, result: PackResult) -> None:
        self.n_saturated += result.n_saturated
        self.n_negative += result.n_negative
        self.n_rounded += result.n_rounded
        self.n_nan += result.n_nan

    def _check_room(self) -> None:
        if self.n_written >= self.shape[0]:
            raise DedkitError(f"stack was created for {self.shape[0]} frames; got one more")

    def close(self) -> None:
        """Finish the file and move it into place; fails if frames are missing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.n_written != self.shape[0]:
                raise DedkitError(
                    f"stack was created for {self.shape[0]} frames "
                    f"but {self.n_written} were written"
                )
            self._finish()
        except BaseException as e:
            self._abort_files()
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Discard everything written; the final path is left untouched."""
        if self._closed:
            return
        self._closed = True
        self._abort_files()
        err = RuntimeError("aborted")
        try:
            self._atomic.__exit__(RuntimeError, err, None)
        except RuntimeError:
            pass

    @abc.abstractmethod
    def _open(self) -> None:
        """Create ``self.tmp_path`` and get ready to write."""

    @abc.abstractmethod
    def _write(self, frame: np.ndarray) -> None:
        """Write one frame already of the stack's dtype (not called for 4-bit stacks)."""

    def _write_packed(self, packed: np.ndarray) -> None:
        """Write one 4-bit frame as low-nibble-first packed rows (4-bit stacks only)."""
        raise DedkitError(f"{type(self).__name__} does not write 4-bit data")

    @abc.abstractmethod
    def _finish(self) -> None:
        """Complete the file at ``self.tmp_path`` (headers, close handles)."""

    def _abort_files(self) -> None:  # noqa: B027 - override to close open handles
        """Close open handles before the temporary is removed."""


def pixel_size_xyz(pixel_size, path=None) -> tuple[float, float, float] | None:
    """A writer's pixel size option as (x, y, z) in Angstrom, checked.

    Parameters
    ----------
    pixel_size : None, float, (x, y) or (x, y, z)
        One number means the same size on every axis. x and y must be positive and
        finite; z may be 0 (or left out), meaning "no Z spacing", as a 2-D image or an
        MRC file with mz = 0 has (issue 13 item 14).

    Raises
    ------
    DedkitError
        For any other shape, a non-positive or non-finite x or y, or a negative z.
    """
    if pixel_size is None:
        return None
    try:
        sizes = np.atleast_1d(np.asarray(pixel_size, dtype=float))
    except (TypeError, ValueError):
        sizes = np.zeros(0)
    ok = sizes.ndim == 1 and sizes.size in (1, 2, 3) and bool(np.all(np.isfinite(sizes)))
    if ok:
        if sizes.size == 1:
            sizes = np.repeat(sizes, 3)
        elif sizes.size == 2:
            sizes = np.append(sizes, 0.0)
        ok = bool(sizes[0] > 0 and sizes[1] > 0 and sizes[2] >= 0)
    if not ok:
        raise DedkitError(
            f"pixel size {pixel_size!r} must be one positive number, (x, y) or (x, y, z) "
            "with x, y positive and z positive or 0 (no Z spacing)",
            path=path,
        )
    return (float(sizes[0]), float(sizes[1]), float(sizes[2]))


def format_from_path(path) -> str:
    """'mrc', 'tiff' or 'folder' from a path's suffix (a folder has no known suffix)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in MRC_SUFFIXES:
        return "mrc"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if p.is_dir() or suffix == "":
        return "folder"
    raise DedkitError(
        f"cannot tell the format from suffix {p.suffix!r}; use .mrc/.mrcs/.st or .tif/.tiff",
        path=p,
    )


#: kind of the folders of numbered images dedkit writes (see :mod:`dedkit.io.atomic`)
FOLDER_KIND = "numbered images"


def check_stack_output(path, inputs=(), force: bool = False, format: str | None = None) -> Path:
    """:func:`dedkit.io.atomic.check_outputs` for a stack (a folder of numbered images
    when the format is 'folder'): jobs call it before reading anything."""
    fmt = format or format_from_path(path)
    output = FolderOutput(path, FOLDER_KIND) if fmt == "folder" else path
    return check_outputs([output], inputs, force)[0]


def open_stack(path, *, eer_group: int | None = None, eer_sampling: int = 1) -> FrameReader:
    """Open an MRC file, a TIFF file, an EER movie or a folder of numbered images for
    lazy reading.

    A DM3/DM4 file (an image or a 3-D stack) opens too, read whole (they are small);
    dedkit does not write DM files. An ``.eer`` file, or a TIFF file whose pages are EER
    fractions (compression 65000-65002), opens as an :class:`dedkit.io.eer.EerReader`
    whose frames are sums of ``eer_group`` fractions (default
    :data:`dedkit.io.eer.DEFAULT_EER_GROUP`) at sampling ``eer_sampling`` (1, 2 or 4);
    the two are ignored for other files.

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.io.eer import write_eer
    >>> write_eer("movie.eer", [np.array([[0, 0]])] * 4, shape=(4, 4))
    >>> with open_stack("movie.eer", eer_group=2, eer_sampling=2) as movie:
    ...     movie.info.format, movie.info.shape
    ('eer', (2, 8, 8))
    """
    from dedkit.io.inputs import check_input_path

    p = check_input_path(path)
    suffix = "" if p.is_dir() else p.suffix.lower()
    if suffix in DM_SUFFIXES:
        from dedkit.io.dm import DmReader

        return DmReader(p)
    if suffix == EER_SUFFIX:
        from dedkit.io.eer import EerReader

        return EerReader(p, group=eer_group, sampling=eer_sampling)
    fmt = "folder" if p.is_dir() else format_from_path(p)
    if fmt == "mrc":
        from dedkit.io.mrc import MrcReader

        return MrcReader(p)
    if fmt == "tiff":
        from dedkit.io.eer import EerReader, is_eer_file

        if is_eer_file(p):
            return EerReader(p, group=eer_group, sampling=eer_sampling)
        from dedkit.io.tiff import TiffReader

        return TiffReader(p)
    from dedkit.io.tiff import FolderReader

    return FolderReader(p)


def create_stack(
    path,
    shape,
    dtype,
    *,
    packing: str = "none",
    titles=(),
    pixel_size=None,
    compression: str | None = None,
    force: bool = False,
    inputs=(),
    format: str | None = None,
) -> FrameWriter:
    """Create a stack for streaming frames into; the format comes from the suffix.

    Parameters
    ----------
    path : path-like
        .mrc/.mrcs/.st... for MRC, .tif/.tiff for a TIFF stack, no suffix for a folder of
        numbered TIFF files.
    shape : (nz, ny, nx)
    dtype : numpy dtype
        uint8, int16, uint16 or float32 (4-bit data: any, with a 4-bit ``packing``).
    packing : str
        One of :data:`PACKINGS`; MRC takes 'mode101' or 'half-bytes', TIFF 'serialemccd'
        or 'tiff4'.
    titles : sequence of str
        MRC titles (up to 10 of 80 characters) or TIFF ImageDescription lines.
    pixel_size : float, (x, y) or (x, y, z) in Angstrom, optional
        See :func:`pixel_size_xyz`; z 0 means no Z spacing.
    compression : str, optional
        TIFF only: 'none', 'lzw', 'zip' or 'zstd'.
    force : bool
        Replace an existing output.
    inputs : sequence of path-like
        Files being read, which the output may not replace.
    format : str, optional
        'mrc', 'tiff' or 'folder' to override the suffix.
    """
    fmt = format or format_from_path(path)
    kwargs = dict(packing=packing, titles=titles, pixel_size=pixel_size, force=force, inputs=inputs)
    if fmt == "mrc":
        if compression not in (None, "none"):
            raise DedkitError("MRC files are not compressed; use a .tif output for compression")
        from dedkit.io.mrc import MrcWriter

        return MrcWriter(path, shape, dtype, **kwargs)
    if fmt == "tiff":
        from dedkit.io.tiff import TiffWriter

        return TiffWriter(path, shape, dtype, compression=compression, **kwargs)
    if fmt == "folder":
        from dedkit.io.tiff import FolderWriter

        return FolderWriter(path, shape, dtype, compression=compression, **kwargs)
    raise DedkitError(f"unknown stack format {fmt!r}")
