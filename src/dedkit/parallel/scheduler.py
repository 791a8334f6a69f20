"""Running chunk functions on Dask distributed.

Two patterns cover the hybrid-pixel pipeline:

- :func:`run_chained`: chunk i needs the state left by chunk i - 1 (a running pedestal),
  so the finding runs chunk after chunk, each task taking the previous task's state,
  while the results of earlier chunks are already being gathered and consumed.
- :func:`run_independent`: chunks do not depend on each other and run in parallel.

Either way results are handed to ``consume`` in chunk order, at most ``window`` chunks are
in flight (bounded memory whatever the run length), and every task is retried when it
fails or its worker dies: Dask reschedules the tasks of a lost worker on another one, and
since results travel back to the client only when a task completes, a frame is never lost
or counted twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.parallel.chunks import Chunk

__all__ = ["MAX_WORKERS", "check_workers", "dask_client", "run_chained", "run_independent",
           "TASK_RETRIES"]  # fmt: skip

#: Times a task that raised is retried (lost workers are handled by the scheduler's
#: own ``allowed-failures``, 3 by default).
TASK_RETRIES = 2
#: Most worker processes of a LocalCluster. Each is a Python process of its own (some
#: 100 MB); 256 is more than the cores of any one machine, and a fixed bound (rather than
#: a multiple of this machine's cores) says the same everywhere (issue 13 item 11).
MAX_WORKERS = 256


def check_workers(n_workers: int | None) -> int | None:
    """``n_workers`` (None: one per core; 0: no cluster) when 0 to :data:`MAX_WORKERS`.

    Raises
    ------
    DedkitError
        Anything else (a negative, huge or non-integer count).
    """
    if n_workers is None:
        return None
    if isinstance(n_workers, bool) or not isinstance(n_workers, int | np.integer):
        raise DedkitError(f"the number of workers must be a whole number, not {n_workers!r}")
    if not 0 <= n_workers <= MAX_WORKERS:
        raise DedkitError(f"the number of workers must be 0 to {MAX_WORKERS}, got {n_workers}")
    return int(n_workers)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None, *, n_workers: int | None = None, threads_per_worker: int = 1
) -> Iterator:
    """A distributed Client: connected to ``scheduler`` (an address such as
    ``tcp://host:8786``) or to a new LocalCluster of worker processes (one per core by
    default, at most :data:`MAX_WORKERS`), closed on exit."""
    n_workers = check_workers(n_workers)
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - dask is a dependency
        raise DedkitError("running on Dask needs the 'distributed' package") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise DedkitError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        except (ValueError, TypeError) as e:
            # an address Dask cannot parse (issue 13 item 11: '--scheduler banana')
            raise DedkitError(
                f"{scheduler!r} is not a Dask scheduler address such as tcp://host:8786 "
                f"({one_line(e)})"
            ) from None
        with client:
            yield client
        return
    import dask

    # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, and glibc switches off
    # its adaptive mmap threshold when that variable is set: every large array is then
    # mapped afresh and its pages faulted in again. Measured on dedkit align: 2 to 3
    # times the time of the same movie outside Dask, most of it system time
    # (benchmarks/bench_session.py); None is distributed's way to leave it unset.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
        )
    with cluster, Client(cluster) as client:
        yield client


def run_chained(
    client,
    chunks: Sequence[Chunk],
    fn: Callable,
    initial_state,
    *args,
    consume: Callable[[Chunk, object], None],
    window: int = 4,
) -> object:
    """Run ``fn(chunk, state, *args) -> (result, new_state)`` chunk after chunk.

    Parameters
    ----------
    client : distributed.Client
    chunks : sequence of Chunk
    fn : callable
        Importable (module-level) function; runs on the workers.
    initial_state
        State for the first chunk (e.g. a pedestal from dark frames).
    *args
        Further arguments for ``fn`` (sent once, shared by all tasks).
    consume : callable(chunk, result)
        Called on the client with each result, in chunk order.
    window : int
        Chunks submitted ahead of the one being consumed.

    Returns
    -------
    The state after the last chunk.
    """
    shared = [client.scatter(a, broadcast=True) if _is_large(a) else a for a in args]
    state = initial_state
    pending = []  # (chunk, future of the chunk's result)
    for chunk in chunks:
        pair = client.submit(_step, fn, chunk, state, *shared, retries=TASK_RETRIES, pure=False)
        pending.append((chunk, client.submit(_first, pair, pure=False)))
        state = client.submit(_second, pair, pure=False)
        del pair  # the worker keeps it only while the two tasks above still need it
        if len(pending) > window:
            done_chunk, future = pending.pop(0)
            consume(done_chunk, future.result())
    for done_chunk, future in pending:
        consume(done_chunk, future.result())
    return state.result() if hasattr(state, "result") else state


def run_independent(
    client,
    chunks: Sequence[Chunk],
    fn: Callable,
    *args,
    consume: Callable[[Chunk, object], None],
    window: int = 8,
) -> None:
    """Run ``fn(chunk, *args) -> result`` on every chunk in parallel; ``consume`` gets
    the results in chunk order (see :func:`run_chained`)."""
    shared = [client.scatter(a, broadcast=True) if _is_large(a) else a for a in args]
    pending = []
    for chunk in chunks:
        pending.append((chunk, client.submit(fn, chunk, *shared, retries=TASK_RETRIES, pure=False)))
        if len(pending) > window:
            done_chunk, future = pending.pop(0)
            consume(done_chunk, future.result())
    for done_chunk, future in pending:
        consume(done_chunk, future.result())


def _step(fn, chunk, state, *args):
    return fn(chunk, state, *args)


def _first(pair):
    return pair[0]


def _second(pair):
    return pair[1]


def _is_large(value) -> bool:
    nbytes = getattr(value, "nbytes", None)
    return nbytes is not None and nbytes > 1 << 20
