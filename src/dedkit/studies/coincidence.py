"""Study ``coincidence``: measured vs true dose rate on the K2 and K3, and the correction.

The seed (SerialEM manual) says a K2 produces ~0.97, ~0.94, ~0.87 and ~0.6 counts per true
electron at 5, 7.5, 10 and 20 e/physical pixel/s from coincidence loss, only 0.87 counts
per true electron even at low rates, and the same on a K3 at 3.75 times the rate; and
that SerialEM (since 3.6) corrects dose rates for both.

For a set of true dose rates the study records, per camera: the counted ("measured") rate
the model predicts; a measured rate from a seeded Poisson count of the electrons counted
on ``pixels`` physical pixels in ``exposure`` seconds (what a flat-field image would
give); the corrected rate (:func:`dedkit.camera.coincidence.true_rate` of the measured
one), which should recover the true rate within counting noise; and how much the
correction amplifies relative errors (1 / d ln counted / d ln true), which grows without
bound towards the rate where counting saturates. The notes compare the seed's points with
the fitted curve.
"""

from __future__ import annotations

import numpy as np

from dedkit.camera.coincidence import (
    CURVE_EXPONENT_P,
    CURVE_EXPONENT_Q,
    CURVE_RATE,
    DETECTION_EFFICIENCY,
    SEED_K2_POINTS,
    coincidence_factor,
    counted_rate,
    max_counted_rate,
    peak_true_rate,
    rate_sensitivity,
    true_rate,
)
from dedkit.camera.models import get_camera
from dedkit.errors import DedkitError
from dedkit.studies import LIMITS, StudyResult

__all__ = ["DEFAULT_K2_RATES", "FIGURE_DPI", "figure", "run"]

#: true dose rates studied on the K2 (e/physical pixel/s); other cameras scale them by
#: their ``counting_rate_scale`` (x3.75 on the K3)
DEFAULT_K2_RATES = (1.0, 2.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0)

COLUMNS = [
    ("camera", "camera", ""),
    ("true_rate", "true e/px/s", ".2f"),
    ("factor", "coinc. factor", ".4f"),
    ("counted_rate", "model counted", ".3f"),
    ("measured_rate", "measured", ".3f"),
    ("corrected_rate", "corrected", ".3f"),
    ("relative_error", "corr. error", "+.4f"),
    ("uncorrected_error", "uncorr. error", "+.3f"),
    ("noise_gain", "noise gain", ".2f"),
    ("in_range", "efficient", ""),
]


def run(
    cameras=("K2", "K3"),
    *,
    k2_rates=DEFAULT_K2_RATES,
    exposure: float = 1.0,
    pixels: int = 1_000_000,
    seed: int = 0,
    curve_points: int = 200,
    progress=None,
) -> StudyResult:
    """Measured vs true dose rate with the coincidence correction applied.

    Parameters
    ----------
    cameras : sequence of str
        Counting cameras to study (``K2``, ``K3``).
    k2_rates : sequence of float
        True dose rates for the K2 (e/physical pixel/s), each below the K2's peak
        counted rate (38.5); scaled by the camera's ``counting_rate_scale`` for others.
    exposure : float
        Seconds of the simulated flat-field image.
    pixels : int
        Physical pixels counted in the simulated image (sets the counting noise).
    seed : int
        Seed of the Poisson counts.
    curve_points : int
        Points of the dense curves kept for the figure.
    progress : callable (done, total), optional
        Called after each camera.

    Returns
    -------
    StudyResult
        Name ``coincidence``; rows per camera and rate; ``report`` for ``--json``:
        ``{"cameras": {name: {"true_rate", "counted_rate", "measured_rate",
        "corrected_rate", "coincidence_factor", "noise_gain", "peak_true_rate",
        "max_counted_rate", "efficient_range"}}, "seed_points": [...], "curve": {...},
        "parameters": {...}}``.
    """
    cams = [get_camera(c) for c in cameras]
    if not cams:
        raise DedkitError("no camera to study")
    for cam in cams:
        if not cam.counts:
            raise DedkitError(f"the {cam.name} does not count electrons: no coincidence loss")
    k2_rates = np.asarray(k2_rates, dtype=np.float64)
    if k2_rates.ndim != 1 or k2_rates.size == 0 or np.any(k2_rates <= 0):
        raise DedkitError("the true dose rates must be positive numbers")
    if np.any(k2_rates >= peak_true_rate("K2")):
        raise DedkitError(
            f"true dose rates must stay below {peak_true_rate('K2'):.4g} e/physical pixel/s "
            "(K2), where counting saturates and cannot be corrected"
        )
    if not (exposure > 0 and pixels >= 1):
        raise DedkitError("exposure and pixels must be positive")
    limits = LIMITS["coincidence"]
    if len(cams) > limits["n_cameras"] or k2_rates.size > limits["n_rates"]:
        raise DedkitError(
            f"give at most {limits['n_cameras']} cameras and {limits['n_rates']} rates"
        )
    if not (exposure <= limits["exposure"][1] and pixels <= limits["pixels"][1]):
        raise DedkitError(
            f"the exposure must be <= {limits['exposure'][1]:g} s and the pixels <= "
            f"{limits['pixels'][1]:g}, got {exposure:g} s and {pixels:g}"
        )
    rng = np.random.default_rng(seed)

    rows: list[dict] = []
    per_camera: dict[str, dict] = {}
    curves: dict[str, dict] = {}
    if progress is not None:
        progress(0, len(cams))
    for done, cam in enumerate(cams, 1):
        scale = cam.counting_rate_scale
        rates = k2_rates * scale
        model = counted_rate(rates, cam)
        # a flat-field image: Poisson counts of the counted electrons over all pixels
        electrons = rng.poisson(model * exposure * pixels)
        measured = electrons / (exposure * pixels)
        # counting noise can put a rate near saturation above the largest counted rate:
        # no true rate gives it, so it has no correction (NaN here, null in the report)
        recoverable = measured <= max_counted_rate(cam)
        corrected = np.full_like(measured, np.nan)
        corrected[recoverable] = true_rate(measured[recoverable], cam)
        factor = coincidence_factor(rates, cam)
        gain = 1.0 / rate_sensitivity(rates, cam)
        lo, hi = cam.efficient_rate_range
        for i, r in enumerate(rates):
            rows.append(
                {
                    "camera": cam.name,
                    "true_rate": float(r),
                    "factor": float(factor[i]),
                    "counted_rate": float(model[i]),
                    "measured_rate": float(measured[i]),
                    "corrected_rate": float(corrected[i]),
                    "relative_error": float(corrected[i] / r - 1),
                    "uncorrected_error": float(measured[i] / r - 1),
                    "noise_gain": float(gain[i]),
                    "in_range": "yes" if lo <= r <= hi else "no",
                }
            )
        per_camera[cam.name] = {
            "true_rate": rates.tolist(),
            "coincidence_factor": factor.tolist(),
            "counted_rate": model.tolist(),
            "measured_rate": measured.tolist(),
            "corrected_rate": [None if np.isnan(v) else float(v) for v in corrected],
            "noise_gain": gain.tolist(),
            "peak_true_rate": peak_true_rate(cam),
            "max_counted_rate": max_counted_rate(cam),
            "efficient_range": [lo, hi],
        }
        dense = np.linspace(0.0, max(rates.max() * 1.15, hi * 1.1), curve_points)
        curves[cam.name] = {
            "true_rate": dense,
            "counted_rate": counted_rate(dense, cam),
            "factor": coincidence_factor(dense, cam),
            "rows_true": rates,
            "rows_measured": measured,
            "rows_corrected": corrected,
            "seed_true": np.array([p[0] for p in SEED_K2_POINTS]) * scale,
            "seed_factor": np.array([p[1] for p in SEED_K2_POINTS]),
            "efficient_range": (lo, hi),
        }
        if progress is not None:
            progress(done, len(cams))

    seed_rates = np.array([p[0] for p in SEED_K2_POINTS])
    seed_factors = np.array([p[1] for p in SEED_K2_POINTS])
    ours = coincidence_factor(seed_rates, "K2")
    seed_points = [
        {
            "k2_true_rate": float(r),
            "k3_true_rate": float(r * get_camera("K3").counting_rate_scale),
            "seed_factor": float(f),
            "model_factor": float(m),
            "difference": float(m - f),
        }
        for r, f, m in zip(seed_rates, seed_factors, ours, strict=True)
    ]
    worst = max(abs(p["difference"]) for p in seed_points)
    notes = [
        "Seed (SerialEM manual), K2 counts per true electron from coincidence loss: "
        + ", ".join(f"{f:g} at {r:g}" for r, f in SEED_K2_POINTS)
        + f" e/physical pixel/s; detection efficiency {DETECTION_EFFICIENCY:g}; K3 the "
        "same at 3.75x the rate.",
        "Ours (fitted curve, rates read as true rates): "
        + ", ".join(f"{m:.3f} at {r:g}" for r, m in zip(seed_rates, ours, strict=True))
        + f"; largest difference {worst:.4f}.",
        "Counting saturates (largest counted rate) at a true rate of "
        + ", ".join(
            f"{c['peak_true_rate']:.1f} ({n}, counted {c['max_counted_rate']:.2f})"
            for n, c in per_camera.items()
        )
        + " e/physical pixel/s; above it no correction is possible.",
        f"Measured: Poisson counts over {pixels} pixels x {exposure:g} s (seed {seed}); "
        "'corrected' is the true rate recovered from the measured one, its error is "
        "counting noise times the noise gain.",
    ]
    report = {
        "cameras": per_camera,
        "seed_points": seed_points,
        "curve": {
            "form": "f(r) = (1 + (r / (s r0))**p)**(-q)",
            "r0": CURVE_RATE,
            "p": CURVE_EXPONENT_P,
            "q": CURVE_EXPONENT_Q,
            "detection_efficiency": DETECTION_EFFICIENCY,
            "rates": "true (incident) e/physical pixel/s",
        },
        "parameters": {"exposure": exposure, "pixels": pixels, "seed": seed},
    }
    return StudyResult(
        name="coincidence",
        columns=list(COLUMNS),
        rows=rows,
        report=report,
        notes=notes,
        curves=curves,
    )


#: Resolution of the saved figure (dots per inch)
FIGURE_DPI = 110


def figure(result: StudyResult):
    """The study's figure: measured (counted) vs true dose rate per camera, with the
    corrected rates, the identity line, the seed's points and the efficient counting
    range. Nothing is written: ``dedkit study coincidence --figure`` saves it at
    :data:`FIGURE_DPI` (:func:`dedkit.jobs.study.write_study_figure`).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas (no pyplot state).

    Raises
    ------
    DedkitError
        matplotlib is not installed, or the result has no curves.
    """
    try:
        # the object API with the Agg canvas: no pyplot state, no display needed
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DedkitError("matplotlib is not installed: no figure written") from None

    names = list(result.curves)
    if not names:
        raise DedkitError("the study has no curves to draw")
    fig = Figure(figsize=(5.2 * len(names), 4.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        c = result.curves[name]
        x = c["true_rate"]
        lo, hi = c["efficient_range"]
        ax.axvspan(lo, hi, color="0.92", label="efficient counting range")
        ax.plot(x, x, "k:", lw=1, label="identity (measured = true)")
        ax.plot(x, x * DETECTION_EFFICIENCY, color="0.6", lw=1, label="0.87 x true (no loss)")
        ax.plot(x, c["counted_rate"], "C0", lw=2, label="model counted rate")
        ax.plot(c["rows_true"], c["rows_measured"], "o", color="C0", ms=5, label="measured")
        ax.plot(
            c["rows_true"],
            c["rows_corrected"],
            "s",
            color="C2",
            ms=5,
            mfc="none",
            label="corrected",
        )
        seed_counted = c["seed_true"] * c["seed_factor"] * DETECTION_EFFICIENCY
        ax.plot(c["seed_true"], seed_counted, "x", color="C3", ms=9, mew=2, label="seed points")
        ax.set_title(f"{name}: counted vs true dose rate")
        ax.set_xlabel("true dose rate (e / physical pixel / s)")
        ax.set_ylabel("dose rate (e / physical pixel / s)")
        ax.set_xlim(0, x.max())
        ax.set_ylim(0, x.max())
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
