"""``dedkit study ...``: the studies behind SerialEM's choices (:mod:`dedkit.studies`).

Every study prints its table (or, with ``--json``, only its report object) the same way
from the :class:`~dedkit.studies.StudyResult` its ``run`` returns. A figure is drawn only
when ``--figure PATH.png`` is given (a study run leaves no files behind unless asked; an
existing figure needs ``--force``).
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from dedkit.cli.output import emit_json

#: command name -> module in dedkit.studies
STUDIES = {
    "rounding-dqe": "rounding_dqe",
    "reduction-frc": "reduction_frc",
    "coincidence": "coincidence",
}


def render_table(result) -> str:
    """A study's table as plain aligned text: title, header, rows, then its notes."""
    headings = [heading for _, heading, _ in result.columns]
    body = []
    for row in result.rows:
        cells = []
        for key, _, fmt in result.columns:
            value = row.get(key)
            if value is None:
                cells.append("-")
            elif isinstance(value, str | bool):
                cells.append(str(value))
            elif fmt:
                cells.append(format(value, fmt))
            else:
                cells.append(format(value, "g") if isinstance(value, float) else str(value))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headings)]
    lines = [result.name, "  ".join(h.rjust(w) for h, w in zip(headings, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    lines += [""] + list(result.notes) if result.notes else []
    return "\n".join(lines)


def _float_list(ctx, param, text: str | None):
    """Option callback: '1,2.5,4' -> [1.0, 2.5, 4.0] (click names the option in errors)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise click.BadParameter("give at least one value")
    return values


def _int_list(ctx, param, text: str | None):
    """Option callback: '2,4' -> [2, 4]."""
    values = _float_list(ctx, param, text)
    if values is None:
        return None
    if any(v != int(v) for v in values):
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers")
    return [int(v) for v in values]


def run_study(name: str, *, as_json: bool, figure, force: bool, **options) -> None:
    """Run study ``name`` with ``options`` (None values left to the study's defaults),
    print its table or JSON, and draw its figure when asked."""
    if figure is not None:
        from dedkit.io.atomic import check_outputs

        check_outputs([], force=force, figures=[figure])
    module = importlib.import_module(f"dedkit.studies.{STUDIES[name]}")
    result = module.run(**{k: v for k, v in options.items() if v is not None})
    if as_json:
        emit_json(result.report)
    else:
        click.echo(render_table(result))
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
    module.plot(result, figure)
    click.echo(f"dedkit study {name}: figure written to {figure}", err=as_json)


def _common(f):
    f = click.option("--force", is_flag=True, help="Overwrite an existing figure.")(f)
    f = click.option(
        "--figure",
        type=click.Path(),
        default=None,
        help="Draw the study's figure into this file: .png, .pdf or .svg (none unless asked).",
    )(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print only the JSON report.")(f)
    f = click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")(f)
    return f


@click.group("study")
def study():
    """Reproduce the studies behind SerialEM's choices, with errors, next to the
    figures the SerialEM manual gives (see docs/validation.md)."""


@study.command("rounding-dqe")
@_common
@click.option(
    "--samples",
    type=click.IntRange(min=1000),
    default=None,
    help="Trials per dose (default 2e7).",
)
@click.option(
    "--doses", default=None, callback=_float_list, help="Electrons per pixel, comma-separated."
)
def rounding_dqe_command(seed, as_json, figure, force, samples, doses):
    """DQE lost by saving normalised frames as integers (x16): the seed's five-step
    model, float and rounded outputs of the same draws."""
    run_study(
        "rounding-dqe",
        as_json=as_json,
        figure=figure,
        force=force,
        seed=seed,
        samples=samples,
        doses=doses,
    )


@study.command("reduction-frc")
@_common
@click.option("--size", type=int, default=None, help="Super-resolution image size (1024).")
@click.option("--repeats", type=int, default=None, help="Specimens/pairs per dose (12).")
@click.option(
    "--doses", default=None, callback=_float_list, help="e/physical pixel per image (5,10,20,40)."
)
@click.option("--factors", default=None, callback=_int_list, help="Reduction factors (2,4).")
@click.option(
    "--filter",
    "filter_name",
    type=click.Choice(("box", "blackman", "triangle", "mitchell", "lanczos2", "lanczos3")),
    default=None,
    help="Antialias filter (lanczos3).",
)
@click.option("--slope", type=float, default=None, help="Specimen power ~ f^-slope (2).")
@click.option("--contrast", type=float, default=None, help="Specimen contrast (0.3).")
@click.option(
    "--sigma", type=float, default=None, help="Localisation error, physical pixels (0.2)."
)
@click.option("--camera", type=click.Choice(("K2", "K3")), default=None, help="K2 or K3 (K2).")
@click.option("--dose-rate", type=float, default=None, help="True e/physical pixel/s (5).")
def reduction_frc_command(
    seed,
    as_json,
    figure,
    force,
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
    Lanczos-3 against binning."""
    run_study(
        "reduction-frc",
        as_json=as_json,
        figure=figure,
        force=force,
        seed=seed,
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
    return names


@study.command("coincidence")
@_common
@click.option("--cameras", default=None, callback=_name_list, help="Cameras (K2,K3).")
@click.option(
    "--k2-rates",
    default=None,
    callback=_float_list,
    help="True K2 dose rates, e/physical pixel/s (other cameras scaled).",
)
@click.option("--exposure", type=float, default=None, help="Seconds of the flat field (1).")
@click.option("--pixels", type=int, default=None, help="Physical pixels counted (1e6).")
def coincidence_command(seed, as_json, figure, force, cameras, k2_rates, exposure, pixels):
    """Coincidence loss of K2/K3 counting against the seed's figures."""
    run_study(
        "coincidence",
        as_json=as_json,
        figure=figure,
        force=force,
        seed=seed,
        cameras=cameras,
        k2_rates=k2_rates,
        exposure=exposure,
        pixels=pixels,
    )
