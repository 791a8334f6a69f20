"""The jobs behind ``dedkit learn``: train, evaluate, scan-labels, and the model files
they write.

- :func:`train_model` (``learn train``): checks the outputs and the checkpoint folder,
  trains (:func:`dedkit.learn.train.fit_model`, which writes nothing) with the
  checkpoints kept in :class:`dedkit.io.checkpoints.CheckpointFolder`, then writes the
  model (:func:`dedkit.io.model_files.save_model`) and its loss curves, and removes the
  checkpoints.
- :func:`evaluate_model` (``learn evaluate``): compares the CNN with eta and the centroid
  (:func:`dedkit.learn.evaluate.compare_methods`), writes the residual figure and, with
  ``record``, the results on the model's card (:func:`record_metrics`).
- :func:`write_scan_training_set` (``learn scan-labels``): reads a cluster table
  (``dedkit hpd clusters --finder connected``) and the scan schedule (a CSV file of frame
  ranges, or a simulated run's truth file), labels the clusters with
  :func:`dedkit.learn.scan.scan_labels` and writes a training set
  (:mod:`dedkit.io.training`).

torch is imported only by the training and evaluation jobs (``learn scan-labels`` runs
without it).
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import (
    atomic_output,
    check_outputs,
    check_outside_package,
    remove_owned_folder,
)
from dedkit.io.checkpoints import (
    CHECKPOINT_ENTRIES,
    CheckpointFolder,
    checkpoint_folder,
    remove_incomplete_checkpoint,
)
from dedkit.io.figures import save_figure
from dedkit.io.model_files import model_paths, save_model, write_card
from dedkit.learn.scan import (
    ScanReport,
    ScanSchedule,
    match_truth,
    parse_scan_csv,
    scan_labels,
    simulated_scan_schedule,
)
from dedkit.records.tables import FEATURE_NAMES, ClusterTable

__all__ = [
    "LABEL_SOURCES",
    "copy_model",
    "evaluate_model",
    "loss_curve_paths",
    "read_scan_csv",
    "read_simulated_scan",
    "record_metrics",
    "train_model",
    "write_loss_curves",
    "write_scan_training_set",
]

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


# ----------------------------------------------------------------------------- model files


def copy_model(source, destination, *, force: bool = False) -> tuple[Path, Path]:
    """Copy a model under another name (the card's ``weights`` entry follows); the source
    is checked as :func:`dedkit.learn.store.load_model` checks it."""
    from dedkit.learn.store import load_model

    state, card = load_model(source)
    card = {k: v for k, v in card.items() if k not in ("format", "format_version", "weights",
                                                       "weights_sha256")}  # fmt: skip
    return save_model(destination, state, card, force=force)


def record_metrics(path, name: str, metrics: dict) -> Path:
    """Add measured ``metrics`` to a model card under ``metrics[name]`` (weights untouched).

    Refused for a card inside the installed dedkit package (the shipped model).
    """
    from dedkit.learn.store import read_card

    _, card_path = model_paths(path)
    check_outside_package(card_path)
    card = read_card(path)
    card.setdefault("metrics", {})[name] = metrics
    return write_card(card_path, card)


# ----------------------------------------------------------------------------- training


def loss_curve_paths(output) -> tuple[Path, Path]:
    """(``NAME.loss.csv``, ``NAME.loss.png``) of a model ``output``."""
    weights, _ = model_paths(output)
    return weights.with_name(weights.stem + ".loss.csv"), weights.with_name(
        weights.stem + ".loss.png"
    )


def write_loss_curves(history: list[dict], output) -> tuple[Path, Path | None]:
    """``NAME.loss.csv`` and, if matplotlib is installed, ``NAME.loss.png``
    (:func:`dedkit.learn.train.loss_figure`)."""
    from dedkit.learn.train import loss_figure

    csv_path, png_path = loss_curve_paths(output)
    with atomic_output(csv_path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    fig = loss_figure(history)
    if fig is None:
        return csv_path, None
    save_figure(fig, png_path)
    return csv_path, png_path


def train_model(
    dataset,
    output,
    config=None,
    *,
    resume: bool = False,
    force: bool = False,
    command: str | None = None,
    progress=None,
):
    """Train a network on a training set and save it as ``output`` (.npz + .json card).

    After every epoch a checkpoint is written (atomically) to a folder beside the
    output, ``.NAME.ckpt`` (:mod:`dedkit.io.checkpoints`); a run with ``resume=True``
    continues from the last finished epoch. A run that fails or is stopped keeps the
    folder only if it holds a complete checkpoint (to be resumed); a fresh run that fails
    before its first complete checkpoint leaves no folder. The folder is removed once the
    model is written. Loss curves: ``NAME.loss.csv`` and, with matplotlib,
    ``NAME.loss.png``.

    Parameters
    ----------
    dataset : path-like
        Training set of ``dedkit sim dataset`` (:mod:`dedkit.io.training`).
    output : path-like
        The model: ``M`` / ``M.npz`` / ``M.json``.
    config : dedkit.learn.train.TrainConfig
        Default: the shipped recipe.
    resume : bool
        Continue from the checkpoint of an interrupted run with the same settings.
    force : bool
        Overwrite an existing model, discard an existing checkpoint (without ``resume``).
    command : str, optional
        The command line, recorded on the card.
    progress : callable, optional
        ``progress(done, total, **info)`` after each batch (done and total in batches,
        info: epoch, loss).

    Returns
    -------
    dedkit.learn.train.TrainReport

    Examples
    --------
    A tiny training set of 300 selected clusters at 200 keV (``dedkit sim dataset``;
    here straight tracks stand in for Geant4, so the example needs no ``sim`` extra and
    the network learns no real physics), and the smallest network trained on it for one
    epoch:

    >>> from dedkit.jobs.learn import train_model
    >>> from dedkit.jobs.sim import build_training_set
    >>> from dedkit.learn.train import TrainConfig
    >>> from dedkit.sim.runs import straight_track_stream
    >>> def straight_tracks(energy_keV, n, **options):
    ...     return next(straight_track_stream(energy_keV, n, **options))
    >>> dataset = build_training_set("train.h5", energy_keV=200.0, n=300, seed=1,
    ...                              simulate=straight_tracks)
    >>> dataset.output, dataset.counts["clusters"]
    ('train.h5', 300)
    >>> report = train_model("train.h5", "tiny", TrainConfig(arch="c8", epochs=1, seed=0))
    >>> report.output, report.counts
    ('tiny.npz', {'epochs': 1, 'train': 210, 'test': 90})
    >>> report.details["card"]
    'tiny.json'

    The model localises the connected finder's clusters (see
    :func:`dedkit.jobs.hpd.find_clusters_in_run`), here of the sample MÖNCH run:

    >>> from dedkit.jobs.demo import write_samples
    >>> from dedkit.jobs.hpd import compute_pedestal, find_clusters_in_run, localize_clusters
    >>> _ = write_samples("sample")
    >>> _ = compute_pedestal("sample/run_dark_master_0.json", "PED.h5")
    >>> _ = find_clusters_in_run(
    ...     "sample/run_master_0.json", "PED.h5", "clusters.h5",
    ...     finder="connected", gain="sample/run_gain.npy",
    ... )
    >>> events = localize_clusters("clusters.h5", "events.h5", method="cnn", model="tiny")
    >>> events.counts  # doctest: +NORMALIZE_WHITESPACE
    {'clusters': 206, 'selected': 189, 'rejected': 17, 'events': 189, 'non_finite': 0}
    """
    folder = checkpoint_folder(output)
    fresh = not resume and (force or not (folder.exists() or folder.is_symlink()))
    try:
        return _train_model(dataset, output, config, resume=resume, force=force,
                            command=command, progress=progress)  # fmt: skip
    except BaseException:
        # a fresh run that stopped before its first complete checkpoint leaves no
        # folder; one with a complete checkpoint keeps it for --resume
        if fresh:
            remove_incomplete_checkpoint(folder)
        raise


def _train_model(dataset, output, config, *, resume, force, command, progress):
    from dedkit.learn.train import TrainConfig, TrainReport, fit_model

    started = time.perf_counter()
    config = config or TrainConfig()
    config.check()
    weights_path, card_path = model_paths(output)
    # every file the run writes, against every file it reads (the resumed checkpoint too),
    # none inside the installed package
    folder = checkpoint_folder(output)
    check_outputs(
        [weights_path, card_path, *loss_curve_paths(output)],
        [dataset, folder if resume else None],
        force,
    )
    if folder.exists() and not resume:
        if not force:
            raise DedkitError(
                "an unfinished training run's checkpoint is in the way; use --resume to "
                "continue it or --force to start afresh",
                path=folder,
            )
        remove_owned_folder(folder, CHECKPOINT_ENTRIES)
    if resume and not folder.exists():
        raise DedkitError("nothing to resume: no checkpoint beside the output", path=folder)
    trained = fit_model(dataset, config, CheckpointFolder(folder), resume=resume,
                        command=command, progress=progress)  # fmt: skip
    save_model(output, trained.state, trained.card, force=force or resume)
    csv_path, png_path = write_loss_curves(trained.history, output)
    shutil.rmtree(folder, ignore_errors=True)
    return TrainReport(
        "train",
        [str(dataset)],
        str(weights_path),
        time.perf_counter() - started,
        {"epochs": config.epochs, "train": trained.n_train, "test": trained.n_test},
        {
            "card": str(card_path),
            "loss_csv": str(csv_path),
            "loss_png": None if png_path is None else str(png_path),
            "metrics": trained.card["metrics"],
            "resumed_from_epoch": trained.resumed_from_epoch,
            "device": trained.device,
        },
    )


# ----------------------------------------------------------------------------- evaluation


def evaluate_model(
    dataset,
    model=None,
    *,
    limit: int | None = None,
    eta_reference=None,
    figure=None,
    force: bool = False,
    batch_size: int = 4096,
    check_energy: bool = True,
    record: bool = False,
):
    """Compare CNN, eta and centroid on a held-out set
    (:func:`dedkit.learn.evaluate.compare_methods`); write the figure and record the
    results when asked.

    Parameters
    ----------
    dataset : path-like
        A training set (``dedkit sim dataset``) not used for training.
    model : path-like, optional
        Default: the shipped model.
    limit : int, optional
        Evaluate only the first ``limit`` clusters.
    eta_reference : path-like, optional
        Training set whose clusters build the eta map (default: ``dataset``).
    figure : path-like, optional
        Residual histograms (needs matplotlib): .png, .pdf or .svg, the format from
        the suffix.
    force : bool
        Replace an existing figure.
    batch_size : int
        Clusters per batch through the network.
    check_energy : bool
        Refuse a set whose energy or sensor differs from the model card.
    record : bool
        Add the results (and the set's SHA-256) to the model card, under
        ``metrics['held_out:<file name>']``. Needs ``model``: the shipped model, inside
        the installed package, is never changed (copy it and record on the copy).

    Returns
    -------
    dedkit.learn.evaluate.EvaluationReport
    """
    from dedkit.learn.data import load_training_arrays
    from dedkit.learn.evaluate import compare_methods, residual_figure
    from dedkit.learn.localizer import CnnLocalizer
    from dedkit.learn.store import default_model_path

    started = time.perf_counter()
    if record and model is None:
        # the shipped model lives in the installed package, which dedkit never writes
        weights, card = model_paths(default_model_path())
        raise DedkitError(
            "--record writes the results on the model's card, and the shipped model is "
            f"never changed: copy it first (cp {weights} {card} .) and give the copy "
            "with --model"
        )
    model_path = default_model_path() if model is None else Path(model)
    # the figure against everything read (the set, the model's two files, the eta set),
    # and never inside the installed package
    check_outputs([], [dataset, *model_paths(model_path), eta_reference], force, figures=[figure])
    data = load_training_arrays(dataset, limit)
    if record:
        # --record rewrites an input, which check_outputs never sees: refused here, early
        check_outside_package(model_paths(model_path)[1])
    localizer = CnnLocalizer(model_path, batch_size=batch_size)
    report = compare_methods(data, localizer, dataset=dataset, model=model_path,
                             eta_reference=eta_reference, check_energy=check_energy)  # fmt: skip
    if figure is not None:
        fig = residual_figure(report, localizer.card)
        if fig is None:
            report.figure_note = "matplotlib is not installed: no figure was written"
        else:
            report.figure = str(save_figure(fig, figure))
    report.seconds = time.perf_counter() - started
    if record:
        from dedkit.learn.data import file_sha256

        measured = report.to_dict()
        for key in ("figure", "seconds", "model"):
            measured.pop(key, None)
        measured["dataset_sha256"] = file_sha256(dataset)
        measured["dataset"] = Path(dataset).name
        measured["limit"] = limit
        record_metrics(model_path, f"held_out:{Path(dataset).name}", measured)
    return report
