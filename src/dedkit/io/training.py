"""Training sets of single-electron clusters in HDF5, and the parts of an unfinished one.

Layout of a training set (one group)::

    /training
        attrs: dedkit_kind       'training'
               format_version    1
               parameters        JSON: everything that determined the samples
               stats             JSON: counts over all simulated primaries
               feature_names     JSON: the 7 feature names, in column order
               convention        the frame of the entry points, in words
        image        (n, 15, 15) float32   cluster in keV, pixels outside it zeroed
        features     (n, 7)      float32
        entry_x, entry_y         (n,) float64   true entry point relative to the crop
        centroid_x, centroid_y   (n,) float64   charge centroid relative to the crop
        backscattered            (n,) bool
        deposit_keV              (n,) float32
        primary                  (n,) int64     primary index within the whole set
        n_selected               (n,) int16
        chunk                    (n,) int32     chunk that produced the row
        true_entry_x, true_entry_y   optional (n,) float64: the true entry point, relative
                                 to the crop, of a set whose entry_x/entry_y are estimates
                                 (``dedkit learn scan-labels`` on a simulated run); NaN
                                 where unknown

Every other floating-point column holds finite values: a set with a NaN or infinite
value among the rows read is refused when read (:func:`read_training_set`), naming the
column and the count.

Datasets are chunked along rows (about 1 MiB per HDF5 chunk), compressed and resizable;
rows can be read in ranges without loading the rest.

**Resumable writing.** A set is produced in chunks of work; each finished chunk is saved
as its own small HDF5 file in a parts folder beside the output (``.NAME.parts``), under a
temporary name renamed when complete, together with ``parameters.json``. An interrupted
run leaves the finished parts; a new run with the same parameters reuses them and
computes only the rest; the final file is assembled from the parts (appended part by
part) under a temporary name, renamed into place, and the parts folder removed.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import atomic_output, remove_owned_folder, write_atomic
from dedkit.io.h5 import H5Writer, h5_for_writing, open_h5

__all__ = [
    "OPTIONAL_TRAINING_COLUMNS",
    "TRAINING_COLUMNS",
    "TrainingParts",
    "TrainingSetWriter",
    "parts_folder",
    "read_training_attrs",
    "read_training_set",
    "training_set_length",
]

GROUP = "training"
FORMAT_VERSION = 1
#: Column name -> (dtype, shape after the row axis, or None for the crop's shape)
TRAINING_COLUMNS = {
    "image": (np.float32, None),
    "features": (np.float32, (7,)),
    "entry_x": (np.float64, ()),
    "entry_y": (np.float64, ()),
    "centroid_x": (np.float64, ()),
    "centroid_y": (np.float64, ()),
    "backscattered": (np.bool_, ()),
    "deposit_keV": (np.float32, ()),
    "primary": (np.int64, ()),
    "n_selected": (np.int16, ()),
    "chunk": (np.int32, ()),
}
#: Columns a set may also hold (all rows, or none): name -> (dtype, shape after the row axis)
OPTIONAL_TRAINING_COLUMNS = {
    "true_entry_x": (np.float64, ()),
    "true_entry_y": (np.float64, ()),
}
_ALL_COLUMNS = {**TRAINING_COLUMNS, **OPTIONAL_TRAINING_COLUMNS}
_CHUNK_BYTES = 2**20
#: dtype kinds a column may hold: booleans, integers, floats (real numbers)
_NUMERIC_KINDS = "biuf"
_PART_NAME = re.compile(r"^chunk_(\d{6})\.h5$")
#: what a parts folder may hold (anything else and --force refuses to remove it)
_PARTS_ENTRIES = r"\.?(chunk_\d{6}\.h5|parameters\.json)(\.part-\d+)?"


def _check_columns(columns: dict) -> int:
    if not set(TRAINING_COLUMNS) <= set(columns) <= set(_ALL_COLUMNS):
        missing = sorted(set(TRAINING_COLUMNS) - set(columns))
        extra = sorted(set(columns) - set(_ALL_COLUMNS))
        raise DedkitError(f"training columns missing {missing}, unknown {extra}")
    n = len(columns["primary"])
    for name, column in columns.items():
        if len(column) != n:
            raise DedkitError(f"training column {name} has {len(column)} rows, not {n}")
    image = np.asarray(columns["image"])
    if image.ndim != 3 or image.shape[1] != image.shape[2]:
        raise DedkitError(f"training images must be (n, crop, crop), got {image.shape}")
    return n


def _as_stored(name: str, column) -> np.ndarray:
    dtype, _ = _ALL_COLUMNS[name]
    return np.ascontiguousarray(column, dtype=dtype)


class TrainingSetWriter(H5Writer):
    """Write a training set piece by piece; the file appears, complete, on :meth:`close`.

    Parameters
    ----------
    path : path-like
    attrs : dict
        'parameters' and 'stats' (JSON-serialisable) and any other attributes.
    compression : {'gzip', 'lzf'}
    force : bool
        Replace an existing file.
    """

    def __init__(self, path, *, attrs: dict | None = None, compression="gzip", force=False):
        if compression not in ("gzip", "lzf"):
            raise DedkitError(f"compression must be 'gzip' or 'lzf', not {compression!r}")
        self._compression = compression
        self._n_rows = 0
        try:
            self._start(path, force=force)
            self._group = self._file.create_group(GROUP)
            self._group.attrs["dedkit_kind"] = "training"
            self._group.attrs["format_version"] = FORMAT_VERSION
            self.set_attrs(attrs or {})
        except BaseException:
            self.abort()
            raise

    def set_attrs(self, attrs: dict) -> None:
        """Store attributes (non-scalar values as JSON text)."""
        for name, value in attrs.items():
            if isinstance(value, str | int | float | bool | np.generic):
                self._group.attrs[name] = value
            else:
                self._group.attrs[name] = json.dumps(value)

    def append(self, columns: dict) -> None:
        """Add rows: a dict of every column of :data:`TRAINING_COLUMNS`."""
        if self._file is None:
            raise DedkitError("the training-set writer is closed", path=self.path)
        n = _check_columns(columns)
        if "image" not in self._group:
            self._create(np.asarray(columns["image"]).shape[1], set(columns))
        stored = {name for name in _ALL_COLUMNS if name in self._group}
        if set(columns) != stored:
            raise DedkitError(
                f"rows with columns {sorted(columns)} do not fit a set of {sorted(stored)}",
                path=self.path,
            )
        for name, column in columns.items():
            dataset = self._group[name]
            data = _as_stored(name, column)
            if data.shape[1:] != dataset.shape[1:]:
                raise DedkitError(
                    f"column {name} rows are {data.shape[1:]}, the set's {dataset.shape[1:]}",
                    path=self.path,
                )
            dataset.resize(self._n_rows + n, axis=0)
            dataset[self._n_rows :] = data
        self._check_written()
        self._n_rows += n

    def _create(self, crop: int, names: set) -> None:
        for name, (dtype, shape) in _ALL_COLUMNS.items():
            if name not in names:
                continue
            shape = (crop, crop) if shape is None else shape
            row_bytes = np.dtype(dtype).itemsize * int(np.prod(shape))
            rows = max(1, _CHUNK_BYTES // row_bytes)
            self._group.create_dataset(
                name,
                shape=(0, *shape),
                maxshape=(None, *shape),
                dtype=dtype,
                chunks=(rows, *shape),
                compression=self._compression,
                shuffle=True,
            )

    @property
    def n_rows(self) -> int:
        return self._n_rows

    def close(self) -> Path:
        """Finish the file and move it to its name."""
        if self._file is None:
            return self.path
        try:
            if "image" not in self._group:
                raise DedkitError("a training set needs at least one row", path=self.path)
            self._group.attrs["n_rows"] = self._n_rows
            return self._publish()
        except BaseException:
            self.abort()
            raise


def _open(path) -> h5py.File:
    path = Path(path)
    file = open_h5(path, "training set")
    if GROUP not in file or file[GROUP].attrs.get("dedkit_kind") != "training":
        file.close()
        raise DedkitError("not a dedkit training set", path=path)
    return file


def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value.item() if isinstance(value, np.generic) else value


def read_training_attrs(path) -> dict:
    """The attributes of a training set (JSON values decoded)."""
    with _open(path) as file:
        return {name: _decode(value) for name, value in file[GROUP].attrs.items()}


def _check_layout(group, path) -> int:
    """Rows of a set whose columns all have them and the shapes of the layout.

    Only the datasets' shapes and dtypes are read, so a lying file costs nothing: a short
    column, features of the wrong width or a column of bytes or text is one clear error
    here, not a failure in the network.
    """
    names = [*TRAINING_COLUMNS, *(c for c in OPTIONAL_TRAINING_COLUMNS if c in group)]
    missing = [name for name in names if not isinstance(group.get(name), h5py.Dataset)]
    if missing:
        raise DedkitError(
            f"damaged training set: column(s) {', '.join(missing)} missing", path=path
        )
    n = group["primary"].shape[0] if group["primary"].shape else 0
    for name in names:
        shape = group[name].shape
        rows = shape[0] if shape else None
        if rows != n:
            raise DedkitError(
                f"damaged training set: column {name} has {rows} rows, 'primary' has {n}",
                path=path,
            )
        dtype = group[name].dtype
        if dtype.kind not in _NUMERIC_KINDS:
            # bytes, text, compound or complex values: no network input or label
            raise DedkitError(
                f"damaged training set: column {name} holds {dtype} values, not real numbers",
                path=path,
            )
        expected = _ALL_COLUMNS[name][1]
        if expected is None:
            if len(shape) != 3 or shape[1] != shape[2] or shape[1] < 3 or shape[1] % 2 != 1:
                raise DedkitError(
                    f"damaged training set: images are {' x '.join(map(str, shape[1:]))}, "
                    "not square crops of odd side >= 3",
                    path=path,
                )
        elif tuple(shape[1:]) != expected:
            raise DedkitError(
                f"damaged training set: column {name} rows are {tuple(shape[1:])}, not {expected}",
                path=path,
            )
    return n


def training_set_length(path) -> int:
    """Number of samples in a training set (its layout checked, see :func:`read_training_set`)."""
    with _open(path) as file:
        return _check_layout(file[GROUP], path)


def read_training_set(path, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
    """Rows ``start:stop`` of every column of a training set.

    Parameters
    ----------
    path : path-like
    start, stop : int

    Returns
    -------
    dict of ndarray
        Keyed by the names of :data:`TRAINING_COLUMNS`, and those of
        :data:`OPTIONAL_TRAINING_COLUMNS` the set holds.

    Raises
    ------
    DedkitError
        A column missing, shorter or longer than the others, of the wrong shape, not of
        real numbers, or holding NaN or infinite values among the rows read (a NaN pixel
        or label would make training diverge and evaluation fail far from the cause).
    """
    with _open(path) as file:
        group = file[GROUP]
        n = _check_layout(group, path)
        stop = n if stop is None else stop
        if not 0 <= start <= stop <= n:
            raise DedkitError(f"rows {start}:{stop} are outside the set's {n}", path=path)
        try:
            names = [*TRAINING_COLUMNS, *(n for n in OPTIONAL_TRAINING_COLUMNS if n in group)]
            columns = {name: group[name][start:stop] for name in names}
        except KeyError as error:
            raise DedkitError(f"damaged training set: {error}", path=path) from None
    for name, values in columns.items():
        # the true entry points are NaN where unknown (a cluster that matched no
        # simulated electron, see dedkit.learn.scan); an infinity is never meant
        nan_allowed = name in OPTIONAL_TRAINING_COLUMNS
        bad = _count_non_finite(values, nan_allowed)
        if bad:
            what = "infinite" if nan_allowed else "NaN or infinite"
            raise DedkitError(
                f"damaged training set: column {name} holds {bad} {what} "
                f"value{'s' if bad > 1 else ''} (rows {start}:{stop})",
                path=path,
            )
    return columns


def _count_non_finite(values: np.ndarray, nan_allowed: bool = False) -> int:
    """NaN (unless ``nan_allowed``) and infinite values of a column, counted a block of
    rows at a time (the column is read once; the check needs no copy of it)."""
    if values.dtype.kind != "f" or values.size == 0:
        return 0
    flat = values.reshape(len(values), -1)
    rows = max(1, _CHUNK_BYTES // flat.shape[1])
    bad = 0
    for first in range(0, len(flat), rows):
        block = flat[first : first + rows]
        if nan_allowed:
            bad += int(np.count_nonzero(np.isinf(block)))
        else:
            bad += block.size - int(np.count_nonzero(np.isfinite(block)))
    return bad


# ------------------------------------------------------------------------------ parts


def parts_folder(output) -> Path:
    """The folder holding the finished chunks of an unfinished training set."""
    output = Path(output)
    return output.with_name(f".{output.name}.parts")


class TrainingParts:
    """The finished chunks of a training set being produced (see the module docstring).

    Parameters
    ----------
    folder : path-like
        The parts folder (:func:`parts_folder` of the output).
    parameters : dict
        JSON-serialisable: what determines the chunks. Existing parts made with other
        parameters are refused unless ``restart``.
    restart : bool
        Discard existing parts and start afresh.
    """

    def __init__(self, folder, parameters: dict, *, restart: bool = False):
        self.folder = Path(folder)
        self.parameters = json.loads(json.dumps(parameters))
        if restart:
            # only a folder of parts (nothing else in it) is deleted
            remove_owned_folder(self.folder, _PARTS_ENTRIES)
        if self.folder.exists():
            stored = self._stored_parameters()
            if stored != self.parameters:
                differ = sorted(
                    k
                    for k in set(stored) | set(self.parameters)
                    if stored.get(k) != self.parameters.get(k)
                )
                raise DedkitError(
                    "an unfinished training set made with other parameters "
                    f"({', '.join(differ)}) is in the way; use --force to start afresh",
                    path=self.folder,
                )
            # a chunk being written when the last run stopped
            for leftover in self.folder.glob(".*.part-*"):
                leftover.unlink(missing_ok=True)
        else:
            if not self.folder.parent.is_dir():
                raise DedkitError("output folder does not exist", path=self.folder.parent)
            self.folder.mkdir()
            try:
                self._write_json("parameters.json", self.parameters)
            except BaseException:
                # a parts folder without its parameters would be refused by the next run
                with contextlib.suppress(OSError):
                    self.folder.rmdir()
                raise

    def _stored_parameters(self) -> dict:
        path = self.folder / "parameters.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DedkitError(
                f"unreadable parts folder ({one_line(error)}); use --force to start afresh",
                path=self.folder,
            ) from None

    def _write_json(self, name: str, value) -> None:
        # a working file, not an output: not listed as written
        write_atomic(self.folder / name, json.dumps(value, indent=1), record=False)

    def _path(self, index: int) -> Path:
        return self.folder / f"chunk_{index:06d}.h5"

    def completed(self) -> list[int]:
        """Indices of the finished chunks, in order."""
        found = (_PART_NAME.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m[1]) for m in found if m)

    def write_chunk(self, index: int, columns: dict, stats: dict) -> None:
        """Save one finished chunk (atomically)."""
        _check_columns(columns)
        path = self._path(index)
        with (
            atomic_output(path, record=False) as temporary,
            h5_for_writing(temporary, path) as file,
        ):
            for name, column in columns.items():
                file.create_dataset(name, data=_as_stored(name, column))
            file.attrs["stats"] = json.dumps(stats)

    def read_chunk(self, index: int) -> tuple[dict[str, np.ndarray], dict]:
        """(columns, stats) of a finished chunk."""
        path = self._path(index)
        try:
            with h5py.File(path, "r") as file:
                columns = {name: file[name][()] for name in TRAINING_COLUMNS}
                stats = json.loads(file.attrs["stats"])
        except (OSError, KeyError, json.JSONDecodeError) as error:
            raise DedkitError(
                f"damaged part ({one_line(error)}); use --force to start afresh", path=path
            ) from None
        return columns, stats

    def chunk_length(self, index: int) -> int:
        """Rows of a finished chunk (without reading its images)."""
        with h5py.File(self._path(index), "r") as file:
            return len(file["primary"])

    def remove(self) -> None:
        """Delete the parts folder (after the set is assembled)."""
        shutil.rmtree(self.folder, ignore_errors=True)
