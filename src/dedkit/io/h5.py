"""What dedkit's HDF5 files share: written under a temporary name, opened with clear errors.

Event and cluster tables (:mod:`dedkit.io.events`), electron deposits
(:mod:`dedkit.io.deposits`) and training sets (:mod:`dedkit.io.training`) are HDF5 files
built up in chunks. :class:`H5Writer` writes each under a hidden name next to the output
and renames it into place when complete (:meth:`H5Writer._publish`); anything that fails
before leaves no file and an existing output untouched. :func:`open_h5` opens one for
reading with a one-line error for a missing or unreadable file.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import CommitOnSuccess, check_output_path, temporary_sibling

__all__ = ["H5Writer", "check_stored", "open_h5"]

#: deflate (gzip) expands at most 1032 times, lzf less: a dataset declaring more bytes
#: than this many times what it stores (plus a chunk's slack) holds unallocated space
_MAX_EXPANSION = 1100
_SLACK_BYTES = 1 << 20


class H5Writer(CommitOnSuccess):
    """Base of the HDF5 writers: subclasses call :meth:`_start` first and
    :meth:`_publish` at the end of their ``close``; :meth:`abort` discards the file."""

    _file: h5py.File | None = None

    def _start(self, path, *, force: bool) -> h5py.File:
        # the output path checked (existing output, output = input), the temporary file open
        self.path = check_output_path(path, force=force)
        self._temporary = temporary_sibling(self.path)
        self._temporary.unlink(missing_ok=True)
        self._file = h5py.File(self._temporary, "w")
        return self._file

    def _publish(self) -> Path:
        # close the temporary file and rename it into place
        self._file.close()
        self._file = None
        os.replace(self._temporary, self.path)
        return self.path

    def abort(self) -> None:
        """Discard everything written; leave any existing file as it was."""
        if self._file is not None:
            self._file.close()
        self._file = None
        temporary = getattr(self, "_temporary", None)
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def open_h5(path, what: str) -> h5py.File:
    """Open an HDF5 file for reading; ``what`` names it in the errors ("training set")."""
    path = Path(path)
    if not path.is_file():
        raise DedkitError(f"{what} not found", path=path)
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DedkitError(f"not a readable HDF5 file ({one_line(error)})", path=path) from None


def check_stored(dataset, path, rows: int | None = None) -> None:
    """Refuse reading a dataset (or its first ``rows`` rows) that declares far more data
    than the file stores (issue 13 item 8): HDF5 lets a small file declare any shape,
    unwritten chunks reading as fill values, so the declared size alone is no bound.

    Parameters
    ----------
    dataset : h5py.Dataset
    path : path-like
        The file, named in the error.
    rows : int, optional
        Rows to be read (default all).
    """
    shape = tuple(dataset.shape)
    n_rows = shape[0] if shape and rows is None else (rows or 0)
    per_row = dataset.dtype.itemsize
    for side in shape[1:]:
        per_row *= side
    declared = per_row * (n_rows if shape else 1)
    stored = dataset.id.get_storage_size()
    if declared > _MAX_EXPANSION * stored + _SLACK_BYTES:
        raise DedkitError(
            f"dataset {dataset.name} declares {' x '.join(map(str, shape))} "
            f"{dataset.dtype} ({declared} bytes) but stores only {stored} bytes",
            path=path,
        )
