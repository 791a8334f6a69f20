"""Writing large buffers to files quickly.

Copying data into the page cache costs one CPU core about 1 GB/s here, far below memory
bandwidth; the kernel does it in parallel when several threads write disjoint parts of
the file, so a large frame is written as a few chunks by a small pool of threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["pwrite_all"]

#: below this size a buffer is written by the calling thread alone
PARALLEL_MIN_BYTES = 8 << 20
WRITE_THREADS = 4

_pool: ThreadPoolExecutor | None = None


def _write_fully(fd: int, view: memoryview, offset: int) -> None:
    while len(view):
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def pwrite_all(fd: int, data, offset: int) -> int:
    """Write all of ``data`` (any buffer) at ``offset`` of the open file ``fd``.

    Returns the offset just past the data. Large buffers are split between threads.
    """
    global _pool
    view = memoryview(data).cast("B")
    n = len(view)
    if n < PARALLEL_MIN_BYTES:
        _write_fully(fd, view, offset)
        return offset + n
    if _pool is None:
        _pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="dedkit-write")
    chunk = -(-n // WRITE_THREADS)
    futures = [
        _pool.submit(_write_fully, fd, view[i : i + chunk], offset + i) for i in range(0, n, chunk)
    ]
    for f in futures:
        f.result()
    return offset + n
