"""EER movies of Falcon 4/4i cameras: electron events, grouped into frames on reading.

An EER file is a TIFF file whose pages are *fractions*: each holds the electrons of a
few milliseconds as a run-length bitstream (TIFF compression 65000, 65001 or 65002), one
event per physical pixel at most, with 2 bits of sub-pixel position in X and Y.
:class:`EerReader` sums ``group`` consecutive fractions into one frame at sampling 1
(the physical 4096 x 4096 grid of a Falcon 4), 2 (8192) or 4 (16384), decoding one
fraction at a time with imagecodecs (the decoder tifffile uses), so memory holds one
frame, never the file. Fractions left over when the total is not a multiple of
``group`` are dropped, as RELION does.

Orientation: EER frames are returned in the order of the bitstream, row 0 first, as
RELION (``renderEER``) and MotionCor3 render them, so that a sum is oriented like
theirs; unlike dedkit's TIFF stacks they are not flipped (``tifffile.imread(path)[i]``
equals ``reader.read(i)`` with group 1).

Gain references (:func:`read_eer_gain`): RELION takes an MRC gain reference of an EER
movie as not multiplicative and uses its reciprocal (scaled by the mean; 0 marks a
defect and stays 0), while a Falcon ``.gain`` file (a TIFF) is multiplicative and is
used as it is (RELION's ``EERRenderer::loadEERGain``); MotionCor3 leaves the choice to
``-InvGain``. dedkit follows RELION.

:func:`write_eer` encodes electron events into an EER file (for tests and simulations).

Examples
--------
>>> import numpy as np
>>> events = [np.array([[1, 2], [30, 20]]), np.array([[5, 5]])]
>>> write_eer("movie.eer", events, shape=(8, 8))
>>> with EerReader("movie.eer", group=2) as movie:
...     frame = movie.read(0)
>>> int(frame.sum()), frame.shape
(3, (8, 8))
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

import numpy as np
import tifffile

from dedkit.errors import DedkitError, one_line
from dedkit.io.inputs import check_input_file
from dedkit.io.stack import FrameReader, StackInfo

__all__ = [
    "DEFAULT_EER_GROUP",
    "EER_COMPRESSIONS",
    "EER_SAMPLINGS",
    "EerReader",
    "is_eer_file",
    "read_eer_gain",
    "write_eer",
]

#: Fractions per frame when none is given: RELION's default ``--eer_grouping`` (40).
DEFAULT_EER_GROUP = 40

#: Frame sizes relative to the physical grid: 1 (4096), 2 (8192) or 4 (16384).
EER_SAMPLINGS = (1, 2, 4)

#: TIFF compression -> (skip bits, horizontal sub-pixel bits, vertical sub-pixel bits);
#: 65002 gives its own in tags 65007-65009.
EER_COMPRESSIONS = {65000: (8, 2, 2), 65001: (7, 2, 2), 65002: None}

_METADATA_TAG = 65001
_SKIP_TAG, _HORZ_TAG, _VERT_TAG = 65007, 65008, 65009
# imagecodecs fixed sub-pixel decoding and learnt to add into a uint16 frame in 2025.11.11.
_IMAGECODECS_MIN = (2025, 11, 11)


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - a dependency of dedkit
        imagecodecs = None
    version = getattr(imagecodecs, "__version__", "0")
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if imagecodecs is None or parts < _IMAGECODECS_MIN or not imagecodecs.EER.available:
        raise DedkitError(
            f"reading EER needs imagecodecs {'.'.join(map(str, _IMAGECODECS_MIN))} or newer "
            f"with its EER codec (found {version})"
        )
    return imagecodecs


def _first_eer_compression(tiff: tifffile.TiffFile) -> int | None:
    """The EER compression of a TIFF's fractions (page 0, or page 1 after an
    uncompressed integrated image), None when it is no EER file."""
    pages = tiff.pages
    for index in (0, 1):
        if index >= len(pages):
            return None
        compression = int(pages[index].compression)
        if compression in EER_COMPRESSIONS:
            return compression
        if compression != 1:
            return None
    return None


def is_eer_file(path) -> bool:
    """Whether ``path`` is a TIFF file whose frames are EER fractions (any suffix).

    Examples
    --------
    >>> import numpy as np
    >>> write_eer("m.eer", [np.zeros((0, 2), int)], shape=(4, 4))
    >>> is_eer_file("m.eer")
    True
    """
    try:
        with tifffile.TiffFile(path) as tiff:
            return _first_eer_compression(tiff) is not None
    # anything tifffile cannot parse is no EER file; its own reader says why
    except Exception:
        return False


def _json_value(value):
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


class EerReader(FrameReader):
    """Reads an EER movie as frames of ``group`` summed fractions.

    Parameters
    ----------
    path : path-like
        An EER file (TIFF with compression 65000, 65001 or 65002; a first uncompressed
        page, the integrated image, is skipped).
    group : int, optional
        Fractions per frame; default :data:`DEFAULT_EER_GROUP`. The last
        ``fractions % group`` fractions are dropped.
    sampling : {1, 2, 4}
        1: the physical grid; 2 or 4: each pixel split into 2 x 2 or 4 x 4 by the
        events' sub-pixel positions.

    Attributes
    ----------
    info : StackInfo
        ``format`` 'eer', ``compression`` 'eer_v0', 'eer_v1' or 'eer_v2'; ``dtype``
        uint8 when ``group`` <= 255 (a frame pixel holds at most one event per
        fraction), else uint16. ``extra``: 'fractions', 'group', 'sampling',
        'dropped_fractions', 'integrated_image', 'bits' (skip, horizontal, vertical),
        'metadata' (the acquisition XML as a dict) and, when the XML gives them,
        'exposure_time' (s) and 'total_dose' with 'total_dose_unit'.

    Raises
    ------
    DedkitError
        A file that is no EER file, fractions of different sizes or data outside the
        file, a bad group or sampling.

    Examples
    --------
    >>> import numpy as np
    >>> write_eer("movie.eer", [np.array([[3, 5]])] * 5, shape=(4, 4))
    >>> with EerReader("movie.eer", group=2, sampling=4) as movie:
    ...     len(movie), movie.info.extra["dropped_fractions"], int(movie.read(1)[5, 3])
    (2, 1, 2)
    """

    def __init__(self, path, *, group: int | None = None, sampling: int = 1):
        self.path = check_input_file(path, "EER file")
        self._codecs = _imagecodecs()
        group = DEFAULT_EER_GROUP if group is None else group
        if isinstance(group, bool) or not isinstance(group, int | np.integer) or group < 1:
            raise DedkitError(f"EER group must be a positive integer, not {group!r}")
        if sampling not in EER_SAMPLINGS:
            raise DedkitError(f"EER sampling must be 1, 2 or 4, not {sampling!r}")
        self.group, self.sampling = int(group), int(sampling)
        self._superres = self.sampling.bit_length() - 1
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise DedkitError(f"cannot open: {e.strerror}", path=self.path) from None
        try:
            self.info = self._inspect()
        except BaseException:
            os.close(self._fd)
            raise

    def _inspect(self) -> StackInfo:
        size = os.fstat(self._fd).st_size
        try:
            tiff = tifffile.TiffFile(self.path)
        # tifffile raises struct, value and OS errors of its own on damaged files
        except Exception as e:
            raise DedkitError(f"cannot read as EER (TIFF): {one_line(e)}", path=self.path) from None
        with tiff:
            try:
                return self._inspect_pages(tiff, size)
            except DedkitError:
                raise
            except Exception as e:
                raise DedkitError(
                    f"cannot read the EER directories: {one_line(e)}", path=self.path
                ) from None

    def _inspect_pages(self, tiff: tifffile.TiffFile, size: int) -> StackInfo:
        compression = _first_eer_compression(tiff)
        if compression is None:
            raise DedkitError(
                "not an EER file: no page with compression 65000, 65001 or 65002",
                path=self.path,
            )
        pages = tiff.pages
        pages.cache = False  # one fraction's tags at a time, not thousands
        first_index = 0 if int(pages[0].compression) == compression else 1
        first = pages[first_index]
        metadata = {}
        with contextlib.suppress(Exception):
            metadata = {k: _json_value(v) for k, v in (pages[0].eer_tags or {}).items()}
        bits = EER_COMPRESSIONS[compression] or tuple(
            int(first.tags.valueof(code, default)) for code, default in
            ((_SKIP_TAG, 7), (_HORZ_TAG, 2), (_VERT_TAG, 2))
        )  # fmt: skip
        skip, horz, vert = bits
        if not (1 < skip < 15 and 0 < horz < 5 and 0 < vert < 5 and 8 < sum(bits) < 17):
            raise DedkitError(f"unsupported EER bit layout {bits}", path=self.path)
        if self.sampling > min(2**horz, 2**vert):
            raise DedkitError(
                f"sampling {self.sampling} needs more sub-pixel bits than the file has "
                f"({horz} x {vert})",
                path=self.path,
            )
        ny, nx = int(first.imagelength), int(first.imagewidth)
        if ny < 1 or nx < 1:
            raise DedkitError(f"EER fractions of {nx} x {ny} pixels", path=self.path)
        strips = []
        for index in range(first_index, len(pages)):
            page = pages[index]
            layout = (int(page.imagelength), int(page.imagewidth), int(page.compression))
            if layout != (ny, nx, compression):
                raise DedkitError(
                    f"page {index} is {layout[1]} x {layout[0]} with compression {layout[2]}, "
                    f"the first fraction {nx} x {ny} with {compression}; all must match",
                    path=self.path,
                )
            rows = int(page.rowsperstrip or ny)
            counts = [int(c) for c in page.databytecounts]
            offsets = [int(o) for o in page.dataoffsets]
            if len(offsets) != -(-ny // min(rows, ny)) or len(counts) != len(offsets):
                raise DedkitError(f"page {index} has a bad strip layout", path=self.path)
            for offset, count in zip(offsets, counts, strict=True):
                if offset < 0 or count < 0 or offset + count > size:
                    raise DedkitError(
                        f"truncated or corrupt EER: fraction {index - first_index} has data "
                        f"at bytes {offset}-{offset + count}, the file has {size}",
                        path=self.path,
                    )
            strips.append((min(rows, ny), offsets, counts))
        fractions = len(strips)
        self._check_chain_ends(tiff, pages[len(pages) - 1], fractions, size)
        declared = metadata.get("numberOfFrames")
        if isinstance(declared, int) and declared != fractions:
            raise DedkitError(
                f"truncated or corrupt EER: its metadata declares {declared} fractions, "
                f"the file holds {fractions}",
                path=self.path,
            )
        if self.group > fractions:
            raise DedkitError(
                f"EER group {self.group} is larger than the file's {fractions} fractions",
                path=self.path,
            )
        self._strips, self._bits = strips, bits
        frames = fractions // self.group
        s = self.sampling
        extra = {
            "fractions": fractions,
            "group": self.group,
            "sampling": s,
            "dropped_fractions": fractions - frames * self.group,
            "integrated_image": first_index == 1,
            "bits": list(bits),
            "metadata": metadata,
        }
        if isinstance(metadata.get("exposureTime"), int | float):
            extra["exposure_time"] = float(metadata["exposureTime"])
        if isinstance(metadata.get("totalDose"), int | float):
            extra["total_dose"] = float(metadata["totalDose"])
            extra["total_dose_unit"] = metadata.get("totalDose.unit")
        return StackInfo(
            path=str(self.path),
            format="eer",
            shape=(frames, ny * s, nx * s),
            dtype=np.dtype(np.uint8 if self.group <= 255 else np.uint16),
            compression=tifffile.COMPRESSION(compression).name.lower(),
            extra=extra,
        )

    def _check_chain_ends(self, tiff: tifffile.TiffFile, last, fractions: int, size: int) -> None:
        """Refuse a file whose last directory points to another one: tifffile stops
        quietly at a directory beyond the end (a movie cut short, or still being
        written), which would read as a shorter movie."""
        fmt = tiff.tiff
        head = os.pread(self._fd, fmt.tagnosize, last.offset)
        if len(head) == fmt.tagnosize:
            (n_tags,) = struct.unpack(fmt.tagnoformat, head)
            at = last.offset + fmt.tagnosize + n_tags * fmt.tagsize
            link = os.pread(self._fd, fmt.offsetsize, at)
            if len(link) == fmt.offsetsize and struct.unpack(fmt.offsetformat, link)[0] == 0:
                return
        raise DedkitError(
            f"truncated or corrupt EER: the directory after fraction {fractions - 1} "
            f"lies outside the file ({size} bytes)",
            path=self.path,
        )

    def read_fractions(self, start: int, stop: int) -> np.ndarray:
        """Sum of fractions ``start`` to ``stop - 1`` as a uint16 (ny, nx) frame."""
        if not 0 <= start < stop <= len(self._strips):
            raise IndexError(f"fractions {start}:{stop} out of range 0:{len(self._strips)}")
        s = self.sampling
        out = np.zeros(self.info.shape[1:], np.uint16)
        skip, horz, vert = self._bits
        for fraction in range(start, stop):
            rows, offsets, counts = self._strips[fraction]
            for strip, (offset, count) in enumerate(zip(offsets, counts, strict=True)):
                data = os.pread(self._fd, count, offset)
                if len(data) != count:
                    raise DedkitError(
                        f"truncated EER: fraction {fraction} ends past the end of the file",
                        path=self.path,
                    )
                if count % 2:
                    # the decoder reads 16-bit units; the stream ends before the padding
                    data += b"\0"
                top = strip * rows * s
                target = out[top : min(top + rows * s, out.shape[0])]
                try:
                    self._codecs.eer_decode(
                        data, target.shape, skip, horz, vert, superres=self._superres, out=target
                    )
                except Exception as e:
                    raise DedkitError(
                        f"corrupt EER fraction {fraction}: {one_line(e)}", path=self.path
                    ) from None
        return out

    def read(self, index: int) -> np.ndarray:
        """Frame ``index``: the sum of fractions ``index * group`` to
        ``(index + 1) * group - 1``, in the bitstream's row order."""
        index = self._check_index(index)
        frame = self.read_fractions(index * self.group, (index + 1) * self.group)
        return frame.astype(self.info.dtype, copy=False)

    def close(self) -> None:
        """Release the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_eer_gain(path, frame_shape: tuple[int, int]) -> np.ndarray:
    """A gain reference for EER frames, made multiplicative, in the frames' orientation.

    As RELION does: a ``.gain`` file (Falcon's TIFF) is multiplicative and used as it
    is, in its rows' stored order (like the EER frames); any other file (MRC) holds
    the detector's response, and its reciprocal, scaled by the mean, is returned, with
    0 (a defect) kept as 0. A reference twice the frames' size is binned 2 x 2
    (summed before the reciprocal, averaged when multiplicative). The result may be
    the frames' size or 2 or 4 times smaller (:func:`dedkit.frames.gain.prepare_gain`
    expands it).

    Parameters
    ----------
    path : path-like
        MRC or ``.gain``/TIFF image.
    frame_shape : (ny, nx)
        Size of the EER frames it will multiply.

    Returns
    -------
    (gy, gx) ndarray of float32

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.io.mrc import MrcWriter
    >>> with MrcWriter("gain.mrc", (1, 2, 2), np.float32) as w:
    ...     w.write(np.array([[1.0, 2.0], [0.0, 1.0]], np.float32))
    >>> read_eer_gain("gain.mrc", (2, 2)).tolist()
    [[1.0, 0.5], [0.0, 1.0]]
    """
    from dedkit.io.images import read_image

    path = Path(path)
    if path.suffix.lower() == ".gain":
        from dedkit.io.tiff import TiffReader

        with TiffReader(path) as reader:
            # dedkit flips TIFF pages; the .gain rows are in the EER frames' stored order
            data = np.flipud(reader.read(0)).astype(np.float32)
        multiplicative = True
    else:
        data = np.asarray(read_image(path), dtype=np.float32)
        multiplicative = False
    if data.ndim != 2 or not np.all(np.isfinite(data)):
        raise DedkitError("EER gain reference must be one finite 2-D image", path=path)
    ny, nx = frame_shape
    if data.shape == (2 * ny, 2 * nx):
        binned = data.reshape(ny, 2, nx, 2)
        data = binned.mean(axis=(1, 3)) if multiplicative else binned.sum(axis=(1, 3))
    if not multiplicative:
        nonzero = data != 0
        mean = float(data.mean())
        data = np.where(nonzero, mean / np.where(nonzero, data, 1.0), 0.0).astype(np.float32)
    return np.ascontiguousarray(data, dtype=np.float32)


# ---------------------------------------------------------------------------- writer


def _events_of(fraction, shape, horz, vert) -> np.ndarray:
    """(n, 2) int64 (x, y) events on the finest grid, from an event list or a 0/1 image."""
    array = np.asarray(fraction)
    ny, nx = shape
    fine = (ny << vert, nx << horz)
    if array.ndim == 2 and array.shape == fine and not (array.shape[1] == 2 and fine[1] == 2):
        if array.size and (array.min() < 0 or array.max() > 1):
            raise DedkitError("an EER fraction image holds 0 or 1 events per sub-pixel")
        y, x = np.nonzero(array)
        return np.stack([x, y], axis=1).astype(np.int64)
    if array.size == 0:
        return np.zeros((0, 2), np.int64)
    if array.ndim != 2 or array.shape[1] != 2 or array.dtype.kind not in "iu":
        raise DedkitError(
            f"an EER fraction is an (n, 2) integer array of (x, y) events or a {fine} image, "
            f"not {array.dtype} {array.shape}"
        )
    events = array.astype(np.int64)
    x, y = events[:, 0], events[:, 1]
    if x.min() < 0 or y.min() < 0 or x.max() >= fine[1] or y.max() >= fine[0]:
        raise DedkitError(f"EER events lie outside the {fine[1]} x {fine[0]} sub-pixel grid")
    return events


def _encode_fraction(events: np.ndarray, shape, bits) -> bytes:
    """One fraction's bitstream: codes of ``skip`` bits (a run of that many empty
    pixels; the largest value continues the run) each followed, unless it is the
    largest, by the event's horizontal then vertical sub-pixel bits, least significant
    bit first; the sub-pixel values are stored XOR the bit count, as the decoders read
    them. The stream ends with the run that reaches the last pixel."""
    skip, horz, vert = bits
    ny, nx = shape
    mask = (1 << skip) - 1
    x, y = events[:, 0], events[:, 1]
    pixel = (y >> vert) * nx + (x >> horz)
    order = np.argsort(pixel, kind="stable")
    pixel, x, y = pixel[order], x[order], y[order]
    if pixel.size > 1 and np.any(np.diff(pixel) == 0):
        raise DedkitError("EER holds at most one event per pixel and fraction")
    previous = np.concatenate([[0], pixel[:-1] + 1]).astype(np.int64)
    gaps = pixel - previous
    runs, rest = gaps // mask, gaps % mask
    sub_x = (x & ((1 << horz) - 1)) ^ horz
    sub_y = (y & ((1 << vert) - 1)) ^ vert
    event_codes = rest | (sub_x << skip) | (sub_y << (skip + horz))
    tail = ny * nx - (int(pixel[-1]) + 1 if pixel.size else 0)
    tail_runs, tail_rest = divmod(tail, mask)
    per_event = runs + 1
    n_codes = int(per_event.sum()) + tail_runs + (1 if tail_rest else 0)
    values = np.full(n_codes, mask, np.int64)
    widths = np.full(n_codes, skip, np.int64)
    ends = np.cumsum(per_event) - 1
    nbits = skip + horz + vert
    values[ends] = event_codes
    widths[ends] = nbits
    if tail_rest:
        values[-1] = tail_rest
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    last = int(starts[-1]) if n_codes else 0
    # a decoder reads a code only with more than ``nbits`` bits left, and some read
    # 32 bits at a time: pad past both, to whole 16-bit units
    nbytes = max(-(-int(widths.sum()) // 8), -(-(last + nbits + 1) // 8)) + 4
    nbytes += nbytes % 2
    stream = np.zeros(nbytes * 8, np.uint8)
    for bit in range(nbits):
        used = widths > bit
        stream[starts[used] + bit] = (values[used] >> bit) & 1
    return np.packbits(stream, bitorder="little").tobytes()


def _metadata_xml(metadata: dict) -> bytes:
    from xml.sax.saxutils import escape, quoteattr

    items = []
    for key, value in metadata.items():
        if key.endswith(".unit"):
            continue
        unit = metadata.get(f"{key}.unit")
        attrs = f"name={quoteattr(str(key))}" + (f" unit={quoteattr(str(unit))}" if unit else "")
        text = "Yes" if value is True else "No" if value is False else str(value)
        items.append(f"<item {attrs}>{escape(text)}</item>")
    return ("<metadata>" + "".join(items) + "</metadata>").encode()


def write_eer(
    path,
    fractions,
    *,
    shape: tuple[int, int] = (4096, 4096),
    compression: int = 65001,
    bits: tuple[int, int, int] | None = None,
    metadata: dict | None = None,
) -> None:
    """Encode electron events into an EER file, for tests and simulations.

    The file decodes exactly (tifffile with imagecodecs, :class:`EerReader`) to the
    events given: at sampling 4 each event's pixel is its (x, y); at sampling 1 it is
    (x // 4, y // 4).

    Parameters
    ----------
    path : path-like
        Output file (written in place; use a temporary name for atomicity).
    fractions : sequence
        One item per fraction: an (n, 2) integer array of (x, y) event positions on
        the sub-pixel grid (``shape`` x 2**sub-pixel bits, 4 x 4 per pixel by
        default), at most one event per physical pixel; or a 0/1 image of that grid.
    shape : (ny, nx)
        Physical pixels of a fraction.
    compression : {65000, 65001, 65002}
        65001 (7-bit runs, Falcon 4) by default; 65000 (8-bit runs); 65002 with
        ``bits``.
    bits : (skip, horizontal, vertical), optional
        Bit layout for 65002 (written as tags 65007-65009); default (7, 2, 2).
    metadata : dict, optional
        Items of the acquisition XML (tag 65001): {'exposureTime': 2.5,
        'exposureTime.unit': 's', ...}; numberOfFrames is always written.

    Examples
    --------
    >>> import numpy as np, tifffile
    >>> write_eer("one.eer", [np.array([[7, 2]])], shape=(4, 4))
    >>> with tifffile.TiffFile("one.eer", superres=2) as tif:
    ...     np.argwhere(tif.asarray()).tolist()
    [[2, 7]]
    """
    if compression not in EER_COMPRESSIONS:
        raise DedkitError(f"EER compression must be 65000, 65001 or 65002, not {compression!r}")
    if compression == 65002:
        bits = tuple(int(b) for b in (bits or (7, 2, 2)))
    elif bits is not None and tuple(bits) != EER_COMPRESSIONS[compression]:
        raise DedkitError(f"compression {compression} has bits {EER_COMPRESSIONS[compression]}")
    else:
        bits = EER_COMPRESSIONS[compression]
    skip, horz, vert = bits
    if not (1 < skip < 15 and 0 < horz < 5 and 0 < vert < 5 and 8 < skip + horz + vert < 17):
        raise DedkitError(f"unsupported EER bit layout {bits}")
    ny, nx = (int(n) for n in shape)
    if ny < 1 or nx < 1:
        raise DedkitError(f"EER fractions of {nx} x {ny} pixels")
    fractions = list(fractions)
    if not fractions:
        raise DedkitError("an EER file needs at least one fraction")
    info = {"numberOfFrames": len(fractions), **(metadata or {})}
    xml = _metadata_xml(info)
    extra_tags = []
    if compression == 65002:
        extra_tags = [(_SKIP_TAG, skip), (_HORZ_TAG, horz), (_VERT_TAG, vert)]
    # BigTIFF, as Falcon writes it (tifffile takes only BigTIFF files for EER)
    with open(path, "wb") as f:
        f.write(b"II+\0" + struct.pack("<HHQ", 8, 0, 0))
        link = 8  # where the offset of the next IFD goes
        for index, fraction in enumerate(fractions):
            events = _events_of(fraction, (ny, nx), horz, vert)
            data = _encode_fraction(events, (ny, nx), bits)
            data_at = f.tell()
            f.write(data)
            xml_at = None
            if index == 0:
                xml_at = f.tell()
                f.write(xml + b"\0" * (len(xml) % 2))
            entries = [
                (256, 4, 1, nx),
                (257, 4, 1, ny),
                (258, 3, 1, 1),
                (259, 3, 1, compression),
                (262, 3, 1, 1),
                (273, 16, 1, data_at),
                (277, 3, 1, 1),
                (278, 4, 1, ny),
                (279, 16, 1, len(data)),
                *[(code, 3, 1, value) for code, value in extra_tags],
            ]
            if xml_at is not None:
                entries.append((_METADATA_TAG, 7, len(xml), xml_at))
            entries.sort()
            ifd_at = f.tell()
            f.write(struct.pack("<Q", len(entries)))
            for code, kind, count, value in entries:
                size = {3: "<H", 4: "<I"}.get(kind, "<Q")
                f.write(
                    struct.pack("<HHQ", code, kind, count)
                    + struct.pack(size, value).ljust(8, b"\0")
                )
            next_link = f.tell()
            f.write(struct.pack("<Q", 0))
            f.seek(link)
            f.write(struct.pack("<Q", ifd_at))
            f.seek(0, os.SEEK_END)
            link = next_link
