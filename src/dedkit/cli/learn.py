"""``dedkit learn``: train and evaluate the CNN localiser (needs the ``learn`` extra)."""

from __future__ import annotations

import contextlib
import shlex
import sys

import click

from dedkit.cli.options import (
    FORCE_FIGURE_HELP,
    choice_option,
    count_option,
    figure_option,
    float_option,
    force_option,
    job_options,
    json_option,
    limit_option,
    optional_option,
    output_option,
    path_option,
    seed_option,
    threads_option,
)
from dedkit.cli.output import emit_report, stderr
from dedkit.errors import DedkitError

#: The names of dedkit.learn.recipes.RECIPES, the first the default (a test keeps them
#: equal); spelt out so that starting 'dedkit' does not import dedkit.learn
RECIPE_NAMES = ("shipped", "paper")


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise DedkitError(
            "dedkit learn needs PyTorch: pip install -c constraints.txt 'dedkit[learn]'"
        ) from None


@contextlib.contextmanager
def _training_bar(quiet: bool):
    """A progress bar with epoch and loss (stderr, terminals only)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epoch {task.fields[epoch]}  loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("train", total=None, epoch="-", loss="-")
        smoothed = {"loss": None}

        def update(done: int, total: int, epoch: int = 0, loss: float = float("nan")) -> None:
            s = smoothed["loss"]
            smoothed["loss"] = loss if s is None else 0.98 * s + 0.02 * loss
            bar.update(task, completed=done, total=total, epoch=epoch,
                       loss=f"{smoothed['loss']:.4f}")  # fmt: skip

        yield update


def _command_line(ctx: click.Context) -> str:
    """The command with every option spelt out (recorded on the model card)."""
    words = [ctx.command_path]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words.append(shlex.quote(str(value)))
        elif param.is_flag:
            if value and param.name not in ("as_json", "quiet"):
                words.append(param.opts[0])
        elif value is not None:
            words += [max(param.opts, key=len), shlex.quote(str(value))]
    return " ".join(words)


@click.group()
def learn():
    """Deep-learning electron localisation (the MÖNCH paper's CNN).

    Train the network (train), compare it with eta and the centroid (evaluate), and make
    training sets from a beam scan (scan-labels)."""


class RecipeOption(click.Option):
    """A training setting whose default is the chosen --recipe's; its help shows the
    value in each recipe (looked up when the help is shown: dedkit starts without
    importing dedkit.learn, which imports dedkit.hpd)."""

    def __init__(self, *args, setting: str, **kwargs):
        super().__init__(*args, default=None, **kwargs)
        self.setting = setting

    def get_help_record(self, ctx):
        from dedkit.learn.recipes import DEFAULT_RECIPE, RECIPES

        values = {name: recipe[self.setting] for name, recipe in RECIPES.items()}
        default = values.pop(DEFAULT_RECIPE)
        others = "; ".join(
            f"--recipe {name}: {value}" for name, value in values.items() if value != default
        )
        text = self.help
        self.help = f"{text}  [default: {default}{'; ' + others if others else ''}]"
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = text


def recipe_option(name: str, *, setting: str | None = None, help: str, type=None):
    """A training setting whose default is the chosen --recipe's (see RecipeOption);
    ``setting``, the recipe's key, is the option's name (``--batch-size``: ``batch_size``)
    unless given."""
    setting = setting or name.removeprefix("--").replace("-", "_")
    return click.option(name, cls=RecipeOption, setting=setting, type=type, help=help)


@learn.command("train")
@click.argument("dataset", type=click.Path())
@output_option("MODEL (.npz + .json).")
@click.option(
    "--recipe",
    type=click.Choice(RECIPE_NAMES),
    default=RECIPE_NAMES[0],
    show_default=True,
    help="Where the settings below start from. shipped: how the shipped model was trained "
    "(c16, Adam, cosine, 12 epochs; learns on a CPU). paper: the MÖNCH paper's settings "
    "(7 x 64 network, SGD lr 0.001, momentum 0.9, 100 epochs; a GPU's job). An option "
    "given explicitly replaces the recipe's value.",
)
@recipe_option(
    "--arch", help="Architecture: paper (7 x 64 channels), c48, c32, c24, c16, c8 (7 x N), c32x5."
)
@recipe_option("--epochs", type=click.IntRange(1), help="Passes over the training split.")
@recipe_option("--batch-size", type=click.IntRange(1), help="Clusters per step.")
@recipe_option("--optimizer", type=click.Choice(["sgd", "adam"]), help="Optimiser.")
@recipe_option("--lr", type=float, help="Learning rate.")
@recipe_option("--momentum", type=float, help="SGD momentum (unused by Adam).")
@recipe_option("--weight-decay", type=float, help="Weight decay.")
@recipe_option(
    "--schedule",
    type=click.Choice(["constant", "cosine"]),
    help="Learning-rate schedule (cosine: annealed to 0 over the run).",
)
@recipe_option(
    "--label-noise",
    type=float,
    help="Gaussian label noise sd (label smoothing), in --label-noise-unit.",
)
@recipe_option("--label-noise-unit", type=click.Choice(["px", "um"]), help="Unit of --label-noise.")
@recipe_option(
    "--pixel-noise",
    setting="pixel_noise_keV",
    type=float,
    help="Extra noise on the cluster's pixels, keV.",
)
@click.option("--no-augment", is_flag=True, help="No flips/rotations.")
@limit_option
@seed_option(default=0, help=None)
@threads_option("torch CPU threads (default: torch's).")
@choice_option(
    "--device",
    choices=["auto", "cpu", "cuda"],
    default="auto",
    help="auto: CUDA when available, else CPU.",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@job_options("Overwrite MODEL; discard an old checkpoint.", warn_as=None)
def learn_train(dataset, output, recipe, arch, epochs, batch_size, optimizer, lr, momentum,
                weight_decay, schedule, label_noise, label_noise_unit, pixel_noise,
                no_augment, limit, seed, threads, device, resume, job):  # fmt: skip
    """Train the localisation network on a training set.

    The set comes from 'dedkit sim dataset' or 'dedkit learn scan-labels'. A 7:3 split,
    8 symmetries, label and pixel noise, a checkpoint every epoch. The settings start
    from --recipe: 'shipped' (the default) learns on a CPU in minutes; 'paper' is the
    MÖNCH paper's network and SGD, which needs a GPU's hours."""
    _need_torch()
    from dedkit.jobs.learn import train_model
    from dedkit.learn.train import TrainConfig

    config = TrainConfig.from_recipe(
        recipe, arch=arch, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
        momentum=momentum, weight_decay=weight_decay, schedule=schedule,
        label_noise=label_noise, label_noise_unit=label_noise_unit,
        pixel_noise_keV=pixel_noise, augment=not no_augment, limit=limit, seed=seed,
        threads=threads, device=device,
    )  # fmt: skip
    command = _command_line(click.get_current_context())
    with _training_bar(job.quiet) as progress:
        report = train_model(dataset, output, config, resume=resume, force=job.force,
                             command=command, progress=progress)  # fmt: skip
    job.emit(report)


@learn.command("evaluate")
@click.argument("dataset", type=click.Path())
@path_option("--model", "-m", help="MODEL (.npz or .json; default: the shipped 200 keV model).")
@limit_option
@path_option("--eta-reference", help="Training set for the eta flat-field map (default: DATASET).")
@figure_option("Residual histograms, PNG.")
@force_option(FORCE_FIGURE_HELP)
@click.option(
    "--record",
    is_flag=True,
    help="Add the results to the card of --model (metrics.held_out:<dataset name>); "
    "needs --model: the shipped model is never changed.",
)
@json_option
def learn_evaluate(dataset, model, limit, eta_reference, figure, force, record, as_json):
    """Compare the CNN with eta and the centroid on a held-out set.

    RMSE and mean residual per axis of CNN, eta and centroid, for all, fully absorbed and
    backscattered electrons."""
    _need_torch()
    from dedkit.jobs.learn import evaluate_model

    report = evaluate_model(dataset, model, limit=limit, eta_reference=eta_reference,
                            figure=figure, force=force, record=record)  # fmt: skip
    emit_report(report, as_json)
    if report.figure_note:
        click.echo(f"dedkit learn evaluate: {report.figure_note}", err=True)


@learn.command("scan-labels")
@click.argument("clusters", type=click.Path())
@path_option(
    "--scan", "scan_csv", help="Measured scan: CSV of first_frame,last_frame[,x_px,y_px] per point."
)
@path_option(
    "--sim-run",
    help="Simulated scan: the folder of 'dedkit sim frames --pattern scan' (truth kept).",
)
@optional_option(
    "--sigma",
    type=float,
    help="Centroid resolution per axis, px (the paper: 1.83); default: from the data.",
)
@float_option(
    "--n-sigma",
    default=5.0,
    help="Reject clusters farther than N x sqrt(2) x sigma from the point.",
)
@count_option(
    "--min-clusters", default=20, low=2, help="Drop points with fewer single-electron clusters."
)
@choice_option(
    "--labels",
    choices=["scan", "truth"],
    default="scan",
    help="Label with the scan estimate, or (simulated runs) the true entry point.",
)
@output_option("TRAIN.h5 to write.")
@job_options(quiet=False, warn_as=None)
def learn_scan_labels(clusters, scan_csv, sim_run, sigma, n_sigma, min_clusters, labels,
                      output, job):  # fmt: skip
    """Make a training set from a beam scan (paper 2.2).

    Each point's impact is estimated as the mean charge centroid of its single-electron
    clusters; clusters far from it or not covering it are rejected."""
    from dedkit.jobs.learn import write_scan_training_set

    if (scan_csv is None) == (sim_run is None):
        raise click.UsageError("give exactly one of --scan SCAN.csv and --sim-run RUN_FOLDER")
    job.emit(write_scan_training_set(
        clusters, output, scan_csv=scan_csv, sim_run=sim_run, sigma_px=sigma,
        n_sigma=n_sigma, min_clusters=min_clusters, labels=labels, force=job.force,
    ))  # fmt: skip
