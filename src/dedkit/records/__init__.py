"""Record types shared by the file formats (:mod:`dedkit.io`) and the domain packages.

The plain dataclasses that :mod:`dedkit.io` reads and writes and the domain packages
(:mod:`dedkit.frames`, :mod:`dedkit.hpd`, :mod:`dedkit.sim`, ...) make and take. They
live below both so that every import points one way: this package depends on
:mod:`dedkit.errors` only.
"""

# ----- the simulated sensor and its electron deposits (dedkit.sim, dedkit.io.deposits) -----
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import (
    DEFAULT_NX,
    DEFAULT_NY,
    DEFAULT_PITCH_UM,
    DEFAULT_THICKNESS_UM,
    SILICON_DENSITY_G_CM3,
    SensorGeometry,
)

__all__ = [
    "DEFAULT_NX",
    "DEFAULT_NY",
    "DEFAULT_PITCH_UM",
    "DEFAULT_THICKNESS_UM",
    "SILICON_DENSITY_G_CM3",
    "ElectronDeposits",
    "SensorGeometry",
]
