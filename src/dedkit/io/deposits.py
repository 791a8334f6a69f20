"""Electron energy deposits (:class:`dedkit.records.deposits.ElectronDeposits`) in HDF5.

Layout::

    /                       attrs: dedkit_kind        'electron_deposits'
                                   format_version     1
                                   energy_keV         beam energy
                                   sensor             JSON {thickness_um, pitch_um, nx, ny}
                                   physics            Geant4 EM physics list
                                   seed, workers      (-1: not recorded)
                                   transport          JSON: cut, msc step limit, segment, ...
                                   geant4_seconds     time spent in Geant4
                                   dedkit_version
    /primaries/entry_x_um, entry_y_um     (n,) float64, um, on z = 0
              /direction                  (n, 3) float64
              /deposit_keV                (n,) float64
              /backscattered, transmitted (n,) bool
              /primary_path_um            (n,) float64, optional: path in the sensor
    /steps/offsets                        (n + 1,) int64: deposits of primary i are
                                          offsets[i]:offsets[i + 1]
          /x_um, y_um, z_um, edep_keV     (n_steps,) float32

Datasets are chunked, compressed and resizable, so a run is written batch by batch
(:class:`DepositsWriter`) and read back in ranges of primaries (``read_deposits(path,
start, stop)``). The file appears under its name only when complete (dedkit.io.atomic).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from dedkit import __version__
from dedkit.errors import DedkitError
from dedkit.io.h5 import H5Writer, open_h5
from dedkit.records.deposits import ElectronDeposits
from dedkit.records.sensor import SensorGeometry

__all__ = ["DepositsWriter", "deposits_length", "read_deposits", "write_deposits"]

KIND = "electron_deposits"
FORMAT_VERSION = 1
_PRIMARY = {
    "entry_x_um": (np.float64, ()),
    "entry_y_um": (np.float64, ()),
    "direction": (np.float64, (3,)),
    "deposit_keV": (np.float64, ()),
    "backscattered": (np.bool_, ()),
    "transmitted": (np.bool_, ()),
}
_STEP = {"x_um": "step_x_um", "y_um": "step_y_um", "z_um": "step_z_um", "edep_keV": "step_edep_keV"}
_CHUNK = 65536


class DepositsWriter(H5Writer):
    """Write electron deposits to HDF5 in batches; the file appears on :meth:`close`.

    Parameters
    ----------
    path : path-like
        Output file (``.h5``).
    force : bool
        Replace an existing file.
    attrs : dict, optional
        More root attributes (JSON-serialisable values).

    Notes
    -----
    The first batch fixes the beam energy, sensor, physics and provenance; later batches
    must have the same energy, sensor and physics. As a context manager the file is
    published when the block ends normally and discarded on an exception.
    """

    def __init__(self, path, *, force: bool = False, attrs: dict | None = None):
        self._attrs = dict(attrs or {})
        self._first: ElectronDeposits | None = None
        self._n = 0
        self._m = 0
        self._seconds = 0.0
        try:
            self._start(path, force=force)
            prim = self._file.create_group("primaries")
            for name, (dtype, shape) in _PRIMARY.items():
                prim.create_dataset(
                    name,
                    shape=(0, *shape),
                    maxshape=(None, *shape),
                    dtype=dtype,
                    chunks=(_CHUNK // 4, *shape),
                    compression="gzip",
                    shuffle=True,
                )
            steps = self._file.create_group("steps")
            steps.create_dataset(
                "offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(_CHUNK,)
            )
            for name in _STEP:
                steps.create_dataset(
                    name,
                    shape=(0,),
                    maxshape=(None,),
                    dtype=np.float32,
                    chunks=(_CHUNK,),
                    compression="gzip",
                    shuffle=True,
                )
        except BaseException:
            self.abort()
            raise

    def append(self, deposits: ElectronDeposits) -> None:
        """Add the deposits of more primaries (after those appended before)."""
        if self._file is None:
            raise DedkitError("the deposits writer is closed", path=self.path)
        first = self._first
        if first is not None and (deposits.energy_keV, deposits.sensor, deposits.physics) != (
            first.energy_keV,
            first.sensor,
            first.physics,
        ):
            raise DedkitError(
                "cannot append deposits of another energy, sensor or physics", path=self.path
            )
        n, m = len(deposits), deposits.n_steps
        prim = self._file["primaries"]
        has_path = "primary_path_um" in prim
        if self._first is None and deposits.primary_path_um is not None:
            prim.create_dataset(
                "primary_path_um",
                shape=(0,),
                maxshape=(None,),
                dtype=np.float64,
                chunks=(_CHUNK // 4,),
                compression="gzip",
                shuffle=True,
            )
            has_path = True
        if has_path != (deposits.primary_path_um is not None):
            raise DedkitError(
                "cannot mix deposits with and without primary path lengths", path=self.path
            )
        if has_path:
            dataset = prim["primary_path_um"]
            dataset.resize(self._n + n, axis=0)
            dataset[self._n :] = deposits.primary_path_um
        for name in _PRIMARY:
            dataset = prim[name]
            dataset.resize(self._n + n, axis=0)
            dataset[self._n :] = getattr(deposits, name)
        steps = self._file["steps"]
        offsets = steps["offsets"]
        offsets.resize(self._n + n + 1, axis=0)
        offsets[self._n + 1 :] = deposits.offsets[1:] + self._m
        for name, attr in _STEP.items():
            dataset = steps[name]
            dataset.resize(self._m + m, axis=0)
            dataset[self._m :] = getattr(deposits, attr)
        self._check_written()
        self._n += n
        self._m += m
        self._seconds += float(deposits.geant4_seconds)
        if self._first is None:
            self._first = deposits

    def close(self) -> Path:
        """Finish the file and move it to its name. Returns the path."""
        if self._file is None:
            return self.path
        try:
            if self._first is None:
                raise DedkitError("no deposits were written", path=self.path)
            d = self._first
            attrs = self._file.attrs
            attrs["dedkit_kind"] = KIND
            attrs["format_version"] = FORMAT_VERSION
            attrs["energy_keV"] = float(d.energy_keV)
            attrs["sensor"] = json.dumps(d.sensor.to_dict())
            attrs["physics"] = d.physics
            attrs["seed"] = -1 if d.seed is None else int(d.seed)
            attrs["workers"] = -1 if d.workers is None else int(d.workers)
            attrs["transport"] = json.dumps(d.transport)
            attrs["geant4_seconds"] = self._seconds
            attrs["dedkit_version"] = __version__
            for name, value in self._attrs.items():
                if name in attrs:
                    raise DedkitError(f"attribute name {name!r} is reserved")
                attrs[name] = json.dumps(value)
            return self._publish()
        except BaseException:
            self.abort()
            raise


def write_deposits(path, deposits: ElectronDeposits, *, force: bool = False) -> Path:
    """Write ``deposits`` to ``path`` (atomically). Returns the path."""
    with DepositsWriter(path, force=force) as writer:
        writer.append(deposits)
    return writer.path


def _open(path) -> h5py.File:
    path = Path(path)
    f = open_h5(path, "deposits file")
    if f.attrs.get("dedkit_kind") != KIND:
        f.close()
        raise DedkitError("not a dedkit electron deposits file", path=path)
    version = int(f.attrs.get("format_version", 0))
    if version != FORMAT_VERSION:
        f.close()
        raise DedkitError(f"deposits format version {version} is not supported", path=path)
    return f


def deposits_length(path) -> int:
    """Number of primaries in a deposits file."""
    with _open(path) as f:
        return len(f["primaries/deposit_keV"])


def read_deposits(path, start: int = 0, stop: int | None = None) -> ElectronDeposits:
    """Read primaries ``start:stop`` (default all) of a deposits file, with their deposits."""
    with _open(path) as f:
        n = len(f["primaries/deposit_keV"])
        stop = n if stop is None else min(int(stop), n)
        start = int(start)
        if not 0 <= start <= stop:
            raise DedkitError(f"bad primary range {start}:{stop} of {n}", path=path)
        offsets = f["steps/offsets"][start : stop + 1]
        a, b = int(offsets[0]), int(offsets[-1])
        attrs = f.attrs
        try:
            sensor = SensorGeometry.from_dict(json.loads(attrs["sensor"]))
            transport = json.loads(attrs["transport"])
        except (KeyError, ValueError, TypeError) as error:
            raise DedkitError(f"damaged deposits attributes ({error})", path=path) from None
        seed, workers = int(attrs["seed"]), int(attrs["workers"])
        total = float(attrs.get("geant4_seconds", 0.0))
        try:
            return ElectronDeposits(
                energy_keV=float(attrs["energy_keV"]),
                sensor=sensor,
                **{name: f["primaries"][name][start:stop] for name in _PRIMARY},
                primary_path_um=(
                    f["primaries/primary_path_um"][start:stop]
                    if "primary_path_um" in f["primaries"]
                    else None
                ),
                offsets=offsets - a,
                **{attr: f["steps"][name][a:b] for name, attr in _STEP.items()},
                physics=str(attrs["physics"]),
                seed=None if seed < 0 else seed,
                workers=None if workers < 0 else workers,
                transport=transport,
                geant4_seconds=total * (stop - start) / n if n else 0.0,
            )
        except ValueError as error:
            raise DedkitError(f"inconsistent deposits file ({error})", path=path) from None
