"""What the slsReceiver writes into every data file: the frame header and the detector facts
the reader and the writer of :mod:`dedkit.io.sls` both rely on.

Each data file is a sequence of frames, each a 112-byte receiver header (:data:`HEADER_DTYPE`)
followed by that port's pixels, little-endian uint16, row by row. From slsDetectorPackage
(``slsReceiverSoftware/src/GeneralData.h``, the "SLS Receiver Header Format" page):

- ``packets_caught`` (the UDP header's packet number, replaced by the receiver) is the
  number of packets received for that frame; the 512-bit ``packet_mask`` has bit i
  (byte i // 8, bit i % 8) set for each packet received. A port's frame arrives in
  ``image bytes / payload`` packets: 8192-byte payloads for Jungfrau (128 per module, 64
  per port with two interfaces), 6400 for MÖNCH 04 (50, or 25 per port), 8144 for the
  chip-test-board readout of MÖNCH 03. Fewer means a partial frame.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DETECTOR_TYPE_CODES",
    "HEADER_DTYPE",
    "MODULE_SHAPE",
    "NO_ROI",
    "PACKET_PAYLOAD",
    "normal_type",
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
#: UDP payload bytes per packet (GeneralData.h): sets the packets in a complete frame
PACKET_PAYLOAD = {"Jungfrau": 8192, "Moench": 6400}
#: Full module size (rows, columns)
MODULE_SHAPE = {"Jungfrau": (512, 1024), "Moench": (400, 400)}
#: "Receiver Roi" value of an unset coordinate
NO_ROI = 4294967295


def normal_type(name: str) -> str:
    """A detector type name compared without case or umlaut ('MÖNCH' is 'moench')."""
    return name.strip().lower().replace("ö", "oe")
