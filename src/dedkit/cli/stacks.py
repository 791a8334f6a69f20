"""The counting-camera frame-stack commands: ``dedkit norm``, ``defectmap``, ``rotflip``,
``pack``, ``unpack``, ``convert`` and ``header`` (top-level commands, registered by
:mod:`dedkit.cli.main`).

Thin: options are parsed here and handed to :mod:`dedkit.jobs.stacks`; the job's
:class:`~dedkit.jobs.stacks.StackReport` prints itself (``text()``) or goes out as JSON
(``to_dict()``).
"""

from __future__ import annotations

import click

from dedkit.cli.options import (
    FORCE_FOLDER_HELP,
    input_argument,
    job_options,
    json_option,
    mode_option,
    optional_option,
    output_argument,
    path_option,
)
from dedkit.cli.output import emit_json
from dedkit.cli.params import FINITE, FINITE_POSITIVE

#: --mode of norm: clip's names and IMOD's mode numbers (see dedkit.jobs.stacks)
OUTPUT_MODE_CHOICES = ["byte", "short", "ushort", "float", "4bit", "0", "1", "2", "6", "101"]


def rotflip_option(help: str, *, dest: str = "rotflip"):
    """``-R/--rotflip``: a SerialEM r/f value (what it applies to: ``help``)."""
    return click.option("--rotflip", "-R", dest, type=int, default=None, help=help)


@click.command()
@input_argument
@click.argument("gain", type=click.Path())
@output_argument
@optional_option(
    "--scale",
    "-n",
    type=FINITE_POSITIVE,
    help="Scaling factor (default 16 with a float gain reference, else 1; K3: 32).",
)
@mode_option(
    OUTPUT_MODE_CHOICES,
    help="Output mode, by name or IMOD mode number: byte 0, short 1, float 2, ushort 6, "
    "4bit 101 (default float with a gain reference, else byte).",
)
@optional_option(
    "--high",
    "-H",
    type=FINITE,
    help="Truncate pixels whose raw x gain exceeds this (clip -h; default none).",
)
@optional_option(
    "--low",
    "-l",
    type=FINITE,
    help="With --high: replace truncated pixels by this x gain x scale (clip -l; default: "
    "the mean of their neighbours).",
)
@path_option(
    "--defects", "-D", help="SerialEM defects file to correct after normalising (default none)."
)
@rotflip_option(
    "r/f value 0-7 to apply to the gain reference, -1 to read it from the frame titles "
    "(default: the reference is used as it is, as clip norm does)."
)
@job_options(FORCE_FOLDER_HELP)
def norm(input, gain, output, scale, mode, high, low, defects, rotflip, job):
    """Gain-normalise frames like 'clip norm': OUT = IN x GAIN x scale.

    GAIN may be MRC, TIFF or DM3/DM4, the same size as the frames or 2 or 4 times
    smaller; use 'none' to only unpack and scale. Integer and float frames are taken;
    complex frames (MRC mode 4) are refused, as they hold no counts.
    """
    from dedkit.jobs.stacks import normalize_stack

    gain = None if gain == "none" else gain
    job.run("norm", normalize_stack, input, gain, output, scale=scale, mode=mode, high=high,
            low=low, defects=defects, rotflip_value=rotflip)  # fmt: skip


@click.command()
@click.argument("defects", type=click.Path())
@click.argument("like", type=click.Path())
@output_argument
@rotflip_option(
    "r/f value of the images when it differs from the list's RotationAndFlip (default: the list's)."
)
@job_options(FORCE_FOLDER_HELP, quiet=False)
def defectmap(defects, like, output, rotflip, job):
    """Write a defect map (uint8, 1 = defect) the size of the images in LIKE, as
    'clip defectmap' does for MotionCor2."""
    from dedkit.jobs.stacks import make_defect_map

    job.emit(make_defect_map(defects, like, output, rotflip_value=rotflip, force=job.force))


@click.command("rotflip")
@input_argument
@output_argument
@rotflip_option(
    "r/f value (required): counter-clockwise rotation / 90 (0-3), + 4 to flip around Y first.",
    dest="value",
)
# the name before 0.x, kept so that existing scripts run
@click.option("--op", "op_value", type=int, default=None, hidden=True)
@job_options(FORCE_FOLDER_HELP)
def rotflip_command(input, output, value, op_value, job):
    """Rotate and/or flip every frame by a SerialEM r/f value; the r/f recorded in the
    titles is updated, so a later 'norm -R -1' orients the gain reference right."""
    from dedkit.jobs.stacks import rotflip_stack

    if value is not None and op_value is not None and value != op_value:
        raise click.BadOptionUsage("value", "give the r/f value once, with -R/--rotflip")
    value = value if value is not None else op_value
    if value is None:
        raise click.MissingParameter(param_hint="'-R' / '--rotflip'", param_type="option")
    job.run("rotflip", rotflip_stack, input, output, value)


@click.command()
@input_argument
@output_argument
@click.option(
    "--as",
    "target",
    required=True,
    type=click.Choice(["mode101", "half-bytes", "tiff4", "serialemccd", "bytes"]),
    help="mode101 / half-bytes (MRC), tiff4 / serialemccd (TIFF), or bytes.",
)
@job_options(FORCE_FOLDER_HELP)
def pack(input, output, target, job):
    """Pack counts into 4 bits (or truncate to bytes); saturated values and NaN are
    counted and reported, never silently lost. Complex frames (MRC mode 4) are refused."""
    from dedkit.jobs.stacks import pack_stack

    job.run("pack", pack_stack, input, output, target)


@click.command()
@input_argument
@output_argument
@job_options(FORCE_FOLDER_HELP)
def unpack(input, output, job):
    """Unpack 4-bit frames to one byte per pixel."""
    from dedkit.jobs.stacks import unpack_stack

    job.run("unpack", unpack_stack, input, output)


@click.command()
@input_argument
@output_argument
@optional_option(
    "--compression",
    "-c",
    type=click.Choice(["none", "lzw", "zip", "zstd"]),
    help="TIFF compression (LZW suits counts best; default none).",
)
@job_options(FORCE_FOLDER_HELP)
def convert(input, output, compression, job):
    """Convert between MRC, TIFF and folders of numbered images (format from the suffix:
    .mrc/.mrcs/.st, .tif/.tiff, none for a folder)."""
    from dedkit.jobs.stacks import convert_stack

    job.run("convert", convert_stack, input, output, compression=compression)


@click.command()
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


#: the stack commands, in the order ``dedkit --help`` lists them
STACK_COMMANDS = (convert, defectmap, header, norm, pack, rotflip_command, unpack)
