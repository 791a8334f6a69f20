"""Sub-pixel localisation of single electrons: charge centroid and eta interpolation.

Every method is a :class:`Localizer` that turns a :class:`~dedkit.records.tables.ClusterTable`
into an :class:`~dedkit.records.tables.EventTable`; :func:`get_localizer` builds one by name
from a registry that other modules extend with :func:`register_localizer` (the CNN of the
MÖNCH paper registers 'cnn').

Positions are in pixel units with pixel (row r, column c) covering [c, c+1) x [r, r+1).

**centroid**: the charge-weighted mean of the pixel centres (the paper's "charge
centroid"), taken from the connected finder's exact centroid when the table has one.

**eta2 / eta3**: eta interpolation as PSI's aare library does it (release 2025.11.21;
``include/aare/CalculateEta.hpp``, ``include/aare/Interpolator.hpp``,
``src/Interpolator.cpp``). Eta is computed on the 3 x 3 pixels around the cluster's
reference pixel (``data[:, sy // 2, sx // 2]``):

- eta2: of the four 2 x 2 quadrants that contain the centre pixel, the one with the largest
  sum (the first in the order (-1, -1), (0, -1), (-1, 0), (0, 0) of (column, row) offsets
  on ties); ``eta_x = right / (left + right)`` over the two pixels of the centre row in that
  quadrant, ``eta_y = upper / (lower + upper)`` over the two pixels of the centre column,
  where "upper" is the pixel with the larger row index; 0 where the denominator is 0.
  The eta energy is the quadrant's sum.
- eta3: ``eta_x = (right column - left column) / sum`` and ``eta_y = (last row - first
  row) / sum`` over the 3 x 3 block, 0 when the sum is 0. The eta energy is the block's sum.

The raw (non-linearised) eta position is the centre of gravity these ratios describe:
``x + 0.5 + dx + eta_x`` for eta2 (dx = -1 when the quadrant lies to the left, else 0) and
``x + 0.5 + eta_x`` for eta3; likewise in y.

The linearised position replaces eta by its flat-field cumulative distribution: a flat
illumination spreads impacts uniformly over a pixel, so the map u = CDF(eta) sends eta
to the impact's fractional position. The map comes from a 3-D histogram of (eta_x,
eta_y, eta energy) over flat-field clusters. As in aare's ``Interpolator`` constructor,
``u[i, j, k] = (C_x[i, j, k] - H[0, j, k]) / (C_x[-1, j, k] - H[0, j, k])`` with ``C_x``
the cumulative sum of the histogram ``H`` along eta_x (so the first bin maps to 0 and
the last to 1; a zero denominator is replaced by 1), and ``v`` the same along eta_y:
each axis is linearised conditionally on the other's bin. aare's
``rosenblatttransform`` variant (``transform='rosenblatt'``) uses the marginal CDF of
eta_x (all eta_y bins summed) for u instead. A cluster is looked up in the bin whose
edges satisfy ``lower < value <= upper`` (aare's ``last_smaller``; values outside the
edges fall in the first or last bin), without interpolation between bins (aare's
bilinear interpolation is disabled). Finally ``x = column + 0.5 + u + dx`` for eta2 and
``x = column + u`` for eta3 (likewise for y), which are aare's ``interpolate`` and
``interpolate_eta3`` results.
"""

from __future__ import annotations

import abc
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.tables import FEATURE_NAMES, ClusterTable, EventTable

__all__ = [
    "CentroidLocalizer",
    "EtaInterpolator",
    "EtaValues",
    "Localizer",
    "available_localizers",
    "compute_eta",
    "get_localizer",
    "raw_eta_positions",
    "register_localizer",
]

ETA_KINDS = ("eta2", "eta3")
TRANSFORMS = ("conditional", "rosenblatt")

#: Default histogram range of eta for :meth:`EtaInterpolator.fit`; eta2 lies in [0, 1]
#: and eta3 in [-1, 1] for non-negative pixels, the margin keeps noisy clusters.
DEFAULT_ETA_RANGE = {"eta2": (-0.1, 1.1), "eta3": (-1.1, 1.1)}

_CHARGE_COLUMN = FEATURE_NAMES.index("charge_keV")


class Localizer(abc.ABC):
    """Turns clusters into impact positions.

    Attributes
    ----------
    name : str
        Registry name, written to :attr:`EventTable.method`.
    """

    name: str

    @abc.abstractmethod
    def localize(self, table: ClusterTable) -> EventTable:
        """Impact position of every cluster, in the table's order."""


_REGISTRY: dict[str, Callable[..., Localizer]] = {}


def register_localizer(name: str, factory: Callable[..., Localizer]) -> None:
    """Make ``get_localizer(name, **kwargs)`` return ``factory(**kwargs)``.

    Parameters
    ----------
    name : str
    factory : callable
        Returns a :class:`Localizer`; a class works.
    """
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"a localizer named {name!r} is already registered")
    _REGISTRY[name] = factory


def available_localizers() -> tuple[str, ...]:
    """Registered localizer names, sorted."""
    return tuple(sorted(_REGISTRY))


#: entry-point group of localizers that packages above this one provide (dedkit's own
#: ``cnn``, in dedkit.learn, or another package's): each entry names a module that
#: registers its localizer when imported (the import needs no optional dependency;
#: using the localizer may)
ENTRY_POINT_GROUP = "dedkit_localizers"


def _load_entry_point(name: str) -> None:
    """Import the module that the ``dedkit_localizers`` entry point ``name`` names."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        entry.load()


def get_localizer(name: str, **kwargs) -> Localizer:
    """Build the localizer registered as ``name`` with keyword arguments ``kwargs``.

    A name not registered yet is looked up among the ``dedkit_localizers`` entry points
    (``cnn``: :mod:`dedkit.learn.localizer`), so ``get_localizer("cnn", ...)`` works
    without importing :mod:`dedkit.learn` first, and :mod:`dedkit.hpd` never imports
    the packages above it.
    """
    if name not in _REGISTRY:
        _load_entry_point(name)
    if name not in _REGISTRY:
        raise DedkitError(
            f"unknown localizer {name!r}; use one of {', '.join(available_localizers())}"
        )
    return _REGISTRY[name](**kwargs)


def _cluster_energy(table: ClusterTable) -> np.ndarray:
    # the EventTable's energy: the finder's charge feature, else the sum of the crop
    if table.features is not None:
        return table.features[:, _CHARGE_COLUMN].astype(np.float32)
    return (
        table.data.reshape(len(table), int(np.prod(table.cluster_shape)))
        .sum(axis=1, dtype=np.float64)
        .astype(np.float32)
    )


def _check_clusters(table: ClusterTable, minimum: int, method: str) -> None:
    if table.data.ndim != 3:
        raise DedkitError(f"cluster data must be (n, size_y, size_x), got {table.data.shape}")
    size_y, size_x = table.cluster_shape
    if len(table) and (size_y < minimum or size_x < minimum):
        raise DedkitError(
            f"{method} needs clusters of at least {minimum} x {minimum} pixels, "
            f"got {size_x} x {size_y}"
        )


@numba.njit(cache=True, nogil=True)
def _centroid_kernel(data, x, y, out_x, out_y):
    # charge-weighted mean of pixel centres over the positive pixels (negative values are
    # noise); the reference pixel's centre when nothing is positive
    n, size_y, size_x = data.shape
    for i in range(n):
        total = 0.0
        moment_x = 0.0
        moment_y = 0.0
        for r in range(size_y):
            for c in range(size_x):
                v = np.float64(data[i, r, c])
                if v > 0:
                    total += v
                    moment_x += v * (c + 0.5)
                    moment_y += v * (r + 0.5)
        if total > 0:
            out_x[i] = x[i] - size_x // 2 + moment_x / total
            out_y[i] = y[i] - size_y // 2 + moment_y / total
        else:
            out_x[i] = x[i] + 0.5
            out_y[i] = y[i] + 0.5


class CentroidLocalizer(Localizer):
    """The charge centroid (centre of gravity) of each cluster.

    Uses ``extra['centroid_x']`` / ``extra['centroid_y']`` when the table has them (the
    connected finder's centroid over all the cluster's pixels), otherwise the centroid of
    the positive pixels of the cluster's crop.
    """

    name = "centroid"

    def localize(self, table: ClusterTable) -> EventTable:
        if "centroid_x" in table.extra and "centroid_y" in table.extra:
            x = np.asarray(table.extra["centroid_x"], dtype=np.float64)
            y = np.asarray(table.extra["centroid_y"], dtype=np.float64)
        else:
            _check_clusters(table, 1, "the centroid")
            x = np.empty(len(table), dtype=np.float64)
            y = np.empty(len(table), dtype=np.float64)
            _centroid_kernel(np.ascontiguousarray(table.data), table.x, table.y, x, y)
        return EventTable(
            np.asarray(table.frame, dtype=np.int64).copy(),
            x,
            y,
            _cluster_energy(table),
            self.name,
        )


@dataclass
class EtaValues:
    """Eta of every cluster (see the module docstring for the definitions).

    Attributes
    ----------
    kind : str
        'eta2' or 'eta3'.
    x, y : (n,) float64
        eta_x, eta_y.
    dx, dy : (n,) int8
        eta2: column and row offset (-1 or 0) of the chosen quadrant's first pixel
        relative to the reference pixel (aare's corner code is ``2 * (dy + 1) + dx + 1``:
        0 top left, 1 top right, 2 bottom left, 3 bottom right, "top" meaning the lower
        row index). Zero for eta3.
    sum : (n,) float64
        Eta energy: the quadrant's sum (eta2) or the 3 x 3 sum (eta3).
    """

    kind: str
    x: np.ndarray
    y: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    sum: np.ndarray


@numba.njit(cache=True, nogil=True)
def _eta2_kernel(data, eta_x, eta_y, off_x, off_y, eta_sum):
    # Sums are formed in aare's order (Cluster::max_sum_2x2, calculate_eta2) so that the
    # results agree with aare to the last bit for float64 clusters.
    n, size_y, size_x = data.shape
    cy = size_y // 2
    cx = size_x // 2
    for i in range(n):
        d = data[i]
        # aare's names: "top" is the row before the centre row (lower row index)
        top_left = np.float64(d[cy - 1, cx - 1])
        top = np.float64(d[cy - 1, cx])
        top_right = np.float64(d[cy - 1, cx + 1])
        left = np.float64(d[cy, cx - 1])
        centre = np.float64(d[cy, cx])
        right = np.float64(d[cy, cx + 1])
        bottom_left = np.float64(d[cy + 1, cx - 1])
        bottom = np.float64(d[cy + 1, cx])
        bottom_right = np.float64(d[cy + 1, cx + 1])
        sums = (
            top_left + top + left + centre,
            top + top_right + centre + right,
            left + centre + bottom_left + bottom,
            centre + right + bottom + bottom_right,
        )
        best = 0
        for q in range(1, 4):
            if sums[q] > sums[best]:
                best = q
        dx = -1 if best % 2 == 0 else 0
        dy = -1 if best < 2 else 0
        low_x, high_x = (left, centre) if dx == -1 else (centre, right)
        low_y, high_y = (top, centre) if dy == -1 else (centre, bottom)
        denominator = high_x + low_x
        eta_x[i] = high_x / denominator if denominator != 0 else 0.0
        denominator = high_y + low_y
        eta_y[i] = high_y / denominator if denominator != 0 else 0.0
        off_x[i] = dx
        off_y[i] = dy
        eta_sum[i] = sums[best]


@numba.njit(cache=True, nogil=True)
def _eta3_kernel(data, eta_x, eta_y, eta_sum):
    # aare's calculate_eta3 on the central 3 x 3, sums in its order
    n, size_y, size_x = data.shape
    r0 = size_y // 2 - 1
    c0 = size_x // 2 - 1
    for i in range(n):
        total = 0.0
        for r in range(3):
            for c in range(3):
                total += np.float64(data[i, r0 + r, c0 + c])
        eta_sum[i] = total
        if total == 0:
            eta_x[i] = 0.0
            eta_y[i] = 0.0
            continue
        first_column = (np.float64(data[i, r0, c0]) + np.float64(data[i, r0 + 1, c0])) + np.float64(
            data[i, r0 + 2, c0]
        )
        last_column = (
            np.float64(data[i, r0, c0 + 2]) + np.float64(data[i, r0 + 1, c0 + 2])
        ) + np.float64(data[i, r0 + 2, c0 + 2])
        first_row = (np.float64(data[i, r0, c0]) + np.float64(data[i, r0, c0 + 1])) + np.float64(
            data[i, r0, c0 + 2]
        )
        last_row = (
            np.float64(data[i, r0 + 2, c0]) + np.float64(data[i, r0 + 2, c0 + 1])
        ) + np.float64(data[i, r0 + 2, c0 + 2])
        eta_x[i] = (last_column - first_column) / total
        eta_y[i] = (last_row - first_row) / total


def compute_eta(table: ClusterTable, kind: str = "eta2") -> EtaValues:
    """Eta of every cluster around its reference pixel.

    Parameters
    ----------
    table : ClusterTable
        Clusters of at least 3 x 3 pixels (values converted to float64).
    kind : {'eta2', 'eta3'}

    Returns
    -------
    EtaValues
    """
    if kind not in ETA_KINDS:
        raise DedkitError(f"unknown eta {kind!r}; use one of {', '.join(ETA_KINDS)}")
    _check_clusters(table, 3, kind)
    n = len(table)
    data = np.ascontiguousarray(table.data)
    eta_x = np.empty(n, dtype=np.float64)
    eta_y = np.empty(n, dtype=np.float64)
    eta_sum = np.empty(n, dtype=np.float64)
    dx = np.zeros(n, dtype=np.int8)
    dy = np.zeros(n, dtype=np.int8)
    if n:
        if kind == "eta2":
            _eta2_kernel(data, eta_x, eta_y, dx, dy, eta_sum)
        else:
            _eta3_kernel(data, eta_x, eta_y, eta_sum)
    return EtaValues(kind, eta_x, eta_y, dx, dy, eta_sum)


def _reference_pixel(table: ClusterTable) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(table.x, dtype=np.float64), np.asarray(table.y, dtype=np.float64)


def raw_eta_positions(table: ClusterTable, kind: str = "eta2") -> tuple[np.ndarray, np.ndarray]:
    """Positions from eta without the flat-field linearisation.

    This is the centre of gravity of the 2 x 2 quadrant (eta2) or of the 3 x 3 block
    (eta3): ``x + 0.5 + dx + eta_x`` and ``x + 0.5 + eta_x``, likewise in y.

    Parameters
    ----------
    table : ClusterTable
    kind : {'eta2', 'eta3'}

    Returns
    -------
    x, y : (n,) ndarray of float64
    """
    eta = compute_eta(table, kind)
    column, row = _reference_pixel(table)
    return column + 0.5 + eta.dx + eta.x, row + 0.5 + eta.dy + eta.y


def _check_edges(edges, name: str, minimum_bins: int) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < minimum_bins + 1:
        raise DedkitError(f"{name} must be at least {minimum_bins + 1} bin edges")
    if not (np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)):
        raise DedkitError(f"{name} must be finite and strictly increasing")
    return edges


def _bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    # aare's last_smaller: the bin with lower < value <= upper; below the first edge the
    # first bin; above the last edge aare reads past its table, here the last bin
    index = np.searchsorted(edges[1:], values, side="left")
    return np.minimum(index, len(edges) - 2)


class EtaInterpolator(Localizer):
    """Eta interpolation linearised by a flat-field map, as aare's ``Interpolator``.

    Build the map with :meth:`fit` from flat-field clusters, or with
    :meth:`from_histogram` from an existing eta distribution; then :meth:`localize`.

    Parameters
    ----------
    kind : {'eta2', 'eta3'}
    transform : {'conditional', 'rosenblatt'}
        'conditional': aare's constructor (each axis linearised conditionally on the
        other's bin); 'rosenblatt': aare's ``rosenblatttransform`` (marginal CDF in x).
    flat_field : ClusterTable, optional
        Fit the map right away (keywords ``bins``, ``energy_bins``, ``eta_range`` as for
        :meth:`fit`).

    Attributes
    ----------
    histogram : (nx, ny, ne) ndarray or None
        The flat-field eta distribution (eta_x, eta_y, eta energy).
    x_edges, y_edges, energy_edges : ndarray or None
    u, v : (nx, ny, ne) ndarray or None
        Linearised position in the pixel (0-1) for each bin.
    """

    def __init__(
        self,
        kind: str = "eta2",
        *,
        transform: str = "conditional",
        flat_field: ClusterTable | None = None,
        bins: int = 100,
        energy_bins=1,
        eta_range: tuple[float, float] | None = None,
    ):
        if kind not in ETA_KINDS:
            raise DedkitError(f"unknown eta {kind!r}; use one of {', '.join(ETA_KINDS)}")
        if transform not in TRANSFORMS:
            raise DedkitError(
                f"unknown transform {transform!r}; use one of {', '.join(TRANSFORMS)}"
            )
        self.name = kind
        self.transform = transform
        self.histogram = self.x_edges = self.y_edges = self.energy_edges = None
        self.u = self.v = None
        if flat_field is not None:
            self.fit(flat_field, bins=bins, energy_bins=energy_bins, eta_range=eta_range)

    @classmethod
    def from_histogram(
        cls,
        histogram,
        x_edges,
        y_edges,
        energy_edges,
        *,
        kind: str = "eta2",
        transform: str = "conditional",
    ) -> EtaInterpolator:
        """An interpolator whose map comes from an eta distribution already histogrammed.

        Parameters
        ----------
        histogram : (nx, ny, ne) array
            Counts over (eta_x, eta_y, eta energy), as aare's ``etacube``.
        x_edges, y_edges, energy_edges : 1-D arrays of nx + 1, ny + 1, ne + 1 edges
        kind, transform
            As for the constructor.
        """
        interpolator = cls(kind, transform=transform)
        interpolator._set_map(histogram, x_edges, y_edges, energy_edges)
        return interpolator

    def fit(
        self,
        flat_field: ClusterTable,
        *,
        bins: int = 100,
        energy_bins=1,
        eta_range: tuple[float, float] | None = None,
    ) -> EtaInterpolator:
        """Build the map from clusters of a flat (uniform) illumination.

        Parameters
        ----------
        flat_field : ClusterTable
        bins : int
            Number of eta bins on each axis (at least 2).
        energy_bins : int or 1-D array of edges
            Number of eta-energy bins spanning the clusters' eta energies, or their edges.
        eta_range : (low, high), optional
            Histogram range of eta (:data:`DEFAULT_ETA_RANGE` by default); clusters
            outside it are left out of the map.

        Returns
        -------
        EtaInterpolator
            ``self``.
        """
        if int(bins) != bins or bins < 2:
            raise DedkitError(f"bins must be an integer >= 2, got {bins}")
        if len(flat_field) == 0:
            raise DedkitError("the flat field has no clusters to build an eta map from")
        eta = compute_eta(flat_field, self.name)
        low, high = DEFAULT_ETA_RANGE[self.name] if eta_range is None else eta_range
        edges = _check_edges(np.linspace(low, high, int(bins) + 1), "eta range", 2)
        if np.ndim(energy_bins) == 0:
            if int(energy_bins) != energy_bins or energy_bins < 1:
                raise DedkitError(f"energy_bins must be an integer >= 1, got {energy_bins}")
            e_low, e_high = float(eta.sum.min()), float(eta.sum.max())
            if e_low == e_high:
                e_low, e_high = e_low - 0.5, e_high + 0.5
            energy_edges = np.linspace(e_low, e_high, int(energy_bins) + 1)
        else:
            energy_edges = energy_bins
        energy_edges = _check_edges(energy_edges, "energy bins", 1)
        histogram, _ = np.histogramdd((eta.x, eta.y, eta.sum), bins=(edges, edges, energy_edges))
        self._set_map(histogram, edges, edges, energy_edges)
        return self

    def _set_map(self, histogram, x_edges, y_edges, energy_edges) -> None:
        histogram = np.asarray(histogram, dtype=np.float64)
        x_edges = _check_edges(x_edges, "eta_x edges", 2)
        y_edges = _check_edges(y_edges, "eta_y edges", 2)
        energy_edges = _check_edges(energy_edges, "energy edges", 1)
        expected = (len(x_edges) - 1, len(y_edges) - 1, len(energy_edges) - 1)
        if histogram.shape != expected:
            raise DedkitError(
                f"eta histogram of shape {histogram.shape} does not match its edges {expected}"
            )
        if not np.all(np.isfinite(histogram)) or np.any(histogram < 0):
            raise DedkitError("the eta histogram must hold finite counts >= 0")
        self.histogram = histogram
        self.x_edges, self.y_edges, self.energy_edges = x_edges, y_edges, energy_edges
        self.v = _conditional_cdf(histogram, axis=1)
        if self.transform == "conditional":
            self.u = _conditional_cdf(histogram, axis=0)
        else:
            self.u = np.broadcast_to(_marginal_cdf_x(histogram)[:, np.newaxis, :], histogram.shape)

    def localize(self, table: ClusterTable) -> EventTable:
        if self.histogram is None:
            raise DedkitError(f"{self.name} interpolation needs a flat-field map: fit it first")
        eta = compute_eta(table, self.name)
        ix = _bin_index(self.x_edges, eta.x)
        iy = _bin_index(self.y_edges, eta.y)
        ie = _bin_index(self.energy_edges, eta.sum)
        u = self.u[ix, iy, ie]
        v = self.v[ix, iy, ie]
        column, row = _reference_pixel(table)
        if self.name == "eta2":
            # aare: cluster.x + 0.5 + u + dX, evaluated left to right
            x = column + 0.5 + u + eta.dx
            y = row + 0.5 + v + eta.dy
        else:
            x = column + u
            y = row + v
        return EventTable(
            np.asarray(table.frame, dtype=np.int64).copy(),
            x,
            y,
            _cluster_energy(table),
            self.name,
            {"eta_x": eta.x, "eta_y": eta.y},
        )


def _conditional_cdf(histogram: np.ndarray, axis: int) -> np.ndarray:
    # aare's Interpolator constructor: cumulative sum along ``axis``, shifted so the first
    # bin maps to 0, divided so the last maps to 1 (a zero range left undivided)
    cumulative = np.cumsum(histogram, axis=axis)
    first = np.take(histogram, [0], axis=axis)
    last = np.take(cumulative, [-1], axis=axis)
    norm = last - first
    norm[norm == 0] = 1.0
    return (cumulative - first) / norm


def _marginal_cdf_x(histogram: np.ndarray) -> np.ndarray:
    # aare's rosenblatttransform: marginal CDF of eta_x per energy bin, 0 at the first bin
    # and 1 at the last. cumsum's last element is the sequential sum aare accumulates.
    row_totals = np.cumsum(histogram, axis=1)[:, -1, :]
    cdf = np.zeros_like(row_totals)
    cdf[1:] = np.cumsum(row_totals[1:], axis=0)
    norm = cdf[-1].copy()
    norm[norm == 0] = 1.0
    cdf[1:] /= norm
    return cdf


register_localizer("centroid", CentroidLocalizer)
register_localizer("eta2", lambda **kwargs: EtaInterpolator("eta2", **kwargs))
register_localizer("eta3", lambda **kwargs: EtaInterpolator("eta3", **kwargs))
