"""aare cluster files (``.clust``): clusters cut out of frames, frame by frame.

There is no file header. Each frame is an int32 frame number, a uint32 cluster count and
that many records laid out as aare's C++ ``Cluster<T, X, Y, uint16_t>`` struct: uint16 x,
uint16 y, then ``T data[Y][X]`` row-major, all little-endian, with the struct's natural
alignment (so a float64 record has 4 padding bytes after y: a 2 x 2 float64 record is 40
bytes, a 3 x 3 int32 one 40, a 3 x 3 int16 one 22). Cluster size and value type are not
in the file; the reader must be told them.

Facts from aare 2025.11.21 (``Cluster.hpp``, ``ClusterFile.hpp``, ``ClusterFinder.hpp``,
``ClusterFileSink.hpp``):

- x is the column and y the row (frame indices ``frame(iy, ix)``) of the cluster's
  reference pixel: the local maximum for aare's finder. ``data`` starts at row
  ``y - Y // 2``, column ``x - X // 2``, so the reference pixel is
  ``data[Y // 2][X // 2]`` for odd and even sizes alike (for 2 x 2, the rows and columns
  before it). That is exactly :class:`dedkit.records.tables.ClusterTable`'s x, y and data.
- aare's cluster finder and file sink write one frame entry for every frame processed,
  with a count of 0 when it has no clusters; :func:`write_clust` writes frames without
  clusters only when they are listed in ``frames``.
- Frame numbers are stored as int32 (aare keeps them so); coordinates as uint16.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import CommitOnSuccess, atomic_output, check_output_path, writing
from dedkit.io.inputs import check_input_file
from dedkit.records.tables import ClusterTable

__all__ = ["ClustWriter", "cluster_record_dtype", "iter_clust", "read_clust", "write_clust"]

_FRAME_HEADER_BYTES = 8  # int32 frame number + uint32 cluster count
_BLOCK_BYTES = 64 * 2**20  # bytes read at a time when streaming


def cluster_record_dtype(cluster_size=(3, 3), dtype=np.int32) -> np.dtype:
    """The on-disk record of one cluster: x, y and data, aligned as aare's C++ struct.

    Parameters
    ----------
    cluster_size : (int, int)
        (rows, columns) of the cluster, as :attr:`ClusterTable.cluster_shape`.
    dtype : numpy dtype
        Value type (aare writes int32, float32, float64 and int16 files).
    """
    rows, cols = (int(v) for v in cluster_size)
    if rows < 1 or cols < 1 or rows > 255 or cols > 255:
        raise DedkitError(f"cluster size must be 1..255 pixels each way, not {cluster_size}")
    value = np.dtype(dtype).newbyteorder("<")
    return np.dtype([("x", "<u2"), ("y", "<u2"), ("data", value, (rows, cols))], align=True)


@numba.njit(cache=True)
def _read_u32(buffer, position):
    return (
        np.int64(buffer[position])
        | (np.int64(buffer[position + 1]) << 8)
        | (np.int64(buffer[position + 2]) << 16)
        | (np.int64(buffer[position + 3]) << 24)
    )


@numba.njit(cache=True)
def _count_frames(buffer, record_bytes):
    """Frames wholly inside ``buffer`` from its start, their clusters and their bytes."""
    position = 0
    n_frames = 0
    n_clusters = 0
    size = len(buffer)
    while position + 8 <= size:
        count = _read_u32(buffer, position + 4)
        end = position + 8 + count * record_bytes
        if end > size:
            break
        position = end
        n_frames += 1
        n_clusters += count
    return n_frames, n_clusters, position


@numba.njit(cache=True)
def _unpack_frames(buffer, record_bytes, frame_numbers, counts, records):
    """Fill frame numbers, cluster counts and the records (as bytes) of the first frames."""
    position = 0
    written = 0
    for k in range(len(frame_numbers)):
        number = _read_u32(buffer, position)
        if number >= 2**31:  # int32 on disk
            number -= 2**32
        count = _read_u32(buffer, position + 4)
        frame_numbers[k] = number
        counts[k] = count
        n_bytes = count * record_bytes
        records[written : written + n_bytes] = buffer[position + 8 : position + 8 + n_bytes]
        written += n_bytes
        position += 8 + n_bytes


@numba.njit(cache=True)
def _pack_frames(frame_numbers, counts, records, record_bytes, out):
    """Lay out frame headers and their records (as bytes) one frame after the other."""
    position = 0
    taken = 0
    for k in range(len(frame_numbers)):
        number = np.int64(frame_numbers[k]) & 0xFFFFFFFF
        count = np.int64(counts[k])
        for b in range(4):
            out[position + b] = (number >> (8 * b)) & 0xFF
            out[position + 4 + b] = (count >> (8 * b)) & 0xFF
        n_bytes = count * record_bytes
        out[position + 8 : position + 8 + n_bytes] = records[taken : taken + n_bytes]
        taken += n_bytes
        position += 8 + n_bytes


def _decode(block: np.ndarray, record: np.dtype, units: str) -> tuple[ClusterTable, int]:
    """The whole frames at the start of ``block`` as a table, and the bytes they take."""
    n_frames, n_clusters, used = _count_frames(block, record.itemsize)
    frame_numbers = np.empty(n_frames, np.int64)
    counts = np.empty(n_frames, np.int64)
    records = np.empty(n_clusters, record)
    _unpack_frames(block, record.itemsize, frame_numbers, counts, records.view(np.uint8))
    value = record["data"].base
    table = ClusterTable(
        frame=np.repeat(frame_numbers, counts),
        x=records["x"].astype(np.int32),
        y=records["y"].astype(np.int32),
        data=np.ascontiguousarray(records["data"], dtype=value.newbyteorder("=")),
        units=units,
    )
    return table, used


def _truncation_error(path: Path, offset: int, size: int, record: np.dtype) -> DedkitError:
    where = f"at byte {offset} of {size}"
    if size - offset < _FRAME_HEADER_BYTES:
        what = "ends inside a frame header"
    else:
        what = "ends inside a frame's clusters"
    return DedkitError(
        f"cluster file is truncated or corrupt: it {what} {where} (records of "
        f"{record.itemsize} bytes; are cluster size and type right?)",
        path=path,
    )


def read_clust(path, cluster_size=(3, 3), dtype=np.int32, *, units: str = "ADU") -> ClusterTable:
    """Read a whole ``.clust`` file.

    Parameters
    ----------
    path : path-like
    cluster_size : (int, int)
        (rows, columns) of each cluster (aare's files are square: 2, 3, 5, 7 or 9).
    dtype : numpy dtype
        Value type the file was written with.
    units : str
        Units of the values, carried into the table ('ADU', or 'keV' for calibrated
        files).

    Returns
    -------
    ClusterTable
        Frames in file order; x, y the reference pixel's column and row.

    Raises
    ------
    DedkitError
        Missing file, or a file that does not end at a frame boundary (truncated, or
        read with the wrong cluster size or type).
    """
    path = Path(path)
    record = cluster_record_dtype(cluster_size, dtype)
    block = _read_bytes(path)
    table, used = _decode(block, record, units)
    if used != len(block):
        raise _truncation_error(path, used, len(block), record)
    return table


def iter_clust(
    path,
    cluster_size=(3, 3),
    dtype=np.int32,
    *,
    max_clusters: int = 1_000_000,
    units: str = "ADU",
) -> Iterator[ClusterTable]:
    """Stream a ``.clust`` file in tables of at most ``max_clusters`` clusters.

    Reads the file in blocks of about 64 MiB; the tables end at frame boundaries except
    where one frame alone holds more than ``max_clusters`` clusters.

    Parameters
    ----------
    path, cluster_size, dtype, units
        As for :func:`read_clust`.
    max_clusters : int
        Largest table yielded.

    Yields
    ------
    ClusterTable

    Raises
    ------
    DedkitError
        As for :func:`read_clust`, when the truncation is reached.
    """
    path = Path(path)
    if max_clusters < 1:
        raise DedkitError(f"max_clusters must be at least 1, not {max_clusters}")
    record = cluster_record_dtype(cluster_size, dtype)
    size = _nonempty_size(path)
    block_bytes = max(_BLOCK_BYTES, 8 * record.itemsize)
    offset = 0  # file offset of the first byte not yet decoded
    pending: list[ClusterTable] = []
    n_pending = 0
    with open(path, "rb") as stream:
        leftover = np.zeros(0, np.uint8)
        while offset < size:
            # never ask for more than the file has left: fromfile allocates the count asked
            unread = size - offset - len(leftover)
            fresh = np.fromfile(stream, np.uint8, count=max(0, min(block_bytes, unread)))
            block = np.concatenate([leftover, fresh]) if len(leftover) else fresh
            table, used = _decode(block, record, units)
            if used == 0 and len(fresh) == 0:
                raise _truncation_error(path, offset, size, record)
            if used == 0:
                # one frame larger than the block: read more before decoding again
                block_bytes *= 2
            offset += used
            leftover = block[used:]
            pending.append(table)
            n_pending += len(table)
            while n_pending >= max_clusters:
                merged = ClusterTable.concatenate(pending)
                cut = _chunk_end(merged.frame, max_clusters)
                yield merged[:cut]
                pending, n_pending = [merged[cut:]], len(merged) - cut
    if n_pending:
        yield ClusterTable.concatenate(pending)


def _chunk_end(frame: np.ndarray, max_clusters: int) -> int:
    """Largest cut <= max_clusters at a frame boundary (or max_clusters if none)."""
    boundary = max_clusters
    while 0 < boundary < len(frame) and frame[boundary] == frame[boundary - 1]:
        boundary -= 1
    return boundary or max_clusters


def write_clust(path, table: ClusterTable, *, frames=None, force: bool = False) -> Path:
    """Write a table as an aare ``.clust`` file, frames in ascending order.

    Parameters
    ----------
    path : path-like
        Output file.
    table : ClusterTable
        Clusters to write; their data type and shape set the record (int32 for aare's
        default ``ClusterFile``).
    frames : array of int, optional
        Frame numbers to write even without clusters (as aare's finder writes every
        frame it processed). Every cluster's frame must be among them.
    force : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DedkitError
        Coordinates outside uint16, frame numbers outside int32, clusters of frames not
        in ``frames``, an existing output without force.
    """
    with ClustWriter(path, force=force) as writer:
        writer.append(table, frames=frames)
    return writer.path


def _encode(table: ClusterTable, frames, path) -> np.ndarray:
    """The bytes of a table's frames (see :func:`write_clust`)."""
    record = cluster_record_dtype(table.cluster_shape, table.data.dtype)
    for name, values in (("x", table.x), ("y", table.y)):
        if len(values) and (values.min() < 0 or values.max() > 0xFFFF):
            raise DedkitError(f"cluster {name} must be 0..65535 for a .clust file", path=path)
    order = np.argsort(table.frame, kind="stable")
    cluster_frames = np.asarray(table.frame, np.int64)[order]
    frame_numbers, counts = np.unique(cluster_frames, return_counts=True)
    if frames is not None:
        wanted = np.unique(np.asarray(frames, np.int64))
        if not np.isin(frame_numbers, wanted).all():
            raise DedkitError("some clusters belong to frames not listed in frames", path=path)
        counts = np.bincount(np.searchsorted(wanted, cluster_frames), minlength=len(wanted))
        frame_numbers = wanted
    if len(frame_numbers) and (frame_numbers.min() < -(2**31) or frame_numbers.max() >= 2**31):
        raise DedkitError("frame numbers must fit in int32 for a .clust file", path=path)
    records = np.zeros(len(table), record)  # zeros: padding bytes are defined
    records["x"] = table.x[order]
    records["y"] = table.y[order]
    records["data"] = table.data[order]
    out = np.empty(_FRAME_HEADER_BYTES * len(frame_numbers) + records.nbytes, np.uint8)
    _pack_frames(
        frame_numbers, counts.astype(np.int64), records.view(np.uint8), record.itemsize, out
    )
    return out


class ClustWriter(CommitOnSuccess):
    """Writes a ``.clust`` file chunk by chunk (frames in ascending order within and
    across chunks), under a temporary name renamed on :meth:`close`.

    Parameters
    ----------
    path : path-like
    force : bool
        Replace an existing file.
    inputs : sequence of path-like
        Files being read, which the output may not replace.
    """

    def __init__(self, path, *, force: bool = False, inputs=()):
        self.path = check_output_path(path, inputs, force)
        self._atomic = atomic_output(self.path)
        self._tmp = self._atomic.__enter__()
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in close/abort
        self._record = None
        self._last_frame = None

    def append(self, table: ClusterTable, *, frames=None) -> None:
        """Add the clusters of some frames (and, with ``frames``, those frames even
        without clusters); frames must come after those already written."""
        record = cluster_record_dtype(table.cluster_shape, table.data.dtype)
        if self._record is not None and record != self._record:
            raise DedkitError("all clusters of a .clust file must have one size and type")
        self._record = record
        numbers = np.asarray(table.frame if frames is None else frames, np.int64)
        if len(numbers):
            if self._last_frame is not None and numbers.min() <= self._last_frame:
                raise DedkitError("chunks of a .clust file must come in frame order")
            self._last_frame = int(numbers.max())
        # file.write, not ndarray.tofile: a full disk then says so (errno ENOSPC)
        with writing(self.path):
            self._file.write(_encode(table, frames, self.path).data)

    def close(self) -> Path:
        try:
            with writing(self.path):
                self._file.close()
        except BaseException as error:
            self._atomic.__exit__(type(error), error, error.__traceback__)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        err = RuntimeError("aborted")
        try:
            self._atomic.__exit__(RuntimeError, err, None)
        except RuntimeError:
            pass


def _file_size(path: Path) -> int:
    if not path.exists():
        raise DedkitError("cluster file not found", path=path)
    return check_input_file(path, "cluster file").stat().st_size


def _nonempty_size(path: Path) -> int:
    # aare writes a frame header for every frame it processes: an empty file is not a
    # cluster file with no clusters but a failed or foreign one (issue 13 item 11)
    size = _file_size(path)
    if size == 0:
        raise DedkitError(
            "cluster file is empty (0 bytes; aare writes a header for every frame)", path=path
        )
    _refuse_v3(path)
    return size


#: first bytes of aare's experimental cluster file v3 (``CLST``, header length, JSON)
_V3_MAGIC = b"CLST"


def _refuse_v3(path: Path) -> None:
    # a v3 file's first bytes would decode as a frame header of ~1.4e9 clusters and end
    # in "truncated or corrupt": name the format instead (issue 13 item 16)
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(_V3_MAGIC))
    except OSError as error:
        raise DedkitError(f"cannot read cluster file: {error}", path=path) from None
    if head == _V3_MAGIC:
        raise DedkitError(
            "aare's experimental cluster file v3 ('CLST' header) is not supported; dedkit "
            "reads aare's ClusterFile (frame number, cluster count, clusters per frame)",
            path=path,
        )


def _read_bytes(path: Path) -> np.ndarray:
    _nonempty_size(path)
    try:
        return np.fromfile(path, np.uint8)
    except OSError as error:
        raise DedkitError(f"cannot read cluster file: {error}", path=path) from None
