"""How many threads one computation may use.

A movie aligned alone may use every core; movies aligned side by side (``dedkit align`` on
many movies, one per Dask worker) must share them, or two workers of two threads each
would fight over two cores. :func:`limit_threads` sets the count for the calling thread
(and the numba kernels it launches); :func:`thread_count` is what the FFTs, reductions
and kernels below it ask for.

Examples
--------
>>> with limit_threads(1):
...     thread_count()
1
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

__all__ = ["limit_threads", "thread_count"]

_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("dedkit_threads", default=None)


def thread_count() -> int:
    """Threads the current computation may use: the innermost :func:`limit_threads`, else
    every core of the machine.

    Examples
    --------
    >>> thread_count() >= 1
    True
    """
    limit = _LIMIT.get()
    return limit if limit is not None else (os.cpu_count() or 1)


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[int]:
    """Use at most ``n`` threads inside the block (None: every core).

    Sets the numba kernels' thread count of the calling thread too (numba's own rule:
    it applies to the parallel regions that thread launches) and restores it after.

    Examples
    --------
    >>> with limit_threads(2) as n:
    ...     n == thread_count() == 2
    True
    """
    cores = os.cpu_count() or 1
    n = cores if n is None else max(1, min(int(n), cores))
    token = _LIMIT.set(n)
    numba_before = None
    try:
        import numba

        numba_before = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    try:
        yield n
    finally:
        _LIMIT.reset(token)
        if numba_before is not None:
            import numba

            numba.set_num_threads(numba_before)
