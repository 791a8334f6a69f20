"""Job behind ``dedkit sim electrons``: Geant4 electron transport to an HDF5 file."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dedkit.errors import DedkitError
from dedkit.report import JobReport
from dedkit.sim.geometry import SensorGeometry
from dedkit.sim.transport import (
    DEFAULT_CUT_UM,
    DEFAULT_PHYSICS,
    DEFAULT_SEGMENT_UM,
    TransportTally,
    iter_simulate_electrons,
)


@dataclass(kw_only=True)
class ElectronsReport(JobReport):
    """What ``dedkit sim electrons`` did (``--json``: the fields below, in this order)."""

    output: str
    energy_keV: float
    n_primaries: int
    n_steps: int
    seed: int
    workers: int
    physics: str
    backscatter_fraction: float
    backscatter_error: float
    transmitted_fraction: float
    mean_deposit_keV: float
    full_absorption_fraction: float
    mean_max_depth_um: float
    mean_stopped_path_um: float
    centroid_rms_um: dict
    seconds: float
    events_per_s: float
    geant4_events_per_s_per_worker: float
    command: str = "sim electrons"

    def to_dict(self) -> dict:
        return self._declared_dict()

    def text(self) -> str:
        c = self.centroid_rms_um
        return (
            f"{self.command}: wrote {self.output}: {self.n_primaries} electrons of "
            f"{self.energy_keV:g} keV ({self.physics}), {self.n_steps} deposits, in "
            f"{self.seconds:.1f} s ({self.events_per_s:.0f} electrons/s on {self.workers} "
            f"worker(s))\n"
            f"  backscattered {self.backscatter_fraction:.4f} +- {self.backscatter_error:.4f}, "
            f"transmitted {self.transmitted_fraction:.4f}, fully absorbed "
            f"{self.full_absorption_fraction:.4f}\n"
            f"  mean deposit {self.mean_deposit_keV:.2f} keV, mean deepest deposit "
            f"{self.mean_max_depth_um:.1f} um, mean path of stopped primaries "
            f"{self.mean_stopped_path_um:.1f} um\n"
            f"  deposit centroid - entry rms {c['x']:.1f} / {c['y']:.1f} um (x / y)"
        )


def _sensor(thickness_um, pitch_um, nx, ny, area_um) -> SensorGeometry:
    if area_um is not None:
        if nx is not None or ny is not None:
            raise DedkitError("give the sensor size in pixels or in um, not both")
        return SensorGeometry.from_size(
            area_um[0], area_um[1], pitch_um=pitch_um, thickness_um=thickness_um
        )
    default = SensorGeometry()
    return SensorGeometry(
        thickness_um=thickness_um,
        pitch_um=pitch_um,
        nx=default.nx if nx is None else nx,
        ny=default.ny if ny is None else ny,
    )


def simulate_electrons_to_file(
    output,
    *,
    energy_keV: float,
    n: int,
    seed: int,
    workers: int | None = None,
    physics: str = DEFAULT_PHYSICS,
    msc_step_limit: str | None = None,
    production_cut_um: float = DEFAULT_CUT_UM,
    max_step_um: float | None = None,
    segment_um: float = DEFAULT_SEGMENT_UM,
    thickness_um: float = 320.0,
    pitch_um: float = 25.0,
    nx: int | None = None,
    ny: int | None = None,
    area_um: tuple[float, float] | None = None,
    entry: str = "random",
    incidence_deg: float = 0.0,
    azimuth_deg: float = 0.0,
    force: bool = False,
    progress=None,
) -> ElectronsReport:
    """Simulate ``n`` electrons with Geant4 and write their deposits to ``output``.

    Every parameter is checked before Geant4 starts; the file is written batch by batch
    (:class:`dedkit.io.deposits.DepositsWriter`) and appears only when complete. See
    :func:`dedkit.sim.transport.simulate_electrons` for the parameters.
    """
    from dedkit.io.deposits import DepositsWriter

    sensor = _sensor(thickness_um, pitch_um, nx, ny, area_um)
    batches = iter_simulate_electrons(
        energy_keV,
        n,
        seed=seed,
        workers=workers,
        sensor=sensor,
        entry=entry,
        incidence_deg=incidence_deg,
        azimuth_deg=azimuth_deg,
        physics=physics,
        msc_step_limit=msc_step_limit,
        production_cut_um=production_cut_um,
        max_step_um=max_step_um,
        segment_um=segment_um,
        progress=progress,
    )
    t0 = time.perf_counter()
    tally = None
    n_workers = 0
    with DepositsWriter(output, force=force) as writer:
        for part in batches:
            if tally is None:
                tally = TransportTally(part.energy_keV)
            tally.add(part)
            n_workers = part.workers
            writer.append(part)
    seconds = time.perf_counter() - t0
    s = tally.summary()
    return ElectronsReport(
        output=str(writer.path),
        energy_keV=s["energy_keV"],
        n_primaries=s["n_primaries"],
        n_steps=s["n_steps"],
        seed=int(seed),
        workers=n_workers,
        physics=physics,
        backscatter_fraction=s["backscatter_fraction"],
        backscatter_error=s["backscatter_error"],
        transmitted_fraction=s["transmitted_fraction"],
        mean_deposit_keV=s["mean_deposit_keV"],
        full_absorption_fraction=s["full_absorption_fraction"],
        mean_max_depth_um=s["mean_max_depth_um"],
        mean_stopped_path_um=s["mean_stopped_path_um"],
        centroid_rms_um=s["centroid_rms_um"],
        seconds=seconds,
        events_per_s=s["n_primaries"] / seconds,
        geant4_events_per_s_per_worker=(
            s["n_primaries"] / tally.geant4_seconds if tally.geant4_seconds else 0.0
        ),
    )
