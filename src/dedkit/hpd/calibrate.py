"""Energy calibration of pedestal-subtracted signal: ADU to keV.

The gain is given in **keV per ADU**, as :func:`dedkit.io.calibration.read_gain_map`
returns it (the inverse of a pixel's response slope: e.g. about 0.05 keV/ADU for a
response of 20 ADU/keV), either one number for the detector or one per pixel, so that
``energy_keV = signal_ADU * gain``. A pixel with gain 0 (dead or uncalibrated) gives 0
keV. Gain maps are read from files in :mod:`dedkit.io`; here they are arrays.
"""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.tables import ClusterTable

__all__ = ["apply_gain", "check_gain", "clusters_to_kev"]


def check_gain(gain, frame_shape) -> np.ndarray:
    """Validate a gain (keV per ADU): a positive scalar or a (ny, nx) map.

    Parameters
    ----------
    gain : float or (ny, nx) array_like
        keV per ADU; 0 marks pixels without calibration in a map.
    frame_shape : (ny, nx)
        Checked against a map's shape.

    Returns
    -------
    ndarray of float32
        0-d for a scalar, else (ny, nx).
    """
    gain = np.asarray(gain)
    if gain.dtype.kind not in "uif":
        raise DedkitError(f"gain must be numbers (keV per ADU), got {gain.dtype}")
    gain = gain.astype(np.float32)
    if gain.ndim == 0:
        if not np.isfinite(gain) or gain <= 0:
            raise DedkitError(f"gain must be a positive number of keV per ADU, got {gain}")
        return gain
    if gain.shape != tuple(frame_shape):
        raise DedkitError(
            f"gain map of shape {gain.shape} does not fit frames of shape {tuple(frame_shape)}"
        )
    if not np.all(np.isfinite(gain)) or np.any(gain < 0):
        raise DedkitError("gain map must hold finite values >= 0 (keV per ADU)")
    return gain


def apply_gain(signal_adu, gain) -> np.ndarray:
    """Convert pedestal-subtracted frames from ADU to keV.

    Parameters
    ----------
    signal_adu : (..., ny, nx) array_like
        Frames after pedestal subtraction (ADU).
    gain : float or (ny, nx) array_like
        keV per ADU, one for all pixels or one per pixel (0: uncalibrated, gives 0).

    Returns
    -------
    ndarray of float32
        Energy in keV, the shape of ``signal_adu`` (which is not modified).
    """
    signal = np.asarray(signal_adu)
    if signal.ndim < 2 and np.ndim(gain) != 0:
        raise DedkitError("a gain map needs frames of at least 2 dimensions")
    gain = check_gain(gain, signal.shape[-2:] if np.ndim(gain) else ())
    return signal.astype(np.float32) * gain


def clusters_to_kev(table: ClusterTable, gain) -> ClusterTable:
    """Clusters in keV: each pixel times the gain of the detector pixel it covers.

    Parameters
    ----------
    table : ClusterTable
        Clusters in ADU, reference pixel at ``(x, y)``, centred in ``data``.
    gain : float or (ny, nx) array_like
        keV per ADU. Cluster pixels outside the map (outside the frame) give 0.

    Returns
    -------
    ClusterTable
        float32 data, ``units='keV'``; the other columns are shared with ``table``.
    """
    if table.units != "ADU":
        raise DedkitError(f"clusters are already in {table.units}")
    size_y, size_x = table.cluster_shape
    if np.ndim(gain) == 0:
        data = table.data.astype(np.float32) * check_gain(gain, ())
    else:
        gain = np.asarray(gain)
        gain = check_gain(gain, gain.shape[-2:])
        rows = table.y.astype(np.int64)[:, None] + np.arange(size_y) - size_y // 2
        cols = table.x.astype(np.int64)[:, None] + np.arange(size_x) - size_x // 2
        inside_rows = (rows >= 0) & (rows < gain.shape[0])
        inside_cols = (cols >= 0) & (cols < gain.shape[1])
        pixel_gain = gain[
            np.clip(rows, 0, gain.shape[0] - 1)[:, :, None],
            np.clip(cols, 0, gain.shape[1] - 1)[:, None, :],
        ]
        pixel_gain *= inside_rows[:, :, None] & inside_cols[:, None, :]
        data = table.data.astype(np.float32) * pixel_gain
    return ClusterTable(
        table.frame, table.x, table.y, data, "keV", table.features, dict(table.extra)
    )
