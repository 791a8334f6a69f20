"""``dedkit reduce``: antialiased reduction (or binning) of every frame of a stack."""

from __future__ import annotations

import click

from dedkit.cli.options import (
    FORCE_FOLDER_HELP,
    choice_option,
    input_argument,
    job_options,
    mode_option,
    output_argument,
)

#: the reductions of :data:`dedkit.frames.reduce.REDUCTIONS` (spelled out here so that
#: the command line starts without importing numba; a test keeps the two equal)
FILTER_CHOICES = ("box", "blackman", "triangle", "mitchell", "lanczos2", "lanczos3", "bin")
MODE_CHOICES = ("byte", "short", "ushort", "float")


@click.command("reduce")
@input_argument
@output_argument
@click.option("--factor", "-f", type=click.IntRange(min=1), required=True, help="Reduction factor.")
@choice_option(
    "--filter",
    "filter_name",
    choices=FILTER_CHOICES,
    default="lanczos3",
    help="IMOD's antialias filter, or 'bin' for plain binning.",
)
@mode_option(
    MODE_CHOICES,
    default="float",
    help="Output type (integers are rounded; clipped values are counted and reported).",
)
@choice_option(
    "--values",
    choices=("sum", "mean"),
    default="sum",
    help="Output pixels hold the sum of the pixels they replace (SerialEM) or their mean (IMOD).",
)
@job_options(FORCE_FOLDER_HELP)
def reduce_command(input, output, factor, filter_name, mode, values, job):
    """Reduce every frame of a stack by an integer factor, antialiased as SerialEM
    and IMOD do (Lanczos-3 by default) or by binning; the pixel size in the header is
    scaled by the factor."""
    from dedkit.jobs.reduce import reduce_stack

    job.run("reduce", reduce_stack, input, output, factor, filter=filter_name, values=values,
            mode=mode)  # fmt: skip
