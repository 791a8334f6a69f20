"""How the command line talks: progress bars, reports, JSON, one-line errors."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import json
import sys
import threading
from dataclasses import dataclass

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


@contextlib.contextmanager
def steps_progress_bar(*, quiet: bool = False):
    """Yield a ``progress(done, total, label)`` callback drawing one bar per label on
    stderr (terminals only): a job of several parts and steps (``dedkit demo``). A
    finished step's bar stays, as a log of the run; ``total`` may be None (a spinner)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=stderr) as bar:
        tasks: dict[str, int] = {}
        last = {"label": None, "done": 0}

        def update(done: int, total, label: str) -> None:
            if last["label"] not in (None, label):  # the previous step is over: full bar
                finished = max(int(last["done"]), 1)
                bar.update(tasks[last["label"]], completed=finished, total=finished)
                bar.stop_task(tasks[last["label"]])
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=None)
            else:
                bar.start_task(tasks[label])
            last.update(label=label, done=done)
            bar.update(tasks[label], completed=done, total=total)

        yield update


#: what a command says before its first numba kernel that is not in numba's cache is
#: compiled (issue 13 item 17: a cold first run sat silent at "0/?" for over a minute)
COMPILE_NOTICE = (
    "dedkit: compiling numba kernels (first run only: 10 s to a minute, cached for later runs)..."
)

_compile_lock = threading.Lock()
_compile_state = {"listening": False, "announced": False}


def announce_compilation() -> None:
    """Say once, on stderr, when a dedkit numba kernel starts compiling.

    Numba signals ``numba:compile`` only when a kernel is really compiled, not when it
    is loaded from the cache, so a warm run says nothing. Shown on terminals only, as the
    progress bars are (through the same console, so above a bar). numba is not imported
    here: commands that use no kernel do not pay for its import; the listener is
    registered as soon as anything else imports numba.
    """
    with _compile_lock:
        if _compile_state["listening"]:
            return
        _compile_state["listening"] = True
    if "numba" in sys.modules:
        _listen_for_compilation()
    else:
        sys.meta_path.insert(0, _AfterNumbaImport())


class _AfterNumbaImport(importlib.abc.MetaPathFinder):
    """Registers the compile listener right after numba's own import."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "numba":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _listen_for_compilation()

        spec.loader.exec_module = exec_module
        return spec


def _listen_for_compilation() -> None:
    from numba.core import event

    class CompileNotice(event.Listener):
        def on_start(self, ev) -> None:
            if _compile_state["announced"]:
                return
            function = getattr(ev.data.get("dispatcher"), "py_func", None)
            if not getattr(function, "__module__", "").startswith("dedkit."):
                return
            if not sys.stderr.isatty():
                return
            with _compile_lock:
                if _compile_state["announced"]:
                    return
                _compile_state["announced"] = True
            stderr.print(COMPILE_NOTICE, markup=False, soft_wrap=True)

        def on_end(self, ev) -> None:
            pass

    event.register("numba:compile", CompileNotice())


def emit_report(report, as_json: bool, warning_prefix: str | None = None) -> None:
    """Print a job report (a :class:`~dedkit.report.JobReport`, or a camera result: any
    object with ``text()`` and ``to_dict()``): its JSON on stdout, or
    its text; then, with a ``warning_prefix``, each of its warnings on stderr as
    ``PREFIX: warning: LINE``."""
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(report.text())
    if warning_prefix is not None:
        for line in report.warnings:
            click.echo(f"{warning_prefix}: warning: {line}", err=True)


#: how a job's warnings are introduced on stderr: ``dedkit COMMAND: warning: ...``
WARN_AS = "dedkit {command}"


def run_job(
    label: str, job, *args, quiet: bool, as_json: bool, warn_as: str | None = WARN_AS, **kwargs
):
    """Run ``job(*args, progress=..., **kwargs)`` under a progress bar labelled ``label``
    (terminals only, none with ``quiet``), print the report it returns and return it.

    Each warning of the report goes to stderr as ``PREFIX: warning: LINE``, ``PREFIX``
    being ``warn_as`` formatted with the report's ``command`` (None: not printed).
    """
    with progress_bar(label, quiet=quiet) as progress:
        report = job(*args, progress=progress, **kwargs)
    emit_report(report, as_json, _warning_prefix(warn_as, report))
    return report


def _warning_prefix(warn_as: str | None, report) -> str | None:
    return None if warn_as is None else warn_as.format(command=report.command)


@dataclass(frozen=True)
class JobFlags:
    """The shared ``--force``, ``--json`` and ``--quiet`` of one command run (see
    :func:`dedkit.cli.options.job_options`), and how its job's warnings are introduced.

    Examples
    --------
    >>> from dedkit.report import JobReport
    >>> def job(force, progress):
    ...     return JobReport("demo", output="out.mrc", counts={"frames": 2})
    >>> report = JobFlags(quiet=True).run("demo", job)
    demo: wrote out.mrc in 0.00 s (frames 2)
    """

    force: bool = False
    as_json: bool = False
    quiet: bool = False
    warn_as: str | None = WARN_AS

    def run(self, label: str, job, *args, **kwargs):
        """:func:`run_job` of ``job(*args, force=..., **kwargs)`` with these flags."""
        return run_job(
            label, job, *args, force=self.force, quiet=self.quiet, as_json=self.as_json,
            warn_as=self.warn_as, **kwargs,
        )  # fmt: skip

    def emit(self, report) -> None:
        """Print the report of a job that draws no progress bar (see :func:`run_job`)."""
        emit_report(report, self.as_json, _warning_prefix(self.warn_as, report))


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@contextlib.contextmanager
def session_display(label: str, *, quiet: bool = False):
    """Yield ``(progress, on_movie)`` callbacks for a session of many movies: one bar over
    the movies (done / failed / remaining, movies per hour; terminals only) and one line
    per finished movie on stderr (always, unless ``quiet``: a session's log)."""
    bar = None
    task = None
    state = {"text": ""}
    if not quiet and sys.stderr.isatty():
        columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeRemainingColumn())  # fmt: skip
        bar = Progress(*columns, console=stderr, transient=True)
        task = bar.add_task(label, total=None, status="")

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(task, completed=done, total=total, status=state["text"])

    def on_movie(row, counts) -> None:
        rate = counts.get("movies_per_hour")
        state["text"] = (
            f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed, "
            f"{counts['remaining'] + counts['running']} to go"
            + ("" if rate is None else f", {rate:.0f}/h")
        )
        if quiet:
            return
        if row is None:
            stderr.print(
                "dedkit align: stopping after the running movies (Ctrl-C again to stop now)",
                markup=False,
            )
        elif row["status"] == "failed":
            stderr.print(f"failed  {row['error']}", markup=False, soft_wrap=True)
        else:
            frc = row.get("frc_0143_A")
            frc = "" if frc is None else f", FRC 0.143 at {frc:.2f} A"
            stderr.print(
                f"aligned {row['name']}: drift {row['total_drift_px']:.1f} px (early "
                f"{row['early_drift_px']:.1f}){frc} in {row['seconds']:.1f} s",
                markup=False,
                soft_wrap=True,
            )
        if bar is not None:
            bar.update(task, status=state["text"])

    if bar is None:
        yield progress, on_movie
        return
    with bar:
        yield progress, on_movie
