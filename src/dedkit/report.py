"""What a job did: the one report type behind every CLI command's output.

Every job returns a :class:`JobReport` or a subclass: :meth:`~JobReport.text` is what
the command prints, :meth:`~JobReport.to_dict` what ``--json`` prints, and
:attr:`~JobReport.warnings` what it says on stderr. A subclass adds its own fields
(keyword-only) and, where its output has a layout of its own, its own ``text`` and
``to_dict``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["JobReport"]


@dataclass
class JobReport:
    """What a job did: :meth:`text` for people, :meth:`to_dict` (``--json``) for programs.

    Attributes
    ----------
    command : str
        The command's name (``pedestal``, ``frames``, ``train``...).
    inputs : list of str
        The files read.
    output : str or None
        The file or folder written (None for a job that writes nothing).
    seconds : float
        Wall time.
    counts : dict
        Numbers of things (frames, clusters, rejections...), printed in :meth:`text`.
    details : dict
        Everything else worth reporting.
    warnings : list of str
        What the job warned about.
    """

    command: str
    inputs: list[str] = field(default_factory=list)
    output: str | None = None
    seconds: float = 0.0
    counts: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 4)
        return d

    def _declared_dict(self) -> dict:
        """The fields the report's own class declares, in the order it declares them, as
        :func:`dataclasses.asdict` gives them.

        The ``--json`` object of the subclasses whose layout is older than JobReport
        (kept byte for byte): the common fields they do not declare again are left out.
        """
        d = asdict(self)
        return {name: d[name] for name in type(self).__dict__.get("__annotations__", {})}

    def text(self) -> str:
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts.items())
        return f"{self.command}: wrote {self.output} in {self.seconds:.2f} s ({counts})"
