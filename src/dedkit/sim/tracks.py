"""A library of Geant4 electron tracks, placed again and again (:class:`TrackLibrary`).

Millions of electrons through Geant4 take a long time; a few thousand tracks, each
placed many times, do not. At normal incidence the sensor is symmetric about the beam
axis (an infinite slab to a track far from its edges, no field that singles out a
direction) and under a reflection, so a track rotated by any angle about the beam axis,
mirrored, and moved to another entry point is as likely as the one Geant4 made. A
placement keeps what depends on depth (where charge is made along ``z``, hence the
cloud widths and the Coulomb repulsion), the energy, the number of deposit points and the
fate of the primary (backscattered, transmitted); only the azimuth and the entry point
change. What is lost is the independence of the placements of one track: with ``n``
placements of ``L`` tracks, a figure averaged over the placements varies as one averaged
over about ``L`` independent tracks once ``n >> L``
(:mod:`dedkit.studies.track_reuse` measures whether localisation changes).

- :func:`simulate_track_library`: ``n`` primaries through Geant4 at the centre of a wide
  sensor, stored relative to their entry point ``(0, 0)``;
- :func:`place_tracks`: library tracks rotated, mirrored and moved to entry points
  (vectorised numpy, no loop per electron);
- :func:`library_stream`: the same call as
  :func:`dedkit.sim.transport.iter_simulate_electrons`, so that
  :func:`dedkit.sim.runs.iter_run_chunks` and :func:`dedkit.jobs.sim.write_simulated_run`
  take a library as their ``stream``;
- :meth:`TrackLibrary.to_arrays` / :meth:`TrackLibrary.from_arrays`: flat arrays for a
  cache file (:func:`dedkit.jobs.tracks.track_library`).

A placement draws its library track with replacement, a rotation angle uniform in
``[0, 2 pi)`` and (``mirror=True``) a reflection ``y -> -y`` with probability 1/2 before
the rotation; the draws of a whole stream come from its seed at once, so the result does
not depend on how it is cut into batches.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import SensorGeometry

__all__ = [
    "ENERGY_TOLERANCE_KEV",
    "PLACEMENT_BATCH",
    "TrackLibrary",
    "library_stream",
    "place_tracks",
    "placement_plan",
    "simulate_track_library",
]

#: a stream refuses a beam energy further than this from the library's
ENERGY_TOLERANCE_KEV = 1e-3
#: primaries per batch a library stream yields (bounds its memory: ~100 points each)
PLACEMENT_BATCH = 50_000
#: settings a stream accepts from its caller without comparing them with the library's:
#: they concern how Geant4 is run, not the tracks it makes
_IGNORED_OPTIONS = ("batch_size", "edge_margin_um", "progress")
#: the arrays of a library (:meth:`TrackLibrary.to_arrays`)
_ARRAYS = (
    "direction", "deposit_keV", "backscattered", "transmitted", "offsets",
    "step_x_um", "step_y_um", "step_z_um", "step_edep_keV",
)  # fmt: skip
#: sensor a library is simulated in: wide enough that no track reaches its sides
_RANGE_MARGIN = 1.5


@dataclass
class TrackLibrary:
    """Geant4 tracks of primaries at normal incidence, entering at ``(0, 0)`` um.

    Attributes
    ----------
    deposits : ElectronDeposits
        ``n`` primaries; entry points are 0, deposit points are relative to the entry
        point (``x``, ``y``) and to the entry face (``z``).
    energy_keV : float
    physics : str
        The Geant4 physics list.
    seed : int
        Seed of the Geant4 run.

    Examples
    --------
    >>> lib = TrackLibrary.from_arrays(_toy_library_arrays())
    >>> len(lib), lib.energy_keV, lib.sensor.thickness_um
    (3, 200.0, 320.0)
    """

    deposits: ElectronDeposits
    energy_keV: float
    physics: str
    seed: int

    def __post_init__(self) -> None:
        self.energy_keV = float(self.energy_keV)
        if len(self.deposits) == 0:
            raise DedkitError("a track library needs at least one track")
        if np.any(self.deposits.entry_x_um != 0) or np.any(self.deposits.entry_y_um != 0):
            raise DedkitError("the tracks of a library must enter at (0, 0) um")

    def __len__(self) -> int:
        return len(self.deposits)

    @property
    def sensor(self) -> SensorGeometry:
        """The sensor the tracks were simulated in (its thickness and pitch matter)."""
        return self.deposits.sensor

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for :func:`numpy.savez` (no pickled objects).

        Returns
        -------
        dict of str to ndarray
            The deposit arrays, ``primary_path_um`` when known, and 0-d arrays holding the
            energy, physics, seed, sensor, transport settings (JSON) and Geant4 seconds.

        Examples
        --------
        >>> lib = TrackLibrary.from_arrays(_toy_library_arrays())
        >>> again = TrackLibrary.from_arrays(lib.to_arrays())
        >>> bool(np.array_equal(again.deposits.step_z_um, lib.deposits.step_z_um))
        True
        """
        d = self.deposits
        out = {name: np.asarray(getattr(d, name)) for name in _ARRAYS}
        if d.primary_path_um is not None:
            out["primary_path_um"] = np.asarray(d.primary_path_um)
        out["energy_keV"] = np.array(self.energy_keV)
        out["physics"] = np.array(self.physics)
        out["seed"] = np.array(int(self.seed))
        out["sensor"] = np.array(json.dumps(d.sensor.to_dict()))
        out["transport"] = np.array(json.dumps(d.transport, default=str))
        out["geant4_seconds"] = np.array(float(d.geant4_seconds))
        return out

    @classmethod
    def from_arrays(cls, arrays, *, path=None) -> TrackLibrary:
        """The library :meth:`to_arrays` gave (from a dict or an open ``.npz``).

        Parameters
        ----------
        arrays : mapping of str to ndarray
        path : path-like, optional
            The file they came from, named by the error.

        Raises
        ------
        DedkitError
            An array is missing or they do not make a library.

        Examples
        --------
        >>> TrackLibrary.from_arrays({"offsets": np.zeros(1)})
        Traceback (most recent call last):
        ...
        dedkit.errors.DedkitError: not a track library: no 'direction' array
        """
        for name in (*_ARRAYS, "energy_keV", "physics", "seed", "sensor", "transport"):
            if name not in arrays:
                raise DedkitError(f"not a track library: no {name!r} array", path=path)
        try:
            n = len(arrays["deposit_keV"])
            deposits = ElectronDeposits(
                energy_keV=float(arrays["energy_keV"]),
                sensor=SensorGeometry(**json.loads(str(arrays["sensor"]))),
                entry_x_um=np.zeros(n),
                entry_y_um=np.zeros(n),
                **{name: arrays[name] for name in _ARRAYS},
                primary_path_um=arrays["primary_path_um"] if "primary_path_um" in arrays else None,
                physics=str(arrays["physics"]),
                seed=int(arrays["seed"]),
                workers=None,
                transport=json.loads(str(arrays["transport"])),
                geant4_seconds=float(arrays.get("geant4_seconds", 0.0)),
            )
        except (TypeError, ValueError) as error:
            raise DedkitError(f"not a track library: {error}", path=path) from None
        return cls(deposits, deposits.energy_keV, deposits.physics, int(arrays["seed"]))


def _toy_library_arrays() -> dict[str, np.ndarray]:
    """Three straight vertical 'tracks' of 200 keV (for the examples; no physics)."""
    z = np.array([10.0, 30.0, 10.0, 10.0, 50.0, 90.0], np.float32)
    return TrackLibrary(
        ElectronDeposits(
            energy_keV=200.0,
            sensor=SensorGeometry(),
            entry_x_um=np.zeros(3),
            entry_y_um=np.zeros(3),
            direction=np.tile([0.0, 0.0, 1.0], (3, 1)),
            deposit_keV=np.array([200.0, 20.0, 200.0]),
            backscattered=np.array([False, True, False]),
            transmitted=np.zeros(3, bool),
            offsets=np.array([0, 2, 3, 6]),
            step_x_um=np.array([1.0, 2.0, 0.0, 0.0, 3.0, 6.0], np.float32),
            step_y_um=np.zeros(6, np.float32),
            step_z_um=z,
            step_edep_keV=np.array([100, 100, 20, 50, 50, 100], np.float32),
            physics="toy",
        ),
        200.0,
        "toy",
        0,
    ).to_arrays()


# ----- Geant4 ------------------------------------------------------------------------------


def simulate_track_library(
    energy_keV: float,
    n: int,
    *,
    seed: int,
    workers: int | None = None,
    sensor: SensorGeometry | None = None,
    progress: Callable[[int, int], None] | None = None,
    **transport_options,
) -> TrackLibrary:
    """Track ``n`` primaries at normal incidence with Geant4 and keep them as a library.

    The primaries enter at the centre of a sensor of the given thickness and pitch, wide
    enough (``1.5`` CSDA ranges from the entry point to every side) that no track leaves
    it sideways; the tracks are stored relative to their entry point.

    Parameters
    ----------
    energy_keV : float
    n : int
        Tracks in the library.
    seed : int
        Geant4 seed (with the settings it fixes the library).
    workers : int, optional
        Geant4 worker processes (the result does not depend on it).
    sensor : SensorGeometry, optional
        Its thickness and pitch are the library's (default the MÖNCH 03's).
    progress : callable, optional
        ``progress(done, total)`` in primaries.
    **transport_options
        Other :class:`~dedkit.sim.transport.TransportSettings` fields (physics list,
        cuts, ...); an oblique beam and entry points of one's own are refused.

    Returns
    -------
    TrackLibrary

    Raises
    ------
    DedkitError
        A bad setting, an oblique beam, Geant4 missing.

    Examples
    --------
    >>> lib = simulate_track_library(200.0, 200, seed=1)  # doctest: +SKIP
    >>> len(lib), float(lib.deposits.entry_x_um.max())  # doctest: +SKIP
    (200, 0.0)
    """
    from dedkit.sim.charge import csda_range_um
    from dedkit.sim.transport import iter_simulate_electrons

    if "entry" in transport_options:
        raise DedkitError("a track library's primaries enter at its centre: give no entry")
    if transport_options.get("incidence_deg", 0.0) not in (0, 0.0):
        raise DedkitError(
            "a track library is made at normal incidence (rotating an oblique track about "
            "the beam axis would change the beam)"
        )
    sensor = SensorGeometry() if sensor is None else sensor
    if not isinstance(sensor, SensorGeometry):
        raise DedkitError("sensor must be a SensorGeometry")
    reach = _RANGE_MARGIN * float(np.ravel(csda_range_um(float(energy_keV)))[0])
    need = 2 * int(math.ceil(reach / sensor.pitch_um)) + 2
    wide = SensorGeometry(
        thickness_um=sensor.thickness_um,
        pitch_um=sensor.pitch_um,
        nx=max(sensor.nx, need),
        ny=max(sensor.ny, need),
    )
    # the centre of a pixel, so that the stored coordinates are exact differences
    cx = (wide.nx // 2 + 0.5) * wide.pitch_um
    cy = (wide.ny // 2 + 0.5) * wide.pitch_um
    parts = list(
        iter_simulate_electrons(
            energy_keV, n, seed=seed, workers=workers, entry=(cx, cy), sensor=wide,
            progress=progress, **transport_options,
        )
    )  # fmt: skip
    d = ElectronDeposits.concatenate(parts)
    d.step_x_um = (d.step_x_um.astype(np.float64) - cx).astype(np.float32)
    d.step_y_um = (d.step_y_um.astype(np.float64) - cy).astype(np.float32)
    d.entry_x_um = np.zeros(len(d))
    d.entry_y_um = np.zeros(len(d))
    d.transport = dict(d.transport, entry="library (0, 0)")
    return TrackLibrary(d, d.energy_keV, d.physics, int(seed))


# ----- placements --------------------------------------------------------------------------


def placement_plan(
    n_tracks: int, n: int, seed: int, *, mirror: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The draws of ``n`` placements of a library of ``n_tracks`` (what a stream of
    ``seed`` places).

    Parameters
    ----------
    n_tracks : int
        Tracks in the library.
    n : int
        Placements.
    seed : int
    mirror : bool
        Draw reflections (otherwise none).

    Returns
    -------
    index : (n,) int64
        Library track of each placement (with replacement).
    angle : (n,) float64
        Rotation about the beam axis, radians, uniform in ``[0, 2 pi)``.
    flip : (n,) bool
        Reflect ``y -> -y`` before the rotation.

    Examples
    --------
    >>> index, angle, flip = placement_plan(10, 4, seed=1)
    >>> index.shape, bool(np.all(angle < 2 * np.pi)), flip.dtype
    ((4,), True, dtype('bool'))
    """
    rng = _plan_rng(seed)
    index = rng.integers(0, int(n_tracks), int(n))
    angle = rng.uniform(0.0, 2.0 * np.pi, int(n))
    flip = rng.random(int(n)) < 0.5 if mirror else np.zeros(int(n), bool)
    return index, angle, flip


def _plan_rng(seed: int) -> np.random.Generator:
    # its own stream of the seed (0x7AC5: 'tracks'), apart from any Geant4 seeding
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x7AC5]))


def place_tracks(
    library: TrackLibrary,
    index,
    angle,
    flip,
    entry_x_um,
    entry_y_um,
    *,
    sensor: SensorGeometry | None = None,
    seed: int | None = None,
) -> ElectronDeposits:
    """Library tracks rotated about the beam axis, mirrored and moved to entry points.

    Parameters
    ----------
    library : TrackLibrary
    index : (n,) int
        Library track of each placement.
    angle : (n,) float
        Rotation (radians, counter-clockwise from ``+x`` towards ``+y``).
    flip : (n,) bool
        Reflect ``y -> -y`` (about the entry point) before rotating.
    entry_x_um, entry_y_um : (n,) float or scalar
        Entry points on ``z = 0``.
    sensor : SensorGeometry, optional
        The sensor the deposits are in (default the library's).
    seed : int, optional
        Recorded with the deposits.

    Returns
    -------
    ElectronDeposits
        ``z``, energies, the number of points and the per-primary flags of the library
        tracks; ``x``, ``y`` and the direction transformed.

    Examples
    --------
    >>> lib = TrackLibrary.from_arrays(_toy_library_arrays())
    >>> d = place_tracks(lib, [0], [np.pi / 2], [False], 100.0, 200.0)
    >>> d.step_x_um.tolist(), d.step_y_um.tolist()
    ([100.0, 100.0], [201.0, 202.0])
    """
    src = library.deposits
    index = np.asarray(index, np.int64).ravel()
    n = len(index)
    if n and (index.min() < 0 or index.max() >= len(src)):
        raise DedkitError(f"track index out of range (the library holds {len(src)} tracks)")
    angle = np.broadcast_to(np.asarray(angle, np.float64), (n,))
    sign = np.where(np.broadcast_to(np.asarray(flip, bool), (n,)), -1.0, 1.0)
    ex = np.broadcast_to(np.asarray(entry_x_um, np.float64), (n,))
    ey = np.broadcast_to(np.asarray(entry_y_um, np.float64), (n,))
    counts = np.diff(src.offsets)[index]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    # the source point of every placed point (as ElectronDeposits.select)
    points = np.repeat(src.offsets[index] - offsets[:-1], counts) + np.arange(int(offsets[-1]))
    c, s = np.cos(angle), np.sin(angle)
    x = src.step_x_um[points].astype(np.float64)
    y = src.step_y_um[points].astype(np.float64) * np.repeat(sign, counts)
    cr, sr = np.repeat(c, counts), np.repeat(s, counts)
    px = cr * x - sr * y + np.repeat(ex, counts)
    py = sr * x + cr * y + np.repeat(ey, counts)
    direction = src.direction[index].copy()
    dy = direction[:, 1] * sign
    direction[:, 0], direction[:, 1] = c * direction[:, 0] - s * dy, s * direction[:, 0] + c * dy
    return ElectronDeposits(
        energy_keV=library.energy_keV,
        sensor=library.sensor if sensor is None else sensor,
        entry_x_um=ex.copy(),
        entry_y_um=ey.copy(),
        direction=direction,
        deposit_keV=src.deposit_keV[index],
        backscattered=src.backscattered[index],
        transmitted=src.transmitted[index],
        offsets=offsets,
        step_x_um=px.astype(np.float32),
        step_y_um=py.astype(np.float32),
        step_z_um=src.step_z_um[points],
        step_edep_keV=src.step_edep_keV[points],
        primary_path_um=None if src.primary_path_um is None else src.primary_path_um[index],
        physics=library.physics,
        seed=seed,
        workers=None,
        transport=dict(src.transport, entry="given", track_library_size=len(src)),
        geant4_seconds=0.0,
    )


def library_stream(
    library: TrackLibrary, *, mirror: bool = True, batch: int = PLACEMENT_BATCH
) -> Callable[..., Iterator[ElectronDeposits]]:
    """A stand-in for Geant4 that places library tracks: the ``stream`` of a run.

    The returned ``stream(energy_keV, n, *, seed, workers=None, sensor=None,
    entry=(x_um, y_um), progress=None, **options)`` has the call of
    :func:`dedkit.sim.transport.iter_simulate_electrons` and yields
    :class:`~dedkit.records.deposits.ElectronDeposits` of the ``n`` primaries in order,
    in batches of at most ``batch``: each a library track drawn at random (with
    replacement), rotated by a uniform angle about the beam axis, mirrored with
    probability 1/2 (``mirror``), moved to its entry point (:func:`placement_plan`,
    :func:`place_tracks`). ``entry`` may also be ``"random"`` or ``"centre-pixel"``
    (drawn as the transport draws them). ``workers`` is ignored.

    The checks run at the call: a beam energy more than 1e-3 keV from the library's, a
    sensor of another thickness or pitch, or transport options that differ from the
    library's (physics list, cuts, an oblique beam) are refused with one line.

    Parameters
    ----------
    library : TrackLibrary
    mirror : bool
        Mirror half of the placements.
    batch : int
        Most primaries per yielded batch.

    Returns
    -------
    callable

    Examples
    --------
    >>> lib = TrackLibrary.from_arrays(_toy_library_arrays())
    >>> stream = library_stream(lib)
    >>> parts = list(stream(200.0, 5, seed=1, entry=([10.0] * 5, [20.0] * 5)))
    >>> len(parts[0]), parts[0].entry_x_um.tolist()
    (5, [10.0, 10.0, 10.0, 10.0, 10.0])
    >>> stream(300.0, 5, seed=1, entry=(10.0, 20.0))
    Traceback (most recent call last):
    ...
    dedkit.errors.DedkitError: the track library holds 200 keV electrons, not 300 keV: ...
    """
    if not isinstance(library, TrackLibrary):
        raise DedkitError("library must be a TrackLibrary")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise DedkitError(f"batch must be a positive integer, not {batch!r}")
    batch = int(batch)

    def stream(
        energy_keV, n, *, seed, workers=None, sensor=None, entry="random", progress=None,
        **options,
    ) -> Iterator[ElectronDeposits]:  # fmt: skip
        from dedkit.sim.transport.simulate import _check_entry_points

        _check_energy(library, energy_keV)
        sensor = SensorGeometry() if sensor is None else sensor
        _check_sensor(library, sensor)
        _check_options(library, options)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise DedkitError(f"the number of electrons must be a positive integer, not {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DedkitError(f"seed must be a non-negative integer, not {seed!r}")
        n = int(n)
        index, angle, flip = placement_plan(len(library), n, int(seed), mirror=mirror)
        if isinstance(entry, str):
            x, y = _drawn_entries(entry, n, sensor, int(seed), options)
        else:
            x, y = _check_entry_points(entry, n, sensor)
        return _batches(library, index, angle, flip, x, y, sensor, int(seed), batch, progress)

    return stream


def _batches(library, index, angle, flip, x, y, sensor, seed, batch, progress):
    n = len(index)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        part = slice(start, stop)
        yield place_tracks(
            library, index[part], angle[part], flip[part], x[part], y[part],
            sensor=sensor, seed=seed,
        )  # fmt: skip
        if progress is not None:
            progress(stop, n)


def _drawn_entries(entry: str, n: int, sensor: SensorGeometry, seed: int, options: dict):
    from dedkit.sim.transport.settings import DEFAULT_EDGE_MARGIN_UM, _check_entry_name

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7AC5, 1]))
    if _check_entry_name(entry) == "random":
        margin = float(options.get("edge_margin_um", DEFAULT_EDGE_MARGIN_UM))
        mx = min(margin, sensor.width_um / 4)
        my = min(margin, sensor.height_um / 4)
        return rng.uniform(mx, sensor.width_um - mx, n), rng.uniform(my, sensor.height_um - my, n)
    p = sensor.pitch_um
    return (sensor.nx // 2 + rng.random(n)) * p, (sensor.ny // 2 + rng.random(n)) * p


def _check_energy(library: TrackLibrary, energy_keV) -> None:
    try:
        energy = float(energy_keV)
    except (TypeError, ValueError):
        raise DedkitError(f"energy must be a number of keV, not {energy_keV!r}") from None
    if not abs(energy - library.energy_keV) <= ENERGY_TOLERANCE_KEV:
        raise DedkitError(
            f"the track library holds {library.energy_keV:g} keV electrons, not {energy:g} "
            f"keV: make a library at {energy:g} keV"
        )


def _check_sensor(library: TrackLibrary, sensor) -> None:
    if not isinstance(sensor, SensorGeometry):
        raise DedkitError("sensor must be a SensorGeometry")
    lib = library.sensor
    if (sensor.thickness_um, sensor.pitch_um) != (lib.thickness_um, lib.pitch_um):
        raise DedkitError(
            f"the track library was made in a {lib.thickness_um:g} um sensor of "
            f"{lib.pitch_um:g} um pixels, not {sensor.thickness_um:g} um of "
            f"{sensor.pitch_um:g} um: make a library for this sensor"
        )


def _check_options(library: TrackLibrary, options: dict) -> None:
    made = library.deposits.transport
    for key, value in options.items():
        if key in _IGNORED_OPTIONS:
            continue
        if key in ("incidence_deg", "azimuth_deg"):
            if key == "incidence_deg" and value not in (0, 0.0):
                raise DedkitError(
                    "a track library is at normal incidence: it cannot make an oblique beam"
                )
            continue
        if key not in made:
            raise DedkitError(f"a track library stream takes no option {key!r}")
        if value != made[key]:
            raise DedkitError(
                f"the track library was made with {key}={made[key]!r}, not {value!r}: "
                "make a library with these settings"
            )
