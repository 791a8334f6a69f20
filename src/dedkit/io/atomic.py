"""Output files that appear complete or not at all, and the rules every output follows.

Every writer in dedkit writes to a hidden temporary name beside the final path and renames
it when complete (``os.replace`` is atomic within a file system), so an interrupted run
leaves no partial output and a failed run leaves an existing file untouched.

The rules (one check, :func:`check_outputs`, called by every command with all of its
outputs and all of its inputs, before anything is read or written):

- an output is never an input, never a folder holding an input, never inside an input
  folder, and never the same path as (or inside) another output of the same command;
- an existing output is replaced only with ``force``;
- a file output never replaces a folder, even with ``force``;
- a folder output replaces an existing folder (``force``) only when that folder is a dedkit
  output of the same kind holding nothing but what dedkit wrote there. Each folder dedkit
  writes carries a small manifest, :data:`MARKER`, naming its kind and its files;
  ``--force`` never deletes anything dedkit did not create;
- figures have an image suffix (:data:`FIGURE_SUFFIXES`);
- nothing is written inside the installed dedkit package (:data:`PACKAGE_DIR`, the shipped
  model among it): it is read-only to dedkit.

Write failures (a full disk, a quota, a file too large) become one :class:`DedkitError`
naming the output (:func:`write_error`) and the partial output is removed. Outputs
renamed into place during a command are recorded (:func:`published`), so that an
interrupted command can say truly what it had already written.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dedkit.errors import DedkitError

__all__ = [
    "FIGURE_SUFFIXES",
    "MARKER",
    "CommitOnSuccess",
    "FolderOutput",
    "StagedOutputs",
    "atomic_output",
    "check_free_space",
    "check_output_path",
    "check_outside_package",
    "check_outputs",
    "figure_format",
    "publish",
    "published",
    "remove_owned_folder",
    "note_published",
    "remove_dead_temporaries",
    "reset_published",
    "temporary_sibling",
    "write_atomic",
    "write_error",
    "writing",
]

#: the installed dedkit package: read-only to dedkit (a model card or record written there
#: would change what every later run trusts)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: the manifest dedkit leaves in every folder it writes: its kind and its files
MARKER = ".dedkit-output.json"
#: suffixes a figure may have (matplotlib picks the format from the suffix)
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
#: errors of a write that found no room: reported as "cannot write: <strerror>"
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: room kept free beyond an estimated output size (file-system metadata, other writers)
FREE_SPACE_MARGIN = 1 << 20


@dataclass(frozen=True)
class FolderOutput:
    """A folder a command writes, with its kind (e.g. ``"numbered images"``): an existing
    folder is replaced only when it is a dedkit output of the same kind."""

    path: Path
    kind: str

    def __init__(self, path, kind: str):
        object.__setattr__(self, "path", Path(path))
        object.__setattr__(self, "kind", str(kind))


# ---------------------------------------------------------------------------- the check


def check_outputs(outputs, inputs: Iterable = (), force: bool = False, *, figures=()) -> list:
    """Refuse outputs that would lose or change data; the one check every command calls.

    Parameters
    ----------
    outputs : iterable of path-like or FolderOutput
        Every file (path) and folder (:class:`FolderOutput`) the command writes; None
        entries are skipped.
    inputs : iterable of path-like
        Every file or folder the command reads (None entries skipped); none of them may
        be an output, lie inside a folder output, or hold an output inside it.
    force : bool
        Allow existing outputs to be replaced (within the rules of the module docstring).
    figures : iterable of path-like
        Figure outputs: file outputs that must end in one of :data:`FIGURE_SUFFIXES`.

    Returns
    -------
    list of pathlib.Path
        The output paths (outputs, then figures), in order.

    Raises
    ------
    DedkitError
        One line naming the output and the rule it breaks; nothing has been written.
    """
    items = [o if isinstance(o, FolderOutput) else Path(o) for o in outputs if o is not None]
    for figure in figures:
        if figure is None:
            continue
        figure = Path(figure)
        if figure.suffix.lower() not in FIGURE_SUFFIXES:
            raise DedkitError(
                f"a figure needs an image suffix ({', '.join(FIGURE_SUFFIXES)})", path=figure
            )
        items.append(figure)
    inputs = [Path(p) for p in inputs if p is not None]
    paths = [_path_of(item) for item in items]
    for path in paths:
        check_outside_package(path)
        _check_not_current_folder(path)
    for i, a in enumerate(paths):
        for b in paths[:i]:
            if _same(a, b):
                raise DedkitError(f"two outputs are the same file ({b} and {a})", path=a)
            if _within(a, b) or _within(b, a):
                raise DedkitError(f"one output is inside another ({b} and {a})", path=a)
    for item in items:
        _check_one(item, inputs, force)
    return paths


def check_output_path(output, inputs: Iterable = (), force: bool = False) -> Path:
    """:func:`check_outputs` for a single file output; returns its path."""
    return check_outputs([output], inputs, force)[0]


def _path_of(item) -> Path:
    return item.path if isinstance(item, FolderOutput) else item


def _resolved(p: Path) -> Path:
    return Path(os.path.realpath(p))


def _same(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _within(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` lies inside the folder ``outer`` (both resolved)."""
    return _resolved(outer) in _resolved(inner).parents


def _check_one(item, inputs: list[Path], force: bool) -> None:
    out = _path_of(item)
    folder_kind = item.kind if isinstance(item, FolderOutput) else None
    for inp in inputs:
        if _same(out, inp):
            raise DedkitError("output is the same file as an input", path=out)
        if _within(inp, out):
            raise DedkitError(f"output would hold the input {inp}", path=out)
        if inp.is_dir() and _within(out, inp):
            raise DedkitError(f"output is inside the input folder {inp}", path=out)
    if not out.parent.is_dir():
        raise DedkitError(f"output folder {out.parent} does not exist", path=out)
    if folder_kind is None:
        if out.is_dir():
            raise DedkitError(
                "output is an existing folder; dedkit never replaces a folder by a file "
                "(even with --force): remove it or choose another name",
                path=out,
            )
        if (out.exists() or out.is_symlink()) and not force:
            raise DedkitError("output exists; use --force to overwrite it", path=out)
        return
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DedkitError(
            "output exists and is not a folder; dedkit replaces only a folder it wrote",
            path=out,
        )
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DedkitError(
                "output folder exists and is not empty; use --force to replace it", path=out
            )
        check_replaceable(out, folder_kind)


# --------------------------------------------------------------------- folder manifests


def _entries(folder: Path) -> set[str]:
    """Relative names of everything under ``folder`` (symbolic links not followed)."""
    found = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in dirs + files:
            found.add(str(rel / name) if str(rel) != "." else name)
    return found


def _stamp(path: Path) -> list[int] | None:
    """[size, mtime in ns] of a regular file (not following links), else None."""
    info = path.lstat()
    return [info.st_size, info.st_mtime_ns] if stat.S_ISREG(info.st_mode) else None


def write_manifest(folder, kind: str) -> None:
    """Write :data:`MARKER` into ``folder``: its kind and every entry dedkit put there."""
    from dedkit import __version__

    folder = Path(folder)
    names = sorted(_entries(folder) - {MARKER})
    manifest = {
        "dedkit_output": kind,
        "dedkit": __version__,
        "files": names,
        # size and modification time of each file: one changed (or swapped in) since is
        # the user's, and the folder is then not replaced
        "stamps": {n: _stamp(folder / n) for n in names if _stamp(folder / n) is not None},
    }
    (folder / MARKER).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def check_replaceable(folder, kind: str) -> None:
    """Refuse to replace ``folder`` unless it is a dedkit output of kind ``kind`` holding
    only the entries its manifest lists."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        written_kind, listed = manifest["dedkit_output"], set(manifest["files"])
        stamps = dict(manifest["stamps"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DedkitError(
            "output folder was not written by dedkit; refusing to replace it "
            "(remove it yourself or choose another name)",
            path=folder,
        ) from None
    if written_kind != kind:
        raise DedkitError(
            f"output folder is a dedkit {written_kind} output, not {kind}; refusing to replace it",
            path=folder,
        )
    present = _entries(folder)
    foreign = sorted(present - listed - {MARKER})
    # a listed file changed since (edited, or a file of the user's under a listed name)
    foreign += sorted(n for n in listed & present if _stamp(folder / n) != (stamps.get(n) or None))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise DedkitError(
            f"output folder holds files dedkit did not write there or that were changed "
            f"since ({shown}); refusing to replace it",
            path=folder,
        )


def remove_owned_folder(folder, pattern: str) -> None:
    """Delete a working folder dedkit keeps beside an output (a checkpoint, unfinished
    parts) whose entries all match the regular expression ``pattern``; refuse, deleting
    nothing, when it holds anything else (it is then not dedkit's)."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise DedkitError("is in the way and is not a folder dedkit made; remove it", path=folder)
    foreign = sorted(n for n in _entries(folder) if not re.fullmatch(pattern, n))
    if foreign:
        raise DedkitError(
            f"folder holds files dedkit did not write there ({', '.join(foreign[:3])}); "
            "refusing to remove it",
            path=folder,
        )
    shutil.rmtree(folder)


def figure_format(path) -> str:
    """matplotlib's format name for a figure path (its suffix, see :data:`FIGURE_SUFFIXES`)."""
    suffix = Path(path).suffix.lower()
    return suffix[1:] if suffix in FIGURE_SUFFIXES else "png"


# ------------------------------------------------------------------ temporaries, commits


def temporary_sibling(path) -> Path:
    """A hidden name in the same folder as ``path`` (so the final rename is atomic)."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        # "." or "..": the sibling of the folder they name
        path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.part-{os.getpid()}")


#: outputs renamed into place (the last few thousand: a long-lived process using the
#: Python API does not grow without bound)
_published: collections.deque[Path] = collections.deque(maxlen=4096)


def _check_not_current_folder(path: Path) -> None:
    # an output is written beside its final name and renamed into place: the folder a
    # command runs in (".", "..", or their spelled-out paths) cannot be replaced that way
    # without pulling the ground from under the user's shell
    resolved, here = path.resolve(), Path.cwd().resolve()
    if path.name in ("", ".", "..") or resolved == here or resolved in here.parents:
        raise DedkitError(
            "output is the current folder or one above it; name a new file or folder "
            "(dedkit writes an output beside its name and renames it into place)",
            path=path,
        )


def check_outside_package(path) -> Path:
    """Refuse to write ``path`` when it lies inside the installed dedkit package.

    Raises
    ------
    DedkitError

    Examples
    --------
    >>> check_outside_package("events.h5")
    PosixPath('events.h5')
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved == PACKAGE_DIR or PACKAGE_DIR in resolved.parents:
        raise DedkitError(
            "will not write inside the installed dedkit package (it is read-only to "
            "dedkit); write to a folder of your own",
            path=path,
        )
    return path


def publish(temporary, path, *, record: bool = True) -> Path:
    """Rename a finished temporary into place and record it (see :func:`published`).

    A folder ``temporary`` replaces an existing folder ``path`` only if that is empty or
    :func:`check_replaceable` allows it; the old folder is moved aside before and
    deleted after the rename, and put back if the rename fails. ``record=False``: a
    working file (a checkpoint), not an output, and not listed as written.
    """
    temporary, path = Path(temporary), Path(path)
    check_outside_package(path)
    if path.is_dir() and not path.is_symlink() and any(path.iterdir()):
        kind = _manifest_kind(temporary)
        if kind is None:
            raise DedkitError("output is an existing folder; refusing to replace it", path=path)
        check_replaceable(path, kind)
        aside = path.with_name(f".{path.name}.old-{os.getpid()}")
        _remove(aside)
        os.replace(path, aside)
        try:
            os.replace(temporary, path)
        except BaseException:
            os.replace(aside, path)
            raise
        _remove(aside)
    else:
        os.replace(temporary, path)
    if record:
        _published.append(path)
    return path


def _manifest_kind(folder: Path) -> str | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))["dedkit_output"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def published() -> list[Path]:
    """Outputs renamed into place since :func:`reset_published` that still exist (an output
    written inside a temporary folder that was then discarded does not count)."""
    seen, out = set(), []
    for p in _published:
        if p not in seen and (p.exists() or p.is_symlink()) and ".part-" not in str(p):
            seen.add(p)
            out.append(p)
    return out


#: a temporary of this module: one or more dots, the final name (or stem), ".part-PID"
_TEMPORARY = re.compile(r"^\.+(?P<base>.+?)\.part-(?P<pid>\d+)")


def remove_dead_temporaries(paths) -> list[Path]:
    """Remove the temporaries of ``paths`` (named as :func:`temporary_sibling` and
    :class:`StagedOutputs` name them, nested ones included) that processes of this
    machine which no longer run left behind: a process killed while writing.

    Each folder is listed once. Temporaries of running processes, and of this one, are
    kept (they may still be written).

    Returns
    -------
    list of pathlib.Path
        The files removed.

    Examples
    --------
    >>> _ = Path(".sum.part-999999999.mrc").write_bytes(b"")
    >>> _ = Path(f".sum.part-{os.getpid()}.mrc").write_bytes(b"")
    >>> [p.name for p in remove_dead_temporaries(["sum.mrc"])]
    ['.sum.part-999999999.mrc']
    """
    by_folder: dict[Path, set[str]] = collections.defaultdict(set)
    for path in map(Path, paths):
        by_folder[path.parent] |= {path.name, path.stem}
    removed = []
    for folder, bases in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match is None or match["base"] not in bases:
                continue
            pid = int(match["pid"])
            if pid == os.getpid() or _pid_alive(pid):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # none such (a number beyond any PID)
        return False
    except PermissionError:  # another user's
        return True
    return True


def note_published(paths) -> None:
    """Record outputs another process renamed into place for this command (a Dask worker's
    movie), so that an interrupted command names them among what it wrote."""
    for path in paths:
        _published.append(Path(path))


def reset_published() -> None:
    """Forget the outputs recorded so far (the command line calls it per command)."""
    _published.clear()


class StagedOutputs:
    """Several outputs of one run, each written under a temporary name (its suffix kept:
    writers pick the format from it) and all renamed into place together by
    :meth:`commit`: all or none. An output already there is moved aside first and put
    back if any rename fails; :meth:`discard` removes the temporaries (a failed run).

    Examples
    --------
    >>> staged = StagedOutputs()
    >>> for name in ("a.txt", "b.txt"):
    ...     _ = staged.temporary(name).write_text(name)
    >>> staged.commit()
    >>> open("b.txt").read()
    'b.txt'
    """

    def __init__(self):
        self.items: list[tuple[Path, Path]] = []

    def temporary(self, final) -> Path:
        """The temporary name to write ``final`` under."""
        final = Path(final)
        tmp = final.with_name(f".{final.stem}.part-{os.getpid()}{final.suffix}")
        self.items.append((tmp, final))
        return tmp

    def commit(self) -> None:
        """Rename every temporary into place, or none of them."""
        pid = os.getpid()
        asides, done = [], []
        try:
            for _, final in self.items:
                if final.exists() or final.is_symlink():
                    aside = final.with_name(f".{final.name}.old-{pid}")
                    os.replace(final, aside)
                    asides.append((aside, final))
            for tmp, final in self.items:
                publish(tmp, final)
                done.append(final)
        except BaseException:
            for final in done:
                final.unlink(missing_ok=True)
            for aside, final in asides:
                os.replace(aside, final)
            raise
        finally:
            self.discard()
        for aside, _ in asides:
            aside.unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove the temporaries (those not yet renamed)."""
        for tmp, _ in self.items:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path, kind: str | None = None, *, record: bool = True) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` only if the block completes.

    Works for a file or a folder written at the yielded path; a folder gets the manifest
    :data:`MARKER` of kind ``kind`` (default ``"folder"``) before it is renamed, and
    replaces an existing folder only as :func:`publish` allows. On any exception,
    including a failing rename, the temporary is removed and ``path`` is left as it was;
    a write failure (full disk...) becomes a :class:`DedkitError` naming ``path``.
    ``record=False`` for a working file, not an output (see :func:`publish`).
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    _remove(tmp)
    try:
        with writing(path):
            yield tmp
            if tmp.is_dir() and not tmp.is_symlink():
                write_manifest(tmp, kind or "folder")
            publish(tmp, path, record=record)
    except DedkitError as error:
        _remove(tmp)
        # an error about a file inside the temporary folder names it as it would be
        inside = error.path is not None and Path(error.path).is_relative_to(tmp)
        if inside and str(error).startswith(error.path + ": "):
            where = path / Path(error.path).relative_to(tmp)
            raise DedkitError(str(error)[len(error.path) + 2 :], path=where) from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def write_atomic(path, data, *, record: bool = True, fsync: bool = False) -> Path:
    """Write a whole file at once, under a temporary name renamed into place.

    The one-call form of :func:`atomic_output` for data already in memory.

    Parameters
    ----------
    path : path-like
        The file to write (its folder must exist).
    data : bytes-like or str
        The file's bytes; a str is written as UTF-8 with its newlines as they are.
    record : bool
        False for a working file, not an output (see :func:`publish`).
    fsync : bool
        Flush the data to the disk before the rename, so that the name never appears
        with data a crash of the machine could still lose.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    DedkitError
        A write that failed for lack of room (:func:`write_error`); the temporary is
        removed and an existing ``path`` left as it was.

    Examples
    --------
    In an empty folder:

    >>> write_atomic("note.txt", "hello\\n", record=False).read_text()
    'hello\\n'
    >>> sorted(p.name for p in Path().iterdir())  # no temporary file is left behind
    ['note.txt']
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = Path(path)
    with atomic_output(path, record=record) as temporary, open(temporary, "wb") as file:
        file.write(data)
        if fsync:
            file.flush()
            os.fsync(file.fileno())
    return path


class CommitOnSuccess:
    """Mixin for writers with ``close()`` (finish and rename into place) and ``abort()``
    (discard): a ``with`` block closes on success and aborts on any exception; a write
    failure in the block or in ``close`` becomes a :class:`DedkitError` naming
    ``self.path`` (see :func:`write_error`)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException as error:
                self.abort()
                converted = self._write_failure(error)
                if converted is not None:
                    raise converted from None
                raise
            return
        self.abort()
        converted = self._write_failure(exc)
        if converted is not None:
            raise converted from None

    def _write_failure(self, error: BaseException) -> DedkitError | None:
        """The one line to raise for ``error`` (None: raise it as it is); writers that
        record their failed writes override this."""
        return write_error(getattr(self, "path", None), error)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# -------------------------------------------------------------------------- write failures

_NO_SPACE = re.compile(r"no space left on device|disk quota exceeded|file too large", re.I)
#: numpy's ``tofile``: a short write without errno
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def write_error(path, error: BaseException) -> DedkitError | None:
    """The one-line error for a write that failed for lack of room, or None.

    Recognised: ``OSError`` with errno ENOSPC, EDQUOT or EFBIG; messages of HDF5 and
    other libraries that say so; numpy's short write ("N requested and M written"),
    reported as a full disk when the output's file system has no room left.
    """
    if path is None or isinstance(error, DedkitError) or not isinstance(error, Exception):
        return None
    path = Path(path)
    cause = None
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        cause = os.strerror(error.errno)
    else:
        text = str(error)
        match = _NO_SPACE.search(text)
        if match:
            cause = {"n": "No space left on device", "d": "Disk quota exceeded"}.get(
                match[0][0].lower(), "File too large"
            )
        elif isinstance(error, OSError) and _SHORT_WRITE.search(text):
            cause = "No space left on device" if _free_bytes(path) < (1 << 20) else "short write"
    if cause is None:
        return None
    return DedkitError(f"cannot write: {cause}", path=path)


@contextlib.contextmanager
def writing(path) -> Iterator[None]:
    """Turn a write failure inside the block into :func:`write_error`'s one line."""
    try:
        yield
    except Exception as error:
        converted = write_error(path, error)
        if converted is not None:
            raise converted from None
        raise


def _free_bytes(path: Path) -> int:
    folder = path if path.is_dir() else path.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def check_free_space(path, nbytes: int) -> None:
    """Refuse to start writing ``nbytes`` (an estimate) at ``path`` when its file system
    has not that much room plus :data:`FREE_SPACE_MARGIN` free.

    Cheap and before anything is written: a write that fails later still ends with one
    line (:func:`write_error`), but a full disk found first costs no time.
    """
    path = Path(path)
    free = _free_bytes(path)
    need = int(nbytes) + FREE_SPACE_MARGIN
    if free < need:
        raise DedkitError(
            f"cannot write: No space left on device (about {_size(need)} needed, "
            f"{_size(free)} free)",
            path=path,
        )


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB" if n < 1e6 else f"{n:.3g} GB"
