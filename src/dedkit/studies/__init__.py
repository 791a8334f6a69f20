"""Reproducible studies of the claims behind SerialEM's choices (``dedkit study ...``).

Each study module exposes ``run(...) -> StudyResult`` (the computation, seeded) and
``plot(result, path)`` (its PNG figure); the CLI prints the table, the JSON report or both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StudyResult"]


@dataclass
class StudyResult:
    """What a study found.

    Attributes
    ----------
    name : str
        The study's command name (``rounding-dqe``, ``reduction-frc``, ``coincidence``).
    columns : list of (key, heading, format)
        The table's columns: the row key, the column heading and a format spec
        (``".4f"``, ``"d"``, ``""``) for its values.
    rows : list of dict
        The table's rows.
    report : dict
        The ``--json`` object.
    notes : list of str
        Lines printed under the table (the published figure, what differs and why).
    curves : dict
        Arrays the figure draws (kept so that ``plot`` needs no recomputation).
    """

    name: str
    columns: list
    rows: list
    report: dict
    notes: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)
