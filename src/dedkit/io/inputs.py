"""The one check every reader makes before it opens an input: is it a regular file?

Opening a named pipe (FIFO) for reading blocks until something writes to it, a character
device such as ``/dev/zero`` never ends, and a socket cannot be opened at all: a reader
that opens whatever it is given hangs or fails with an obscure error. Every reader in
:mod:`dedkit.io` calls :func:`check_input_file` (or :func:`check_input_path` where a folder
of frames is also accepted) first, which looks at the path with ``stat`` (this never
blocks) and refuses anything but a regular file with one line.

Decision (issue 13 item 9): dedkit reads only regular files (symbolic links to regular
files included); FIFOs, character and block devices, sockets and folders given where a
file is expected are refused with a :class:`~dedkit.errors.DedkitError` (exit status 2).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dedkit.errors import DedkitError

__all__ = ["check_input_file", "check_input_path"]

_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _stat(path: Path, what: str, missing: str) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise DedkitError(missing, path=path) from None
    except OSError as error:
        raise DedkitError(
            f"cannot read the {what}: {error.strerror or type(error).__name__}", path=path
        ) from None


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a special file"


def check_input_file(path, what: str = "file") -> Path:
    """``path`` as a Path when it is a regular file (or a link to one).

    Parameters
    ----------
    path : path-like
    what : str
        Names the input in the messages ("defect list", "mdoc file").

    Raises
    ------
    DedkitError
        When nothing is there, it is a folder, or it is a FIFO, a device or a socket.
    """
    path = Path(path)
    mode = _stat(path, what, "no such file").st_mode
    if stat.S_ISREG(mode):
        return path
    if stat.S_ISDIR(mode):
        raise DedkitError(f"is a folder, not a {what}", path=path)
    raise DedkitError(
        f"is {_kind(mode)}, not a regular file; dedkit reads only regular files", path=path
    )


def check_input_path(path, what: str = "file or folder") -> Path:
    """Like :func:`check_input_file`, but a folder is accepted too (frame folders)."""
    path = Path(path)
    if stat.S_ISDIR(_stat(path, what, "no such file or folder").st_mode):
        return path
    return check_input_file(path, what)
