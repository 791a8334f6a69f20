"""``dedkit align``: frame alignment and dose-weighted sums (see :mod:`dedkit.jobs.align`).

Thin: options are parsed here and handed to :func:`dedkit.jobs.align.align_movie`; the
names follow IMOD's alignframes and MotionCor2 where they have one (docs/align-guide.md
maps them).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from dedkit.cli.options import (
    FORCE_HELP,
    figure_option,
    job_options,
    optional_option,
    output_option,
    path_option,
)
from dedkit.cli.params import FINITE_POSITIVE, FiniteFloat
from dedkit.cli.stacks import rotflip_option
from dedkit.errors import DedkitError
from dedkit.parallel.scheduler import MAX_WORKERS

#: a finite number >= 0 (pre-dose, B-factor)
NON_NEGATIVE = FiniteFloat()


class Patches(click.ParamType):
    """``NxM``: patches along X and Y (e.g. 5x5)."""

    name = "NxM"

    def convert(self, value, param, ctx):
        from dedkit.errors import DedkitError
        from dedkit.jobs.align import parse_patches

        try:
            return parse_patches(value)
        except DedkitError as error:
            self.fail(str(error), param, ctx)


@click.command("align")
@click.argument("inputs", metavar="INPUT...", nargs=-1, type=click.Path())
@output_option(
    "The aligned sum (.mrc or .tif, float32); the dose-weighted sum goes beside it as "
    "NAME_DW.mrc, as MotionCor2 names it. For many movies (several INPUTs, a folder, a "
    "pattern, mdoc files or --watch) a folder, FOLDER/: each movie NAME gets NAME.mrc, "
    "NAME_DW.mrc, NAME_shifts.csv, NAME.star, NAME_PS.png and NAME_align.json, the "
    "session session.csv, session.json and report.html."
)
@path_option(
    "--gain",
    "-g",
    help="Gain reference (MRC, TIFF, DM3/DM4) to normalise each "
    "frame with as it is read (default none: frames used as they are).",
)
@path_option(
    "--defects", "-D", help="SerialEM defect list to correct each frame with (default none)."
)
@rotflip_option(
    "r/f value 0-7 of the frames, applied to the gain reference and defect list; -1 reads "
    "it from the frame titles, as alignframes -rotation -1 (default: the reference is "
    "used as it is)."
)
@optional_option(
    "--truncate",
    type=FINITE_POSITIVE,
    help="Replace pixels whose raw x gain "
    "exceeds this by the mean of their neighbours (hot pixels; default none).",
)
@click.option(
    "--group",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Frames summed for the alignment (low dose per frame).",
)
@optional_option(
    "--align-binning",
    type=click.IntRange(1),
    help="Binning of the alignment "
    "copy relative to the output frames (default: its longest side at most "
    "1500 pixels).",
)
@optional_option(
    "--patches",
    type=Patches(),
    help="Local motion on NxM overlapping patches, e.g. 5x5 (default: global motion only).",
)
@optional_option(
    "--bfactor",
    type=NON_NEGATIVE,
    help="B-factor of the alignment's low-pass filter, square pixels of the alignment "
    "copy (default 300); the patches use 500.",
)
@optional_option(
    "--iterations",
    type=click.IntRange(1),
    help="Most alignment iterations (default 20).",
)
@optional_option(
    "--tolerance",
    type=FINITE_POSITIVE,
    help="Stop iterating when no shift changes by more than this, pixels of the alignment "
    "copy (default 0.01).",
)
@click.option(
    "--pairs",
    is_flag=True,
    help="Align all pairs of frames with a robust fit (alignframes -pair) instead of each "
    "frame against the sum of the others, iterated.",
)
@click.option(
    "--reduce",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Antialiased reduction of the output (2: super-resolution to counting size).",
)
@optional_option(
    "--dose", type=FINITE_POSITIVE, help="Dose per frame, e/A^2 (default: from the mdoc)."
)
@optional_option(
    "--pre-dose",
    type=NON_NEGATIVE,
    help="Dose before the first frame, e/A^2 (default: the mdoc's, else 0).",
)
@optional_option(
    "--voltage", type=FINITE_POSITIVE, help="Voltage, kV (default: the mdoc's, else 300)."
)
@optional_option(
    "--pixel-size",
    type=FINITE_POSITIVE,
    help="A per input pixel (default: the mdoc's, else the stack header's).",
)
@path_option(
    "--mdoc", help="SerialEM mdoc of the frames, or 'none' (default: INPUT.mdoc when it exists)."
)
@click.option(
    "--even-odd",
    is_flag=True,
    help="Also write the sums of the even and odd "
    "frames (NAME_EVN, NAME_ODD) and their FRC (NAME_FRC.csv).",
)
@optional_option(
    "--eer-group",
    type=click.IntRange(1),
    help="EER fractions summed into each frame, RELION's --eer_grouping (default 40, as RELION).",
)
@optional_option(
    "--eer-sampling",
    type=click.Choice(["1", "2", "4"]),
    help="EER rendering: 1 (4096 pixels), 2 or 4 (super-resolution) (default 1).",
)
@path_option(
    "--watch",
    help="Watch this folder and align each movie written into it once complete, until "
    "Ctrl-C (which ends after the running movies); needs -o FOLDER/.",
)
@click.option(
    "--settle",
    type=FINITE_POSITIVE,
    default=5.0,
    show_default=True,
    help="With --watch: seconds a new movie must stay unchanged before it is read.",
)
@click.option(
    "--poll",
    is_flag=True,
    help="With --watch: poll the folder instead of inotify (default: chosen from the "
    "file system; network file systems are polled).",
)
@optional_option(
    "--workers",
    type=click.IntRange(0, MAX_WORKERS),
    help="Movies aligned at once, each in a LocalCluster worker process; 0 aligns them "
    "one after another in this process (default: one per core, fewer when memory is short).",
)
@optional_option(
    "--threads",
    type=click.IntRange(1, 1024),
    help="Threads per movie (default: the cores divided among the workers, 1 when there is "
    "a worker per core; one movie: all).",
)
@optional_option(
    "--scheduler",
    type=str,
    help="Address of a running Dask scheduler (tcp://host:8786, e.g. a dask-jobqueue SLURM "
    "cluster) instead of a LocalCluster (default none).",
)
@path_option("--shifts", help="CSV of the shifts (frame, dx, dy; input pixels).")
@path_option("--star", help="RELION's per-movie motion STAR file (for Bayesian polishing).")
@figure_option("PNG, PDF or SVG of the trajectory and the sum's power spectrum.")
@job_options(FORCE_HELP)
def align(
    inputs,
    output,
    gain,
    defects,
    rotflip,
    truncate,
    group,
    align_binning,
    patches,
    bfactor,
    iterations,
    tolerance,
    pairs,
    reduce,
    dose,
    pre_dose,
    voltage,
    pixel_size,
    mdoc,
    even_odd,
    eer_group,
    eer_sampling,
    watch,
    settle,
    poll,
    workers,
    threads,
    scheduler,
    shifts,
    star,
    figure,
    job,
):
    """Align the frames of INPUT (raw or normalised) and write their sum and, with a known
    dose, the dose-weighted sum. The file is read once: gain, defects and r/f are applied
    to each frame as it is read.

    Many movies (files, quoted patterns such as 'Frames/*.tif', folders, SerialEM mdoc
    files) or --watch FOLDER with -o FOLDER/: one movie per Dask worker; movies already
    done are skipped, so a stopped session resumes where it stopped."""
    options = dict(
        gain=gain,
        defects=defects,
        rotflip_value=rotflip,
        truncate=truncate,
        group=group,
        align_binning=align_binning,
        patches=patches,
        bfactor=bfactor,
        iterations=iterations,
        tolerance=tolerance,
        method="pairs" if pairs else "iterative",
        reduce=reduce,
        dose=dose,
        pre_dose=pre_dose,
        voltage=voltage,
        pixel_size=pixel_size,
        mdoc=mdoc,
        even_odd=even_odd,
        eer_group=eer_group,
        eer_sampling=None if eer_sampling is None else int(eer_sampling),
    )
    if _is_session(inputs, output, watch):
        for name, value in (("--shifts", shifts), ("--star", star), ("--figure", figure)):
            if value is not None:
                raise DedkitError(
                    f"{name} names the file of one movie; a session writes NAME_shifts.csv "
                    "and NAME.star for every movie and report.html for all"
                )
        _run_session(inputs, output, watch, settle, poll, workers, threads, scheduler,
                     options, job)  # fmt: skip
        return
    for name, value in (("--workers", workers), ("--scheduler", scheduler)):
        if value is not None:
            raise DedkitError(f"{name} is for many movies (-o FOLDER/)")
    if len(inputs) != 1:
        raise DedkitError("name the movie to align (INPUT), or many movies with -o FOLDER/")
    from dedkit.jobs.align import align_movie

    job.run(
        "align", align_movie, inputs[0], output, shifts=shifts, star=star, figure=figure,
        threads=threads, **options,
    )  # fmt: skip


def _is_session(inputs, output, watch) -> bool:
    """Many movies: --watch, several inputs, or an output folder (``-o FOLDER/`` or an
    existing folder)."""
    text = str(output)
    return (
        watch is not None or len(inputs) > 1 or text.endswith(("/", os.sep)) or Path(text).is_dir()
    )


def _run_session(inputs, output, watch, settle, poll, workers, threads, scheduler, options, job):
    from dedkit.cli.output import session_display
    from dedkit.jobs.session import run_session

    with session_display("align", quiet=job.quiet or job.as_json) as (progress, on_movie):
        report = run_session(
            inputs, output, watch=watch, workers=workers, threads=threads,
            scheduler=scheduler, force=job.force, settle=settle, poll=True if poll else None,
            progress=progress, on_movie=on_movie, **options,
        )  # fmt: skip
    job.emit(report)
    if report.stopped == "interrupted":
        raise SystemExit(130)
    if report.failed or report.stopped:
        raise SystemExit(2)
