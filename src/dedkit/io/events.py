"""Cluster and event tables in HDF5: one group per table, one dataset per column.

Layout of a file written here (one table per file)::

    /<group>                         'clusters' or 'events' unless named otherwise
        attrs: dedkit_kind           'clusters' or 'events'
               dedkit_units          ClusterTable.units   (clusters)
               dedkit_method         EventTable.method    (events)
               dedkit_json_attrs     names of the attributes below stored as JSON text
               <name>                processing parameters given as ``attrs``
        frame, x, y                  (n,) datasets
        data                         (n, rows, cols)      (clusters)
        energy                       (n,)                 (events)
        features                     (n, 7)               (clusters that have them)
        extra/<name>                 (n, ...) per extra column

Every dataset is chunked along rows, compressed (gzip or lzf) and resizable, so tables
are appended in pieces (:class:`TableWriter`) and read in row ranges
(``read_table(path, start, stop)``) without loading the rest. Attribute values that HDF5
holds natively (numbers, strings, booleans, numeric arrays) are stored as they are; any
other JSON-serialisable value (dicts, lists, None) as JSON text, restored on reading.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.h5 import H5Writer, check_stored, open_h5
from dedkit.records.tables import ClusterTable, EventTable

__all__ = ["TableWriter", "read_attrs", "read_table", "table_length", "write_table"]

_KINDS = {"clusters": ClusterTable, "events": EventTable}
_RESERVED = ("dedkit_kind", "dedkit_units", "dedkit_method", "dedkit_json_attrs")
_COMPRESSIONS = ("gzip", "lzf")
_CHUNK_BYTES = 2**20


def _kind_of(table) -> str:
    for kind, cls in _KINDS.items():
        if isinstance(table, cls):
            return kind
    raise DedkitError(f"cannot store a {type(table).__name__} (ClusterTable or EventTable)")


def _columns(table) -> dict[str, np.ndarray]:
    """The table's array columns by dataset name ('extra/<name>' for extra columns)."""
    columns = {}
    for f in fields(table):
        value = getattr(table, f.name)
        if isinstance(value, np.ndarray):
            columns[f.name] = value
        elif isinstance(value, dict):
            for name, column in value.items():
                if "/" in name or not name:
                    raise DedkitError(f"extra column name {name!r} cannot be an HDF5 name")
                columns[f"extra/{name}"] = np.asarray(column)
    n = len(table)
    for name, column in columns.items():
        if len(column) != n:
            raise DedkitError(f"column {name} has {len(column)} rows, the table {n}")
    return columns


def _store_attrs(group: h5py.Group, attrs: dict | None) -> None:
    as_json = []
    for name, value in (attrs or {}).items():
        if name in _RESERVED:
            raise DedkitError(f"attribute name {name!r} is reserved")
        if isinstance(value, (str, bool, int, float, np.generic)) or (
            isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
        ):
            group.attrs[name] = value
            continue
        try:
            group.attrs[name] = json.dumps(value)
        except TypeError as error:
            raise DedkitError(f"attribute {name!r} is not JSON-serialisable: {error}") from None
        as_json.append(name)
    group.attrs["dedkit_json_attrs"] = json.dumps(as_json)


class TableWriter(H5Writer):
    """Write a table to HDF5 in pieces; the file appears, complete, on :meth:`close`.

    Parameters
    ----------
    path : path-like
        Output file.
    kind : {'clusters', 'events'}
        Which table the pieces are.
    group : str, optional
        Group name; default ``kind``.
    chunk_rows : int, optional
        Rows per HDF5 chunk; default about 1 MiB per chunk and column (HDF5's chunk
        cache size, so partial reads do not re-read chunks).
    compression : {'gzip', 'lzf'}
        Dataset filter (gzip is readable everywhere; lzf is faster).
    attrs : dict, optional
        Processing parameters to store with the table.
    force : bool
        Replace an existing file.
    inputs : sequence of path-like
        Files being read, which the output may not replace.

    Notes
    -----
    Usable as a context manager: leaving the block normally closes (and publishes) the
    file; an exception discards it and leaves any existing file untouched. The first
    appended piece fixes the columns (cluster shape, value types, extra columns,
    features); later pieces must have the same.
    """

    def __init__(
        self,
        path,
        kind: str,
        *,
        group: str | None = None,
        chunk_rows: int | None = None,
        compression: str = "gzip",
        attrs: dict | None = None,
        force: bool = False,
        inputs=(),
    ):
        if kind not in _KINDS:
            raise DedkitError(f"kind must be 'clusters' or 'events', not {kind!r}")
        if compression not in _COMPRESSIONS:
            raise DedkitError(f"compression must be 'gzip' or 'lzf', not {compression!r}")
        if chunk_rows is not None and chunk_rows < 1:
            raise DedkitError(f"chunk_rows must be at least 1, not {chunk_rows}")
        self.kind = kind
        self._chunk_rows = chunk_rows
        self._compression = compression
        self._units_or_method = None
        self._n_rows = 0
        try:
            self._start(path, force=force, inputs=inputs)
            self._group = self._file.create_group(group or kind)
            self._group.attrs["dedkit_kind"] = kind
            _store_attrs(self._group, attrs)
        except BaseException:
            self.abort()
            raise

    def append(self, table) -> None:
        """Add a piece of the table (rows after those appended before)."""
        if self._file is None:
            raise DedkitError("the table writer is closed", path=self.path)
        if _kind_of(table) != self.kind:
            raise DedkitError(
                f"cannot append {_kind_of(table)} to a {self.kind} table", path=self.path
            )
        label = table.units if self.kind == "clusters" else table.method
        if self._units_or_method is not None and label != self._units_or_method:
            raise DedkitError(
                f"piece has {label!r}, the table {self._units_or_method!r} "
                f"({'units' if self.kind == 'clusters' else 'method'})",
                path=self.path,
            )
        columns = _columns(table)
        if not _dataset_names(self._group):
            self._create(columns)
        existing = set(_dataset_names(self._group))
        if set(columns) != existing:
            raise DedkitError(
                f"piece has columns {sorted(columns)}, the table {sorted(existing)}",
                path=self.path,
            )
        # check every column before writing any, so a refused piece leaves no trace
        for name, column in columns.items():
            dataset = self._group[name]
            if column.shape[1:] != dataset.shape[1:] or not np.can_cast(
                column.dtype, dataset.dtype, "safe"
            ):
                raise DedkitError(
                    f"column {name} is {column.dtype} {column.shape[1:]}, the table "
                    f"{dataset.dtype} {dataset.shape[1:]}",
                    path=self.path,
                )
        n = len(table)
        for name, column in columns.items():
            dataset = self._group[name]
            dataset.resize(self._n_rows + n, axis=0)
            dataset[self._n_rows :] = column
        self._check_written()
        self._n_rows += n
        self._units_or_method = label

    def _create(self, columns: dict[str, np.ndarray]) -> None:
        for name, column in columns.items():
            row_bytes = column.dtype.itemsize * int(np.prod(column.shape[1:]))
            rows = self._chunk_rows or max(1, _CHUNK_BYTES // row_bytes)
            self._group.create_dataset(
                name,
                shape=(0, *column.shape[1:]),
                maxshape=(None, *column.shape[1:]),
                dtype=column.dtype,
                chunks=(rows, *column.shape[1:]),
                compression=self._compression,
                shuffle=True,  # byte shuffling makes integer columns compress far better
            )

    def close(self) -> Path:
        """Finish the file and move it to its name. Returns the path."""
        if self._file is None:
            return self.path
        try:
            if not _dataset_names(self._group):
                # nothing appended: store an empty table of the default columns
                empty = ClusterTable.empty() if self.kind == "clusters" else _empty_events()
                self.append(empty)
            label = "dedkit_units" if self.kind == "clusters" else "dedkit_method"
            self._group.attrs[label] = self._units_or_method
            return self._publish()
        except BaseException:
            self.abort()
            raise


def _empty_events() -> EventTable:
    return EventTable(
        np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64),
        np.zeros(0, np.float32),
    )  # fmt: skip


def _dataset_names(group: h5py.Group) -> list[str]:
    names = [name for name, item in group.items() if isinstance(item, h5py.Dataset)]
    if "extra" in group:
        names += [f"extra/{name}" for name in group["extra"]]
    return names


def write_table(
    path,
    table,
    *,
    attrs: dict | None = None,
    group: str | None = None,
    compression: str = "gzip",
    chunk_rows: int | None = None,
    force: bool = False,
) -> Path:
    """Write a ClusterTable or EventTable to an HDF5 file (see the module layout).

    Parameters
    ----------
    path : path-like
    table : ClusterTable or EventTable
    attrs : dict, optional
        Processing parameters stored as attributes.
    group : str, optional
        Group name; default 'clusters' or 'events'.
    compression : {'gzip', 'lzf'}
    chunk_rows : int, optional
        Rows per HDF5 chunk (default about 1 MiB per column chunk).
    force : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
    """
    with TableWriter(
        path,
        _kind_of(table),
        group=group,
        chunk_rows=chunk_rows,
        compression=compression,
        attrs=attrs,
        force=force,
    ) as writer:
        writer.append(table)
    return writer.path


def _open(path) -> h5py.File:
    return open_h5(path, "table file")


def _table_group(file: h5py.File, group: str | None) -> h5py.Group:
    if group is not None:
        if group not in file or "dedkit_kind" not in file[group].attrs:
            raise DedkitError(f"no dedkit table named {group!r}", path=file.filename)
        return file[group]
    try:
        tables = [
            g for g in file.values() if isinstance(g, h5py.Group) and "dedkit_kind" in g.attrs
        ]
    except (KeyError, OSError, RuntimeError) as error:
        raise DedkitError(f"damaged HDF5 file: {one_line(error)}", path=file.filename) from None
    if len(tables) != 1:
        raise DedkitError(f"expected one dedkit table, found {len(tables)}", path=file.filename)
    return tables[0]


#: what each kind of table holds and which command writes it, for the errors
_DESCRIPTIONS = {
    "clusters": "clusters (from 'dedkit hpd clusters')",
    "events": "localised events (from 'dedkit hpd localize')",
}


def _checked_kind(table_group: h5py.Group, path, kind: str | None, needed_by: str | None) -> str:
    found = table_group.attrs.get("dedkit_kind")
    found = found.decode() if isinstance(found, bytes) else str(found)
    if found not in _KINDS:
        raise DedkitError(f"unknown table kind {found!r}", path=path)
    if kind is not None and found != kind:
        method = table_group.attrs.get("dedkit_method")
        method = method.decode() if isinstance(method, bytes) else method
        what = f"an events table (method {method!r})" if found == "events" else "a clusters table"
        who = needed_by or "this"
        raise DedkitError(f"this is {what}; {who} needs {_DESCRIPTIONS[kind]}", path=path)
    return found


def _column_datasets(table_group: h5py.Group, kind: str, path) -> dict:
    """The table's datasets by column name, their shapes checked (one length for all,
    the right number of dimensions) before anything is read."""
    required = ("frame", "x", "y", "data") if kind == "clusters" else ("frame", "x", "y", "energy")
    optional = ("features",) if kind == "clusters" else ()
    columns = {}
    for name in (*required, *optional):
        item = table_group.get(name)
        if item is None and name in optional:
            continue
        if not isinstance(item, h5py.Dataset):
            raise DedkitError(f"damaged {kind} table: no column {name!r}", path=path)
        columns[name] = item
    extra = table_group.get("extra")
    if extra is not None:
        if not isinstance(extra, h5py.Group):
            raise DedkitError(f"damaged {kind} table: 'extra' is not a group", path=path)
        for name, item in extra.items():
            if not isinstance(item, h5py.Dataset):
                raise DedkitError(f"damaged {kind} table: extra/{name} is not a column", path=path)
            columns[f"extra/{name}"] = item
    n = len(columns["frame"]) if columns["frame"].shape else 0
    dims = {"frame": 1, "x": 1, "y": 1, "energy": 1, "data": 3, "features": 2}
    for name, item in columns.items():
        shape = item.shape
        if not shape or len(shape) != dims.get(name, len(shape)):
            raise DedkitError(f"damaged {kind} table: column {name} has shape {shape}", path=path)
        if shape[0] != n:
            raise DedkitError(
                f"damaged {kind} table: column {name} has {shape[0]} rows, column frame {n}",
                path=path,
            )
        if item.dtype.kind not in "biuf":
            raise DedkitError(
                f"damaged {kind} table: column {name} holds {item.dtype}, not numbers", path=path
            )
    if "features" in columns and columns["features"].shape[1] != 7:
        raise DedkitError(
            f"damaged clusters table: features have {columns['features'].shape[1]} columns, not 7",
            path=path,
        )
    return columns


def table_length(
    path, *, group: str | None = None, kind: str | None = None, needed_by: str | None = None
) -> int:
    """Number of rows of the table in ``path`` (refused unless of ``kind``, when given;
    see :func:`read_table`)."""
    with _open(path) as file:
        table_group = _table_group(file, group)
        found = _checked_kind(table_group, path, kind, needed_by)
        return len(_column_datasets(table_group, found, path)["frame"])


def read_table(
    path,
    start: int = 0,
    stop: int | None = None,
    *,
    group: str | None = None,
    kind: str | None = None,
    needed_by: str | None = None,
) -> ClusterTable | EventTable:
    """Read a table, or only rows ``start`` to ``stop``.

    Parameters
    ----------
    path : path-like
    start, stop : int
        Row range (``stop`` None: to the end); only these rows are read from disk.
    group : str, optional
        The table's group, needed only if the file holds several.
    kind : {'clusters', 'events'}, optional
        Refuse a table of the other kind, saying what it is and what is needed.
    needed_by : str, optional
        The command that needs ``kind`` (named in that error, e.g. 'hpd localize').

    Returns
    -------
    ClusterTable or EventTable

    Raises
    ------
    DedkitError
        Missing, corrupt or foreign file, a table of the wrong kind, columns of different
        lengths, a column declaring far more rows than the file stores, or a row range
        outside the table.
    """
    with _open(path) as file:
        table_group = _table_group(file, group)
        try:
            found = _checked_kind(table_group, path, kind, needed_by)
            columns = _column_datasets(table_group, found, path)
            n = len(columns["frame"])
            stop = n if stop is None else stop
            if not 0 <= start <= stop <= n:
                raise DedkitError(f"rows {start}:{stop} are outside the table's {n}", path=path)
            rows = slice(start, stop)
            for dataset in columns.values():
                check_stored(dataset, path, stop - start)
            values = {name: dataset[rows] for name, dataset in columns.items()}
            extra = {
                name.removeprefix("extra/"): value
                for name, value in values.items()
                if name.startswith("extra/")
            }
            common = {"frame": values["frame"], "x": values["x"], "y": values["y"]}
            if found == "clusters":
                return ClusterTable(
                    **common,
                    data=values["data"],
                    units=_text_attr(table_group, "dedkit_units", path),
                    features=values.get("features"),
                    extra=extra,
                )
            return EventTable(
                **common,
                energy=values["energy"],
                method=_text_attr(table_group, "dedkit_method", path),
                extra=extra,
            )
        except (KeyError, OSError, TypeError, ValueError) as error:
            raise DedkitError(f"damaged table file: {one_line(error)}", path=path) from None


def _text_attr(table_group: h5py.Group, name: str, path) -> str:
    value = table_group.attrs.get(name)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if not isinstance(value, str):
        raise DedkitError(f"damaged table file: attribute {name} is not text", path=path)
    return value


def read_attrs(path, *, group: str | None = None) -> dict:
    """The processing parameters stored with the table (JSON values decoded)."""
    with _open(path) as file:
        attrs = _table_group(file, group).attrs
        try:
            as_json = set(json.loads(attrs.get("dedkit_json_attrs", "[]")))
            out = {}
            for name, value in attrs.items():
                if name in _RESERVED:
                    continue
                if name in as_json:
                    out[name] = json.loads(value)
                elif isinstance(value, bytes):
                    out[name] = value.decode()
                else:
                    out[name] = value.item() if isinstance(value, np.generic) else value
            return out
        except (json.JSONDecodeError, OSError, TypeError, ValueError) as error:
            raise DedkitError(f"damaged table attributes: {one_line(error)}", path=path) from None
