"""Hand-made electron tracks for the detector-response tests (no Geant4 needed).

Each primary is a straight track from its entry point (z = 0) in a given direction,
cut into equal deposits; the total is the energy given, so the truth is known exactly.
``fake_simulate`` has the signature of :func:`dedkit.sim.transport.simulate_electrons`
for the parts the response side uses, and draws tracks of random direction and length.
"""

from __future__ import annotations

import numpy as np

from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import SensorGeometry


def straight_tracks(
    entry_x_um,
    entry_y_um,
    *,
    energy_keV=200.0,
    deposit_keV=None,
    direction=(0.0, 0.0, 1.0),
    length_um=100.0,
    n_steps=20,
    backscattered=None,
    sensor=None,
) -> ElectronDeposits:
    """ElectronDeposits of straight tracks, one per entry point.

    Parameters
    ----------
    entry_x_um, entry_y_um : array_like
    energy_keV : float
        Beam energy.
    deposit_keV : array_like, optional
        Energy deposited per primary (default the beam energy).
    direction : (3,) or (n, 3)
        Track directions (normalised here).
    length_um : float or array_like
    n_steps : int
        Deposits per track, at the centres of equal segments.
    backscattered : array_like of bool, optional
    sensor : SensorGeometry, optional
    """
    sensor = sensor or SensorGeometry()
    ex = np.atleast_1d(np.asarray(entry_x_um, dtype=np.float64))
    ey = np.atleast_1d(np.asarray(entry_y_um, dtype=np.float64))
    n = len(ex)
    deposit = np.broadcast_to(
        np.asarray(energy_keV if deposit_keV is None else deposit_keV, np.float64), (n,)
    ).copy()
    d = np.broadcast_to(np.asarray(direction, np.float64), (n, 3)).copy()
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    length = np.broadcast_to(np.asarray(length_um, np.float64), (n,))
    t = (np.arange(n_steps) + 0.5) / n_steps
    sx = ex[:, None] + d[:, 0:1] * length[:, None] * t
    sy = ey[:, None] + d[:, 1:2] * length[:, None] * t
    sz = np.clip(d[:, 2:3] * length[:, None] * t, 0.0, sensor.thickness_um)
    edep = np.repeat(deposit[:, None] / n_steps, n_steps, axis=1)
    bs = np.zeros(n, bool) if backscattered is None else np.asarray(backscattered, bool)
    return ElectronDeposits(
        energy_keV=float(energy_keV),
        sensor=sensor,
        entry_x_um=ex,
        entry_y_um=ey,
        direction=d,
        deposit_keV=deposit,
        backscattered=bs,
        transmitted=np.zeros(n, bool),
        offsets=np.arange(0, n * n_steps + 1, n_steps, dtype=np.int64),
        step_x_um=sx.ravel().astype(np.float32),
        step_y_um=sy.ravel().astype(np.float32),
        step_z_um=sz.ravel().astype(np.float32),
        step_edep_keV=edep.ravel().astype(np.float32),
        physics="synthetic",
        seed=0,
        workers=1,
    )


def fake_simulate(energy_keV, n, *, seed, workers=None, sensor=None, entry=None, **options):
    """Random straight tracks: direction within 60 degrees of the normal, length up to
    100 um, 10 % 'backscattered' depositing a third of the energy near the surface."""
    rng = np.random.default_rng(seed)
    sensor = sensor or SensorGeometry()
    x, y = entry
    theta = rng.uniform(0, np.pi / 3, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    direction = np.column_stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]
    )
    backscattered = rng.uniform(size=n) < 0.1
    deposit = np.where(backscattered, energy_keV / 3, energy_keV * rng.uniform(0.97, 1.0, n))
    length = np.where(backscattered, 10.0, rng.uniform(20.0, 100.0, n))
    return straight_tracks(
        x, y, energy_keV=energy_keV, deposit_keV=deposit, direction=direction,
        length_um=length, backscattered=backscattered, sensor=sensor,
    )  # fmt: skip


def fake_stream(energy_keV, n, *, seed, workers=None, sensor=None, entry=None, **options):
    """:func:`fake_simulate` in batches of 7 primaries, as ``iter_simulate_electrons``
    yields them."""
    deposits = fake_simulate(energy_keV, n, seed=seed, sensor=sensor, entry=entry)
    for start in range(0, n, 7):
        yield deposits.select(slice(start, min(start + 7, n)))
