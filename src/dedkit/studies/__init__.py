"""Reproducible studies of the claims behind SerialEM's choices (``dedkit study ...``).

Each study module exposes ``run(...) -> StudyResult`` (the computation, seeded),
``figure(result)`` (its matplotlib figure, built, not written) and ``FIGURE_DPI``; the CLI
prints the table or the JSON report, and :func:`dedkit.jobs.study.write_study_figure`
writes the figure (the studies write no files).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dedkit.report import JobReport

__all__ = ["LIMITS", "StudyResult", "render_table"]

#: bounds of every study's settings, checked by the studies' ``run`` (DedkitError) and by
#: the CLI's option types (here, so that the CLI needs no study import to build its
#: options): they bound the memory and the time one run can take. Pairs are (low, high),
#: counts are the most values a list may hold.
LIMITS = {
    "reduction-frc": {
        # a 4096 x 4096 run holds about 1 GiB
        "size": (16, 4096),
        "repeats": (2, 1000),
        "doses": (0.0, 1000.0),
        "n_doses": 32,
        "factors": (2, 16),
        "n_factors": 8,
        "slope": (-4.0, 8.0),
        "contrast": (0.0, 10.0),
        "localisation_sigma": (0.0, 2.0),
        "dose_rate": (0.0, 1000.0),
    },
    "rounding-dqe": {
        # a batch holds samples / 20 trials: 2e8 keeps it near 0.5 GiB
        "samples": (1000, 200_000_000),
        "doses": (0.0, 1000.0),
        "n_doses": 32,
    },
    "coincidence": {
        "pixels": (1, 10**12),
        "exposure": (0.0, 3600.0),
        # the K2's counting saturates at 38.5 (run refuses rates from there on)
        "k2_rates": (0.0, 1000.0),
        "n_rates": 32,
        "n_cameras": 8,
    },
    "align-accuracy": {
        "size": (64, 4096),
        "n_frames": (4, 100),
        "doses": (0.05, 100.0),
        "n_doses": 8,
        "drift": (0.0, 100.0),
        "local_amplitude": (0.0, 20.0),
    },
    "track-reuse": {
        # ~1 kB of deposits per electron and set, bootstrap weights 8 B x replicates
        "n": (100, 1_000_000),
        "library_size": (10, 1_000_000),
        "bootstrap": (20, 2000),
    },
}


@dataclass(kw_only=True)
class StudyResult(JobReport):
    """What a study found: :meth:`text` is its table, :meth:`to_dict` its ``report``.

    Attributes
    ----------
    command : str
        ``study`` (the study itself is ``name``).
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
        Arrays the figure draws (kept so that ``figure`` needs no recomputation).
    """

    name: str
    columns: list
    rows: list
    report: dict
    notes: list = field(default_factory=list)
    curves: dict = field(default_factory=dict)
    command: str = "study"

    def to_dict(self) -> dict:
        return self.report

    def text(self) -> str:
        return render_table(self)


def render_table(result) -> str:
    """A study's table as plain aligned text: title, header, rows, then its notes."""
    headings = [heading for _, heading, _ in result.columns]
    body = []
    for row in result.rows:
        cells = []
        for key, _, fmt in result.columns:
            value = row.get(key)
            if value is None:
                cells.append("-")
            elif isinstance(value, str | bool):
                cells.append(str(value))
            elif fmt:
                cells.append(format(value, fmt))
            else:
                cells.append(format(value, "g") if isinstance(value, float) else str(value))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headings)]
    lines = [result.name, "  ".join(h.rjust(w) for h, w in zip(headings, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    lines += [""] + list(result.notes) if result.notes else []
    return "\n".join(lines)
