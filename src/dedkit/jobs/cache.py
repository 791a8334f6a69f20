"""A disk cache of computed arrays (specimen images, Geant4 track libraries).

Results that take minutes to compute and are fixed by a few parameters are kept as
``.npz`` files in :func:`cache_dir`, one file per ``(name, key)``: the key (a JSON-able
dict of the parameters, versions of the programs that made the result included) is
hashed into the file name and stored in the file too, so a file answers only the key it
was made for. A file is written under a temporary name and renamed (two processes
computing the same key both write a complete file; the last rename wins). A file that
cannot be read (truncated, corrupt, another key) is recomputed and replaced, with a
warning; a cache folder that cannot be written costs the saving only, with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import write_atomic

__all__ = ["cache_dir", "cache_path", "cached_npz"]

#: the member of a cache file holding its key (JSON)
KEY_MEMBER = "__key__"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def cache_dir() -> Path:
    """The folder of dedkit's cache: ``$DEDKIT_CACHE``, else ``$XDG_CACHE_HOME/dedkit``,
    else ``~/.cache/dedkit`` (not created here).

    Examples
    --------
    >>> import os
    >>> os.environ["DEDKIT_CACHE"] = "cache"
    >>> cache_dir().name
    'cache'
    >>> del os.environ["DEDKIT_CACHE"]
    """
    explicit = os.environ.get("DEDKIT_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "dedkit"
    return Path.home() / ".cache" / "dedkit"


def _key_text(key: dict) -> str:
    try:
        return json.dumps(key, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except TypeError as e:
        raise DedkitError(f"a cache key must be JSON-able: {e}") from None


def cache_path(name: str, key: dict) -> Path:
    """The file that holds the result of ``name`` for ``key``.

    Examples
    --------
    >>> cache_path("specimen", {"a": 1}).name
    'specimen-015abd7f5cc57a2d.npz'
    """
    if not _NAME.fullmatch(name):
        raise DedkitError(f"cache name {name!r}: letters, digits, '_', '-', '.' only")
    digest = hashlib.sha256(_key_text(key).encode("utf-8")).hexdigest()[:16]
    return cache_dir() / f"{name}-{digest}.npz"


def _read(path: Path, key_text: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    stored = arrays.pop(KEY_MEMBER, None)
    if stored is None or str(stored) != key_text:
        raise ValueError("it was made for another key")
    return arrays


def cached_npz(
    name: str,
    key: dict,
    make: Callable[[], dict[str, np.ndarray]],
    *,
    progress=None,
) -> dict[str, np.ndarray]:
    """``make()``'s arrays, read from the cache when computed before for ``key``.

    Parameters
    ----------
    name : str
        What is cached (the file name's prefix: ``specimen``, ``tracks``...).
    key : dict
        JSON-able parameters that fix the result (include the versions of the programs
        that compute it).
    make : callable
        ``make() -> dict[str, numpy.ndarray]``: computes the result. Values are stored
        with ``numpy.savez`` without pickling: numeric or string arrays of any shape; a
        JSON-able scalar or dict goes in as a 0-d array (``np.asarray(3.5)``) or as a JSON
        string (``np.asarray(json.dumps(d))``), read back as the same 0-d array.
    progress : callable, optional
        ``progress(1, 1)`` when the result is read from the cache (a bar then completes);
        ``make`` reports its own progress while computing.

    Returns
    -------
    dict of str to numpy.ndarray
        The result, as read back (0-d arrays for scalars).

    Warns
    -----
    UserWarning
        A cache file that cannot be read (recomputed and replaced), or a cache folder
        that cannot be written (the result is returned, not kept).

    Examples
    --------
    >>> import os
    >>> os.environ["DEDKIT_CACHE"] = "cache"
    >>> calls = []
    >>> def make():
    ...     calls.append(1)
    ...     return {"x": np.arange(3), "note": np.asarray("made")}
    >>> first = cached_npz("demo", {"n": 3}, make)
    >>> again = cached_npz("demo", {"n": 3}, make)
    >>> len(calls), again["x"].tolist(), str(again["note"])
    (1, [0, 1, 2], 'made')
    >>> del os.environ["DEDKIT_CACHE"]
    """
    key_text = _key_text(key)
    path = cache_path(name, key)
    if path.exists():
        try:
            arrays = _read(path, key_text)
        except Exception as e:  # any unreadable file is recomputed, never fatal
            warnings.warn(
                f"{path}: unreadable cache file ({' '.join(str(e).split()) or type(e).__name__})"
                ": recomputing it",
                UserWarning,
                stacklevel=2,
            )
        else:
            if progress is not None:
                progress(1, 1)
            return arrays
    result = make()
    arrays = {k: np.asarray(v) for k, v in result.items()}
    if KEY_MEMBER in arrays:
        raise ValueError(f"{KEY_MEMBER!r} is reserved in a cache file")
    for k, v in arrays.items():
        if v.dtype == object:
            raise ValueError(f"cache member {k!r} is an object array (not storable)")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{KEY_MEMBER: np.asarray(key_text)})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue(), record=False)
    except (OSError, DedkitError) as e:
        warnings.warn(
            f"{path}: cannot write the cache file ({' '.join(str(e).split())}); "
            "the result is not kept",
            UserWarning,
            stacklevel=2,
        )
    return arrays
