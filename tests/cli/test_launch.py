"""The console script (issue 13 item 10): a stop while dedkit is still loading gets the
usual one line and exit status 128 + N, not a traceback or a silent death."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dedkit

# the signal arrives while dedkit.cli.main (click, rich, numpy, dedkit's modules) loads
_STOP_WHILE_LOADING = """
import builtins, os, signal, sys
from dedkit.cli import launch

real_import = builtins.__import__

SIGNAL = getattr(signal, sys.argv[1])

def importing(name, *args, **kwargs):
    if name == "dedkit.cli.main":
        os.kill(os.getpid(), SIGNAL)
    return real_import(name, *args, **kwargs)

builtins.__import__ = importing
sys.argv = ["dedkit", "--version"]
launch.entry_point()
"""


@pytest.mark.parametrize(
    ("signame", "status"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)]
)
def test_issue13_item10_a_stop_while_starting_is_one_line(signame, status):
    env = {**os.environ, "PYTHONPATH": str(Path(dedkit.__file__).parents[1])}
    r = subprocess.run(
        [sys.executable, "-c", _STOP_WHILE_LOADING, signame],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == status, r
    assert r.stderr.startswith("dedkit: ") and "Traceback" not in r.stderr, r
    assert len(r.stderr.splitlines()) == 1 and "no output was written" in r.stderr
    assert r.stdout == ""
