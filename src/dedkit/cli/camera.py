"""``dedkit camera ...``: camera models, SerialEM's timing rules, capture time, dose rate.

Thin: options are parsed here and handed to :mod:`dedkit.camera`; the results print
themselves (``text()``) or go out as JSON (``to_dict()``).
"""

from __future__ import annotations

import warnings

import click

from dedkit.camera import MODES, READ_AREAS, camera_names
from dedkit.cli.options import choice_option, float_option, json_option, optional_option
from dedkit.cli.output import emit_json, emit_report

#: exit status of ``camera check`` when a rule is violated (a result, not an error)
EXIT_VIOLATED = 1

camera_option = click.option(
    "--camera",
    "camera_name",
    required=True,
    metavar="|".join(camera_names()),
    help="Camera model (case-insensitive).",
)
mode_option = click.option(
    "--mode",
    required=True,
    type=click.Choice(MODES, case_sensitive=False),
    help="Acquisition mode (K3: linear or counting).",
)
exposure_option = click.option("--exposure", type=float, required=True, help="Exposure time, s.")
frame_time_option = click.option(
    "--frame-time", type=float, default=None, help="Frame time in dose fractionation, s."
)
settling_option = float_option("--settling", default=0.0, help="Drift settling, s.")
dose_frac_option = click.option(
    "--dose-fractionation", is_flag=True, help="Dose-fractionation mode (needs --frame-time)."
)
binning_option = float_option(
    "--binning", default=1.0, help="User binning (0.5 = super-resolution on K2/K3)."
)


@click.group("camera")
def camera():
    """Camera models (K2, K3, generic CCD and CMOS): SerialEM's timing rules, capture
    time, dose rate with coincidence-loss correction."""


@camera.command("info")
@click.option(
    "--camera",
    "camera_name",
    metavar="|".join(camera_names()),
    default=None,
    help="One camera (default: all).",
)
@json_option
def camera_info(camera_name, as_json):
    """Show the camera models: sizes, modes, binnings, readout, counts per electron."""
    from dedkit.camera import CAMERAS, get_camera

    cams = [get_camera(camera_name)] if camera_name else list(CAMERAS.values())
    if as_json:
        emit_json({c.name: c.to_dict() for c in cams})
    else:
        click.echo("\n".join(c.text() for c in cams))


@camera.command("check")
@camera_option
@mode_option
@exposure_option
@frame_time_option
@settling_option
@dose_frac_option
@json_option
@click.pass_context
def camera_check(
    ctx, camera_name, mode, exposure, frame_time, settling, dose_fractionation, as_json
):
    """Check exposure, frame time and drift settling against SerialEM's rules.

    Exit status 0 when valid, 1 when a rule is violated (each violation and the nearest
    valid values are printed), 2 for unusable input.
    """
    from dedkit.camera import check

    result = check(
        camera_name,
        mode,
        exposure,
        frame_time=frame_time,
        settling=settling,
        dose_fractionation=dose_fractionation,
    )
    emit_report(result, as_json)
    if not result.valid:
        ctx.exit(EXIT_VIOLATED)


@camera.command("capture-time")
@camera_option
@mode_option
@exposure_option
@binning_option
@choice_option(
    "--area",
    choices=list(READ_AREAS),
    default="full",
    help="Camera Setup area (Wide Half: full width, half height).",
)
@settling_option
@dose_frac_option
@frame_time_option
@click.option("--new-dark-reference", is_flag=True, help="The shot needs a new dark reference.")
@click.option(
    "--reduce-frames", is_flag=True, help="Saved super-resolution frames are reduced by 2."
)
@json_option
def camera_capture_time(
    camera_name,
    mode,
    exposure,
    binning,
    area,
    settling,
    dose_fractionation,
    frame_time,
    new_dark_reference,
    reduce_frames,
    as_json,
):
    """Model how long one capture takes, term by term."""
    from dedkit.camera import capture_time

    emit_report(
        capture_time(
            camera_name,
            mode,
            exposure,
            binning=binning,
            area=area,
            settling=settling,
            dose_fractionation=dose_fractionation,
            frame_time=frame_time,
            new_dark_reference=new_dark_reference,
            reduce_saved_frames=reduce_frames,
        ),
        as_json,
    )


@camera.command("dose-rate")
@camera_option
@mode_option
@click.option("--mean-counts", type=float, default=None, help="Mean image counts per pixel.")
@optional_option(
    "--true-rate",
    type=float,
    help="Instead of --mean-counts: a true dose rate (e/physical pixel/s) to get the "
    "expected mean counts.",
)
@exposure_option
@binning_option
@json_option
def camera_dose_rate(camera_name, mode, mean_counts, true_rate, exposure, binning, as_json):
    """Dose rate (e/physical pixel/s) from an image's mean, corrected for coincidence
    loss and detection efficiency in counting modes; or, with --true-rate, the mean
    counts a dose rate gives."""
    from dedkit.camera import DoseRateWarning, dose_rate, expected_counts

    if (mean_counts is None) == (true_rate is None):
        raise click.UsageError("give exactly one of --mean-counts and --true-rate")
    with warnings.catch_warnings():
        # the result carries its warnings; they are printed once, below
        warnings.simplefilter("ignore", DoseRateWarning)
        if mean_counts is not None:
            result = dose_rate(camera_name, mode, mean_counts, exposure, binning=binning)
        else:
            result = expected_counts(camera_name, mode, true_rate, exposure, binning=binning)
    emit_report(result, as_json)
    for line in result.warnings:
        click.echo(f"dedkit camera dose-rate: warning: {line}", err=True)
