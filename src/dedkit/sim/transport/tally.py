"""Headline figures of electron deposits: :class:`TransportTally`, :func:`transport_summary`.

Backscatter and transmission fractions, mean deposit, full absorption, depth, path length
and the spread of the deposit centroid, accumulated batch by batch in constant memory
(the figures ``dedkit sim electrons`` reports and ``docs/simulation.md`` validates).
"""

from __future__ import annotations

import math

import numpy as np

from dedkit.records.deposits import ElectronDeposits


def transport_summary(deposits: ElectronDeposits) -> dict:
    """Headline figures of a set of deposits (see :class:`TransportTally`)."""
    tally = TransportTally(deposits.energy_keV)
    tally.add(deposits)
    return tally.summary()


class TransportTally:
    """Headline figures accumulated over batches of deposits (constant memory).

    Parameters
    ----------
    energy_keV : float
        Beam energy (for the full-absorption criterion).
    full_fraction : float
        A primary is fully absorbed when it deposits at least this fraction of the beam
        energy (0.95, the issue's criterion).
    """

    def __init__(self, energy_keV: float, full_fraction: float = 0.95):
        self.energy_keV = float(energy_keV)
        self.full_fraction = full_fraction
        self.n = 0
        self.n_steps = 0
        self.backscattered = 0
        self.transmitted = 0
        self.full = 0
        self.deposit_sum = 0.0
        self.depth_sum = 0.0
        self.centroid_n = 0
        self.centroid_sq = np.zeros(2)
        self.stopped = 0
        self.stopped_path_sum = 0.0
        self.geant4_seconds = 0.0

    def add(self, deposits: ElectronDeposits) -> None:
        """Count one batch."""
        self.n += len(deposits)
        self.n_steps += deposits.n_steps
        self.backscattered += int(np.count_nonzero(deposits.backscattered))
        self.transmitted += int(np.count_nonzero(deposits.transmitted))
        self.full += int(
            np.count_nonzero(deposits.deposit_keV >= self.full_fraction * self.energy_keV)
        )
        self.deposit_sum += float(np.sum(deposits.deposit_keV))
        self.depth_sum += float(np.sum(deposits.max_depth_um()))
        c = deposits.centroid_um()
        ok = np.isfinite(c[:, 0])
        self.centroid_n += int(np.count_nonzero(ok))
        self.centroid_sq += [
            float(np.sum((c[ok, 0] - deposits.entry_x_um[ok]) ** 2)),
            float(np.sum((c[ok, 1] - deposits.entry_y_um[ok]) ** 2)),
        ]
        if deposits.primary_path_um is not None:
            stopped = ~deposits.backscattered & ~deposits.transmitted
            self.stopped += int(np.count_nonzero(stopped))
            self.stopped_path_sum += float(np.sum(deposits.primary_path_um[stopped]))
        self.geant4_seconds += float(deposits.geant4_seconds)

    def summary(self) -> dict:
        """The figures so far.

        Returns
        -------
        dict
            ``energy_keV``, ``n_primaries``, ``backscatter_fraction`` (the primary left
            through the entry face) with its binomial standard error
            ``backscatter_error``, ``transmitted_fraction``, ``mean_deposit_keV``,
            ``full_absorption_fraction``, ``mean_max_depth_um`` (mean depth of each
            primary's deepest deposit), ``mean_stopped_path_um`` (mean path length in the
            sensor of the primaries that stopped in it, to compare with the CSDA range;
            NaN without path lengths), ``centroid_rms_um`` (``x`` and ``y``: rms of the
            energy-weighted deposit centroid minus the entry point) and ``n_steps``.
        """
        n = self.n
        bs = self.backscattered / n if n else math.nan
        rms = np.sqrt(self.centroid_sq / self.centroid_n) if self.centroid_n else [math.nan] * 2
        return {
            "energy_keV": self.energy_keV,
            "n_primaries": n,
            "backscatter_fraction": bs,
            "backscatter_error": math.sqrt(bs * (1 - bs) / n) if n else math.nan,
            "transmitted_fraction": self.transmitted / n if n else math.nan,
            "mean_deposit_keV": self.deposit_sum / n if n else math.nan,
            "full_absorption_fraction": self.full / n if n else math.nan,
            "mean_max_depth_um": self.depth_sum / n if n else math.nan,
            "mean_stopped_path_um": (
                self.stopped_path_sum / self.stopped if self.stopped else math.nan
            ),
            "centroid_rms_um": {"x": float(rms[0]), "y": float(rms[1])},
            "n_steps": self.n_steps,
        }
