"""Entry point of the ``dedkit`` command.

Commands are thin: they turn options into a call of a :mod:`dedkit.jobs` function and
print its report. Errors in the user's input end the command with one line on stderr and
exit status 2; nothing is left half-written (outputs are renamed into place only when
complete).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import warnings

import click

from dedkit import __version__
from dedkit.cli.camera import camera
from dedkit.cli.learn import learn
from dedkit.cli.output import (
    announce_compilation,
    emit_json,
    emit_report,
    progress_bar,
    run_job,
)
from dedkit.cli.params import FINITE, FINITE_POSITIVE
from dedkit.cli.reduce import reduce_command
from dedkit.cli.sim import sim
from dedkit.cli.study import study
from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import DISK_FULL_ERRNOS, published, reset_published
from dedkit.parallel.chunks import MAX_CHUNK_FRAMES
from dedkit.parallel.scheduler import MAX_WORKERS

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

#: --mode of norm: clip's names and IMOD's mode numbers (see dedkit.jobs.stacks)
OUTPUT_MODE_CHOICES = ["byte", "short", "ushort", "float", "4bit", "0", "1", "2", "6", "101"]

force_option = click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing output (a folder only if dedkit wrote it and nothing was added).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")


@click.group(no_args_is_help=False, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dedkit")
def cli():
    """dedkit: raw frames from direct electron detectors to the best images their
    physics allows (K2/K3 frame stacks as SerialEM saves them, IMOD-compatible)."""


@cli.command()
@click.argument("input", type=click.Path())
@click.argument("gain", type=click.Path())
@click.argument("output", type=click.Path())
@click.option(
    "--scale",
    "-n",
    type=FINITE_POSITIVE,
    default=None,
    help="Scaling factor (default 16 with a float gain reference, else 1; K3: 32).",
)
@click.option(
    "--mode",
    "-m",
    type=click.Choice(OUTPUT_MODE_CHOICES),
    default=None,
    help="Output mode, by name or IMOD mode number: byte 0, short 1, float 2, ushort 6, "
    "4bit 101 (default float with a gain reference, else byte).",
)
@click.option(
    "--high",
    "-H",
    type=FINITE,
    default=None,
    help="Truncate pixels whose raw x gain exceeds this (clip -h; default none).",
)
@click.option(
    "--low",
    "-l",
    type=FINITE,
    default=None,
    help="With --high: replace truncated pixels by this x gain x scale (clip -l; default: "
    "the mean of their neighbours).",
)
@click.option(
    "--defects",
    "-D",
    type=click.Path(),
    default=None,
    help="SerialEM defects file to correct after normalising (default none).",
)
@click.option(
    "--rotflip",
    "-R",
    type=int,
    default=None,
    help="r/f value 0-7 to apply to the gain reference, -1 to read it from the frame titles "
    "(default: the reference is used as it is, as clip norm does).",
)
@force_option
@json_option
@quiet_option
def norm(input, gain, output, scale, mode, high, low, defects, rotflip, force, as_json, quiet):
    """Gain-normalise frames like 'clip norm': OUT = IN x GAIN x scale.

    GAIN may be MRC, TIFF or DM3/DM4, the same size as the frames or 2 or 4 times
    smaller; use 'none' to only unpack and scale. Integer and float frames are taken;
    complex frames (MRC mode 4) are refused, as they hold no counts.
    """
    from dedkit.jobs.stacks import normalize_stack

    run_job(
        "norm",
        normalize_stack,
        input,
        None if gain == "none" else gain,
        output,
        scale=scale,
        mode=mode,
        high=high,
        low=low,
        defects=defects,
        rotflip_value=rotflip,
        force=force,
        quiet=quiet,
        as_json=as_json,
    )


@cli.command()
@click.argument("defects", type=click.Path())
@click.argument("like", type=click.Path())
@click.argument("output", type=click.Path())
@click.option(
    "--rotflip",
    "-R",
    type=int,
    default=None,
    help="r/f value of the images when it differs from the list's RotationAndFlip "
    "(default: the list's).",
)
@force_option
@json_option
def defectmap(defects, like, output, rotflip, force, as_json):
    """Write a defect map (uint8, 1 = defect) the size of the images in LIKE, as
    'clip defectmap' does for MotionCor2."""
    from dedkit.jobs.stacks import make_defect_map

    emit_report(make_defect_map(defects, like, output, rotflip_value=rotflip, force=force), as_json)


@cli.command("rotflip")
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@click.option(
    "--rotflip",
    "-R",
    "value",
    type=int,
    default=None,
    help="r/f value (required): counter-clockwise rotation / 90 (0-3), + 4 to flip around Y first.",
)
# the name before 0.x, kept so that existing scripts run
@click.option("--op", "op_value", type=int, default=None, hidden=True)
@force_option
@json_option
@quiet_option
def rotflip_command(input, output, value, op_value, force, as_json, quiet):
    """Rotate and/or flip every frame by a SerialEM r/f value; the r/f recorded in the
    titles is updated, so a later 'norm -R -1' orients the gain reference right."""
    from dedkit.jobs.stacks import rotflip_stack

    if value is not None and op_value is not None and value != op_value:
        raise click.BadOptionUsage("value", "give the r/f value once, with -R/--rotflip")
    value = value if value is not None else op_value
    if value is None:
        raise click.MissingParameter(param_hint="'-R' / '--rotflip'", param_type="option")
    run_job(
        "rotflip", rotflip_stack, input, output, value, force=force, quiet=quiet, as_json=as_json
    )


@cli.command()
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@click.option(
    "--as",
    "target",
    required=True,
    type=click.Choice(["mode101", "half-bytes", "tiff4", "serialemccd", "bytes"]),
    help="mode101 / half-bytes (MRC), tiff4 / serialemccd (TIFF), or bytes.",
)
@force_option
@json_option
@quiet_option
def pack(input, output, target, force, as_json, quiet):
    """Pack counts into 4 bits (or truncate to bytes); saturated values and NaN are
    counted and reported, never silently lost. Complex frames (MRC mode 4) are refused."""
    from dedkit.jobs.stacks import pack_stack

    run_job("pack", pack_stack, input, output, target, force=force, quiet=quiet, as_json=as_json)


@cli.command()
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@force_option
@json_option
@quiet_option
def unpack(input, output, force, as_json, quiet):
    """Unpack 4-bit frames to one byte per pixel."""
    from dedkit.jobs.stacks import unpack_stack

    run_job("unpack", unpack_stack, input, output, force=force, quiet=quiet, as_json=as_json)


@cli.command()
@click.argument("input", type=click.Path())
@click.argument("output", type=click.Path())
@click.option(
    "--compression",
    "-c",
    type=click.Choice(["none", "lzw", "zip", "zstd"]),
    default=None,
    help="TIFF compression (LZW suits counts best; default none).",
)
@force_option
@json_option
@quiet_option
def convert(input, output, compression, force, as_json, quiet):
    """Convert between MRC, TIFF and folders of numbered images (format from the suffix:
    .mrc/.mrcs/.st, .tif/.tiff, none for a folder)."""
    from dedkit.jobs.stacks import convert_stack

    run_job(
        "convert",
        convert_stack,
        input,
        output,
        compression=compression,
        force=force,
        quiet=quiet,
        as_json=as_json,
    )


@cli.command()
@click.argument("file", type=click.Path())
@json_option
def header(file, as_json):
    """Show size, mode, packing, titles, r/f, scaling and gain/defect names (MRC, TIFF,
    folders; DM3/DM4 with their calibration units)."""
    from dedkit.jobs.stacks import describe_stack

    d = describe_stack(file)
    if as_json:
        emit_json(d)
        return
    click.echo(
        f"{d['path']}: {d['format']}, {d['nx']} x {d['ny']} x {d['nz']}, {d['dtype']}"
        + (f" (MRC mode {d['mode']})" if d["mode"] is not None else "")
    )
    rows = [
        ("packing", d["packing"]),
        ("compression", d["compression"]),
        ("pixel size (A)", d["pixel_size"] and " x ".join(f"{v:g}" for v in d["pixel_size"])),
        ("units", d["units"] and " x ".join(u or "(none)" for u in d["units"])),
        ("r/f", d["rotflip"]),
        ("r/f needed", d["rotflip_needed"]),
        ("scaling", d["scaling"]),
        ("gain reference", d["gain_reference"]),
        ("defect file", d["defect_file"]),
    ]
    for name, value in rows:
        if value is not None:
            click.echo(f"  {name:15s} {value}")
    for i, t in enumerate(d["titles"]):
        click.echo(f"  title {i:<9d} {t}")


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


@cli.group()
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


@cli.group()
def hpd():
    """Hybrid pixel detector pipeline: pedestal, clusters, localisation, images."""


def emit_hpd_report(report, as_json: bool) -> None:
    emit_json(report.to_dict()) if as_json else click.echo(report.text())
    for line in report.warnings:
        click.echo(f"dedkit hpd {report.command}: warning: {line}", err=True)


@hpd.command("pedestal")
@click.argument("master", type=click.Path())
@click.option("--output", "-o", required=True, type=click.Path(), help="PED.h5 to write.")
@frames_option
@click.option(
    "--window",
    type=click.IntRange(0),
    default=1000,
    show_default=True,
    help="aare's moving-window length in frames (at most the dark frames); 0 for the plain "
    "mean of all frames.",
)
@force_option
@json_option
@quiet_option
def hpd_pedestal(master, output, frames, window, force, as_json, quiet):
    """Pedestal and noise per pixel (ADU) from a run of dark frames."""
    from dedkit.jobs.hpd import compute_pedestal

    start, stop = frame_range(frames)
    with progress_bar("pedestal", quiet=quiet) as progress:
        report = compute_pedestal(
            master,
            output,
            start=start,
            stop=stop,
            window=window or None,
            force=force,
            progress=progress,
        )
    emit_hpd_report(report, as_json)


@hpd.command("clusters")
@click.argument("master", type=click.Path())
@click.option("--pedestal", "-p", required=True, type=click.Path(), help="PED.h5 (dark frames).")
@click.option("--output", "-o", required=True, type=click.Path(), help="OUT.h5 or OUT.clust.")
@click.option(
    "--finder",
    type=click.Choice(["aare3x3", "aare5x5", "connected"]),
    default="aare3x3",
    show_default=True,
    help="aare's 3x3 or 5x5 local-maximum finder (ADU; .clust or .h5), or the paper's "
    "connected finder (keV crops with features; needs --gain, .h5 only).",
)
@click.option(
    "--nsigma",
    type=float,
    default=5.0,
    show_default=True,
    help="Threshold in noise sigmas (pixel noise from the pedestal file).",
)
@click.option(
    "--gain",
    default=None,
    help="keV per ADU: a number or a per-pixel map (.npy/.h5/.mrc/.tif); required by the "
    "connected finder; with an aare finder, clusters are stored in keV (.h5). "
    "[default: none, clusters in ADU]",
)
@click.option(
    "--beam-energy",
    type=float,
    default=200.0,
    show_default=True,
    help="Beam energy in keV, recorded with the clusters (the connected finder's feature "
    "and the energy window of 'hpd localize').",
)
@frames_option
@click.option(
    "--chunk",
    "chunk_frames",
    type=click.IntRange(1, MAX_CHUNK_FRAMES),
    default=1000,
    show_default=True,
    help="Frames per chunk (one Dask task).",
)
@click.option(
    "--scheduler",
    default=None,
    help="Dask scheduler address such as tcp://host:8786. [default: a LocalCluster when "
    "the run has several chunks]",
)
@click.option(
    "--workers",
    type=click.IntRange(0, MAX_WORKERS),
    default=None,
    help=f"LocalCluster workers, 0 to {MAX_WORKERS}; 0 runs in this process. "
    "[default: one per core]",
)
@force_option
@json_option
@quiet_option
def hpd_clusters(
    master,
    pedestal,
    output,
    finder,
    nsigma,
    gain,
    beam_energy,
    frames,
    chunk_frames,
    scheduler,
    workers,
    force,
    as_json,
    quiet,
):
    """Find clusters in a raw run."""
    from dedkit.jobs.hpd import find_clusters_in_run

    start, stop = frame_range(frames)
    with progress_bar("clusters", quiet=quiet) as progress:
        report = find_clusters_in_run(
            master,
            pedestal,
            output,
            finder=finder,
            nsigma=nsigma,
            gain=gain,
            beam_energy_keV=beam_energy,
            start=start,
            stop=stop,
            chunk_frames=chunk_frames,
            scheduler=scheduler,
            workers=workers,
            force=force,
            progress=progress,
        )
    emit_hpd_report(report, as_json)


@hpd.command("localize")
@click.argument("clusters", type=click.Path())
@click.option(
    "--method",
    type=click.Choice(["centroid", "eta2", "eta3", "cnn"]),
    default="centroid",
    show_default=True,
    help="Charge centroid, aare's eta interpolation on the 2x2 or 3x3 charge, or the CNN "
    "(needs the connected finder's clusters and the learn extra).",
)
@click.option(
    "--model",
    type=click.Path(),
    default=None,
    help="cnn: MODEL (.npz/.json) from 'dedkit learn train'. [default: the shipped one]",
)
@click.option("--output", "-o", required=True, type=click.Path(), help="EVENTS.h5 to write.")
@click.option(
    "--flat-field",
    type=click.Path(),
    default=None,
    help="Clusters of a flat illumination for the eta map. [default: the input]",
)
@click.option(
    "--beam-energy",
    type=float,
    default=None,
    help="Beam energy in keV; sets the energy window 0.1-1.025 x it. "
    "[default: from the clusters file, else 200]",
)
@click.option(
    "--gain",
    default=None,
    help="keV per ADU (a number or a per-pixel map) for clusters in ADU, such as an aare "
    ".clust file: converts them to keV so that they can be selected by energy. "
    "[default: none; ADU clusters then need --no-select]",
)
@click.option("--no-select", is_flag=True, help="Keep every cluster (no energy window).")
@force_option
@json_option
@quiet_option
def hpd_localize(
    clusters, method, model, output, flat_field, beam_energy, gain, no_select, force, as_json, quiet
):
    """Select single electrons and localise them (centroid, eta or the CNN)."""
    from dedkit.jobs.hpd import localize_clusters

    with progress_bar("localize", quiet=quiet) as progress:
        report = localize_clusters(
            clusters,
            output,
            method=method,
            flat_field=flat_field,
            beam_energy_keV=beam_energy,
            select=not no_select,
            gain=gain,
            model=model,
            force=force,
            progress=progress,
        )
    emit_hpd_report(report, as_json)


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
@click.option("--output", "-o", required=True, type=click.Path(), help="IMAGE.mrc or .tif.")
@click.option("--no-flat-field", is_flag=True, help="Plain counts, no sub-pixel correction.")
@click.option(
    "--detector-shape",
    callback=_detector_shape,
    default=None,
    metavar="ROWS,COLS",
    help="Detector size in pixels, readout order. [default: as the events file records it; "
    "needed for events from an aare .clust file]",
)
@click.option(
    "--pitch-um",
    type=FINITE_POSITIVE,
    default=None,
    help="Detector pixel pitch in um. [default: as the events file records it (25 for "
    "MÖNCH runs through 'hpd clusters')]",
)
@force_option
@json_option
def hpd_image(events, upsample, output, no_flat_field, detector_shape, pitch_um, force, as_json):
    """Super-resolution image from localised events."""
    from dedkit.jobs.hpd import make_image

    report = make_image(
        events,
        output,
        upsample=upsample,
        flat_field=not no_flat_field,
        shape=detector_shape,
        pitch_um=pitch_um,
        force=force,
    )
    emit_hpd_report(report, as_json)


@cli.command()
@click.option(
    "--output",
    "-o",
    "outdir",
    type=click.Path(),
    default=None,
    help="Folder to keep the demo's files in (default: a temporary folder, removed at the end).",
)
@click.option(
    "--frames",
    type=click.IntRange(1, 200),
    default=8,
    show_default=True,
    help="Frames to synthesise.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@force_option
@json_option
def demo(outdir, frames, seed, force, as_json):
    """Run the main job end to end on built-in data: synthesise a small K3
    super-resolution 4-bit frame stack with gain reference and defect list, normalise,
    correct defects, write, and summarise."""
    from dedkit.jobs.demo import run_demo

    summary = run_demo(outdir, n_frames=frames, seed=seed, force=force)
    if as_json:
        emit_json(summary.to_dict())
    else:
        click.echo(summary.text())


@cli.command()
@click.argument("folder", type=click.Path(), default="dedkit-sample")
@click.option(
    "--frames",
    type=click.IntRange(1, 200),
    default=4,
    show_default=True,
    help="Frames of the counting-camera stack.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option("--force", is_flag=True, help="Replace a previous sample in FOLDER.")
@json_option
def sample(folder, frames, seed, force, as_json):
    """Write the files the README's and guides' examples use into FOLDER (default
    dedkit-sample): a K3-like frame stack as SerialEM saves it (frames.mrc, frames.tif,
    SuperRef.mrc, defects.txt, frames.mrc.mdoc) and a small MÖNCH run
    (run_master_0.json, run_dark_master_0.json, run_gain.npy). Run the examples in
    FOLDER."""
    from dedkit.jobs.demo import write_samples

    summary = write_samples(folder, frames=frames, seed=seed, force=force)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"dedkit sample: wrote {len(summary['files'])} files in {summary['folder']}")
    for name, size in summary["files"].items():
        click.echo(f"  {name:28s} {size / 1e6:8.2f} MB")
    click.echo(f"the examples of README.md and docs/ run in it: cd {summary['folder']}")


cli.add_command(camera)
cli.add_command(reduce_command)
cli.add_command(study)
cli.add_command(sim)
cli.add_command(learn)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C is: every writer then
    removes its temporaries on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


#: the signal being acted on, until main() has reported it (see _raise_terminated)
_pending_signal: list[int] = []
#: seconds after which a signal not yet reported is sent again
RESEND_SECONDS = 0.3


def _raise_terminated(signum, frame):
    """Raise :class:`Terminated` where the main thread is, as Ctrl-C raises
    KeyboardInterrupt.

    Python drops an exception raised inside a finalizer (``__del__``) or a ctypes
    callback (numba compiling calls back into Python), and the command would run on as if
    nothing happened. So until main() has reported the stop, the signal is sent again
    every :data:`RESEND_SECONDS`; a resent one that finds the stop already on its way out
    (a Terminated being handled, e.g. a writer removing its temporary in ``except`` or
    ``finally``) does nothing.
    """
    error = sys.exc_info()[1]
    while error is not None:
        if isinstance(error, Terminated):
            return
        error = error.__context__
    if not _pending_signal:
        _pending_signal.append(signum)
        _resend_later(signum)
    raise Terminated(signum)


def _resend_later(signum: int) -> None:
    import threading

    def resend():
        if _pending_signal:
            os.kill(os.getpid(), signum)
            _resend_later(signum)

    timer = threading.Timer(RESEND_SECONDS, resend)
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def _signals_as_interrupts():
    """SIGTERM and SIGHUP handled as Ctrl-C for the command's duration (main thread only;
    the previous handlers are restored)."""
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread: leave the handlers alone
            break
    hook = sys.unraisablehook

    def unraisable(info):
        # a stop raised where Python cannot raise it (a finalizer, a ctypes callback) is
        # sent again (_raise_terminated): not worth "Exception ignored" and a traceback
        if not isinstance(info.exc_value, Terminated):
            hook(info)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        _pending_signal.clear()  # no resending once the command is over
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupted(error: BaseException) -> int:
    """Say truly what was written before the interrupt; exit status 128 + the signal
    (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as shells report it."""
    _pending_signal.clear()  # reported: no more resending
    signum = getattr(error, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {name}"
    click.echo(f"dedkit: {how}; {_written_so_far()}", err=True)
    return 128 + int(signum)


def _written_so_far() -> str:
    done = published()
    if not done:
        return "no output was written"
    names = ", ".join(str(p) for p in done)
    return f"written before that: {names}; nothing else was written"


def main(argv=None) -> int:
    """Run the command line; returns the exit status instead of raising.

    Exit status: 0 done, 2 bad input (or an output that cannot be written), 3 internal
    error, 128 + N when stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). A
    stopped command leaves no temporary files and says which outputs, if any, were
    complete before it stopped.
    """
    # tifffile logs its complaints about damaged files; dedkit reports them as one line
    logging.getLogger("tifffile").setLevel(logging.CRITICAL + 1)
    warnings.showwarning = _one_line_warning
    announce_compilation()
    reset_published()
    _pending_signal.clear()
    with _signals_as_interrupts():
        try:
            return _run(argv)
        except KeyboardInterrupt as error:
            # a signal arriving while an error is being reported
            return _interrupted(error)


def _run(argv) -> int:
    try:
        # a command ending with ctx.exit(status) (a result, e.g. 'camera check' finding a
        # violated rule) raises Exit with that status. The context is made and invoked
        # here rather than through cli.main, which prints an empty line to stderr on
        # Ctrl-C before our one-line message
        args = sys.argv[1:] if argv is None else list(argv)
        with cli.make_context("dedkit", args) as ctx:
            status = cli.invoke(ctx)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort as e:
        context = e.__context__
        return _interrupted(context if isinstance(context, KeyboardInterrupt) else e)
    except click.ClickException as e:
        # usage errors: one line, as for any other bad input
        command = e.ctx.command_path if getattr(e, "ctx", None) else "dedkit"
        click.echo(f"{command}: error: {one_line(e.format_message())} (see --help)", err=True)
        return EXIT_BAD_INPUT
    except DedkitError as e:
        click.echo(f"dedkit: error: {e}{_also_written()}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        reason = e.strerror or one_line(e)
        if e.errno in DISK_FULL_ERRNOS and not e.filename:
            reason = f"cannot write: {reason}"
        click.echo(f"dedkit: error: {where}{reason}{_also_written()}", err=True)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback
        if os.environ.get("DEDKIT_DEBUG"):
            raise
        click.echo(
            f"dedkit: internal error: {type(e).__name__}: {one_line(e)} "
            "(set DEDKIT_DEBUG=1 for the traceback)",
            err=True,
        )
        return EXIT_INTERNAL
    return status if isinstance(status, int) else 0


def _also_written() -> str:
    # a command failing after some of its outputs were complete says which
    done = published()
    return f" (written before the error: {', '.join(map(str, done))})" if done else ""


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"dedkit: warning: {one_line(message)}", err=True)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
