"""Output files that appear complete or not at all.

Every writer in dedkit writes to a hidden temporary name beside the final path and renames
it when complete (``os.replace`` is atomic within a file system), so an interrupted run
leaves no partial output and a failed run leaves an existing file untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from dedkit.errors import DedkitError


def check_output_path(output, inputs: Iterable = (), force: bool = False) -> Path:
    """Refuse an output that would overwrite an input, or an existing file without force.

    Parameters
    ----------
    output : path-like
        The path to be written.
    inputs : iterable of path-like
        Files the same command reads; none of them may be the output.
    force : bool
        Allow an existing output (that is not an input) to be replaced.

    Returns
    -------
    pathlib.Path
        The output path.
    """
    out = Path(output)
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(inp)
        same = out.resolve() == inp.resolve()
        if not same and out.exists() and inp.exists():
            same = os.path.samefile(out, inp)
        if same:
            raise DedkitError(f"output {out} is the same file as an input", path=out)
    if out.exists() and not force:
        raise DedkitError("output exists; use --force to overwrite it", path=out)
    if not out.parent.exists():
        raise DedkitError(f"output folder {out.parent} does not exist", path=out)
    return out


def temporary_sibling(path) -> Path:
    """A hidden name in the same folder as ``path`` (so the final rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.part-{os.getpid()}")


@contextlib.contextmanager
def atomic_output(path) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` only if the block completes.

    Works for a file or a folder written at the yielded path. On any exception the
    temporary is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    os.replace(tmp, path)


class CommitOnSuccess:
    """Mixin for writers with ``close()`` (finish and rename into place) and ``abort()``
    (discard): a ``with`` block closes on success and aborts on any exception."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
