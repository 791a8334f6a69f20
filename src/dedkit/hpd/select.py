"""Single-electron cluster selection by cluster energy, as in the MÖNCH paper.

Section 2.2 of Xie et al. (JINST 2023) keeps clusters whose energy lies between 20 and
205 keV at 200 keV: the lower bound keeps backscattered electrons, which leave part of
their energy (15 % of 200 keV electrons backscatter from silicon), and the upper bound,
just above the beam energy plus noise, rejects two or more electrons piled up in one
cluster. For other beam energies the window scales with the energy: (0.1, 1.025) x E.

Optionally clusters touching the frame edge (charge may have been lost outside the
sensor) or larger than their crop (the crop misses part of the charge) are rejected too.
Each rejected cluster is counted under the first reason that applies, in the order
touches_edge, exceeds_crop, non_finite, below_window, above_window, so the counts add up.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.tables import FEATURE_NAMES, ClusterTable

__all__ = [
    "DEFAULT_WINDOW_FRACTIONS",
    "SelectionReport",
    "cluster_energy_keV",
    "select_single_electrons",
]

#: Energy window as fractions of the beam energy: 20-205 keV at 200 keV (the paper)
DEFAULT_WINDOW_FRACTIONS = (0.1, 1.025)

_CHARGE_COLUMN = FEATURE_NAMES.index("charge_keV")


@dataclass
class SelectionReport:
    """What :func:`select_single_electrons` kept and why it rejected the rest.

    Attributes
    ----------
    n_input, n_selected : int
    touches_edge : int
        Rejected because a pixel lies on the frame's outermost rows or columns.
    exceeds_crop : int
        Rejected because the cluster is larger than its crop.
    non_finite : int
        Rejected because the cluster energy is NaN or infinite.
    below_window : int
        Energy below the window (noise, or too little deposited energy).
    above_window : int
        Energy above the window (pile-up of several electrons).
    window_keV : (float, float)
        The energy window used, inclusive at both ends.
    beam_energy_keV : float
    """

    n_input: int
    n_selected: int
    touches_edge: int
    exceeds_crop: int
    non_finite: int
    below_window: int
    above_window: int
    window_keV: tuple[float, float]
    beam_energy_keV: float

    @property
    def n_rejected(self) -> int:
        return self.n_input - self.n_selected

    def to_dict(self) -> dict:
        """Plain types only (for JSON reports), with ``n_rejected`` added."""
        out = asdict(self)
        out["window_keV"] = list(self.window_keV)
        out["n_rejected"] = self.n_rejected
        return out


def cluster_energy_keV(table: ClusterTable) -> np.ndarray:
    """Energy of every cluster in keV: the charge feature, else the sum of its crop.

    Parameters
    ----------
    table : ClusterTable
        Clusters in keV.

    Returns
    -------
    (n,) ndarray of float64
    """
    if table.features is not None:
        return table.features[:, _CHARGE_COLUMN].astype(np.float64)
    if table.units != "keV":
        raise DedkitError(
            f"clusters are in {table.units}, not keV: calibrate them before selecting by energy"
        )
    return table.data.reshape(len(table), int(np.prod(table.cluster_shape))).sum(
        axis=1, dtype=np.float64
    )


def _edge_column(table: ClusterTable, name: str) -> np.ndarray:
    if name not in table.extra:
        raise DedkitError(
            f"the clusters have no {name!r} column (only the connected finder records it)"
        )
    return np.asarray(table.extra[name], dtype=bool)


def select_single_electrons(
    table: ClusterTable,
    *,
    beam_energy_keV: float = 200.0,
    window_keV: tuple[float, float] | None = None,
    reject_touching_edge: bool = False,
    reject_exceeding_crop: bool = False,
) -> tuple[ClusterTable, SelectionReport]:
    """Keep the clusters that look like one electron.

    Parameters
    ----------
    table : ClusterTable
        Clusters in keV (their charge feature, or the sum of the crop without features).
    beam_energy_keV : float
        Nominal electron energy; sets the default window.
    window_keV : (low, high), optional
        Inclusive energy window; default ``DEFAULT_WINDOW_FRACTIONS x beam_energy_keV``.
    reject_touching_edge : bool
        Also reject clusters with a pixel on the frame edge (``extra['touches_edge']``).
    reject_exceeding_crop : bool
        Also reject clusters larger than their crop (``extra['exceeds_crop']``).

    Returns
    -------
    selected : ClusterTable
        The kept rows, in their original order.
    report : SelectionReport
    """
    if not (math.isfinite(beam_energy_keV) and beam_energy_keV > 0):
        raise DedkitError(f"beam energy must be a positive number of keV, got {beam_energy_keV}")
    if window_keV is None:
        # rounded so that 1.025 x 200 keV is 205 keV, not 204.99999999999997
        low, high = (round(f * beam_energy_keV, 9) for f in DEFAULT_WINDOW_FRACTIONS)
    else:
        low, high = (float(v) for v in window_keV)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise DedkitError(
                f"energy window must be two finite values low < high, got {window_keV}"
            )

    energy = cluster_energy_keV(table)
    undecided = np.ones(len(table), dtype=bool)
    counts = {}
    reasons = []
    if reject_touching_edge:
        reasons.append(("touches_edge", _edge_column(table, "touches_edge")))
    if reject_exceeding_crop:
        reasons.append(("exceeds_crop", _edge_column(table, "exceeds_crop")))
    finite = np.isfinite(energy)
    reasons += [
        ("non_finite", ~finite),
        ("below_window", finite & (energy < low)),
        ("above_window", finite & (energy > high)),
    ]
    for name, rejected in reasons:
        hit = undecided & rejected
        counts[name] = int(hit.sum())
        undecided &= ~hit

    report = SelectionReport(
        n_input=len(table),
        n_selected=int(undecided.sum()),
        touches_edge=counts.get("touches_edge", 0),
        exceeds_crop=counts.get("exceeds_crop", 0),
        non_finite=counts["non_finite"],
        below_window=counts["below_window"],
        above_window=counts["above_window"],
        window_keV=(low, high),
        beam_energy_keV=float(beam_energy_keV),
    )
    return table[undecided], report
