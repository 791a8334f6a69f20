"""What one part of ``dedkit demo`` hands back: its table, its checks, its figures.

Each part of the demo (the counting camera, the MÖNCH gold nanoparticles) runs in a
folder and returns a :class:`DemoPart`; :func:`dedkit.jobs.demo.run_demo` prints its
checks, and writes its figures and files into ``report.html`` and ``report.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DemoCheck", "DemoPart"]


@dataclass
class DemoCheck:
    """One check of a demo part against the truth.

    Attributes
    ----------
    what : str
        What is checked (``"rms shift error"``).
    value : str
        The value found, as text with its unit (``"0.12 px"``).
    target : str
        What it must be (``"< 0.5 px"``).
    passed : bool
        Whether the value meets the target.

    Examples
    --------
    >>> DemoCheck("rms shift error", "0.12 px", "< 0.5 px", True).to_dict()["passed"]
    True
    """

    what: str
    value: str
    target: str
    passed: bool

    def to_dict(self) -> dict:
        return {
            "what": self.what,
            "value": self.value,
            "target": self.target,
            "passed": bool(self.passed),
        }


@dataclass
class DemoPart:
    """What one demo part did (``camera`` or ``hpd``).

    Attributes
    ----------
    name : str
        ``"camera"`` or ``"hpd"``.
    title : str
        One line saying what the part does.
    rows : list of dict
        The part's table (column -> value), printed and in ``report.json``.
    checks : list of DemoCheck
        Its checks against the truth.
    figures : dict
        Caption -> PNG path inside the part's folder.
    files : dict
        Description -> path inside the part's folder.
    seconds : float
        Wall time.
    details : dict
        Anything else worth keeping (in ``report.json``).

    Examples
    --------
    >>> part = DemoPart("camera", "K3 movie", rows=[{"sum": "aligned", "FRC 0.143": "2.1 A"}],
    ...                 checks=[DemoCheck("FRC 0.143", "2.1 A", "< 3 A", True)])
    >>> part.passed, part.to_dict()["checks"][0]["target"]
    (True, '< 3 A')
    """

    name: str
    title: str
    rows: list[dict] = field(default_factory=list)
    checks: list[DemoCheck] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "rows": [dict(r) for r in self.rows],
            "checks": [c.to_dict() for c in self.checks],
            "figures": {k: str(v) for k, v in self.figures.items()},
            "files": {k: str(v) for k, v in self.files.items()},
            "seconds": round(float(self.seconds), 3),
            "details": dict(self.details),
            "passed": self.passed,
        }
