"""Study ``rounding-dqe``: does saving normalised frames as integers cost DQE?

The seed (SerialEM manual, "Signal loss from saving normalized frames as integers")
models a normalised K2 frame pixel in five steps:

1. a Poisson deviate, the true electron count n (mean = the dose per saved pixel);
2. plus a Gaussian deviate of sigma 0.05 n (the spread of normalised values around
   integer counts);
3. set to zero in 0.13 of the trials (the typical signal loss of electron counting);
4. times 16 (the smallest multiplier applied when saving frames);
5. kept as a float, or rounded to the nearest integer.

DQE = (SNR_out / SNR_in)^2 with SNR = mean / standard deviation; SNR_in^2 = dose, the
Poisson input's. The seed's table gives the loss in DQE from rounding as 0.0005, 0.0004,
0.0003 and 0.0002 at 0.1, 0.5, 1 and 2 electrons per pixel, and equates a loss of 0.0005
with needing 10005 particles where 10000 would do, i.e. a relative loss.

Here both outputs come from the *same* draws (paired samples): the float and the rounded
value of every trial, so the difference carries only the rounding's own noise and its
statistical error (from ``batches`` independent batches) is far below the effect. Only
trials with n > 0 need steps 2-5 (the others give 0 on both paths); they are drawn for
the nonzero trials alone.

A closed form to check against: rounding adds a nearly uniform error of variance 1/12
to every nonzero output (the Gaussian spread, 0.8 output units per electron, smears the
fractional part), so ``Var_rounded ~= Var_float + P(y != 0) / 12`` with
``P(y != 0) = (1 - exp(-dose)) (1 - 0.13)`` and the float path's moments exact:
``E y = 16 (0.87) dose``, ``E y^2 = 256 (0.87) (1 + 0.05^2) (dose + dose^2)``.
"""

from __future__ import annotations

import math

import numpy as np

from dedkit.errors import DedkitError
from dedkit.studies import LIMITS, StudyResult

__all__ = [
    "DOSES",
    "SEED_TABLE",
    "SPREAD",
    "LOSS",
    "MULTIPLIER",
    "paired_outputs",
    "dqe_loss",
    "expected_loss",
    "run",
    "FIGURE_DPI",
    "figure",
]

#: electrons per saved pixel in the seed's table
DOSES = (0.1, 0.5, 1.0, 2.0)
#: the seed's "Loss in DQE" for each dose
SEED_TABLE = {0.1: 0.0005, 0.5: 0.0004, 1.0: 0.0003, 2.0: 0.0002}
#: step 2: sigma of the Gaussian spread per electron
SPREAD = 0.05
#: step 3: fraction of trials set to zero
LOSS = 0.13
#: step 4: the smallest multiplier applied when saving frames
MULTIPLIER = 16.0


def paired_outputs(dose: float, n_trials: int, rng: np.random.Generator):
    """Steps 1-5 for ``n_trials`` trials: the float and rounded outputs of the nonzero
    trials (the rest are 0 on both paths).

    Returns
    -------
    float_values, rounded_values : 1D float64 arrays of equal length
    """
    n = rng.poisson(dose, int(n_trials))
    k = n[n > 0].astype(np.float64)
    x = k + SPREAD * k * rng.standard_normal(k.size)
    kept = rng.random(k.size) >= LOSS
    y = np.where(kept, MULTIPLIER * x, 0.0)
    # rounding to the nearest integer as an integer frame is written (+0.5, truncate);
    # y > 0 always here
    return y, np.floor(y + 0.5)


def _dqe(total: float, total_sq: float, n: int, dose: float) -> float:
    mean = total / n
    var = total_sq / n - mean * mean
    return mean * mean / var / dose


def dqe_loss(
    dose: float, n_samples: int, rng: np.random.Generator, *, batches: int = 20, progress=None
):
    """DQE of the float and the rounded path and the loss from rounding, paired.

    Parameters
    ----------
    dose : float
        Mean electrons per saved pixel (> 0).
    n_samples : int
        Trials in all, split into ``batches`` equal batches.
    rng : numpy.random.Generator
    batches : int
        Independent batches for the statistical errors (>= 2).
    progress : callable (done, total), optional
        Called after each batch.

    Returns
    -------
    dict
        dqe_float, dqe_rounded, abs_loss (= dqe_float - dqe_rounded), abs_loss_err,
        rel_loss (= abs_loss / dqe_float), rel_loss_err; the values from all trials, the
        errors the standard error of the batch values.
    """
    if not dose > 0:
        raise DedkitError(f"the dose must be > 0, got {dose}")
    if batches < 2 or n_samples < batches:
        raise DedkitError("need at least 2 batches and one trial per batch")
    per_batch = int(n_samples) // batches
    sums = np.zeros((batches, 4))
    for b in range(batches):
        yf, yr = paired_outputs(dose, per_batch, rng)
        sums[b] = (yf.sum(), (yf * yf).sum(), yr.sum(), (yr * yr).sum())
        if progress is not None:
            progress(b + 1, batches)

    def losses(s, n):
        f = _dqe(s[0], s[1], n, dose)
        r = _dqe(s[2], s[3], n, dose)
        return f, r, f - r, (f - r) / f

    f, r, abs_loss, rel_loss = losses(sums.sum(axis=0), per_batch * batches)
    per = np.array([losses(s, per_batch) for s in sums])
    err = per.std(axis=0, ddof=1) / math.sqrt(batches)
    return {
        "dqe_float": float(f),
        "dqe_rounded": float(r),
        "abs_loss": float(abs_loss),
        "abs_loss_err": float(err[2]),
        "rel_loss": float(rel_loss),
        "rel_loss_err": float(err[3]),
    }


def expected_loss(dose: float) -> tuple[float, float]:
    """Closed-form (absolute, relative) DQE loss under the uniform rounding-error
    approximation (see the module)."""
    keep = 1.0 - LOSS
    mean = keep * dose
    second = keep * (1.0 + SPREAD**2) * (dose + dose * dose)
    var_float = MULTIPLIER**2 * (second - mean * mean)
    nonzero = (1.0 - math.exp(-dose)) * keep
    var_rounded = var_float + nonzero / 12.0
    dqe_float = (MULTIPLIER * mean) ** 2 / var_float / dose
    dqe_rounded = (MULTIPLIER * mean) ** 2 / var_rounded / dose
    return dqe_float - dqe_rounded, 1.0 - dqe_rounded / dqe_float


COLUMNS = [
    ("dose", "e/pixel", "g"),
    ("dqe_float", "DQE float", ".5f"),
    ("dqe_rounded", "DQE rounded", ".5f"),
    ("abs_loss", "abs loss", ".6f"),
    ("abs_loss_err", "+/-", ".6f"),
    ("rel_loss", "rel loss", ".6f"),
    ("rel_loss_err", "+/-", ".6f"),
    ("expected_rel_loss", "expected", ".6f"),
    ("seed_table", "seed", ".4f"),
]


def run(
    seed: int = 1,
    *,
    samples: int = 20_000_000,
    doses=DOSES,
    batches: int = 20,
    progress=None,
) -> StudyResult:
    """Run the study.

    Parameters
    ----------
    seed : int
        Seed of the numpy Generator.
    samples : int
        Trials per dose (default 2e7: about 10 s in all on one core).
    doses : sequence of float
        Electrons per saved pixel; the seed's table has 0.1, 0.5, 1, 2.
    batches : int
        Batches for the statistical errors.
    progress : callable (done, total), optional
        Called after each batch.
    """
    limits = LIMITS["rounding-dqe"]
    low, high = limits["samples"]
    if not low <= samples <= high:
        # a batch holds samples / batches trials at once: the bound bounds the memory
        raise DedkitError(f"use {low} to {high:.0e} samples per dose, got {samples}")
    doses = list(doses)
    if not doses or len(doses) > limits["n_doses"]:
        raise DedkitError(f"give 1 to {limits['n_doses']} doses, got {len(doses)}")
    low, high = limits["doses"]
    if not all(low < d <= high for d in doses):
        raise DedkitError(f"doses must be > {low:g} and <= {high:g} e/pixel, got {doses}")
    rng = np.random.default_rng(seed)
    rows = []
    doses = sorted(float(d) for d in doses)
    total = len(doses) * batches
    for i, dose in enumerate(doses):

        def dose_progress(done, _total, i=i):
            if progress is not None:
                progress(i * batches + done, total)

        dose_progress(0, batches)
        found = dqe_loss(dose, samples, rng, batches=batches, progress=dose_progress)
        exp_abs, exp_rel = expected_loss(dose)
        rows.append(
            {
                "dose": dose,
                **found,
                "expected_abs_loss": exp_abs,
                "expected_rel_loss": exp_rel,
                "seed_table": SEED_TABLE.get(dose),
            }
        )
    report = {
        "rows": rows,
        "samples_per_dose": int(samples) // batches * batches,
        "batches": batches,
        "seed": seed,
        "model": {"spread": SPREAD, "loss": LOSS, "multiplier": MULTIPLIER},
    }
    notes = [
        "Seed: loss in DQE 0.0005 / 0.0004 / 0.0003 / 0.0002 at 0.1 / 0.5 / 1 / 2 e/pixel "
        "(a relative loss: 0.0005 = 10005 particles for 10000).",
        "Paired float/rounded outputs of the same draws; errors: standard error over "
        f"{batches} batches. 'expected': variance 1/12 added per nonzero pixel.",
    ]
    ratios = [r["rel_loss"] / r["seed_table"] for r in rows if r["seed_table"]]
    if ratios:
        notes.append(
            f"Ours is {min(ratios):.2f}-{max(ratios):.2f} x the seed's figure; both are "
            "below 0.001: rounding to integers after x16 costs no meaningful DQE."
        )
    return StudyResult(
        name="rounding-dqe",
        columns=COLUMNS,
        rows=rows,
        report=report,
        notes=notes,
        curves={
            "dose": np.array([r["dose"] for r in rows]),
            "rel_loss": np.array([r["rel_loss"] for r in rows]),
            "rel_loss_err": np.array([r["rel_loss_err"] for r in rows]),
            "abs_loss": np.array([r["abs_loss"] for r in rows]),
            "abs_loss_err": np.array([r["abs_loss_err"] for r in rows]),
        },
    )


#: Resolution of the saved figure (dots per inch)
FIGURE_DPI = 120


def figure(result: StudyResult):
    """The study's figure: loss in DQE against dose, ours (relative and absolute, with
    errors), the closed form and the seed's table. Needs matplotlib (else DedkitError).
    Nothing is written: ``dedkit study rounding-dqe --figure`` saves it at
    :data:`FIGURE_DPI` (:func:`dedkit.jobs.study.write_study_figure`).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas (no pyplot state).
    """
    try:
        # the object API with the Agg canvas: no pyplot state, no display needed
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DedkitError("matplotlib is not installed: no figure written") from None

    c = result.curves
    fine = np.geomspace(min(c["dose"]) / 1.5, max(c["dose"]) * 1.5, 100)
    fig = Figure(figsize=(6, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.errorbar(
        c["dose"],
        c["rel_loss"],
        c["rel_loss_err"],
        fmt="o",
        capsize=3,
        label="dedkit, relative loss",
    )
    ax.errorbar(
        c["dose"],
        c["abs_loss"],
        c["abs_loss_err"],
        fmt="s",
        capsize=3,
        mfc="none",
        label="dedkit, absolute loss",
    )
    ax.plot(
        fine,
        [expected_loss(d)[1] for d in fine],
        "-",
        lw=1,
        color="gray",
        label="closed form (1/12 per nonzero pixel)",
    )
    seed = [(d, v) for d, v in SEED_TABLE.items()]
    ax.plot(*zip(*seed, strict=True), "x", ms=9, color="black", label="seed's table")
    ax.set_xscale("log")
    ax.set_xlabel("electrons per saved pixel")
    ax.set_ylabel("loss in DQE from rounding (x16)")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8)
    ax.set_title("Saving normalised frames as integers")
    fig.tight_layout()
    return fig
