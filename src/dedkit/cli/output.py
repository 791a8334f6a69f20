"""How the command line talks: progress bars, reports, JSON, one-line errors."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import json
import sys
import threading

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


def run_job(label: str, job, *args, quiet: bool, as_json: bool, **kwargs) -> None:
    """Run a streaming stack job with a progress bar and print its report (warnings as
    ``dedkit COMMAND: warning: ...``)."""
    with progress_bar(label, quiet=quiet) as progress:
        report = job(*args, progress=progress, **kwargs)
    emit_report(report, as_json, f"dedkit {report.command}")


def emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
