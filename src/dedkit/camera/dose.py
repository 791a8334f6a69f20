"""Dose rate from an image's mean, corrected for coincidence loss, and the inverse.

An image pixel at user binning ``b`` covers ``b * b`` physical pixels (0.25 for a
super-resolution image), so the counts per physical pixel per second are
``mean / (exposure * b * b)`` and the electrons per physical pixel per second are that
divided by the mode's counts per electron (:class:`~dedkit.camera.models.Camera`). This
is SerialEM's computation (``ProcessImage::DoseRateFromMean``: mean / (counts per
electron x exposure x internal binning^2 / 4) for cameras with doubled binnings).

In counting modes that gives the *counted* rate, which dedkit corrects for coincidence
loss and the 0.87 detection efficiency with :func:`dedkit.camera.coincidence.true_rate`,
as SerialEM does since version 3.6. Linear mode integrates charge: its rate is taken as
the true rate (no coincidence loss).

A true rate outside the camera's efficient counting range (K2 2-10, K3 7-40 e/physical
pixel/s, seed) raises a :class:`DoseRateWarning` and is noted in the result.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

from dedkit.camera.coincidence import (
    DETECTION_EFFICIENCY,
    coincidence_factor,
    counted_rate,
    true_rate,
)
from dedkit.camera.models import Camera, get_camera
from dedkit.errors import DedkitError

__all__ = ["DoseRate", "DoseRateWarning", "dose_rate", "expected_counts"]


class DoseRateWarning(UserWarning):
    """A dose rate outside the camera's efficient counting range."""


@dataclass(frozen=True)
class DoseRate:
    """A dose rate and how it was derived.

    Attributes
    ----------
    camera, mode : str
        Camera and mode.
    binning : float
        User binning of the image.
    exposure : float
        Exposure time (s).
    mean_counts : float
        Mean image counts per image pixel.
    counts_per_electron : float
        Image counts per electron in this mode.
    counts_rate : float
        Counts per physical pixel per second.
    counted_rate : float
        Electrons per physical pixel per second as the image records them (uncorrected).
    true_rate : float
        Electrons per physical pixel per second arriving (corrected in counting modes).
    coincidence_factor : float
        Counts per true electron from coincidence loss at ``true_rate`` (1 in linear mode).
    detection_efficiency : float
        Counted per true electron at low rate (0.87 in counting modes, 1 in linear).
    efficient_range : tuple of float or None
        The camera's efficient counting range (counting modes).
    warnings : tuple of str
        Warnings raised (a rate outside the efficient range).
    """

    camera: str
    mode: str
    binning: float
    exposure: float
    mean_counts: float
    counts_per_electron: float
    counts_rate: float
    counted_rate: float
    true_rate: float
    coincidence_factor: float
    detection_efficiency: float
    efficient_range: tuple[float, float] | None
    warnings: tuple[str, ...] = ()

    @property
    def true_rate_per_superres_pixel(self) -> float:
        """Electrons per super-resolution pixel per second (a quarter of the physical)."""
        return self.true_rate / 4

    def to_dict(self) -> dict:
        d = asdict(self)
        d["efficient_range"] = None if self.efficient_range is None else list(self.efficient_range)
        d["warnings"] = list(self.warnings)
        return d

    def text(self) -> str:
        lines = [
            f"{self.camera} {self.mode}, binning {self.binning:g}, exposure {self.exposure:g} s, "
            f"mean {self.mean_counts:g} counts",
            f"  {self.counts_rate:.4g} counts per physical pixel per second "
            f"({self.counts_per_electron:g} counts per electron)",
        ]
        if self.mode == "linear":
            lines.append(f"  dose rate {self.true_rate:.4g} e/physical pixel/s (linear mode)")
        else:
            lines += [
                f"  counted rate {self.counted_rate:.4g} e/physical pixel/s",
                f"  coincidence factor {self.coincidence_factor:.4f}, detection efficiency "
                f"{self.detection_efficiency:g}",
                f"  true dose rate {self.true_rate:.4g} e/physical pixel/s "
                f"(efficient range {self.efficient_range[0]:g}-{self.efficient_range[1]:g})",
            ]
        return "\n".join(lines)


def _check_inputs(cam: Camera, mode: str, exposure: float, binning: float) -> tuple[str, float]:
    mode = cam.check_mode(mode)
    b = cam.check_binning(binning, mode)
    if not (math.isfinite(exposure) and exposure > 0):
        raise DedkitError(f"exposure must be a positive number of seconds (got {exposure:g})")
    return mode, b


def _range_warnings(cam: Camera, mode: str, rate: float) -> tuple[str, ...]:
    if mode == "linear" or cam.efficient_rate_range is None:
        return ()
    lo, hi = cam.efficient_rate_range
    if lo <= rate <= hi:
        return ()
    side = "below" if rate < lo else "above"
    message = (
        f"dose rate {rate:.4g} e/physical pixel/s is {side} the {cam.name}'s efficient "
        f"counting range of {lo:g}-{hi:g} e/physical pixel/s"
    )
    warnings.warn(message, DoseRateWarning, stacklevel=3)
    return (message,)


def dose_rate(
    camera: str | Camera,
    mode: str,
    mean_counts: float,
    exposure: float,
    *,
    binning: float = 1,
) -> DoseRate:
    """The dose rate (e/physical pixel/s) an image's mean count implies.

    Parameters
    ----------
    camera : str or Camera
        ``K2``, ``K3``, ``CCD``, ``CMOS`` or a camera model.
    mode : str
        ``linear``, ``counting`` or ``superres``.
    mean_counts : float
        Mean counts per image pixel, >= 0, as SerialEM receives the image (gain
        normalised, with the mode's count scaling).
    exposure : float
        Exposure time (s), > 0.
    binning : float
        User binning of the image (0.5 = super-resolution).

    Returns
    -------
    DoseRate
        Counted and true rates; in counting modes the true rate is corrected for
        coincidence loss and detection efficiency.

    Raises
    ------
    DedkitError
        Bad input, or a counted rate beyond what the camera can count.

    Warns
    -----
    DoseRateWarning
        The true rate is outside the camera's efficient counting range.
    """
    cam = get_camera(camera)
    mode, b = _check_inputs(cam, mode, exposure, binning)
    if not (math.isfinite(mean_counts) and mean_counts >= 0):
        raise DedkitError(f"mean counts must be 0 or more (got {mean_counts:g})")
    cpe = cam.counts_per_electron_in(mode)
    counts_rate = mean_counts / (exposure * b * b)
    counted = counts_rate / cpe
    if mode == "linear":
        true, factor, efficiency = counted, 1.0, 1.0
    else:
        true = float(true_rate(counted, cam))
        factor = float(coincidence_factor(true, cam))
        efficiency = DETECTION_EFFICIENCY
    return DoseRate(
        camera=cam.name,
        mode=mode,
        binning=b,
        exposure=float(exposure),
        mean_counts=float(mean_counts),
        counts_per_electron=cpe,
        counts_rate=counts_rate,
        counted_rate=counted,
        true_rate=true,
        coincidence_factor=factor,
        detection_efficiency=efficiency,
        efficient_range=cam.efficient_rate_range if mode != "linear" else None,
        warnings=_range_warnings(cam, mode, true),
    )


def expected_counts(
    camera: str | Camera,
    mode: str,
    true_dose_rate: float,
    exposure: float,
    *,
    binning: float = 1,
) -> DoseRate:
    """The mean image count a true dose rate gives: the inverse of :func:`dose_rate`.

    Parameters
    ----------
    camera : str or Camera
        ``K2``, ``K3``, ``CCD``, ``CMOS`` or a camera model.
    mode : str
        ``linear``, ``counting`` or ``superres``.
    true_dose_rate : float
        Electrons per physical pixel per second arriving, >= 0.
    exposure : float
        Exposure time (s), > 0.
    binning : float
        User binning of the image.

    Returns
    -------
    DoseRate
        With ``mean_counts`` the expected mean count per image pixel.

    Warns
    -----
    DoseRateWarning
        The rate is outside the camera's efficient counting range.
    """
    cam = get_camera(camera)
    mode, b = _check_inputs(cam, mode, exposure, binning)
    if not (math.isfinite(true_dose_rate) and true_dose_rate >= 0):
        raise DedkitError(f"dose rate must be 0 or more (got {true_dose_rate:g})")
    cpe = cam.counts_per_electron_in(mode)
    if mode == "linear":
        counted, factor, efficiency = float(true_dose_rate), 1.0, 1.0
    else:
        counted = float(counted_rate(true_dose_rate, cam))
        factor = float(coincidence_factor(true_dose_rate, cam))
        efficiency = DETECTION_EFFICIENCY
    counts_rate = counted * cpe
    return DoseRate(
        camera=cam.name,
        mode=mode,
        binning=b,
        exposure=float(exposure),
        mean_counts=counts_rate * exposure * b * b,
        counts_per_electron=cpe,
        counts_rate=counts_rate,
        counted_rate=counted,
        true_rate=float(true_dose_rate),
        coincidence_factor=factor,
        detection_efficiency=efficiency,
        efficient_range=cam.efficient_rate_range if mode != "linear" else None,
        warnings=_range_warnings(cam, mode, float(true_dose_rate)),
    )
