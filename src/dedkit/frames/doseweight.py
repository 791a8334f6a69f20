"""Dose weighting: the exposure filter of Grant & Grigorieff (2015) for frame series.

Radiation damage fades the specimen's signal at spatial frequency ``k`` (1/Å) as
``exp(-N / (2 Ne(k)))`` after an exposure of ``N`` e/Å², with the critical exposure
(Grant & Grigorieff 2015, eLife 4:e06980, eq. 3, fitted at 300 kV)::

    Ne(k) = a * k**b + c,    a = 0.245, b = -1.665, c = 2.81 (e/Å²)

Frame ``i`` of a series is weighted at each ``k`` by its fading ``q_i(k)``, the weights
normalised so that they add up to the number of frames at every ``k``
(``sum_i w_i(k) = n``): the weighted sum keeps the plain sum's signal scale, and at
``k = 0`` every weight is 1.

Decisions (see ``docs/align-formats.md``):

- **Exposure of a frame**: the cumulative exposure at the middle of the frame,
  ``N_i = pre_dose + D_0 + ... + D_(i-1) + D_i / 2``. RELION's own motion correction
  takes the exposure at the end of the frame; with equal frame doses the two give the
  same normalised weights (the factor ``exp(-D / (4 Ne))`` is common to all frames and
  cancels), with variable doses the middle is the better estimate of the frame's mean
  damage. For the same reason ``pre_dose`` does not change normalised weights; it is kept
  for the record (and for un-normalised uses).
- **Voltage**: ``Ne`` is multiplied by ``f(V) = (beta²(V) / beta²(300 kV)) ** p``, the
  ratio of the electrons' squared speeds (the inelastic cross-section, which does the
  damage, goes as ``1 / beta²``), with ``p = 1.010`` chosen so that ``f(200 kV) = 0.8``
  exactly, Grant & Grigorieff's published factor (plain ``beta²`` gives 0.802).
  ``f(120 kV) = 0.568``, ``f(100 kV) = 0.495``; RELION uses 0.64 at 100 kV (its 0.8 per
  100 kV rule, with no stated basis) and refuses other voltages. Voltages outside
  60-400 kV are refused.

The weights of a frame are looked up, not computed: :class:`DoseWeights` tabulates them
once over ``|k|`` (bins fine enough that the lookup differs from the exact formula by
less than 1e-3) and keeps the bin index of every element of the ``rfft2`` half-plane,
so :meth:`DoseWeights.frame` is one gather.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from dedkit.errors import DedkitError

__all__ = [
    "CRITICAL_EXPOSURE_PARAMETERS",
    "DoseWeights",
    "critical_exposure",
    "exposure_weights",
    "voltage_factor",
]

#: Grant & Grigorieff (2015) eq. 3 at 300 kV: Ne(k) = a * k**b + c, k in 1/Å, Ne in e/Å²
CRITICAL_EXPOSURE_PARAMETERS = {"a": 0.245, "b": -1.665, "c": 2.81}
#: the voltages (kV) the scaling of the critical exposure is accepted for
VOLTAGE_RANGE = (60.0, 400.0)
#: the largest difference allowed between a looked-up weight and the exact formula
LOOKUP_TOLERANCE = 1e-3

_ELECTRON_REST_ENERGY_KEV = 510.99895


def _beta_squared(voltage_kv: float) -> float:
    gamma = 1.0 + voltage_kv / _ELECTRON_REST_ENERGY_KEV
    return 1.0 - 1.0 / (gamma * gamma)


# the exponent that makes the speed-squared ratio give Grant & Grigorieff's 0.8 at 200 kV
_VOLTAGE_EXPONENT = math.log(0.8) / math.log(_beta_squared(200.0) / _beta_squared(300.0))


def voltage_factor(voltage_kv: float = 300.0) -> float:
    """The factor on the 300 kV critical exposure at another voltage.

    ``(beta²(V) / beta²(300 kV)) ** 1.010``: 1 at 300 kV, 0.8 at 200 kV (Grant &
    Grigorieff 2015), 0.568 at 120 kV, 0.495 at 100 kV.

    Parameters
    ----------
    voltage_kv : float
        Accelerating voltage, 60 to 400 kV.

    Raises
    ------
    DedkitError
        For a voltage outside 60-400 kV or not a number.

    Examples
    --------
    >>> voltage_factor(300), voltage_factor(200)
    (1.0, 0.8)
    >>> round(voltage_factor(100), 3)
    0.495
    """
    try:
        voltage = float(voltage_kv)
    except (TypeError, ValueError):
        raise DedkitError(f"voltage must be a number of kV, not {voltage_kv!r}") from None
    low, high = VOLTAGE_RANGE
    if not low <= voltage <= high:
        raise DedkitError(
            f"voltage {voltage:g} kV is outside {low:g}-{high:g} kV, where the critical "
            "exposure of Grant & Grigorieff (2015) can be scaled"
        )
    if voltage == 300.0:
        return 1.0
    if voltage == 200.0:
        return 0.8
    return float((_beta_squared(voltage) / _beta_squared(300.0)) ** _VOLTAGE_EXPONENT)


def critical_exposure(k, voltage_kv: float = 300.0) -> np.ndarray:
    """Critical exposure ``Ne(k)`` (e/Å²) of Grant & Grigorieff (2015).

    ``Ne(k) = (0.245 * k**-1.665 + 2.81) * f(V)`` with ``f`` from
    :func:`voltage_factor`; infinite at ``k = 0`` (the mean is not damaged).

    Parameters
    ----------
    k : float or array
        Spatial frequency in 1/Å (its magnitude is used).
    voltage_kv : float
        Accelerating voltage in kV.

    Returns
    -------
    numpy.ndarray
        float64, the shape of ``k``.

    Examples
    --------
    >>> float(critical_exposure(0.25).round(2))  # 4 Å at 300 kV
    5.27
    >>> float(critical_exposure(0.25, 200).round(2))
    4.22
    """
    factor = voltage_factor(voltage_kv)
    p = CRITICAL_EXPOSURE_PARAMETERS
    k = np.abs(np.asarray(k, dtype=np.float64))
    with np.errstate(divide="ignore"):
        return (p["a"] * k ** p["b"] + p["c"]) * factor


def _check_doses(doses) -> np.ndarray:
    doses = np.asarray(doses, dtype=np.float64)
    if doses.ndim != 1 or doses.size == 0:
        raise DedkitError(
            f"frame doses must be a 1-D list of one dose per frame, not shape {doses.shape}"
        )
    if not np.all(np.isfinite(doses)) or np.any(doses < 0):
        raise DedkitError("frame doses must be finite and not negative (e/Å² per frame)")
    if not doses.sum() > 0:
        raise DedkitError("the frames' doses add up to 0 e/Å²: nothing to weight by")
    return doses


def _check_pre_dose(pre_dose) -> float:
    pre = float(pre_dose)
    if not math.isfinite(pre) or pre < 0:
        raise DedkitError(f"pre-dose must be finite and not negative, not {pre_dose!r}")
    return pre


def _mid_frame_exposures(doses: np.ndarray, pre_dose: float) -> np.ndarray:
    return pre_dose + np.cumsum(doses) - doses / 2.0


def _normalised(exposures: np.ndarray, ne: np.ndarray) -> np.ndarray:
    # log-domain normalisation: at high k with hundreds of e/Å² every exp() underflows,
    # while the ratios stay well defined
    with np.errstate(invalid="ignore", divide="ignore"):
        log_q = -exposures.reshape((-1,) + (1,) * ne.ndim) / (2.0 * ne)
    log_q = np.where(np.isfinite(ne), log_q, 0.0)
    log_q -= log_q.max(axis=0)
    q = np.exp(log_q)
    return exposures.size * q / q.sum(axis=0)


def exposure_weights(k, doses, *, pre_dose: float = 0.0, voltage_kv: float = 300.0):
    """Normalised dose weights of every frame at spatial frequencies ``k``, exactly.

    ``w_i(k) = n q_i(k) / sum_j q_j(k)`` with ``q_i = exp(-N_i / (2 Ne(k)))`` and ``N_i``
    the exposure at the middle of frame ``i``.

    Parameters
    ----------
    k : float or array
        Spatial frequency in 1/Å.
    doses : (n,) array
        Dose of each frame in e/Å² (not cumulative).
    pre_dose : float
        Exposure before the first frame, e/Å².
    voltage_kv : float
        Accelerating voltage in kV.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,) + k.shape``; the weights add up to ``n`` at every ``k``.

    Examples
    --------
    >>> w = exposure_weights([0.0, 0.25], [1.0, 1.0, 1.0])
    >>> w[:, 0]  # at k = 0 every frame counts fully
    array([1., 1., 1.])
    >>> w[:, 1].round(3), round(float(w[:, 1].sum()), 12)
    (array([1.096, 0.997, 0.907]), 3.0)
    """
    doses = _check_doses(doses)
    exposures = _mid_frame_exposures(doses, _check_pre_dose(pre_dose))
    return _normalised(exposures, critical_exposure(k, voltage_kv))


class DoseWeights:
    """Dose weights of a frame series, ready to multiply the frames' ``rfft2``.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the real-space frames.
    pixel_size : float
        Å per pixel of those frames.
    doses : (n,) array
        Dose of each frame in e/Å² (not cumulative).
    pre_dose : float
        Exposure before the first frame, e/Å² (does not change normalised weights).
    voltage_kv : float
        Accelerating voltage in kV (see :func:`voltage_factor`).

    Attributes
    ----------
    n_frames : int
    shape : tuple of int
        ``(ny, nx)`` of the real-space frames.
    half_shape : tuple of int
        ``(ny, nx // 2 + 1)``, the shape :meth:`frame` returns.
    n_bins : int
        Bins of the ``|k|`` table.
    max_error : float
        Largest difference between a looked-up and an exact weight, estimated at the
        middle between bin centres (below :data:`LOOKUP_TOLERANCE`).
    nbytes : int
        Memory held: the bin-index image plus the table.

    Notes
    -----
    The table is uniform in ``|k|`` (1/pixel) from 0 to the corner of the half-plane,
    each element of the half-plane takes the nearest bin; bin 0 is exactly ``k = 0``
    (weight 1). The bins are refined (doubled) until the error at the middle between
    two bin centres, where the nearest-bin lookup is worst for a smooth curve, is below
    half of :data:`LOOKUP_TOLERANCE`.

    Examples
    --------
    >>> dw = DoseWeights((64, 48), 1.0, [1.5] * 10)
    >>> w = dw.frame(0)
    >>> w.shape, w.dtype, float(w[0, 0])
    ((64, 25), dtype('float32'), 1.0)
    >>> total = sum(dw.frame(i) for i in range(dw.n_frames))
    >>> bool(abs(total - 10).max() < 1e-4)
    True
    >>> bool(dw.frame(0)[32, 24] > dw.frame(9)[32, 24])  # early frames keep high k
    True
    """

    def __init__(self, shape, pixel_size, doses, *, pre_dose=0.0, voltage_kv=300.0):
        try:
            ny, nx = (int(s) for s in shape)
        except (TypeError, ValueError):
            raise DedkitError(f"frame shape must be (ny, nx), not {shape!r}") from None
        if ny < 1 or nx < 1:
            raise DedkitError(f"frame shape must be positive, not {shape!r}")
        try:
            pixel = float(pixel_size)
        except (TypeError, ValueError):
            raise DedkitError(f"pixel size must be a number of Å, not {pixel_size!r}") from None
        if not (math.isfinite(pixel) and pixel > 0):
            raise DedkitError(f"pixel size must be positive (Å per pixel), not {pixel_size!r}")
        self.shape = (ny, nx)
        self.half_shape = (ny, nx // 2 + 1)
        self.pixel_size = pixel
        self.doses = _check_doses(doses)
        self.pre_dose = _check_pre_dose(pre_dose)
        self.voltage_kv = float(voltage_kv)
        self.n_frames = int(self.doses.size)
        self.exposures = _mid_frame_exposures(self.doses, self.pre_dose)
        voltage_factor(self.voltage_kv)  # refuse a voltage before any work

        ky = scipy.fft.fftfreq(ny)
        kx = scipy.fft.rfftfreq(nx)
        k_max = float(np.hypot(np.abs(ky).max(), kx.max()))
        self._step, self._table, self.max_error = self._build_table(k_max)
        self.n_bins = int(self._table.shape[1])
        self._index = self._bin_index(ky, kx)

    def resized(self, shape) -> DoseWeights:
        """The same filters (pixel size, doses, voltage) for frames of another ``shape``,
        e.g. a frame padded to a fast FFT length.

        Examples
        --------
        >>> DoseWeights((64, 48), 1.0, [1.5] * 10).resized((64, 64)).frame(0).shape
        (64, 33)
        """
        return DoseWeights(
            shape, self.pixel_size, self.doses, pre_dose=self.pre_dose, voltage_kv=self.voltage_kv
        )

    def _weights_at(self, k_pixel: np.ndarray) -> np.ndarray:
        ne = critical_exposure(k_pixel / self.pixel_size, self.voltage_kv)
        return _normalised(self.exposures, ne)

    def _build_table(self, k_max: float):
        # start near the sampling of the half-plane's radii and refine until the lookup
        # is accurate enough; a frame series needs a few thousand bins at most
        n_bins = max(256, int(2 ** math.ceil(math.log2(max(self.shape)))))
        while True:
            step = k_max / (n_bins - 1) if k_max > 0 else 1.0
            centres = np.arange(n_bins) * step
            table = self._weights_at(centres)
            middles = self._weights_at(centres[:-1] + step / 2.0) if n_bins > 1 else table
            error = float(np.abs(middles - table[:, :-1]).max()) if n_bins > 1 else 0.0
            if error < LOOKUP_TOLERANCE / 2.0 or n_bins >= 1 << 22:
                return step, table.astype(np.float32), error
            # the nearest-bin error is proportional to the step: jump to about enough bins
            wanted = n_bins * error / (LOOKUP_TOLERANCE / 2.0) * 1.1
            n_bins = int(2 ** math.ceil(math.log2(max(2 * n_bins, wanted))))

    def _bin_index(self, ky: np.ndarray, kx: np.ndarray) -> np.ndarray:
        dtype = np.uint16 if self._table.shape[1] <= np.iinfo(np.uint16).max + 1 else np.uint32
        index = np.empty(self.half_shape, dtype=dtype)
        kx2 = (kx * kx)[None, :]
        # blocks of rows: a float64 radius image of a K3 frame would be 94 MB
        rows = max(1, (1 << 20) // max(1, kx.size))
        for start in range(0, ky.size, rows):
            k = np.sqrt(ky[start : start + rows, None] ** 2 + kx2)
            index[start : start + rows] = np.rint(k / self._step)
        return index

    @property
    def nbytes(self) -> int:
        return int(self._index.nbytes + self._table.nbytes)

    def table(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The tabulated weights of frame ``index``: ``(k in 1/Å, weights)``."""
        i = self._check_index(index)
        k = np.arange(self.n_bins) * self._step / self.pixel_size
        return k, self._table[i].copy()

    def _check_index(self, index) -> int:
        i = int(index)
        if not -self.n_frames <= i < self.n_frames:
            raise IndexError(f"frame {index} of {self.n_frames}")
        return i % self.n_frames

    def frame(self, index: int, out: np.ndarray | None = None) -> np.ndarray:
        """Weights of frame ``index`` over the ``rfft2`` half-plane.

        Parameters
        ----------
        index : int
            Frame, 0-based.
        out : numpy.ndarray, optional
            A float32 array of shape :attr:`half_shape` to fill (no allocation).

        Returns
        -------
        numpy.ndarray
            float32 ``(ny, nx // 2 + 1)``, the layout of ``scipy.fft.rfft2`` of a frame;
            over all frames the weights add up to ``n_frames`` at every element.
        """
        row = self._table[self._check_index(index)]
        # indices are in range by construction: 'clip' skips numpy's bounds check
        return np.take(row, self._index, out=out, mode="clip")

    def __repr__(self) -> str:
        return (
            f"DoseWeights(shape={self.shape}, pixel_size={self.pixel_size:g}, "
            f"n_frames={self.n_frames}, total_dose={float(self.doses.sum()):g}, "
            f"voltage_kv={self.voltage_kv:g})"
        )
