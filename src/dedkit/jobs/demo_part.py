"""One part of ``dedkit demo`` and its checks: what each part hands to the demo's report.

A part (the counting camera, :mod:`dedkit.jobs.demo_camera`; the MÖNCH gold
nanoparticles) runs on data it makes, measures the result against the truth it made, and
returns a :class:`DemoPart`: the table to print, the checks with their targets, and the
figures and files it wrote. :mod:`dedkit.jobs.demo` prints them and writes the report.

Examples
--------
>>> check = DemoCheck("rms shift error", "0.12 px", "< 0.5 px", True)
>>> part = DemoPart("camera", "Counting camera", rows=[{"quantity": "frames", "value": 4}],
...                 checks=[check], figures={}, files={}, seconds=1.5, details={})
>>> part.passed, part.to_dict()["checks"][0]["passed"]
(True, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["DemoCheck", "DemoPart"]


@dataclass
class DemoCheck:
    """One pass/fail check of a demo part against its truth.

    Attributes
    ----------
    what : str
        What is checked (``"rms error of the global shifts"``).
    value : str
        The measured value, as printed (with its unit).
    target : str
        The condition it must meet, as printed (``"< 0.5 output px"``).
    passed : bool
        Whether it does.

    Examples
    --------
    >>> DemoCheck("shift error", "0.1 px", "< 0.5 px", True).to_dict()["target"]
    '< 0.5 px'
    """

    what: str
    value: str
    target: str
    passed: bool

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return {
            "what": self.what,
            "value": self.value,
            "target": self.target,
            "passed": bool(self.passed),
        }


@dataclass
class DemoPart:
    """What one part of ``dedkit demo`` made, measured and checked.

    Attributes
    ----------
    name : str
        ``'camera'`` or ``'hpd'``.
    title : str
        One line saying what the part does.
    rows : list of dict
        The printed table, one dict (column -> value) per row; also in ``report.json``.
    checks : list of DemoCheck
        The checks against the truth.
    figures : dict
        Caption -> path of a PNG the part wrote.
    files : dict
        Description -> path of a file the part wrote.
    seconds : float
        Wall time of the part.
    details : dict
        Everything else worth keeping (JSON-ready values).

    Examples
    --------
    >>> part = DemoPart("camera", "t", [], [DemoCheck("a", "1", "> 0", False)], {}, {}, 0.0, {})
    >>> part.passed
    False
    """

    name: str
    title: str
    rows: list = field(default_factory=list)
    checks: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        """The fields (checks as dicts) and ``passed``, JSON-ready."""
        d = asdict(self)
        d["checks"] = [c.to_dict() for c in self.checks]
        d["figures"] = {k: str(v) for k, v in self.figures.items()}
        d["files"] = {k: str(v) for k, v in self.files.items()}
        d["seconds"] = round(float(self.seconds), 3)
        d["passed"] = self.passed
        return d
