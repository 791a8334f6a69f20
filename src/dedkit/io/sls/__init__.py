"""slsDetector raw files (PSI's MÖNCH and Jungfrau): master file, data files, a writer.

A run is a master file ``NAME_master_I.json`` (or the older text ``NAME_master_I.raw``)
and data files ``NAME_dP_fF_I.raw`` (port P, file index F, run index I), each a sequence
of frames: a 112-byte receiver header and that port's pixels. The facts relied on come
from slsDetectorPackage (``slsReceiverSoftware/src/GeneralData.h``, ``DataProcessor.cpp``,
the "SLS Receiver Header Format" page) and aare 2025.11.21 (``RawMasterFile.cpp``,
``RawFile.cpp``, ``RawSubFile.cpp``, ``DetectorGeometry.cpp``, ``PixelMap.cpp``); each
module names those it follows:

- :mod:`~dedkit.io.sls.format`: the frame header (:data:`HEADER_DTYPE`), detector type
  codes, packet payloads and module shapes, shared by reader and writer;
- :mod:`~dedkit.io.sls.master`: master files (:class:`RawMaster`, :func:`read_master`,
  :func:`run_files`) and slsDetector's duration strings;
- :mod:`~dedkit.io.sls.reader`: :class:`RawRun`, a lazily read run, its frames
  (:class:`RawFrames`), packet losses (:class:`MissingPackets`) and Jungfrau's gain bits
  (:func:`split_jungfrau_gain`);
- :mod:`~dedkit.io.sls.writer`: :func:`write_raw_run`, a run as the slsReceiver writes it.
"""

from dedkit.io.sls.format import DETECTOR_TYPE_CODES, HEADER_DTYPE
from dedkit.io.sls.master import (
    RawMaster,
    format_duration,
    parse_duration,
    read_master,
    run_files,
)
from dedkit.io.sls.reader import MissingPackets, RawFrames, RawRun, split_jungfrau_gain
from dedkit.io.sls.writer import write_raw_run

__all__ = [
    "DETECTOR_TYPE_CODES",
    "HEADER_DTYPE",
    "MissingPackets",
    "RawFrames",
    "RawMaster",
    "RawRun",
    "format_duration",
    "parse_duration",
    "read_master",
    "run_files",
    "split_jungfrau_gain",
    "write_raw_run",
]
