"""How electrons are tracked: :class:`TransportSettings`, the physics lists and defaults.

Every setting of the electron transport has its default here, once (the command line,
the jobs and the keyword interface :func:`dedkit.sim.transport.simulate_electrons` take
them from :class:`TransportSettings`). The settings are checked when they are made, so a
bad value is refused before any work starts.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.sensor import SensorGeometry

GEANT4_MISSING = "Geant4 is not installed: pip install -c constraints.txt '.[sim]'"

#: physics lists that run without the Geant4 data sets (see docs/simulation.md)
PHYSICS_LISTS = {
    "standard": "G4EmStandardPhysics: Urban msc, step limit UseSafety, range factor 0.04",
    "option1": "G4EmStandardPhysics_option1: Urban msc, step limit Minimal (fast, HEP)",
    "option3": "G4EmStandardPhysics_option3: Urban msc, step limit UseDistanceToBoundary, "
    "finer tables and step function (0.2, 100 um)",
    "wvi": "G4EmStandardPhysicsWVI: WentzelVI msc plus single Coulomb scattering",
}
#: physics lists that need data sets geant4-pybind does not ship, and which ones
NEEDS_DATA = {
    "option4": "Goudsmit-Saunderson msc tables (G4EMLOW/msc_GS)",
    "gs": "Goudsmit-Saunderson msc tables (G4EMLOW/msc_GS)",
    "livermore": "Livermore data (G4EMLOW)",
    "penelope": "Penelope data (G4EMLOW)",
    "ss": "single-scattering tables (G4EMLOW)",
}
MSC_STEP_LIMITS = ("minimal", "safety", "safety-plus", "distance-to-boundary")
#: where the primaries enter (besides entry points given to the run)
ENTRIES = ("random", "centre-pixel")

DEFAULT_PHYSICS = "option3"
DEFAULT_CUT_UM = 10.0
DEFAULT_SEGMENT_UM = 2.0
DEFAULT_BATCH_SIZE = 1000
#: default distance of random entry points from the sensor edges: more than the CSDA
#: range of a 300 keV electron in silicon (454 um, physics.md)
DEFAULT_EDGE_MARGIN_UM = 500.0

#: the settings the Geant4 workers are given (the rest is used in this process)
_WORKER_KEYS = (
    "energy_keV",
    "sensor",
    "physics",
    "msc_step_limit",
    "production_cut_um",
    "max_step_um",
    "segment_um",
)


def geant4_available() -> bool:
    """Whether ``geant4_pybind`` can be imported (without importing it)."""
    return importlib.util.find_spec("geant4_pybind") is not None


def check_physics(name) -> str:
    """``name`` if it is one of :data:`PHYSICS_LISTS`, else a :class:`DedkitError` saying
    why (a list that needs data sets geant4-pybind lacks, or an unknown name)."""
    if name in NEEDS_DATA:
        raise DedkitError(
            f"physics list {name!r} needs the {NEEDS_DATA[name]}, which "
            f"geant4-pybind does not ship; choose one of {', '.join(PHYSICS_LISTS)}"
        )
    if name not in PHYSICS_LISTS:
        raise DedkitError(
            f"unknown physics list {name!r}; choose one of {', '.join(PHYSICS_LISTS)}"
        )
    return name


@dataclass(frozen=True)
class TransportSettings:
    """How electrons of one energy are tracked through the sensor (validated, picklable).

    With the seed of a run these fix its result (never the number of workers).

    Parameters
    ----------
    energy_keV : float
        Beam energy, 1-1000 keV (validated against reference figures 60-300 keV).
    sensor : SensorGeometry
        Default: :class:`~dedkit.records.sensor.SensorGeometry` ``()``, the MÖNCH 03.
    physics : str
        Geant4 EM physics list, one of :data:`PHYSICS_LISTS`.
    msc_step_limit : str, optional
        Override the list's multiple-scattering step limitation (:data:`MSC_STEP_LIMITS`).
    production_cut_um : float
        Range cut for secondaries (e-, e+, gamma) in silicon; below it energy is
        deposited along the parent's step. 10 um is 31.7 keV for electrons.
    max_step_um : float, optional
        Geant4 step limit in the sensor (G4UserLimits); default none.
    segment_um : float
        Cut steps into equal pieces no longer than this for the deposit points (0: one
        point per step, at its middle).
    batch_size : int
        Primaries per batch (the unit of seeding and of work for one worker).
    entry : str
        ``"random"``: uniform over the sensor at least ``edge_margin_um`` from every edge
        (at most a quarter of the side); ``"centre-pixel"``: uniform within the pixel
        ``(ny // 2, nx // 2)``. Entry points of their own are given to the run instead
        (:func:`~dedkit.sim.transport.transport_electrons`).
    incidence_deg, azimuth_deg : float
        Beam direction: angle from the sensor normal (0-85 degrees) and azimuth of the
        plane of incidence from ``+x``.
    edge_margin_um : float
        See ``entry``.

    Raises
    ------
    DedkitError
        A value out of range, an unknown or unavailable physics list.

    Examples
    --------
    >>> from dedkit.records import SensorGeometry
    >>> s = TransportSettings(200.0, SensorGeometry(nx=40, ny=40), physics="standard")
    >>> s.production_cut_um, s.entry
    (10.0, 'random')
    """

    energy_keV: float
    sensor: SensorGeometry = field(default_factory=SensorGeometry)
    physics: str = DEFAULT_PHYSICS
    msc_step_limit: str | None = None
    production_cut_um: float = DEFAULT_CUT_UM
    max_step_um: float | None = None
    segment_um: float = DEFAULT_SEGMENT_UM
    batch_size: int = DEFAULT_BATCH_SIZE
    entry: str = "random"
    incidence_deg: float = 0.0
    azimuth_deg: float = 0.0
    edge_margin_um: float = DEFAULT_EDGE_MARGIN_UM

    def __post_init__(self) -> None:
        e = _number("energy", self.energy_keV)
        if not 1.0 <= e <= 1000.0:
            raise DedkitError(f"energy {e:g} keV is outside 1-1000 keV")
        if not isinstance(self.sensor, SensorGeometry):
            raise DedkitError("sensor must be a SensorGeometry")
        check_physics(self.physics)
        if self.msc_step_limit is not None and self.msc_step_limit not in MSC_STEP_LIMITS:
            raise DedkitError(
                f"unknown msc step limit {self.msc_step_limit!r}; choose one of "
                + ", ".join(MSC_STEP_LIMITS)
            )
        cut = _number("production cut", self.production_cut_um)
        if not 0.001 <= cut <= 10_000:
            raise DedkitError(f"production cut {cut:g} um is outside 0.001-10000 um")
        if self.max_step_um is not None and not _number("max step", self.max_step_um) > 0:
            raise DedkitError(f"max step must be positive, not {self.max_step_um!r}")
        if not _number("segment", self.segment_um) >= 0:
            raise DedkitError(f"segment must be 0 or positive, not {self.segment_um!r}")
        object.__setattr__(self, "energy_keV", float(e))
        batch_size = self.batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise DedkitError(f"batch size must be an integer, not {batch_size!r}")
        if batch_size <= 0:
            raise DedkitError(f"batch size must be positive, not {batch_size}")
        object.__setattr__(self, "batch_size", int(batch_size))
        if not _number("edge margin", self.edge_margin_um) >= 0:
            raise DedkitError(f"edge margin must be 0 or positive, not {self.edge_margin_um!r}")
        object.__setattr__(self, "entry", _check_entry_name(self.entry))
        direction_from_angles(self.incidence_deg, self.azimuth_deg)

    @property
    def direction(self) -> np.ndarray:
        """Unit vector of the beam (:func:`direction_from_angles`)."""
        return direction_from_angles(self.incidence_deg, self.azimuth_deg)

    def to_dict(self) -> dict:
        """Every setting, the sensor as a dict (JSON-ready)."""
        return {
            "energy_keV": self.energy_keV,
            "sensor": self.sensor.to_dict(),
            "physics": self.physics,
            "msc_step_limit": self.msc_step_limit,
            "production_cut_um": float(self.production_cut_um),
            "max_step_um": None if self.max_step_um is None else float(self.max_step_um),
            "segment_um": float(self.segment_um),
            "batch_size": self.batch_size,
            "entry": self.entry,
            "incidence_deg": float(self.incidence_deg),
            "azimuth_deg": float(self.azimuth_deg),
            "edge_margin_um": float(self.edge_margin_um),
        }

    def worker_dict(self) -> dict:
        """What the Geant4 workers need (:mod:`dedkit.sim._geant4_app`)."""
        d = self.to_dict()
        return {key: d[key] for key in _WORKER_KEYS}


def _number(what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise DedkitError(f"{what} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise DedkitError(f"{what} must be finite, not {value!r}")
    return float(value)


def _check_entry_name(entry) -> str:
    """The entry of the settings, its spellings unified."""
    if isinstance(entry, str):
        if entry in ("centre-pixel", "centre-pixel-random", "center-pixel"):
            return "centre-pixel"
        if entry == "random":
            return "random"
        raise DedkitError(f"unknown entry {entry!r}: 'random', 'centre-pixel' or (x_um, y_um)")
    raise DedkitError(
        "entry must be 'random' or 'centre-pixel' (entry points of their own are given "
        "to the run, not to the settings)"
    )


def direction_from_angles(incidence_deg: float, azimuth_deg: float = 0.0) -> np.ndarray:
    """Unit vector of a beam ``incidence_deg`` from the sensor normal (``+z``), in the plane
    at ``azimuth_deg`` from ``+x``."""
    theta = _number("incidence", incidence_deg)
    phi = _number("azimuth", azimuth_deg)
    if not 0.0 <= theta <= 85.0:
        raise DedkitError(f"incidence {theta:g} degrees is outside 0-85 degrees")
    t, p = math.radians(theta), math.radians(phi)
    return np.array([math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t)])
