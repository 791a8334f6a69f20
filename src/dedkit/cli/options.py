"""The options several ``dedkit`` commands share, each declared once.

One name, one meaning, one default: ``--force`` always allows replacing what the command
writes, ``--json`` always prints the job's report as JSON on stdout, ``--quiet`` always
only hides the progress bar, ``--seed`` is always an integer. Where a shared option says
something particular to a command (what ``--force`` replaces, what ``--output`` names),
the command passes that text in; the declaration (name, type, default) stays here.

``job_options()`` declares ``--force``, ``--json`` and ``--quiet`` together and hands the
command one :class:`~dedkit.cli.output.JobFlags` that runs its job under a progress bar
and prints the report.

Below them, helpers for the declaration shapes the commands repeat (an optional path, a
count, a number or a choice with a shown default, a setting the job defaults): a command
declares each of its own options in one call. Options that only one command family
repeats live with it (``camera.py``; ``sim.py``: sensor and beam; ``hpd.py``: ``--gain``,
``--beam-energy``; ``stacks.py``: ``--rotflip``; ``study.py``: the studies' bounded options).

Examples
--------
>>> import click
>>> @click.command()
... @force_option()
... @json_option
... @quiet_option
... def job(force, as_json, quiet):
...     pass
>>> [p.name for p in job.params]
['force', 'as_json', 'quiet']
"""

from __future__ import annotations

import functools

import click

from dedkit.cli.output import WARN_AS, JobFlags
from dedkit.parallel.chunks import MAX_CHUNK_FRAMES
from dedkit.parallel.scheduler import MAX_WORKERS

__all__ = [
    # the shared options
    "FORCE_HELP",
    "FORCE_FOLDER_HELP",
    "FORCE_FIGURE_HELP",
    "force_option",
    "json_option",
    "quiet_option",
    "seed_option",
    "output_option",
    "workers_option",
    "dask_workers_option",
    "scheduler_option",
    "chunk_option",
    "frame_chunk_option",
    "threads_option",
    "figure_option",
    "limit_option",
    "input_argument",
    "output_argument",
    "mode_option",
    "job_options",
    # declaration helpers
    "path_option",
    "count_option",
    "float_option",
    "choice_option",
    "optional_option",
]

#: ``--force`` of a command writing one file
FORCE_HELP = "Overwrite an existing output."
#: ``--force`` of a command whose output may be a folder (frame stacks, hpd outputs)
FORCE_FOLDER_HELP = (
    "Overwrite an existing output (a folder only if dedkit wrote it and nothing was added)."
)
#: ``--force`` of a command whose only output is an optional figure
FORCE_FIGURE_HELP = "Overwrite an existing figure."


def force_option(help: str = FORCE_HELP):
    """``--force``: replace what the command writes (``help`` says what that is)."""
    return click.option("--force", is_flag=True, help=help)


#: ``--json``: the job's report as JSON on stdout (anything else goes to stderr)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")

#: ``-q/--quiet``: no progress bar (a bar is drawn on terminals only anyway)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")


def seed_option(*, default: int | None = 1, required: bool = False, help="Random seed."):
    """``--seed``: the random seed (an integer; ``help=None`` for none)."""
    if required:
        return click.option("--seed", type=int, required=True, help=help)
    return click.option("--seed", type=int, default=default, show_default=True, help=help)


def output_option(help: str, *, dest: str = "output", required: bool = True, default=None):
    """``-o/--output``: the file or folder the command writes."""
    return click.option(
        "--output", "-o", dest, required=required, type=click.Path(), default=default, help=help
    )


def workers_option(help: str, *, type=int):
    """``--workers``: worker processes (default: one per core, decided by the job)."""
    return click.option("--workers", type=type, default=None, help=help)


#: ``--workers`` of the Dask jobs (a LocalCluster; 0 runs in this process)
dask_workers_option = workers_option(
    f"LocalCluster workers, 0 to {MAX_WORKERS}; 0 runs in this process. [default: one per core]",
    type=click.IntRange(0, MAX_WORKERS),
)

#: ``--scheduler``: where the Dask jobs run
scheduler_option = click.option(
    "--scheduler",
    default=None,
    help="Dask scheduler address such as tcp://host:8786. [default: a LocalCluster when "
    "the run has several chunks]",
)


def chunk_option(dest: str, *, default: int, help: str, type=None):
    """``--chunk``: how much work one task (or one resumable part) takes."""
    return click.option(
        "--chunk",
        dest,
        type=type or click.IntRange(1),
        default=default,
        show_default=True,
        help=help,
    )


#: ``--chunk`` of the Dask jobs: frames per task
frame_chunk_option = chunk_option(
    "chunk_frames",
    default=1000,
    help="Frames per chunk (one Dask task).",
    type=click.IntRange(1, MAX_CHUNK_FRAMES),
)


def threads_option(help: str):
    """``--threads``: CPU threads of the computing library (default: its own)."""
    return click.option("--threads", type=click.IntRange(1), default=None, help=help)


def figure_option(help: str):
    """``--figure``: a figure to draw into (none unless asked; needs matplotlib)."""
    return click.option("--figure", type=click.Path(), default=None, help=help)


#: ``--limit``: the first N clusters of a training set
limit_option = click.option(
    "--limit",
    type=click.IntRange(1),
    default=None,
    help="Use only the first N clusters of DATASET (default: all).",
)


#: INPUT of the commands that read one frame stack
input_argument = click.argument("input", type=click.Path())
#: OUTPUT of the commands that write one frame stack (or file)
output_argument = click.argument("output", type=click.Path())


def mode_option(choices, *, help: str, default: str | None = None):
    """``-m/--mode``: the type of the frames written (``choices``: the names a job takes)."""
    return click.option(
        "--mode",
        "-m",
        type=click.Choice(choices),
        default=default,
        show_default=default is not None,
        help=help,
    )


def job_options(force_help: str = FORCE_HELP, *, quiet: bool = True, warn_as=WARN_AS):
    """``--force``, ``--json`` and (with ``quiet``) ``-q/--quiet``, in that order, handed to
    the command as one ``job`` argument: a :class:`~dedkit.cli.output.JobFlags` whose
    ``run`` calls the job with ``force`` under a progress bar and prints its report
    (warnings introduced by ``warn_as``, a format of the report's command).

    Examples
    --------
    >>> @click.command()
    ... @job_options(quiet=False)
    ... def write(job):
    ...     print(job.force, job.as_json)
    >>> [p.name for p in write.params]
    ['force', 'as_json']
    >>> write(["--json"], standalone_mode=False)
    False True
    """

    def decorate(f):
        @functools.wraps(f)
        def command(*args, force, as_json, quiet=False, **kwargs):
            return f(*args, job=JobFlags(force, as_json, quiet, warn_as), **kwargs)

        options = [force_option(force_help), json_option] + ([quiet_option] if quiet else [])
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def path_option(*decls: str, help: str):
    """An optional file or folder the command reads (``None`` when not given)."""
    return click.option(*decls, type=click.Path(), default=None, help=help)


def count_option(*decls: str, default: int, help: str, low: int = 1):
    """A number of things (frames, points, primaries): an integer >= ``low``."""
    return click.option(
        *decls, type=click.IntRange(low), default=default, show_default=True, help=help
    )


def float_option(*decls: str, default: float, help: str):
    """A number with a default, shown in the help."""
    return click.option(*decls, type=float, default=default, show_default=True, help=help)


def choice_option(*decls: str, choices, default: str, help: str):
    """One of ``choices``, ``default`` when not given (shown in the help)."""
    return click.option(
        *decls, type=click.Choice(choices), default=default, show_default=True, help=help
    )


def optional_option(*decls: str, type, help: str):
    """A setting of type ``type``; when not given (None) the job decides (``help`` says how)."""
    return click.option(*decls, type=type, default=None, help=help)
