"""A library of Geant4 tracks made once per machine: :func:`track_library`.

The library (:class:`dedkit.sim.tracks.TrackLibrary`) is cached on disk under
:func:`dedkit.jobs.cache.cache_dir`, keyed by everything its tracks depend on: the
energy, the number of tracks, the seed, the sensor's thickness and pitch, every transport
setting (defaults written out, so that naming a default gives the same key) and the
Geant4 version. The number of workers is not in the key (the tracks do not depend on it).
"""

from __future__ import annotations

from collections.abc import Callable

from dedkit.errors import DedkitError
from dedkit.jobs.cache import cached_npz
from dedkit.records.sensor import SensorGeometry
from dedkit.sim.tracks import TrackLibrary, simulate_track_library

__all__ = ["CACHE_NAME", "track_library", "track_library_key"]

#: file-name prefix of the cached libraries
CACHE_NAME = "tracks"
#: bumped when the library's contents change for the same settings
_VERSION = 1


def _geant4_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("geant4-pybind")
    except PackageNotFoundError:
        return None


def track_library_key(
    energy_keV: float = 200.0, n: int = 20000, *, seed: int = 1, **transport_options
) -> dict:
    """The cache key of a library (JSON-ready; the settings checked as the transport
    checks them).

    Examples
    --------
    >>> key = track_library_key(200.0, 100, seed=2)
    >>> key["n"], key["transport"]["physics"], key["sensor"]["pitch_um"]
    (100, 'option3', 25.0)
    >>> key == track_library_key(200, 100, seed=2, physics="option3")
    True
    """
    from dedkit.sim.transport import TransportSettings

    options = dict(transport_options)
    sensor = options.pop("sensor", None) or SensorGeometry()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DedkitError(f"a track library needs a positive number of tracks, not {n!r}")
    settings = TransportSettings(float(energy_keV), sensor=sensor, **options).to_dict()
    settings.pop("energy_keV")
    settings.pop("sensor")
    for ignored in ("entry", "edge_margin_um"):
        settings.pop(ignored)
    return {
        "version": _VERSION,
        "energy_keV": float(energy_keV),
        "n": int(n),
        "seed": int(seed),
        "sensor": {"thickness_um": sensor.thickness_um, "pitch_um": sensor.pitch_um},
        "transport": settings,
        "geant4": _geant4_version(),
    }


def track_library(
    energy_keV: float = 200.0,
    n: int = 20000,
    *,
    seed: int = 1,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **transport_options,
) -> TrackLibrary:
    """A library of ``n`` Geant4 tracks, from the cache or simulated and cached.

    Parameters
    ----------
    energy_keV : float
    n : int
        Tracks (20000 at 200 keV take about 2 s of Geant4 with 2 workers here).
    seed : int
    workers : int, optional
        Geant4 worker processes (not in the key).
    progress : callable, optional
        ``progress(done, total)`` in primaries while simulating.
    **transport_options
        ``sensor`` (its thickness and pitch) and the other
        :class:`~dedkit.sim.transport.TransportSettings` fields.

    Returns
    -------
    TrackLibrary

    Examples
    --------
    >>> import os
    >>> os.environ["DEDKIT_CACHE"] = "cache"
    >>> lib = track_library(200.0, 50, seed=3)  # doctest: +SKIP
    >>> len(lib)  # doctest: +SKIP
    50
    >>> del os.environ["DEDKIT_CACHE"]
    """
    key = track_library_key(energy_keV, n, seed=seed, **transport_options)

    def make() -> dict:
        library = simulate_track_library(
            energy_keV, n, seed=seed, workers=workers, progress=progress, **transport_options
        )
        return library.to_arrays()

    return TrackLibrary.from_arrays(cached_npz(CACHE_NAME, key, make, progress=progress))
