"""Simulation jobs behind ``dedkit sim frames`` and ``dedkit sim dataset``.

- :func:`write_simulated_run`: a folder holding a simulated MÖNCH run as the detector
  writes it (slsDetector raw files, JSON master), its dark run, the truth about every
  electron (HDF5 event table) and the gain map (keV per ADU) that ``dedkit hpd clusters
  --gain`` takes. Everything is written into a hidden folder beside the output and
  renamed into place when complete.
- :func:`build_training_set`: N selected single-electron clusters with their truth, in
  chunks that survive an interruption (:mod:`dedkit.io.training`).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import FolderOutput, atomic_output, check_free_space, check_outputs
from dedkit.io.calibration import write_gain_map
from dedkit.io.events import TableWriter
from dedkit.io.sls import write_raw_run
from dedkit.io.training import TrainingParts, TrainingSetWriter, parts_folder
from dedkit.jobs.streaming import ProgressCallback
from dedkit.records.sensor import DEFAULT_NX, DEFAULT_NY, SensorGeometry
from dedkit.report import JobReport
from dedkit.sim.beam import BeamPattern
from dedkit.sim.charge import ChargeModel
from dedkit.sim.response import DetectorResponse
from dedkit.sim.runs import (
    _STREAM_TRAINING,
    CROP,
    NSIGMA,
    SimulatedDetector,
    SimulateFn,
    _default_simulate,
    check_energy,
    check_sensor,
    chunk_rng,
    chunk_seed,
    detector_maps,
    iter_run_chunks,
    simulate_dark_frames,
    training_clusters,
    training_entry_points,
)

__all__ = [
    "SimReport",
    "beam_pattern",
    "build_training_set",
    "write_simulated_run",
]

#: dark frames are generated this many at a time
_DARK_CHUNK = 200
#: random stream of the scan points of a seed
_STREAM_SCAN = 6


class SimReport(JobReport):
    """What a simulation job did (:meth:`text` for people, :meth:`to_dict` for programs)."""

    def text(self) -> str:
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts.items())
        lines = [f"sim {self.command}: wrote {self.output} in {self.seconds:.1f} s ({counts})"]
        for line in self.details.get("next", []):
            lines.append(f"  {line}")
        return "\n".join(lines)


def _sensor_or_default(sensor):
    if sensor is None:
        sensor = SensorGeometry()
    check_sensor(sensor)
    return sensor


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DedkitError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- inputs


def beam_pattern(
    kind: str,
    *,
    shape: tuple[int, int] = (DEFAULT_NY, DEFAULT_NX),
    image=None,
    centre_px=None,
    sigma_px: float | None = None,
    scan_points: int = 100,
    dwell_frames: int = 10,
    seed: int = 1,
) -> BeamPattern:
    """A beam pattern from the command-line options.

    ``image`` is an MRC/TIFF/DM file (row 0 = the first row ``dedkit hpd image`` writes)
    or an array; a scan visits ``scan_points`` points drawn uniformly over the sensor
    (20 pixels from its edges) from ``seed``, ``dwell_frames`` frames each.
    """
    from dedkit.sim.beam import DEFAULT_SPOT_SIGMA_PX, random_scan_points

    sigma = DEFAULT_SPOT_SIGMA_PX if sigma_px is None else sigma_px
    if kind == "image":
        if image is None:
            raise DedkitError("the image pattern needs an intensity image (--image FILE)")
        if isinstance(image, str | Path):
            from dedkit.io.images import read_image

            image = read_image(image)
        return BeamPattern("image", image=np.asarray(image, dtype=np.float64))
    if image is not None:
        raise DedkitError(f"an intensity image is only used with the image pattern, not {kind}")
    if kind == "scan":
        points = random_scan_points(
            _positive_int(scan_points, "the number of scan points"), shape,
            chunk_rng(seed, _STREAM_SCAN, 0),
        )  # fmt: skip
        return BeamPattern("scan", points_px=points, sigma_px=sigma,
                           dwell_frames=_positive_int(dwell_frames, "the dwell"))  # fmt: skip
    if kind == "spot":
        return BeamPattern("spot", centre_px=centre_px, sigma_px=sigma)
    return BeamPattern(kind)


# ------------------------------------------------------------------------------ runs


#: kind of folder ``dedkit sim frames`` writes (see :mod:`dedkit.io.atomic`)
RUN_FOLDER_KIND = "simulated run"


def _scratch_frames(path: Path, shape) -> np.memmap:
    """A uint16 ``.npy`` memory map with all of its blocks allocated.

    A sparse map on a full disk fails with SIGBUS at the first store to an unallocated
    page; allocating every block first (``posix_fallocate``) makes a full disk one clean
    ENOSPC before anything is simulated.
    """
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=shape)
    with open(path, "r+b") as f:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    return np.lib.format.open_memmap(path, mode="r+")


def write_simulated_run(
    output,
    *,
    energy_keV: float,
    n_frames: int,
    flux: float,
    pattern: BeamPattern | None = None,
    dark_frames: int = 1000,
    seed: int = 1,
    workers: int | None = None,
    name: str = "sim",
    sensor=None,
    model: ChargeModel | None = None,
    response: DetectorResponse | None = None,
    transport_options: dict | None = None,
    chunk_frames: int = 100,
    force: bool = False,
    progress: ProgressCallback | None = None,
    stream: SimulateFn | None = None,
    inputs=(),
) -> SimReport:
    """Simulate a MÖNCH run and write it as the detector would, with its truth.

    Parameters
    ----------
    output : path-like
        Folder to create (an existing empty folder is used; a previous simulated run,
        written by dedkit and holding nothing else, is replaced with ``force``).
    energy_keV : float
        Beam energy (20-300 keV).
    n_frames : int
        Frames with beam.
    flux : float
        Mean electrons per frame (Poisson).
    pattern : BeamPattern, optional
        Default: flat illumination.
    dark_frames : int
        Frames without beam, written as the run ``NAME_dark`` (for the pedestal).
    seed : int
    workers : int, optional
        Geant4 worker processes (default one per core).
    name : str
        Run name (``NAME_master_0.json``).
    sensor, model, response, transport_options
        Sensor geometry, charge transport, electronics, Geant4 options.
    chunk_frames : int
        Frames simulated per Geant4 call.
    force : bool
    progress : callable(done, total), optional
        Frames written (dark and beam).
    stream : callable, optional
        Replaces :func:`dedkit.sim.transport.iter_simulate_electrons` (tests, and
        :func:`dedkit.sim.runs.straight_track_stream` for runs without Geant4).
    inputs : sequence of path-like
        Files the run is made from (the beam's intensity image), which the output folder
        may not hold.

    Returns
    -------
    SimReport

    Examples
    --------
    10 frames of 200 keV electrons, 5 per frame on average over the whole sensor, and 50
    dark frames. Here ``stream`` puts straight tracks in place of Geant4 (no ``sim``
    extra needed, and no physics claimed); leave it out to transport the electrons with
    Geant4, as ``dedkit sim frames`` does:

    >>> from dedkit.jobs.sim import write_simulated_run
    >>> from dedkit.sim.runs import straight_track_stream
    >>> report = write_simulated_run(
    ...     "run", energy_keV=200.0, n_frames=10, flux=5.0, dark_frames=50, seed=1,
    ...     stream=straight_track_stream,
    ... )
    >>> report.output, report.counts["frames"], report.counts["dark_frames"]
    ('run', 10, 50)
    >>> report.counts["electrons"]
    41
    >>> report.details["files"]  # doctest: +NORMALIZE_WHITESPACE
    ['sim_d0_f0_0.raw', 'sim_d1_f0_0.raw', 'sim_dark_d0_f0_0.raw', 'sim_dark_d1_f0_0.raw',
     'sim_dark_master_0.json', 'sim_gain.npy', 'sim_master_0.json', 'sim_truth.h5']

    The report names the run's files and says what to run next (:mod:`dedkit.jobs.hpd`
    does the same from Python):

    >>> report.details["master"], report.details["gain_keV_per_adu"]
    ('run/sim_master_0.json', 'run/sim_gain.npy')
    >>> report.details["next"][0]
    'dedkit hpd pedestal run/sim_dark_master_0.json -o PED.h5'
    """
    started = time.perf_counter()
    energy = check_energy(energy_keV)
    n_frames = _positive_int(n_frames, "the number of frames")
    dark_frames = _positive_int(dark_frames, "the number of dark frames")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise DedkitError(f"run name must be letters, digits, '_', '.' or '-', got {name!r}")
    sensor = _sensor_or_default(sensor)
    if (int(sensor.ny), int(sensor.nx)) != (400, 400):
        raise DedkitError(
            f"raw runs are written in MÖNCH's 400 x 400 format; the sensor is "
            f"{sensor.nx} x {sensor.ny} pixels"
        )
    pattern = pattern or BeamPattern("flat")
    model = model or ChargeModel()
    response = response or DetectorResponse()
    if response.adc_bits != 14:
        raise DedkitError("raw MÖNCH runs hold 14-bit values; use adc_bits=14")
    output = check_outputs([FolderOutput(output, RUN_FOLDER_KIND)], inputs, force)[0]
    detector = SimulatedDetector(sensor, model, response, detector_maps(sensor, response, seed))
    # build (and check) the chunk generator before anything is written
    chunks = iter_run_chunks(
        detector, energy, n_frames, flux, pattern, seed=seed, workers=workers,
        chunk_frames=chunk_frames, stream=stream,
        transport_options=transport_options,
    )  # fmt: skip
    from dedkit.sim.beam import check_flux
    from dedkit.sim.response import adc_range_keV

    warnings = check_flux(pattern, flux, energy, detector.shape, adc_range_keV(response))
    total = dark_frames + n_frames
    done = 0
    counts = {"frames": n_frames, "dark_frames": dark_frames, "electrons": 0,
              "backscattered": 0, "saturated_pixel_values": 0}  # fmt: skip
    rows, cols = detector.shape
    # peak use: both runs' raw files and the beam run's scratch map
    check_free_space(output, (dark_frames + 2 * n_frames) * rows * cols * 2)
    with atomic_output(output, kind=RUN_FOLDER_KIND) as tmp:
        tmp.mkdir()
        # scratch space: write_raw_run takes a run as one array, which for long runs
        # would not fit in memory; the memory map lives in the hidden folder only
        scratch = tmp / ".frames.scratch"
        dark = _scratch_frames(scratch, (dark_frames, rows, cols))
        for i, start in enumerate(range(0, dark_frames, _DARK_CHUNK)):
            stop = min(start + _DARK_CHUNK, dark_frames)
            dark[start:stop] = simulate_dark_frames(detector, stop - start, seed, chunk=i)
            done += stop - start
            if progress is not None:
                progress(done, total)
        write_raw_run(tmp, f"{name}_dark", dark)
        del dark
        scratch.unlink()
        frames = _scratch_frames(scratch, (n_frames, rows, cols))
        attrs = {
            "description": "every simulated electron: frame = detector frame number "
            "(1 = the run's first frame), x/y = entry point in pixels, energy = keV "
            "deposited in the sensor",
            "energy_keV": energy,
            "flux_electrons_per_frame": float(flux),
            "pattern": pattern.to_dict(),
            "seed": int(seed),
            "n_frames": n_frames,
            "dark_frames": dark_frames,
            "sensor": sensor.to_dict(),
            "charge_model": model.to_dict(),
            "response": response.to_dict(),
            "transport_options": dict(transport_options or {}),
        }
        with TableWriter(tmp / f"{name}_truth.h5", "events", group="truth", attrs=attrs) as truth:
            position = 0
            for chunk in chunks:
                count = len(chunk.frames)
                frames[position : position + count] = chunk.frames
                position += count
                truth.append(chunk.truth)
                counts["electrons"] += chunk.n_electrons
                counts["backscattered"] += int(chunk.truth.extra["backscattered"].sum())
                counts["saturated_pixel_values"] += int(
                    np.count_nonzero(chunk.frames >= response.adc_max)
                )
                done += count
                if progress is not None:
                    progress(done, total)
        master = write_raw_run(tmp, name, frames)
        del frames
        scratch.unlink()
        write_gain_map(tmp / f"{name}_gain.npy", detector.maps.gain_keV_per_adu)
        files = sorted(p.name for p in tmp.iterdir())
    base = output / name
    details = {
        "master": str(output / master.name),
        "dark_master": str(output / f"{name}_dark_master_0.json"),
        "truth": str(base) + "_truth.h5",
        "gain_keV_per_adu": str(base) + "_gain.npy",
        "files": files,
        "energy_keV": energy,
        "flux": float(flux),
        "pattern": pattern.to_dict(),
        "seed": int(seed),
        "next": [
            f"dedkit hpd pedestal {output / f'{name}_dark_master_0.json'} -o PED.h5",
            f"dedkit hpd clusters {output / master.name} -p PED.h5 --finder connected "
            f"--gain {base}_gain.npy --beam-energy {energy:g} -o clusters.h5",
        ],
    }
    return SimReport("frames", [], str(output), time.perf_counter() - started, counts, details,
                     warnings)  # fmt: skip


# -------------------------------------------------------------------------- datasets


def training_parameters(
    energy: float, n: int, seed: int, chunk_primaries: int, sensor, model, response,
    transport_options, adc: bool,
) -> dict:  # fmt: skip
    """Everything that determines a training set's samples (the resumption key)."""
    return {
        "energy_keV": energy,
        "n": n,
        "seed": int(seed),
        "chunk_primaries": chunk_primaries,
        "sensor": sensor.to_dict(),
        "charge_model": model.to_dict(),
        "response": response.to_dict(),
        "transport_options": json.loads(json.dumps(transport_options or {})),
        "nsigma": NSIGMA,
        "crop": CROP,
        "adc": bool(adc),
        "entry": "uniform over the 8 x 8 pixels at the sensor centre, normal incidence",
    }


def _chunk_columns(batch, chunk: int, chunk_primaries: int) -> dict:
    columns = batch.columns()
    columns["primary"] = columns["primary"] + chunk * chunk_primaries
    columns["chunk"] = np.full(len(batch), chunk, dtype=np.int32)
    return columns


def _add_stats(total: dict, part: dict) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add_stats(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
        else:
            total.setdefault(key, value)


#: bytes a training-set cluster takes (15 x 15 float32 crop, 7 features, positions, flags)
_TRAINING_BYTES_PER_CLUSTER = 15 * 15 * 4 + 7 * 4 + 128


def build_training_set(
    output,
    *,
    energy_keV: float,
    n: int,
    seed: int = 1,
    workers: int | None = None,
    chunk_primaries: int = 20000,
    sensor=None,
    model: ChargeModel | None = None,
    response: DetectorResponse | None = None,
    transport_options: dict | None = None,
    adc: bool = True,
    force: bool = False,
    progress: ProgressCallback | None = None,
    simulate: SimulateFn | None = None,
) -> SimReport:
    """Write a training set of ``n`` selected single-electron clusters (resumable).

    Chunk k simulates ``chunk_primaries`` primaries from its own random stream and Geant4
    seed, so it is the same whenever it is computed; finished chunks are kept beside the
    output, and a run interrupted for any reason continues where it stopped when started
    again with the same arguments. The set is the first ``n`` selected clusters of chunks
    0, 1, ... in order.

    Parameters
    ----------
    output : path-like
        ``OUT.h5``.
    energy_keV : float
    n : int
        Selected clusters wanted.
    seed : int
    workers : int, optional
        Geant4 worker processes (default one per core); not part of the result.
    chunk_primaries : int
        Primaries per chunk (a chunk is the unit of resumption); at most ``n``, so a small
        set does not simulate a whole default chunk.
    sensor, model, response, transport_options
    adc : bool
        Include the ADC round trip (rounding, saturation).
    force : bool
        Replace an existing output and discard unfinished parts.
    progress : callable(done, total), optional
        Clusters produced so far, out of ``n``; within a chunk, estimated from the
        primaries transported and the yield of the chunks before (never going back).
    simulate : callable, optional
        Replaces :func:`dedkit.sim.transport.simulate_electrons` (tests).

    Returns
    -------
    SimReport
    """
    started = time.perf_counter()
    energy = check_energy(energy_keV)
    n = _positive_int(n, "the number of clusters")
    # a chunk never exceeds the set: --n 1000 must not simulate a default chunk of 20,000
    # (issue 13 item 20); n is part of the resumption key, so this is deterministic
    chunk_primaries = min(_positive_int(chunk_primaries, "chunk_primaries"), n)
    sensor = _sensor_or_default(sensor)
    model = model or ChargeModel()
    response = response or DetectorResponse()
    output = check_outputs([output], force=force)[0]
    # the unfinished parts and the final set exist together at the end: an absurd --n
    # is refused at once for the disk it would need, not after hours of simulation
    check_free_space(output, 2 * n * _TRAINING_BYTES_PER_CLUSTER)
    parameters = training_parameters(
        energy, n, seed, chunk_primaries, sensor, model, response, transport_options, adc
    )
    simulate = simulate or _default_simulate()
    parts = TrainingParts(parts_folder(output), parameters, restart=force)
    finished = set(parts.completed())
    resumed = len(finished)
    bar = None if progress is None else _ClusterProgress(progress, n, chunk_primaries)
    lengths = []
    total = 0
    chunk = 0
    timing = {"transport_s": 0.0, "geant4_cpu_s": 0.0, "charge_s": 0.0, "response_s": 0.0,
              "clusters_s": 0.0}  # fmt: skip
    while total < n:
        if chunk in finished:
            rows = parts.chunk_length(chunk)
        else:
            rng = chunk_rng(seed, _STREAM_TRAINING, chunk)
            entry = training_entry_points(chunk_primaries, sensor, rng)
            t0 = time.perf_counter()
            within = {} if bar is None else {"progress": bar.within_chunk(total, chunk)}
            deposits = simulate(
                energy,
                chunk_primaries,
                seed=chunk_seed(seed, _STREAM_TRAINING, chunk),
                workers=workers,
                sensor=sensor,
                entry=entry,
                **within,
                **(transport_options or {}),
            )
            t1 = time.perf_counter()
            batch = training_clusters(deposits, rng, model=model, response=response, adc=adc)
            timing["transport_s"] += t1 - t0
            timing["geant4_cpu_s"] += float(getattr(deposits, "geant4_seconds", 0.0))
            del deposits
            for key, seconds in batch.timing.items():
                timing[key] += seconds
            parts.write_chunk(chunk, _chunk_columns(batch, chunk, chunk_primaries), batch.stats)
            rows = len(batch)
        lengths.append(rows)
        total += rows
        chunk += 1
        if bar is not None:
            bar.show(total)
        if total == 0 and chunk >= 10:
            raise DedkitError(
                f"no cluster passed the selection in {chunk * chunk_primaries} primaries"
            )

    stats: dict = {}
    with TrainingSetWriter(output, force=force) as writer:
        for index, rows in enumerate(lengths):
            columns, chunk_stats = parts.read_chunk(index)
            _add_stats(stats, chunk_stats)
            take = min(rows, n - writer.n_rows)
            writer.append({k: v[:take] for k, v in columns.items()})
        writer.set_attrs(
            {
                "parameters": parameters,
                "stats": stats,
                "feature_names": list(_feature_names()),
                "convention": (
                    "entry_x/entry_y and centroid_x/centroid_y are in pixels relative to "
                    "the crop: crop pixel [i, j] covers j <= x < j + 1, i <= y < i + 1 "
                    "(the centre pixel [7, 7] spans 7..8); the crop is centred on the "
                    "pixel holding the cluster's charge centroid"
                ),
            }
        )
    parts.remove()
    seconds = time.perf_counter() - started
    primaries = stats.get("n_primaries", 0)
    counts = {"clusters": n, "chunks": chunk, "resumed_chunks": resumed,
              "primaries": primaries}  # fmt: skip
    details = {
        "energy_keV": energy,
        "seed": int(seed),
        "clusters_produced": int(sum(lengths)),
        "selected_per_primary": (stats.get("n_selected_clusters", 0) / primaries)
        if primaries
        else math.nan,
        "stats": stats,
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }
    return SimReport("dataset", [], str(output), seconds, counts, details)


class _ClusterProgress:
    """Progress of a training set in selected clusters, also while a chunk is transported.

    Clusters are known only when a chunk ends; meanwhile the bar moves with the primaries
    transported times the clusters per primary of the chunks before (for the first chunk
    :data:`PRIOR_YIELD`), short of ``n``, and never goes back (issue 13 item 20: the bar
    stood at 0 for a whole chunk).
    """

    #: selected clusters per primary assumed before a chunk has ended (``sim validate``
    #: at 200 keV: 0.994 of the primaries leave a selected cluster)
    PRIOR_YIELD = 0.95

    def __init__(self, progress: ProgressCallback, n: int, chunk_primaries: int) -> None:
        self.progress, self.n, self.chunk_primaries = progress, n, chunk_primaries
        self.shown = 0

    def show(self, clusters: float) -> None:
        shown = max(self.shown, min(int(clusters), self.n))
        if shown != self.shown or clusters == 0 or shown == self.n:
            self.shown = shown
            self.progress(shown, self.n)

    def within_chunk(self, clusters: int, chunk: int):
        primaries = chunk * self.chunk_primaries
        rate = clusters / primaries if primaries and clusters else self.PRIOR_YIELD

        def update(done: int, total: int) -> None:
            # short of n: only the chunk's end says how many clusters it really gave
            self.show(min(clusters + rate * done * self.chunk_primaries / max(total, 1),
                          self.n - 1))  # fmt: skip

        return update


def _feature_names():
    from dedkit.records.tables import FEATURE_NAMES

    return FEATURE_NAMES
