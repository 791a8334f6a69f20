"""How the command line talks: progress bars, reports, JSON, one-line errors."""

from __future__ import annotations

import contextlib
import json
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

stderr = Console(stderr=True, highlight=False)


@contextlib.contextmanager
def progress_bar(label: str, *, quiet: bool = False):
    """Yield a ``progress(done, total)`` callback drawing a bar on stderr (terminals only)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def emit_report(report, as_json: bool) -> None:
    """Print a job report: JSON on stdout, or a short summary (warnings on stderr)."""
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        nz, ny, nx = report.shape
        click.echo(
            f"{report.command}: wrote {report.output} ({nx} x {ny} x {nz}, {report.dtype}"
            + (f", {report.packing}" if report.packing != "none" else "")
            + f") in {report.seconds:.2f} s, {report.frames_per_second:.1f} frames/s, "
            f"{report.output_mb_per_second:.0f} MB/s"
        )
    for line in report.warnings():
        click.echo(f"dedkit {report.command}: warning: {line}", err=True)


def run_job(label: str, job, *args, quiet: bool, as_json: bool, **kwargs) -> None:
    """Run a streaming job with a progress bar and print its report."""
    with progress_bar(label, quiet=quiet) as progress:
        report = job(*args, progress=progress, **kwargs)
    emit_report(report, as_json)


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
