"""Lattice rings in the power spectrum of an image: how strongly a ring stands out, as an SNR.

The measure behind the MÖNCH gold-nanoparticle figure (the {111} ring of gold at 2.35 A,
seen with the CNN and not with the charge centroid). The image is mean-normalised
(``image / mean - 1``) and its edges rolled off by a cosine (so the image's edges put no
streaks through the spectrum); its power is ``|F|^2 / sum(w^2)`` with ``w`` the edge
window, so white noise of variance ``s^2`` has a flat spectrum of height ``s^2`` (for a
Poisson image of ``N`` counts per pixel: ``1 / N``).

:func:`ring_snr` compares the mean power in an annulus around ``1 / spacing`` with a
smooth background (a low-order polynomial in log power against frequency) fitted to the
radial profile on both sides of it, leaving out the annulus itself and the other gold
rings. Under background alone the power of each independent Fourier coefficient (one per
Hermitian pair) is exponentially distributed about the background, so the mean of ``n``
of them scatters by ``background / sqrt(n)`` (fewer effectively independent ones with the
edge window: see :func:`ring_snr`). That analytic noise, widened by the uncertainty of
the fitted background, is checked against the scatter of annulus-wide windows of the
background range about the fit; the larger of the two is the noise, and ``snr = excess /
noise``. A shot-noise-limited ring's SNR grows linearly with dose, which
:func:`dose_for_snr` uses to find the dose that reaches a target SNR.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.fft
import scipy.signal
import scipy.special

from dedkit.errors import DedkitError
from dedkit.metrics.rings import ring_bins
from dedkit.threads import thread_count

__all__ = [
    "AU_111_A",
    "AU_200_A",
    "DoseForSNR",
    "RingMeasure",
    "dose_for_snr",
    "dose_for_snr_detail",
    "power_spectrum",
    "radial_profile",
    "ring_snr",
]

#: lattice constant of gold (fcc), A
AU_LATTICE_A = 4.078
#: spacing of gold's {111} planes, A (a / sqrt(3) = 2.354 A)
AU_111_A = AU_LATTICE_A / math.sqrt(3.0)
#: spacing of gold's {200} planes, A (a / 2 = 2.039 A)
AU_200_A = AU_LATTICE_A / 2.0

#: default half-width of the annulus, as a fraction of the ring's frequency
ANNULUS_HALF_WIDTH = 0.03
#: default background range, as fractions of the ring's frequency
BACKGROUND_RANGE = (0.75, 1.35)
#: default fraction of each side of the image rolled off at each edge
EDGE = 0.05
NOISE_CHOICES = ("larger", "analytic", "empirical")


@dataclass
class RingMeasure:
    """How strongly one ring stands out of the power spectrum's background.

    Attributes
    ----------
    spacing_A : float
        Lattice spacing of the ring, A.
    frequency : float
        ``1 / spacing_A``, 1/A.
    annulus : (lo, hi)
        Frequencies of the annulus, 1/A.
    ring_power : float
        Mean power of the Fourier coefficients in the annulus.
    background : float
        The fitted background, averaged over the same coefficients.
    excess : float
        ``ring_power - background``.
    noise : float
        Standard deviation of ``excess`` under background alone (see ``method``).
    snr : float
        ``excess / noise``.
    n_coefficients : int
        Fourier coefficients of the full plane in the annulus (half of them independent:
        the other half are their Hermitian mirrors).
    background_radii : (lo, hi)
        Frequencies over which the background was fitted, 1/A (less the excluded rings).
    method : str
        How ``noise`` was estimated, in words.
    noise_analytic, noise_empirical : float
        The two estimates (``noise_empirical`` NaN when the background range has no
        annulus-wide window).
    n_independent : float
        Effectively independent coefficients in the annulus (Hermitian pairs, fewer by
        the edge window's correlation of neighbours).
    pixel_size_A : float
        Of the image measured.
    """

    spacing_A: float
    frequency: float
    annulus: tuple[float, float]
    ring_power: float
    background: float
    excess: float
    noise: float
    snr: float
    n_coefficients: int
    background_radii: tuple[float, float]
    method: str
    noise_analytic: float = math.nan
    noise_empirical: float = math.nan
    n_independent: float = math.nan
    pixel_size_A: float = math.nan

    def to_dict(self) -> dict:
        """The measure as plain JSON-ready values.

        Examples
        --------
        >>> m = RingMeasure(2.0, 0.5, (0.49, 0.51), 2.0, 1.0, 1.0, 0.1, 10.0, 100,
        ...                 (0.4, 0.6), "analytic")
        >>> m.to_dict()["snr"], m.to_dict()["annulus"]
        (10.0, [0.49, 0.51])
        """
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = [float(v) for v in value]
            elif isinstance(value, (float, np.floating)):
                out[key] = None if not math.isfinite(value) else float(value)
            elif isinstance(value, (int, np.integer)):
                out[key] = int(value)
        return out


# ---------------------------------------------------------------------------- spectra


def _edge_window(n: int, edge: float) -> np.ndarray:
    """A Tukey window of ``n`` points: flat, with cosine roll-offs of ``edge * n`` each end."""
    if not 0.0 <= edge <= 0.5:
        raise DedkitError(f"the edge taper must be a fraction 0 .. 0.5 of the side, got {edge}")
    return scipy.signal.windows.tukey(n, alpha=2.0 * edge, sym=False)


def _prepared(image, normalise: bool, edge: float):
    """The tapered, zero-mean image and the window's ``sum(w^2)``, ``sum(w^4)``."""
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 8:
        raise DedkitError(f"a power spectrum needs a 2D image of 8 x 8 or more, got {image.shape}")
    if image.dtype.kind not in "biuf":
        raise DedkitError(f"cannot transform an image of type {image.dtype}")
    x = image.astype(np.float64)
    if not np.isfinite(x).all():
        raise DedkitError("the image has non-finite pixels (NaN or inf)")
    if normalise:
        mean = x.mean()
        if not mean > 0:
            raise DedkitError(f"cannot mean-normalise an image of mean {mean:g} (must be > 0)")
        x = x / mean - 1.0
    wy = _edge_window(x.shape[0], edge)
    wx = _edge_window(x.shape[1], edge)
    w = wy[:, None] * wx[None, :]
    # the window-weighted mean is removed, so no zero-frequency power leaks through the
    # window's transform into the lowest rings
    x = (x - (x * w).sum() / w.sum()) * w
    w2 = float((wy**2).sum() * (wx**2).sum())
    w4 = float((wy**4).sum() * (wx**4).sum())
    return x, w2, w4


def power_spectrum(image, *, normalise: bool = True, edge: float = EDGE, workers=None):
    """The power spectrum of an image, centred for display.

    Parameters
    ----------
    image : (ny, nx) array
        Any real image (counts, a super-resolution sum).
    normalise : bool
        Transform ``image / mean - 1`` (the mean-normalised image, as the MÖNCH paper's
        figure 6); False: ``image - mean``.
    edge : float
        Fraction of each side rolled off by a cosine at each edge (a Tukey window), so
        that the jump between opposite edges puts no streaks along the axes.
    workers : int, optional
        Threads for the transform; default :func:`dedkit.threads.thread_count`.

    Returns
    -------
    (ny, nx) float64 array
        ``|F|^2 / sum(w^2)`` (``w`` the edge window): white noise of variance ``s^2``
        has a flat spectrum of height ``s^2``. Zero frequency at ``[ny // 2, nx // 2]``;
        pixel ``(i, j)`` is at frequency ``((i - ny // 2) / (ny p), (j - nx // 2) / (nx p))``
        for pixels of ``p`` A.

    Examples
    --------
    Poisson counts of 4 per pixel: after mean-normalising, a flat spectrum of height 1/4.

    >>> import numpy as np
    >>> counts = np.random.default_rng(0).poisson(4.0, (256, 256))
    >>> p = power_spectrum(counts)
    >>> p.shape, round(float(np.median(p) / np.log(2)), 2)
    ((256, 256), 0.25)
    """
    x, w2, _ = _prepared(image, normalise, edge)
    f = scipy.fft.fft2(x, workers=thread_count() if workers is None else workers)
    return np.fft.fftshift((f.real**2 + f.imag**2) / w2)


def _half_spectrum(image, normalise, edge, workers):
    """Power in the ``rfft2`` layout and the window's factor ``sum(w^2)^2 / (N sum(w^4))``
    (the fraction of coefficients that are effectively independent)."""
    x, w2, w4 = _prepared(image, normalise, edge)
    f = scipy.fft.rfft2(x, workers=thread_count() if workers is None else workers)
    independent = w2 * w2 / (x.size * w4)
    return (f.real**2 + f.imag**2) / w2, independent


def radial_profile(
    image, pixel_size_A: float, *, bins: int | None = None, normalise: bool = True,
    edge: float = EDGE, workers=None,
):  # fmt: skip
    """The radially averaged power spectrum of an image, against frequency in 1/A.

    Parameters
    ----------
    image : (ny, nx) array
    pixel_size_A : float
        A per pixel.
    bins : int, optional
        Rings from 0 to Nyquist (:func:`dedkit.metrics.ring_bins`); default
        ``min(ny, nx) // 2``, one Fourier pixel wide.
    normalise, edge, workers
        As :func:`power_spectrum`.

    Returns
    -------
    frequency : array
        Ring centres, 1/A (0 .. ``1 / (2 pixel_size_A)``).
    power : array
        Mean power in each ring (as :func:`power_spectrum`).

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.random.default_rng(0).poisson(4.0, (256, 256))
    >>> f, p = radial_profile(counts, 0.5)
    >>> float(f[-1]), round(float(np.mean(p[10:])), 2)
    (1.0, 0.25)
    """
    pixel = _pixel(pixel_size_A)
    power, _ = _half_spectrum(image, normalise, edge, workers)
    rb = ring_bins(np.shape(image), bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = rb.sums(power) / rb.n_pixels
    return rb.frequency * 0.5 / pixel, mean


def _pixel(pixel_size_A) -> float:
    pixel = float(pixel_size_A)
    if not (math.isfinite(pixel) and pixel > 0):
        raise DedkitError(f"the pixel size must be a positive number of A, got {pixel_size_A}")
    return pixel


# ---------------------------------------------------------------------------- ring SNR


def ring_snr(
    image,
    pixel_size_A: float,
    spacing_A: float,
    *,
    width: float | None = None,
    background: tuple[float, float] | None = None,
    exclude=(AU_111_A, AU_200_A),
    degree: int = 2,
    noise: str = "larger",
    normalise: bool = True,
    edge: float = EDGE,
    workers=None,
) -> RingMeasure:
    """The power in a ring of the power spectrum over its local background, as an SNR.

    The annulus is centred on ``f = 1 / spacing_A`` (1/A). The background is a
    polynomial of ``degree`` in log power against frequency, fitted by weighted least
    squares to the radial profile (rings one Fourier pixel wide) over ``background``,
    leaving out the annulus (and one Fourier pixel either side of it) and the annuli of the
    ``exclude`` spacings (same relative width). Then:

    - ``ring_power``: mean power of the annulus's coefficients; ``background``: the fit
      averaged over them; ``excess = ring_power - background``.
    - analytic noise: under background ``B`` alone each independent coefficient's power
      is exponential (mean and standard deviation ``B``), so the annulus mean scatters by
      ``B / sqrt(n)`` with ``n`` the Hermitian pairs in the annulus times the edge window's
      ``sum(w^2)^2 / (N sum(w^4))`` (its correlation of neighbouring coefficients, 0.90
      for the default edge); the fitted background's own uncertainty is added in
      quadrature.
    - empirical noise: every window of the background range as wide as the annulus
      gives a residual about the fit in units of its analytic scatter (less what the fit
      absorbs); their root mean square times the analytic noise. It is larger where the
      background is not smooth (Thon rings, structure) or not exponential.
    - ``noise``: the larger of the two (``noise='larger'``, conservative), or the one
      named; ``snr = excess / noise``.

    Parameters
    ----------
    image : (ny, nx) array
        The image (counts, a mean-normalised sum): mean-normalised here.
    pixel_size_A : float
        A per pixel.
    spacing_A : float
        Lattice spacing of the ring, A (:data:`AU_111_A`, :data:`AU_200_A`).
    width : float, optional
        Full width of the annulus, 1/A; default 6 % of ``f`` (+-3 %, the breadth of the
        ring of ~4 nm particles), at least 3 Fourier pixels.
    background : (lo, hi), optional
        Frequencies of the background fit, 1/A; default ``(0.75 f, 1.35 f)``, cut at
        Nyquist.
    exclude : sequence of float
        Spacings (A) whose annuli are left out of the background fit (the gold rings;
        the measured ring itself is always left out).
    degree : int
        Of the background polynomial.
    noise : {'larger', 'analytic', 'empirical'}
        Which noise estimate divides the excess.
    normalise, edge, workers
        As :func:`power_spectrum`.

    Returns
    -------
    RingMeasure

    Examples
    --------
    Poisson counts (2 per pixel, 0.5 A pixels) of an intensity with {111} fringes of 10 %
    contrast: the ring stands out; without the fringes it does not.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> y, x = np.mgrid[0:256, 0:256] * 0.5
    >>> k = 1 / AU_111_A
    >>> intensity = 1 + 0.1 * np.cos(2 * np.pi * k * (0.6 * x + 0.8 * y))
    >>> m = ring_snr(rng.poisson(2.0 * intensity), 0.5, AU_111_A)
    >>> m.snr > 5, round(m.frequency, 4)
    (True, 0.4247)
    >>> abs(ring_snr(rng.poisson(2.0, (256, 256)), 0.5, AU_111_A).snr) < 4
    True
    """
    pixel = _pixel(pixel_size_A)
    spacing = float(spacing_A)
    if not (math.isfinite(spacing) and spacing > 0):
        raise DedkitError(f"the ring spacing must be a positive number of A, got {spacing_A}")
    if noise not in NOISE_CHOICES:
        raise DedkitError(f"noise must be one of {', '.join(NOISE_CHOICES)}, got {noise!r}")
    degree = int(degree)
    if not 0 <= degree <= 4:
        raise DedkitError(f"the background polynomial's degree must be 0 .. 4, got {degree}")
    shape = np.shape(image)
    if len(shape) != 2:
        raise DedkitError(f"a ring SNR needs a 2D image, got shape {shape}")
    ny, nx = shape
    nyquist = 0.5 / pixel
    step = 1.0 / (min(ny, nx) * pixel)  # one Fourier pixel along the shorter side, 1/A
    f0 = 1.0 / spacing

    if width is None:
        half = max(ANNULUS_HALF_WIDTH * f0, 1.5 * step)
    else:
        if not (math.isfinite(float(width)) and float(width) > 0):
            raise DedkitError(f"the annulus width must be a positive number of 1/A, got {width}")
        half = 0.5 * float(width)
    lo, hi = f0 - half, f0 + half
    if hi > nyquist:
        raise DedkitError(
            f"the {spacing:.3f} A ring (annulus up to {hi:.3f} 1/A) lies beyond the Nyquist "
            f"frequency {nyquist:.3f} 1/A of {pixel:g} A pixels"
        )
    if background is None:
        blo, bhi = BACKGROUND_RANGE[0] * f0, BACKGROUND_RANGE[1] * f0
    else:
        blo, bhi = (float(v) for v in background)
        if not (0 <= blo < lo and bhi > hi):
            raise DedkitError(
                f"the background range {blo:g} .. {bhi:g} 1/A must enclose the annulus "
                f"{lo:.4f} .. {hi:.4f} 1/A"
            )
    bhi = min(bhi, nyquist)

    power, independent = _half_spectrum(image, normalise, edge, workers)
    rb = ring_bins(shape)
    # rfft2 coefficients: radius in 1/A and Hermitian weight (2: stands for a pair)
    fy = np.fft.fftfreq(ny, d=pixel)[:, None]
    fx = np.fft.rfftfreq(nx, d=pixel)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)

    # fine radial bins, one Fourier pixel wide, for the background fit
    bin_f = rb.frequency * nyquist
    with np.errstate(divide="ignore", invalid="ignore"):
        bin_p = rb.sums(power) / rb.n_pixels
    zones = [(lo - step, hi + step)]
    for other in exclude or ():
        fo = 1.0 / float(other)
        if abs(fo - f0) > 1e-9 * f0:
            ho = half * fo / f0
            zones.append((fo - ho, fo + ho))
    use = (bin_f >= blo) & (bin_f <= bhi) & (rb.n_pixels > 0)
    for zlo, zhi in zones:
        use &= (bin_f + 0.5 * step <= zlo) | (bin_f - 0.5 * step >= zhi)
    n_below = int((use & (bin_f < f0)).sum())
    n_above = int((use & (bin_f > f0)).sum())
    if n_below < 1 or n_above < 1 or n_below + n_above < degree + 3:
        raise DedkitError(
            f"too few Fourier rings around the {spacing:.3f} A ring for a background "
            f"({n_below} below, {n_above} above in {blo:.3f} .. {bhi:.3f} 1/A): use a larger "
            "image, smaller pixels or a wider background range"
        )
    idx = np.flatnonzero(use)
    nb = rb.n_pixels[idx]
    n_eff_bin = 0.5 * nb * independent  # effectively independent coefficients per ring
    # log of a mean of n exponentials is biased by psi(n) - log(n): undone before the fit
    y = np.log(bin_p[idx]) + np.log(n_eff_bin) - scipy.special.digamma(n_eff_bin)
    var_log = scipy.special.polygamma(1, n_eff_bin)

    def design(f):
        return np.vander(np.asarray(f) / f0 - 1.0, degree + 1, increasing=True)

    X = design(bin_f[idx])
    weight = 1.0 / var_log
    cov = np.linalg.inv(X.T @ (X * weight[:, None]))
    beta = cov @ (X.T @ (weight * y))

    # the annulus
    ring = (radius >= lo) & (radius < hi)
    cw = rb.weight[ring]
    n_coef = float(cw.sum())
    ring_power = float((cw * power[ring]).sum() / n_coef)
    Xa = design(radius[ring])
    fitted = np.exp(Xa @ beta)
    bg = float((cw * fitted).sum() / n_coef)
    grad = (cw * fitted) @ Xa / n_coef  # d background / d beta
    var_fit = float(grad @ cov @ grad)
    n_ind = 0.5 * n_coef * independent
    noise_analytic = math.sqrt(bg * bg / n_ind + var_fit)

    # the empirical check: annulus-wide windows of consecutive background rings
    m = max(1, int(round(2 * half / step)))
    fit_bins = np.exp(X @ beta)
    s2 = []
    runs = np.split(np.arange(idx.size), np.flatnonzero(np.diff(idx) != 1) + 1)
    for run in runs:
        for start in range(0, run.size - m + 1):
            j = run[start : start + m]
            n = nb[j]
            total = n.sum()
            pw = (n * bin_p[idx[j]]).sum() / total
            bw = (n * fit_bins[j]).sum() / total
            var_w = (n * n * fit_bins[j] ** 2 / n_eff_bin[j]).sum() / total**2
            g = (n * fit_bins[j]) @ X[j] / total
            var_resid = max(var_w - float(g @ cov @ g), 0.25 * var_w)
            s2.append((pw - bw) ** 2 / var_resid)
    if s2:
        scale = math.sqrt(float(np.mean(s2)))
        noise_empirical = noise_analytic * scale
    else:
        scale = math.nan
        noise_empirical = math.nan

    analytic_text = (
        f"analytic: exponential statistics, background / sqrt({n_ind:.0f} independent "
        "coefficients), with the fit's uncertainty"
    )
    empirical_text = (
        f"empirical: rms scatter of {len(s2)} annulus-wide windows about the background fit, "
        f"{scale:.2f} x the analytic noise"
    )
    if noise == "analytic" or (noise == "larger" and not noise_empirical > noise_analytic):
        chosen, method = noise_analytic, analytic_text
        if noise == "larger" and s2:
            method += f" (the larger: empirical scatter {scale:.2f} x)"
    elif s2:
        chosen, method = noise_empirical, empirical_text
        if noise == "larger":
            method += " (the larger)"
    else:
        raise DedkitError(
            f"no annulus-wide window of the background range {blo:.3f} .. {bhi:.3f} 1/A "
            "for an empirical noise estimate"
        )
    excess = ring_power - bg
    return RingMeasure(
        spacing_A=spacing,
        frequency=f0,
        annulus=(lo, hi),
        ring_power=ring_power,
        background=bg,
        excess=excess,
        noise=chosen,
        snr=excess / chosen,
        n_coefficients=int(round(n_coef)),
        background_radii=(float(blo), float(bhi)),
        method=method,
        noise_analytic=noise_analytic,
        noise_empirical=noise_empirical,
        n_independent=n_ind,
        pixel_size_A=pixel,
    )


# --------------------------------------------------------------------------- dose to SNR


@dataclass
class DoseForSNR:
    """The dose at which a ring reaches a target SNR, from a line through the origin.

    Attributes
    ----------
    target : float
    slope, slope_error : float
        SNR per unit dose and its standard error.
    dose, dose_error : float
        ``target / slope`` and its standard error (NaN when the slope is not > 0 at
        ``significance`` standard errors).
    n_points : int
    extrapolated : bool
        The dose lies beyond the largest dose measured.
    """

    target: float
    slope: float
    slope_error: float
    dose: float
    dose_error: float
    n_points: int
    extrapolated: bool


def dose_for_snr_detail(doses, snrs, target: float = 5.0, *, significance: float = 2.0):
    """The fit behind :func:`dose_for_snr`.

    A shot-noise-limited ring's excess power is fixed while the background falls as
    ``1 / dose``, so its SNR grows as ``slope x dose``: ``slope`` is the least-squares
    line through the origin, fitted on the doses up to the first that reaches
    ``target`` (at higher doses the specimen's own structure can cap the SNR). Each SNR
    scatters by about 1 (its noise unit), so the slope's error is
    ``sigma / sqrt(sum(dose^2))`` with ``sigma`` the rms residual (at least 1).

    Parameters
    ----------
    doses, snrs : sequences of float
        Doses (any unit: the result is in it) and the ring SNR measured at each.
    target : float
    significance : float
        The slope must exceed this many standard errors, else the dose is NaN.

    Returns
    -------
    DoseForSNR

    Examples
    --------
    >>> d = dose_for_snr_detail([10, 20, 40], [1.2, 2.1, 4.0], target=5)
    >>> round(d.slope, 3), round(d.dose, 1), d.extrapolated
    (0.102, 49.1, True)

    A ring whose SNR stops growing (24, 24.5 at the two highest doses): the fit ends at
    the first dose past the target, and the dose is where the line crosses it:

    >>> d = dose_for_snr_detail([1, 2, 4, 8, 16], [2.6, 5.1, 11, 24, 24.5], target=5)
    >>> d.n_points, round(d.dose, 2), d.extrapolated
    (2, 1.95, False)
    """
    d = np.asarray(doses, np.float64).ravel()
    s = np.asarray(snrs, np.float64).ravel()
    if d.size != s.size or d.size == 0:
        raise DedkitError(f"need as many SNRs as doses (got {s.size} and {d.size}), at least one")
    keep = np.isfinite(d) & np.isfinite(s)
    d, s = d[keep], s[keep]
    if (d <= 0).any():
        raise DedkitError("the doses must be positive")
    target = float(target)
    if not target > 0:
        raise DedkitError(f"the target SNR must be positive, got {target}")
    nan = math.nan
    if d.size == 0:
        return DoseForSNR(target, nan, nan, nan, nan, 0, False)
    # the line holds while shot noise dominates; past the target the specimen's own
    # structure around the ring can cap the SNR (it no longer grows with dose), so the
    # fit stops at the first dose that reaches the target
    order = np.argsort(d, kind="stable")
    d, s = d[order], s[order]
    reached = np.flatnonzero(s >= target)
    if reached.size:
        d, s = d[: reached[0] + 1], s[: reached[0] + 1]
    sdd = float((d * d).sum())
    slope = float((d * s).sum() / sdd)
    sigma = 1.0
    if d.size > 1:
        sigma = max(1.0, math.sqrt(float(((s - slope * d) ** 2).sum()) / (d.size - 1)))
    error = sigma / math.sqrt(sdd)
    if not slope > significance * error:
        return DoseForSNR(target, slope, error, nan, nan, int(d.size), False)
    dose = target / slope
    return DoseForSNR(
        target, slope, error, dose, target * error / slope**2, int(d.size), bool(dose > d.max())
    )


def dose_for_snr(doses, snrs, target: float = 5.0) -> float:
    """The dose at which a ring's SNR reaches ``target``, from a line through the origin.

    See :func:`dose_for_snr_detail` (the fit, its errors). NaN when the SNR does not
    grow significantly with dose (the ring is not there).

    Parameters
    ----------
    doses, snrs : sequences of float
    target : float

    Returns
    -------
    float
        In the unit of ``doses``.

    Examples
    --------
    >>> round(dose_for_snr([10, 20, 40], [1.0, 2.0, 4.0], target=5), 6)
    50.0
    >>> dose_for_snr([10, 20, 40], [0.3, -0.5, 0.2])
    nan
    """
    return dose_for_snr_detail(doses, snrs, target).dose
