"""Watching a folder for movies as a microscope writes them (``dedkit align --watch``).

:class:`MovieWatcher` reports each movie of a folder once it is complete: the file
passes :func:`dedkit.io.movies.movie_complete` (header, pages and frame mdoc) AND its
size and modification time have not changed for ``settle`` seconds. The second test is
what keeps a movie from being read while it is written: an MRC whose writer updates the
header after each frame, or a TIFF between two pages, passes the first test for a moment.

Events come from watchdog's inotify observer; on a network file system (NFS, SMB/CIFS,
FUSE mounts such as sshfs, Lustre, GPFS, ...) a client sees no inotify events for what
other machines write, so there, or when the observer cannot start (no inotify watches
left), the watcher polls. In both modes the folder is listed again every
``poll_interval`` seconds, so a missed event delays a movie but never loses it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dedkit.errors import DedkitError
from dedkit.io.movies import (
    MOVIE_SUFFIXES,
    dedkit_outputs,
    frame_mdoc_expected,
    frame_mdoc_path,
    is_dedkit_output,
    movie_complete,
)

__all__ = ["NETWORK_FS_TYPES", "MovieWatcher", "filesystem_type", "is_network_filesystem"]

#: File system types (``/proc/mounts``) on which inotify does not see other machines'
#: writes; any ``fuse.*`` type counts too.
NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "panfs",
        "davfs",
        "fuse",
        "fuseblk",
        "sshfs",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
    }
)


def _unescape_mount(text: str) -> str:
    # /proc/mounts writes blanks, tabs, newlines and backslashes as octal escapes
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 4].isdigit() and len(text[i + 1 : i + 4]) == 3:
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def filesystem_type(path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the file system ``path`` lies on, from ``/proc/mounts`` (Linux).

    Parameters
    ----------
    path : path-like
    mounts : path-like
        The mount table to read.

    Returns
    -------
    str or None
        The type of the longest mount point that contains ``path``; None where there is
        no mount table.

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("mounts").write_text("proc /proc proc rw 0 0\\n"
    ...     "server:/export /mnt/data nfs4 rw 0 0\\n/dev/sda1 / ext4 rw 0 0\\n")
    >>> filesystem_type("/mnt/data/session", mounts="mounts")
    'nfs4'
    >>> filesystem_type("/home", mounts="mounts")
    'ext4'
    """
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = -1, None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape_mount(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and len(point) > best:
            best, best_type = len(point), fields[2]
    return best_type


def is_network_filesystem(path, mounts: str = "/proc/mounts") -> bool:
    """Whether ``path`` lies on a network or FUSE file system (:data:`NETWORK_FS_TYPES`).

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("mounts").write_text("/dev/sda1 / ext4 rw 0 0\\n"
    ...     "sshfs#me@host: /mnt/remote fuse.sshfs rw 0 0\\n")
    >>> is_network_filesystem("/mnt/remote/frames", mounts="mounts")
    True
    >>> is_network_filesystem("/tmp", mounts="mounts")
    False
    """
    kind = filesystem_type(path, mounts)
    if kind is None:
        return False
    return kind in NETWORK_FS_TYPES or kind.startswith("fuse.")


@dataclass
class _Seen:
    """What the watcher knows of one file."""

    signature: tuple  # (size, mtime_ns, frame mdoc present)
    since: float  # monotonic time the signature was first seen
    checked: tuple | None = None  # signature movie_complete last judged
    reason: str = "not settled yet"


class MovieWatcher:
    """Reports the movies of a folder once they are completely written.

    Parameters
    ----------
    folder : path-like
        The folder SerialEM (or any writer) saves movies to; not searched recursively.
    settle : float
        Seconds a movie's size and modification time must stay unchanged before it is
        reported (and it must pass :func:`~dedkit.io.movies.movie_complete`).
    poll : bool or None
        True: poll; False: inotify only (an error if the observer cannot start); None
        (default): inotify unless the folder is on a network file system
        (:func:`is_network_filesystem`) or the observer fails to start.
    poll_interval : float
        Seconds between two listings of the folder (in both modes).
    patterns : tuple of str
        Suffixes of the files to watch (lower case, with the dot).
    mdoc : bool or None
        Whether each movie must have its SerialEM frame mdoc: None (default) from the
        moment the folder holds the frame mdoc of any movie.

    Attributes
    ----------
    mode : str
        'inotify' or 'polling' (after :meth:`start`).
    mode_reason : str
        Why polling was chosen, where it was.

    Notes
    -----
    Each movie is reported once per watcher, also those already complete when it starts;
    a new watcher reports them again (skipping finished movies is the session's job).
    Hidden files and dedkit's own outputs (:func:`~dedkit.io.movies.is_dedkit_output`)
    are never reported. A movie that stays incomplete (a truncated file) is never
    reported; :meth:`waiting` says which movies wait and why.

    Examples
    --------
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from dedkit.io.mrc import MrcWriter
    >>> Path("frames").mkdir()
    >>> with MovieWatcher("frames", settle=0.2, poll_interval=0.1) as watcher:
    ...     with MrcWriter("frames/m_001.mrc", (2, 4, 4), np.int16) as w:
    ...         for _ in range(2):
    ...             w.write(np.zeros((4, 4), np.int16))
    ...     print([p.name for p in watcher.ready(timeout=5)])
    ['m_001.mrc']
    """

    def __init__(
        self,
        folder,
        *,
        settle: float = 5.0,
        poll: bool | None = None,
        poll_interval: float = 2.0,
        patterns=MOVIE_SUFFIXES,
        mdoc: bool | None = None,
    ):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DedkitError("cannot watch: not a folder", path=self.folder)
        if settle < 0 or poll_interval <= 0:
            raise DedkitError(
                f"settle ({settle}) must be >= 0 and poll_interval ({poll_interval}) > 0"
            )
        self.settle = float(settle)
        self.poll = poll
        self.poll_interval = float(poll_interval)
        self.patterns = tuple(p.lower() for p in patterns)
        self.mdoc = mdoc
        self.mode: str | None = None
        self.mode_reason = ""
        self._observer = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._dirty: set[str] = set()
        self._seen: dict[str, _Seen] = {}
        self._returned: set[str] = set()
        self._mdoc_expected = bool(mdoc)
        self._last_scan = -float("inf")
        self._stopped = False

    # -- life cycle -------------------------------------------------------------------

    def __enter__(self) -> MovieWatcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Start watching: the inotify observer, or polling (see ``poll``)."""
        if self.mode is not None:
            return
        if self.poll:
            self.mode, self.mode_reason = "polling", "polling asked for"
            return
        if self.poll is None and is_network_filesystem(self.folder):
            kind = filesystem_type(self.folder)
            self.mode = "polling"
            self.mode_reason = f"the folder is on a {kind} file system (no inotify events)"
            return
        try:
            self._observer = self._start_observer()
        # watchdog raises OSError (inotify limits) or its own errors; either way poll
        except Exception as error:
            if self.poll is False:
                raise DedkitError(f"cannot watch with inotify: {error}", path=self.folder) from None
            self.mode = "polling"
            self.mode_reason = f"the inotify observer did not start ({error})"
            return
        self.mode = "inotify"

    def _start_observer(self):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers.inotify import InotifyObserver

        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.is_directory:
                    return
                paths = [event.src_path, getattr(event, "dest_path", "")]
                with watcher._lock:
                    watcher._dirty.update(os.fsdecode(p) for p in paths if p)
                watcher._wake.set()

        observer = InotifyObserver(timeout=min(1.0, self.poll_interval))
        observer.schedule(_Handler(), os.fspath(self.folder), recursive=False)
        observer.daemon = True
        observer.start()
        return observer

    def stop(self) -> None:
        """Stop watching (the observer thread ends); :meth:`ready` then reports nothing new."""
        self._stopped = True
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        self._wake.set()

    # -- queries ----------------------------------------------------------------------

    def waiting(self) -> dict[Path, str]:
        """Movies seen but not reported yet, with why (not settled, or incomplete).

        Examples
        --------
        >>> from pathlib import Path
        >>> Path("w").mkdir(); _ = Path("w/m.mrc").write_bytes(b"MRC?")
        >>> with MovieWatcher("w", settle=0, poll=True) as watcher:
        ...     watcher.ready(timeout=0)
        ...     print(watcher.waiting())
        []
        {PosixPath('w/m.mrc'): 'MRC file of 4 bytes, shorter than its 1024-byte header'}
        """
        with self._lock:
            items = [(k, s.reason) for k, s in self._seen.items() if k not in self._returned]
        return {Path(k): reason for k, reason in sorted(items)}

    def stalled(self, seconds: float) -> dict[Path, str]:
        """Movies judged incomplete whose size and modification time have not changed for
        ``seconds``: truncated or corrupt files a session may report as failed.

        Parameters
        ----------
        seconds : float

        Returns
        -------
        dict of Path to str
            Each movie with the reason :func:`~dedkit.io.movies.movie_complete` gave.

        Examples
        --------
        >>> from pathlib import Path
        >>> Path("st").mkdir(); _ = Path("st/m.tif").write_bytes(b"II*\\x00")
        >>> with MovieWatcher("st", settle=0, poll=True) as watcher:
        ...     _ = watcher.ready(timeout=0)
        ...     print(list(watcher.stalled(0)), list(watcher.stalled(60)))
        [PosixPath('st/m.tif')] []
        """
        now = time.monotonic()
        with self._lock:
            items = [
                (key, seen.reason)
                for key, seen in self._seen.items()
                if key not in self._returned
                and seen.checked == seen.signature
                and now - seen.since >= seconds
            ]
        return {Path(key): reason for key, reason in sorted(items)}

    def ready(self, timeout: float | None = 0.0) -> list[Path]:
        """Movies that became complete since the last call, each reported once.

        Parameters
        ----------
        timeout : float or None
            Seconds to wait for at least one: 0 (default) looks once and returns; None
            waits until one is ready or the watcher is stopped.

        Returns
        -------
        list of Path
            Sorted by name; empty when none became ready in time.
        """
        if self.mode is None:
            self.start()
        if self._stopped:
            return []
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            self._wake.clear()
            found, next_due = self._pass()
            if found:
                return found
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return []
            if self._stopped:
                return []
            wait = max(0.0, min(next_due, self._last_scan + self.poll_interval) - now)
            if deadline is not None:
                wait = min(wait, deadline - now)
            # woken early by an inotify event; slices keep Ctrl-C responsive
            self._wake.wait(min(max(wait, 0.01), 1.0))

    # -- one look at the folder -------------------------------------------------------

    def _wanted(self, name: str) -> bool:
        return not name.startswith(".") and name.lower().endswith(self.patterns)

    def _scan(self) -> set[str]:
        """Names to look at: the whole folder (every poll_interval) or the changed ones."""
        now = time.monotonic()
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        if now - self._last_scan < self.poll_interval:
            return dirty
        self._last_scan = now
        try:
            names = set(os.listdir(self.folder))
        except OSError:
            return dirty
        if not self._mdoc_expected and self.mdoc is None:
            self._mdoc_expected = frame_mdoc_expected(self.folder, names=names)
        outputs = dedkit_outputs(names)
        listed = {os.fspath(self.folder / n) for n in names if self._wanted(n) and n not in outputs}
        return listed | dirty

    def _pass(self) -> tuple[list[Path], float]:
        """Look once; returns the movies found ready and when the next look is due."""
        keys = self._scan() | set(self._seen)
        now = time.monotonic()
        found: list[Path] = []
        next_due = float("inf")
        use_mdoc = self._mdoc_expected if self.mdoc is None else self.mdoc
        for key in keys:
            if key in self._returned:
                continue
            path = Path(key)
            if not self._wanted(path.name) or path.parent != self.folder:
                continue
            try:
                info = path.stat()
            except OSError:
                with self._lock:
                    self._seen.pop(key, None)
                continue
            mdoc_there = use_mdoc and frame_mdoc_path(path).exists()
            signature = (info.st_size, info.st_mtime_ns, mdoc_there)
            with self._lock:
                seen = self._seen.get(key)
                if seen is None or seen.signature != signature:
                    seen = _Seen(signature, now)
                    self._seen[key] = seen
            if now - seen.since < self.settle:
                seen.reason = "size or modification time changed in the last settle seconds"
                next_due = min(next_due, seen.since + self.settle)
                continue
            if seen.checked == signature:
                continue  # judged incomplete as it is; wait for a change
            if is_dedkit_output(path):
                seen.checked, seen.reason = signature, "a dedkit output"
                continue
            done, reason = movie_complete(path, mdoc=use_mdoc)
            seen.checked, seen.reason = signature, reason
            if done:
                found.append(path)
        with self._lock:
            for path in found:
                self._returned.add(os.fspath(path))
                self._seen.pop(os.fspath(path), None)
        return sorted(found, key=lambda p: p.name), next_due
