"""Writing slsDetector runs (:func:`write_raw_run`), as the slsReceiver would with no packet lost.

The JSON master has the keys, order and layout of slsDetector's version 7.2 masters (as in
real Jungfrau runs); data files are laid out as :mod:`dedkit.io.sls.format` describes. A
run's files are written into a hidden folder beside the master and renamed into place
(:func:`dedkit.io.atomic.publish`), data first, master last, so that a reader never finds a
master without its data. A run that fails to write leaves neither a temporary nor a data
file that was not there before.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import check_output_path, publish, temporary_sibling
from dedkit.io.sls.format import (
    DETECTOR_TYPE_CODES,
    HEADER_DTYPE,
    MODULE_SHAPE,
    NO_ROI,
    PACKET_PAYLOAD,
    normal_type,
)
from dedkit.io.sls.master import format_duration

__all__ = ["write_raw_run"]

# slsReceiver's default discard policy per detector (GeneralData.h)
_DISCARD_POLICY = {"Jungfrau": "nodiscard", "Moench": "discardpartial"}
_HEADER_VERSION = 2
_MASTER_VERSION = 7.2  # the JSON layout of the reference Jungfrau masters

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
        normal_type(detector_type), detector_type
    )
    if detector_type not in MODULE_SHAPE:
        raise DedkitError(f"cannot write {detector_type} runs (only Moench and Jungfrau)")
    frames = np.asarray(frames)
    module_rows, module_cols = MODULE_SHAPE[detector_type]
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
    expected_packets = port_rows * module_cols * 2 // PACKET_PAYLOAD[detector_type]
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
    added = []
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
            target = folder / data_name
            existed = target.exists() or target.is_symlink()
            publish(temporary / data_name, target)
            if not existed:
                added.append(target)
        _remove_stale_data_files(folder, name, run_index, n_ports, n_files)
        publish(temporary / master_path.name, master_path)
    except BaseException:
        # a run that failed leaves no data file that was not there before (one it
        # replaced, with force, is not restored)
        for target in added:
            target.unlink(missing_ok=True)
        raise
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
        "Receiver Roi": {"xmin": NO_ROI, "xmax": NO_ROI, "ymin": NO_ROI, "ymax": NO_ROI},
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
