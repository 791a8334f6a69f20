"""Small training sets without Geant4: straight fake tracks (tests/sim/synthetic_tracks.py)
through dedkit's real charge transport, response, finder and selection."""

from __future__ import annotations

import sys
from pathlib import Path

_SIM_TESTS = str(Path(__file__).resolve().parents[1] / "sim")
if _SIM_TESTS not in sys.path:
    sys.path.insert(0, _SIM_TESTS)

import numpy as np  # noqa: E402
from synthetic_tracks import fake_simulate, straight_tracks  # noqa: E402


def slowing_simulate(energy_keV, n, *, seed, workers=None, sensor=None, entry=None, **options):
    """Straight tracks whose deposits grow toward the end, as a slowing electron's do.

    Unlike :func:`~synthetic_tracks.fake_simulate` (even deposits, so the charge centroid
    is the best estimate there is), the entry point is told apart from the end by the
    charge, as in Geant4's 200 keV tracks: a network that learns beats the centroid.
    Tracks 50-150 um long within 72 degrees of the normal; dE/dx rises 10-fold.
    """
    from dedkit.records.sensor import SensorGeometry

    rng = np.random.default_rng(seed)
    sensor = sensor or SensorGeometry()
    theta = rng.uniform(0, 0.4 * np.pi, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    direction = np.column_stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]
    )
    deposit = energy_keV * rng.uniform(0.97, 1.0, n)
    tracks = straight_tracks(
        *entry, energy_keV=energy_keV, deposit_keV=deposit, direction=direction,
        length_um=rng.uniform(50.0, 150.0, n), sensor=sensor,
    )  # fmt: skip
    steps = len(tracks.step_edep_keV) // n
    weight = 1.0 / (1.0 - 0.9 * (np.arange(steps) + 0.5) / steps)
    tracks.step_edep_keV[:] = (deposit[:, None] * weight / weight.sum()).ravel()
    return tracks


def make_tiny_set(
    path, n: int = 300, energy_keV: float = 200.0, seed: int = 11, simulate=fake_simulate
):
    """Write a training set of ``n`` clusters to ``path`` (one chunk; a second or two).

    ``simulate``: :func:`~synthetic_tracks.fake_simulate` (even deposits) or
    :func:`slowing_simulate` (deposits growing along the track, a set to learn from).
    """
    from dedkit.jobs.sim import build_training_set

    build_training_set(
        path,
        energy_keV=energy_keV,
        n=n,
        seed=seed,
        chunk_primaries=n + 50,
        simulate=simulate,
    )
    return Path(path)


def huge_member_npz(weights, name="backbone.0.weight", shape=(131072, 131072)) -> bytes:
    """The weights with member ``name`` replaced by a bare .npy header declaring
    ``shape`` float32 (64 GiB for the default) and no data."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    out = io.BytesIO()
    with zipfile.ZipFile(weights) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            new.writestr(
                info.filename, header.getvalue() if info.filename == name + ".npy" else data
            )
    return out.getvalue()
