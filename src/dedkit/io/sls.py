"""slsDetector raw files (PSI's MÖNCH and Jungfrau): master file, data files, a writer.

A run is a master file ``NAME_master_I.json`` (slsDetectorPackage >= 7; older packages
write a text ``NAME_master_I.raw`` of ``Key : value`` lines) and data files
``NAME_dP_fF_I.raw``: port P (one per UDP interface and module), file index F (a new file
every "Max Frames Per File" frames), run index I. Packages before master version 4.0 wrote
the file index with 12 digits (``f000000000000``).

Each data file is a sequence of frames, each a 112-byte receiver header (:data:`HEADER_DTYPE`)
followed by that port's pixels, little-endian uint16, row by row. The facts this module
relies on, from slsDetectorPackage (``slsReceiverSoftware/src/GeneralData.h``,
``DataProcessor.cpp``, the "SLS Receiver Header Format" page) and aare 2025.11.21
(``RawMasterFile.cpp``, ``RawFile.cpp``, ``RawSubFile.cpp``, ``DetectorGeometry.cpp``,
``PixelMap.cpp``):

- The master's "Geometry" counts ports, not modules: a Jungfrau module read out through
  two UDP interfaces has Geometry x=1, y=2 and "Pixels" x=1024, y=256 (one port). Jungfrau
  and MÖNCH split a module's rows between interfaces: a port holds ``rows / n_interfaces``
  rows of all columns (MÖNCH 04: 400 columns x 200 rows per port with two interfaces).
- The header's ``row`` and ``column`` give the port's place in that grid (the second port
  of a two-interface module has row 1); ports are stitched by them, port row 0 on image
  rows 0.., exactly where aare's geometry puts them. Rows are kept in file order (no flip):
  :mod:`dedkit.hpd` works in detector readout order.
- ``packets_caught`` (the UDP header's packet number, replaced by the receiver) is the
  number of packets received for that frame; the 512-bit ``packet_mask`` has bit i
  (byte i // 8, bit i % 8) set for each packet received. A port's frame arrives in
  ``image bytes / payload`` packets: 8192-byte payloads for Jungfrau (128 per module, 64
  per port with two interfaces), 6400 for MÖNCH 04 (50, or 25 per port), 8144 for the
  chip-test-board readout of MÖNCH 03. Fewer means a partial frame.
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

import json
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import check_output_path, temporary_sibling
from dedkit.io.inputs import check_input_file
from dedkit.io.limits import check_detector_shape

__all__ = [
    "HEADER_DTYPE",
    "MissingPackets",
    "RawFrames",
    "RawMaster",
    "RawRun",
    "read_master",
    "run_files",
    "split_jungfrau_gain",
    "write_raw_run",
]

#: The 112-byte frame header the slsReceiver writes before each frame of each port
HEADER_DTYPE = np.dtype(
    [
        ("frame_number", "<u8"),
        ("exp_length", "<u4"),  # measured exposure in 0.1 us
        ("packets_caught", "<u4"),
        ("bunch_id", "<u8"),
        ("timestamp", "<u8"),  # 10 MHz ticks since the start of the acquisition
        ("mod_id", "<u2"),
        ("row", "<u2"),
        ("column", "<u2"),
        ("reserved", "<u2"),
        ("debug", "<u4"),
        ("round_robin", "<u2"),
        ("detector_type", "u1"),
        ("header_version", "u1"),
        ("packet_mask", "u1", (64,)),
    ]
)
assert HEADER_DTYPE.itemsize == 112

#: slsDetectorPackage's detectorType enum, as written in the header's detector_type
DETECTOR_TYPE_CODES = {
    "Generic": 0,
    "Eiger": 1,
    "Gotthard": 2,
    "Jungfrau": 3,
    "ChipTestBoard": 4,
    "Moench": 5,
    "Mythen3": 6,
    "Gotthard2": 7,
    "Xilinx_ChipTestBoard": 8,
}
_READABLE_TYPES = ("Jungfrau", "Moench")
# UDP payload bytes per packet (GeneralData.h): sets the packets in a complete frame
_PACKET_PAYLOAD = {"Jungfrau": 8192, "Moench": 6400}
_CTB_10G_PAYLOAD = 8144
# Full module size (rows, columns) for the writer
_MODULE_SHAPE = {"Jungfrau": (512, 1024), "Moench": (400, 400)}
# slsReceiver's default discard policy per detector (GeneralData.h)
_DISCARD_POLICY = {"Jungfrau": "nodiscard", "Moench": "discardpartial"}
_HEADER_VERSION = 2
_MOENCH_BITS_MASK = 0x3FFF
_NO_ROI = 4294967295  # "Receiver Roi" value of an unset coordinate
_MASTER_VERSION = 7.2  # the JSON layout of the reference Jungfrau masters

_MASTER_NAME = re.compile(r"^(?P<base>.+)_master_(?P<index>\d+)\.(?P<ext>json|raw)$")
_DURATION = re.compile(r"^\s*([0-9.eE+-]+)\s*(ns|us|ms|s|min|h)\s*$")
# seconds per unit, as decimal text so that '10us' gives the float nearest 1e-5
_DURATION_UNITS = {"ns": "1e-9", "us": "1e-6", "ms": "1e-3", "s": "1", "min": "60", "h": "3600"}

# Keys of a JSON master that RawMaster holds in fields; everything else goes to .extra
_JSON_KEYS_READ = {
    "Version",
    "Timestamp",
    "Detector Type",
    "Timing Mode",
    "Geometry",
    "Image Size in bytes",
    "Image Size",
    "Pixels",
    "Max Frames Per File",
    "Frame Discard Policy",
    "Frame Padding",
    "Scan Parameters",
    "Total Frames",
    "Receiver Roi",
    "Receiver Rois",
    "Exptime",
    "Exposure Time",
    "Period",
    "Acquisition Period",
    "Number of UDP Interfaces",
    "Dynamic Range",
    "Frames in File",
    "Analog Flag",
    "Analog Samples",
    "Frame Header Format",
}

_FRAME_HEADER_FORMAT = {
    "Frame Number": "8 bytes",
    "SubFrame Number/ExpLength": "4 bytes",
    "Packet Number": "4 bytes",
    "Bunch ID": "8 bytes",
    "Timestamp": "8 bytes",
    "Module Id": "2 bytes",
    "Row": "2 bytes",
    "Column": "2 bytes",
    "Reserved": "2 bytes",
    "Debug": "4 bytes",
    "Round Robin Number": "2 bytes",
    "Detector Type": "1 byte",
    "Header Version": "1 byte",
    "Packets Caught Mask": "64 bytes",
}


# --------------------------------------------------------------------------- master


@dataclass(frozen=True)
class RawMaster:
    """What a master file says about a run.

    Attributes
    ----------
    path : pathlib.Path
        The master file.
    version : str
        Master file version ("7.2", "6.4", ...).
    timestamp : str
        When the run was started, as written.
    detector_type : str
        slsDetector's name: 'Jungfrau', 'Moench', 'Eiger', 'ChipTestBoard', ...
    timing_mode : str
        'auto', 'trigger', ...
    geometry : (int, int)
        Ports across and down (the master's "Geometry" x and y).
    port_shape : (int, int)
        Pixels of one port, (rows, columns) (the master's "Pixels" y and x).
    image_size_bytes : int
        Bytes of pixel data per port and frame.
    bit_depth : int
        Bits per pixel ("Dynamic Range"; 16 when not written).
    max_frames_per_file : int
        Frames per data file before the receiver opens the next one.
    total_frames : int
        Frames the acquisition was set up for.
    frames_in_file : int
        Frames the receiver wrote.
    frame_padding : bool
        Partial and missing frames were written, padded (see the module notes).
    frame_discard_policy : str
        'nodiscard', 'discardempty' or 'discardpartial'.
    udp_interfaces : int
        UDP interfaces per module.
    exposure_s, period_s : float or None
        Exposure time and frame period in seconds.
    roi : (int, int, int, int) or None
        Receiver region of interest (row0, row1, col0, col1), ends exclusive; None if
        unset.
    scan : dict or None
        Scan parameters when a scan was enabled ('dac', 'start', 'stop', 'step',
        'settle_time_s' where written); None otherwise.
    analog_samples : int or None
        Analog samples per frame (chip-test-board readouts only).
    adc_ordered : bool
        The frames are in ADC order (MÖNCH 03 through the chip-test-board firmware) and
        are put in image order on reading.
    extra : dict
        Every other key of the master, as written.
    """

    path: Path
    version: str
    timestamp: str
    detector_type: str
    timing_mode: str
    geometry: tuple[int, int]
    port_shape: tuple[int, int]
    image_size_bytes: int
    bit_depth: int
    max_frames_per_file: int
    total_frames: int
    frames_in_file: int
    frame_padding: bool
    frame_discard_policy: str
    udp_interfaces: int
    exposure_s: float | None
    period_s: float | None
    roi: tuple[int, int, int, int] | None
    scan: dict | None
    analog_samples: int | None
    adc_ordered: bool
    extra: dict = field(default_factory=dict)

    @property
    def base_name(self) -> str:
        """NAME in ``NAME_master_I.json``."""
        return _MASTER_NAME.match(self.path.name)["base"]

    @property
    def run_index(self) -> int:
        """I in ``NAME_master_I.json``."""
        return int(_MASTER_NAME.match(self.path.name)["index"])

    @property
    def n_ports(self) -> int:
        """Number of data-file ports (all modules, all interfaces)."""
        return self.geometry[0] * self.geometry[1]

    @property
    def modules(self) -> tuple[int, int]:
        """Modules across and down (interfaces split a module's rows)."""
        return self.geometry[0], max(1, self.geometry[1] // self.udp_interfaces)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the stitched image."""
        return self.geometry[1] * self.port_shape[0], self.geometry[0] * self.port_shape[1]

    def data_path(self, port: int, file_index: int) -> Path:
        """Path of data file ``NAME_dP_fF_I.raw``."""
        width = 12 if _version_number(self.version) < 4.0 else 0
        name = f"{self.base_name}_d{port}_f{file_index:0{width}d}_{self.run_index}.raw"
        return self.path.with_name(name)


def run_files(master_path) -> list[Path]:
    """Every file of a run: its master and each data file of every port that exists.

    The files a job reads from a run, so that an output cannot be one of them (issue 13
    item 2). Data files are listed by name (``NAME_dP_fF_I.raw``, F from 0 until one is
    missing), beyond a truncated one too, without reading them. A master that cannot be
    parsed lists itself only (reading the run then names what is wrong with it).
    """
    path = Path(master_path)
    try:
        master = read_master(path)
    except DedkitError:
        return [path]
    files = [path]
    for port in range(min(master.n_ports, 4096)):
        file_index = 0
        while (data := master.data_path(port, file_index)).exists():
            files.append(data)
            file_index += 1
    return files


def read_master(path) -> RawMaster:
    """Read an slsDetector master file, JSON or the older text format.

    Parameters
    ----------
    path : path-like
        ``NAME_master_I.json`` or ``NAME_master_I.raw``.

    Returns
    -------
    RawMaster

    Raises
    ------
    DedkitError
        The name is not that of a master file, the file is missing, or it cannot be
        parsed or lacks a required key.
    """
    path = Path(path)
    match = _MASTER_NAME.match(path.name)
    if match is None:
        raise DedkitError(
            "not an slsDetector master file name (expected NAME_master_I.json or .raw)",
            path=path,
        )
    if not path.exists():
        raise DedkitError("master file not found", path=path)
    check_input_file(path, "master file")
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise DedkitError(f"cannot read master file: {error.strerror}", path=path) from None
    if match["ext"] == "json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise DedkitError(
                f"master file is not valid JSON: {error.msg}", path=path, line=error.lineno
            ) from None
        except RecursionError:
            raise DedkitError(
                "master file is not valid JSON: nested too deeply", path=path
            ) from None
        if not isinstance(values, dict):
            raise DedkitError("master file is not a JSON object", path=path)
        parse = _master_from_json
    else:
        values = _text_master_values(text)
        parse = _master_from_text
    try:
        return parse(path, values)
    except KeyError as error:
        raise DedkitError(f"master file lacks the key {error.args[0]!r}", path=path) from None
    except (TypeError, ValueError, IndexError, OverflowError, AttributeError) as error:
        raise DedkitError(f"cannot parse master file: {one_line(error)}", path=path) from None


def _json_int(path: Path, j: dict, key: str, sub: str | None = None, default=None) -> int:
    """An integer of a JSON master (``j[key]`` or ``j[key][sub]``), refused with its key
    named when it is anything else: 400.5 or "400" is no pixel count (issue 13 item 12)."""
    if key not in j and default is not None:
        return default
    value = j[key] if sub is None else j[key][sub]
    if isinstance(value, bool) or not isinstance(value, int):
        name = key if sub is None else f"{key}.{sub}"
        raise DedkitError(f"master's {name} must be an integer, not {value!r}", path=path)
    return value


def _master_from_json(path: Path, j: dict) -> RawMaster:
    version = float(j["Version"])
    detector_type = str(j["Detector Type"])
    rows, cols = _json_int(path, j, "Pixels", "y"), _json_int(path, j, "Pixels", "x")
    analog_samples = None
    if int(j.get("Analog Flag", 1)) and "Analog Samples" in j:
        analog_samples = int(j["Analog Samples"])
    # aare's rule: a Moench master with 400 rows and 5000 analog samples is MÖNCH 03 via
    # the chip-test board, in ADC order
    adc_ordered = detector_type == "Moench" and rows == 400 and analog_samples == 5000
    return RawMaster(
        path=path,
        version=f"{version:.1f}" if version == round(version, 1) else str(version),
        timestamp=str(j.get("Timestamp", "")),
        detector_type=detector_type,
        timing_mode=str(j.get("Timing Mode", "auto")),
        geometry=(_json_int(path, j, "Geometry", "x"), _json_int(path, j, "Geometry", "y")),
        port_shape=(rows, cols),
        image_size_bytes=_json_int(
            path, j, "Image Size in bytes" if "Image Size in bytes" in j else "Image Size"
        ),
        bit_depth=_json_int(path, j, "Dynamic Range", default=16),
        max_frames_per_file=_json_int(path, j, "Max Frames Per File"),
        total_frames=_json_int(path, j, "Total Frames"),
        frames_in_file=_json_int(path, j, "Frames in File"),
        frame_padding=bool(int(j["Frame Padding"])),
        frame_discard_policy=str(j.get("Frame Discard Policy", "nodiscard")),
        udp_interfaces=_json_int(path, j, "Number of UDP Interfaces", default=1),
        exposure_s=_optional_duration(j.get("Exptime", j.get("Exposure Time"))),
        period_s=_optional_duration(j.get("Period", j.get("Acquisition Period"))),
        roi=_json_roi(j),
        scan=_json_scan(j.get("Scan Parameters")),
        analog_samples=analog_samples,
        adc_ordered=adc_ordered,
        extra={k: v for k, v in j.items() if k not in _JSON_KEYS_READ},
    )


def _json_roi(j: dict) -> tuple[int, int, int, int] | None:
    if "Receiver Roi" in j:
        roi = j["Receiver Roi"]
    elif "Receiver Rois" in j and j["Receiver Rois"]:
        roi = j["Receiver Rois"][0]
    else:
        return None
    limits = [int(roi[k]) for k in ("ymin", "ymax", "xmin", "xmax")]
    # unset coordinates are written as 2**32 - 1 (7.x) or -1 (8.x)
    if all(v in (_NO_ROI, -1) for v in limits):
        return None
    ymin, ymax, xmin, xmax = limits
    return ymin, ymax + 1, xmin, xmax + 1  # the master's maxima are inclusive


def _json_scan(value) -> dict | None:
    if value is None:
        return None
    if isinstance(value, dict):  # master version >= 8
        if not int(value.get("enable", 0)):
            return None
        return {
            "dac": value.get("dacInd"),
            "start": int(value["start offset"]),
            "stop": int(value["stop offset"]),
            "step": int(value["step size"]),
            "settle_time_s": int(value.get("dac settle time ns", 0)) * 1e-9,
        }
    return _scan_from_text(str(value))


def _scan_from_text(text: str) -> dict | None:
    # "[enabled\ndac dac 4\nstart 500\nstop 2200\nstep 5\nsettleTime 100us\n]" or "[disabled]"
    lines = [line.strip() for line in text.strip().strip("[]").splitlines() if line.strip()]
    if not lines or lines[0] != "enabled":
        return None
    scan: dict = {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        if key == "dac":
            scan["dac"] = value.strip()
        elif key in ("start", "stop", "step"):
            scan[key] = int(value)
        elif key == "settleTime":
            scan["settle_time_s"] = parse_duration(value)
    return scan


def _text_master_values(text: str) -> dict:
    values = {}
    for line in text.splitlines():
        if line.strip() == "#Frame Header":
            break
        key, sep, value = line.partition(":")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


def _master_from_text(path: Path, t: dict) -> RawMaster:
    _version_number(t["Version"])  # a version that is no number is refused here
    detector_type = t["Detector Type"]
    if "Pixels" in t:
        cols, rows = _bracketed_pair(t["Pixels"], path, "Pixels")
    else:  # oldest masters: "row : 512 pixels", "col : 1024 pixels"
        rows, cols = int(t["row"].split()[0]), int(t["col"].split()[0])
    geometry = _bracketed_pair(t["Geometry"], path, "Geometry") if "Geometry" in t else (1, 1)
    analog_samples = None
    if int(t.get("Analog Flag", "1")) and "Analog Samples" in t:
        analog_samples = int(t["Analog Samples"])
    known = {
        "Version", "TimeStamp", "Detector Type", "Timing Mode", "Geometry", "Image Size",
        "Pixels", "row", "col", "Max Frames Per File", "Max. Frames Per File",
        "Frame Discard Policy", "Frame Padding", "Scan Parameters", "Total Frames",
        "Exptime", "Period", "Number of UDP Interfaces", "Dynamic Range", "Frames in File",
        "Analog Flag", "Analog Samples",
    }  # fmt: skip
    total_frames = int(t["Total Frames"])
    return RawMaster(
        path=path,
        version=t["Version"],
        timestamp=t.get("TimeStamp", ""),
        detector_type=detector_type,
        timing_mode=t.get("Timing Mode", "auto"),
        geometry=geometry,
        port_shape=(rows, cols),
        image_size_bytes=int(t["Image Size"].split()[0]),
        bit_depth=int(t.get("Dynamic Range", "16")),
        max_frames_per_file=int(t.get("Max Frames Per File", t.get("Max. Frames Per File"))),
        total_frames=total_frames,
        # aare: when a text master gives no frame count, the expected count is used
        frames_in_file=int(t.get("Frames in File", "0")) or total_frames,
        frame_padding=bool(int(t.get("Frame Padding", "1"))),
        frame_discard_policy=t.get("Frame Discard Policy", "nodiscard"),
        udp_interfaces=int(t.get("Number of UDP Interfaces", "1")),
        exposure_s=_optional_duration(t.get("Exptime")),
        period_s=_optional_duration(t.get("Period")),
        roi=None,
        scan=_scan_from_text(t.get("Scan Parameters", "[disabled]")),
        analog_samples=analog_samples,
        # aare: every text master of type Moench, or of 400 x 400 pixels, is MÖNCH 03 in
        # ADC order
        adc_ordered=detector_type == "Moench" or (rows, cols) == (400, 400),
        extra={k: v for k, v in t.items() if k not in known},
    )


def _bracketed_pair(text: str, path: Path, key: str) -> tuple[int, int]:
    # "[1024, 512]" -> (1024, 512), in the order written (x, y); "[400.5, 400]" is
    # refused naming the key (issue 13 item 12)
    parts = text.strip().strip("[]").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise DedkitError(f"master's {key} must be two integers [x, y], not {text!r}", path=path)
    return int(parts[0]), int(parts[1])


def _version_number(version: str) -> float:
    try:
        return float(version)
    except ValueError:
        try:
            return float(".".join(version.split(".")[:2]))
        except ValueError:
            raise ValueError(f"master version {version!r} is not a number") from None


def parse_duration(text: str) -> float:
    """Seconds in an slsDetector duration such as '10us', '2.62144ms' or '5s'."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(Decimal(match[1]) * Decimal(_DURATION_UNITS[match[2]]))


def _optional_duration(value) -> float | None:
    return None if value is None else parse_duration(str(value))


def format_duration(seconds: float) -> str:
    """An slsDetector duration string ('10us', '1ms', '2.5s'), in the largest fitting unit."""
    nanoseconds = round(seconds * 1e9)
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanoseconds >= scale:
            return f"{nanoseconds / scale:g}{unit}"
    return f"{nanoseconds}ns"


# --------------------------------------------------------------------------- reading


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
        if expect_detector is not None and _normal_type(expect_detector) != _normal_type(
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
            self.expected_packets = master.image_size_bytes // _PACKET_PAYLOAD[master.detector_type]
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
        module_rows, module_cols = _MODULE_SHAPE[m.detector_type]
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


def _normal_type(name: str) -> str:
    return name.strip().lower().replace("ö", "oe")


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


# --------------------------------------------------------------------------- writing


def write_raw_run(
    folder,
    name: str,
    frames: np.ndarray,
    *,
    detector_type: str = "Moench",
    n_ports: int = 2,
    frames_per_file: int = 1000,
    frame_numbers=None,
    exposure_s: float = 5e-6,
    period_s: float = 625e-6,
    run_index: int = 0,
    force: bool = False,
    extra_master: dict | None = None,
) -> Path:
    """Write frames as an slsDetector run, as the slsReceiver would with no packet lost.

    The JSON master has the keys, order and layout of slsDetector's version 7.2 masters
    (as in real Jungfrau runs); ports split the module's rows as the receiver does
    (MÖNCH: two ports of 200 rows x 400 columns; Jungfrau: two of 256 x 1024). Headers
    carry all packets caught, the row/column of the port, the exposure in 0.1 us and
    timestamps ``period`` apart in 10 MHz ticks.

    Parameters
    ----------
    folder : path-like
        Existing folder for the files.
    name : str
        Run name (NAME in ``NAME_master_I.json``).
    frames : (n, rows, cols) uint16
        One module's frames: 400 x 400 for MÖNCH, 512 x 1024 for Jungfrau.
    detector_type : {'Moench', 'Jungfrau'}
    n_ports : {1, 2}
        UDP interfaces of the module.
    frames_per_file : int
        Frames per data file.
    frame_numbers : (n,) int, optional
        Detector frame numbers; default 1, 2, ... as the detector counts.
    exposure_s, period_s : float
        Exposure time and frame period written to the master and headers.
    run_index : int
        I in the file names.
    force : bool
        Replace an existing run of that name and index (its stale data files too).
    extra_master : dict, optional
        More master keys (or new values for existing ones).

    Returns
    -------
    pathlib.Path
        The master file.

    Raises
    ------
    DedkitError
        Bad frames or parameters, a missing folder, or existing files without force.
    """
    detector_type = {"moench": "Moench", "jungfrau": "Jungfrau"}.get(
        _normal_type(detector_type), detector_type
    )
    if detector_type not in _MODULE_SHAPE:
        raise DedkitError(f"cannot write {detector_type} runs (only Moench and Jungfrau)")
    frames = np.asarray(frames)
    module_rows, module_cols = _MODULE_SHAPE[detector_type]
    if frames.ndim != 3 or frames.shape[1:] != (module_rows, module_cols):
        raise DedkitError(
            f"{detector_type} frames must be (n, {module_rows}, {module_cols}), not {frames.shape}"
        )
    if frames.dtype != np.uint16:
        raise DedkitError(f"frames must be uint16, not {frames.dtype}")
    if n_ports not in (1, 2):
        raise DedkitError(f"n_ports must be 1 or 2, not {n_ports}")
    if frames_per_file < 1:
        raise DedkitError(f"frames_per_file must be at least 1, not {frames_per_file}")
    n = len(frames)
    if n == 0:
        raise DedkitError("no frames to write")
    numbers = np.arange(1, n + 1) if frame_numbers is None else np.asarray(frame_numbers)
    if numbers.shape != (n,) or np.any(numbers < 0):
        raise DedkitError(f"frame_numbers must be {n} non-negative integers")

    folder = Path(folder)
    if not folder.is_dir():
        raise DedkitError("output folder does not exist", path=folder)
    master_path = folder / f"{name}_master_{run_index}.json"
    n_files = -(-n // frames_per_file)
    data_names = [
        f"{name}_d{port}_f{index}_{run_index}.raw"
        for port in range(n_ports)
        for index in range(n_files)
    ]
    for target in [master_path, *(folder / d for d in data_names)]:
        check_output_path(target, force=force)

    port_rows = module_rows // n_ports
    header = np.zeros(n, HEADER_DTYPE)
    header["frame_number"] = numbers
    header["exp_length"] = round(exposure_s * 1e7)
    expected_packets = port_rows * module_cols * 2 // _PACKET_PAYLOAD[detector_type]
    header["packets_caught"] = expected_packets
    ticks = np.round((numbers.astype(np.float64) - numbers[0]) * period_s * 1e7)
    header["timestamp"] = ticks.astype(np.uint64)
    header["detector_type"] = DETECTOR_TYPE_CODES[detector_type]
    header["header_version"] = _HEADER_VERSION
    mask_bits = np.zeros(512, np.uint8)
    mask_bits[:expected_packets] = 1
    header["packet_mask"] = np.packbits(mask_bits, bitorder="little")

    master = _master_json(
        detector_type,
        n_ports,
        port_rows,
        module_cols,
        frames_per_file,
        n,
        exposure_s,
        period_s,
        extra_master,
    )
    temporary = temporary_sibling(master_path)
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        record = np.dtype([("header", HEADER_DTYPE), ("data", "<u2", (port_rows, module_cols))])
        for port in range(n_ports):
            header["row"] = port
            rows = slice(port * port_rows, (port + 1) * port_rows)
            for index in range(n_files):
                chunk = slice(index * frames_per_file, min((index + 1) * frames_per_file, n))
                records = np.empty(chunk.stop - chunk.start, record)
                records["header"] = header[chunk]
                records["data"] = frames[chunk, rows]
                # file.write, not ndarray.tofile: a full disk then says so (ENOSPC)
                with open(temporary / f"{name}_d{port}_f{index}_{run_index}.raw", "wb") as f:
                    f.write(records.view(np.uint8).data)
        (temporary / master_path.name).write_text(master, encoding="utf-8")
        # data first, master last: a reader never finds a master without its data
        for data_name in data_names:
            os.replace(temporary / data_name, folder / data_name)
        _remove_stale_data_files(folder, name, run_index, n_ports, n_files)
        os.replace(temporary / master_path.name, master_path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return master_path


def _master_json(
    detector_type, n_ports, port_rows, cols, frames_per_file, n, exposure_s, period_s, extra_master
) -> str:
    master = {
        "Version": _MASTER_VERSION,
        "Timestamp": time.ctime(),
        "Detector Type": detector_type,
        "Timing Mode": "auto",
        "Geometry": {"x": 1, "y": n_ports},
        "Image Size in bytes": port_rows * cols * 2,
        "Pixels": {"x": cols, "y": port_rows},
        "Max Frames Per File": frames_per_file,
        "Frame Discard Policy": _DISCARD_POLICY[detector_type],
        "Frame Padding": 1,
        "Scan Parameters": "[disabled]",
        "Total Frames": n,
        "Receiver Roi": {"xmin": _NO_ROI, "xmax": _NO_ROI, "ymin": _NO_ROI, "ymax": _NO_ROI},
        "Exptime": format_duration(exposure_s),
        "Period": format_duration(period_s),
        "Number of UDP Interfaces": n_ports,
        "Number of rows": port_rows * n_ports,
        "Frames in File": n,
        "Frame Header Format": dict(_FRAME_HEADER_FORMAT),
    }
    master.update(extra_master or {})
    # slsDetector writes 4-space indented JSON without a final newline
    return json.dumps(master, indent=4, ensure_ascii=False)


def _remove_stale_data_files(
    folder: Path, name: str, run_index: int, n_ports: int, n_files: int
) -> None:
    """Delete data files of an overwritten run that the new run does not have.

    Readers (aare too) take every consecutive file index that exists, so a longer run's
    leftover files would be read as part of the new one.
    """
    pattern = re.compile(rf"^{re.escape(name)}_d(\d+)_f(\d+)_{run_index}\.raw$")
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and (int(match[1]) >= n_ports or int(match[2]) >= n_files):
            path.unlink()
