"""Reading slsDetector runs (Jungfrau and MÖNCH): :class:`RawRun`, its frames and packet losses.

Frames are read lazily from the data files (:mod:`dedkit.io.sls.format`), only the bytes
asked for, and the ports stitched into one image. The facts this module relies on, from
slsDetectorPackage (``slsReceiverSoftware/src/DataProcessor.cpp``) and aare 2025.11.21
(``RawFile.cpp``, ``RawSubFile.cpp``, ``DetectorGeometry.cpp``, ``PixelMap.cpp``):

- The header's ``row`` and ``column`` give the port's place in the master's port grid (the
  second port of a two-interface module has row 1); ports are stitched by them, port row 0
  on image rows 0.., exactly where aare's geometry puts them. Rows are kept in file order
  (no flip): :mod:`dedkit.hpd` works in detector readout order.
- With "Frame Padding" on, the receiver writes partial and wholly missing frames anyway
  and fills the missing packets' pixels with 0xFF bytes (0xFFFF per pixel, not zero;
  ``DataProcessor::PadMissingPackets``); a wholly missing frame gets packets_caught 0.
  Such frames are flagged in :attr:`RawFrames.incomplete`, their pixels left as written.
- MÖNCH 03 recorded through the chip-test-board firmware (aare's ``Moench03_old``: a text
  master of type Moench or with 400 x 400 pixels, or a JSON master of type Moench with
  5000 analog samples) stores each frame in ADC order; aare's ``GenerateMoench03PixelMap``
  puts the pixels in place and is reproduced here. Current MÖNCH (type Moench, standard
  header) and Jungfrau files are already in image order.
- MÖNCH pixels carry 14 significant bits; Jungfrau's top two bits are the gain stage
  (00 G0, 01 G1, 11 G2) above a 14-bit ADC value (:func:`split_jungfrau_gain`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.inputs import check_input_file
from dedkit.io.limits import check_detector_shape
from dedkit.io.sls.format import (
    DETECTOR_TYPE_CODES,
    HEADER_DTYPE,
    MODULE_SHAPE,
    PACKET_PAYLOAD,
    normal_type,
)
from dedkit.io.sls.master import read_master

__all__ = ["MissingPackets", "RawFrames", "RawRun", "split_jungfrau_gain"]

_READABLE_TYPES = ("Jungfrau", "Moench")
# UDP payload bytes per packet of the chip-test board's 10 GbE readout (MÖNCH 03)
_CTB_10G_PAYLOAD = 8144
_MOENCH_BITS_MASK = 0x3FFF


@dataclass
class RawFrames:
    """Frames read from a run, with their receiver headers.

    Attributes
    ----------
    frames : (n, rows, cols) uint16
        Stitched frames (the ROI only, when one was asked for). MÖNCH frames keep 14
        bits.
    headers : (n, n_ports) structured array of :data:`HEADER_DTYPE`
        Each port's header of each frame.
    frame_numbers : (n,) uint64
        The detector's frame numbers.
    incomplete : (n,) bool
        A port lost packets in this frame (see the module notes for what its pixels
        hold).
    """

    frames: np.ndarray
    headers: np.ndarray
    frame_numbers: np.ndarray
    incomplete: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class MissingPackets:
    """Packet losses over a whole run (:meth:`RawRun.scan_missing`).

    Attributes
    ----------
    n_frames : int
        Frames in the run.
    frame_numbers : (n_frames,) uint64
    packets_missing : (n_frames, n_ports) int64
        Packets not received, per frame and port.
    incomplete : (n_frames,) bool
        Frames with any packet missing.
    skipped_frame_numbers : int
        Frame numbers absent between the first and last frame (frames the receiver
        did not write: padding off, or discarded).
    """

    n_frames: int
    frame_numbers: np.ndarray
    packets_missing: np.ndarray
    incomplete: np.ndarray
    skipped_frame_numbers: int

    @property
    def n_incomplete(self) -> int:
        return int(self.incomplete.sum())

    def summary(self) -> str:
        """One line for a report."""
        return (
            f"{self.n_incomplete} of {self.n_frames} frames incomplete "
            f"({int(self.packets_missing.sum())} packets missing), "
            f"{self.skipped_frame_numbers} frame numbers skipped"
        )


@dataclass
class _DataFile:
    path: Path
    first: int  # port frame index of its first frame
    n_frames: int  # whole frames in it


@dataclass
class _Port:
    index: int
    row: int  # header row / column: place in the port grid
    column: int
    files: list[_DataFile]

    @property
    def n_frames(self) -> int:
        return sum(f.n_frames for f in self.files)


class RawRun:
    """A lazily read slsDetector run (Jungfrau or MÖNCH).

    Opening reads the master, the first header of every port and the data files' sizes;
    frames are read on demand, only the bytes asked for.

    Parameters
    ----------
    master_path : path-like
        ``NAME_master_I.json`` (or ``.raw``).
    expect_detector : str, optional
        Refuse a run of another detector type ('Moench'/'MÖNCH' or 'Jungfrau').

    Attributes
    ----------
    master : RawMaster
    shape : (int, int)
        (rows, columns) of a frame.
    n_frames : int
        Frames that can be read: those the master lists, less any a truncated or
        missing data file lacks.
    dtype : numpy.dtype
        uint16.
    truncated : str or None
        Why fewer frames than the master lists can be read; None when all can.
    expected_packets : int
        Packets in a complete frame of one port.

    Raises
    ------
    DedkitError
        Master missing or unparsable, data file missing, a detector this reader does not
        handle or not the one expected, or headers that contradict the master.
    """

    dtype = np.dtype(np.uint16)

    def __init__(self, master_path, *, expect_detector: str | None = None):
        self.master = master = read_master(master_path)
        self._path = master.path
        if expect_detector is not None and normal_type(expect_detector) != normal_type(
            master.detector_type
        ):
            raise DedkitError(
                f"this is a {master.detector_type} run, a {expect_detector} run is needed",
                path=self._path,
            )
        self._check_master()
        self.shape = master.shape
        rows, cols = master.port_shape
        self._record = np.dtype([("header", HEADER_DTYPE), ("data", "<u2", (rows, cols))])
        self._frame_bytes = self._record.itemsize
        if master.adc_ordered:
            self._pixel_map = _moench03_pixel_map().ravel()
            self.expected_packets = math.ceil(master.image_size_bytes / _CTB_10G_PAYLOAD)
        else:
            self._pixel_map = None
            self.expected_packets = master.image_size_bytes // PACKET_PAYLOAD[master.detector_type]
        self._type_codes = (
            {DETECTOR_TYPE_CODES["Moench"], DETECTOR_TYPE_CODES["ChipTestBoard"]}
            if master.adc_ordered
            else {DETECTOR_TYPE_CODES[master.detector_type]}
        )
        self._ports = [self._open_port(p) for p in range(master.n_ports)]
        self._check_layout()
        self._port_frames, self.truncated = self._align_ports()
        self.n_frames = len(self._port_frames[0])

    # ----------------------------------------------------------------- opening

    def _check_master(self) -> None:
        m = self.master
        if m.detector_type not in _READABLE_TYPES:
            raise DedkitError(
                f"{m.detector_type} runs are not supported (dedkit reads Jungfrau and MÖNCH)",
                path=self._path,
            )
        if m.bit_depth != 16:
            raise DedkitError(
                f"bit depth {m.bit_depth} is not supported (only 16)", path=self._path
            )
        if m.roi is not None:
            raise DedkitError(
                "runs recorded with a receiver ROI are not supported", path=self._path
            )
        rows, cols = m.port_shape
        if rows <= 0 or cols <= 0 or m.geometry[0] <= 0 or m.geometry[1] <= 0:
            raise DedkitError("master gives an empty geometry or pixel count", path=self._path)
        # bounded before the frame record is built from them (issue 13 items 8, 11)
        check_detector_shape((rows, cols), path=self._path, what="master's Pixels (one port)")
        check_detector_shape(m.shape, path=self._path, what="master's Geometry x Pixels")
        counts = {"Frames in File": m.frames_in_file, "Total Frames": m.total_frames}
        for name, value in counts.items():
            if not 0 <= value < 2**63:
                raise DedkitError(f"master's {name} is {value}", path=self._path)
        if m.udp_interfaces < 1:
            raise DedkitError(
                f"master's Number of UDP Interfaces is {m.udp_interfaces}", path=self._path
            )
        if m.max_frames_per_file < 1:
            raise DedkitError(
                f"master's Max Frames Per File is {m.max_frames_per_file}", path=self._path
            )
        if m.image_size_bytes != rows * cols * 2:
            raise DedkitError(
                f"master's image size {m.image_size_bytes} bytes does not match its "
                f"{cols} x {rows} pixels of 16 bits",
                path=self._path,
            )
        if m.adc_ordered and (rows, cols, m.n_ports) != (400, 400, 1):
            raise DedkitError(
                "a MÖNCH 03 chip-test-board run must be one 400 x 400 port", path=self._path
            )
        self._check_consistent()

    def _check_consistent(self) -> None:
        """Refuse a master whose fields contradict each other (issue 13 item 12).

        A port is the full width of a module and 1/interfaces of its rows (slsReceiver's
        ``nPixelsY = numberOfRows / numUDPInterfaces``); so Pixels.x is the module's width
        (MÖNCH 400, Jungfrau 1024), Pixels.y x interfaces is the "Number of rows" the
        master records (at most the module's), and Geometry.y counts whole modules of
        interfaces. Pixels with x and y swapped keep the image size, so only these
        cross-checks tell.
        """
        m = self.master
        rows, cols = m.port_shape
        module_rows, module_cols = MODULE_SHAPE[m.detector_type]
        interfaces = m.udp_interfaces
        if cols != module_cols or rows * interfaces > module_rows:
            raise DedkitError(
                f"master's Pixels ({cols} x {rows} per port, {interfaces} interface(s)) "
                f"contradict its detector type: a {m.detector_type} module is {module_cols} "
                f"x {module_rows}",
                path=self._path,
            )
        if "Number of rows" in m.extra:
            n_rows = m.extra["Number of rows"]
            text_master = m.path.suffix.lower() != ".json"  # all its values are text
            if text_master and isinstance(n_rows, str) and n_rows.strip().isdigit():
                n_rows = int(n_rows)
            if isinstance(n_rows, bool) or not isinstance(n_rows, int):
                raise DedkitError(
                    f"master's Number of rows must be an integer, not {n_rows!r}",
                    path=self._path,
                )
            if n_rows != rows * interfaces:
                raise DedkitError(
                    f"master's Number of rows ({n_rows}) contradicts its Pixels.y ({rows}) "
                    f"x {interfaces} UDP interface(s)",
                    path=self._path,
                )
        if m.geometry[1] % interfaces:
            raise DedkitError(
                f"master's Geometry.y ({m.geometry[1]} ports) is not a whole number of "
                f"modules of {interfaces} UDP interfaces",
                path=self._path,
            )

    def _open_port(self, port: int) -> _Port:
        m = self.master
        files = []
        first = 0
        file_index = 0
        while True:
            path = m.data_path(port, file_index)
            if not path.exists():
                if file_index == 0:
                    raise DedkitError("data file not found", path=path)
                break
            check_input_file(path, "data file")
            size = path.stat().st_size
            n_whole, partial = divmod(size, self._frame_bytes)
            if n_whole > m.max_frames_per_file:
                raise DedkitError(
                    f"data file holds {n_whole} frames of {self._frame_bytes} bytes, more than "
                    f"the master's {m.max_frames_per_file} per file: the master's Pixels "
                    f"({m.port_shape[1]} x {m.port_shape[0]}) or image size do not describe "
                    "this data",
                    path=path,
                )
            files.append(_DataFile(path, first, n_whole))
            first += n_whole
            if partial:
                break  # the receiver stopped in this file: later files cannot follow it
            file_index += 1
        header = self._headers_of(files[0], slice(0, 1)) if files[0].n_frames else None
        if header is None:
            raise DedkitError("data file holds no complete frame", path=files[0].path)
        self._check_frame_size(files, header[0])
        return _Port(port, int(header["row"][0]), int(header["column"][0]), files)

    def _check_frame_size(self, files: list[_DataFile], first: np.void) -> None:
        """Refuse a master whose frame size does not fit the data (issue 13 item 12).

        With the wrong Pixels or image size, the frame records are cut in the wrong
        places, so the second and the last frame of a file, and the partial frame a
        truncated file ends with, would have pixel values where their headers should be:
        these headers must name the master's detector, have the first one's header
        version and a later frame number. (Rows and columns that contradict the master
        are reported, by frame, when read.)
        """
        m = self.master
        for data_file in files:
            checked = []
            for local in sorted({min(1, data_file.n_frames - 1), data_file.n_frames - 1}):
                if local >= 0:
                    checked.append((local, self._headers_of(data_file, slice(local, local + 1))))
            tail = data_file.n_frames * self._frame_bytes
            if data_file.path.stat().st_size - tail >= HEADER_DTYPE.itemsize:
                # a truncated file's last frame starts with its header all the same
                tail_header = np.fromfile(data_file.path, HEADER_DTYPE, count=1, offset=tail)
                checked.append((data_file.n_frames, tail_header))
            for local, headers in checked:
                h = headers[0]
                if (
                    int(h["detector_type"]) not in self._type_codes
                    or h["header_version"] != first["header_version"]
                    or (data_file.first + local > 0 and h["frame_number"] <= first["frame_number"])
                ):
                    raise DedkitError(
                        f"frame {local} has no valid header where the master's Pixels "
                        f"({m.port_shape[1]} x {m.port_shape[0]}) and image size put it: the "
                        "master does not describe this data",
                        path=data_file.path,
                    )

    def _check_layout(self) -> None:
        m = self.master
        places = {(p.row, p.column) for p in self._ports}
        expected = {(r, c) for r in range(m.geometry[1]) for c in range(m.geometry[0])}
        if places != expected:
            found = sorted((p.index, p.row, p.column) for p in self._ports)
            raise DedkitError(
                f"data headers place the ports at (port, row, column) {found}, not on the "
                f"master's {m.geometry[0]} x {m.geometry[1]} grid",
                path=self._path,
            )
        for port in self._ports:
            code = int(self._headers_of(port.files[0], slice(0, 1))["detector_type"][0])
            if code not in self._type_codes:
                raise DedkitError(
                    f"header detector type {code} does not match the master's {m.detector_type}",
                    path=port.files[0].path,
                )

    def _align_ports(self) -> tuple[list[np.ndarray], str | None]:
        """Per-port frame indices of each run frame, and why the run is short if it is.

        Ports normally hold the same frames in the same order. Without frame padding a
        port may lack frames another has; then only frames present in every port are
        kept, matched by frame number (as aare does).
        """
        m = self.master
        counts = [p.n_frames for p in self._ports]
        truncated = None
        # longest port first, so that the message left is the shortest port's
        for port in sorted(self._ports, key=lambda p: p.n_frames, reverse=True):
            last = port.files[-1]
            size = last.path.stat().st_size
            if size % self._frame_bytes:
                truncated = (
                    f"data file {last.path.name} is truncated: {port.n_frames} of "
                    f"{m.frames_in_file} frames are complete"
                )
            elif m.frame_padding and port.n_frames < m.frames_in_file:
                next_file = m.data_path(port.index, len(port.files))
                truncated = (
                    f"data files end early ({next_file.name} missing or "
                    f"{last.path.name} short): {port.n_frames} of {m.frames_in_file} "
                    "frames are on disk"
                )
        limit = min(min(counts), m.frames_in_file) if m.frame_padding else min(counts)
        if limit == 0:
            raise DedkitError("the run holds no frames", path=self._path)
        firsts = [int(self._port_frame_numbers(p, 0, 1)[0]) for p in self._ports]
        lasts = [int(self._port_frame_numbers(p, limit - 1, limit)[0]) for p in self._ports]
        if len(set(counts)) == 1 and len(set(firsts)) == 1 and len(set(lasts)) == 1:
            return [np.arange(limit) for _ in self._ports], truncated
        numbers = [self._port_frame_numbers(p, 0, p.n_frames) for p in self._ports]
        common = numbers[0]
        for more in numbers[1:]:
            common = np.intersect1d(common, more, assume_unique=False)
        indices = [np.searchsorted(n, common) for n in numbers]
        if any(np.any(n[i] != common) for n, i in zip(numbers, indices, strict=True)):
            raise DedkitError(
                "frame numbers are not increasing within a port; cannot match the ports' frames",
                path=self._path,
            )
        return indices, truncated

    def _port_frame_numbers(self, port: _Port, start: int, stop: int) -> np.ndarray:
        out = np.empty(stop - start, np.uint64)
        for data_file, local, where in _locate(port, np.arange(start, stop)):
            out[where] = self._headers_of(data_file, local)["frame_number"]
        return out

    def _headers_of(self, data_file: _DataFile, local) -> np.ndarray:
        return np.array(_records(data_file, self._record)["header"][local])

    # ----------------------------------------------------------------- reading

    @property
    def n_ports(self) -> int:
        return len(self._ports)

    def read(self, start: int = 0, stop: int | None = None, roi=None) -> RawFrames:
        """Read frames ``start`` to ``stop`` (exclusive), optionally a region only.

        Parameters
        ----------
        start, stop : int
            Frame indices in the run (0-based; ``stop`` None: to the last readable
            frame).
        roi : (row0, row1, col0, col1), optional
            Region of the stitched frame to read, ends exclusive.

        Returns
        -------
        RawFrames

        Raises
        ------
        DedkitError
            Range or ROI outside the run, frames beyond a truncation, or a header that
            contradicts the master.
        """
        start, stop = self._check_range(start, stop)
        row0, row1, col0, col1 = self._check_roi(roi)
        n = stop - start
        frames = np.empty((n, row1 - row0, col1 - col0), np.uint16)
        headers = np.empty((n, self.n_ports), HEADER_DTYPE)
        port_rows, port_cols = self.master.port_shape
        for p, port in enumerate(self._ports):
            top, left = port.row * port_rows, port.column * port_cols
            # the part of the ROI in this port, in image and in port coordinates
            r0, r1 = max(row0, top), min(row1, top + port_rows)
            c0, c1 = max(col0, left), min(col1, left + port_cols)
            covers = r0 < r1 and c0 < c1
            out_rows, out_cols = slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0)
            in_rows, in_cols = slice(r0 - top, r1 - top), slice(c0 - left, c1 - left)
            for data_file, local, where in _locate(port, self._port_frames[p][start:stop]):
                records = _records(data_file, self._record)
                headers[where, p] = records["header"][local]
                if not covers:
                    continue
                if self._pixel_map is None:
                    frames[where, out_rows, out_cols] = records["data"][local, in_rows, in_cols]
                else:
                    # ADC order scatters every region over the whole frame: read it all
                    raw = np.asarray(records["data"][local]).reshape(-1, 400 * 400)
                    image = raw[:, self._pixel_map].reshape(-1, 400, 400)
                    frames[where, out_rows, out_cols] = image[:, in_rows, in_cols]
        self._check_headers(headers, start)
        if self.master.detector_type == "Moench":
            frames &= _MOENCH_BITS_MASK
        return RawFrames(
            frames=frames,
            headers=headers,
            frame_numbers=headers["frame_number"][:, 0].copy(),
            incomplete=self._packets_missing(headers).any(axis=1),
        )

    def iter_chunks(
        self, n_frames_per_chunk: int, start: int = 0, stop: int | None = None, roi=None
    ) -> Iterator[RawFrames]:
        """Yield :class:`RawFrames` of at most ``n_frames_per_chunk`` frames, in order."""
        if n_frames_per_chunk < 1:
            raise DedkitError(f"chunk size must be at least 1, not {n_frames_per_chunk}")
        start, stop = self._check_range(start, stop)
        for first in range(start, stop, n_frames_per_chunk):
            yield self.read(first, min(first + n_frames_per_chunk, stop), roi)

    def read_headers(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Headers only, (n, n_ports) of :data:`HEADER_DTYPE` (112 bytes per port read)."""
        start, stop = self._check_range(start, stop)
        headers = np.empty((stop - start, self.n_ports), HEADER_DTYPE)
        for p, port in enumerate(self._ports):
            for data_file, local, where in _locate(port, self._port_frames[p][start:stop]):
                headers[where, p] = self._headers_of(data_file, local)
        self._check_headers(headers, start)
        return headers

    def scan_missing(self) -> MissingPackets:
        """Count lost packets and skipped frame numbers over the run, from headers only."""
        headers = self.read_headers()
        frame_numbers = headers["frame_number"][:, 0].copy()
        missing = self._packets_missing(headers)
        skipped = 0
        if len(frame_numbers) > 1:
            steps = np.diff(frame_numbers.astype(np.int64))
            skipped = int(np.clip(steps - 1, 0, None).sum())
        return MissingPackets(
            n_frames=self.n_frames,
            frame_numbers=frame_numbers,
            packets_missing=missing,
            incomplete=missing.any(axis=1),
            skipped_frame_numbers=skipped,
        )

    def _packets_missing(self, headers: np.ndarray) -> np.ndarray:
        """Packets lost per frame and port: the larger of the count's and the mask's."""
        expected = self.expected_packets
        by_count = expected - headers["packets_caught"].astype(np.int64)
        bits = np.unpackbits(headers["packet_mask"], axis=-1, bitorder="little")[..., :expected]
        by_mask = expected - bits.sum(axis=-1, dtype=np.int64)
        return np.clip(np.maximum(by_count, by_mask), 0, None)

    def _check_headers(self, headers: np.ndarray, start: int) -> None:
        rows = np.array([p.row for p in self._ports])
        cols = np.array([p.column for p in self._ports])
        codes = np.array(sorted(self._type_codes), np.uint8)
        bad = (
            (headers["row"] != rows)
            | (headers["column"] != cols)
            | ~np.isin(headers["detector_type"], codes)
        )
        if bad.any():
            frame, port = (int(v) for v in np.argwhere(bad)[0])
            h = headers[frame, port]
            raise DedkitError(
                f"frame {start + frame} of port {port} has header row {h['row']}, column "
                f"{h['column']}, detector type {h['detector_type']}, contradicting the "
                "master and the port's first frame",
                path=self._ports[port].files[0].path,
            )

    def _check_range(self, start: int, stop: int | None) -> tuple[int, int]:
        stop = self.n_frames if stop is None else stop
        if not 0 <= start <= stop:
            raise DedkitError(
                f"frame range {start}:{stop} is not within the run's {self.n_frames} frames",
                path=self._path,
            )
        if stop > self.n_frames:
            why = f" ({self.truncated})" if self.truncated else ""
            raise DedkitError(
                f"frame range {start}:{stop} goes beyond the {self.n_frames} readable frames{why}",
                path=self._path,
            )
        return start, stop

    def _check_roi(self, roi) -> tuple[int, int, int, int]:
        rows, cols = self.shape
        if roi is None:
            return 0, rows, 0, cols
        row0, row1, col0, col1 = (int(v) for v in roi)
        if not (0 <= row0 < row1 <= rows and 0 <= col0 < col1 <= cols):
            raise DedkitError(
                f"ROI rows {row0}:{row1}, columns {col0}:{col1} is empty or outside the "
                f"{rows} x {cols} frame",
                path=self._path,
            )
        return row0, row1, col0, col1


def _records(data_file: _DataFile, record: np.dtype) -> np.memmap:
    """The whole frames of a data file as a read-only memory map of (header, data).

    Slicing it reads only the pages holding the bytes asked for; the map is closed
    when the last reference to it goes.
    """
    return np.memmap(data_file.path, dtype=record, mode="r", shape=(data_file.n_frames,))


def _locate(port: _Port, indices: np.ndarray):
    """Split increasing port frame indices by data file.

    Yields (data file, index into its frames, slice of ``indices``); the index is a
    slice when the frames are consecutive, so that reading them is one strided copy.
    """
    indices = np.asarray(indices, np.int64)
    starts = np.array([f.first for f in port.files])
    which = np.searchsorted(starts, indices, side="right") - 1
    # increasing indices: each file's frames are one run of positions
    boundaries = np.flatnonzero(np.diff(which)) + 1
    for first, stop in zip(np.r_[0, boundaries], np.r_[boundaries, len(indices)], strict=True):
        if first == stop:
            continue
        data_file = port.files[which[first]]
        local = indices[first:stop] - data_file.first
        if local[-1] - local[0] + 1 == len(local):
            local = slice(int(local[0]), int(local[-1]) + 1)
        yield data_file, local, slice(int(first), int(stop))


def _moench03_pixel_map() -> np.ndarray:
    """For each image pixel (row, col) of MÖNCH 03, its index in the ADC-ordered frame.

    32 ADCs each read a 25-column strip of one half (supercolumn), sample by sample:
    sample i of ADC a lands in column ``ADC_COLUMN[a] + i % 25``; ADC groups of four
    alternate between the lower half (rows 199 down to 0) and the upper (200 up to 399).
    From aare's ``GenerateMoench03PixelMap`` (PixelMap.cpp).
    """
    adc_column = np.array([300, 325, 350, 375, 300, 325, 350, 375,
                           200, 225, 250, 275, 200, 225, 250, 275,
                           100, 125, 150, 175, 100, 125, 150, 175,
                           0, 25, 50, 75, 0, 25, 50, 75])  # fmt: skip
    sample, adc = np.divmod(np.arange(400 * 400), 32)
    column = adc_column[adc] + sample % 25
    lower = (adc // 4) % 2 == 0
    row = np.where(lower, 199 - sample // 25, 200 + sample // 25)
    pixel_map = np.empty((400, 400), np.int64)
    pixel_map[row, column] = np.arange(400 * 400)
    return pixel_map


def split_jungfrau_gain(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split Jungfrau raw values into gain stage and 14-bit ADC value.

    Parameters
    ----------
    frames : uint16 array
        Raw Jungfrau pixel values.

    Returns
    -------
    gain_stage : uint8 array
        The top two bits: 0 for G0, 1 for G1, 3 for G2 (2 does not occur in valid data).
    adc : uint16 array
        The low 14 bits.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint16:
        raise DedkitError(f"Jungfrau frames must be uint16, not {frames.dtype}")
    return (frames >> 14).astype(np.uint8), frames & np.uint16(0x3FFF)
