"""Frame-by-frame pipelines that overlap reading, computing and writing.

A stack is processed as a sequence of frames: while frame i is computed, frame i + 1 is
read and frame i - 1 is written, each in its own thread (file reads and writes and the
numba kernels all release the GIL). At most one frame is in each stage, so memory stays
at a few frames whatever the stack length.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

ProgressCallback = Callable[[int, int], None]


def run_pipeline(
    n_frames: int,
    read: Callable[[int], object],
    compute: Callable[[int, object], object],
    write: Callable[[int, object], None],
    *,
    progress: ProgressCallback | None = None,
) -> None:
    """Run ``write(i, compute(i, read(i)))`` for every frame, stages overlapped.

    Parameters
    ----------
    n_frames : int
    read, compute, write : callables
        Called in frame order; ``write`` calls are strictly sequential, as are ``read``
        calls. An exception in any stage stops the pipeline and is re-raised.
    progress : callable(done, total), optional
        Called after each frame is written.
    """
    if n_frames <= 0:
        return
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dedkit-io") as pool:
        next_read: Future = pool.submit(read, 0)
        pending_write: Future | None = None
        for i in range(n_frames):
            data = next_read.result()
            if i + 1 < n_frames:
                next_read = pool.submit(read, i + 1)
            result = compute(i, data)
            del data
            if pending_write is not None:
                pending_write.result()
                if progress is not None:
                    progress(i, n_frames)
            pending_write = pool.submit(write, i, result)
            del result
        pending_write.result()
        if progress is not None:
            progress(n_frames, n_frames)
