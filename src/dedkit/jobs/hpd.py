"""Hybrid-pixel jobs: raw runs to pedestals, clusters, localised events and images.

Each job streams the run in chunks of frames, so memory stays bounded whatever the run
length. Finding clusters runs the chunks on Dask (a LocalCluster by default, or the
scheduler given by address) when a run has more than one chunk; with aare's finder the
running pedestal is handed from chunk to chunk, so the result is identical to a single
pass over the run, and it is identical whichever way the chunks run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.hpd.calibrate import apply_gain, clusters_to_kev
from dedkit.hpd.finder import ClusterFinder
from dedkit.hpd.finder_connected import find_connected_clusters_batch
from dedkit.hpd.image import (
    check_upsample,
    divide_by_response,
    subpixel_response,
    super_resolution_image,
)
from dedkit.hpd.localize import EtaInterpolator, get_localizer
from dedkit.hpd.pedestal import Pedestal
from dedkit.hpd.select import select_single_electrons
from dedkit.io.atomic import check_output_path
from dedkit.io.calibration import read_gain_map, read_pedestal_file, write_pedestal_file
from dedkit.io.clust import ClustWriter, read_clust
from dedkit.io.events import TableWriter, read_attrs, read_table, table_length
from dedkit.io.limits import check_detector_shape, check_image_size
from dedkit.io.sls import RawRun, run_files
from dedkit.io.stack import create_stack
from dedkit.jobs.streaming import ProgressCallback
from dedkit.parallel.chunks import Chunk, plan_chunks
from dedkit.parallel.scheduler import check_workers, dask_client, run_chained, run_independent
from dedkit.records.sensor import DEFAULT_PITCH_UM
from dedkit.records.tables import ClusterTable
from dedkit.report import JobReport

__all__ = [
    "FINDERS",
    "HpdReport",
    "describe_run",
    "compute_pedestal",
    "find_clusters_in_run",
    "localize_clusters",
    "make_image",
    "write_image",
]

#: ``--finder`` choices -> cluster size of aare's finder, or None for the paper's finder
FINDERS = {"aare3x3": (3, 3), "aare5x5": (5, 5), "connected": None}
#: the detector the pipeline is built for (Jungfrau frames carry gain bits and would need
#: per-gain pedestals)
DETECTOR = "Moench"
#: MÖNCH's pixel pitch, recorded with the clusters (and so the events) of its runs
MOENCH_PITCH_UM = DEFAULT_PITCH_UM  # the default simulated sensor is the MÖNCH 03
#: frames read at a time inside a chunk by the connected finder (keV frames are float32)
CONNECTED_BATCH = 100
TABLE_CHUNK_ROWS = 1_000_000


class HpdReport(JobReport):
    """What a hybrid-pixel job did (``str`` for people, :meth:`to_dict` for programs)."""


def describe_run(master) -> dict:
    """What ``dedkit raw info`` shows: the master's settings and any missing packets."""
    run = RawRun(master)
    m = run.master
    missing = run.scan_missing()
    return {
        "master": str(master),
        "detector_type": m.detector_type,
        "version": m.version,
        "shape": list(run.shape),
        "frames": run.n_frames,
        "ports": run.n_ports,
        "bit_depth": m.bit_depth,
        "frames_per_file": m.max_frames_per_file,
        "exposure_s": m.exposure_s,
        "period_s": m.period_s,
        "frame_padding": m.frame_padding,
        "incomplete_frames": int(missing.n_incomplete),
        "missing": missing.summary(),
        "truncated": run.truncated,
    }


def _frame_range(run: RawRun, start: int, stop: int | None) -> tuple[int, int]:
    stop = run.n_frames if stop is None else stop
    if not 0 <= start < stop <= run.n_frames:
        raise DedkitError(f"frames {start}:{stop} are outside the run's {run.n_frames} frames")
    return start, stop


def compute_pedestal(
    master,
    output,
    *,
    start: int = 0,
    stop: int | None = None,
    window: int | None = 1000,
    chunk_frames: int = 500,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> HpdReport:
    """Pedestal (mean) and noise (standard deviation) per pixel from dark frames, saved
    as ``PED.h5``; ``window`` frames of aare's moving window (at most the number of dark
    frames), or None for the plain mean.

    Examples
    --------
    The small MÖNCH run of ``dedkit sample`` comes with a dark run of 50 frames:

    >>> from dedkit.jobs.demo import write_samples
    >>> from dedkit.jobs.hpd import compute_pedestal
    >>> _ = write_samples("sample")
    >>> report = compute_pedestal("sample/run_dark_master_0.json", "PED.h5")
    >>> report.output, report.counts, report.details["window"]
    ('PED.h5', {'frames': 50}, 50)
    """
    started = time.perf_counter()
    # every file of the run is an input, not only its master (issue 13 item 2)
    inputs = run_files(master)
    check_output_path(output, inputs, force)
    run = RawRun(master, expect_detector=DETECTOR)
    start, stop = _frame_range(run, start, stop)
    if window is not None:
        # a window longer than the dark run would never fill, and aare's tracking then
        # pulls the pedestal of every pixel down
        window = min(window, stop - start)
    pedestal = Pedestal(run.shape, window)
    for i, raw in enumerate(run.iter_chunks(chunk_frames, start, stop)):
        pedestal.push_frames(raw.frames)
        if progress is not None:
            progress(min((i + 1) * chunk_frames, stop - start), stop - start)
    attrs = {
        "master": str(master),
        "frames": [start, stop],
        "window": window,
        "detector_type": run.master.detector_type,
        "shape": list(run.shape),
    }
    write_pedestal_file(output, pedestal.to_arrays(), attrs, force=force, inputs=inputs)
    noise = pedestal.std
    return HpdReport(
        "pedestal",
        [str(master)],
        str(output),
        time.perf_counter() - started,
        {"frames": stop - start},
        {
            "median_pedestal_adu": float(np.median(pedestal.mean)),
            "median_noise_adu": float(np.median(noise)),
            "window": window,
        },
    )


def load_pedestal(path, shape) -> Pedestal:
    """The pedestal state of a ``PED.h5`` file, checked against the detector shape."""
    # the shape is checked against the run's before the arrays are read (issue 13 item 8)
    arrays, _ = read_pedestal_file(path, shape)
    try:
        return Pedestal.from_arrays(arrays)
    except DedkitError as error:
        raise DedkitError(str(error), path=path) from None
    except (TypeError, ValueError) as error:
        raise DedkitError(f"damaged pedestal state: {one_line(error)}", path=path) from None


@dataclass
class FinderSettings:
    """Everything a chunk task needs besides its frames (sent once to each worker)."""

    master: str
    finder: str
    nsigma: float
    window: int
    beam_energy_keV: float
    crop: int = 15
    gain: np.ndarray | float | None = None  # keV per ADU: per-pixel map or a number
    pedestal_mean: np.ndarray | None = None
    noise_adu: np.ndarray | None = None


def aare_chunk(chunk: Chunk, pedestal_state: dict, settings: FinderSettings):
    """aare-compatible finding on one chunk, continuing from the previous chunk's
    pedestal; returns ((clusters, frame numbers), pedestal state after the chunk)."""
    run = RawRun(settings.master)
    raw = run.read(chunk.start, chunk.stop)
    finder = ClusterFinder(run.shape, FINDERS[settings.finder], settings.nsigma, settings.window)
    finder.pedestal = Pedestal.from_arrays(pedestal_state)
    # row bands on every core, identical to one sequential pass
    table = finder.find_clusters_parallel(raw.frames, raw.frame_numbers)
    if settings.gain is not None:
        table = clusters_to_kev(table, settings.gain)
    return (table, raw.frame_numbers), finder.pedestal.to_arrays()


def connected_chunk(chunk: Chunk, settings: FinderSettings):
    """The paper's finder on one chunk (fixed pedestal: chunks are independent);
    returns (clusters, frame numbers)."""
    run = RawRun(settings.master)
    noise_kev = apply_gain(settings.noise_adu, settings.gain)
    tables, numbers = [], []
    for raw in run.iter_chunks(CONNECTED_BATCH, chunk.start, chunk.stop):
        numbers.append(raw.frame_numbers)
        kev = apply_gain(raw.frames - settings.pedestal_mean, settings.gain)
        tables.append(
            find_connected_clusters_batch(
                kev,
                noise_kev,
                nsigma=settings.nsigma,
                crop=settings.crop,
                beam_energy_keV=settings.beam_energy_keV,
                frame_numbers=raw.frame_numbers,
            )
        )
    return ClusterTable.concatenate(tables), np.concatenate(numbers)


def _gain_file(gain):
    """The gain map's path when ``gain`` names a file (None for a number)."""
    if gain is None:
        return None
    try:
        float(gain)
    except (TypeError, ValueError):
        return gain
    return None


def _gain_array(gain, shape) -> np.ndarray | float | None:
    if gain is None:
        return None
    try:
        value = float(gain)
    except (TypeError, ValueError):
        return read_gain_map(gain, shape)
    if not np.isfinite(value) or value <= 0:
        raise DedkitError(f"gain must be a positive number of keV per ADU, got {gain}")
    return value


def find_clusters_in_run(
    master,
    pedestal,
    output,
    *,
    finder: str = "aare3x3",
    nsigma: float = 5.0,
    gain=None,
    beam_energy_keV: float = 200.0,
    start: int = 0,
    stop: int | None = None,
    chunk_frames: int = 1000,
    scheduler: str | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> HpdReport:
    """Find clusters in a raw run and write them (``.h5`` table or aare ``.clust``).

    Parameters
    ----------
    master : path-like
        Master file of the run.
    pedestal : path-like
        ``PED.h5`` from :func:`compute_pedestal` (dark frames).
    output : path-like
        ``.h5`` (any finder) or ``.clust`` (aare finders, ADU).
    finder : {'aare3x3', 'aare5x5', 'connected'}
        aare's local-maximum finder with pedestal tracking, or the paper's finder
        (pixels above ``nsigma`` x noise grouped by 8-connectivity, 15x15 crops in keV
        centred on the charge centroid, the 7 features); the latter needs ``gain``.
    gain : float, path-like or None
        keV per ADU: a number or a per-pixel map (.npy, .h5, .mrc, .tif). With an aare
        finder and an .h5 output, cluster values are converted to keV.
    chunk_frames : int
        Frames per chunk (a Dask task).
    scheduler : str, optional
        Dask scheduler address; default a LocalCluster of ``workers`` processes (one per
        core) when the run has more than one chunk, else in this process.
    workers : int, optional
        LocalCluster size, 0 to :data:`~dedkit.parallel.scheduler.MAX_WORKERS` (256);
        0 runs every chunk in this process.

    Returns
    -------
    HpdReport

    Examples
    --------
    The 20 frames of the sample MÖNCH run (200 keV electrons), with the pedestal of its
    dark run and its gain map in keV per ADU; the paper's finder writes keV crops with
    their features, what every localisation method (the CNN too) takes:

    >>> from dedkit.jobs.demo import write_samples
    >>> from dedkit.jobs.hpd import compute_pedestal, find_clusters_in_run
    >>> _ = write_samples("sample")
    >>> _ = compute_pedestal("sample/run_dark_master_0.json", "PED.h5")
    >>> report = find_clusters_in_run(
    ...     "sample/run_master_0.json", "PED.h5", "clusters.h5",
    ...     finder="connected", gain="sample/run_gain.npy",
    ... )
    >>> report.output, report.counts
    ('clusters.h5', {'frames': 20, 'clusters': 206})

    The table is read back with :func:`dedkit.io.read_table`:

    >>> from dedkit.io import read_table
    >>> clusters = read_table("clusters.h5")
    >>> len(clusters), clusters.units
    (206, 'keV')
    """
    started = time.perf_counter()
    workers = check_workers(workers)
    if finder not in FINDERS:
        raise DedkitError(f"unknown finder {finder!r}; use one of {', '.join(FINDERS)}")
    out_path = Path(output)
    suffix = out_path.suffix.lower()
    if suffix not in (".h5", ".hdf5", ".clust"):
        raise DedkitError("cluster output must be .h5 or .clust", path=out_path)
    if suffix == ".clust" and (finder == "connected" or gain is not None):
        raise DedkitError(
            "a .clust file holds aare's ADU clusters: use .h5 for keV clusters", path=out_path
        )
    # every file of the run is an input, not only its master (issue 13 item 2)
    inputs = [*run_files(master), pedestal, _gain_file(gain)]
    check_output_path(out_path, inputs, force)
    if not np.isfinite(nsigma) or nsigma <= 0:
        raise DedkitError(f"nsigma must be positive, got {nsigma}")
    run = RawRun(master, expect_detector=DETECTOR)
    start, stop = _frame_range(run, start, stop)
    state = load_pedestal(pedestal, run.shape)
    gain_map = _gain_array(gain, run.shape)
    if finder == "connected" and gain_map is None:
        raise DedkitError("the connected finder works in keV: give --gain (keV per ADU)")
    settings = FinderSettings(
        str(master),
        finder,
        float(nsigma),
        state.window or 1000,
        float(beam_energy_keV),
        gain=gain_map,
    )
    if finder == "connected":
        settings.pedestal_mean = state.mean.astype(np.float32)
        settings.noise_adu = state.std.astype(np.float32)
    chunks = plan_chunks(stop - start, chunk_frames, start)
    attrs = {
        "master": str(master),
        "pedestal": str(pedestal),
        "finder": finder,
        "nsigma": nsigma,
        "gain": None if gain is None else str(gain),
        "beam_energy_keV": beam_energy_keV,
        "frames": [start, stop],
        "detector_shape": list(run.shape),
        "detector_type": run.master.detector_type,
        # the pitch of the detector type (not "pitch_um": that names a simulated sensor,
        # which the cnn compares with its card)
        "detector_pitch_um": MOENCH_PITCH_UM,
        "chunk_frames": chunk_frames,
    }
    writer = (
        ClustWriter(out_path, force=force, inputs=inputs)
        if suffix == ".clust"
        else TableWriter(out_path, "clusters", attrs=attrs, force=force, inputs=inputs)
    )
    counts = {"frames": stop - start, "clusters": 0}

    def consume(chunk, result):
        table, frame_numbers = result
        counts["clusters"] += len(table)
        if suffix == ".clust":
            # every processed frame gets a record, even without clusters, as aare writes
            writer.append(table, frames=frame_numbers)
        else:
            writer.append(table)
        if progress is not None:
            progress(chunk.stop - start, stop - start)

    # the writer closes on success, and on any error (a full disk too) removes its file
    with writer:
        use_dask = scheduler is not None or (workers != 0 and len(chunks) > 1)
        if use_dask:
            with dask_client(scheduler, n_workers=workers or None) as client:
                _run_chunks(client, chunks, settings, state, consume)
        else:
            _run_chunks(None, chunks, settings, state, consume)
    return HpdReport(
        "clusters",
        [str(master), str(pedestal)],
        str(out_path),
        time.perf_counter() - started,
        counts,
        {"finder": finder, "chunks": len(chunks), "dask": use_dask},
    )


def _run_chunks(client, chunks, settings: FinderSettings, state: Pedestal, consume) -> None:
    if settings.finder == "connected":
        if client is None:
            for chunk in chunks:
                consume(chunk, connected_chunk(chunk, settings))
        else:
            run_independent(client, chunks, connected_chunk, settings, consume=consume)
        return
    arrays = state.to_arrays()
    if client is None:
        for chunk in chunks:
            table, arrays = aare_chunk(chunk, arrays, settings)
            consume(chunk, table)
    else:
        run_chained(client, chunks, aare_chunk, arrays, settings, consume=consume)


def _read_clusters(path, cluster_size) -> tuple[ClusterTable, dict]:
    """A clusters file's table and attributes; a ``detector_shape`` it records is checked
    (bounded, two integers, holding every cluster) before it is copied to the events
    (issue 13 item 8)."""
    path = Path(path)
    if path.suffix.lower() == ".clust":
        return read_clust(path, cluster_size), {}
    table = read_table(path, kind="clusters", needed_by="hpd localize")
    attrs = read_attrs(path)
    if attrs.get("detector_shape") is not None:
        rows, cols = check_detector_shape(attrs["detector_shape"], path=path, what="detector_shape")
        attrs["detector_shape"] = [rows, cols]
        if len(table) and (
            min(table.x.min(), table.y.min()) < 0 or table.x.max() >= cols or table.y.max() >= rows
        ):
            raise DedkitError(
                f"clusters lie at columns {table.x.min()}..{table.x.max()}, rows "
                f"{table.y.min()}..{table.y.max()}, outside the file's detector_shape "
                f"({cols} x {rows})",
                path=path,
            )
    return table, attrs


#: what the cnn needs, said before anything else is asked for (issue 13 item 13)
CNN_NEEDS = (
    "the cnn method needs the connected finder's clusters (keV crops with the 7 features): "
    "run 'dedkit hpd clusters --finder connected --gain ...'"
)


def localize_clusters(
    clusters,
    output,
    *,
    method: str = "centroid",
    flat_field=None,
    beam_energy_keV: float | None = None,
    energy_window_keV=None,
    select: bool = True,
    gain=None,
    cluster_size=(3, 3),
    model=None,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> HpdReport:
    """Localise clusters (``.h5`` or ``.clust``) and write an events table (``.h5``).

    ``method='cnn'`` uses the network ``model`` (default the shipped one, see
    :mod:`dedkit.learn`) and refuses clusters whose beam energy (``beam_energy_keV``, else
    the clusters file's) or sensor (when the file records it) differs from its card; it
    needs the connected finder's clusters, which is checked first.

    Clusters are first selected as single electrons by energy (default window 20-205 keV
    at 200 keV, scaled by the beam energy), counting every rejection. The selection is
    never skipped in silence: clusters in ADU (an aare ``.clust`` file, or an aare
    finder's table without a gain) are converted to keV with ``gain`` (keV per ADU: a
    number or a per-pixel map), and without a gain they are refused unless ``select`` is
    False. The beam energy is ``beam_energy_keV``, else the clusters file's, else 200 keV
    (a ``.clust`` file records none). η methods linearise with the η distribution of
    ``flat_field`` (a cluster file from a flat illumination), by default of the clusters
    themselves.

    Examples
    --------
    Clusters of the sample MÖNCH run (as in :func:`find_clusters_in_run`), selected as
    single electrons by energy and localised by η interpolation:

    >>> from dedkit.jobs.demo import write_samples
    >>> from dedkit.jobs.hpd import compute_pedestal, find_clusters_in_run, localize_clusters
    >>> _ = write_samples("sample")
    >>> _ = compute_pedestal("sample/run_dark_master_0.json", "PED.h5")
    >>> _ = find_clusters_in_run(
    ...     "sample/run_master_0.json", "PED.h5", "clusters.h5",
    ...     finder="connected", gain="sample/run_gain.npy",
    ... )
    >>> report = localize_clusters("clusters.h5", "events.h5", method="eta2")
    >>> report.output, report.counts  # doctest: +NORMALIZE_WHITESPACE
    ('events.h5', {'clusters': 206, 'selected': 189, 'rejected': 17, 'events': 189,
    'non_finite': 0})
    >>> report.warnings
    []

    ``method="cnn"`` uses a trained network instead (see
    :func:`dedkit.jobs.learn.train_model`).
    """
    started = time.perf_counter()
    out_path = Path(output)
    if out_path.suffix.lower() not in (".h5", ".hdf5"):
        raise DedkitError("events output must be .h5", path=out_path)
    inputs = [clusters, flat_field, _path_or_none(gain), *_model_files(model)]
    check_output_path(out_path, inputs, force)
    table, attrs = _read_clusters(clusters, cluster_size)
    if method == "cnn" and (table.units != "keV" or table.features is None):
        raise DedkitError(CNN_NEEDS, path=clusters)
    if gain is not None:
        table = _clusters_in_kev(table, gain, attrs, clusters)
    beam = beam_energy_keV if beam_energy_keV is not None else attrs.get("beam_energy_keV", 200.0)
    try:
        beam = float(beam)
    except (TypeError, ValueError):
        raise DedkitError(f"beam energy {beam!r} is not a number of keV", path=clusters) from None
    report_counts = {"clusters": len(table)}
    selection = None
    if select:
        if table.units != "keV":
            raise DedkitError(
                f"the clusters are in {table.units} and the selection of single electrons "
                "works in keV: give --gain (keV per ADU) to select by energy (window from "
                "--beam-energy, default 200 keV), or --no-select to keep every cluster",
                path=clusters,
            )
        table, selection = select_single_electrons(
            table, beam_energy_keV=beam, window_keV=energy_window_keV
        )
        report_counts.update(selected=len(table), rejected=selection.n_rejected)
    if method in ("eta2", "eta3"):
        reference = table if flat_field is None else _read_clusters(flat_field, cluster_size)[0]
        localizer = EtaInterpolator(kind=method)
        localizer.fit(reference)
    elif method == "cnn":
        localizer = _cnn_localizer(model, beam_energy_keV, attrs)
    else:
        localizer = get_localizer(method)
    events_attrs = {
        **attrs,
        "clusters": str(clusters),
        "method": method,
        "selection": selection.to_dict() if selection else None,
        "flat_field": None if flat_field is None else str(flat_field),
    }
    if gain is not None:
        events_attrs["gain"] = str(gain)
    non_finite = 0
    with TableWriter(out_path, "events", attrs=events_attrs, force=force, inputs=inputs) as writer:
        for first in range(0, max(len(table), 1), TABLE_CHUNK_ROWS):
            events = localizer.localize(table[first : first + TABLE_CHUNK_ROWS])
            # whatever the method, a position that is not finite (NaN pixels, a network
            # that overflows) is no event: counted, left out, reported (issue 13 item 12)
            finite = np.isfinite(events.x) & np.isfinite(events.y)
            if not finite.all():
                non_finite += int((~finite).sum())
                events = events[finite]
            writer.append(events)
            if progress is not None:
                progress(min(first + TABLE_CHUNK_ROWS, len(table)), len(table))
    report_counts["events"] = len(table) - non_finite
    report_counts["non_finite"] = non_finite
    warnings = []
    if selection is not None and selection.n_input and not selection.n_selected:
        # an empty result is most often a wrong gain or beam energy (issue 13, QA replay)
        low, high = selection.window_keV
        warnings.append(
            f"{clusters}: none of the {selection.n_input} clusters lies in the single-electron "
            f"window {low:g}-{high:g} keV (beam {selection.beam_energy_keV:g} keV): check "
            "--gain (keV per ADU) and --beam-energy"
        )
    if non_finite:
        warnings.append(
            f"{clusters}: {non_finite} of {len(table)} clusters have no finite {method} "
            "position (NaN or infinite) and were left out"
        )
    return HpdReport(
        "localize",
        [str(clusters)],
        str(out_path),
        time.perf_counter() - started,
        report_counts,
        {"method": method, "selection": selection.to_dict() if selection else None},
        warnings,
    )


def _model_files(model) -> list:
    """The weights and card of a cnn model given by path (inputs of 'hpd localize')."""
    if model is None:
        return []
    from dedkit.io.model_files import model_paths

    return list(model_paths(model))


def _clusters_in_kev(table: ClusterTable, gain, attrs: dict, path) -> ClusterTable:
    # a per-pixel map must cover the detector: its shape is checked against the one the
    # clusters file records, else against every cluster position
    if table.units == "keV":
        raise DedkitError("the clusters are already in keV: leave out --gain", path=path)
    shape = attrs.get("detector_shape")
    shape = None if shape is None else check_detector_shape(shape, path=path)
    gain_map = _gain_array(gain, shape)
    if np.ndim(gain_map) and len(table):
        rows, cols = gain_map.shape
        if table.y.max() >= rows or table.x.max() >= cols:
            raise DedkitError(
                f"gain map is {cols} x {rows}, smaller than the detector the clusters come from",
                path=gain,
            )
    return clusters_to_kev(table, gain_map)


def _cnn_localizer(model, beam_energy_keV, attrs: dict):
    # the data's energy: given, else the clusters file's; its sensor when recorded
    import dedkit.learn.localizer  # noqa: F401  (registers 'cnn'; imports no torch)

    beam = beam_energy_keV if beam_energy_keV is not None else attrs.get("beam_energy_keV")
    if beam is None:
        raise DedkitError(
            "the clusters file does not record the beam energy; give --beam-energy for the cnn"
        )
    sensor = attrs.get("sensor") if isinstance(attrs.get("sensor"), dict) else {}
    sensor = {k: sensor.get(k, attrs.get(k)) for k in ("thickness_um", "pitch_um")}
    return get_localizer("cnn", model=model, beam_energy_keV=float(beam), sensor=sensor)


def _path_or_none(value):
    # a gain given as a number is no file
    return value if isinstance(value, str | os.PathLike) else None


def _pitch_um(attrs: dict) -> float | None:
    """The detector's pixel pitch recorded in a table's attributes (the simulator's
    ``sensor.pitch_um`` or ``pitch_um``, else ``detector_pitch_um`` that ``hpd clusters``
    records for the run's detector type), or None."""
    sensor = attrs.get("sensor") if isinstance(attrs.get("sensor"), dict) else {}
    pitch = sensor.get("pitch_um", attrs.get("pitch_um", attrs.get("detector_pitch_um")))
    try:
        pitch = float(pitch)
    except (TypeError, ValueError):
        return None
    # hybrid-pixel pitches are tens to hundreds of um; anything beyond 1 cm is no pitch
    return pitch if 0 < pitch <= 1e4 else None


def make_image(
    events,
    output,
    *,
    upsample: int = 4,
    flat_field: bool = True,
    shape=None,
    pitch_um: float | None = None,
    force: bool = False,
) -> HpdReport:
    """Super-resolution image of an events table (``upsample`` x finer grid, 1-8),
    flat-field normalised by the events' own sub-pixel response; MRC or TIFF.

    The detector shape (``shape``, else the file's ``detector_shape``) is bounded
    (:mod:`dedkit.io.limits`), so a small file cannot make a huge image. Events with a
    NaN or infinite position, and events outside the detector, are counted (``non_finite``
    and ``outside``), left out and reported in one warning each. The image
    pixel size is the detector's pitch over ``upsample`` when the events file records the
    pitch (dedkit's cluster finder records MÖNCH's 25 um) or ``pitch_um`` is given, else
    none is written (for MRC, its writer's 1 A convention, with a warning). Events from an
    aare ``.clust`` file record neither shape nor pitch: give ``shape`` (rows, columns)
    and ``pitch_um``.

    Examples
    --------
    The events of the sample MÖNCH run (as in :func:`localize_clusters`) on a grid 4
    times finer than MÖNCH's 400 x 400 pixels of 25 um:

    >>> from dedkit.jobs.demo import write_samples
    >>> from dedkit.jobs.hpd import (
    ...     compute_pedestal, find_clusters_in_run, localize_clusters, make_image,
    ... )
    >>> _ = write_samples("sample")
    >>> _ = compute_pedestal("sample/run_dark_master_0.json", "PED.h5")
    >>> _ = find_clusters_in_run(
    ...     "sample/run_master_0.json", "PED.h5", "clusters.h5",
    ...     finder="connected", gain="sample/run_gain.npy",
    ... )
    >>> _ = localize_clusters("clusters.h5", "events.h5", method="eta2")
    >>> report = make_image("events.h5", "image.mrc", upsample=4)
    >>> report.output, report.counts
    ('image.mrc', {'events': 189, 'non_finite': 0, 'outside': 0})
    >>> report.details["shape"], report.details["pixel_size_A"]
    ([1600, 1600], 62500.0)
    """
    started = time.perf_counter()
    check_output_path(output, [events], force)
    upsample = check_upsample(upsample)
    n = table_length(events, kind="events", needed_by="hpd image")
    attrs = read_attrs(events)
    if shape is None:
        shape = attrs.get("detector_shape")
        if shape is None:
            raise DedkitError(
                "the events file does not record the detector shape (events from an aare "
                ".clust file do not): give it with --detector-shape ROWS,COLS",
                path=events,
            )
    shape = check_detector_shape(shape, path=events, what="detector_shape")
    check_image_size(shape, upsample, path=events)
    image = None
    response_counts = None
    non_finite = outside = 0
    rows, cols = shape
    for first in range(0, max(n, 1), TABLE_CHUNK_ROWS):
        part = read_table(events, first, min(first + TABLE_CHUNK_ROWS, n), kind="events")
        finite = np.isfinite(part.x) & np.isfinite(part.y)
        if not finite.all():
            non_finite += int((~finite).sum())
            part = part[finite]
        # events beyond the detector (or a shape too small for them) are counted, never
        # dropped in silence (issue 13 items 8, 12)
        inside = (part.x >= 0) & (part.x < cols) & (part.y >= 0) & (part.y < rows)
        if not inside.all():
            outside += int((~inside).sum())
            part = part[inside]
        counts = super_resolution_image(part, shape, upsample)
        image = counts if image is None else image + counts
        if flat_field and len(part):
            part_counts = subpixel_response(part, upsample) * len(part) / upsample**2
            response_counts = (
                part_counts if response_counts is None else (response_counts + part_counts)
            )
    if flat_field and response_counts is not None:
        image = divide_by_response(image, response_counts / response_counts.mean())
    warnings = []
    if non_finite:
        warnings.append(f"{events}: {non_finite} of {n} events have a NaN or infinite position "
                        "and were left out")  # fmt: skip
    if outside:
        warnings.append(f"{events}: {outside} of {n} events lie outside the {cols} x {rows} "
                        "pixel detector and were left out")  # fmt: skip
    if pitch_um is not None and not (np.isfinite(pitch_um) and 0 < pitch_um <= 1e4):
        raise DedkitError(f"pixel pitch {pitch_um!r} um is not a number in (0, 10000]")
    pitch = _pitch_um(attrs) if pitch_um is None else float(pitch_um)
    pixel_size = None if pitch is None else pitch * 1e4 / upsample  # um -> Angstrom
    if pixel_size is None:
        warnings.append(f"{events}: the detector's pixel pitch is not recorded (give "
                        "--pitch-um); the image has no pixel size")  # fmt: skip
    write_image(output, image, pixel_size=pixel_size, force=force)
    return HpdReport(
        "image",
        [str(events)],
        str(output),
        time.perf_counter() - started,
        {"events": n - non_finite - outside, "non_finite": non_finite, "outside": outside},
        {
            "upsample": upsample,
            "flat_field": flat_field,
            "shape": list(image.shape),
            "pixel_size_A": pixel_size,
        },
        warnings,
    )


def write_image(path, image: np.ndarray, *, pixel_size=None, force: bool = False) -> None:
    """Write one image as a single-frame float32 stack (format from the suffix).

    Parameters
    ----------
    path : path-like
        Output file (.mrc, .tif, ...: see :func:`dedkit.io.stack.create_stack`); written
        under a temporary name and renamed when complete.
    image : (ny, nx) ndarray
        Row 0 is stored as the stack's first (bottom) row.
    pixel_size : float, optional
        Image pixel size in Angstrom (None: not known, none is written).
    force : bool
        Replace an existing file.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise DedkitError(f"an image must be 2-D, got shape {image.shape}")
    with create_stack(
        path, (1, *image.shape), np.float32, pixel_size=pixel_size, force=force
    ) as writer:
        writer.write(image)
