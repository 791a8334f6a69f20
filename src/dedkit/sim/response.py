"""MÖNCH detector response: charge clouds to pixel charges, noise, pedestal, gain, ADC.

- **Pixel integration.** Each cloud is a 2-D Gaussian; the charge pixel (r, c) collects
  is its integral over the pixel, a product of erf differences in x and y, computed
  exactly for every pixel within ``reach`` sigmas of the centre (the charge beyond,
  below 6e-7 of the cloud at 5 sigma, is dropped). Charge arriving outside the sensor is
  lost. One numba kernel runs over all clouds (no Python per cloud or per pixel).
- **Noise.** Electronic noise, Gaussian, 0.18 keV rms per pixel by default (the paper's
  low-gain mode), independent between pixels and frames.
- **Pedestal, gain and ADC.** ``ADU = round(pedestal + gain * (charge + noise))``,
  clipped to the 14-bit range 0..16383 (saturation). Defaults (MÖNCH low gain, the
  paper: "a dynamic range of 100 keV", 14-bit ADC): pedestals 1500 ADU with 150 ADU rms
  between pixels, gain 145 ADU/keV with 3 % rms between pixels, so the range above
  the pedestal, (16383 - 1500) / 145 = 103 keV, is about 100 keV for most pixels (97 to
  108 keV within two standard deviations), and the noise is 26 ADU. The real chip's
  numbers differ from pixel to pixel and chip to chip; these are round values with the
  paper's range, not a calibration of a particular MÖNCH.

Frames are (n, rows, cols) arrays in readout order; positions are in pixel units, pixel
(r, c) covering x in [c, c + 1), y in [r, r + 1) (as in :mod:`dedkit.hpd`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from dedkit.errors import DedkitError

__all__ = [
    "ADC_MAX",
    "DetectorResponse",
    "CalibrationMaps",
    "add_noise",
    "adc_range_keV",
    "calibrate_frames",
    "dark_frames",
    "digitize",
    "integrate_clouds",
    "make_calibration_maps",
]

#: Largest value of MÖNCH's 14-bit ADC
ADC_MAX = 2**14 - 1


@dataclass(frozen=True)
class DetectorResponse:
    """Electronics of the simulated detector (defaults: MÖNCH 03 low gain, the paper).

    Attributes
    ----------
    noise_keV : float
        Electronic noise per pixel, rms (0.18 keV).
    gain_adu_per_keV : float
        Mean conversion gain (145 ADU/keV: about 100 keV up to the 14-bit limit).
    gain_spread : float
        Relative rms of the gain between pixels (0.03).
    pedestal_adu : float
        Mean pedestal (1500 ADU).
    pedestal_spread_adu : float
        Rms of the pedestal between pixels (150 ADU).
    adc_bits : int
        ADC resolution (14).
    """

    noise_keV: float = 0.18
    gain_adu_per_keV: float = 145.0
    gain_spread: float = 0.03
    pedestal_adu: float = 1500.0
    pedestal_spread_adu: float = 150.0
    adc_bits: int = 14

    def __post_init__(self):
        if not (math.isfinite(self.noise_keV) and self.noise_keV >= 0):
            raise DedkitError(f"noise must be a number >= 0 keV, got {self.noise_keV}")
        if not (math.isfinite(self.gain_adu_per_keV) and self.gain_adu_per_keV > 0):
            raise DedkitError(f"gain must be a positive number, got {self.gain_adu_per_keV}")
        for name in ("gain_spread", "pedestal_spread_adu", "pedestal_adu"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DedkitError(f"{name} must be a number >= 0, got {value}")
        if self.gain_spread >= 0.3:
            raise DedkitError(f"gain_spread must be below 0.3, got {self.gain_spread}")
        if not (isinstance(self.adc_bits, int | np.integer) and 8 <= self.adc_bits <= 16):
            raise DedkitError(f"adc_bits must be 8..16, got {self.adc_bits}")
        if self.pedestal_adu >= self.adc_max:
            raise DedkitError(
                f"pedestal {self.pedestal_adu} ADU leaves no range below {self.adc_max}"
            )

    @property
    def adc_max(self) -> int:
        return 2 ** int(self.adc_bits) - 1

    def to_dict(self) -> dict:
        return asdict(self)


def adc_range_keV(response: DetectorResponse) -> float:
    """Charge that takes a pixel of mean pedestal and gain to the top of the ADC (keV)."""
    return (response.adc_max - response.pedestal_adu) / response.gain_adu_per_keV


@dataclass
class CalibrationMaps:
    """Per-pixel pedestal (ADU) and gain (ADU per keV) of a simulated detector.

    Attributes
    ----------
    pedestal_adu : (rows, cols) float32
    gain_adu_per_keV : (rows, cols) float32
    """

    pedestal_adu: np.ndarray
    gain_adu_per_keV: np.ndarray

    @property
    def gain_keV_per_adu(self) -> np.ndarray:
        """The map ``dedkit hpd clusters --gain`` takes (keV per ADU)."""
        return (1.0 / self.gain_adu_per_keV).astype(np.float32)


def make_calibration_maps(
    shape: tuple[int, int], response: DetectorResponse, rng: np.random.Generator
) -> CalibrationMaps:
    """Draw the pedestal and gain of every pixel (normal, spreads of ``response``).

    Gains are kept within 4 standard deviations (never near 0); pedestals are clipped to
    [0, adc_max].

    Parameters
    ----------
    shape : (rows, cols)
    response : DetectorResponse
    rng : numpy.random.Generator

    Returns
    -------
    CalibrationMaps
    """
    rows, cols = (int(v) for v in shape)
    pedestal = response.pedestal_adu + response.pedestal_spread_adu * rng.standard_normal(
        (rows, cols)
    )
    relative = np.clip(rng.standard_normal((rows, cols)), -4.0, 4.0)
    gain = response.gain_adu_per_keV * (1.0 + response.gain_spread * relative)
    return CalibrationMaps(
        pedestal_adu=np.clip(pedestal, 0, response.adc_max).astype(np.float32),
        gain_adu_per_keV=gain.astype(np.float32),
    )


@functools.cache
def _compiled_kernel():
    """:func:`_integrate_kernel` compiled by numba (or loaded from numba's cache).

    numba is imported here, at the first use, rather than with the module: the command
    line reads :class:`DetectorResponse`'s defaults for its help text and should not pay
    for numba's import (about a quarter of a second) on every command.
    """
    import numba

    return numba.njit(cache=True, nogil=True)(_integrate_kernel)


def _integrate_kernel(frame, x, y, sigma, charge, reach, out):
    # plain Python as written; run compiled (_compiled_kernel)
    n_frames, rows, cols = out.shape
    max_sigma = 0.0
    for i in range(len(x)):
        if sigma[i] > max_sigma:
            max_sigma = sigma[i]
    width = int(2.0 * reach * max_sigma) + 3
    weights_x = np.empty(width, dtype=np.float64)
    weights_y = np.empty(width, dtype=np.float64)
    for i in range(len(x)):
        q = charge[i]
        f = frame[i]
        if not q > 0.0 or f < 0 or f >= n_frames:
            continue
        xi = x[i]
        yi = y[i]
        s = sigma[i]
        if not (math.isfinite(xi) and math.isfinite(yi)):
            continue
        if not s > 1e-6:
            c = int(math.floor(xi))
            r = int(math.floor(yi))
            if 0 <= r < rows and 0 <= c < cols:
                out[f, r, c] += q
            continue
        c0 = max(int(math.floor(xi - reach * s)), 0)
        c1 = min(int(math.floor(xi + reach * s)), cols - 1)
        r0 = max(int(math.floor(yi - reach * s)), 0)
        r1 = min(int(math.floor(yi + reach * s)), rows - 1)
        if c0 > c1 or r0 > r1:
            continue
        scale = 1.0 / (math.sqrt(2.0) * s)
        previous = math.erf((c0 - xi) * scale)
        for c in range(c0, c1 + 1):
            following = math.erf((c + 1 - xi) * scale)
            weights_x[c - c0] = 0.5 * (following - previous)
            previous = following
        previous = math.erf((r0 - yi) * scale)
        for r in range(r0, r1 + 1):
            following = math.erf((r + 1 - yi) * scale)
            weights_y[r - r0] = 0.5 * (following - previous)
            previous = following
        for r in range(r0, r1 + 1):
            wy = q * weights_y[r - r0]
            for c in range(c0, c1 + 1):
                out[f, r, c] += wy * weights_x[c - c0]


def integrate_clouds(
    frame_index,
    x_px,
    y_px,
    sigma_px,
    charge_keV,
    shape: tuple[int, int, int],
    *,
    reach: float = 5.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Charge every pixel collects from Gaussian clouds (erf products, exact per pixel).

    Parameters
    ----------
    frame_index : (n,) int
        Frame of each cloud (clouds with an index outside the frames are ignored).
    x_px, y_px : (n,) float
        Cloud centres in pixel units (pixel (r, c) covers [c, c+1) x [r, r+1)).
    sigma_px : (n,) float
        Gaussian sigma per axis in pixels (0: all charge in the centre's pixel).
    charge_keV : (n,) float
        Charge of each cloud.
    shape : (n_frames, rows, cols)
    reach : float
        Half-width of the window of pixels integrated, in sigmas.
    out : (n_frames, rows, cols) float32, optional
        Frames to add to (default new zero frames).

    Returns
    -------
    (n_frames, rows, cols) ndarray of float32
        Collected charge in keV.
    """
    n_frames, rows, cols = (int(v) for v in shape)
    if out is None:
        out = np.zeros((n_frames, rows, cols), dtype=np.float32)
    elif out.shape != (n_frames, rows, cols) or out.dtype != np.float32:
        raise DedkitError(f"out must be float32 of shape {(n_frames, rows, cols)}")
    if not (math.isfinite(reach) and reach > 0):
        raise DedkitError(f"reach must be a positive number of sigmas, got {reach}")
    arrays = [
        np.ascontiguousarray(frame_index, dtype=np.int64),
        np.ascontiguousarray(x_px, dtype=np.float64),
        np.ascontiguousarray(y_px, dtype=np.float64),
        np.ascontiguousarray(sigma_px, dtype=np.float64),
        np.ascontiguousarray(charge_keV, dtype=np.float64),
    ]
    n = len(arrays[0])
    if any(a.shape != (n,) for a in arrays):
        raise DedkitError("frame_index, x, y, sigma and charge must be 1-D of equal length")
    if n:
        _compiled_kernel()(*arrays, float(reach), out)
    return out


def add_noise(frames_keV: np.ndarray, noise_keV, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian electronic noise in place (float32 frames) and return the frames.

    Parameters
    ----------
    frames_keV : (..., rows, cols) float32
    noise_keV : float or (rows, cols) array
        Rms per pixel.
    rng : numpy.random.Generator
    """
    noise = np.asarray(noise_keV, dtype=np.float32)
    if np.any(noise < 0) or not np.all(np.isfinite(noise)):
        raise DedkitError("noise must be finite and >= 0 keV")
    if noise.ndim == 0 and float(noise) == 0.0:
        return frames_keV
    draw = rng.standard_normal(frames_keV.shape, dtype=np.float32)
    draw *= noise
    frames_keV += draw
    return frames_keV


def digitize(
    frames_keV: np.ndarray,
    maps: CalibrationMaps,
    response: DetectorResponse,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """ADC values of frames: ``round(pedestal + gain * (charge + noise))`` in 0..adc_max.

    Parameters
    ----------
    frames_keV : (n, rows, cols) float
        Collected charge (noise not yet added).
    maps : CalibrationMaps
        Pedestal and gain per pixel, the frames' shape.
    response : DetectorResponse
        Noise and ADC range.
    rng : numpy.random.Generator, optional
        Source of the noise; None adds no noise.

    Returns
    -------
    (n, rows, cols) ndarray of uint16
    """
    frames = np.array(frames_keV, dtype=np.float32)  # a copy: noise is added in place
    if frames.shape[1:] != maps.pedestal_adu.shape:
        raise DedkitError(
            f"frames of shape {frames.shape[1:]} do not match the calibration maps "
            f"{maps.pedestal_adu.shape}"
        )
    if rng is not None:
        add_noise(frames, response.noise_keV, rng)
    frames *= maps.gain_adu_per_keV
    frames += maps.pedestal_adu
    np.rint(frames, out=frames)
    np.clip(frames, 0, response.adc_max, out=frames)
    return frames.astype(np.uint16)


def dark_frames(
    n: int,
    maps: CalibrationMaps,
    response: DetectorResponse,
    rng: np.random.Generator,
) -> np.ndarray:
    """Frames with no beam (pedestal and noise only), uint16 ADC values.

    Parameters
    ----------
    n : int
    maps : CalibrationMaps
    response : DetectorResponse
    rng : numpy.random.Generator

    Returns
    -------
    (n, rows, cols) ndarray of uint16
    """
    if n < 1:
        raise DedkitError(f"the number of dark frames must be at least 1, got {n}")
    zeros = np.zeros((int(n), *maps.pedestal_adu.shape), dtype=np.float32)
    return digitize(zeros, maps, response, rng)


def calibrate_frames(adc: np.ndarray, maps: CalibrationMaps) -> np.ndarray:
    """Back to keV with the true pedestal and gain: ``(ADU - pedestal) / gain`` (float32).

    Parameters
    ----------
    adc : (n, rows, cols) integer array
    maps : CalibrationMaps

    Returns
    -------
    (n, rows, cols) ndarray of float32
    """
    out = np.asarray(adc, dtype=np.float32) - maps.pedestal_adu
    out /= maps.gain_adu_per_keV
    return out
