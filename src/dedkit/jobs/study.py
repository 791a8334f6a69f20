"""The job behind ``dedkit study ... --figure``: a study's figure written to a file.

The studies (:mod:`dedkit.studies`) compute and draw; they write no files. Here a study's
figure, built by its module's ``figure(result)``, is written at the study's
``FIGURE_DPI`` through :func:`dedkit.io.figures.save_figure` (atomically, the format from
the suffix).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from dedkit.io.figures import save_figure

__all__ = ["write_study_figure"]


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
