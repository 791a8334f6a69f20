"""Validation of the MÖNCH simulation against published figures.

At a beam energy (200 keV in the paper), with 320 um of silicon, 25 um pixels, 90 V and
0.18 keV noise, primaries enter at normal incidence, uniformly over a block of pixels at
the sensor centre, and go through the whole chain of the training sets
(:func:`dedkit.sim.runs.training_clusters`: Geant4, charge transport, noise, ADC, the
paper's 5-sigma connected finder and the 20-205 keV window). Reported:

- from Geant4 alone: the backscatter fraction (the primary left through the entry
  face), the fraction fully absorbed (at least 95 % of the beam energy deposited), the
  mean deposited energy, the mean penetration depth (deepest deposit of each primary)
  beside the CSDA range, and the rms per axis of the energy-weighted deposit centroid
  about the entry point (before any charge transport);
- from the clusters: the charge-centroid RMSE per axis in pixels (centroid of each
  primary's selected cluster minus its true entry point), with its standard error
  ``sd(r^2) / (2 RMSE sqrt(n))`` (the delta method on the mean square), and the
  fraction of primaries with a selected cluster, and the mean cluster size (pixels above
  threshold), which the Coulomb repulsion widens.

Published figures (:data:`REFERENCE`): backscatter 0.13-0.15 for silicon over
60-300 keV (physics.md; the paper quotes 15 % at 200 keV), centroid RMSE 1.73 px at
200 keV (the paper's Geant4 simulation; 1.83 px measured), the CSDA ranges of
physics.md (ICRU 37) and its deposit-centroid rms (5.7 / 13.6 / 41.7 / 77.5 um at
60 / 100 / 200 / 300 keV).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from dedkit.errors import DedkitError
from dedkit.report import JobReport
from dedkit.sim.charge import ChargeModel, csda_range_um
from dedkit.sim.response import DetectorResponse
from dedkit.sim.runs import (
    _STREAM_VALIDATION,
    SimulateFn,
    _default_simulate,
    check_energy,
    check_sensor,
    chunk_rng,
    chunk_seed,
    training_clusters,
    training_entry_points,
)

__all__ = ["REFERENCE", "ValidationReport", "validate", "penetration_depth_um"]

#: Published figures per beam energy (keV): physics.md and the MÖNCH paper
REFERENCE = {
    60: {"csda_range_um": 32.9, "deposit_centroid_rms_um": 5.7,
         "backscatter_fraction": (0.13, 0.15)},
    100: {"csda_range_um": 78.4, "deposit_centroid_rms_um": 13.6,
          "backscatter_fraction": (0.13, 0.15)},
    200: {"csda_range_um": 243.2, "deposit_centroid_rms_um": 41.7,
          "backscatter_fraction": (0.13, 0.15), "centroid_rmse_px": 1.73,
          "centroid_rmse_measured_px": 1.83},
    300: {"csda_range_um": 454.0, "deposit_centroid_rms_um": 77.5,
          "backscatter_fraction": (0.13, 0.15)},
}  # fmt: skip
#: Tolerance of the centroid RMSE target (the issue: 1.73 px +- 15 %)
RMSE_TOLERANCE = 0.15


@dataclass(kw_only=True)
class ValidationReport(JobReport):
    """Figures of one validation run (:meth:`to_dict` gives the ``--json`` object: the
    fields declared here, in this order)."""

    energy_keV: float
    n_primaries: int
    backscatter_fraction: float
    full_absorption_fraction: float
    mean_deposit_keV: float
    centroid_rmse_px: dict
    centroid_rmse_se_px: dict
    n_selected: int
    selected_fraction: float
    mean_cluster_size_px: float
    mean_penetration_um: float
    csda_range_um: float
    deposit_centroid_rms_um: dict
    reference: dict
    checks: dict
    settings: dict
    seconds: float
    selection: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = self._declared_dict()
        d["seconds"] = round(self.seconds, 3)
        return d

    def text(self) -> str:
        r = self.reference
        lines = [
            f"validation at {self.energy_keV:g} keV: {self.n_primaries} primaries, "
            f"{self.n_selected} selected clusters ({self.selected_fraction:.3f}) "
            f"in {self.seconds:.1f} s",
            f"  backscatter fraction      {self.backscatter_fraction:.4f}"
            + _ref(r.get("backscatter_fraction")),
            f"  fully absorbed (>= 95 %)  {self.full_absorption_fraction:.4f}",
            f"  mean deposit              {self.mean_deposit_keV:.2f} keV",
            f"  mean cluster size         {self.mean_cluster_size_px:.1f} pixels",
            f"  centroid RMSE x / y       {self.centroid_rmse_px['x']:.3f} / "
            f"{self.centroid_rmse_px['y']:.3f} px (+- {self.centroid_rmse_se_px['x']:.3f})"
            + _ref(r.get("centroid_rmse_px")),
            f"  mean penetration depth    {self.mean_penetration_um:.1f} um "
            f"(CSDA range {self.csda_range_um:.1f} um)",
            f"  deposit centroid rms x/y  {self.deposit_centroid_rms_um['x']:.1f} / "
            f"{self.deposit_centroid_rms_um['y']:.1f} um" + _ref(r.get("deposit_centroid_rms_um")),
        ]
        for name, passed in self.checks.items():
            lines.append(f"  check {name}: {'pass' if passed else 'FAIL'}")
        return "\n".join(lines)


def _ref(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return f"   (published {value[0]:g}-{value[1]:g})"
    return f"   (published {value:g})"


def penetration_depth_um(deposits) -> np.ndarray:
    """Deepest deposit (largest z, um) of each primary; 0 for a primary without any."""
    offsets = np.asarray(deposits.offsets, dtype=np.int64)
    z = np.asarray(deposits.step_z_um, dtype=np.float64)
    out = np.zeros(len(offsets) - 1)
    has = np.diff(offsets) > 0
    if z.size and has.any():
        out[has] = np.maximum.reduceat(z, offsets[:-1][has])
    return out


def _deposit_centroid_residuals(deposits) -> tuple[np.ndarray, np.ndarray]:
    # energy-weighted centroid of the deposits minus the entry point, um, per primary
    offsets = np.asarray(deposits.offsets, dtype=np.int64)
    edep = np.asarray(deposits.step_edep_keV, dtype=np.float64)
    counts = np.diff(offsets)
    primary = np.repeat(np.arange(len(counts)), counts)
    total = np.bincount(primary, edep, minlength=len(counts))
    ok = total > 0
    out = []
    for coord, entry in (
        (deposits.step_x_um, deposits.entry_x_um),
        (deposits.step_y_um, deposits.entry_y_um),
    ):
        moment = np.bincount(primary, edep * np.asarray(coord, dtype=np.float64), len(counts))
        out.append(moment[ok] / total[ok] - np.asarray(entry, dtype=np.float64)[ok])
    return out[0], out[1]


def _rmse(residuals: np.ndarray) -> tuple[float, float]:
    if len(residuals) == 0:
        return float("nan"), float("nan")
    square = residuals**2
    rmse = math.sqrt(float(square.mean()))
    if len(residuals) < 2 or rmse == 0:
        return rmse, float("nan")
    se = float(square.std(ddof=1)) / (2.0 * rmse * math.sqrt(len(residuals)))
    return rmse, se


def validate(
    energy_keV: float = 200.0,
    n: int = 20000,
    seed: int = 1,
    workers: int | None = None,
    *,
    sensor=None,
    model: ChargeModel | None = None,
    response: DetectorResponse | None = None,
    chunk_primaries: int = 10000,
    simulate: SimulateFn | None = None,
    transport_options: dict | None = None,
    progress=None,
) -> ValidationReport:
    """Simulate ``n`` primaries and compare the figures with the published ones.

    Parameters
    ----------
    energy_keV : float
        Beam energy (20-300 keV; published figures at 60, 100, 200, 300).
    n : int
        Primary electrons.
    seed : int
    workers : int, optional
        Geant4 worker processes (default one per core).
    sensor : SensorGeometry, optional
        Default: :class:`~dedkit.records.sensor.SensorGeometry` ``()``.
    model : ChargeModel, optional
        Default: 90 V, 30 V depletion, 293 K, Coulomb repulsion on.
    response : DetectorResponse, optional
        Default: 0.18 keV noise, MÖNCH low gain.
    chunk_primaries : int
        Primaries per Geant4 call.
    simulate : callable, optional
        Replaces :func:`dedkit.sim.transport.simulate_electrons` (tests).
    transport_options : dict, optional
        More keyword arguments for the transport (physics list, cuts).
    progress : callable(done, total), optional

    Returns
    -------
    ValidationReport
    """
    started = time.perf_counter()
    energy = check_energy(energy_keV)
    if not (isinstance(n, int | np.integer) and n >= 1):
        raise DedkitError(f"the number of primaries must be a positive integer, got {n}")
    if chunk_primaries < 1:
        raise DedkitError(f"chunk_primaries must be at least 1, got {chunk_primaries}")
    if sensor is None:
        from dedkit.records.sensor import SensorGeometry

        sensor = SensorGeometry()
    check_sensor(sensor)
    model = ChargeModel() if model is None else model
    response = DetectorResponse() if response is None else response
    simulate = simulate or _default_simulate()

    residual_x, residual_y, depth, centroid_x, centroid_y, sizes = [], [], [], [], [], []
    totals = {"n_backscattered": 0, "n_full_absorption": 0, "deposit_sum_keV": 0.0,
              "n_clusters": 0}  # fmt: skip
    selection = None
    done = 0
    for chunk, start in enumerate(range(0, int(n), chunk_primaries)):
        count = min(chunk_primaries, int(n) - start)
        rng = chunk_rng(seed, _STREAM_VALIDATION, chunk)
        entry = training_entry_points(count, sensor, rng)
        deposits = simulate(
            energy,
            count,
            seed=chunk_seed(seed, _STREAM_VALIDATION, chunk),
            workers=workers,
            sensor=sensor,
            entry=entry,
            **(transport_options or {}),
        )
        batch = training_clusters(deposits, rng, model=model, response=response)
        residual_x.append(batch.centroid_x - batch.entry_x)
        residual_y.append(batch.centroid_y - batch.entry_y)
        sizes.append(batch.features[:, 3].astype(np.float64))
        depth.append(penetration_depth_um(deposits))
        dx, dy = _deposit_centroid_residuals(deposits)
        centroid_x.append(dx)
        centroid_y.append(dy)
        for key in totals:
            totals[key] += batch.stats[key]
        selection = _add_selection(selection, batch.stats["selection"])
        done += count
        if progress is not None:
            progress(done, int(n))

    rx, ry = np.concatenate(residual_x), np.concatenate(residual_y)
    rmse_x, se_x = _rmse(rx)
    rmse_y, se_y = _rmse(ry)
    n_selected = len(rx)
    # the published figures are for normal incidence
    oblique = bool((transport_options or {}).get("incidence_deg"))
    reference = {} if oblique else _reference(energy)
    report = ValidationReport(
        command="sim validate",
        energy_keV=energy,
        n_primaries=int(n),
        backscatter_fraction=totals["n_backscattered"] / n,
        full_absorption_fraction=totals["n_full_absorption"] / n,
        mean_deposit_keV=totals["deposit_sum_keV"] / n,
        centroid_rmse_px={"x": rmse_x, "y": rmse_y},
        centroid_rmse_se_px={"x": se_x, "y": se_y},
        n_selected=n_selected,
        selected_fraction=n_selected / n,
        mean_cluster_size_px=float(np.concatenate(sizes).mean()) if n_selected else math.nan,
        mean_penetration_um=float(np.concatenate(depth).mean()),
        csda_range_um=float(csda_range_um(energy)),
        deposit_centroid_rms_um={
            "x": float(np.sqrt(np.mean(np.concatenate(centroid_x) ** 2))),
            "y": float(np.sqrt(np.mean(np.concatenate(centroid_y) ** 2))),
        },
        reference=reference,
        checks={},
        settings={
            "seed": int(seed),
            "workers": workers,
            "sensor": sensor.to_dict(),
            "charge_model": model.to_dict(),
            "response": response.to_dict(),
            "transport_options": dict(transport_options or {}),
            "chunk_primaries": int(chunk_primaries),
        },
        seconds=time.perf_counter() - started,
        selection=selection or {},
    )
    report.checks = _checks(report)
    return report


def _reference(energy: float) -> dict:
    key = int(round(energy))
    if abs(energy - key) < 1e-9 and key in REFERENCE:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in REFERENCE[key].items()}
    return {}


def _add_selection(total: dict | None, part: dict) -> dict:
    if total is None:
        return dict(part)
    for key, value in part.items():
        if isinstance(value, int) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
    return total


def _checks(report: ValidationReport) -> dict:
    """Pass/fail of the targets that apply at this energy (with 2 standard errors of
    statistical slack, so a small run is not failed by its own noise)."""
    checks = {}
    ref = report.reference
    n = report.n_primaries
    if "backscatter_fraction" in ref:
        low, high = ref["backscatter_fraction"]
        f = report.backscatter_fraction
        slack = 2.0 * math.sqrt(max(f * (1 - f), 1e-12) / n)
        checks["backscatter_fraction"] = bool(low - slack <= f <= high + slack)
    if "centroid_rmse_px" in ref:
        target = ref["centroid_rmse_px"]
        for axis in ("x", "y"):
            value = report.centroid_rmse_px[axis]
            se = report.centroid_rmse_se_px[axis]
            slack = RMSE_TOLERANCE * target + (2.0 * se if math.isfinite(se) else 0.0)
            checks[f"centroid_rmse_{axis}"] = bool(abs(value - target) <= slack)
    return checks
