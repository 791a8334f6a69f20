"""Small training sets without Geant4: straight fake tracks (tests/sim/synthetic_tracks.py)
through dedkit's real charge transport, response, finder and selection."""

from __future__ import annotations

import sys
from pathlib import Path

_SIM_TESTS = str(Path(__file__).resolve().parents[1] / "sim")
if _SIM_TESTS not in sys.path:
    sys.path.insert(0, _SIM_TESTS)

from synthetic_tracks import fake_simulate  # noqa: E402


def make_tiny_set(path, n: int = 300, energy_keV: float = 200.0, seed: int = 11):
    """Write a training set of ``n`` clusters to ``path`` (one chunk; a second or two)."""
    from dedkit.jobs.sim import build_training_set

    build_training_set(
        path,
        energy_keV=energy_keV,
        n=n,
        seed=seed,
        chunk_primaries=n + 50,
        simulate=fake_simulate,
    )
    return Path(path)
