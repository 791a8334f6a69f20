"""Job behind ``dedkit sim electrons``: Geant4 electron transport to an HDF5 file."""

from __future__ import annotations

import time
from dataclasses import dataclass

from dedkit.report import JobReport
from dedkit.sim.transport import TransportSettings, TransportTally, transport_electrons


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


def simulate_electrons_to_file(
    output,
    settings: TransportSettings,
    *,
    n: int,
    seed: int,
    workers: int | None = None,
    force: bool = False,
    progress=None,
) -> ElectronsReport:
    """Simulate ``n`` electrons with Geant4 and write their deposits to ``output``.

    Every parameter is checked before Geant4 starts; the file is written batch by batch
    (:class:`dedkit.io.deposits.DepositsWriter`) and appears only when complete.

    Parameters
    ----------
    output : str or Path
        The HDF5 file to write.
    settings : TransportSettings
        Beam, sensor, physics and batching (:class:`dedkit.sim.transport.TransportSettings`).
    n : int
        Number of primary electrons.
    seed : int
        Random seed; with the settings it fixes the result.
    workers : int, optional
        Geant4 worker processes (default one per core); the result does not depend on it.
    force : bool
        Overwrite an existing ``output``.
    progress : callable, optional
        ``progress(done, total)`` in primaries.

    Returns
    -------
    ElectronsReport

    Examples
    --------
    >>> from dedkit.records import SensorGeometry
    >>> from dedkit.sim.transport import TransportSettings
    >>> settings = TransportSettings(100.0, SensorGeometry(nx=40, ny=40))
    >>> report = simulate_electrons_to_file(  # doctest: +SKIP
    ...     "e.h5", settings, n=60, seed=1, workers=1
    ... )
    >>> report.n_primaries  # doctest: +SKIP
    60
    """
    from dedkit.io.deposits import DepositsWriter

    batches = transport_electrons(settings, n, seed=seed, workers=workers, progress=progress)
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
        physics=settings.physics,
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
