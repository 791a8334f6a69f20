"""Study ``track-reuse``: does placing library tracks change how well electrons are localised?

The gold-nanoparticle acquisition (issue 17) needs millions of electrons; instead of
tracking each through Geant4 it places tracks of a library
(:mod:`dedkit.sim.tracks`: each rotated about the beam axis by a random angle, mirrored
with probability 1/2, moved to its entry point). The issue allows it "if you show that
the localisation figures do not change". This study is that evidence.

The same ``n`` entry points (uniform over a block of pixels at the sensor centre, so
uniform within a pixel) get two sets of electrons: **fresh** (one Geant4 primary each)
and **library** (placements of a library of ``library_size`` Geant4 tracks made with
another seed). Both go through the same chain as the training sets and the validation
(:func:`dedkit.sim.runs.training_clusters`: charge transport with Coulomb repulsion,
noise, ADC, the paper's 5-sigma connected finder and the 20-205 keV window; one
electron per stamp, which is what a low flux with clusters apart gives). Each selected
cluster is localised by the charge centroid, eta interpolation (eta2 on the 3 x 3 around
the crop maximum, its flat-field map fitted on the set's own clusters, as
:mod:`dedkit.learn.evaluate`) and the CNN (the shipped model), and compared with the true
entry point: RMSE per axis in pixels. Also the fraction of primaries with a selected
cluster, the mean cluster size and, from Geant4, the backscatter fraction.

Standard errors: bootstrap (``bootstrap`` replicates). Fresh primaries are independent and
resampled one by one; the placements of one library track are not (a track placed twice
has the same depth profile and, up to its orientation, the same error), so the library
side is resampled by track (a cluster bootstrap), every placement of a drawn track
taking its weight. The difference's standard error is that of two independent samples,
``sqrt(se_fresh^2 + se_library^2)``; ``z`` is the difference over it. The eta map is not
refitted per replicate (its own noise is left out of both sides alike).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from dedkit.errors import DedkitError
from dedkit.studies import LIMITS, StudyResult

__all__ = ["FIGURE_DPI", "METHODS", "TrackReuseResult", "figure", "run"]

#: localisation methods the study compares
METHODS = ("centroid", "eta", "cnn")
#: z beyond which a difference is reported as significant
Z_LIMIT = 2.0

COLUMNS = [
    ("quantity", "quantity", ""),
    ("fresh", "fresh Geant4", ".4f"),
    ("fresh_se", "+-", ".4f"),
    ("library", "library", ".4f"),
    ("library_se", "+-", ".4f"),
    ("difference", "lib - fresh", "+.4f"),
    ("se", "se", ".4f"),
    ("z", "z", "+.2f"),
]


@dataclass(kw_only=True)
class TrackReuseResult(StudyResult):
    """The study's rows and figures.

    Attributes
    ----------
    fresh, library : dict
        Quantity -> value (``centroid_rmse_x``, ..., ``selected_fraction``,
        ``mean_cluster_size_px``, ``backscatter_fraction``).
    fresh_se, library_se : dict
        Their bootstrap standard errors.
    difference, difference_se, z : dict
        ``library - fresh``, its standard error, and their ratio.
    """

    fresh: dict = field(default_factory=dict)
    library: dict = field(default_factory=dict)
    fresh_se: dict = field(default_factory=dict)
    library_se: dict = field(default_factory=dict)
    difference: dict = field(default_factory=dict)
    difference_se: dict = field(default_factory=dict)
    z: dict = field(default_factory=dict)

    def consistent(self, limit: float = Z_LIMIT) -> bool:
        """Every difference within ``limit`` standard errors."""
        return all(abs(v) <= limit for v in self.z.values() if math.isfinite(v))


def _geant4_seed(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1)[0] % (2**31 - 2)) + 1


def run(
    energy_keV: float = 200.0,
    n: int = 20000,
    *,
    library_size: int = 10000,
    seed: int = 1,
    workers: int | None = None,
    mirror: bool = True,
    methods=METHODS,
    model=None,
    bootstrap: int = 300,
    library=None,
    simulate=None,
    progress=None,
) -> TrackReuseResult:
    """Localisation of fresh Geant4 electrons vs library placements at the same entry points.

    Parameters
    ----------
    energy_keV : float
        Beam energy (the CNN's model must be of it; 200 keV for the shipped one).
    n : int
        Electrons in each set.
    library_size : int
        Tracks in the library (simulated here with its own seed unless ``library``).
    seed : int
    workers : int, optional
        Geant4 worker processes.
    mirror : bool
        Mirror half of the placements.
    methods : sequence of str
        Among :data:`METHODS` (``cnn`` needs torch).
    model : path-like, optional
        The CNN's model (default the shipped one).
    bootstrap : int
        Bootstrap replicates of the standard errors.
    library : TrackLibrary, optional
        Use this library (``library_size`` is then its length).
    simulate : callable, optional
        Replaces :func:`dedkit.sim.transport.simulate_electrons` for the fresh electrons
        and the library (tests).
    progress : callable, optional
        ``progress(done, total)`` over the study's 6 stages.

    Returns
    -------
    TrackReuseResult
        Name ``track-reuse``; a row per quantity; ``report`` for ``--json``.

    Examples
    --------
    Straight tracks stand in for Geant4 here (no physics; only to show the call):

    >>> from dedkit.sim.runs import straight_track_stream
    >>> from dedkit.records.deposits import ElectronDeposits
    >>> def straight(*args, **kw):
    ...     return ElectronDeposits.concatenate(list(straight_track_stream(*args, **kw)))
    >>> r = run(n=300, library_size=100, methods=("centroid",), bootstrap=50,
    ...         simulate=straight)
    >>> sorted(r.fresh)[:2], r.consistent(4.0)
    (['backscatter_fraction', 'centroid_rmse_x'], True)
    """
    from dedkit.records.deposits import ElectronDeposits
    from dedkit.records.sensor import SensorGeometry
    from dedkit.sim.charge import ChargeModel
    from dedkit.sim.response import DetectorResponse
    from dedkit.sim.runs import check_energy, training_clusters, training_entry_points
    from dedkit.sim.tracks import (
        TrackLibrary,
        library_stream,
        placement_plan,
        simulate_track_library,
    )

    started = time.perf_counter()
    energy = check_energy(energy_keV)
    for name, value, low in (("n", n, 10), ("library_size", library_size, 1),
                             ("bootstrap", bootstrap, 10)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DedkitError(f"{name} must be an integer of at least {low}, not {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DedkitError(f"seed must be a non-negative integer, not {seed!r}")
    limits = LIMITS["track-reuse"]
    for name, value in (("n", n), ("library_size", library_size), ("bootstrap", bootstrap)):
        if value > limits[name][1]:
            raise DedkitError(f"{name} must be at most {limits[name][1]}, not {value}")
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise DedkitError(f"methods must be among {', '.join(METHODS)}, not {unknown}")
    n = int(n)
    sensor = SensorGeometry()
    charge_model = ChargeModel()
    response = DetectorResponse()
    geant4 = simulate is None
    if geant4:
        from dedkit.sim.transport import simulate_electrons as simulate
    localizer = None
    if "cnn" in methods:
        from dedkit.learn.localizer import CnnLocalizer

        localizer = CnnLocalizer(
            model,
            beam_energy_keV=energy,
            sensor={"thickness_um": sensor.thickness_um, "pitch_um": sensor.pitch_um},
        )
    ss = np.random.SeedSequence([int(seed), 0x7E05])
    s_lib, s_entry, s_fresh, s_place, s_cf, s_cl, s_boot = ss.spawn(7)
    stages = 6
    timing = {}

    def step(k: int, name: str, t0: float) -> float:
        t = time.perf_counter()
        timing[name] = round(t - t0, 3)
        if progress is not None:
            progress(k, stages)
        return t

    t = time.perf_counter()
    if library is None:
        if geant4:
            library = simulate_track_library(
                energy, int(library_size), seed=_geant4_seed(s_lib), workers=workers,
                sensor=sensor,
            )  # fmt: skip
        else:
            library = _library_from(simulate, energy, int(library_size), _geant4_seed(s_lib),
                                    sensor)  # fmt: skip
    elif not isinstance(library, TrackLibrary):
        raise DedkitError("library must be a TrackLibrary")
    t = step(1, "library_s", t)

    entry = training_entry_points(n, sensor, np.random.default_rng(s_entry))
    fresh = simulate(energy, n, seed=_geant4_seed(s_fresh), workers=workers, sensor=sensor,
                     entry=entry)  # fmt: skip
    t = step(2, "fresh_geant4_s", t)
    place_seed = int(s_place.generate_state(1)[0] % (2**31))
    placed = ElectronDeposits.concatenate(
        list(library_stream(library, mirror=mirror)(energy, n, seed=place_seed, sensor=sensor,
                                                    entry=entry))
    )  # fmt: skip
    track_of = placement_plan(len(library), n, place_seed, mirror=mirror)[0]
    t = step(3, "placement_s", t)

    sets = {}
    for name, deposits, s in (("fresh", fresh, s_cf), ("library", placed, s_cl)):
        batch = training_clusters(
            deposits, np.random.default_rng(s), model=charge_model, response=response
        )
        sets[name] = (deposits, batch)
    t = step(4, "clusters_s", t)
    residuals = {name: _residuals(batch, methods, localizer) for name, (_, batch) in sets.items()}
    t = step(5, "localise_s", t)

    rng = np.random.default_rng(s_boot)
    weights = {
        "fresh": rng.multinomial(n, np.full(n, 1.0 / n), size=int(bootstrap)).astype(np.float64),
        "library": rng.multinomial(
            len(library), np.full(len(library), 1.0 / len(library)), size=int(bootstrap)
        ).astype(np.float64)[:, track_of],
    }
    values, errors = {}, {}
    for name, (deposits, batch) in sets.items():
        values[name], errors[name] = _quantities(
            deposits, batch, residuals[name], methods, weights[name]
        )
    step(6, "bootstrap_s", t)

    keys = list(values["fresh"])
    difference = {k: values["library"][k] - values["fresh"][k] for k in keys}
    difference_se = {k: math.hypot(errors["library"][k], errors["fresh"][k]) for k in keys}
    z = {k: difference[k] / difference_se[k] if difference_se[k] > 0 else math.nan for k in keys}
    rows = [
        {
            "quantity": k,
            "fresh": values["fresh"][k],
            "fresh_se": errors["fresh"][k],
            "library": values["library"][k],
            "library_se": errors["library"][k],
            "difference": difference[k],
            "se": difference_se[k],
            "z": z[k],
        }
        for k in keys
    ]
    worst = max(keys, key=lambda k: abs(z[k]) if math.isfinite(z[k]) else -1.0)
    parameters = {
        "energy_keV": energy,
        "n": n,
        "library_size": len(library),
        "seed": int(seed),
        "mirror": bool(mirror),
        "methods": list(methods),
        "bootstrap": int(bootstrap),
        "physics": library.physics,
        "sensor": sensor.to_dict(),
        "charge_model": charge_model.to_dict(),
        "response": response.to_dict(),
        "model": None if localizer is None else str(localizer.model_path),
        "distinct_tracks_placed": int(len(np.unique(track_of))),
    }
    notes = [
        f"{n} electrons at {energy:g} keV each way: fresh Geant4 ({fresh.physics}) vs "
        f"placements of {len(library)} library tracks ({parameters['distinct_tracks_placed']} "
        f"used; rotated{', mirrored' if mirror else ''}), same entry points, one electron "
        "per stamp (isolated clusters), 5-sigma connected finder, 20-205 keV window.",
        f"Standard errors: bootstrap of {bootstrap} (library resampled by track). Largest "
        f"|z| = {abs(z[worst]):.2f} ({worst}); "
        + (
            f"all within {Z_LIMIT:g} standard errors."
            if all(abs(v) <= Z_LIMIT for v in z.values() if math.isfinite(v))
            else f"some beyond {Z_LIMIT:g} standard errors."
        ),
    ]
    report = {
        "fresh": values["fresh"],
        "fresh_se": errors["fresh"],
        "library": values["library"],
        "library_se": errors["library"],
        "difference": difference,
        "difference_se": difference_se,
        "z": z,
        "parameters": parameters,
        "timing_s": timing,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return TrackReuseResult(
        name="track-reuse",
        columns=list(COLUMNS),
        rows=rows,
        report=report,
        notes=notes,
        curves={name: residuals[name] for name in residuals},
        fresh=values["fresh"],
        library=values["library"],
        fresh_se=errors["fresh"],
        library_se=errors["library"],
        difference=difference,
        difference_se=difference_se,
        z=z,
    )


def _library_from(simulate, energy, size, seed, sensor):
    """A library from a stand-in for Geant4 (tests): its tracks moved to (0, 0)."""
    from dedkit.sim.tracks import TrackLibrary

    cx, cy = sensor.width_um / 2, sensor.height_um / 2
    d = simulate(energy, size, seed=seed, sensor=sensor, entry=(np.full(size, cx),
                                                               np.full(size, cy)))  # fmt: skip
    d.step_x_um = (d.step_x_um.astype(np.float64) - cx).astype(np.float32)
    d.step_y_um = (d.step_y_um.astype(np.float64) - cy).astype(np.float32)
    d.entry_x_um = np.zeros(len(d))
    d.entry_y_um = np.zeros(len(d))
    return TrackLibrary(d, d.energy_keV, d.physics, seed)


def _residuals(batch, methods, localizer) -> dict:
    """Predicted minus true entry point (m, 2), pixels, per method."""
    from dedkit.learn.evaluate import eta_positions

    crop = batch.image.shape[-1] if len(batch) else 15
    centre = crop / 2
    truth = np.stack([batch.entry_x - centre, batch.entry_y - centre], axis=1)
    out = {}
    for method in methods:
        if len(batch) == 0:
            out[method] = np.zeros((0, 2))
        elif method == "centroid":
            out[method] = np.stack([batch.centroid_x, batch.centroid_y], axis=1) - centre - truth
        elif method == "eta":
            out[method] = eta_positions(batch.image) - truth
        else:
            out[method] = localizer.positions(batch.image, batch.features) - truth
    return out


def _quantities(deposits, batch, residuals, methods, weights):
    """Each quantity and its bootstrap standard error (weights: replicates x primaries)."""
    primary = np.asarray(batch.primary, np.int64)
    total = weights.sum(axis=1)
    values, errors = {}, {}

    def mean(name, v, rows=None, root=False):
        w = weights if rows is None else weights[:, rows]
        v = np.asarray(v, np.float64)
        value = float(v.mean()) if len(v) else math.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            replicas = (w @ v) / w.sum(axis=1)
        if root:
            value, replicas = math.sqrt(value), np.sqrt(replicas)
        values[name] = value
        errors[name] = float(np.nanstd(replicas, ddof=1)) if len(v) else math.nan

    for method in methods:
        r = residuals[method]
        for i, axis in enumerate("xy"):
            mean(f"{method}_rmse_{axis}", r[:, i] ** 2, primary, root=True)
    selected = np.zeros(len(deposits))
    selected[primary] = 1.0
    values["selected_fraction"] = float(selected.mean())
    errors["selected_fraction"] = float(np.std((weights @ selected) / total, ddof=1))
    mean("mean_cluster_size_px", batch.features[:, 3], primary)
    mean("backscatter_fraction", np.asarray(deposits.backscattered, np.float64))
    return values, errors


#: Resolution of the saved figure (dots per inch)
FIGURE_DPI = 110


def figure(result: TrackReuseResult):
    """Residual histograms (x and y) per method, fresh vs library, RMSEs in the legend.
    Nothing is written (``dedkit.jobs.study.write_study_figure`` saves it).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas (no pyplot state).

    Raises
    ------
    DedkitError
        matplotlib is not installed, or the result has no residuals.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DedkitError("matplotlib is not installed: no figure written") from None
    if not result.curves:
        raise DedkitError("the study has no residuals to draw")
    methods = list(next(iter(result.curves.values())))
    fig = Figure(figsize=(4.0 * len(methods), 6.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(methods), squeeze=False)
    bins = np.linspace(-5, 5, 81)
    for j, method in enumerate(methods):
        for i, axis in enumerate("xy"):
            ax = axes[i, j]
            for name, colour in (("fresh", "k"), ("library", "C3")):
                r = result.curves[name][method][:, i]
                rmse = result.report[name][f"{method}_rmse_{axis}"]
                ax.hist(r, bins, histtype="step", color=colour, density=True,
                        label=f"{name}: RMSE {rmse:.3f}")  # fmt: skip
            ax.set_title(f"{method} {axis}")
            ax.set_xlabel(f"{axis} residual (px)")
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
