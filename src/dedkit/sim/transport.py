"""Electron transport in the silicon sensor with Geant4: energy deposits per electron.

Primary electrons of one energy enter the sensor of :class:`~dedkit.sim.geometry.SensorGeometry`
(in vacuum) at ``z = 0`` and Geant4 (``geant4-pybind``, an optional dependency: the
``sim`` extra) tracks them and every secondary electron above the production cut. For each
primary the result holds the energy-deposit points (position, energy), the total deposited
in the sensor, whether the primary left through the entry face (backscattered) or the far
face (transmitted), its true entry point and direction. The model, the offline recipe, the
seeding and the validation figures are in ``docs/simulation.md``.

Geant4 runs in worker processes (``multiprocessing`` with the ``spawn`` start method),
never in this process. The primaries are cut into batches of ``batch_size``; batch ``k``
draws its entry points and the seeds of the Geant4 engine from
``numpy.random.SeedSequence(seed, spawn_key=(k,))`` and the engine is reseeded at the
start of every batch, so the result depends on ``(seed, batch_size)`` and the settings
only, never on the number of workers or on which worker ran which batch. A worker writes
each batch to a file (temporary name, then renamed) before it reports it, so a crash of
Geant4 afterwards (at interpreter exit, say) loses nothing; a worker that dies before
delivering its batch is replaced and the batch retried once, then the run fails with the
end of the worker's Geant4 log in the message.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import math
import multiprocessing
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from dedkit.errors import DedkitError
from dedkit.sim.geometry import SensorGeometry

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

DEFAULT_PHYSICS = "option3"
DEFAULT_CUT_UM = 10.0
DEFAULT_SEGMENT_UM = 2.0
DEFAULT_BATCH_SIZE = 1000
#: default distance of random entry points from the sensor edges: more than the CSDA
#: range of a 300 keV electron in silicon (454 um, physics.md)
DEFAULT_EDGE_MARGIN_UM = 500.0
#: how often a batch whose worker died is tried again before the run fails
RETRIES = 1


def geant4_available() -> bool:
    """Whether ``geant4_pybind`` can be imported (without importing it)."""
    return importlib.util.find_spec("geant4_pybind") is not None


# ----- the result ----------------------------------------------------------------------


@dataclass
class ElectronDeposits:
    """Energy deposits of primary electrons in the sensor.

    Per primary electron ``i`` (arrays of length ``n_primaries``): ``entry_x_um``,
    ``entry_y_um`` (true entry point on ``z = 0``), ``direction`` (``(n, 3)`` unit vector,
    ``+z`` component > 0), ``deposit_keV`` (total energy deposited in the sensor),
    ``backscattered`` (the primary left through the entry face ``z = 0``) and
    ``transmitted`` (it left through ``z = thickness``).

    The deposit points are grouped by primary (CSR): the points of primary ``i`` are
    ``offsets[i]:offsets[i + 1]`` of ``step_x_um``, ``step_y_um``, ``step_z_um`` and
    ``step_edep_keV`` (float32). A point is the middle of a Geant4 step, or of one of the
    equal pieces a longer step was cut into (``transport["segment_um"]``), the step's
    energy shared equally between its pieces.

    ``primary_path_um`` (optional) is the path length of each primary in the sensor
    (Geant4's true path length, for comparison with the CSDA range).

    ``physics``, ``seed`` and ``workers`` record how the deposits were made; ``transport``
    holds the other settings (cut, msc step limit, segment, batch size, Geant4 version)
    and ``geant4_seconds`` the time the workers spent in Geant4 for these primaries.
    """

    energy_keV: float
    sensor: SensorGeometry
    entry_x_um: np.ndarray
    entry_y_um: np.ndarray
    direction: np.ndarray
    deposit_keV: np.ndarray
    backscattered: np.ndarray
    transmitted: np.ndarray
    offsets: np.ndarray
    step_x_um: np.ndarray
    step_y_um: np.ndarray
    step_z_um: np.ndarray
    step_edep_keV: np.ndarray
    primary_path_um: np.ndarray | None = None
    physics: str = ""
    seed: int | None = None
    workers: int | None = None
    transport: dict = field(default_factory=dict)
    geant4_seconds: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.entry_x_um)
        self.entry_x_um = np.asarray(self.entry_x_um, np.float64)
        self.entry_y_um = np.asarray(self.entry_y_um, np.float64)
        self.direction = np.asarray(self.direction, np.float64).reshape(n, 3)
        self.deposit_keV = np.asarray(self.deposit_keV, np.float64)
        self.backscattered = np.asarray(self.backscattered, bool)
        self.transmitted = np.asarray(self.transmitted, bool)
        if self.primary_path_um is not None:
            self.primary_path_um = np.asarray(self.primary_path_um, np.float64)
            if len(self.primary_path_um) != n:
                raise ValueError(f"primary_path_um has {len(self.primary_path_um)} values, not {n}")
        self.offsets = np.asarray(self.offsets, np.int64)
        for name in ("step_x_um", "step_y_um", "step_z_um", "step_edep_keV"):
            setattr(self, name, np.asarray(getattr(self, name), np.float32))
        for name in ("entry_y_um", "deposit_keV", "backscattered", "transmitted"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} values, not {n}")
        if len(self.offsets) != n + 1 or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must be n_primaries + 1 non-decreasing values from 0")
        m = int(self.offsets[-1])
        for name in ("step_x_um", "step_y_um", "step_z_um", "step_edep_keV"):
            if len(getattr(self, name)) != m:
                raise ValueError(f"{name} has {len(getattr(self, name))} values, not {m}")

    def __len__(self) -> int:
        return len(self.entry_x_um)

    @property
    def n_steps(self) -> int:
        """Number of deposit points."""
        return int(self.offsets[-1])

    def primary_of_step(self) -> np.ndarray:
        """Index of the primary each deposit point belongs to."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def select(self, index) -> ElectronDeposits:
        """A subset of the primaries (boolean mask or integer index), points kept with them."""
        idx = np.arange(len(self))[index]
        counts = np.diff(self.offsets)[idx]
        starts = self.offsets[idx]
        first = np.cumsum(counts) - counts
        points = np.repeat(starts - first, counts) + np.arange(int(counts.sum()))
        return replace(
            self,
            entry_x_um=self.entry_x_um[idx],
            entry_y_um=self.entry_y_um[idx],
            direction=self.direction[idx],
            deposit_keV=self.deposit_keV[idx],
            backscattered=self.backscattered[idx],
            transmitted=self.transmitted[idx],
            primary_path_um=None if self.primary_path_um is None else self.primary_path_um[idx],
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            step_x_um=self.step_x_um[points],
            step_y_um=self.step_y_um[points],
            step_z_um=self.step_z_um[points],
            step_edep_keV=self.step_edep_keV[points],
            geant4_seconds=self.geant4_seconds * len(idx) / max(len(self), 1),
            transport=dict(self.transport),
        )

    @classmethod
    def concatenate(cls, parts) -> ElectronDeposits:
        """Join results of the same beam, sensor and physics, in order."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        key = (first.energy_keV, first.sensor, first.physics)
        for p in parts[1:]:
            if (p.energy_keV, p.sensor, p.physics) != key:
                raise ValueError("cannot join deposits of different energies, sensors or physics")
        shifts = np.cumsum([0] + [p.n_steps for p in parts[:-1]])
        offsets = np.concatenate(
            [[0]] + [p.offsets[1:] + s for p, s in zip(parts, shifts, strict=True)]
        )

        def cat(name):
            return np.concatenate([getattr(p, name) for p in parts])

        return replace(
            first,
            entry_x_um=cat("entry_x_um"),
            entry_y_um=cat("entry_y_um"),
            direction=cat("direction"),
            deposit_keV=cat("deposit_keV"),
            backscattered=cat("backscattered"),
            transmitted=cat("transmitted"),
            primary_path_um=(
                cat("primary_path_um")
                if all(p.primary_path_um is not None for p in parts)
                else None
            ),
            offsets=offsets,
            step_x_um=cat("step_x_um"),
            step_y_um=cat("step_y_um"),
            step_z_um=cat("step_z_um"),
            step_edep_keV=cat("step_edep_keV"),
            geant4_seconds=float(sum(p.geant4_seconds for p in parts)),
            transport=dict(first.transport),
        )

    # ----- derived quantities ---------------------------------------------------------
    def centroid_um(self) -> np.ndarray:
        """Energy-weighted centroid ``(x, y, z)`` of each primary's deposits, ``(n, 3)``
        (NaN for a primary that deposited nothing)."""
        who = self.primary_of_step()
        w = self.step_edep_keV.astype(np.float64)
        total = np.bincount(who, w, minlength=len(self))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.stack(
                [
                    np.bincount(who, w * c, minlength=len(self)) / total
                    for c in (self.step_x_um, self.step_y_um, self.step_z_um)
                ],
                axis=1,
            )

    def max_depth_um(self) -> np.ndarray:
        """Deepest deposit point of each primary (0 for none)."""
        depth = np.zeros(len(self))
        np.maximum.at(depth, self.primary_of_step(), self.step_z_um.astype(np.float64))
        return depth

    def fully_absorbed(self, fraction: float = 0.95) -> np.ndarray:
        """Primaries that deposited at least ``fraction`` of the beam energy."""
        return self.deposit_keV >= fraction * self.energy_keV

    def summary(self) -> dict:
        """The transport's headline figures (see :func:`transport_summary`)."""
        return transport_summary(self)


def transport_summary(deposits: ElectronDeposits) -> dict:
    """Headline figures of a set of deposits (see :class:`TransportTally`)."""
    tally = TransportTally(deposits.energy_keV)
    tally.add(deposits)
    return tally.summary()


class TransportTally:
    """Headline figures accumulated over batches of deposits (constant memory).

    Parameters
    ----------
    energy_keV : float
        Beam energy (for the full-absorption criterion).
    full_fraction : float
        A primary is fully absorbed when it deposits at least this fraction of the beam
        energy (0.95, the issue's criterion).
    """

    def __init__(self, energy_keV: float, full_fraction: float = 0.95):
        self.energy_keV = float(energy_keV)
        self.full_fraction = full_fraction
        self.n = 0
        self.n_steps = 0
        self.backscattered = 0
        self.transmitted = 0
        self.full = 0
        self.deposit_sum = 0.0
        self.depth_sum = 0.0
        self.centroid_n = 0
        self.centroid_sq = np.zeros(2)
        self.stopped = 0
        self.stopped_path_sum = 0.0
        self.geant4_seconds = 0.0

    def add(self, deposits: ElectronDeposits) -> None:
        """Count one batch."""
        self.n += len(deposits)
        self.n_steps += deposits.n_steps
        self.backscattered += int(np.count_nonzero(deposits.backscattered))
        self.transmitted += int(np.count_nonzero(deposits.transmitted))
        self.full += int(
            np.count_nonzero(deposits.deposit_keV >= self.full_fraction * self.energy_keV)
        )
        self.deposit_sum += float(np.sum(deposits.deposit_keV))
        self.depth_sum += float(np.sum(deposits.max_depth_um()))
        c = deposits.centroid_um()
        ok = np.isfinite(c[:, 0])
        self.centroid_n += int(np.count_nonzero(ok))
        self.centroid_sq += [
            float(np.sum((c[ok, 0] - deposits.entry_x_um[ok]) ** 2)),
            float(np.sum((c[ok, 1] - deposits.entry_y_um[ok]) ** 2)),
        ]
        if deposits.primary_path_um is not None:
            stopped = ~deposits.backscattered & ~deposits.transmitted
            self.stopped += int(np.count_nonzero(stopped))
            self.stopped_path_sum += float(np.sum(deposits.primary_path_um[stopped]))
        self.geant4_seconds += float(deposits.geant4_seconds)

    def summary(self) -> dict:
        """The figures so far.

        Returns
        -------
        dict
            ``energy_keV``, ``n_primaries``, ``backscatter_fraction`` (the primary left
            through the entry face) with its binomial standard error
            ``backscatter_error``, ``transmitted_fraction``, ``mean_deposit_keV``,
            ``full_absorption_fraction``, ``mean_max_depth_um`` (mean depth of each
            primary's deepest deposit), ``mean_stopped_path_um`` (mean path length in the
            sensor of the primaries that stopped in it, to compare with the CSDA range;
            NaN without path lengths), ``centroid_rms_um`` (``x`` and ``y``: rms of the
            energy-weighted deposit centroid minus the entry point) and ``n_steps``.
        """
        n = self.n
        bs = self.backscattered / n if n else math.nan
        rms = np.sqrt(self.centroid_sq / self.centroid_n) if self.centroid_n else [math.nan] * 2
        return {
            "energy_keV": self.energy_keV,
            "n_primaries": n,
            "backscatter_fraction": bs,
            "backscatter_error": math.sqrt(bs * (1 - bs) / n) if n else math.nan,
            "transmitted_fraction": self.transmitted / n if n else math.nan,
            "mean_deposit_keV": self.deposit_sum / n if n else math.nan,
            "full_absorption_fraction": self.full / n if n else math.nan,
            "mean_max_depth_um": self.depth_sum / n if n else math.nan,
            "mean_stopped_path_um": (
                self.stopped_path_sum / self.stopped if self.stopped else math.nan
            ),
            "centroid_rms_um": {"x": float(rms[0]), "y": float(rms[1])},
            "n_steps": self.n_steps,
        }


# ----- settings --------------------------------------------------------------------------


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
    """What the Geant4 workers need to know (validated, picklable)."""

    energy_keV: float
    sensor: SensorGeometry
    physics: str = DEFAULT_PHYSICS
    msc_step_limit: str | None = None
    production_cut_um: float = DEFAULT_CUT_UM
    max_step_um: float | None = None
    segment_um: float = DEFAULT_SEGMENT_UM

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

    def to_dict(self) -> dict:
        return {
            "energy_keV": self.energy_keV,
            "sensor": self.sensor.to_dict(),
            "physics": self.physics,
            "msc_step_limit": self.msc_step_limit,
            "production_cut_um": float(self.production_cut_um),
            "max_step_um": None if self.max_step_um is None else float(self.max_step_um),
            "segment_um": float(self.segment_um),
        }


def _number(what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise DedkitError(f"{what} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise DedkitError(f"{what} must be finite, not {value!r}")
    return float(value)


def direction_from_angles(incidence_deg: float, azimuth_deg: float = 0.0) -> np.ndarray:
    """Unit vector of a beam ``incidence_deg`` from the sensor normal (``+z``), in the plane
    at ``azimuth_deg`` from ``+x``."""
    theta = _number("incidence", incidence_deg)
    phi = _number("azimuth", azimuth_deg)
    if not 0.0 <= theta <= 85.0:
        raise DedkitError(f"incidence {theta:g} degrees is outside 0-85 degrees")
    t, p = math.radians(theta), math.radians(phi)
    return np.array([math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t)])


# ----- batches ---------------------------------------------------------------------------


def _batch_spec(
    k: int,
    start: int,
    stop: int,
    *,
    seed: int,
    sensor: SensorGeometry,
    entry,
    direction: np.ndarray,
    edge_margin_um: float,
    segment_um: float,
) -> dict:
    """Entry points, directions and engine seeds of batch ``k`` (primaries start:stop)."""
    ss = np.random.SeedSequence(seed, spawn_key=(k,))
    engine_seeds = [int(s) for s in (ss.generate_state(2, np.uint32) >> 1) | 1]
    rng = np.random.default_rng(ss)
    n = stop - start
    if isinstance(entry, str):
        if entry == "random":
            mx = min(edge_margin_um, sensor.width_um / 4)
            my = min(edge_margin_um, sensor.height_um / 4)
            x = rng.uniform(mx, sensor.width_um - mx, n)
            y = rng.uniform(my, sensor.height_um - my, n)
        else:  # centre pixel
            p = sensor.pitch_um
            x = (sensor.nx // 2 + rng.random(n)) * p
            y = (sensor.ny // 2 + rng.random(n)) * p
    else:
        x, y = entry[0][start:stop], entry[1][start:stop]
    return {
        "entry_x_um": np.asarray(x, np.float64),
        "entry_y_um": np.asarray(y, np.float64),
        "direction": np.broadcast_to(direction, (n, 3)).copy(),
        "engine_seeds": engine_seeds,
        "segment_um": segment_um,
    }


def _check_entry(entry, n: int, sensor: SensorGeometry):
    if isinstance(entry, str):
        if entry in ("centre-pixel", "centre-pixel-random", "center-pixel"):
            return "centre-pixel"
        if entry == "random":
            return "random"
        raise DedkitError(f"unknown entry {entry!r}: 'random', 'centre-pixel' or (x_um, y_um)")
    try:
        x, y = entry
    except (TypeError, ValueError):
        raise DedkitError("entry must be 'random', 'centre-pixel' or (x_um, y_um)") from None
    x = np.broadcast_to(np.asarray(x, np.float64), (n,))
    y = np.broadcast_to(np.asarray(y, np.float64), (n,))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DedkitError("entry points must be finite")
    if np.any((x < 0) | (x > sensor.width_um) | (y < 0) | (y > sensor.height_um)):
        raise DedkitError(
            f"entry points must lie on the sensor (0-{sensor.width_um:g} x "
            f"0-{sensor.height_um:g} um)"
        )
    return (x, y)


# ----- public functions --------------------------------------------------------------------


def simulate_electrons(energy_keV: float, n: int, **options) -> ElectronDeposits:
    """Track ``n`` electrons through the sensor with Geant4 and return their deposits.

    The keyword options are those of :func:`iter_simulate_electrons` (``seed`` is
    required); this joins its batches.

    Returns
    -------
    ElectronDeposits
    """
    return ElectronDeposits.concatenate(list(iter_simulate_electrons(energy_keV, n, **options)))


def iter_simulate_electrons(
    energy_keV: float,
    n: int,
    *,
    seed: int,
    workers: int | None = None,
    sensor: SensorGeometry | None = None,
    entry="random",
    incidence_deg: float = 0.0,
    azimuth_deg: float = 0.0,
    physics: str = DEFAULT_PHYSICS,
    msc_step_limit: str | None = None,
    production_cut_um: float = DEFAULT_CUT_UM,
    max_step_um: float | None = None,
    segment_um: float = DEFAULT_SEGMENT_UM,
    batch_size: int = DEFAULT_BATCH_SIZE,
    edge_margin_um: float = DEFAULT_EDGE_MARGIN_UM,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[ElectronDeposits]:
    """Track ``n`` electrons through the sensor with Geant4, one batch at a time and in
    order (for streaming; :func:`simulate_electrons` joins the batches).

    The parameters are checked when this is called; the workers start at the first
    ``next()`` and keep simulating ahead while the caller processes a batch. Closing the
    iterator early stops the workers.

    Parameters
    ----------
    energy_keV : float
        Beam energy, 1-1000 keV (validated against reference figures 60-300 keV).
    n : int
        Number of primary electrons.
    seed : int
        Random seed; with ``batch_size`` and the settings it fixes the result.
    workers : int, optional
        Geant4 worker processes (default: one per core, at most one per batch). The
        result does not depend on it.
    sensor : SensorGeometry, optional
        Default: 320 um silicon, 25 um pitch, 400 x 400 pixels.
    entry : str or (x_um, y_um)
        ``"random"``: uniform over the sensor at least ``edge_margin_um`` from every edge
        (at most a quarter of the side); ``"centre-pixel"``: uniform within the pixel
        ``(ny // 2, nx // 2)``; or arrays (or scalars) of entry points on ``z = 0``.
    incidence_deg, azimuth_deg : float
        Beam direction: angle from the sensor normal (0-85 degrees) and azimuth of the
        plane of incidence from ``+x``.
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
    edge_margin_um : float
        See ``entry``.
    progress : callable, optional
        ``progress(done, total)`` in primaries, called as batches complete.

    Yields
    ------
    ElectronDeposits
        One batch of ``batch_size`` primaries (the last may be shorter).
    """
    sensor = SensorGeometry() if sensor is None else sensor
    settings = TransportSettings(
        energy_keV=energy_keV,
        sensor=sensor,
        physics=physics,
        msc_step_limit=msc_step_limit,
        production_cut_um=production_cut_um,
        max_step_um=max_step_um,
        segment_um=segment_um,
    )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise DedkitError(f"the number of electrons must be a positive integer, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DedkitError(f"seed must be a non-negative integer, not {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise DedkitError(f"batch size must be an integer, not {batch_size!r}")
    if batch_size <= 0:
        raise DedkitError(f"batch size must be positive, not {batch_size}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers <= 0
    ):
        raise DedkitError(f"workers must be a positive integer, not {workers!r}")
    if not _number("edge margin", edge_margin_um) >= 0:
        raise DedkitError(f"edge margin must be 0 or positive, not {edge_margin_um!r}")
    entry = _check_entry(entry, int(n), sensor)
    direction = direction_from_angles(incidence_deg, azimuth_deg)
    if not geant4_available():
        raise DedkitError(GEANT4_MISSING)

    n, seed, batch_size = int(n), int(seed), int(batch_size)
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    n_workers = min(int(workers or os.cpu_count() or 1), len(bounds))
    transport = settings.to_dict()
    transport.pop("energy_keV")
    transport.pop("sensor")
    transport.update(
        batch_size=batch_size,
        entry=entry if isinstance(entry, str) else "given",
        incidence_deg=float(incidence_deg),
        azimuth_deg=float(azimuth_deg),
        edge_margin_um=float(edge_margin_um),
    )

    def spec(k: int) -> dict:
        start, stop = bounds[k]
        return _batch_spec(
            k,
            start,
            stop,
            seed=seed,
            sensor=sensor,
            entry=entry,
            direction=direction,
            edge_margin_um=float(edge_margin_um),
            segment_um=float(segment_um),
        )

    return _run_batches(settings, sensor, bounds, spec, n_workers, seed, n, transport, progress)


def _run_batches(settings, sensor, bounds, spec, n_workers, seed, n, transport, progress):
    done = 0
    with _WorkerPool(settings.to_dict(), n_workers) as pool:
        for _batch, path in pool.run(len(bounds), spec):
            with np.load(path) as z:
                arrays = {key: z[key] for key in z.files}
            os.remove(path)
            transport.setdefault("geant4_version", pool.info.get("geant4_version"))
            transport.setdefault("electron_cut_keV", pool.info.get("electron_threshold_keV"))
            part = ElectronDeposits(
                energy_keV=settings.energy_keV,
                sensor=sensor,
                entry_x_um=arrays["entry_x_um"],
                entry_y_um=arrays["entry_y_um"],
                direction=arrays["direction"],
                deposit_keV=arrays["deposit_keV"],
                backscattered=arrays["backscattered"],
                transmitted=arrays["transmitted"],
                offsets=arrays["offsets"],
                step_x_um=arrays["step_x_um"],
                step_y_um=arrays["step_y_um"],
                step_z_um=arrays["step_z_um"],
                step_edep_keV=arrays["step_edep_keV"],
                primary_path_um=arrays["primary_path_um"],
                physics=settings.physics,
                seed=seed,
                workers=n_workers,
                transport=dict(transport),
                geant4_seconds=float(arrays["geant4_seconds"]),
            )
            done += len(part)
            if progress is not None:
                progress(done, n)
            yield part


# ----- the worker processes ---------------------------------------------------------------


def _worker_entry(conn, settings: dict, workdir: str, log_path: str) -> None:
    """Target of a worker process: only here is the Geant4 application imported."""
    from dedkit.sim import _geant4_app

    _geant4_app.worker_main(conn, settings, workdir, log_path)


@contextlib.contextmanager
def _main_module_hidden():
    """Start spawned workers without re-running the caller's main script.

    ``spawn`` makes the child import the parent's ``__main__`` (by module name or file),
    which re-runs a script without an ``if __name__ == "__main__"`` guard and fails. The
    workers need nothing from ``__main__`` (their target lives in this module), so the
    main module's name and file are hidden while a process starts.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if main and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


class _Worker:
    def __init__(self, ctx, settings: dict, workdir: str, index: int, target=None):
        self.index = index
        self.log_path = os.path.join(workdir, f"worker-{index}.log")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=target or _worker_entry,
            args=(child, settings, workdir, self.log_path),
            name=f"dedkit-geant4-{index}",
            daemon=True,
        )
        with _main_module_hidden():
            self.process.start()
        child.close()
        self.ready = False
        self.batch: int | None = None
        self.alive = True

    def log_tail(self, lines: int = 6) -> str:
        """The last meaningful lines of the worker's Geant4 log, on one line."""
        try:
            with open(self.log_path, errors="replace") as f:
                text = [ln.strip() for ln in f.read().splitlines()]
        except OSError:
            return ""
        text = [ln for ln in text if ln and not set(ln) <= set("-*=# ")]
        return " | ".join(text[-lines:])


class _WorkerPool:
    """Geant4 worker processes fed with batches; results are files in a private folder.

    ``target`` replaces the worker's body (a module-level function taking ``(conn,
    settings, workdir, log_path)`` and speaking the same protocol); the tests use it to
    check the handling of crashes without Geant4.
    """

    def __init__(self, settings: dict, n_workers: int, target=None):
        self.target = target
        self.settings = settings
        self.n_workers = n_workers
        self.ctx = multiprocessing.get_context("spawn")
        self.info: dict = {}
        self.workers: list[_Worker] = []
        self.workdir = ""
        self.started = 0

    def __enter__(self) -> _WorkerPool:
        self.workdir = tempfile.mkdtemp(prefix="dedkit-geant4-")
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            if w.alive:
                try:
                    w.conn.send(("stop",))
                except OSError:
                    pass
        for w in self.workers:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
            w.conn.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _start(self) -> _Worker:
        w = _Worker(self.ctx, self.settings, self.workdir, self.started, self.target)
        self.started += 1
        self.workers.append(w)
        return w

    def run(self, n_batches: int, spec: Callable[[int], dict]) -> Iterator[tuple[int, str]]:
        """Yield ``(batch, path)`` in batch order as the workers complete them."""
        pending = collections.deque(range(n_batches))
        failures: collections.Counter = collections.Counter()
        startup_failures = 0
        finished: dict[int, str] = {}
        next_out = 0
        for _ in range(self.n_workers):
            self._start()

        while next_out < n_batches:
            live = [w for w in self.workers if w.alive]
            needed = min(self.n_workers, len(pending) + sum(w.batch is not None for w in live))
            while len(live) < needed:
                live.append(self._start())
            for w in live:
                if w.ready and w.batch is None and pending:
                    k = pending.popleft()
                    w.batch = k
                    w.conn.send(("batch", k, spec(k)))
            waitables = {w.conn: w for w in live}
            waitables.update({w.process.sentinel: w for w in live})
            for obj in multiprocessing.connection.wait(list(waitables)):
                w = waitables[obj]
                if not w.alive:
                    continue
                self._drain(w, finished)
                if obj is w.process.sentinel or not w.process.is_alive():
                    w.process.join()
                    self._drain(w, finished)
                    w.alive = False
                    k = w.batch
                    if k is None:
                        if not w.ready:
                            startup_failures += 1
                            if startup_failures > RETRIES:
                                raise DedkitError(
                                    "a Geant4 worker died while starting "
                                    f"({_exit_text(w.process.exitcode)}): {w.log_tail()}"
                                )
                        continue
                    path = os.path.join(self.workdir, f"batch-{k:06d}.npz")
                    if os.path.exists(path):
                        # the file is renamed into place only when complete
                        finished[k] = path
                        continue
                    failures[k] += 1
                    if failures[k] > RETRIES:
                        raise DedkitError(
                            f"a Geant4 worker died ({_exit_text(w.process.exitcode)}) "
                            f"while simulating batch {k + 1} of {n_batches}, "
                            f"{failures[k]} times: {w.log_tail()}"
                        )
                    pending.appendleft(k)
            while next_out in finished:
                yield next_out, finished.pop(next_out)
                next_out += 1

    def _drain(self, w: _Worker, finished: dict[int, str]) -> None:
        """Read every message the worker has sent."""
        while True:
            try:
                if not w.conn.poll():
                    return
                message = w.conn.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "ready":
                w.ready = True
                self.info = self.info or message[1]
            elif kind == "done":
                _, k, path = message
                finished[k] = path
                w.batch = None
            elif kind == "error":
                _, k, text = message
                where = f" in batch {k + 1}" if k is not None else " while starting"
                raise DedkitError(f"Geant4 failed{where}: {text}")


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
