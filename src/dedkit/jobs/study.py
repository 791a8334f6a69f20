"""The jobs behind ``dedkit study ...``: run a study by name, write its figure to a file.

The studies (:mod:`dedkit.studies`) compute and draw; they write no files.
:func:`run_study` checks the figure's path before the (long) run and runs the study by
its command name; :func:`write_study_figure` writes a study's figure, built by its
module's ``figure(result)``, at the study's ``FIGURE_DPI`` through
:func:`dedkit.io.figures.save_figure` (atomically, the format from the suffix).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from dedkit.io.atomic import check_outputs
from dedkit.io.figures import save_figure

__all__ = ["STUDIES", "run_study", "write_study_figure"]

#: command name -> module in dedkit.studies
STUDIES = {
    "rounding-dqe": "rounding_dqe",
    "reduction-frc": "reduction_frc",
    "coincidence": "coincidence",
    "align-accuracy": "align_accuracy",
    "track-reuse": "track_reuse",
}


def run_study(name: str, *, figure=None, force: bool = False, progress=None, **options):
    """Run the study ``name`` with ``options`` (None values left to the study's defaults).

    Parameters
    ----------
    name : str
        The study's command name, a key of :data:`STUDIES`.
    figure : path-like, optional
        Where its figure will be written (:func:`write_study_figure`): checked here,
        before the run, so that a refused path costs no run.
    force : bool
        An existing ``figure`` may be replaced.
    progress : callable, optional
        Progress callback, handed to the study's ``run``.
    **options
        The study's ``run`` keywords.

    Returns
    -------
    dedkit.studies.StudyResult

    Examples
    --------
    >>> result = run_study("rounding-dqe", samples=100_000, doses=(1.0,), seed=None)
    >>> result.name
    'rounding-dqe'
    """
    if figure is not None:
        check_outputs([], force=force, figures=[figure])
    module = importlib.import_module(f"dedkit.studies.{STUDIES[name]}")
    return module.run(**{k: v for k, v in options.items() if v is not None}, progress=progress)


def write_study_figure(result, path) -> Path:
    """Draw the figure of a study's result and write it to ``path``.

    Parameters
    ----------
    result : dedkit.studies.StudyResult
        What a study's ``run`` returned (its ``name`` picks the study).
    path : path-like
        ``.png``, ``.pdf`` or ``.svg``. Whether an existing file may be replaced is the
        caller's decision (:func:`dedkit.io.atomic.check_outputs`).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DedkitError
        matplotlib is not installed (nothing is written).

    Examples
    --------
    >>> from dedkit.studies.rounding_dqe import run
    >>> result = run(samples=100_000, doses=(1.0,))
    >>> path = write_study_figure(result, "dqe.png")
    >>> path.read_bytes()[:4]
    b'\\x89PNG'
    """
    # a study's command name is its module's name with dashes (rounding-dqe: rounding_dqe)
    module = importlib.import_module(f"dedkit.studies.{result.name.replace('-', '_')}")
    return save_figure(module.figure(result), path, dpi=module.FIGURE_DPI)
