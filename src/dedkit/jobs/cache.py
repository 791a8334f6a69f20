"""Results kept on disk between runs: :func:`cache_dir` and :func:`cached_npz`.

A stand-in with the API of issue 17's contract (helper A's module replaces it): a result
is a dict of numpy arrays stored as ``NAME-HASH.npz`` under :func:`cache_dir`, ``HASH``
made from the JSON of its key, written under a temporary name and renamed, so that an
interrupted run leaves no partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dedkit.io.atomic import atomic_output

__all__ = ["cache_dir", "cached_npz"]


def cache_dir() -> Path:
    """Folder of dedkit's cached results.

    ``$DEDKIT_CACHE``, else ``$XDG_CACHE_HOME/dedkit``, else ``~/.cache/dedkit``.

    Examples
    --------
    >>> os.environ["DEDKIT_CACHE"] = "cache"
    >>> cache_dir().name
    'cache'
    >>> del os.environ["DEDKIT_CACHE"]
    """
    if os.environ.get("DEDKIT_CACHE"):
        return Path(os.environ["DEDKIT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "dedkit"
    return Path.home() / ".cache" / "dedkit"


def cached_npz(
    name: str,
    key: dict,
    make: Callable[[], dict[str, np.ndarray]],
    *,
    progress=None,
) -> dict[str, np.ndarray]:
    """The arrays cached under ``name`` and ``key``, made by ``make()`` if absent.

    Parameters
    ----------
    name : str
        Kind of result (the start of the file name).
    key : dict
        JSON-ready description of everything the result depends on.
    make : callable
        Makes the arrays (numpy arrays only: they are stored without pickling).
    progress : callable, optional
        Unused here (``make`` reports its own progress).

    Returns
    -------
    dict of str to ndarray

    Examples
    --------
    >>> os.environ["DEDKIT_CACHE"] = "cache"
    >>> cached_npz("demo", {"n": 3}, lambda: {"a": np.arange(3)})["a"]
    array([0, 1, 2])
    >>> cached_npz("demo", {"n": 3}, lambda: {})["a"]  # from the file, not made again
    array([0, 1, 2])
    >>> del os.environ["DEDKIT_CACHE"]
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    folder = cache_dir()
    path = folder / f"{name}-{digest[:20]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    arrays = make()
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, record=False) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return arrays
