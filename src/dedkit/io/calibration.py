"""Detector calibration files: pedestal state (``PED.h5``) and per-pixel gain maps.

Arrays are in detector readout order (row 0 = the first row the detector reads out, as
in slsDetector raw files), see :mod:`dedkit.hpd`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import atomic_output, check_output_path
from dedkit.io.inputs import check_input_file

__all__ = ["write_pedestal_file", "read_pedestal_file", "read_gain_map", "write_gain_map"]

PEDESTAL_GROUP = "pedestal"


def write_pedestal_file(
    path, arrays: dict, attrs: dict | None = None, *, force=False, inputs=()
) -> Path:
    """Save a pedestal state (named arrays: mean, variance, counts...) with its settings.

    ``attrs`` values may be numbers, strings or JSON-serialisable objects.
    """
    from dedkit.io.h5 import h5_for_writing

    path = check_output_path(path, inputs, force)
    with atomic_output(path) as tmp, h5_for_writing(tmp, path) as f:
        group = f.create_group(PEDESTAL_GROUP)
        for name, value in arrays.items():
            value = np.asarray(value)
            group.create_dataset(name, data=value, compression="gzip" if value.ndim else None)
        for key, value in (attrs or {}).items():
            group.attrs[key] = value if isinstance(value, int | float | str) else json.dumps(value)
    return path


def read_pedestal_file(path) -> tuple[dict, dict]:
    """(arrays, attrs) of a file written by :func:`write_pedestal_file`."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise DedkitError("no such pedestal file", path=path)
    check_input_file(path, "pedestal file")
    try:
        with h5py.File(path, "r") as f:
            if PEDESTAL_GROUP not in f:
                raise DedkitError("not a dedkit pedestal file (no 'pedestal' group)", path=path)
            group = f[PEDESTAL_GROUP]
            arrays = {name: group[name][()] for name in group}
            attrs = {key: _decode(value) for key, value in group.attrs.items()}
    except OSError as e:
        raise DedkitError(f"cannot read pedestal file: {one_line(e)}", path=path) from None
    return arrays, attrs


def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_gain_map(path, gain, *, force=False) -> Path:
    """Save a per-pixel gain map (keV per ADU) as ``.npy``, which :func:`read_gain_map`
    reads (written under a temporary name and renamed when complete)."""
    path = check_output_path(path, force=force)
    if path.suffix.lower() != ".npy":
        raise DedkitError("gain maps are written as .npy", path=path)
    gain = np.asarray(gain, dtype=np.float32)
    if gain.ndim != 2:
        raise DedkitError(f"gain map must be 2-D, got shape {gain.shape}", path=path)
    buffer = io.BytesIO()
    # np.save to a real file writes with tofile, whose errors lose their cause
    np.save(buffer, gain, allow_pickle=False)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


def read_gain_map(path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A per-pixel gain map (keV per ADU) from .npy, .h5 (dataset 'gain'), .mrc or .tif.

    MRC and numpy arrays are taken in stored row order; TIFF rows too (the TIFF reader's
    Y flip for counting-camera frames is undone). ``shape`` (rows, cols) is checked when
    given.
    """
    path = Path(path)
    if not path.exists():
        raise DedkitError("no such gain map", path=path)
    check_input_file(path, "gain map")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            gain = np.load(path, allow_pickle=False)
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                if "gain" not in f:
                    raise DedkitError("HDF5 gain map needs a dataset named 'gain'", path=path)
                gain = f["gain"][()]
        elif suffix in (".mrc", ".tif", ".tiff"):
            from dedkit.io.images import read_image

            gain = read_image(path)
            if suffix != ".mrc":
                gain = np.flipud(gain)
        else:
            raise DedkitError("gain map must be .npy, .h5, .mrc or .tif", path=path)
    except (OSError, ValueError) as e:
        raise DedkitError(f"cannot read gain map: {one_line(e)}", path=path) from None
    gain = np.asarray(gain, dtype=np.float32)
    if gain.ndim != 2:
        raise DedkitError(f"gain map must be 2-D, got shape {gain.shape}", path=path)
    if shape is not None and gain.shape != tuple(shape):
        raise DedkitError(
            f"gain map is {gain.shape[1]} x {gain.shape[0]}, detector is {shape[1]} x {shape[0]}",
            path=path,
        )
    if not np.all(np.isfinite(gain)):
        raise DedkitError("gain map contains NaN or infinite values", path=path)
    return gain
