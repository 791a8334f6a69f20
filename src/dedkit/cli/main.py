"""Entry point of the ``dedkit`` command.

Commands are thin: they turn options into a call of a :mod:`dedkit.jobs` function and
print its report. Errors in the user's input end the command with one line on stderr and
exit status 2; nothing is left half-written (outputs are renamed into place only when
complete).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import warnings

import click

from dedkit import __version__
from dedkit.cli.align import align
from dedkit.cli.camera import camera
from dedkit.cli.hpd import hpd, raw
from dedkit.cli.learn import learn
from dedkit.cli.options import (
    force_option,
    json_option,
    output_option,
    quiet_option,
    seed_option,
)
from dedkit.cli.output import announce_compilation, emit_report, steps_progress_bar
from dedkit.cli.reduce import reduce_command
from dedkit.cli.sim import sim
from dedkit.cli.stacks import STACK_COMMANDS
from dedkit.cli.study import study
from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import DISK_FULL_ERRNOS, published, reset_published

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130


@click.group(no_args_is_help=False, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dedkit")
def cli():
    """dedkit: raw frames from direct electron detectors to the best images their
    physics allows (K2/K3 frame stacks as SerialEM saves them, IMOD-compatible)."""


def _frames_option(default: int, help: str):
    """``--frames`` of the built-in counting-camera stack (sample)."""
    return click.option(
        "--frames", type=click.IntRange(1, 200), default=default, show_default=True, help=help
    )


#: exit status of ``dedkit demo`` when it ran but a check failed
EXIT_CHECK_FAILED = 1


@cli.command()
@click.argument("part", type=click.Choice(["camera", "hpd"]), required=False, metavar="[PART]")
@output_option(
    "Folder to write: the figures, report.html and report.json, and each part's files "
    "(one part: in the folder itself; both: in its camera/ and hpd/).  "
    "[default: dedkit-demo]",
    dest="outdir",
    required=False,
    default="dedkit-demo",
)
@click.option(
    "--full",
    is_flag=True,
    help="Run the paper's scale instead of the few-minute default: 40 e/A2 on the "
    "MÖNCH (6.4 million electrons, about 12 minutes on 2 cores, 7 GB of raw frames "
    "while it runs) and half a K3 for the camera.",
)
@seed_option()
@force_option("Replace a previous demo folder (only one dedkit wrote, nothing added).")
@quiet_option
@json_option
@click.pass_context
def demo(ctx, part, outdir, full, seed, force, quiet, as_json):
    """Run the main job on built-in data and check it against the truth.

    PART: camera, hpd, or both when omitted. camera: a simulated K3 movie with
    beam-induced drift, gain and defects as SerialEM saves it, normalised, aligned and
    dose weighted; checked with the FRC against the true specimen and the shift error
    against the true drift. hpd: gold nanoparticles on carbon on the MÖNCH at 200 keV
    (the MÖNCH paper's figure 6): the Au {111} ring at 2.35 A with the CNN, not with
    the charge centroid; writes image_centroid.mrc and image_cnn.mrc.

    Prints a table of the checks (value, target, PASS/FAIL) and the path of
    report.html, which opens from the file. Exit status 0 when every check passes, 1
    when one fails, 2 on an error.
    """
    from dedkit.jobs.demo import run_demo

    parts = (part,) if part else ("camera", "hpd")
    with steps_progress_bar(quiet=quiet) as progress:
        summary = run_demo(outdir, parts=parts, full=full, seed=seed, force=force,
                           progress=progress)  # fmt: skip
    emit_report(summary, as_json, "dedkit demo")
    if not summary.passed:
        click.echo(
            f"dedkit demo: {len(summary.failed)} check(s) failed: " + "; ".join(summary.failed),
            err=True,
        )
        ctx.exit(EXIT_CHECK_FAILED)


@cli.command()
@click.argument("folder", type=click.Path(), default="dedkit-sample")
@_frames_option(4, "Frames of the counting-camera stack.")
@seed_option()
@force_option("Replace a previous sample in FOLDER.")
@json_option
def sample(folder, frames, seed, force, as_json):
    """Write the files the README's and guides' examples use into FOLDER (default
    dedkit-sample): a K3-like frame stack as SerialEM saves it (frames.mrc, frames.tif,
    SuperRef.mrc, defects.txt, frames.mrc.mdoc) and a small MÖNCH run
    (run_master_0.json, run_dark_master_0.json, run_gain.npy). Run the examples in
    FOLDER."""
    from dedkit.jobs.demo import write_samples

    emit_report(write_samples(folder, frames=frames, seed=seed, force=force), as_json)


for command in STACK_COMMANDS:
    cli.add_command(command)
cli.add_command(align)
cli.add_command(raw)
cli.add_command(hpd)
cli.add_command(camera)
cli.add_command(reduce_command)
cli.add_command(study)
cli.add_command(sim)
cli.add_command(learn)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C is: every writer then
    removes its temporaries on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


#: the signal being acted on, until main() has reported it (see _raise_terminated)
_pending_signal: list[int] = []
#: set when a command was stopped by a signal (see _signals_as_interrupts)
_stopped: list[bool] = []
#: seconds after which a signal not yet reported is sent again
RESEND_SECONDS = 0.3


def _raise_terminated(signum, frame):
    """Raise :class:`Terminated` where the main thread is, as Ctrl-C raises
    KeyboardInterrupt.

    Python drops an exception raised inside a finalizer (``__del__``) or a ctypes
    callback (numba compiling calls back into Python), and the command would run on as if
    nothing happened. So until main() has reported the stop, the signal is sent again
    every :data:`RESEND_SECONDS`; a resent one that finds the stop already on its way out
    (a Terminated being handled, e.g. a writer removing its temporary in ``except`` or
    ``finally``) does nothing.
    """
    error = sys.exc_info()[1]
    while error is not None:
        if isinstance(error, Terminated):
            return
        error = error.__context__
    if not _pending_signal:
        _pending_signal.append(signum)
        _resend_later(signum)
    raise Terminated(signum)


def _resend_later(signum: int) -> None:
    import threading

    def resend():
        if _pending_signal:
            os.kill(os.getpid(), signum)
            _resend_later(signum)

    timer = threading.Timer(RESEND_SECONDS, resend)
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def _signals_as_interrupts():
    """SIGTERM and SIGHUP handled as Ctrl-C for the command's duration (main thread only;
    the previous handlers are restored)."""
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread: leave the handlers alone
            break
    hook = sys.unraisablehook

    def unraisable(info):
        # a stop raised where Python cannot raise it (a finalizer, a ctypes callback) is
        # sent again (_raise_terminated): not worth "Exception ignored" and a traceback
        if not isinstance(info.exc_value, Terminated):
            hook(info)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        _pending_signal.clear()  # no resending once the command is over
        # after a stop, what the stopped code left half built (numba's LLVM objects in the
        # middle of a compilation, say) is finalised at exit, where its complaints would
        # follow our one line as "Exception ignored" tracebacks: the process is ending
        # because of the stop, so they are not reported
        sys.unraisablehook = _ignore_unraisable if _stopped else hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ignore_unraisable(info) -> None:
    """sys.unraisablehook for the rest of a process whose command was stopped."""


def _interrupted(error: BaseException) -> int:
    """Say truly what was written before the interrupt; exit status 128 + the signal
    (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as shells report it."""
    _pending_signal.clear()  # reported: no more resending
    _stopped.append(True)
    signum = getattr(error, "signum", signal.SIGINT)
    name = signal.Signals(signum).name
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {name}"
    click.echo(f"dedkit: {how}; {_written_so_far()}", err=True)
    return 128 + int(signum)


def _written_so_far() -> str:
    done = published()
    if not done:
        return "no output was written"
    names = ", ".join(str(p) for p in done)
    return f"written before that: {names}; nothing else was written"


def main(argv=None) -> int:
    """Run the command line; returns the exit status instead of raising.

    Exit status: 0 done, 2 bad input (or an output that cannot be written), 3 internal
    error, 128 + N when stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). A
    stopped command leaves no temporary files and says which outputs, if any, were
    complete before it stopped.
    """
    # tifffile logs its complaints about damaged files; dedkit reports them as one line
    logging.getLogger("tifffile").setLevel(logging.CRITICAL + 1)
    warnings.showwarning = _one_line_warning
    announce_compilation()
    reset_published()
    _pending_signal.clear()
    _stopped.clear()
    with _signals_as_interrupts():
        try:
            return _run(argv)
        except KeyboardInterrupt as error:
            # a signal arriving while an error is being reported
            return _interrupted(error)


def _run(argv) -> int:
    try:
        # a command ending with ctx.exit(status) (a result, e.g. 'camera check' finding a
        # violated rule) raises Exit with that status. The context is made and invoked
        # here rather than through cli.main, which prints an empty line to stderr on
        # Ctrl-C before our one-line message
        args = sys.argv[1:] if argv is None else list(argv)
        with cli.make_context("dedkit", args) as ctx:
            status = cli.invoke(ctx)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort as e:
        context = e.__context__
        return _interrupted(context if isinstance(context, KeyboardInterrupt) else e)
    except click.ClickException as e:
        # usage errors: one line, as for any other bad input
        command = e.ctx.command_path if getattr(e, "ctx", None) else "dedkit"
        click.echo(f"{command}: error: {one_line(e.format_message())} (see --help)", err=True)
        return EXIT_BAD_INPUT
    except DedkitError as e:
        click.echo(f"dedkit: error: {e}{_also_written()}", err=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        reason = e.strerror or one_line(e)
        if e.errno in DISK_FULL_ERRNOS and not e.filename:
            reason = f"cannot write: {reason}"
        click.echo(f"dedkit: error: {where}{reason}{_also_written()}", err=True)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback
        if os.environ.get("DEDKIT_DEBUG"):
            raise
        click.echo(
            f"dedkit: internal error: {type(e).__name__}: {one_line(e)} "
            "(set DEDKIT_DEBUG=1 for the traceback)",
            err=True,
        )
        return EXIT_INTERNAL
    return status if isinstance(status, int) else 0


def _also_written() -> str:
    # a command failing after some of its outputs were complete says which
    done = published()
    return f" (written before the error: {', '.join(map(str, done))})" if done else ""


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"dedkit: warning: {one_line(message)}", err=True)


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
