"""End-to-end MÖNCH simulation: Geant4 deposits -> charge -> frames, runs and training sets.

Two products, both built on :func:`dedkit.sim.transport.simulate_electrons` (Geant4),
:mod:`dedkit.sim.charge` and :mod:`dedkit.sim.response`:

- **Raw runs** (:func:`iter_run_chunks`): full 400 x 400 frames holding the electrons of a
  beam pattern at a flux (Poisson per frame), digitised through per-pixel pedestal and
  gain maps into 14-bit ADC values, with a truth table of every electron, plus dark
  frames for the pedestal. Written by :mod:`dedkit.jobs.sim` as slsDetector files that
  the ``dedkit hpd`` pipeline reads as it reads measured runs.
- **Training samples** (:func:`training_clusters`): one electron per small frame (a
  "stamp" of the sensor around its entry point, large enough that no track reaches its
  border: half-width ``1.1 R_CSDA + 5 sigma`` of the widest cloud), noise added, the
  frames digitised and calibrated back (so ADC rounding and saturation are in the data),
  clusters found by the paper's finder
  (:func:`dedkit.hpd.finder_connected.find_connected_clusters_batch`, 5 sigma, 15 x 15
  crops, pixels outside the cluster zeroed) and selected by energy
  (:func:`dedkit.hpd.select.select_single_electrons`, 20-205 keV at 200 keV). The stamp is
  equivalent to the full frame for an isolated electron (the crop's pixels outside the
  cluster are zeroed either way) and costs under a thousand pixels of noise instead of
  160,000. Entry points are uniform over a block of pixels at the sensor centre, so their
  position within a pixel is uniform (as the paper's simulation).

**Truth relative to the crop.** A crop of side ``crop`` (15) is centred on the pixel
``(x, y)`` of the cluster table (the pixel holding the charge centroid); its pixel
``[i, j]`` is frame pixel ``(y - crop // 2 + i, x - crop // 2 + j)``. Positions relative to
the crop are in pixels with the crop's pixel ``[i, j]`` covering ``j <= x < j + 1``,
``i <= y < i + 1``: ``entry_x = entry_x_frame - (x - crop // 2)``, the same for y, so the
centre pixel spans [7, 8) and a centroid at the centre of the crop is 7.5.

**A primary with several selected clusters** (a track that breaks below threshold and
leaves two pieces of more than 20 keV, rare) contributes the one with the most charge;
``n_selected`` records how many there were.

Randomness: every chunk of work draws from its own stream
``SeedSequence([seed, stream, chunk])``, and Geant4 gets a seed from the same sequence, so
results depend only on the seed and the chunking (not on the number of Geant4 workers,
which :mod:`dedkit.sim.transport` guarantees), and any chunk can be recomputed alone (the
training set's resumption relies on it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from dedkit.errors import DedkitError
from dedkit.hpd.finder_connected import find_connected_clusters_batch
from dedkit.hpd.select import SelectionReport, select_single_electrons
from dedkit.records.tables import ClusterTable, EventTable
from dedkit.sim.beam import BeamPattern, check_flux, sample_arrivals
from dedkit.sim.charge import (
    ChargeModel,
    cloud_sigma_um,
    csda_range_um,
    line_density_keV_per_um,
    transport_deposits,
)
from dedkit.sim.response import (
    CalibrationMaps,
    DetectorResponse,
    adc_range_keV,
    add_noise,
    dark_frames,
    digitize,
    integrate_clouds,
    make_calibration_maps,
)

__all__ = [
    "CROP",
    "NSIGMA",
    "RunChunk",
    "SimulatedDetector",
    "TrainingBatch",
    "chunk_rng",
    "chunk_seed",
    "detector_maps",
    "iter_run_chunks",
    "render_frames",
    "simulate_dark_frames",
    "stamp_half_width",
    "straight_track_stream",
    "training_clusters",
    "training_entry_points",
]

#: The paper's clustering: 5 sigma threshold, 15 x 15 crops
NSIGMA = 5.0
CROP = 15
#: Energy range of beams the simulation accepts (the issue: 20-300 keV)
ENERGY_RANGE_KEV = (20.0, 300.0)

# independent random streams of one seed
_STREAM_MAPS = 1
_STREAM_DARK = 2
_STREAM_RUN = 3
_STREAM_TRAINING = 4
_STREAM_VALIDATION = 5
_STREAM_RUN_RESPONSE = 7

#: pixels (per axis) of the block at the sensor centre over which training entries spread
TRAINING_ENTRY_SPAN_PX = 8

SimulateFn = Callable[..., object]


def chunk_rng(seed: int, stream: int, chunk: int) -> np.random.Generator:
    """The random generator of one chunk of one stream of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(chunk)]))


def chunk_seed(seed: int, stream: int, chunk: int) -> int:
    """A Geant4 seed (1 .. 2^31 - 1) for one chunk of one stream of ``seed``."""
    state = np.random.SeedSequence([int(seed), int(stream), int(chunk), 0x6EA4]).generate_state(1)
    return int(state[0] % (2**31 - 2)) + 1


def check_energy(energy_keV: float) -> float:
    """The beam energy as a float, refused outside 20-300 keV."""
    try:
        energy = float(energy_keV)
    except (TypeError, ValueError):
        raise DedkitError(f"energy must be a number of keV, got {energy_keV!r}") from None
    low, high = ENERGY_RANGE_KEV
    if not (math.isfinite(energy) and low <= energy <= high):
        raise DedkitError(f"beam energy must be {low:g} to {high:g} keV, got {energy_keV}")
    return energy


def check_sensor(sensor) -> None:
    """Refuse a sensor whose pitch exceeds its size (or with non-positive dimensions)."""
    pitch = float(sensor.pitch_um)
    thickness = float(sensor.thickness_um)
    if not (math.isfinite(pitch) and pitch > 0):
        raise DedkitError(f"pixel pitch must be a positive number of um, got {pitch}")
    if not (math.isfinite(thickness) and thickness > 0):
        raise DedkitError(f"sensor thickness must be a positive number of um, got {thickness}")
    if int(sensor.nx) < 1 or int(sensor.ny) < 1:
        raise DedkitError(f"the sensor needs at least one pixel, got {sensor.nx} x {sensor.ny}")


def _default_simulate() -> SimulateFn:
    from dedkit.sim.transport import simulate_electrons

    return simulate_electrons


# ----------------------------------------------------------------------------- frames


def render_frames(
    deposits,
    frame_of_primary: np.ndarray,
    n_frames: int,
    shape: tuple[int, int],
    rng: np.random.Generator,
    model: ChargeModel | None = None,
    *,
    origin_px: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Collected charge (keV) of frames holding the given primaries, without noise.

    Parameters
    ----------
    deposits : ElectronDeposits
    frame_of_primary : (n_primaries,) int
        Frame each primary lands in (outside ``0..n_frames - 1``: left out).
    n_frames : int
    shape : (rows, cols)
        Frame size in pixels.
    rng : numpy.random.Generator
        Fano fluctuations.
    model : ChargeModel, optional
    origin_px : ((n_primaries,), (n_primaries,)) int arrays, optional
        Sensor pixel (column, row) at each frame's pixel (0, 0), per primary; default 0
        (full-sensor frames).

    Returns
    -------
    (n_frames, rows, cols) ndarray of float32
    """
    model = ChargeModel() if model is None else model
    rows, cols = shape
    clouds = transport_deposits(deposits, rng, model)
    pitch = float(deposits.sensor.pitch_um)
    x = clouds.x_um.astype(np.float64) / pitch
    y = clouds.y_um.astype(np.float64) / pitch
    if origin_px is not None:
        x -= np.asarray(origin_px[0])[clouds.primary]
        y -= np.asarray(origin_px[1])[clouds.primary]
    frame = np.asarray(frame_of_primary, dtype=np.int64)[clouds.primary]
    return integrate_clouds(
        frame, x, y, clouds.sigma_um.astype(np.float64) / pitch, clouds.charge_keV,
        (n_frames, rows, cols),
    )  # fmt: skip


@dataclass
class SimulatedDetector:
    """The simulated detector: sensor, charge transport, electronics and pixel maps.

    Attributes
    ----------
    sensor : SensorGeometry
    model : ChargeModel
    response : DetectorResponse
    maps : CalibrationMaps
        True pedestal and gain of every pixel.
    """

    sensor: object
    model: ChargeModel
    response: DetectorResponse
    maps: CalibrationMaps

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.sensor.ny), int(self.sensor.nx)


def detector_maps(sensor, response: DetectorResponse, seed: int) -> CalibrationMaps:
    """The pixel maps of the detector of ``seed`` (the same for every run of that seed)."""
    return make_calibration_maps(
        (int(sensor.ny), int(sensor.nx)), response, chunk_rng(seed, _STREAM_MAPS, 0)
    )


def simulate_dark_frames(
    detector: SimulatedDetector, n_frames: int, seed: int, chunk: int = 0
) -> np.ndarray:
    """Dark frames (pedestal + noise, uint16) of the detector; chunk ``chunk`` of them."""
    return dark_frames(
        n_frames, detector.maps, detector.response, chunk_rng(seed, _STREAM_DARK, chunk)
    )


@dataclass
class RunChunk:
    """Frames of a simulated run and the truth about their electrons.

    Attributes
    ----------
    frames : (n, rows, cols) uint16
        ADC values.
    frame_numbers : (n,) int64
        Detector frame numbers (1 for the run's first frame, as the detector counts).
    truth : EventTable
        One row per electron: ``frame`` (detector frame number), ``x, y`` (entry point,
        pixels), ``energy`` (deposited keV), method 'truth'; extra columns
        'backscattered', 'transmitted' (bool) and 'primary' (index in the run).
    n_electrons : int
    """

    frames: np.ndarray
    frame_numbers: np.ndarray
    truth: EventTable
    n_electrons: int


def _truth_table(deposits, frame_numbers, first_primary: int) -> EventTable:
    pitch = float(deposits.sensor.pitch_um)
    n = len(deposits)
    return EventTable(
        frame=np.asarray(frame_numbers, dtype=np.int64),
        x=np.asarray(deposits.entry_x_um, dtype=np.float64) / pitch,
        y=np.asarray(deposits.entry_y_um, dtype=np.float64) / pitch,
        energy=np.asarray(deposits.deposit_keV, dtype=np.float32),
        method="truth",
        extra={
            "backscattered": np.asarray(deposits.backscattered, dtype=bool),
            "transmitted": np.asarray(deposits.transmitted, dtype=bool),
            "primary": np.arange(first_primary, first_primary + n, dtype=np.int64),
        },
    )


def _empty_truth() -> EventTable:
    return EventTable(
        frame=np.zeros(0, np.int64), x=np.zeros(0), y=np.zeros(0),
        energy=np.zeros(0, np.float32), method="truth",
        extra={"backscattered": np.zeros(0, bool), "transmitted": np.zeros(0, bool),
               "primary": np.zeros(0, np.int64)},
    )  # fmt: skip


def iter_run_chunks(
    detector: SimulatedDetector,
    energy_keV: float,
    n_frames: int,
    flux: float,
    pattern: BeamPattern,
    *,
    seed: int,
    workers: int | None = None,
    chunk_frames: int = 100,
    stream: SimulateFn | None = None,
    transport_options: dict | None = None,
) -> Iterator[RunChunk]:
    """Simulate a run chunk by chunk (bounded memory whatever its length).

    The arrivals of the whole run are drawn first (chunk k from its own random stream),
    then one Geant4 stream tracks them all in order, its workers running ahead while the
    frames of earlier chunks are made, so the Geant4 start-up is paid once per run.

    Parameters
    ----------
    detector : SimulatedDetector
    energy_keV : float
        Beam energy.
    n_frames : int
    flux : float
        Mean electrons per frame (Poisson).
    pattern : BeamPattern
    seed : int
    workers : int, optional
        Geant4 worker processes (default: one per core).
    chunk_frames : int
        Frames made at a time.
    stream : callable, optional
        ``stream(energy_keV, n, seed=, workers=, sensor=, entry=(x_um, y_um), **options)``
        yielding ElectronDeposits of consecutive primaries; default
        :func:`dedkit.sim.transport.iter_simulate_electrons`.
    transport_options : dict, optional
        More keyword arguments for ``stream`` (physics list, cuts, direction).

    Returns
    -------
    iterator of RunChunk
        The parameters are checked at the call; the simulation runs as chunks are asked
        for.
    """
    energy = check_energy(energy_keV)
    check_sensor(detector.sensor)
    if n_frames < 1:
        raise DedkitError(f"the number of frames must be at least 1, got {n_frames}")
    if chunk_frames < 1:
        raise DedkitError(f"chunk_frames must be at least 1, got {chunk_frames}")
    check_flux(pattern, flux, energy, detector.shape, adc_range_keV(detector.response))
    # the checks above run at the call, the simulation when the chunks are asked for
    return _run_chunks(
        detector, energy, n_frames, flux, pattern, seed, workers, chunk_frames,
        stream or _default_stream(), transport_options or {},
    )  # fmt: skip


def straight_track_stream(
    energy_keV: float, n: int, *, seed: int, workers=None, sensor=None, entry=None, **options
) -> Iterator:
    """A stand-in for Geant4 where no physics is claimed: straight tracks (sample files).

    Each electron enters at its entry point in a random direction within 60 degrees of
    the normal, is absorbed (no backscatter) and deposits its energy evenly in 2 um
    pieces along a straight track of half its CSDA range (Geant4's tracks curl up and
    reach about that deep). Fast and without the ``sim`` extra, for ``dedkit sample``'s
    MÖNCH run, whose clusters only need to look like electrons'; ``dedkit sim`` uses
    Geant4. Same call as :func:`dedkit.sim.transport.iter_simulate_electrons` (``workers``
    and ``options`` are ignored); yields one batch.
    """
    from dedkit.records.deposits import ElectronDeposits
    from dedkit.records.sensor import SensorGeometry

    sensor = sensor or SensorGeometry()
    rng = np.random.default_rng(seed)
    ex = np.asarray(entry[0], np.float64)
    ey = np.asarray(entry[1], np.float64)
    theta = np.arccos(rng.uniform(0.5, 1.0, n))
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    direction = np.column_stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]
    )
    length = min(0.5 * float(np.ravel(csda_range_um(energy_keV))[0]), float(sensor.thickness_um))
    pieces = max(int(math.ceil(length / 2.0)), 1)
    t = (np.arange(pieces) + 0.5) / pieces * length
    sx = ex[:, None] + direction[:, 0:1] * t
    sy = ey[:, None] + direction[:, 1:2] * t
    sz = direction[:, 2:3] * t
    deposit = np.full(n, float(energy_keV))
    yield ElectronDeposits(
        energy_keV=float(energy_keV),
        sensor=sensor,
        entry_x_um=ex,
        entry_y_um=ey,
        direction=direction,
        deposit_keV=deposit,
        backscattered=np.zeros(n, bool),
        transmitted=np.zeros(n, bool),
        offsets=np.arange(0, n * pieces + 1, pieces, dtype=np.int64),
        step_x_um=sx.ravel().astype(np.float32),
        step_y_um=sy.ravel().astype(np.float32),
        step_z_um=sz.ravel().astype(np.float32),
        step_edep_keV=np.full(n * pieces, energy_keV / pieces, np.float32),
        physics="straight tracks (no Geant4)",
        seed=int(seed),
        workers=1,
    )


def _default_stream() -> SimulateFn:
    from dedkit.sim.transport import iter_simulate_electrons

    return iter_simulate_electrons


class _PrimaryQueue:
    """Consecutive primaries taken from a stream of ElectronDeposits batches."""

    def __init__(self, batches):
        self._batches = batches
        self._held = []
        self._count = 0

    def take(self, n: int):
        while self._count < n:
            part = next(self._batches)
            self._held.append(part)
            self._count += len(part)
        joined = (
            self._held[0] if len(self._held) == 1 else type(self._held[0]).concatenate(self._held)
        )
        rest = joined.select(slice(n, None))
        self._held = [rest] if len(rest) else []
        self._count = len(rest)
        return joined.select(slice(0, n))


def _run_chunks(
    detector, energy, n_frames, flux, pattern, seed, workers, chunk_frames, stream,
    transport_options,
) -> Iterator[RunChunk]:  # fmt: skip
    pitch = float(detector.sensor.pitch_um)
    rows, cols = detector.shape
    plan = []
    for chunk, start in enumerate(range(0, n_frames, chunk_frames)):
        count = min(chunk_frames, n_frames - start)
        arrivals = sample_arrivals(
            pattern, count, flux, (rows, cols), chunk_rng(seed, _STREAM_RUN, chunk),
            first_frame=start,
        )  # fmt: skip
        plan.append((start, count, arrivals))
    total = sum(len(a) for _, _, a in plan)
    batches = iter(())
    if total:
        batches = stream(
            energy,
            total,
            seed=chunk_seed(seed, _STREAM_RUN, 0),
            workers=workers,
            sensor=detector.sensor,
            entry=(
                np.concatenate([a.x_px for _, _, a in plan]) * pitch,
                np.concatenate([a.y_px for _, _, a in plan]) * pitch,
            ),
            **transport_options,
        )
    queue = _PrimaryQueue(iter(batches))
    first_primary = 0
    try:
        for chunk, (start, count, arrivals) in enumerate(plan):
            rng = chunk_rng(seed, _STREAM_RUN_RESPONSE, chunk)
            numbers = np.arange(start + 1, start + count + 1, dtype=np.int64)
            charge = np.zeros((count, rows, cols), dtype=np.float32)
            truth = _empty_truth()
            if len(arrivals):
                deposits = queue.take(len(arrivals))
                charge = render_frames(
                    deposits, arrivals.frame, count, (rows, cols), rng, detector.model
                )
                truth = _truth_table(deposits, numbers[arrivals.frame], first_primary)
            if pattern.kind == "specimen":
                # where each electron came from on the specimen (the drift taken out): the
                # truth a motion-corrected image is measured against
                drift = pattern.drift_at(start + arrivals.frame)
                truth.extra["specimen_x"] = truth.x - drift[:, 0]
                truth.extra["specimen_y"] = truth.y - drift[:, 1]
            frames = digitize(charge, detector.maps, detector.response, rng)
            first_primary += len(arrivals)
            yield RunChunk(frames, numbers, truth, len(arrivals))
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


# ------------------------------------------------------------------------ training


def stamp_half_width(energy_keV: float, sensor, model: ChargeModel) -> int:
    """Half-width (pixels) of a training stamp: no charge of a track reaches its border.

    ``ceil((1.1 R_CSDA(E) + 5 sigma_max) / pitch) + 1``, with sigma_max the cloud of a
    50 keV deposit at the back of the sensor (the widest: deposits are at most a few keV
    per step, and the production cut keeps single steps well below 50 keV).
    """
    density = line_density_keV_per_um(energy_keV) if model.coulomb else 0.0
    widest = float(cloud_sigma_um(0.0, 50.0, float(sensor.thickness_um), model, density))
    reach = 1.1 * float(csda_range_um(energy_keV)) + 5.0 * widest
    return int(math.ceil(reach / float(sensor.pitch_um))) + 1


def training_entry_points(
    n: int, sensor, rng: np.random.Generator, span_px: int = TRAINING_ENTRY_SPAN_PX
) -> tuple[np.ndarray, np.ndarray]:
    """Entry points (um) uniform over a ``span_px`` square of pixels at the sensor centre."""
    span = min(int(span_px), int(sensor.nx), int(sensor.ny))
    pitch = float(sensor.pitch_um)
    x0 = (int(sensor.nx) - span) // 2
    y0 = (int(sensor.ny) - span) // 2
    x = (x0 + rng.uniform(0.0, span, n)) * pitch
    y = (y0 + rng.uniform(0.0, span, n)) * pitch
    return x, y


@dataclass
class TrainingBatch:
    """Selected single-electron clusters with their truth (one row per kept primary).

    Attributes
    ----------
    image : (m, crop, crop) float32
        The cluster in keV, pixels outside the cluster zeroed.
    features : (m, 7) float32
        :data:`dedkit.records.tables.FEATURE_NAMES`.
    entry_x, entry_y : (m,) float64
        True entry point relative to the crop (module docstring), pixels.
    centroid_x, centroid_y : (m,) float64
        Charge centroid relative to the crop, pixels.
    backscattered : (m,) bool
    deposit_keV : (m,) float32
        Energy the primary deposited in the sensor (Geant4).
    primary : (m,) int64
        Index of the primary within its batch.
    n_selected : (m,) int16
        Selected clusters the primary produced (the kept one has the most charge).
    stats : dict
        Per batch: 'n_primaries', 'n_backscattered', 'n_full_absorption',
        'deposit_sum_keV', 'n_clusters', 'n_selected_clusters', 'selection' (the
        :class:`SelectionReport` as a dict).
    timing : dict
        Seconds spent in charge transport and pixel integration ('charge_s'), noise and
        ADC ('response_s'), cluster finding and selection ('clusters_s').
    """

    image: np.ndarray
    features: np.ndarray
    entry_x: np.ndarray
    entry_y: np.ndarray
    centroid_x: np.ndarray
    centroid_y: np.ndarray
    backscattered: np.ndarray
    deposit_keV: np.ndarray
    primary: np.ndarray
    n_selected: np.ndarray
    stats: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)

    #: the per-row array columns, in storage order
    COLUMNS = (
        "image", "features", "entry_x", "entry_y", "centroid_x", "centroid_y",
        "backscattered", "deposit_keV", "primary", "n_selected",
    )  # fmt: skip

    def __len__(self) -> int:
        return len(self.primary)

    def __getitem__(self, index) -> TrainingBatch:
        return TrainingBatch(
            **{name: getattr(self, name)[index] for name in self.COLUMNS}, stats=dict(self.stats)
        )

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.COLUMNS}


def _quantise(frames: np.ndarray, response: DetectorResponse) -> None:
    # ADC round trip with the nominal pedestal and gain: rounding and saturation, in place
    gain = response.gain_adu_per_keV
    pedestal = response.pedestal_adu
    frames *= gain
    frames += pedestal
    np.rint(frames, out=frames)
    np.clip(frames, 0, response.adc_max, out=frames)
    frames -= pedestal
    frames /= gain


def training_clusters(
    deposits,
    rng: np.random.Generator,
    *,
    model: ChargeModel | None = None,
    response: DetectorResponse | None = None,
    nsigma: float = NSIGMA,
    crop: int = CROP,
    adc: bool = True,
    window_keV: tuple[float, float] | None = None,
    batch: int = 2000,
) -> TrainingBatch:
    """Single-electron clusters of primaries simulated one per frame (see the module).

    Parameters
    ----------
    deposits : ElectronDeposits
        The primaries (entry points anywhere on the sensor).
    rng : numpy.random.Generator
        Fano fluctuations and noise.
    model : ChargeModel, optional
    response : DetectorResponse, optional
        Noise, and the nominal pedestal/gain/ADC of the round trip.
    nsigma : float
        Cluster threshold in noise sigmas (5).
    crop : int
        Side of the cluster images (15).
    adc : bool
        Digitise and calibrate back (rounding, 14-bit saturation); False keeps keV.
    window_keV : (low, high), optional
        Selection window (default 0.1-1.025 x the beam energy: 20-205 keV at 200 keV).
    batch : int
        Primaries rendered at a time (bounds memory).

    Returns
    -------
    TrainingBatch
    """
    model = ChargeModel() if model is None else model
    response = DetectorResponse() if response is None else response
    energy = float(deposits.energy_keV)
    sensor = deposits.sensor
    pitch = float(sensor.pitch_um)
    half = stamp_half_width(energy, sensor, model)
    side = 2 * half + 1
    entry_x = np.asarray(deposits.entry_x_um, dtype=np.float64) / pitch
    entry_y = np.asarray(deposits.entry_y_um, dtype=np.float64) / pitch
    origin_x = np.floor(entry_x).astype(np.int64) - half
    origin_y = np.floor(entry_y).astype(np.int64) - half
    n = len(deposits)
    noise = response.noise_keV if response.noise_keV > 0 else 0.0
    pieces = []
    reports = []
    n_clusters = 0
    timing = {"charge_s": 0.0, "response_s": 0.0, "clusters_s": 0.0}
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        t0 = time.perf_counter()
        part = deposits.select(np.arange(start, stop))
        frames = render_frames(
            part, np.arange(stop - start), stop - start, (side, side), rng, model,
            origin_px=(origin_x[start:stop], origin_y[start:stop]),
        )  # fmt: skip
        t1 = time.perf_counter()
        add_noise(frames, noise, rng)
        if adc:
            _quantise(frames, response)
        t2 = time.perf_counter()
        table = find_connected_clusters_batch(
            frames,
            noise,
            nsigma=nsigma,
            crop=crop,
            beam_energy_keV=energy,
            frame_numbers=np.arange(start, stop),
        )
        n_clusters += len(table)
        selected, report = select_single_electrons(
            table, beam_energy_keV=energy, window_keV=window_keV
        )
        reports.append(report)
        pieces.append(selected)
        timing["charge_s"] += t1 - t0
        timing["response_s"] += t2 - t1
        timing["clusters_s"] += time.perf_counter() - t2
    table = ClusterTable.concatenate(pieces) if pieces else ClusterTable.empty((crop, crop))
    kept, counts = _largest_per_primary(table)
    table = table[kept]
    primary = table.frame.astype(np.int64)
    crop_x = origin_x[primary] + table.x - crop // 2
    crop_y = origin_y[primary] + table.y - crop // 2
    backscattered = np.asarray(deposits.backscattered, dtype=bool)
    deposit = np.asarray(deposits.deposit_keV, dtype=np.float64)
    stats = {
        "n_primaries": n,
        "n_backscattered": int(backscattered.sum()),
        "n_full_absorption": int(np.sum(deposit >= 0.95 * energy)),
        "deposit_sum_keV": float(deposit.sum()),
        "n_clusters": n_clusters,
        "n_selected_clusters": int(sum(r.n_selected for r in reports)),
        "selection": _merge_reports(reports, energy, window_keV),
    }
    return TrainingBatch(
        image=np.ascontiguousarray(table.data, dtype=np.float32),
        features=np.ascontiguousarray(table.features, dtype=np.float32),
        entry_x=entry_x[primary] - crop_x,
        entry_y=entry_y[primary] - crop_y,
        centroid_x=origin_x[primary] + table.extra["centroid_x"] - crop_x,
        centroid_y=origin_y[primary] + table.extra["centroid_y"] - crop_y,
        backscattered=backscattered[primary],
        deposit_keV=deposit[primary].astype(np.float32),
        primary=primary,
        n_selected=counts.astype(np.int16),
        stats=stats,
        timing=timing,
    )


def _largest_per_primary(table: ClusterTable) -> tuple[np.ndarray, np.ndarray]:
    """Rows to keep (the most charge per frame, frames in order) and each frame's count."""
    if len(table) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    charge = table.features[:, 0].astype(np.float64)
    # sort by frame, then by decreasing charge: the first row of each frame wins
    order = np.lexsort((-charge, table.frame))
    frames = table.frame[order]
    first = np.concatenate([[True], frames[1:] != frames[:-1]])
    starts = np.flatnonzero(first)
    counts = np.diff(np.concatenate([starts, [len(frames)]]))
    return order[starts], counts


def _merge_reports(reports: list[SelectionReport], energy: float, window_keV) -> dict:
    if not reports:
        low, high = window_keV or (round(0.1 * energy, 9), round(1.025 * energy, 9))
        return {"n_input": 0, "n_selected": 0, "window_keV": [low, high]}
    out = reports[0].to_dict()
    for report in reports[1:]:
        for key, value in report.to_dict().items():
            if isinstance(value, int) and not isinstance(value, bool):
                out[key] += value
    return out
