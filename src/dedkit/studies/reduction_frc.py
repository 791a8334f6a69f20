"""Study ``reduction-frc``: antialiased reduction against binning, by Fourier ring correlation.

The seed (SerialEM manual, "Binning and anti-aliased image reduction") reports that for
pairs of super-resolution images taken at several doses, the Fourier ring correlation
beyond half-Nyquist comes out about 35 % higher after antialiased reduction by 2 than
after binning by 2, and about 50 % higher for reduction by 4 against binning by 4.

Here: a random specimen (mean 1) is imaged twice at each dose by the super-resolution
counting simulator (:mod:`dedkit.sim.counting_superres`: independent Poisson noise, the
same specimen), both images are reduced by 2 and by 4 with Lanczos-3 (IMOD's filter, as
SerialEM) and by summing binning, and the FRC of each reduced pair is averaged over the
rings from half to full Nyquist of the reduced image. The gain is
``100 (antialiased / binned - 1)`` of the FRCs averaged over ``repeats`` independent
specimens and pairs, per dose and averaged over the doses; errors are jackknife errors
over the repeats.

Why there is a gain, and what sets it: counting noise is white, so binning folds the
noise of the frequencies beyond the reduced image's Nyquist into its band, together with
whatever signal lies there, while the box's own response attenuates the band's signal;
the antialias filter keeps the band and drops the rest. At low SNR (FRC ~ SSNR) the
gain is the ratio of the two filters' alias-weighted signal-to-noise ratios
(:func:`low_snr_gain`): 0 for a specimen with a flat (white) spectrum, and largest
(+39 % by 2, +51 % by 4, the seed's figures) when the signal is flat up to the reduced
Nyquist and absent beyond it; at high SNR the FRC saturates and the gain shrinks.

The specimens (:data:`SPECIMENS`):

- ``band-limited`` (default): the conditions of the seed's figures. A white specimen
  (an amorphous film) behind an aperture that passes the frequencies up to the reduced
  image's Nyquist and none beyond, one per factor (the same power per frequency), with
  the contrast and doses (20-40 e/physical pixel) of a low SNR past half-Nyquist
  (FRC 0.02-0.07): its low-SNR theory is +36.4 % by 2 and +50.1 % by 4 through the
  camera's localisation blur, and the run measures about 35 % and 49 %.
- ``power-law``: the study's first specimen, one for all factors, whose power falls as
  ``f ** -2`` (relative contrast 0.3, doses 5-40): signal beyond the reduced Nyquist,
  which binning aliases into the band as signal, and a higher SNR (FRC up to 0.6 by 4)
  give +23 % and +21 %.

docs/validation.md has the numbers and the commands.
"""

from __future__ import annotations

import functools
import numbers

import numpy as np

from dedkit.errors import DedkitError
from dedkit.frames.reduce import FILTERS, reduce_image, weight_table
from dedkit.metrics import frc, mean_frc
from dedkit.sim.counting_superres import (
    LOCALISATION_SIGMA,
    SUPERRES,
    SuperResModel,
    expected_counts,
    localisation_kernel,
)
from dedkit.studies import LIMITS as STUDY_LIMITS
from dedkit.studies import StudyResult

__all__ = [
    "DOSES",
    "FACTORS",
    "SEED_GAIN",
    "SPECIMENS",
    "DEFAULT_SPECIMEN",
    "LIMITS",
    "check_settings",
    "specimen",
    "filter_power",
    "model_signal_power",
    "low_snr_gain",
    "run",
    "FIGURE_DPI",
    "figure",
]

#: total electrons per physical pixel in each image, per specimen (see SPECIMENS)
DOSES = (20.0, 30.0, 40.0)
FACTORS = (2, 4)
#: the seed's "about 35 %" (by 2) and "about 50 %" (by 4)
SEED_GAIN = {2: 35.0, 4: 50.0}
#: FRC band, fractions of the reduced image's Nyquist
BAND = (0.5, 1.0)
#: the specimens and the defaults of their settings. 'band-limited' (the default) gives
#: the conditions of the seed's figures: low SNR past half-Nyquist (FRC 0.02-0.1) and a
#: signal that fills the reduced image's band and ends at its Nyquist (a white specimen
#: behind an aperture there, one per factor). 'power-law' is the study's first specimen
#: (power ~ f^-2, relative contrast 0.3, one specimen for all factors): signal beyond the
#: reduced Nyquist and a higher SNR, hence smaller gains (docs/validation.md).
SPECIMENS = {
    "band-limited": {
        "slope": 0.0,
        "contrast": 0.1,
        "doses": DOSES,
        "size": 2048,
        "repeats": 12,
    },
    "power-law": {
        "slope": 2.0,
        "contrast": 0.3,
        "doses": (5.0, 10.0, 20.0, 40.0),
        "size": 1024,
        "repeats": 12,
    },
}
DEFAULT_SPECIMEN = "band-limited"
#: bounds of the settings (:data:`dedkit.studies.LIMITS`)
LIMITS = STUDY_LIMITS["reduction-frc"]


def check_settings(
    *,
    size,
    doses,
    repeats,
    factors,
    filter,
    slope,
    contrast,
    localisation_sigma,
    dose_rate,
):
    """Refuse settings outside :data:`LIMITS` with one clear line, before anything is
    allocated; returns the sorted unique factors and the sorted doses."""

    def within(name, value, what, *, low_open=False):
        low, high = LIMITS[name]
        ok = isinstance(value, numbers.Real) and (
            low < value <= high if low_open else low <= value <= high
        )
        if not ok:
            bound = f"{'>' if low_open else '>='} {low:g} and <= {high:g}"
            raise DedkitError(f"{what} must be {bound}, got {value!r}")

    if filter not in FILTERS:
        raise DedkitError(f"unknown filter {filter!r}; use one of {', '.join(FILTERS)}")
    factors, doses = list(factors), list(doses)
    if not factors or len(factors) > LIMITS["n_factors"]:
        raise DedkitError(f"give 1 to {LIMITS['n_factors']} reduction factors, got {factors}")
    for f in factors:
        if not isinstance(f, numbers.Real) or f != int(f) or f < LIMITS["factors"][0]:
            raise DedkitError(f"reduction factors must be integers >= 2, got {f!r}")
        within("factors", f, "reduction factors")
    if not doses or len(doses) > LIMITS["n_doses"]:
        raise DedkitError(f"give 1 to {LIMITS['n_doses']} doses, got {len(doses)}")
    for d in doses:
        within("doses", d, "doses (e/physical pixel)", low_open=True)
    if not isinstance(repeats, numbers.Integral) or repeats < LIMITS["repeats"][0]:
        raise DedkitError(f"use at least 2 repeats (for the errors), got {repeats!r}")
    within("repeats", repeats, "repeats")
    if not isinstance(size, numbers.Integral):
        raise DedkitError(f"the image size must be an integer, got {size!r}")
    within("size", size, "the image size")
    factors = sorted({int(f) for f in factors})
    if size % (2 * max(factors)) or size < 16 * max(factors):
        raise DedkitError(
            f"the image size must be a multiple of {2 * max(factors)} and at least "
            f"{16 * max(factors)}, got {size}"
        )
    within("dose_rate", dose_rate, "the dose rate (e/physical pixel/s)", low_open=True)
    within("contrast", contrast, "the specimen contrast")
    within("slope", slope, "the specimen slope")
    within("localisation_sigma", localisation_sigma, "the localisation error (physical pixels)")
    return factors, sorted(float(d) for d in doses)


@functools.lru_cache(maxsize=4)
def _amplitude(ny: int, nx: int, slope: float, cutoff: float | None) -> np.ndarray:
    """The specimen's Fourier amplitude on the rfft2 grid (cached: a run draws many
    specimens of one shape, and the grid costs as much as the transforms)."""
    f = np.sqrt(np.fft.fftfreq(ny)[:, None] ** 2 + np.fft.rfftfreq(nx)[None, :] ** 2)
    floor = np.maximum(f, 1.0 / max(ny, nx))
    if cutoff is None:
        amplitude = floor ** (-slope / 2.0)
    elif slope == 0:
        amplitude = (f <= cutoff).astype(np.float64)
    else:
        amplitude = np.where(f <= cutoff, (floor / cutoff) ** (-slope / 2.0), 0.0)
    amplitude[0, 0] = 0.0
    amplitude.flags.writeable = False
    return amplitude


def specimen(
    shape,
    rng: np.random.Generator,
    *,
    slope: float = 2.0,
    contrast: float = 0.3,
    cutoff: float | None = None,
) -> np.ndarray:
    """A periodic random specimen image of mean 1: ``1 + contrast g`` (clipped at 0).

    Without ``cutoff`` (the ``power-law`` specimen) g is a Gaussian random field of unit
    variance and power ``|f| ** -slope`` (0: white; the lowest frequency stands in for 0),
    so ``contrast`` is the image's relative standard deviation.

    With ``cutoff`` (cycles per pixel; the ``band-limited`` specimen) g is white Gaussian
    noise of unit variance per pixel behind an aperture that passes the frequencies
    ``|f| <= cutoff`` and nothing beyond, as an objective aperture cuts the spectrum; with
    ``slope`` the power inside is ``(|f| / cutoff) ** -slope`` (equal to the white one at
    the cutoff). ``contrast`` is then the relative standard deviation per pixel before the
    aperture, so specimens behind different apertures have the same power per frequency;
    the aperture keeps ``pi cutoff ** 2`` of the white power (0.196 at 1/4 cycle per pixel).
    """
    ny, nx = (int(n) for n in shape)
    amplitude = _amplitude(ny, nx, float(slope), None if cutoff is None else float(cutoff))
    g = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((ny, nx))) * amplitude, s=(ny, nx))
    if cutoff is None:
        g /= g.std()
    return np.clip(1.0 + contrast * g, 0.0, None)


def filter_power(filter: str, factor: int):
    """``|H(g)|^2`` of a reduction's sampled filter along one axis (an interior output
    pixel's taps; ``'bin'`` for summing binning, normalised like the filters), as a
    function of the input frequency g in cycles per input pixel."""
    if filter == "bin":
        weights = np.full(factor, 1.0 / factor)
        offsets = np.arange(factor) - (factor - 1) / 2.0
    else:
        n = 64 * factor
        table = weight_table(n, factor, filter)
        b = n // factor // 2
        weights = table.weights[b, : table.count[b]].astype(np.float64)
        offsets = table.start[b] + np.arange(table.count[b]) + 0.5 - (b + 0.5) * factor

    def power(g):
        phase = np.exp(-2j * np.pi * np.asarray(g, np.float64)[..., None] * offsets)
        return np.abs((weights * phase).sum(axis=-1)) ** 2

    return power


def model_signal_power(
    slope: float = 2.0,
    localisation_sigma: float = LOCALISATION_SIGMA,
    cutoff: float | None = None,
):
    """The simulated images' signal power (up to a constant) at super-resolution
    frequencies (gx, gy) in cycles per pixel: the specimen's ``|g| ** -slope`` (none
    beyond ``cutoff``, cycles per pixel, when given) times the localisation kernel's
    transfer squared along each axis."""
    q = localisation_kernel(localisation_sigma * SUPERRES)
    d = np.arange(len(q)) - len(q) // 2

    def transfer(g):
        return (q * np.cos(2 * np.pi * np.asarray(g)[..., None] * d)).sum(axis=-1)

    def power(gx, gy):
        radius = np.maximum(np.hypot(gx, gy), 1e-3)
        result = radius ** (-slope) * transfer(gx) ** 2 * transfer(gy) ** 2
        if cutoff is not None:
            result = np.where(np.hypot(gx, gy) <= cutoff, result, 0.0)
        return result

    return power


def low_snr_gain(
    factor: int,
    signal_power,
    filter: str = "lanczos3",
    *,
    band=BAND,
    n_rings: int = 26,
    n_angles: int = 64,
) -> float:
    """The gain (percent) of the band-averaged FRC at low SNR, from the filters alone.

    With white noise, at low SNR the FRC of a ring is the ring's signal-to-noise ratio:
    after reduction, output frequency f holds ``sum_k S(f + k / factor) |H(f + k /
    factor)|^2`` of signal and ``N sum_k |H(f + k / factor)|^2`` of noise (k over the
    ``factor x factor`` aliases in the input's band). The band's mean FRC of antialiased
    and binned reduction are compared as :func:`run` does.

    Parameters
    ----------
    factor : int
    signal_power : callable (gx, gy) -> array
        Signal power of the unreduced image at input frequencies (cycles per pixel).
    filter : str
    band : (low, high)
        Fractions of the reduced Nyquist.
    n_rings, n_angles : int
        Sampling of the band (rings) and of each ring (angles over a quadrant).
    """
    radius = np.linspace(band[0], band[1], n_rings)[:, None] / (2.0 * factor)
    angle = (np.arange(n_angles) + 0.5) * (np.pi / 2) / n_angles
    fx, fy = radius * np.cos(angle), radius * np.sin(angle)
    aliases = np.arange(factor) / factor
    means = []
    for name in (filter, "bin"):
        h = filter_power(name, factor)
        signal = np.zeros_like(fx)
        noise = np.zeros_like(fx)
        for kx in aliases:
            gx = (fx + kx + 0.5) % 1.0 - 0.5
            for ky in aliases:
                gy = (fy + ky + 0.5) % 1.0 - 0.5
                w = h(gx) * h(gy)
                signal += w * signal_power(gx, gy)
                noise += w
        means.append((signal.sum(axis=1) / noise.sum(axis=1)).mean())
    return float(100.0 * (means[0] / means[1] - 1.0))


def _gains_with_errors(band: np.ndarray):
    """Gains (percent) from the band FRCs ``(repeats, doses, factors, [aa, binned])``:
    per dose the ratio of the FRCs averaged over the repeats (a ratio of means, unbiased
    where single pairs' FRCs are noisy), and their mean over the doses as a last row;
    jackknife errors over the repeats."""

    def gains(sample):
        m = sample.mean(axis=0)
        per_dose = 100.0 * (m[..., 0] / m[..., 1] - 1.0)
        return np.vstack([per_dose, per_dose.mean(axis=0)])

    n = band.shape[0]
    leave_one_out = np.stack([gains(np.delete(band, i, axis=0)) for i in range(n)])
    spread = leave_one_out - leave_one_out.mean(axis=0)
    err = np.sqrt((n - 1) / n * (spread**2).sum(axis=0))
    return gains(band), err


def run(
    seed: int = 1,
    *,
    specimen_kind: str = DEFAULT_SPECIMEN,
    size: int | None = None,
    doses=None,
    repeats: int | None = None,
    factors=FACTORS,
    filter: str = "lanczos3",
    slope: float | None = None,
    contrast: float | None = None,
    localisation_sigma: float = LOCALISATION_SIGMA,
    camera: str = "K2",
    dose_rate: float = 5.0,
    progress=None,
) -> StudyResult:
    """Run the study.

    Parameters
    ----------
    seed : int
        Seed of the numpy Generator.
    specimen_kind : str
        ``'band-limited'`` (default: a white specimen behind an aperture at each reduced
        image's Nyquist, the seed's conditions) or ``'power-law'`` (one specimen whose
        power falls as ``f ** -slope`` for all factors); see :data:`SPECIMENS`, whose
        entries give the defaults of the settings left at None.
    size : int, optional
        Super-resolution image size (square; a multiple of 2 x the largest factor,
        within :data:`LIMITS`).
    doses : sequence of float, optional
        Electrons per physical pixel in each image.
    repeats : int, optional
        Independent specimens (one pair per dose each), >= 2 for errors.
    factors : sequence of int
        Reduction factors.
    filter : str
        Antialias filter (IMOD's; SerialEM uses Lanczos-3).
    slope, contrast : float, optional
        Specimen power law and contrast (:func:`specimen`).
    localisation_sigma : float
        Camera's centroid error, physical pixels.
    camera : str
        'K2' or 'K3' (coincidence loss at ``dose_rate``).
    dose_rate : float
        True e/physical pixel/s (the exposure time is dose / dose_rate).
    progress : callable (done, total), optional
        Called after each simulated pair.
    """
    if specimen_kind not in SPECIMENS:
        raise DedkitError(f"unknown specimen {specimen_kind!r}; use one of {', '.join(SPECIMENS)}")
    defaults = SPECIMENS[specimen_kind]
    size = defaults["size"] if size is None else size
    doses = defaults["doses"] if doses is None else doses
    repeats = defaults["repeats"] if repeats is None else repeats
    slope = defaults["slope"] if slope is None else slope
    contrast = defaults["contrast"] if contrast is None else contrast
    factors, doses = check_settings(
        size=size,
        doses=doses,
        repeats=repeats,
        factors=factors,
        filter=filter,
        slope=slope,
        contrast=contrast,
        localisation_sigma=localisation_sigma,
        dose_rate=dose_rate,
    )
    band_limited = specimen_kind == "band-limited"
    rng = np.random.default_rng(seed)
    model = SuperResModel(camera=camera, localisation_sigma=localisation_sigma)
    methods = (filter, "bin")
    band = np.zeros((repeats, len(doses), len(factors), 2))
    curves: dict = {}
    # band-limited: one specimen per factor, behind the aperture at its reduced Nyquist;
    # power-law: one specimen for all factors
    groups = [[j] for j in range(len(factors))] if band_limited else [range(len(factors))]
    total, done = repeats * len(groups) * len(doses), 0
    if progress is not None:
        progress(0, total)
    for r in range(repeats):
        for group in groups:
            cutoff = 1.0 / (2 * factors[group[0]]) if band_limited else None
            image = specimen((size, size), rng, slope=slope, contrast=contrast, cutoff=cutoff)
            # expected counts are linear in the exposure time: computed once per
            # specimen, each image is then simulate_exposure's Poisson draw of that mean
            per_second = expected_counts(image, dose_rate, 1.0, model)
            for i, dose in enumerate(doses):
                mean = per_second * (dose / dose_rate)
                pair = [rng.poisson(mean) for _ in range(2)]
                for j in group:
                    factor = factors[j]
                    for k, method in enumerate(methods):
                        a, b = (reduce_image(p, factor, method) for p in pair)
                        result = frc(a, b)
                        band[r, i, j, k] = mean_frc(result, *BAND)
                        key = (factor, dose, method)
                        curves.setdefault(key, []).append(result.frc)
                        curves.setdefault(("frequency", factor), result.frequency)
                done += 1
                if progress is not None:
                    progress(done, total)
    gain, gain_err = _gains_with_errors(band)

    def signal(factor):
        cutoff = 1.0 / (2 * factor) if band_limited else None
        return model_signal_power(slope, localisation_sigma, cutoff)

    columns = [
        ("factor", "factor", "d"),
        ("dose", "e/phys px", ""),
        ("frc_antialiased", f"FRC {filter}", ".4f"),
        ("frc_binned", "FRC binned", ".4f"),
        ("gain_percent", "gain %", ".1f"),
        ("gain_percent_err", "+/-", ".1f"),
        ("theory_percent", "low-SNR theory %", ".1f"),
        ("seed_percent", "seed %", ".0f"),
    ]
    rows, factors_report = [], {}
    for j, factor in enumerate(factors):
        per_dose = []
        for i, dose in enumerate(doses):
            row = {
                "factor": factor,
                "dose": dose,
                "frc_antialiased": float(band[:, i, j, 0].mean()),
                "frc_binned": float(band[:, i, j, 1].mean()),
                "gain_percent": float(gain[i, j]),
                "gain_percent_err": float(gain_err[i, j]),
                "theory_percent": None,
                "seed_percent": None,
            }
            rows.append(row)
            per_dose.append({k: row[k] for k in list(row)[1:6]})
        summary = {
            "gain_percent": float(gain[-1, j]),
            "gain_percent_err": float(gain_err[-1, j]),
            "seed_percent": SEED_GAIN.get(factor),
            "theory_percent": low_snr_gain(factor, signal(factor), filter),
            "per_dose": per_dose,
        }
        factors_report[str(factor)] = summary
        rows.append(
            {
                "factor": factor,
                "dose": "all",
                "frc_antialiased": float(band[:, :, j, 0].mean()),
                "frc_binned": float(band[:, :, j, 1].mean()),
                "gain_percent": summary["gain_percent"],
                "gain_percent_err": summary["gain_percent_err"],
                "theory_percent": summary["theory_percent"],
                "seed_percent": summary["seed_percent"],
            }
        )
    report = {
        "factors": factors_report,
        "doses": doses,
        "band_of_nyquist": list(BAND),
        "settings": {
            "seed": seed,
            "specimen": specimen_kind,
            "size": size,
            "repeats": repeats,
            "filter": filter,
            "binning": "sum",
            "specimen_slope": slope,
            "specimen_contrast": contrast,
            "localisation_sigma": localisation_sigma,
            "camera": camera,
            "dose_rate": dose_rate,
        },
    }
    if band_limited:
        what = (
            f"Specimen 'band-limited': white (contrast {contrast:g} per pixel before the "
            "aperture) behind an aperture at each reduced image's Nyquist, one per factor: "
            "the signal fills the FRC band and ends at the reduced Nyquist, at low SNR, the "
            "seed's conditions."
        )
    else:
        what = (
            f"Specimen 'power-law': power ~ f^-{slope:g}, contrast {contrast:g}, one for all "
            "factors: signal beyond the reduced Nyquist (binning aliases it as signal) and "
            "a higher SNR lower the gains below the seed's."
        )
    notes = [
        "Seed: FRC past half-Nyquist about 35 % higher with antialiased reduction by 2 than "
        "with binning by 2, about 50 % higher by 4.",
        what,
        f"Mean FRC over {BAND[0]:g}-{BAND[1]:g} of the reduced Nyquist; gain = 100 "
        f"(antialiased / binned - 1) of the mean FRCs of {repeats} specimens/pairs "
        "(jackknife errors); 'all' = mean over the doses.",
        "'low-SNR theory': the gain this specimen and camera give where FRC ~ SSNR "
        "(low_snr_gain); the FRC saturates at higher SNR and the gain shrinks.",
        "Largest possible low-SNR gain (signal flat up to the reduced Nyquist, none "
        "beyond): +39 % by 2, +51 % by 4; a white specimen on a perfect camera gives 0.",
    ]
    frc_curves = {"factors": factors, "doses": doses, "methods": methods}
    for factor in factors:
        frc_curves[f"frequency_{factor}"] = curves[("frequency", factor)]
        for dose in doses:
            for method in methods:
                frc_curves[f"frc_{factor}_{dose:g}_{method}"] = np.mean(
                    curves[(factor, dose, method)], axis=0
                )
    return StudyResult(
        name="reduction-frc",
        columns=columns,
        rows=rows,
        report=report,
        notes=notes,
        curves=frc_curves,
    )


#: Resolution of the saved figure (dots per inch)
FIGURE_DPI = 120


def figure(result: StudyResult):
    """The study's figure: FRC curves (mean over repeats) of the antialiased and binned
    pairs, one panel per factor, one colour per dose, the averaged band shaded. Needs
    matplotlib (else DedkitError). Nothing is written: ``dedkit study reduction-frc
    --figure`` saves it at :data:`FIGURE_DPI` (:func:`dedkit.jobs.study.write_study_figure`).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas (no pyplot state).
    """
    try:
        # the object API with the Agg canvas: no pyplot state, no display needed
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DedkitError("matplotlib is not installed: no figure written") from None

    c = result.curves
    factors, doses, methods = c["factors"], c["doses"], c["methods"]
    fig = Figure(figsize=(5.2 * len(factors), 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(factors), squeeze=False)
    colours = colormaps["viridis"](np.linspace(0.0, 0.85, len(doses)))
    gains = result.report["factors"]
    for ax, factor in zip(axes[0], factors, strict=True):
        freq = c[f"frequency_{factor}"]
        for colour, dose in zip(colours, doses, strict=True):
            for method, style in zip(methods, ("-", "--"), strict=True):
                label = f"{dose:g} e/px, " + ("binned" if method == "bin" else method)
                ax.plot(
                    freq[1:],
                    c[f"frc_{factor}_{dose:g}_{method}"][1:],
                    style,
                    color=colour,
                    lw=1.2,
                    label=label,
                )
        ax.axvspan(*BAND, color="0.9", zorder=0)
        g = gains[str(factor)]
        ax.set_title(
            f"reduced by {factor}: gain {g['gain_percent']:.1f} +/- "
            f"{g['gain_percent_err']:.1f} % (seed ~{g['seed_percent']:g} %)",
            fontsize=9,
        )
        ax.set_xlabel("fraction of the reduced image's Nyquist")
        ax.set_ylabel("FRC")
        ax.set_xlim(0, 1)
        # low-SNR runs (the default) keep the FRC below 0.1 past the first rings: scale
        # the axis to the curves there rather than to 1
        beyond = freq >= 0.1
        top = max(
            float(np.nanmax(c[f"frc_{factor}_{dose:g}_{method}"][beyond]))
            for dose in doses
            for method in methods
        )
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), min(1.0, max(0.1, 1.3 * top)))
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig
