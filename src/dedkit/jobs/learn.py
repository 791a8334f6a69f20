"""The job behind ``dedkit learn scan-labels``: a beam scan's clusters to a training set.

Reads a cluster table (``dedkit hpd clusters --finder connected``) and the scan schedule
(a CSV file of frame ranges, or a simulated run's truth file), labels the clusters with
:func:`dedkit.learn.scan.scan_labels` and writes a training set (:mod:`dedkit.io.training`).
"""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError
from dedkit.learn.scan import (
    ScanReport,
    ScanSchedule,
    match_truth,
    parse_scan_csv,
    scan_labels,
    simulated_scan_schedule,
)
from dedkit.records.tables import FEATURE_NAMES, ClusterTable

__all__ = ["LABEL_SOURCES", "read_scan_csv", "read_simulated_scan", "write_scan_training_set"]

#: What ``labels`` may be in :func:`write_scan_training_set`
LABEL_SOURCES = ("scan", "truth")


def read_scan_csv(path) -> ScanSchedule:
    """:func:`parse_scan_csv` of a file."""
    from dedkit.io.text import read_text_file

    return parse_scan_csv(read_text_file(path, "scan CSV"))


def read_simulated_scan(folder):
    """Schedule and truth of a run written by ``dedkit sim frames --pattern scan``.

    The run's truth file records the pattern (number of points, dwell), the seed and the
    number of frames; the points are drawn again from the seed exactly as the simulation
    drew them (:func:`dedkit.jobs.sim.beam_pattern`).

    Returns
    -------
    schedule : ScanSchedule
    truth : EventTable
        Every simulated electron (frame, entry x/y, ``extra['backscattered']``).
    attrs : dict
        The truth file's attributes (energy, sensor, ...).
    """
    from pathlib import Path

    from dedkit.io.events import read_attrs, read_table
    from dedkit.jobs.sim import beam_pattern

    folder = Path(folder)
    if not folder.is_dir():
        raise DedkitError("not a folder (give the folder dedkit sim frames wrote)", path=folder)
    found = sorted(folder.glob("*_truth.h5"))
    if len(found) != 1:
        raise DedkitError(
            f"expected one simulated run (NAME_truth.h5) in the folder, found {len(found)}",
            path=folder,
        )
    attrs = read_attrs(found[0], group="truth")
    pattern = attrs.get("pattern") or {}
    if pattern.get("kind") != "scan":
        raise DedkitError(
            f"the run was simulated with the {pattern.get('kind')!r} pattern, not a scan",
            path=found[0],
        )
    sensor = attrs.get("sensor") or {}
    shape = (int(sensor.get("ny", 400)), int(sensor.get("nx", 400)))
    beam = beam_pattern(
        "scan", shape=shape, scan_points=int(pattern["n_points"]),
        dwell_frames=int(pattern["dwell_frames"]), seed=int(attrs["seed"]),
    )  # fmt: skip
    schedule = simulated_scan_schedule(beam.points_px, beam.dwell_frames, int(attrs["n_frames"]))
    return schedule, read_table(found[0], group="truth"), attrs


def write_scan_training_set(
    clusters,
    output,
    *,
    scan_csv=None,
    sim_run=None,
    sigma_px: float | None = None,
    n_sigma: float = 5.0,
    min_clusters: int = 20,
    labels: str = "scan",
    force: bool = False,
) -> ScanReport:
    """Read a cluster table and a scan, label the clusters and write a training set.

    Parameters
    ----------
    clusters : path-like
        HDF5 cluster table of ``dedkit hpd clusters --finder connected``.
    output : path-like
        Training set to write (the layout of ``dedkit sim dataset``).
    scan_csv : path-like, optional
        ``first_frame,last_frame[,x_px,y_px]`` per point (a measured scan).
    sim_run : path-like, optional
        Folder of ``dedkit sim frames --pattern scan`` (schedule and truth from there).
    sigma_px, n_sigma, min_clusters
        See :func:`scan_labels`.
    labels : {'scan', 'truth'}
        Write the scan estimates as labels, or (a simulated run only, for comparison)
        the true entry points of the same clusters.
    force : bool
        Replace an existing output.

    Returns
    -------
    ScanReport
    """
    from dedkit.io.atomic import check_output_path
    from dedkit.io.events import read_attrs, read_table
    from dedkit.io.training import TrainingSetWriter

    check_output_path(output, inputs=[clusters, scan_csv, sim_run], force=force)
    if (scan_csv is None) == (sim_run is None):
        raise DedkitError("give the scan either as a CSV file or as a simulated run folder")
    if labels not in LABEL_SOURCES:
        raise DedkitError(f"labels must be one of {', '.join(LABEL_SOURCES)}, not {labels!r}")
    if labels == "truth" and sim_run is None:
        raise DedkitError("true labels are known only for a simulated run (--sim-run)")
    table = read_table(clusters)
    if not isinstance(table, ClusterTable):
        raise DedkitError("not a cluster table", path=clusters)
    attrs = read_attrs(clusters)
    beam = float(attrs.get("beam_energy_keV") or 200.0)
    sensor: dict = {}
    true_xy = back = None
    if sim_run is not None:
        schedule, truth, truth_attrs = read_simulated_scan(sim_run)
        sensor = truth_attrs.get("sensor") or {}
        missing = np.full(len(table), np.nan)
        centroid = np.stack(
            [table.extra.get("centroid_x", missing), table.extra.get("centroid_y", missing)], 1
        )
        truth_xy = np.stack([truth.x, truth.y], axis=1)
        match = match_truth(table.frame, centroid, truth.frame, truth_xy)
        true_xy = np.where((match >= 0)[:, None], truth_xy[np.clip(match, 0, None)], np.nan)
        flags = np.asarray(truth.extra.get("backscattered", np.zeros(len(truth), bool)))
        back = np.where(match >= 0, flags[np.clip(match, 0, None)], False)
    else:
        schedule = read_scan_csv(scan_csv)
    columns, report = scan_labels(
        table, schedule, sigma_px=sigma_px, n_sigma=n_sigma, min_clusters=min_clusters,
        beam_energy_keV=beam, true_entry_px=true_xy, true_backscattered=back,
    )  # fmt: skip
    if labels == "truth":
        known = np.isfinite(columns["true_entry_x"]) & np.isfinite(columns["true_entry_y"])
        columns = {name: column[known] for name, column in columns.items()}
        columns["entry_x"] = columns["true_entry_x"].copy()
        columns["entry_y"] = columns["true_entry_y"].copy()
    if len(columns["primary"]) == 0:
        raise DedkitError("no cluster passed the scan cuts; nothing to write")
    parameters = {
        "source": "beam scan",
        "labels": labels,
        "energy_keV": beam,
        "sensor": sensor,
        "clusters": str(clusters),
        "scan": str(scan_csv if scan_csv is not None else sim_run),
        "sigma_px": report.sigma_px,
        "sigma_source": report.sigma_source,
        "n_sigma": report.n_sigma,
        "min_clusters": report.min_clusters,
    }
    with TrainingSetWriter(output, force=force) as writer:
        writer.append(columns)
        writer.set_attrs(
            {
                "parameters": parameters,
                "stats": {
                    "n_selected_clusters": len(columns["primary"]),
                    "scan_report": report.to_dict(),
                },  # fmt: skip
                "feature_names": list(FEATURE_NAMES),
                "convention": (
                    "entry_x/entry_y (the label: the scan point's estimated impact, or the "
                    "true entry point with labels=truth), true_entry_x/true_entry_y and "
                    "centroid_x/centroid_y are in pixels relative to the crop: crop pixel "
                    "[i, j] covers j <= x < j + 1, i <= y < i + 1 (the centre pixel [7, 7] "
                    "spans 7..8); the crop is centred on the pixel holding the cluster's "
                    "charge centroid"
                ),
            }
        )
    report.output = str(writer.path)
    report.labels = labels
    return report
