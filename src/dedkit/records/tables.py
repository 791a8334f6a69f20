"""Tables that flow through the hybrid-pixel pipeline: clusters and localised events.

Plain dataclasses of equal-length numpy columns, so they concatenate, slice and save
(HDF5 in :mod:`dedkit.io.events`, aare ``.clust`` in :mod:`dedkit.io.clust`) without
conversion. Coordinates follow :mod:`dedkit.hpd`: column x, row y, pixel (r, c) covering
[c, c+1) x [r, r+1). They live in :mod:`dedkit.records` (below both :mod:`dedkit.io`
and :mod:`dedkit.hpd`) so that the readers and the pipeline import them one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

__all__ = ["ClusterTable", "EventTable", "FEATURE_NAMES"]

#: The paper's 7 cluster features, in this order (section 2 of the MÖNCH paper)
FEATURE_NAMES = (
    "charge_keV",
    "extent_x_px",
    "extent_y_px",
    "size_px",
    "mean_charge_keV",
    "max_charge_keV",
    "beam_energy_keV",
)


def _concat(tables, cls):
    tables = [t for t in tables]
    if not tables:
        raise ValueError("nothing to concatenate")
    out = {}
    for f in fields(cls):
        values = [getattr(t, f.name) for t in tables]
        if isinstance(values[0], np.ndarray):
            out[f.name] = np.concatenate(values)
        elif isinstance(values[0], dict):
            out[f.name] = {k: np.concatenate([v[k] for v in values]) for k in values[0]}
        else:
            out[f.name] = values[0]
    return cls(**out)


@dataclass
class ClusterTable:
    """Clusters cut out of frames.

    Attributes
    ----------
    frame : (n,) int64
        Frame number (as in the raw file's headers, or the frame index).
    x, y : (n,) int32
        Column and row of the cluster's reference pixel: the local maximum for aare's
        3x3/5x5 finder, the pixel holding the charge centroid for the connected finder.
        ``data[:, size_y // 2, size_x // 2]`` is that pixel.
    data : (n, size_y, size_x)
        Pixel values around the reference pixel (pedestal subtracted; ADU, or keV when
        ``units == 'keV'``), rows in frame order.
    units : str
        'ADU' or 'keV'.
    features : (n, 7) float32 or None
        The paper's features (:data:`FEATURE_NAMES`), for clusters from the connected
        finder.
    extra : dict of (n,) arrays
        Other per-cluster columns (e.g. 'centroid_x', 'centroid_y', 'n_pixels').
    """

    frame: np.ndarray
    x: np.ndarray
    y: np.ndarray
    data: np.ndarray
    units: str = "ADU"
    features: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def cluster_shape(self) -> tuple[int, int]:
        return self.data.shape[1], self.data.shape[2]

    def __getitem__(self, index) -> ClusterTable:
        return ClusterTable(
            self.frame[index],
            self.x[index],
            self.y[index],
            self.data[index],
            self.units,
            None if self.features is None else self.features[index],
            {k: v[index] for k, v in self.extra.items()},
        )

    @classmethod
    def empty(cls, size=(3, 3), dtype=np.int32, units="ADU") -> ClusterTable:
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros((0, *size), dtype),
            units,
        )

    @classmethod
    def concatenate(cls, tables) -> ClusterTable:
        return _concat(tables, cls)


@dataclass
class EventTable:
    """Localised single-electron events.

    Attributes
    ----------
    frame : (n,) int64
    x, y : (n,) float64
        Impact position in pixel units (pixel (r, c) covers [c, c+1) x [r, r+1)).
    energy : (n,) float32
        Cluster energy (keV, or ADU before calibration).
    method : str
        Localiser that produced the positions ('centroid', 'eta2', 'eta3', 'cnn', ...).
    extra : dict of (n,) arrays
    """

    frame: np.ndarray
    x: np.ndarray
    y: np.ndarray
    energy: np.ndarray
    method: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index) -> EventTable:
        return EventTable(
            self.frame[index],
            self.x[index],
            self.y[index],
            self.energy[index],
            self.method,
            {k: v[index] for k, v in self.extra.items()},
        )

    @classmethod
    def concatenate(cls, tables) -> EventTable:
        return _concat(tables, cls)
