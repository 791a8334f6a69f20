"""Running the electron transport: :func:`transport_electrons`, its keyword forms, the batches.

Primary electrons of one energy enter the sensor of
:class:`~dedkit.records.sensor.SensorGeometry` (in vacuum) at ``z = 0`` and Geant4
(``geant4-pybind``, an optional dependency: the ``sim`` extra) tracks them and every
secondary electron above the production cut. For each primary the result
(:class:`~dedkit.records.deposits.ElectronDeposits`) holds the energy-deposit points
(position, energy), the total deposited in the sensor, whether the primary left through
the entry face (backscattered) or the far face (transmitted), its true entry point and
direction. The model, the offline recipe, the seeding and the validation figures are in
``docs/simulation.md``.

:func:`transport_electrons` runs :class:`~dedkit.sim.transport.settings.TransportSettings`;
:func:`simulate_electrons` and :func:`iter_simulate_electrons` are its keyword form for
Python users (the keywords are the settings' fields).

Geant4 runs in worker processes (:mod:`dedkit.sim.transport.workers`), never in this
process. The primaries are cut into batches of ``batch_size``; batch ``k`` draws its
entry points and the seeds of the Geant4 engine from
``numpy.random.SeedSequence(seed, spawn_key=(k,))`` and the engine is reseeded at the
start of every batch, so the result depends on ``(seed, batch_size)`` and the settings
only, never on the number of workers or on which worker ran which batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import SensorGeometry
from dedkit.sim.transport.settings import (
    GEANT4_MISSING,
    TransportSettings,
    geant4_available,
)
from dedkit.sim.transport.workers import _WorkerPool

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


def _check_entry_points(entry, n: int, sensor: SensorGeometry):
    """Entry points ``(x_um, y_um)`` given to a run, as two arrays of ``n`` values."""
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


def transport_electrons(
    settings: TransportSettings,
    n: int,
    *,
    seed: int,
    workers: int | None = None,
    entry_points=None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[ElectronDeposits]:
    """Track ``n`` electrons through the sensor with Geant4, one batch at a time and in
    order.

    The parameters are checked when this is called; the workers start at the first
    ``next()`` and keep simulating ahead while the caller processes a batch. Closing the
    iterator early stops the workers.

    Parameters
    ----------
    settings : TransportSettings
        Beam, sensor, physics and batching.
    n : int
        Number of primary electrons.
    seed : int
        Random seed; with the settings (``batch_size`` among them) it fixes the result.
    workers : int, optional
        Geant4 worker processes (default: one per core, at most one per batch). The
        result does not depend on it.
    entry_points : (x_um, y_um), optional
        Arrays (or scalars) of entry points on ``z = 0``, in place of ``settings.entry``
        (recorded as ``"given"``).
    progress : callable, optional
        ``progress(done, total)`` in primaries, called as batches complete.

    Yields
    ------
    ElectronDeposits
        One batch of ``settings.batch_size`` primaries (the last may be shorter).

    Examples
    --------
    >>> from dedkit.records import SensorGeometry
    >>> from dedkit.sim.transport import TransportSettings, transport_electrons
    >>> settings = TransportSettings(200.0, SensorGeometry(nx=40, ny=40), batch_size=50)
    >>> for part in transport_electrons(settings, 100, seed=1):  # doctest: +SKIP
    ...     print(len(part), part.backscattered.mean())
    """
    if not isinstance(settings, TransportSettings):
        raise DedkitError("settings must be a TransportSettings")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise DedkitError(f"the number of electrons must be a positive integer, not {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DedkitError(f"seed must be a non-negative integer, not {seed!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers <= 0
    ):
        raise DedkitError(f"workers must be a positive integer, not {workers!r}")
    sensor = settings.sensor
    entry = settings.entry
    if entry_points is not None:
        entry = _check_entry_points(entry_points, int(n), sensor)
    direction = settings.direction
    if not geant4_available():
        raise DedkitError(GEANT4_MISSING)

    n, seed, batch_size = int(n), int(seed), settings.batch_size
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    n_workers = min(int(workers or os.cpu_count() or 1), len(bounds))
    transport = settings.to_dict()
    transport.pop("energy_keV")
    transport.pop("sensor")
    if entry_points is not None:
        transport["entry"] = "given"
    edge_margin_um = float(settings.edge_margin_um)
    segment_um = float(settings.segment_um)

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
            edge_margin_um=edge_margin_um,
            segment_um=segment_um,
        )

    return _run_batches(settings, sensor, bounds, spec, n_workers, seed, n, transport, progress)


def iter_simulate_electrons(
    energy_keV: float,
    n: int,
    *,
    seed: int,
    workers: int | None = None,
    entry="random",
    progress: Callable[[int, int], None] | None = None,
    **settings,
) -> Iterator[ElectronDeposits]:
    """:func:`transport_electrons` with the settings as keywords (for Python users, and
    the ``stream`` interface of :mod:`dedkit.sim.runs`).

    Parameters
    ----------
    energy_keV : float
        Beam energy, 1-1000 keV.
    n : int
        Number of primary electrons.
    seed : int
        Random seed; with the settings it fixes the result.
    workers : int, optional
        Geant4 worker processes (default: one per core); the result does not depend on it.
    entry : str or (x_um, y_um)
        ``"random"`` or ``"centre-pixel"`` (:class:`TransportSettings`), or arrays (or
        scalars) of entry points on ``z = 0``.
    progress : callable, optional
        ``progress(done, total)`` in primaries, called as batches complete.
    **settings
        The other fields of :class:`TransportSettings` (``sensor``, ``physics``,
        ``msc_step_limit``, ``production_cut_um``, ``max_step_um``, ``segment_um``,
        ``batch_size``, ``incidence_deg``, ``azimuth_deg``, ``edge_margin_um``), with
        its defaults; ``sensor=None`` is the default sensor.

    Yields
    ------
    ElectronDeposits
        One batch of ``batch_size`` primaries (the last may be shorter).
    """
    entry_points = None
    if not isinstance(entry, str):
        entry_points, entry = entry, "random"
    if settings.get("sensor", 0) is None:
        del settings["sensor"]
    options = TransportSettings(energy_keV, entry=entry, **settings)
    return transport_electrons(
        options, n, seed=seed, workers=workers, entry_points=entry_points, progress=progress
    )


def simulate_electrons(energy_keV: float, n: int, **options) -> ElectronDeposits:
    """Track ``n`` electrons through the sensor with Geant4 and return their deposits.

    The keyword options are those of :func:`iter_simulate_electrons` (``seed`` is
    required); this joins its batches.

    Returns
    -------
    ElectronDeposits

    Examples
    --------
    >>> from dedkit.sim.transport import simulate_electrons, transport_summary
    >>> d = simulate_electrons(200.0, 300, seed=1, physics="standard")  # doctest: +SKIP
    >>> transport_summary(d)["backscatter_fraction"]  # doctest: +SKIP
    """
    return ElectronDeposits.concatenate(list(iter_simulate_electrons(energy_keV, n, **options)))


def _run_batches(settings, sensor, bounds, spec, n_workers, seed, n, transport, progress):
    done = 0
    with _WorkerPool(settings.worker_dict(), n_workers) as pool:
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
