"""Where and when electrons arrive: Poisson arrivals per frame from an intensity pattern.

The number of electrons in each frame is Poisson with mean ``flux`` (electrons per frame);
each electron's entry point is drawn from the pattern's intensity:

- ``flat``: uniform over the sensor;
- ``spot``: a Gaussian spot (default: the sensor centre, sigma 0.034 px, i.e. the paper's
  beam of about 2 um diameter as a 2 um FWHM on 25 um pixels);
- ``scan``: the spot dwelling ``dwell_frames`` frames on each of a list of points in
  turn, as the paper's random scan across the sensor (section 2.2), repeated if the run
  has more frames than points x dwell;
- ``image``: an intensity image of any size stretched over the whole sensor (image pixel
  (i, j) covers ``x in [j, j + 1) * nx / w``, ``y in [i, i + 1) * ny / h``), uniform
  within each image pixel.
- ``specimen``: the image a specimen forms on the sensor at a magnification
  (``image_pixel_px`` sensor pixels per image pixel, e.g. 0.2 for an HRTEM intensity
  sampled at 0.2 A imaged at 1 A per pixel), centred on the sensor and moving with the
  specimen's drift: in frame f the image is displaced by ``drift_px[f]`` (x, y), the last
  row held after the trajectory ends. The image must cover the sensor wherever the drift
  takes it; ``flux`` is the electrons per frame the sensor receives where the intensity
  equals the image's mean. The specimen position of every electron is its sensor position
  minus the drift of its frame.

Positions are in pixel units, pixel (r, c) covering x in [c, c + 1), y in [r, r + 1).
Electrons of a spot or scan that fall outside the sensor miss it and are dropped (the
flux is the beam's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.sensor import DEFAULT_PITCH_UM

__all__ = [
    "PATTERNS",
    "Arrivals",
    "BeamPattern",
    "check_flux",
    "drift_trajectory",
    "expected_energy_map",
    "random_scan_points",
    "sample_arrivals",
]

PATTERNS = ("flat", "spot", "scan", "image", "specimen")
#: rms of the paper's focused beam, about 2 um across (FWHM), on the default pixels (25 um)
DEFAULT_SPOT_SIGMA_PX = 2.0 / 2.3548 / DEFAULT_PITCH_UM


@dataclass(frozen=True, eq=False)
class BeamPattern:
    """An intensity pattern on the sensor.

    Attributes
    ----------
    kind : {'flat', 'spot', 'scan', 'image'}
    centre_px : (x, y), optional
        Spot centre in pixels (default: the sensor centre).
    sigma_px : float
        Spot rms per axis, pixels (spot and scan).
    points_px : (m, 2) array, optional
        Scan points (x, y) in pixels, visited in order.
    dwell_frames : int
        Frames spent on each scan point.
    image : (h, w) array, optional
        Non-negative intensity: covering the whole sensor ('image'), or the specimen's
        image at ``image_pixel_px`` sensor pixels per image pixel ('specimen').
    image_pixel_px : float
        Sensor pixels per image pixel ('specimen').
    drift_px : (n, 2) array, optional
        Drift (x, y) of the specimen image in sensor pixels at each run frame ('specimen';
        default none).
    """

    kind: str = "flat"
    centre_px: tuple[float, float] | None = None
    sigma_px: float = DEFAULT_SPOT_SIGMA_PX
    points_px: np.ndarray | None = None
    dwell_frames: int = 1
    image: np.ndarray | None = field(default=None, repr=False)
    image_pixel_px: float = 1.0
    drift_px: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind not in PATTERNS:
            raise DedkitError(
                f"beam pattern must be one of {', '.join(PATTERNS)}, not {self.kind!r}"
            )
        if not (math.isfinite(self.sigma_px) and self.sigma_px >= 0):
            raise DedkitError(f"spot sigma must be a number >= 0 pixels, got {self.sigma_px}")
        if self.kind == "scan":
            points = (
                np.asarray(self.points_px, dtype=np.float64) if self.points_px is not None else None
            )
            if points is None or points.ndim != 2 or points.shape[1] != 2 or len(points) == 0:
                raise DedkitError("a scan needs an (m, 2) array of points (x, y) in pixels")
            if not np.all(np.isfinite(points)):
                raise DedkitError("scan points must be finite")
            object.__setattr__(self, "points_px", points)
            if not (isinstance(self.dwell_frames, int | np.integer) and self.dwell_frames >= 1):
                raise DedkitError(f"dwell must be at least 1 frame, got {self.dwell_frames}")
        if self.kind in ("image", "specimen"):
            if self.image is None:
                raise DedkitError("an image pattern needs an intensity image")
            image = np.asarray(self.image, dtype=np.float64)
            if image.ndim != 2 or image.size == 0:
                raise DedkitError(f"the intensity image must be 2-D, got shape {image.shape}")
            if not np.all(np.isfinite(image)) or np.any(image < 0):
                raise DedkitError("the intensity image must be finite and non-negative")
            if image.sum() <= 0:
                raise DedkitError("the intensity image is zero everywhere")
            object.__setattr__(self, "image", image)
        if self.kind == "specimen":
            step = float(self.image_pixel_px)
            if not (math.isfinite(step) and step > 0):
                raise DedkitError(
                    f"the specimen image's pixel must be a positive number of sensor pixels, "
                    f"got {self.image_pixel_px}"
                )
            object.__setattr__(self, "image_pixel_px", step)
            if self.drift_px is not None:
                drift = np.asarray(self.drift_px, dtype=np.float64)
                if drift.ndim != 2 or drift.shape[1] != 2 or len(drift) == 0:
                    raise DedkitError("the specimen drift must be an (n, 2) array of (x, y) pixels")
                if not np.all(np.isfinite(drift)):
                    raise DedkitError("the specimen drift must be finite")
                object.__setattr__(self, "drift_px", drift)
        if self.centre_px is not None:
            centre = tuple(float(v) for v in self.centre_px)
            if len(centre) != 2 or not all(math.isfinite(v) for v in centre):
                raise DedkitError(f"spot centre must be two finite numbers, got {self.centre_px}")
            object.__setattr__(self, "centre_px", centre)

    def to_dict(self) -> dict:
        """A JSON-friendly description (the image by its shape only)."""
        out = {"kind": self.kind}
        if self.kind in ("spot", "scan"):
            out["sigma_px"] = self.sigma_px
        if self.kind == "spot":
            out["centre_px"] = list(self.centre_px) if self.centre_px else None
        if self.kind == "scan":
            out["n_points"] = len(self.points_px)
            out["dwell_frames"] = int(self.dwell_frames)
        if self.kind in ("image", "specimen"):
            out["image_shape"] = list(self.image.shape)
        if self.kind == "specimen":
            out["image_pixel_px"] = self.image_pixel_px
            if self.drift_px is not None:
                # the whole trajectory can be long: its ends and extent, the per-frame
                # drift of every electron is in the truth table (specimen_x/y)
                drift = self.drift_px
                out["drift_frames"] = len(drift)
                out["drift_first_px"] = drift[0].tolist()
                out["drift_last_px"] = drift[-1].tolist()
                out["drift_path_px"] = float(np.hypot(*np.diff(drift, axis=0).T).sum())
        return out

    def drift_at(self, frames) -> np.ndarray:
        """Drift (x, y) in sensor pixels at run frames ``frames`` ((m, 2); zero without a
        trajectory, the last row held after it ends)."""
        frames = np.asarray(frames, dtype=np.int64)
        if self.drift_px is None:
            return np.zeros((len(frames), 2))
        return self.drift_px[np.clip(frames, 0, len(self.drift_px) - 1)]

    def specimen_origin_px(self, shape) -> tuple[float, float]:
        """Sensor position (x, y) of the specimen image's corner (0, 0) without drift: the
        image centred on the sensor."""
        rows, cols = shape
        h, w = self.image.shape
        return (cols - w * self.image_pixel_px) / 2.0, (rows - h * self.image_pixel_px) / 2.0

    def check_covers(self, shape) -> None:
        """Refuse a specimen image that leaves part of the sensor uncovered at some drift."""
        if self.kind != "specimen":
            return
        rows, cols = shape
        h, w = self.image.shape
        x0, y0 = self.specimen_origin_px(shape)
        drift = self.drift_px if self.drift_px is not None else np.zeros((1, 2))
        # the image's left/bottom edge at its furthest right/up, and its far edges at
        # their furthest left/down, must stay outside the sensor
        low_x, low_y = x0 + drift.max(axis=0)[0], y0 + drift.max(axis=0)[1]
        high_x = x0 + drift.min(axis=0)[0] + w * self.image_pixel_px
        high_y = y0 + drift.min(axis=0)[1] + h * self.image_pixel_px
        if low_x > 1e-9 or low_y > 1e-9 or high_x < cols - 1e-9 or high_y < rows - 1e-9:
            # centred at zero drift: the image reaches the furthest drift on both sides
            need_x = cols + 2 * np.abs(drift[:, 0]).max()
            need_y = rows + 2 * np.abs(drift[:, 1]).max()
            raise DedkitError(
                f"the specimen image ({w} x {h} pixels of {self.image_pixel_px:g} sensor "
                f"pixels) does not cover the {cols} x {rows} pixel sensor as the specimen "
                f"drifts: it needs {need_x / self.image_pixel_px:.0f} x "
                f"{need_y / self.image_pixel_px:.0f} pixels"
            )


@dataclass
class Arrivals:
    """Electrons arriving in a run of frames.

    Attributes
    ----------
    frame : (m,) int64
        Frame index of each electron (0 = the first frame of the call).
    x_px, y_px : (m,) float64
        Entry points in pixels.
    """

    frame: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def random_scan_points(
    n_points: int, shape: tuple[int, int], rng: np.random.Generator, *, margin_px: float = 20.0
) -> np.ndarray:
    """Scan points drawn uniformly over the sensor, ``margin_px`` away from its edges.

    Parameters
    ----------
    n_points : int
    shape : (rows, cols)
    rng : numpy.random.Generator
    margin_px : float

    Returns
    -------
    (n_points, 2) ndarray of float64
        (x, y) in pixels.
    """
    rows, cols = shape
    if n_points < 1:
        raise DedkitError(f"a scan needs at least one point, got {n_points}")
    margin = min(float(margin_px), 0.25 * min(rows, cols))
    x = rng.uniform(margin, cols - margin, n_points)
    y = rng.uniform(margin, rows - margin, n_points)
    return np.column_stack([x, y])


def _centre(pattern: BeamPattern, shape) -> tuple[float, float]:
    rows, cols = shape
    return pattern.centre_px if pattern.centre_px is not None else (cols / 2.0, rows / 2.0)


def _check_flux_value(flux: float) -> float:
    try:
        flux = float(flux)
    except (TypeError, ValueError):
        raise DedkitError(f"flux must be a number of electrons per frame, got {flux!r}") from None
    if not (math.isfinite(flux) and flux > 0):
        raise DedkitError(f"flux must be a positive number of electrons per frame, got {flux}")
    return flux


def sample_arrivals(
    pattern: BeamPattern,
    n_frames: int,
    flux: float,
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    first_frame: int = 0,
) -> Arrivals:
    """Draw the electrons of ``n_frames`` frames: Poisson counts, then entry points.

    Parameters
    ----------
    pattern : BeamPattern
    n_frames : int
    flux : float
        Mean electrons per frame.
    shape : (rows, cols)
        Sensor in pixels.
    rng : numpy.random.Generator
    first_frame : int
        Run frame index of the first frame (sets the scan position).

    Returns
    -------
    Arrivals
        Sorted by frame; frame indices from 0 (relative to ``first_frame``).
    """
    flux = _check_flux_value(flux)
    rows, cols = (int(v) for v in shape)
    if pattern.kind == "specimen":
        return _specimen_arrivals(pattern, int(n_frames), flux, (rows, cols), rng, first_frame)
    counts = rng.poisson(flux, int(n_frames))
    frame = np.repeat(np.arange(int(n_frames), dtype=np.int64), counts)
    m = len(frame)
    if pattern.kind == "flat":
        x = rng.uniform(0.0, cols, m)
        y = rng.uniform(0.0, rows, m)
    elif pattern.kind == "image":
        h, w = pattern.image.shape
        u, v = _image_points(pattern.image, m, rng)
        x = u * (cols / w)
        y = v * (rows / h)
    else:
        if pattern.kind == "spot":
            cx, cy = _centre(pattern, shape)
            centre_x = np.full(m, cx)
            centre_y = np.full(m, cy)
        else:
            point = ((frame + int(first_frame)) // int(pattern.dwell_frames)) % len(
                pattern.points_px
            )
            centre_x = pattern.points_px[point, 0]
            centre_y = pattern.points_px[point, 1]
        x = centre_x + pattern.sigma_px * rng.standard_normal(m)
        y = centre_y + pattern.sigma_px * rng.standard_normal(m)
    inside = (x >= 0) & (x < cols) & (y >= 0) & (y < rows)
    return Arrivals(frame=frame[inside], x_px=x[inside], y_px=y[inside])


def _image_points(image: np.ndarray, m: int, rng: np.random.Generator):
    # m points drawn from an intensity image: a pixel with probability proportional to
    # its value, then uniform inside it; (x, y) in image pixels, column x, row y
    cdf = np.cumsum(image.ravel())
    index = np.searchsorted(cdf, rng.uniform(0.0, cdf[-1], m), side="right")
    i, j = np.divmod(np.minimum(index, image.size - 1), image.shape[1])
    return j + rng.uniform(0.0, 1.0, m), i + rng.uniform(0.0, 1.0, m)


def drift_trajectory(n_frames: int, path_px: float, rng: np.random.Generator) -> np.ndarray:
    """A specimen's drift over a run: a smooth, gently curving track of length ``path_px``.

    Stage and beam-induced drift over a run of thousands of frames: fastest at the start
    and slowing (speed falling to a third by the end), its heading turning by 20-60 degrees.

    Parameters
    ----------
    n_frames : int
    path_px : float
        Path length in sensor pixels.
    rng : numpy.random.Generator

    Returns
    -------
    (n_frames, 2) ndarray
        (x, y) in sensor pixels, starting at (0, 0).

    Examples
    --------
    >>> import numpy as np
    >>> drift = drift_trajectory(1000, 3.0, np.random.default_rng(1))
    >>> drift.shape, drift[0].tolist()
    ((1000, 2), [0.0, 0.0])
    >>> round(float(np.hypot(*np.diff(drift, axis=0).T).sum()), 6)
    3.0
    """
    n = int(n_frames)
    if n < 1:
        raise DedkitError(f"a drift needs at least one frame, got {n_frames}")
    path = float(path_px)
    if not (math.isfinite(path) and path >= 0):
        raise DedkitError(f"the drift must be a number of pixels >= 0, got {path_px}")
    if n < 2 or path == 0:
        return np.zeros((n, 2))
    t = np.linspace(0.0, 1.0, n)
    speed = 1.0 - (2.0 / 3.0) * t
    heading = rng.uniform(0, 2 * np.pi) + rng.choice((-1, 1)) * np.deg2rad(rng.uniform(20, 60)) * t
    mid_speed = 0.5 * (speed[1:] + speed[:-1])
    mid_heading = 0.5 * (heading[1:] + heading[:-1])
    steps = mid_speed[:, None] * np.stack([np.cos(mid_heading), np.sin(mid_heading)], axis=1)
    steps *= path / np.hypot(steps[:, 0], steps[:, 1]).sum()
    return np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def _specimen_arrivals(pattern, n_frames, flux, shape, rng, first_frame) -> Arrivals:
    pattern.check_covers(shape)
    rows, cols = shape
    image = pattern.image
    h, w = image.shape
    step = pattern.image_pixel_px
    # electrons over the whole image, then those landing on the sensor: the flux is the
    # sensor's at the image's mean intensity
    counts = rng.poisson(flux * (h * w * step * step) / (rows * cols), n_frames)
    frame = np.repeat(np.arange(n_frames, dtype=np.int64), counts)
    m = len(frame)
    u, v = _image_points(image, m, rng)
    x0, y0 = pattern.specimen_origin_px(shape)
    drift = pattern.drift_at(frame + int(first_frame))
    x = x0 + u * step + drift[:, 0]
    y = y0 + v * step + drift[:, 1]
    inside = (x >= 0) & (x < cols) & (y >= 0) & (y < rows)
    return Arrivals(frame=frame[inside], x_px=x[inside], y_px=y[inside])


def _spot_fraction(cx: float, cy: float, sigma: float, rows: int, cols: int) -> np.ndarray:
    # fraction of a Gaussian spot landing in each pixel (erf products)
    if sigma <= 0:
        out = np.zeros((rows, cols))
        c, r = int(math.floor(cx)), int(math.floor(cy))
        if 0 <= r < rows and 0 <= c < cols:
            out[r, c] = 1.0
        return out
    # imported here, not with the module: the command line reads this module's defaults
    # for its help text and should not pay for scipy's import (most of a second)
    from scipy.special import erf

    s = math.sqrt(2.0) * sigma
    fx = np.diff(0.5 * erf((np.arange(cols + 1) - cx) / s))
    fy = np.diff(0.5 * erf((np.arange(rows + 1) - cy) / s))
    return np.outer(fy, fx)


def expected_energy_map(
    pattern: BeamPattern, flux: float, energy_keV: float, shape: tuple[int, int]
) -> np.ndarray:
    """Mean beam energy arriving on each pixel per frame (keV), an upper bound of the
    deposited energy (backscattered electrons take some away and tracks spread it).

    Parameters
    ----------
    pattern : BeamPattern
    flux : float
    energy_keV : float
    shape : (rows, cols)

    Returns
    -------
    (rows, cols) ndarray of float64
    """
    flux = _check_flux_value(flux)
    rows, cols = (int(v) for v in shape)
    if pattern.kind == "flat":
        fraction = np.full((rows, cols), 1.0 / (rows * cols))
    elif pattern.kind == "spot":
        cx, cy = _centre(pattern, shape)
        fraction = _spot_fraction(cx, cy, pattern.sigma_px, rows, cols)
    elif pattern.kind == "scan":
        fraction = np.zeros((rows, cols))
        for x, y in pattern.points_px:
            fraction += _spot_fraction(x, y, pattern.sigma_px, rows, cols)
        fraction /= len(pattern.points_px)
    elif pattern.kind == "specimen":
        pattern.check_covers(shape)
        # the image at rest (the drift moves it by a few pixels): intensity of the image
        # pixel under each sensor pixel centre, relative to the image's mean
        image = pattern.image / pattern.image.mean()
        h, w = image.shape
        x0, y0 = pattern.specimen_origin_px(shape)
        step = pattern.image_pixel_px
        i = np.clip(((np.arange(rows) + 0.5 - y0) / step).astype(int), 0, h - 1)
        j = np.clip(((np.arange(cols) + 0.5 - x0) / step).astype(int), 0, w - 1)
        fraction = image[np.ix_(i, j)] / (rows * cols)
    else:
        image = pattern.image / pattern.image.sum()
        h, w = image.shape
        # sensor pixel centres looked up in the image (nearest image pixel)
        i = np.minimum(((np.arange(rows) + 0.5) * h / rows).astype(int), h - 1)
        j = np.minimum(((np.arange(cols) + 0.5) * w / cols).astype(int), w - 1)
        fraction = image[np.ix_(i, j)] * (h * w) / (rows * cols)
    return flux * float(energy_keV) * fraction


def check_flux(
    pattern: BeamPattern,
    flux: float,
    energy_keV: float,
    shape: tuple[int, int],
    range_keV: float,
) -> list[str]:
    """Refuse a flux that saturates every pixel; return warnings for a partly saturating one.

    Parameters
    ----------
    pattern : BeamPattern
    flux : float
        Mean electrons per frame.
    energy_keV : float
        Beam energy.
    shape : (rows, cols)
    range_keV : float
        Charge a pixel holds before its ADC saturates.

    Returns
    -------
    list of str
        Warnings (empty unless the brightest pixels receive on average more than twice
        ``range_keV`` per frame).

    Raises
    ------
    DedkitError
        When even the least illuminated pixel receives on average more than
        ``range_keV`` per frame.
    """
    expected = expected_energy_map(pattern, flux, energy_keV, shape)
    lowest = float(expected.min())
    if lowest >= range_keV:
        rows, cols = shape
        limit = flux * range_keV / lowest
        raise DedkitError(
            f"a flux of {flux:g} electrons/frame saturates every pixel: each receives "
            f"{lowest:.0f} keV per frame on average, above the ADC range of "
            f"{range_keV:.0f} keV; use a flux below {limit:.0f} electrons/frame "
            f"on {cols} x {rows} pixels"
        )
    highest = float(expected.max())
    if highest >= 2 * range_keV:
        # one electron spreads its energy over several pixels, so only a mean of more
        # than twice the range makes saturation and pile-up in the brightest pixels likely
        return [
            f"the brightest pixels receive {highest:.0f} keV per frame on average, over "
            f"twice the ADC range of {range_keV:.0f} keV: expect saturated pixels and "
            "piled-up electrons there"
        ]
    return []
