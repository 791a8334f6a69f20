"""The Geant4 worker processes: a pool fed with batches, crash handling and retries.

Geant4 runs in worker processes (``multiprocessing`` with the ``spawn`` start method),
never in the calling process. A worker writes each batch to a file (temporary name, then
renamed) before it reports it, so a crash of Geant4 afterwards (at interpreter exit, say)
loses nothing; a worker that dies before delivering its batch is replaced and the batch
retried :data:`RETRIES` times, then the run fails with the end of the worker's Geant4 log
in the message.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator

from dedkit.errors import DedkitError

#: how often a batch whose worker died is tried again before the run fails
RETRIES = 1


def _worker_entry(conn, settings: dict, workdir: str, log_path: str) -> None:
    """Target of a worker process: only here is the Geant4 application imported."""
    from dedkit.sim import _geant4_app

    _geant4_app.worker_main(conn, settings, workdir, log_path)


@contextlib.contextmanager
def _main_module_hidden():
    """Start spawned workers without re-running the caller's main script.

    ``spawn`` makes the child import the parent's ``__main__`` (by module name or file),
    which re-runs a script without an ``if __name__ == "__main__"`` guard and fails. The
    workers need nothing from ``__main__`` (their target lives in this module), so the
    main module's name and file are hidden while a process starts.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if main and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


class _Worker:
    def __init__(self, ctx, settings: dict, workdir: str, index: int, target=None):
        self.index = index
        self.log_path = os.path.join(workdir, f"worker-{index}.log")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=target or _worker_entry,
            args=(child, settings, workdir, self.log_path),
            name=f"dedkit-geant4-{index}",
            daemon=True,
        )
        with _main_module_hidden():
            self.process.start()
        child.close()
        self.ready = False
        self.batch: int | None = None
        self.alive = True

    def log_tail(self, lines: int = 6) -> str:
        """The last meaningful lines of the worker's Geant4 log, on one line."""
        try:
            with open(self.log_path, errors="replace") as f:
                text = [ln.strip() for ln in f.read().splitlines()]
        except OSError:
            return ""
        text = [ln for ln in text if ln and not set(ln) <= set("-*=# ")]
        return " | ".join(text[-lines:])


class _WorkerPool:
    """Geant4 worker processes fed with batches; results are files in a private folder.

    ``target`` replaces the worker's body (a module-level function taking ``(conn,
    settings, workdir, log_path)`` and speaking the same protocol); the tests use it to
    check the handling of crashes without Geant4.
    """

    def __init__(self, settings: dict, n_workers: int, target=None):
        self.target = target
        self.settings = settings
        self.n_workers = n_workers
        self.ctx = multiprocessing.get_context("spawn")
        self.info: dict = {}
        self.workers: list[_Worker] = []
        self.workdir = ""
        self.started = 0

    def __enter__(self) -> _WorkerPool:
        self.workdir = tempfile.mkdtemp(prefix="dedkit-geant4-")
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            if w.alive:
                try:
                    w.conn.send(("stop",))
                except OSError:
                    pass
        for w in self.workers:
            w.process.join(timeout=10)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
            w.conn.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _start(self) -> _Worker:
        w = _Worker(self.ctx, self.settings, self.workdir, self.started, self.target)
        self.started += 1
        self.workers.append(w)
        return w

    def run(self, n_batches: int, spec: Callable[[int], dict]) -> Iterator[tuple[int, str]]:
        """Yield ``(batch, path)`` in batch order as the workers complete them."""
        pending = collections.deque(range(n_batches))
        failures: collections.Counter = collections.Counter()
        startup_failures = 0
        finished: dict[int, str] = {}
        next_out = 0
        for _ in range(self.n_workers):
            self._start()

        while next_out < n_batches:
            live = [w for w in self.workers if w.alive]
            needed = min(self.n_workers, len(pending) + sum(w.batch is not None for w in live))
            while len(live) < needed:
                live.append(self._start())
            for w in live:
                if w.ready and w.batch is None and pending:
                    k = pending.popleft()
                    w.batch = k
                    w.conn.send(("batch", k, spec(k)))
            waitables = {w.conn: w for w in live}
            waitables.update({w.process.sentinel: w for w in live})
            for obj in multiprocessing.connection.wait(list(waitables)):
                w = waitables[obj]
                if not w.alive:
                    continue
                self._drain(w, finished)
                if obj is w.process.sentinel or not w.process.is_alive():
                    w.process.join()
                    self._drain(w, finished)
                    w.alive = False
                    k = w.batch
                    if k is None:
                        if not w.ready:
                            startup_failures += 1
                            if startup_failures > RETRIES:
                                raise DedkitError(
                                    "a Geant4 worker died while starting "
                                    f"({_exit_text(w.process.exitcode)}): {w.log_tail()}"
                                )
                        continue
                    path = os.path.join(self.workdir, f"batch-{k:06d}.npz")
                    if os.path.exists(path):
                        # the file is renamed into place only when complete
                        finished[k] = path
                        continue
                    failures[k] += 1
                    if failures[k] > RETRIES:
                        raise DedkitError(
                            f"a Geant4 worker died ({_exit_text(w.process.exitcode)}) "
                            f"while simulating batch {k + 1} of {n_batches}, "
                            f"{failures[k]} times: {w.log_tail()}"
                        )
                    pending.appendleft(k)
            while next_out in finished:
                yield next_out, finished.pop(next_out)
                next_out += 1

    def _drain(self, w: _Worker, finished: dict[int, str]) -> None:
        """Read every message the worker has sent."""
        while True:
            try:
                if not w.conn.poll():
                    return
                message = w.conn.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "ready":
                w.ready = True
                self.info = self.info or message[1]
            elif kind == "done":
                _, k, path = message
                finished[k] = path
                w.batch = None
            elif kind == "error":
                _, k, text = message
                where = f" in batch {k + 1}" if k is not None else " while starting"
                raise DedkitError(f"Geant4 failed{where}: {text}")


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"
