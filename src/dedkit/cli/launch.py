"""The ``dedkit`` console script: a stop during start-up is reported like any other.

Loading the command line (click, rich, numpy and dedkit's modules) takes a noticeable
moment; a Ctrl-C, SIGTERM or SIGHUP arriving then would end in a traceback or a silent
death. This module imports nothing heavy before it has taken over those signals, so such
a stop gets the usual one line and exit status 128 + N; nothing has been written yet.
Once the command has returned, late signals are ignored while Python shuts down.
"""

from __future__ import annotations

import os
import signal
import sys


class _Stopped(BaseException):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    raise _Stopped(signum)


def entry_point() -> None:
    """Run ``dedkit`` (see :func:`dedkit.cli.main.main`) and exit with its status."""
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, _stop)
    try:
        from dedkit.cli.main import main
    except _Stopped as stop:
        name = signal.Signals(stop.signum).name
        how = "interrupted" if stop.signum == signal.SIGINT else f"stopped by {name}"
        os.write(2, f"dedkit: {how} while starting; no output was written\n".encode())
        sys.exit(128 + stop.signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    status = main()
    # the command is over and its outputs are complete: a signal arriving now, while the
    # interpreter shuts down, would only turn a finished run into a silent death
    for signum in previous:
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(status)
