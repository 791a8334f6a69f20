"""slsDetector master files: what a run is made of (:class:`RawMaster`, :func:`read_master`,
:func:`run_files`) and slsDetector's duration strings.

A run is a master file ``NAME_master_I.json`` (slsDetectorPackage >= 7; older packages
write a text ``NAME_master_I.raw`` of ``Key : value`` lines) and data files
``NAME_dP_fF_I.raw``: port P (one per UDP interface and module), file index F (a new file
every "Max Frames Per File" frames), run index I. Packages before master version 4.0 wrote
the file index with 12 digits (``f000000000000``). The master is read as aare 2025.11.21
reads it (``RawMasterFile.cpp``):

- The master's "Geometry" counts ports, not modules: a Jungfrau module read out through
  two UDP interfaces has Geometry x=1, y=2 and "Pixels" x=1024, y=256 (one port). Jungfrau
  and MÖNCH split a module's rows between interfaces: a port holds ``rows / n_interfaces``
  rows of all columns (MÖNCH 04: 400 columns x 200 rows per port with two interfaces).
- MÖNCH 03 recorded through the chip-test-board firmware (a text master of type Moench or
  with 400 x 400 pixels, or a JSON master of type Moench with 5000 analog samples) is
  flagged :attr:`RawMaster.adc_ordered`; :mod:`dedkit.io.sls.reader` puts its pixels in
  place.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from dedkit.errors import DedkitError, one_line
from dedkit.io.inputs import check_input_file
from dedkit.io.sls.format import NO_ROI

__all__ = ["RawMaster", "format_duration", "parse_duration", "read_master", "run_files"]

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
        Partial and missing frames were written, padded (see :mod:`dedkit.io.sls.reader`).
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
    if all(v in (NO_ROI, -1) for v in limits):
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
