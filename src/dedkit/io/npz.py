"""NumPy ``.npz`` archives written whole or not at all.

The Geant4 worker processes of :mod:`dedkit.sim.transport` hand each finished batch to
their parent as an ``.npz`` file (:func:`write_npz`): it appears under its name only when
complete and flushed to the disk, so a worker that dies later loses nothing, and one that
fails while writing leaves no temporary behind. Importing this module is cheap (numpy and
:mod:`dedkit.io.atomic` only): the workers load it before Geant4.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from dedkit.io.atomic import write_atomic

__all__ = ["write_npz"]


def write_npz(path, arrays: dict, *, record: bool = True) -> Path:
    """Write named arrays as an uncompressed ``.npz`` file (:func:`numpy.savez`), flushed
    to the disk, under a temporary name renamed into place.

    Parameters
    ----------
    path : path-like
        The file to write; its folder must exist.
    arrays : dict of str to array-like
        The archive's members.
    record : bool
        False for a working file, not an output (see :func:`dedkit.io.atomic.publish`).

    Returns
    -------
    pathlib.Path
        The archive, complete.

    Raises
    ------
    DedkitError
        The disk was full (:func:`dedkit.io.atomic.write_error`); no temporary is left.

    Examples
    --------
    >>> with np.load(write_npz("batch.npz", {"x": np.arange(3)}, record=False)) as z:
    ...     z["x"].tolist()
    [0, 1, 2]
    """
    # built in memory, then written in one call: a full disk fails that write (one line,
    # the temporary removed) rather than somewhere inside numpy's zip writer
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_atomic(path, buffer.getbuffer(), record=record, fsync=True)
