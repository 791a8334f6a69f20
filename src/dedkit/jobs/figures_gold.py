"""Figures of the gold-nanoparticle run (the MÖNCH paper's figure 6 and what follows it).

- :func:`gold_figure`: the paper's layout, one column per localiser (the truth, the
  charge centroid, eta, the CNN): the mean-normalised image on top, its power spectrum
  below with the gold rings circled and their SNR (:func:`dedkit.metrics.ring_snr`) in the
  panel's title;
- :func:`dose_figure`: ring SNR against dose per localiser, with the dose at which each
  reaches the target SNR (:func:`dedkit.metrics.dose_for_snr`);
- :func:`radial_figure`: radially averaged power spectra with the rings marked.

Each draws a matplotlib figure (Agg, no display) and writes it atomically with
:func:`dedkit.io.figures.save_figure`; the format follows the suffix.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.figures import save_figure
from dedkit.metrics.ring_snr import AU_111_A, AU_200_A, RingMeasure, power_spectrum

__all__ = ["dose_figure", "gold_figure", "radial_figure"]

#: colours of the ring markers, in the order the rings are given
RING_COLOURS = ("tab:orange", "tab:cyan", "tab:pink", "tab:olive")


def _figure(size):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DedkitError("matplotlib is not installed: no figure written") from None
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _stretch(values, low=1.0, high=99.5):
    """Display limits: percentiles of the finite values (never equal)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [low, high])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _spacing(ring) -> float:
    return float(ring.spacing_A if isinstance(ring, RingMeasure) else ring)


def _ring_label(ring) -> str:
    if isinstance(ring, RingMeasure):
        return f"{ring.spacing_A:.2f} A: SNR {ring.snr:.1f}"
    return f"{float(ring):.2f} A"


def gold_figure(
    images: dict,
    spectra: dict | None,
    rings: dict | None,
    pixel_size_A: float,
    path,
    *,
    title: str | None = None,
    fmax: float = 0.6,
    dpi: float | None = 150,
) -> Path:
    """Images and power spectra side by side, one column per localiser (figure 6).

    Parameters
    ----------
    images : dict
        Name (``'truth'``, ``'centroid'``, ``'eta'``, ``'cnn'``...) -> 2D image, in the
        order of the columns; shown mean-normalised (``image / mean``), grey, stretched
        between its 0.5th and 99.5th percentiles.
    spectra : dict, optional
        Name -> its centred power spectrum (:func:`dedkit.metrics.power_spectrum`, the
        image's shape); missing ones (or None) are computed.
    rings : dict, optional
        Name -> list of :class:`~dedkit.metrics.RingMeasure` (or spacings in A) to circle,
        with their SNR in the title; default: the gold {111} and {200} rings, unmeasured.
    pixel_size_A : float
        A per pixel of the images.
    path : path-like
        The figure (.png, .pdf, .svg).
    title : str, optional
    fmax : float
        The spectra are shown out to this frequency, 1/A (cut at Nyquist).
    dpi : float, optional

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.metrics import AU_111_A, ring_snr
    >>> rng = np.random.default_rng(0)
    >>> images = {"centroid": rng.poisson(2.0, (128, 128)), "cnn": rng.poisson(2.0, (128, 128))}
    >>> rings = {k: [ring_snr(v, 0.5, AU_111_A)] for k, v in images.items()}
    >>> gold_figure(images, None, rings, 0.5, "gold.png").stat().st_size > 0
    True
    """
    if not images:
        raise DedkitError("a gold figure needs at least one image")
    pixel = float(pixel_size_A)
    if not (math.isfinite(pixel) and pixel > 0):
        raise DedkitError(f"the pixel size must be a positive number of A, got {pixel_size_A}")
    spectra = spectra or {}
    rings = rings if rings is not None else {}
    names = list(images)
    fig = _figure((3.3 * len(names), 7.0))
    from matplotlib.patches import Circle

    axes = fig.subplots(2, len(names), squeeze=False)
    for col, name in enumerate(names):
        image = np.asarray(images[name], np.float64)
        if image.ndim != 2:
            raise DedkitError(f"the image {name!r} is not 2D (shape {image.shape})")
        mean = image.mean()
        shown = image / mean if mean > 0 else image
        lo, hi = _stretch(shown, 0.5, 99.5)
        ny, nx = image.shape
        ax = axes[0, col]
        ax.imshow(shown, cmap="gray", vmin=lo, vmax=hi, interpolation="antialiased",
                  extent=(0, nx * pixel / 10, ny * pixel / 10, 0))  # fmt: skip
        ax.set_title(name)
        ax.set_xlabel("x (nm)")
        if col == 0:
            ax.set_ylabel("y (nm)")

        spectrum = spectra.get(name)
        spectrum = power_spectrum(image) if spectrum is None else np.asarray(spectrum)
        if spectrum.shape != image.shape:
            raise DedkitError(
                f"the spectrum of {name!r} is {spectrum.shape}, its image {image.shape}"
            )
        fy = (np.arange(ny) - ny // 2) / (ny * pixel)
        fx = (np.arange(nx) - nx // 2) / (nx * pixel)
        edge = min(float(fmax), 0.5 / pixel)
        rows = np.flatnonzero(np.abs(fy) <= edge)
        cols = np.flatnonzero(np.abs(fx) <= edge)
        crop = spectrum[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        positive = crop[crop > 0]
        floor = float(positive.min()) if positive.size else 1.0
        logp = np.log10(np.maximum(crop, floor))
        radius = np.hypot(fy[rows][:, None], fx[cols][None, :])
        lo, hi = _stretch(logp[radius > 0.1 * edge], 1.0, 99.7)
        dy, dx = 0.5 / (ny * pixel), 0.5 / (nx * pixel)
        ax = axes[1, col]
        box = (fx[cols[0]] - dx, fx[cols[-1]] + dx, fy[rows[0]] - dy, fy[rows[-1]] + dy)
        ax.imshow(logp, cmap="gray", vmin=lo, vmax=hi, origin="lower",
                  interpolation="antialiased", extent=box)  # fmt: skip
        marked = rings.get(name) if name in rings else [AU_111_A, AU_200_A]
        labels = []
        for i, ring in enumerate(marked or []):
            ax.add_patch(Circle((0, 0), 1.0 / _spacing(ring), fill=False, ls="--", lw=0.7,
                                color=RING_COLOURS[i % len(RING_COLOURS)], alpha=0.8))  # fmt: skip
            labels.append(_ring_label(ring))
        ax.set_title("\n".join(labels) if labels else "power spectrum", fontsize=9)
        ax.set_xlabel("kx (1/A)")
        if col == 0:
            ax.set_ylabel("ky (1/A)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


def dose_figure(
    curves: dict,
    target: float,
    path,
    *,
    dose_for: dict | None = None,
    title: str | None = None,
    dpi: float | None = 150,
) -> Path:
    """Ring SNR against dose per localiser, with the dose each needs to reach ``target``.

    Parameters
    ----------
    curves : dict
        Name -> (doses in e/A^2, SNRs) measured at each dose.
    target : float
        The SNR to reach (a dashed line).
    path : path-like
    dose_for : dict, optional
        Name -> dose reaching ``target`` (NaN: never). Default: from
        :func:`dedkit.metrics.dose_for_snr` on each curve. Drawn as a line through the
        origin with a marker where it crosses the target.
    title : str, optional
    dpi : float, optional

    Returns
    -------
    Path

    Examples
    --------
    >>> doses = [5, 10, 20]
    >>> curves = {"centroid": (doses, [0.4, -0.2, 0.9]), "cnn": (doses, [1.1, 2.2, 3.9])}
    >>> dose_figure(curves, 5.0, "dose.png").stat().st_size > 0
    True
    """
    from dedkit.metrics.ring_snr import dose_for_snr

    if not curves:
        raise DedkitError("a dose figure needs at least one curve")
    target = float(target)
    fig = _figure((6.0, 4.4))
    ax = fig.subplots()
    low, high, top = math.inf, 0.0, target
    for i, (name, (doses, snrs)) in enumerate(curves.items()):
        doses = np.asarray(doses, np.float64)
        snrs = np.asarray(snrs, np.float64)
        if doses.shape != snrs.shape:
            raise DedkitError(f"the curve {name!r} has {doses.size} doses and {snrs.size} SNRs")
        colour = f"C{i}"
        dose = (dose_for or {}).get(name)
        if dose is None:
            dose = dose_for_snr(doses, snrs, target)
        reached = dose is not None and math.isfinite(dose) and dose > 0
        beyond = reached and doses.size and dose > float(np.nanmax(doses))
        label = f"{name}: " + (
            f"SNR {target:g} at {dose:.3g} e/A$^2$" + (" (extrapolated)" if beyond else "")
            if reached else f"SNR {target:g} not reached"
        )  # fmt: skip
        order = np.argsort(doses)
        # the measured points joined: the SNR grows with dose while shot noise dominates,
        # and levels off where the specimen's own structure does
        ax.plot(doses[order], snrs[order], "o-", color=colour, label=label, lw=1)
        if doses.size:
            low = min(low, float(np.nanmin(doses)))
            high = max(high, float(np.nanmax(doses)))
            top = max(top, float(np.nanmax(snrs)))
        if reached:
            low, high = min(low, dose), max(high, dose)
            ax.plot([dose], [target], "*", color=colour, ms=13, mec="k", mew=0.6)
            ax.axvline(dose, color=colour, ls=":", lw=0.8)
    ax.axhline(target, color="k", ls="--", lw=1)
    ax.axhline(0, color="0.6", lw=0.6)
    # doses span decades (a fraction of a run to all of it): a log axis
    if math.isfinite(low) and low > 0 and high > low:
        ax.set_xscale("log")
        ax.set_xlim(low / 1.5, high * 1.5)
    ax.set_ylim(min(-2.0, ax.get_ylim()[0]), top * 1.15 + 1)
    ax.set_xlabel("dose (e/A$^2$)")
    ax.set_ylabel("ring SNR")
    ax.set_title(title or f"Dose to ring SNR {target:g}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


def radial_figure(
    profiles: dict,
    rings,
    path,
    *,
    title: str | None = None,
    fmax: float | None = None,
    dpi: float | None = 150,
) -> Path:
    """Radially averaged power spectra (log scale) with the rings marked.

    Parameters
    ----------
    profiles : dict
        Name -> (frequency in 1/A, mean power) (:func:`dedkit.metrics.radial_profile`).
    rings : sequence
        Spacings in A, or :class:`~dedkit.metrics.RingMeasure` (its annulus is shaded
        and its background marked).
    path : path-like
    title : str, optional
    fmax : float, optional
        Upper frequency shown, 1/A; default the largest in the profiles.
    dpi : float, optional

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.metrics import AU_111_A, AU_200_A, radial_profile
    >>> image = np.random.default_rng(0).poisson(2.0, (128, 128))
    >>> profiles = {"cnn": radial_profile(image, 0.5)}
    >>> radial_figure(profiles, [AU_111_A, AU_200_A], "radial.png").suffix
    '.png'
    """
    if not profiles:
        raise DedkitError("a radial figure needs at least one profile")
    fig = _figure((6.4, 4.4))
    ax = fig.subplots()
    highest = 0.0
    for i, (name, (freq, power)) in enumerate(profiles.items()):
        freq = np.asarray(freq, np.float64)
        power = np.asarray(power, np.float64)
        keep = (freq > 0) & (power > 0) & np.isfinite(power)
        ax.semilogy(freq[keep], power[keep], "-", color=f"C{i}", lw=1, label=name)
        if keep.any():
            highest = max(highest, float(freq[keep].max()))
    for i, ring in enumerate(rings or []):
        colour = RING_COLOURS[i % len(RING_COLOURS)]
        ax.axvline(1.0 / _spacing(ring), color=colour, ls="--", lw=0.8,
                   label=f"{_spacing(ring):.3f} A")  # fmt: skip
        if isinstance(ring, RingMeasure):
            ax.axvspan(*ring.annulus, color=colour, alpha=0.15)
            ax.plot(ring.annulus, [ring.background] * 2, "-", color=colour, lw=2)
    ax.set_xlim(0, fmax if fmax else highest or 1.0)
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("power (mean-normalised image)")
    ax.set_title(title or "Radially averaged power spectra")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)
