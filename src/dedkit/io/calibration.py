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
from dedkit.io.atomic import atomic_output, check_output_path, write_atomic
from dedkit.io.inputs import check_input_file
from dedkit.io.limits import check_detector_shape, read_npy_header

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


def read_pedestal_file(path, shape: tuple[int, int] | None = None) -> tuple[dict, dict]:
    """(arrays, attrs) of a file written by :func:`write_pedestal_file`.

    Every dataset's shape is checked before any is read (issue 13 item 8: a small
    compressed file can declare gigabytes): each must be a scalar or the detector's
    ``shape`` (rows, cols) when given, else one 2-D shape within
    :data:`dedkit.io.limits.MAX_DETECTOR_SIDE`.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise DedkitError("no such pedestal file", path=path)
    check_input_file(path, "pedestal file")
    try:
        with h5py.File(path, "r") as f:
            group = f.get(PEDESTAL_GROUP)
            if not isinstance(group, h5py.Group):
                raise DedkitError("not a dedkit pedestal file (no 'pedestal' group)", path=path)
            datasets = {}
            for name, item in group.items():
                if not isinstance(item, h5py.Dataset):
                    raise DedkitError(f"pedestal entry {name!r} is not a dataset", path=path)
                datasets[name] = item
            _check_pedestal_shapes(datasets, shape, path)
            arrays = {name: item[()] for name, item in datasets.items()}
            attrs = {key: _decode(value) for key, value in group.attrs.items()}
    except (OSError, ValueError, TypeError) as e:
        raise DedkitError(f"cannot read pedestal file: {one_line(e)}", path=path) from None
    return arrays, attrs


def _check_pedestal_shapes(datasets: dict, shape, path) -> None:
    arrays = {name: tuple(d.shape) for name, d in datasets.items() if d.shape != ()}
    if shape is not None:
        shape = tuple(shape)
        for name, declared in arrays.items():
            if declared != shape:
                size = " x ".join(map(str, declared[::-1]))
                raise DedkitError(
                    f"pedestal is {size} ({name!r}), the run is {shape[1]} x {shape[0]}",
                    path=path,
                )
        return
    for name, declared in arrays.items():
        check_detector_shape(declared, path=path, what=f"pedestal array {name!r}")
    if len(set(arrays.values())) > 1:
        raise DedkitError(f"pedestal arrays differ in shape: {arrays}", path=path)


def _check_map_shape(declared, shape, path) -> None:
    """Refuse a declared map shape that is not 2-D, not the detector's (when known) or
    beyond any detector, before the map is read (issue 13 item 8)."""
    declared = tuple(declared)
    if len(declared) != 2:
        raise DedkitError(f"gain map must be 2-D, got shape {declared}", path=path)
    if shape is not None and declared != tuple(shape):
        raise DedkitError(
            f"gain map is {declared[1]} x {declared[0]}, detector is {shape[1]} x {shape[0]}",
            path=path,
        )
    check_detector_shape(declared, path=path, what="gain map")


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
    return write_atomic(path, buffer.getbuffer())


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
            # the header's shape is checked before anything is allocated
            _check_map_shape(read_npy_header(path)[0], shape, path)
            gain = np.load(path, allow_pickle=False)
        elif suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                if not isinstance(f.get("gain"), h5py.Dataset):
                    raise DedkitError("HDF5 gain map needs a dataset named 'gain'", path=path)
                _check_map_shape(f["gain"].shape, shape, path)
                gain = f["gain"][()]
        elif suffix in (".mrc", ".tif", ".tiff"):
            from dedkit.io.images import read_image

            gain = read_image(path)
            if suffix != ".mrc":
                gain = np.flipud(gain)
        else:
            raise DedkitError("gain map must be .npy, .h5, .mrc or .tif", path=path)
    except (OSError, ValueError, TypeError) as e:
        raise DedkitError(f"cannot read gain map: {one_line(e)}", path=path) from None
    if gain.dtype.kind not in "biuf":
        raise DedkitError(f"gain map must hold numbers, not {gain.dtype}", path=path)
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
