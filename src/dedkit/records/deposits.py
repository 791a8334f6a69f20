"""Energy deposits of primary electrons in the sensor (:class:`ElectronDeposits`).

What the Geant4 electron transport (:mod:`dedkit.sim.transport`) produces and
:mod:`dedkit.io.deposits` writes and reads: per primary electron its entry point,
direction, total deposit and fate, and its deposit points grouped by primary (CSR). The
headline figures of a set of deposits are :func:`dedkit.sim.transport.transport_summary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dedkit.records.sensor import SensorGeometry

__all__ = ["ElectronDeposits"]


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
