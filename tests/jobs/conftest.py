"""Fixtures for the direct tests of the job functions: the sample folder of
``dedkit sample`` (made once per session, read only by the tests) and an in-process CLI
runner, to check that a job called from Python writes what the command writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dedkit.cli.main import main
from dedkit.jobs.demo import write_samples


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Path:
    """The sample folder (K3-like 4-bit stack, gain reference, defect list, MÖNCH run).

    Shared by the whole session: tests write their outputs elsewhere (``tmp_path``)."""
    folder = tmp_path_factory.mktemp("jobs") / "sample"
    write_samples(folder, frames=2, seed=1)
    return folder


@pytest.fixture
def cli(capsys):
    """``cli(*args)`` runs ``dedkit ARGS`` in-process; returns (status, stdout, stderr)."""

    def _run(*args):
        capsys.readouterr()
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return status, out, err

    return _run


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
