"""Training labels from a beam scan: the MÖNCH paper's measured ground truth (section 2.2).

A focused beam (about 2 um across) dwells on each point of a random scan for many frames.
The true impact of a point is estimated as the **mean charge centroid** of the
single-electron clusters recorded while the beam sat there: the centroid of one cluster
is off by about 1.8 px (the detector's resolution), the mean of ``n`` of them by about
1.8 / sqrt(n) px. Each cluster then gets that estimate as its label, unless

- its centroid lies farther than ``n_sigma * sqrt(2) * sigma`` from the estimate (the
  paper's 5-sigma limit in the plane, sigma the per-axis centroid resolution), or
- it does not **cover** the estimate: the pixel containing the estimated point (pixel
  (r, c) covers [c, c+1) x [r, r+1)) is not one of the cluster's pixels, i.e. lies
  outside the crop or holds zero charge in the crop (the connected finder zeroes the
  crop's pixels outside the cluster, so its non-zero pixels are exactly the cluster).
  An electron that did not enter there (a stray or scattered one) is not the beam's.

Each rejected cluster is counted under the first of these reasons that applies (far,
then not covering). Points with fewer than ``min_clusters`` single-electron clusters are
dropped (their estimate would be too uncertain).

**Sigma.** By default it is estimated from the data: the rms, per axis, of the centroids
around their point means (with the ``n - 1`` per point correction), combined as
``sqrt((sx**2 + sy**2) / 2)`` so that the 2-D cut radius is ``n_sigma * sqrt(sx**2 +
sy**2)``. This is how the paper obtained its 1.83 px, and it follows the sensor,
threshold and energy of the run at hand; the paper's value can be given instead
(``sigma_px=1.83``).

The output columns are those of a training set (:mod:`dedkit.io.training`, the layout
``dedkit sim dataset`` writes): ``entry_x``/``entry_y`` hold the estimated impact relative
to the crop (crop pixel [i, j] covers ``j <= x < j + 1``, ``i <= y < i + 1``; the crop's
centre pixel is the cluster's reference pixel), and, when the true entry points are known
(a simulated run), ``true_entry_x``/``true_entry_y`` hold them in the same frame so that
the label error can be measured.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np

from dedkit.errors import DedkitError
from dedkit.hpd.select import select_single_electrons
from dedkit.records.tables import FEATURE_NAMES, ClusterTable
from dedkit.report import JobReport

__all__ = [
    "PAPER_SIGMA_PX",
    "ScanReport",
    "ScanSchedule",
    "match_truth",
    "parse_scan_csv",
    "scan_labels",
    "simulated_scan_schedule",
]

#: The centroid resolution the paper measured on MÖNCH 03 at 200 keV (section 2.2)
PAPER_SIGMA_PX = 1.83
_CHARGE = FEATURE_NAMES.index("charge_keV")


@dataclass(frozen=True, eq=False)
class ScanSchedule:
    """Which frames belong to which scan point.

    Attributes
    ----------
    first_frame, last_frame : (m,) int64
        Inclusive frame range of each point, in the cluster table's frame numbers.
        Ranges must not overlap.
    nominal_px : (m, 2) float64, optional
        Where the beam was meant to be (x, y), pixels; only reported, never used as a
        label.
    """

    first_frame: np.ndarray
    last_frame: np.ndarray
    nominal_px: np.ndarray | None = None

    def __post_init__(self):
        first = np.atleast_1d(np.asarray(self.first_frame)).astype(np.int64)
        last = np.atleast_1d(np.asarray(self.last_frame)).astype(np.int64)
        if first.ndim != 1 or first.shape != last.shape or len(first) == 0:
            raise DedkitError("a scan needs one first and one last frame per point")
        if np.any(last < first):
            bad = int(np.flatnonzero(last < first)[0])
            raise DedkitError(
                f"scan point {bad + 1}: last frame {last[bad]} is before first {first[bad]}"
            )
        order = np.argsort(first, kind="stable")
        if np.any(first[order][1:] <= last[order][:-1]):
            raise DedkitError("scan points' frame ranges overlap")
        object.__setattr__(self, "first_frame", first)
        object.__setattr__(self, "last_frame", last)
        if self.nominal_px is not None:
            nominal = np.asarray(self.nominal_px, dtype=np.float64)
            if nominal.shape != (len(first), 2):
                raise DedkitError(
                    f"nominal positions must be ({len(first)}, 2), got {nominal.shape}"
                )
            object.__setattr__(self, "nominal_px", nominal)

    def __len__(self) -> int:
        return len(self.first_frame)

    def point_of(self, frames) -> np.ndarray:
        """Index of the point each frame belongs to, -1 for frames outside the scan."""
        frames = np.asarray(frames, dtype=np.int64)
        order = np.argsort(self.first_frame, kind="stable")
        first, last = self.first_frame[order], self.last_frame[order]
        slot = np.searchsorted(first, frames, side="right") - 1
        inside = (slot >= 0) & (frames <= last[np.clip(slot, 0, None)])
        return np.where(inside, order[np.clip(slot, 0, None)], -1)


def parse_scan_csv(text: str) -> ScanSchedule:
    """A scan schedule from CSV text: ``first_frame,last_frame[,x_px,y_px]`` per point.

    Blank lines and lines starting with '#' are skipped; a first line that is not
    numeric is taken as a header. Either every row has the nominal position or none.
    """
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not rows and not _is_number(cells[0]):
            continue  # header
        if len(cells) not in (2, 4):
            raise DedkitError(
                f"scan CSV line {number}: expected first_frame,last_frame[,x_px,y_px], "
                f"got {len(cells)} fields"
            )
        try:
            frames = [int(c) for c in cells[:2]]
            position = [float(c) for c in cells[2:]]
        except ValueError:
            raise DedkitError(f"scan CSV line {number}: not numbers: {','.join(cells)}") from None
        if not all(math.isfinite(v) for v in position):
            raise DedkitError(f"scan CSV line {number}: the position must be finite")
        rows.append((frames, position))
    if not rows:
        raise DedkitError("the scan CSV has no points")
    if len({len(p) for _, p in rows}) != 1:
        raise DedkitError("give the nominal position (x_px, y_px) on every scan line or none")
    frames = np.array([f for f, _ in rows], dtype=np.int64)
    nominal = np.array([p for _, p in rows], dtype=np.float64) if rows[0][1] else None
    return ScanSchedule(frames[:, 0], frames[:, 1], nominal)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def simulated_scan_schedule(
    points_px, dwell_frames: int, n_frames: int, first_frame_number: int = 1
) -> ScanSchedule:
    """The schedule of a simulated scan (:mod:`dedkit.sim.beam`): the beam dwells
    ``dwell_frames`` frames on each point in turn, starting again at the first point when
    the run is longer than the scan. Each visit is a point of the schedule."""
    points = np.asarray(points_px, dtype=np.float64)
    if dwell_frames < 1 or n_frames < 1:
        raise DedkitError("a simulated scan needs a dwell and a run of at least one frame")
    visits = -(-int(n_frames) // int(dwell_frames))
    first = np.arange(visits, dtype=np.int64) * dwell_frames
    last = np.minimum(first + dwell_frames, n_frames) - 1
    nominal = points[np.arange(visits) % len(points)]
    return ScanSchedule(first + first_frame_number, last + first_frame_number, nominal)


def match_truth(frame, centroid, truth_frame, truth_xy) -> np.ndarray:
    """For each cluster, the true electron of its frame nearest to its centroid.

    Parameters
    ----------
    frame : (n,) int
    centroid : (n, 2) float
        Cluster centroids (x, y), frame pixels.
    truth_frame : (k,) int
    truth_xy : (k, 2) float
        Entry points of the true electrons.

    Returns
    -------
    (n,) int64
        Index into the truth, -1 where the frame has no electron.
    """
    frame = np.asarray(frame, dtype=np.int64)
    centroid = np.asarray(centroid, dtype=np.float64)
    truth_frame = np.asarray(truth_frame, dtype=np.int64)
    truth_xy = np.asarray(truth_xy, dtype=np.float64)
    order = np.argsort(truth_frame, kind="stable")
    sorted_frames = truth_frame[order]
    start = np.searchsorted(sorted_frames, frame, side="left")
    count = np.searchsorted(sorted_frames, frame, side="right") - start
    best = np.full(len(frame), -1, dtype=np.int64)
    best_d = np.full(len(frame), np.inf)
    # a frame holds a handful of electrons: loop over the multiplicity, not the clusters
    for j in range(int(count.max(initial=0))):
        has = count > j
        candidate = order[start[has] + j]
        d = np.hypot(*(truth_xy[candidate] - centroid[has]).T)
        d = np.where(np.isnan(d), np.inf, d)
        rows = np.flatnonzero(has)
        closer = (d < best_d[rows]) | (best[rows] < 0)
        best[rows[closer]] = candidate[closer]
        best_d[rows[closer]] = d[closer]
    return best


@dataclass(kw_only=True)
class ScanReport(JobReport):
    """What :func:`scan_labels` kept and why it rejected the rest.

    Counts of clusters: ``n_input`` = ``not_single`` (energy selection) +
    ``outside_scan`` (frame in no scan point) + ``no_centroid`` + ``too_few`` (in a
    dropped point) + ``far`` + ``not_covering`` + ``n_kept``.
    """

    n_points: int
    n_points_used: int
    n_input: int
    not_single: int
    outside_scan: int
    no_centroid: int
    too_few: int
    far: int
    not_covering: int
    n_kept: int
    sigma_px: float
    sigma_xy_px: tuple[float, float] | None
    sigma_source: str
    n_sigma: float
    cut_radius_px: float
    min_clusters: int
    clusters_per_point: tuple[float, float, float]
    label_error_rmse_px: dict | None = None
    label_error_mean_px: dict | None = None
    label_error_rmse_before_cuts_px: dict | None = None
    nominal_offset_rmse_px: dict | None = None
    n_with_truth: int = 0
    selection: dict = field(default_factory=dict)
    output: str | None = None
    labels: str = "scan"

    @property
    def kept_fraction_of_single(self) -> float:
        base = self.n_input - self.not_single - self.outside_scan - self.no_centroid
        base -= self.too_few
        return self.n_kept / base if base else math.nan

    def to_dict(self) -> dict:
        out = self._declared_dict()
        out["kept_fraction_of_single"] = self.kept_fraction_of_single
        return out

    def text(self) -> str:
        def xy(d):
            return "-" if d is None else f"x {d['x']:.3f}  y {d['y']:.3f}"

        sxy = "" if self.sigma_xy_px is None else (
            f" (x {self.sigma_xy_px[0]:.3f}, y {self.sigma_xy_px[1]:.3f})"
        )  # fmt: skip
        lo, med, hi = self.clusters_per_point
        lines = [
            f"scan points           {self.n_points_used} used of {self.n_points} "
            f"(clusters per point min {lo:g}, median {med:g}, max {hi:g}; "
            f"at least {self.min_clusters})",
            f"sigma                 {self.sigma_px:.3f} px, {self.sigma_source}{sxy}",
            f"cut radius            {self.cut_radius_px:.3f} px "
            f"({self.n_sigma:g} x sqrt(2) x sigma)",
            f"clusters in           {self.n_input}",
            f"  not single-electron {self.not_single}",
            f"  outside the scan    {self.outside_scan}",
            f"  no centroid         {self.no_centroid}",
            f"  in dropped points   {self.too_few}",
            f"  too far             {self.far}",
            f"  not covering        {self.not_covering}",
            f"  kept                {self.n_kept} "
            f"({100 * self.kept_fraction_of_single:.2f} % of the single-electron clusters "
            "of the used points)",
        ]
        if self.label_error_rmse_px is not None:
            lines += [
                f"label error rmse      {xy(self.label_error_rmse_px)} px "
                f"({self.n_with_truth} clusters with truth)",
                f"label error mean      {xy(self.label_error_mean_px)} px",
                f"  before the cuts     {xy(self.label_error_rmse_before_cuts_px)} px",
            ]
        if self.nominal_offset_rmse_px is not None:
            lines.append(f"estimate - nominal    {xy(self.nominal_offset_rmse_px)} px (rms)")
        if self.output:
            lines.append(f"wrote                 {self.output} (labels: {self.labels})")
        return "\n".join(lines)


def _rms_xy(d) -> dict | None:
    d = np.asarray(d, dtype=np.float64)
    d = d[np.all(np.isfinite(d), axis=1)]
    if len(d) == 0:
        return None
    r = np.sqrt(np.mean(d**2, axis=0))
    return {"x": float(r[0]), "y": float(r[1])}


def _mean_xy(d) -> dict | None:
    d = np.asarray(d, dtype=np.float64)
    d = d[np.all(np.isfinite(d), axis=1)]
    if len(d) == 0:
        return None
    m = d.mean(axis=0)
    return {"x": float(m[0]), "y": float(m[1])}


def scan_labels(
    clusters: ClusterTable,
    scan: ScanSchedule,
    *,
    sigma_px: float | None = None,
    n_sigma: float = 5.0,
    min_clusters: int = 20,
    beam_energy_keV: float = 200.0,
    window_keV: tuple[float, float] | None = None,
    true_entry_px=None,
    true_backscattered=None,
) -> tuple[dict[str, np.ndarray], ScanReport]:
    """Label single-electron clusters of a beam scan with each point's estimated impact.

    Parameters
    ----------
    clusters : ClusterTable
        The connected finder's clusters (keV crops of odd side with the outside zeroed,
        the 7 features, ``extra['centroid_x'/'centroid_y']`` in frame pixels), all of
        them: the single-electron selection (:func:`select_single_electrons`) is made
        here.
    scan : ScanSchedule
    sigma_px : float, optional
        Centroid resolution per axis; default: estimated from the data (module docstring).
    n_sigma : float
        Clusters farther than ``n_sigma * sqrt(2) * sigma`` from the estimate are rejected.
    min_clusters : int
        Points with fewer single-electron clusters are dropped.
    beam_energy_keV, window_keV
        The energy selection (:func:`select_single_electrons`).
    true_entry_px : (n, 2) array, optional
        True entry point (x, y, frame pixels) of each input cluster, NaN where unknown.
    true_backscattered : (n,) bool, optional
        Whether each input cluster's electron backscattered (default False).

    Returns
    -------
    columns : dict of ndarray
        Training-set columns (:data:`dedkit.io.training.TRAINING_COLUMNS`, plus
        ``true_entry_x``/``true_entry_y`` when ``true_entry_px`` is given). ``primary``
        is the cluster's row in ``clusters``, ``chunk`` its scan point.
    report : ScanReport
    """
    n_in = len(clusters)
    if clusters.features is None or clusters.units != "keV":
        raise DedkitError(
            "scan labels need the connected finder's clusters in keV with their features "
            "(dedkit hpd clusters --finder connected --gain ...)"
        )
    if "centroid_x" not in clusters.extra or "centroid_y" not in clusters.extra:
        raise DedkitError("the clusters have no charge centroid (centroid_x/centroid_y)")
    rows_, cols_ = clusters.cluster_shape
    if rows_ != cols_ or rows_ % 2 != 1:
        raise DedkitError(f"crops must be square of odd side, got {rows_} x {cols_}")
    if not (math.isfinite(n_sigma) and n_sigma > 0):
        raise DedkitError(f"n_sigma must be a positive number, got {n_sigma}")
    if sigma_px is not None and not (math.isfinite(sigma_px) and sigma_px > 0):
        raise DedkitError(f"sigma must be a positive number of pixels, got {sigma_px}")
    if int(min_clusters) < 2:
        raise DedkitError(f"a point needs at least 2 clusters, got {min_clusters}")
    truth = None
    if true_entry_px is not None:
        truth = np.asarray(true_entry_px, dtype=np.float64)
        if truth.shape != (n_in, 2):
            raise DedkitError(f"true entry points must be ({n_in}, 2), got {truth.shape}")
    back = np.zeros(n_in, bool) if true_backscattered is None else np.asarray(true_backscattered)
    if back.shape != (n_in,):
        raise DedkitError(f"backscattered flags must be ({n_in},), got {back.shape}")

    # the energy selection, remembering each cluster's row
    tagged = ClusterTable(
        clusters.frame, clusters.x, clusters.y, clusters.data, clusters.units,
        clusters.features, {**clusters.extra, "_row": np.arange(n_in)},
    )  # fmt: skip
    single, selection = select_single_electrons(
        tagged, beam_energy_keV=beam_energy_keV, window_keV=window_keV
    )
    row = np.asarray(single.extra["_row"])
    centroid = np.stack([single.extra["centroid_x"], single.extra["centroid_y"]], axis=1)
    centroid = centroid.astype(np.float64)
    point = scan.point_of(single.frame)
    outside = point < 0
    no_centroid = ~outside & ~np.all(np.isfinite(centroid), axis=1)
    usable = ~outside & ~no_centroid

    # per point: count and mean centroid
    m = len(scan)
    counts = np.bincount(point[usable], minlength=m)
    sums = np.stack(
        [np.bincount(point[usable], weights=centroid[usable, k], minlength=m) for k in (0, 1)],
        axis=1,
    )
    used_point = counts >= int(min_clusters)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = sums / counts[:, None]
    too_few = usable & ~used_point[np.clip(point, 0, None)]
    candidate = usable & ~too_few
    if not np.any(used_point):
        raise DedkitError(
            f"no scan point has {min_clusters} single-electron clusters "
            f"(most: {int(counts.max(initial=0))}); lower the minimum or check the scan"
        )

    # sigma: given, or the rms of the centroids around their point means
    residual = centroid - estimate[np.clip(point, 0, None)]
    sigma_xy = None
    if sigma_px is None:
        dof = int(candidate.sum()) - int(used_point.sum())
        if dof < 1:
            raise DedkitError("too few clusters to estimate sigma; give it (--sigma)")
        sx, sy = np.sqrt(np.sum(residual[candidate] ** 2, axis=0) / dof)
        sigma_xy = (float(sx), float(sy))
        sigma = math.sqrt((sx**2 + sy**2) / 2)
        source = "estimated from the data"
    else:
        sigma = float(sigma_px)
        source = "given"
    radius = n_sigma * math.sqrt(2) * sigma
    far = candidate & (np.hypot(residual[:, 0], residual[:, 1]) > radius)

    # coverage: the pixel holding the estimate is a (non-zero) pixel of the crop
    crop = rows_
    half = crop // 2
    est = estimate[np.clip(point, 0, None)]
    u = np.floor(est[:, 0] - (single.x - half)).astype(np.int64, copy=False)
    v = np.floor(est[:, 1] - (single.y - half)).astype(np.int64, copy=False)
    in_crop = (u >= 0) & (u < crop) & (v >= 0) & (v < crop)
    value = np.zeros(len(single))
    idx = np.flatnonzero(candidate & in_crop)
    value[idx] = single.data[idx, v[idx], u[idx]]
    not_covering = candidate & ~far & ~(value > 0)
    kept = candidate & ~far & ~not_covering

    origin = np.stack([single.x - half, single.y - half], axis=1).astype(np.float64)
    k = np.flatnonzero(kept)
    label = est[k] - origin[k]
    columns = {
        "image": np.asarray(single.data[k], dtype=np.float32),
        "features": np.asarray(single.features[k], dtype=np.float32),
        "entry_x": label[:, 0],
        "entry_y": label[:, 1],
        "centroid_x": centroid[k, 0] - origin[k, 0],
        "centroid_y": centroid[k, 1] - origin[k, 1],
        "backscattered": back[row[k]].astype(bool),
        "deposit_keV": np.asarray(single.features[k, _CHARGE], dtype=np.float32),
        "primary": row[k].astype(np.int64),
        "n_selected": np.ones(len(k), np.int16),
        "chunk": point[k].astype(np.int32),
    }
    errors = {}
    n_truth = 0
    if truth is not None:
        true_crop = truth[row] - origin
        columns["true_entry_x"] = true_crop[k, 0]
        columns["true_entry_y"] = true_crop[k, 1]
        error = est - truth[row]
        n_truth = int(np.all(np.isfinite(error[k]), axis=1).sum())
        errors = {
            "label_error_rmse_px": _rms_xy(error[k]),
            "label_error_mean_px": _mean_xy(error[k]),
            "label_error_rmse_before_cuts_px": _rms_xy(error[candidate]),
        }
    nominal = None
    if scan.nominal_px is not None:
        nominal = _rms_xy((estimate - scan.nominal_px)[used_point])
    per_point = counts[used_point]
    report = ScanReport(
        command="learn scan-labels",
        n_points=m,
        n_points_used=int(used_point.sum()),
        n_input=n_in,
        not_single=n_in - len(single),
        outside_scan=int(outside.sum()),
        no_centroid=int(no_centroid.sum()),
        too_few=int(too_few.sum()),
        far=int(far.sum()),
        not_covering=int(not_covering.sum()),
        n_kept=len(k),
        sigma_px=float(sigma),
        sigma_xy_px=sigma_xy,
        sigma_source=source,
        n_sigma=float(n_sigma),
        cut_radius_px=float(radius),
        min_clusters=int(min_clusters),
        clusters_per_point=(
            float(per_point.min()),
            float(np.median(per_point)),
            float(per_point.max()),
        ),
        nominal_offset_rmse_px=nominal,
        n_with_truth=n_truth,
        selection=selection.to_dict(),
        **errors,
    )
    return columns, report
