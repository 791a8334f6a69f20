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
from dedkit.io.inputs import check_input_file

__all__ = ["H5Writer", "open_h5"]


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
    if not path.exists():
        raise DedkitError(f"{what} not found", path=path)
    check_input_file(path, what)
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DedkitError(f"not a readable HDF5 file ({one_line(error)})", path=path) from None
