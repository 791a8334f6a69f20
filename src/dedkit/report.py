"""What a job did: one report type for the file-to-file jobs behind the CLI commands."""

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
    output : str
        The file or folder written.
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
    inputs: list[str]
    output: str
    seconds: float
    counts: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 4)
        return d

    def text(self) -> str:
        counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts.items())
        return f"{self.command}: wrote {self.output} in {self.seconds:.2f} s ({counts})"
