"""Record types shared by the file formats (:mod:`dedkit.io`) and the domain packages.

The plain dataclasses that :mod:`dedkit.io` reads and writes and the domain packages
(:mod:`dedkit.frames`, :mod:`dedkit.hpd`, :mod:`dedkit.sim`, ...) make and take. They
live below both so that every import points one way: this package depends on
:mod:`dedkit.errors` only.
"""

# Camera defect lists (SerialEM): read and written by dedkit.io, applied by dedkit.frames
from dedkit.records.defects import DefectList, PartialBadLine, UsableArea

# The simulated sensor and its electron deposits (dedkit.sim, dedkit.io.deposits)
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import (
    DEFAULT_NX,
    DEFAULT_NY,
    DEFAULT_PITCH_UM,
    DEFAULT_THICKNESS_UM,
    SILICON_DENSITY_G_CM3,
    SensorGeometry,
)

# Hybrid-pixel tables (clusters, localised events): made by dedkit.hpd, saved by dedkit.io
from dedkit.records.tables import FEATURE_NAMES, ClusterTable, EventTable

__all__ = [
    # defects
    "DefectList",
    "PartialBadLine",
    "UsableArea",
    # sensor and deposits
    "DEFAULT_NX",
    "DEFAULT_NY",
    "DEFAULT_PITCH_UM",
    "DEFAULT_THICKNESS_UM",
    "SILICON_DENSITY_G_CM3",
    "ElectronDeposits",
    "SensorGeometry",
    # tables
    "FEATURE_NAMES",
    "ClusterTable",
    "EventTable",
]
