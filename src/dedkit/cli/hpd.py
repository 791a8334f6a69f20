"""The hybrid-pixel detector commands: ``dedkit raw info`` (slsDetector raw files) and
``dedkit hpd ...`` (pedestal, clusters, localisation, images), registered by
:mod:`dedkit.cli.main`.

Each command turns its options into one call of a :mod:`dedkit.jobs.hpd` function and
prints the HpdReport it returns (warnings as ``dedkit hpd COMMAND: warning: ...``).
"""

from __future__ import annotations

import click

from dedkit.cli.options import (
    FORCE_FOLDER_HELP,
    choice_option,
    count_option,
    dask_workers_option,
    float_option,
    frame_chunk_option,
    job_options,
    json_option,
    optional_option,
    output_option,
    path_option,
    scheduler_option,
)
from dedkit.cli.output import emit_json
from dedkit.cli.params import FINITE_POSITIVE


def frame_range(text: str | None) -> tuple[int, int | None]:
    """'A:B' (either side may be empty) -> (start, stop)."""
    if not text:
        return 0, None
    try:
        a, b = text.split(":")
        return (int(a) if a else 0), (int(b) if b else None)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not START:STOP") from None


frames_option = click.option(
    "--frames", default=None, help="Frames START:STOP of the run. [default: all]"
)


def gain_option(help: str):
    """``--gain``: keV per ADU, a number or a per-pixel map (read by the job)."""
    return click.option("--gain", default=None, help=help)


def hpd_job_options(*, quiet: bool = True):
    """``--force``, ``--json`` and ``--quiet`` of an hpd command (warnings as ``dedkit hpd
    COMMAND: warning: ...``; see :func:`~dedkit.cli.options.job_options`)."""
    return job_options(FORCE_FOLDER_HELP, quiet=quiet, warn_as="dedkit hpd {command}")


def beam_energy_option(*, help: str, default: float | None = None):
    """``--beam-energy``: the beam energy in keV."""
    return click.option(
        "--beam-energy", type=float, default=default, show_default=default is not None, help=help
    )


@click.group()
def raw():
    """slsDetector raw files (MÖNCH, Jungfrau)."""


@raw.command("info")
@click.argument("master", type=click.Path())
@json_option
def raw_info(master, as_json):
    """Show what a run's master file says, and any missing packets."""
    from dedkit.jobs.hpd import describe_run

    d = describe_run(master)
    if as_json:
        emit_json(d)
        return
    rows, cols = d["shape"]
    click.echo(
        f"{d['master']}: {d['detector_type']}, {d['frames']} frames of {cols} x {rows}, "
        f"{d['ports']} port(s), {d['bit_depth']}-bit, master version {d['version']}"
    )
    click.echo(
        f"  exposure {d['exposure_s']} s, period {d['period_s']} s, "
        f"{d['frames_per_file']} frames per file, frame padding {d['frame_padding']}"
    )
    click.echo(f"  {d['missing']}")
    if d["truncated"]:
        click.echo(f"  truncated: {d['truncated']}")


@click.group()
def hpd():
    """Hybrid pixel detector pipeline: pedestal, clusters, localisation, images."""


@hpd.command("pedestal")
@click.argument("master", type=click.Path())
@output_option("PED.h5 to write.")
@frames_option
@count_option(
    "--window",
    default=1000,
    low=0,
    help="aare's moving-window length in frames (at most the dark frames); 0 for the plain "
    "mean of all frames.",
)
@hpd_job_options()
def hpd_pedestal(master, output, frames, window, job):
    """Pedestal and noise per pixel (ADU) from a run of dark frames."""
    from dedkit.jobs.hpd import compute_pedestal

    start, stop = frame_range(frames)
    job.run("pedestal", compute_pedestal, master, output, start=start, stop=stop,
            window=window or None)  # fmt: skip


@hpd.command("clusters")
@click.argument("master", type=click.Path())
@click.option("--pedestal", "-p", required=True, type=click.Path(), help="PED.h5 (dark frames).")
@output_option("OUT.h5 or OUT.clust.")
@choice_option(
    "--finder",
    choices=["aare3x3", "aare5x5", "connected"],
    default="aare3x3",
    help="aare's 3x3 or 5x5 local-maximum finder (ADU; .clust or .h5), or the paper's "
    "connected finder (keV crops with features; needs --gain, .h5 only).",
)
@float_option(
    "--nsigma", default=5.0, help="Threshold in noise sigmas (pixel noise from the pedestal file)."
)
@gain_option(
    "keV per ADU: a number or a per-pixel map (.npy/.h5/.mrc/.tif); required by the "
    "connected finder; with an aare finder, clusters are stored in keV (.h5). "
    "[default: none, clusters in ADU]"
)
@beam_energy_option(
    default=200.0,
    help="Beam energy in keV, recorded with the clusters (the connected finder's feature "
    "and the energy window of 'hpd localize').",
)
@frames_option
@frame_chunk_option
@scheduler_option
@dask_workers_option
@hpd_job_options()
def hpd_clusters(master, pedestal, output, finder, nsigma, gain, beam_energy, frames,
                 chunk_frames, scheduler, workers, job):  # fmt: skip
    """Find clusters in a raw run."""
    from dedkit.jobs.hpd import find_clusters_in_run

    start, stop = frame_range(frames)
    job.run("clusters", find_clusters_in_run, master, pedestal, output, finder=finder,
            nsigma=nsigma, gain=gain, beam_energy_keV=beam_energy, start=start, stop=stop,
            chunk_frames=chunk_frames, scheduler=scheduler, workers=workers)  # fmt: skip


@hpd.command("localize")
@click.argument("clusters", type=click.Path())
@choice_option(
    "--method",
    choices=["centroid", "eta2", "eta3", "cnn"],
    default="centroid",
    help="Charge centroid, aare's eta interpolation on the 2x2 or 3x3 charge, or the CNN "
    "(needs the connected finder's clusters and the learn extra).",
)
@path_option(
    "--model", help="cnn: MODEL (.npz/.json) from 'dedkit learn train'. [default: the shipped one]"
)
@output_option("EVENTS.h5 to write.")
@path_option(
    "--flat-field", help="Clusters of a flat illumination for the eta map. [default: the input]"
)
@beam_energy_option(
    help="Beam energy in keV; sets the energy window 0.1-1.025 x it. "
    "[default: from the clusters file, else 200]",
)
@gain_option(
    "keV per ADU (a number or a per-pixel map) for clusters in ADU, such as an aare "
    ".clust file: converts them to keV so that they can be selected by energy. "
    "[default: none; ADU clusters then need --no-select]"
)
@click.option("--no-select", is_flag=True, help="Keep every cluster (no energy window).")
@hpd_job_options()
def hpd_localize(clusters, method, model, output, flat_field, beam_energy, gain, no_select, job):
    """Select single electrons and localise them (centroid, eta or the CNN)."""
    from dedkit.jobs.hpd import localize_clusters

    job.run("localize", localize_clusters, clusters, output, method=method,
            flat_field=flat_field, beam_energy_keV=beam_energy, select=not no_select, gain=gain,
            model=model)  # fmt: skip


def _detector_shape(ctx, param, value):
    """ROWS,COLS as two positive integers (bounds are checked by the job)."""
    if value is None:
        return None
    parts = value.replace("x", ",").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise click.BadParameter(f"{value!r} is not ROWS,COLS (two positive integers)")
    return tuple(int(p) for p in parts)


@hpd.command("image")
@click.argument("events", type=click.Path())
@click.option(
    "--upsample",
    type=click.IntRange(1, 8),
    default=4,
    show_default=True,
    help="Image pixels per detector pixel along each axis (image pixel size: the pitch over this).",
)
@output_option("IMAGE.mrc or .tif.")
@click.option("--no-flat-field", is_flag=True, help="Plain counts, no sub-pixel correction.")
@click.option(
    "--detector-shape",
    callback=_detector_shape,
    default=None,
    metavar="ROWS,COLS",
    help="Detector size in pixels, readout order. [default: as the events file records it; "
    "needed for events from an aare .clust file]",
)
@optional_option(
    "--pitch-um",
    type=FINITE_POSITIVE,
    help="Detector pixel pitch in um. [default: as the events file records it (25 for "
    "MÖNCH runs through 'hpd clusters')]",
)
@hpd_job_options(quiet=False)
def hpd_image(events, upsample, output, no_flat_field, detector_shape, pitch_um, job):
    """Super-resolution image from localised events."""
    from dedkit.jobs.hpd import make_image

    job.emit(make_image(events, output, upsample=upsample, flat_field=not no_flat_field,
                        shape=detector_shape, pitch_um=pitch_um, force=job.force))  # fmt: skip


def _methods(ctx, param, value):
    """A comma-separated list of localisers."""
    methods = tuple(m.strip() for m in value.split(",") if m.strip())
    if not methods:
        raise click.BadParameter("give at least one localiser")
    if len(set(methods)) != len(methods):
        raise click.BadParameter(f"{value!r} names a localiser twice")
    return methods


def _spacings(ctx, param, value):
    """A comma-separated list of spacings in A."""
    if value is None:
        return None
    try:
        spacings = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of spacings in A") from None
    if not spacings or not all(0 < s < 1e4 for s in spacings):
        raise click.BadParameter(f"{value!r}: spacings must be positive numbers of A")
    return spacings


@hpd.command("align")
@click.argument("master", type=click.Path())
@click.option(
    "--dark",
    "dark",
    required=True,
    type=click.Path(),
    help="Master file of the dark run (for the pedestal).",
)
@click.option("--gain", required=True, type=click.Path(), help="Gain map, keV per ADU (.npy).")
@click.option(
    "--pixel-size",
    type=FINITE_POSITIVE,
    required=True,
    help="Detector pixel at the specimen, A (MÖNCH at 150 kX: about 1).",
)
@click.option(
    "--group",
    "group_frames",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Frames per group for the motion correction (MotionCor2 -Group): about one "
    "electron per pixel per group or more.",
)
@click.option(
    "--bfactor",
    type=FINITE_POSITIVE,
    default=1000.0,
    show_default=True,
    help="Low-pass of the group correlations, square detector pixels.",
)
@click.option(
    "--max-shift",
    type=FINITE_POSITIVE,
    default=30.0,
    show_default=True,
    help="Largest drift searched between a group and the others, detector pixels.",
)
@click.option(
    "--upsample",
    type=click.IntRange(1, 8),
    default=4,
    show_default=True,
    help="Super-resolution image pixels per detector pixel.",
)
@click.option(
    "--methods",
    callback=_methods,
    default="centroid,eta2,cnn",
    show_default=True,
    help="Localisers, comma-separated (centroid, eta2, eta3, cnn).",
)
@path_option(
    "--truth",
    "truth",
    help="A simulated run's NAME_truth.h5: its arrival points as one more localiser "
    "(the upper bound), and the shift error against the true drift.",
)
@click.option(
    "--spacing",
    "spacings",
    callback=_spacings,
    default=None,
    help="Ring spacings in A, comma-separated. [default: gold {111} 2.355 and {200} 2.039]",
)
@output_option("Folder to write (images, events, shifts, rings.json, figures).")
@dask_workers_option
@hpd_job_options(quiet=False)
def hpd_align(master, dark, gain, pixel_size, bfactor, max_shift, group_frames, upsample,
              methods, truth, spacings, output, workers, job):  # fmt: skip
    """Motion-corrected super-resolution images of a drifting specimen, one per localiser,
    with their power spectra and ring SNRs (the MÖNCH paper's figure 6)."""
    from dedkit.jobs.gold import process_gold_run

    job.run("align", process_gold_run, master, dark, gain, output, pixel_size_A=pixel_size,
            group_frames=group_frames, upsample=upsample, methods=methods, truth=truth,
            spacings_A=spacings, bfactor=bfactor, max_shift_px=max_shift,
            workers=workers)  # fmt: skip
