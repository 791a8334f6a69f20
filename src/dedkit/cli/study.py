"""``dedkit study ...``: the studies behind SerialEM's choices (:mod:`dedkit.studies`).

Every study prints its table (or, with ``--json``, only its report object) the same way
from the :class:`~dedkit.studies.StudyResult` (a JobReport) its ``run`` returns. A figure
is drawn only when ``--figure PATH.png`` is given (a study run leaves no files behind
unless asked; an existing figure needs ``--force``).
"""

from __future__ import annotations

import importlib.util

import click

from dedkit.cli.options import (
    FORCE_FIGURE_HELP,
    choice_option,
    figure_option,
    force_option,
    json_option,
    quiet_option,
    seed_option,
)
from dedkit.cli.output import emit_report, progress_bar
from dedkit.studies import LIMITS


def number_list(
    *, integer: bool = False, low: float, high: float, max_count: int = 32, low_open=False
):
    """An option callback parsing '1,2.5,4' into a list of numbers within ``low`` ..
    ``high`` (``low`` itself excluded with ``low_open``), at most ``max_count`` of them:
    every list option of the studies is bounded, so that no option can make a study
    allocate or run without limit. Click names the option in its one-line error."""
    kind = "integers" if integer else "numbers"
    bound = f"{'>' if low_open else '>='} {low:g} and <= {high:g}"

    def callback(ctx, param, text: str | None):
        if text is None:
            return None
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a comma-separated list of {kind}") from None
        if not values:
            raise click.BadParameter("give at least one value")
        if len(values) > max_count:
            raise click.BadParameter(f"give at most {max_count} values, got {len(values)}")
        for v in values:
            if not (low < v <= high if low_open else low <= v <= high):
                raise click.BadParameter(f"{v:g} is out of range: each value must be {bound}")
            if integer and v != int(v):
                raise click.BadParameter(f"{text!r} is not a comma-separated list of integers")
        return [int(v) for v in values] if integer else values

    return callback


def run_study(
    name: str, *, as_json: bool, figure, force: bool, quiet: bool = False, **options
) -> None:
    """Run study ``name`` with ``options`` (:func:`dedkit.jobs.study.run_study`) under a
    progress bar (terminals only), print its table or JSON, and draw its figure when
    asked."""
    from dedkit.jobs.study import run_study as run

    with progress_bar(name, quiet=quiet) as progress:
        result = run(name, figure=figure, force=force, progress=progress, **options)
    emit_report(result, as_json)
    if figure is None:
        return
    # matplotlib is optional (the 'test' extra): without it the table still counts
    if importlib.util.find_spec("matplotlib") is None:
        click.echo(
            f"dedkit study {name}: no figure written: matplotlib is not installed "
            "(pip install matplotlib)",
            err=True,
        )
        return
    from dedkit.jobs.study import write_study_figure

    write_study_figure(result, figure)
    click.echo(f"dedkit study {name}: figure written to {figure}", err=as_json)


def _common(f):
    f = quiet_option(f)
    f = force_option(FORCE_FIGURE_HELP)(f)
    f = figure_option(
        "Draw the study's figure into this file: .png, .pdf or .svg (none unless asked)."
    )(f)
    f = json_option(f)
    return seed_option()(f)


@click.group("study")
def study():
    """Reproduce the studies behind SerialEM's choices, with errors, next to the
    figures the SerialEM manual gives (see docs/validation.md)."""


class StudyOptions:
    """Declares the options of one study, each bounded by its entry in
    ``LIMITS[study]`` (:data:`dedkit.studies.LIMITS`): the range is written once, there.

    Examples
    --------
    >>> frc = StudyOptions("reduction-frc")
    >>> @click.command()
    ... @frc.option("size", help="Image size.")
    ... @frc.numbers("factors", integer=True, help="Reduction factors.")
    ... def run(size, factors):
    ...     print(size, factors)
    >>> run(["--size", "64", "--factors", "2,4"], standalone_mode=False)
    64 [2, 4]
    """

    def __init__(self, study: str):
        self.limits = LIMITS[study]

    def option(self, key: str, *decls: str, default=None, min_open: bool = False, help: str):
        """``--KEY`` (or ``decls``) bounded by ``LIMITS[study][key]``: integers when both
        bounds are, else numbers (``min_open``: the low bound itself excluded). Without
        a ``default`` the study decides (None); a default is shown in the help."""
        low, high = self.limits[key]
        kind = (
            click.IntRange if isinstance(low, int) and isinstance(high, int) else click.FloatRange
        )
        decls = decls or (_flag(key),)
        shown = {} if default is None else {"show_default": True}
        return click.option(
            *decls, type=kind(low, high, min_open=min_open), default=default, help=help, **shown
        )

    def numbers(
        self,
        key: str,
        *,
        count: str | None = None,
        integer: bool = False,
        low_open: bool = False,
        help: str,
    ):
        """``--KEY``: a comma-separated list of values bounded by ``LIMITS[study][key]``,
        at most ``LIMITS[study][count]`` (default ``n_KEY``) of them (see
        :func:`number_list`); None when not given (the study decides)."""
        low, high = self.limits[key]
        max_count = self.limits[count or f"n_{key}"]
        callback = number_list(
            integer=integer, low=low, high=high, max_count=max_count, low_open=low_open
        )
        return click.option(_flag(key), default=None, callback=callback, help=help)


def _flag(key: str) -> str:
    """A LIMITS key as an option name: ``dose_rate`` -> ``--dose-rate``."""
    return "--" + key.replace("_", "-")


_DQE = StudyOptions("rounding-dqe")
_FRC = StudyOptions("reduction-frc")
_COINCIDENCE = StudyOptions("coincidence")
_ALIGN = StudyOptions("align-accuracy")
_REUSE = StudyOptions("track-reuse")


@study.command("rounding-dqe")
@_common
@_DQE.option("samples", help="Trials per dose (default 2e7).")
@_DQE.numbers(
    "doses",
    low_open=True,
    help="Electrons per pixel, comma-separated, each > 0 and <= 1000 (default 0.1,0.5,1,2).",
)
def rounding_dqe_command(seed, as_json, figure, force, quiet, samples, doses):
    """DQE lost by saving normalised frames as integers (x16): the seed's five-step
    model, float and rounded outputs of the same draws."""
    run_study(
        "rounding-dqe",
        as_json=as_json,
        figure=figure,
        force=force,
        quiet=quiet,
        seed=seed,
        samples=samples,
        doses=doses,
    )


@study.command("reduction-frc")
@_common
@choice_option(
    "--specimen",
    "specimen_kind",
    choices=("band-limited", "power-law"),
    default="band-limited",
    help="band-limited: a white specimen behind an aperture at each reduced image's "
    "Nyquist, at low SNR (the seed's conditions: about +35 % by 2, +50 % by 4); "
    "power-law: the first specimen, power ~ f^-slope for all factors (signal beyond the "
    "reduced Nyquist, higher SNR: smaller gains). See docs/validation.md.",
)
@_FRC.option(
    "size", help="Super-resolution image size (default 2048 band-limited, 1024 power-law)."
)
@_FRC.option("repeats", help="Specimens/pairs per dose (default 12).")
@_FRC.numbers(
    "doses",
    low_open=True,
    help="e/physical pixel per image, comma-separated, each > 0 and <= 1000 (default "
    "20,30,40 band-limited, 5,10,20,40 power-law).",
)
@_FRC.numbers("factors", integer=True, help="Reduction factors, integers 2 to 16 (default 2,4).")
@choice_option(
    "--filter",
    "filter_name",
    choices=("box", "blackman", "triangle", "mitchell", "lanczos2", "lanczos3"),
    default="lanczos3",
    help="Antialias filter.",
)
@_FRC.option("slope", help="Specimen power ~ f^-slope (default 0 band-limited, 2 power-law).")
@_FRC.option(
    "contrast",
    help="Specimen contrast: per pixel before the aperture (band-limited, default 0.1) or "
    "of the image (power-law, default 0.3).",
)
@_FRC.option(
    "localisation_sigma", "--sigma", default=0.2, help="Localisation error, physical pixels."
)
@click.option(
    "--camera", type=click.Choice(("K2", "K3")), default="K2", show_default=True, help="Camera."
)
@_FRC.option("dose_rate", default=5.0, min_open=True, help="True e/physical pixel/s.")
def reduction_frc_command(
    seed,
    as_json,
    figure,
    force,
    quiet,
    specimen_kind,
    size,
    repeats,
    doses,
    factors,
    filter_name,
    slope,
    contrast,
    sigma,
    camera,
    dose_rate,
):
    """FRC of pairs of simulated super-resolution counting images reduced by 2 and 4:
    Lanczos-3 against binning, next to the seed's +35 % and +50 %. The default
    (band-limited specimen, 2048 x 2048, 12 pairs at each of 3 doses) takes about a
    minute; --specimen power-law is the first specimen's study."""
    run_study(
        "reduction-frc",
        as_json=as_json,
        figure=figure,
        force=force,
        quiet=quiet,
        seed=seed,
        specimen_kind=specimen_kind,
        size=size,
        repeats=repeats,
        doses=doses,
        factors=factors,
        filter=filter_name,
        slope=slope,
        contrast=contrast,
        localisation_sigma=sigma,
        camera=camera,
        dose_rate=dose_rate,
    )


def _name_list(ctx, param, text: str | None):
    """Option callback: 'K2,K3' -> ['K2', 'K3']."""
    if text is None:
        return None
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give at least one name")
    n_cameras = _COINCIDENCE.limits["n_cameras"]
    if len(names) > n_cameras:
        raise click.BadParameter(f"give at most {n_cameras} cameras")
    return names


@study.command("coincidence")
@_common
@click.option("--cameras", default=None, callback=_name_list, help="Cameras (default K2,K3).")
@_COINCIDENCE.numbers(
    "k2_rates",
    count="n_rates",
    low_open=True,
    help="True K2 dose rates, e/physical pixel/s, below the K2's saturation at 38.5 "
    "(other cameras scaled; default 1,2,5,7.5,10,15,20,25,30).",
)
@_COINCIDENCE.option("exposure", default=1.0, min_open=True, help="Seconds of the flat field.")
@_COINCIDENCE.option("pixels", default=1_000_000, help="Physical pixels counted.")
def coincidence_command(seed, as_json, figure, force, quiet, cameras, k2_rates, exposure, pixels):
    """Coincidence loss of K2/K3 counting against the seed's figures."""
    run_study(
        "coincidence",
        as_json=as_json,
        figure=figure,
        force=force,
        quiet=quiet,
        seed=seed,
        cameras=cameras,
        k2_rates=k2_rates,
        exposure=exposure,
        pixels=pixels,
    )


@study.command("align-accuracy")
@_common
@_ALIGN.option("size", default=1024, help="Movie size, pixels (square).")
@_ALIGN.option("n_frames", "--frames", default=30, help="Frames per movie.")
@_ALIGN.numbers(
    "doses",
    low_open=True,
    help="Electrons per pixel per frame, comma-separated (default 0.5,1,2).",
)
@_ALIGN.option("drift", default=15.0, help="Path length of the global track, pixels.")
@_ALIGN.option(
    "local_amplitude",
    "--local",
    default=3.0,
    help="Largest local displacement, pixels (0: global movies only).",
)
def align_accuracy_command(seed, as_json, figure, force, quiet, size, frames, doses, drift, local):
    """dedkit's aligner on simulated counting movies with known motion (issue 15): RMS
    error of the shifts and of the local field (5 x 5 patches), FRC of the aligned sum with
    the true specimen. The default (1024 x 1024 x 30 at 0.5, 1 and 2 e/pixel/frame) takes
    about two minutes; benchmarks/validate_align.py runs torch-motion-correction beside
    it."""
    run_study(
        "align-accuracy",
        as_json=as_json,
        figure=figure,
        force=force,
        quiet=quiet,
        seed=seed,
        size=size,
        n_frames=frames,
        doses=doses,
        drift=drift,
        local_amplitude=local,
    )


@study.command("track-reuse")
@_common
@_REUSE.option("n", "-n", "--electrons", default=20000, help="Electrons in each set.")
@_REUSE.option("library_size", "--library", default=10000, help="Tracks in the library.")
@_REUSE.option("bootstrap", default=300, help="Bootstrap replicates of the standard errors.")
@click.option("--energy", type=click.FloatRange(20, 300), default=200.0, show_default=True,
              help="Beam energy, keV (the CNN's model must be of it).")  # fmt: skip
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Geant4 worker processes (default one per core).")  # fmt: skip
@click.option("--no-mirror", is_flag=True, help="Rotate the placed tracks without mirroring.")
def track_reuse_command(
    seed, as_json, figure, force, quiet, electrons, library, bootstrap, energy, workers, no_mirror
):
    """Localisation (centroid, eta, CNN RMSE) of fresh Geant4 electrons vs placements of a
    track library, rotated about the beam axis (issue 17). The default (20000 electrons,
    10000 tracks) takes about half a minute on one core."""
    run_study(
        "track-reuse",
        as_json=as_json,
        figure=figure,
        force=force,
        quiet=quiet,
        seed=seed,
        n=electrons,
        library_size=library,
        bootstrap=bootstrap,
        energy_keV=energy,
        workers=workers,
        mirror=not no_mirror,
    )
