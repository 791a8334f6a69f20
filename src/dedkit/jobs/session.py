"""A whole microscope session: many movies aligned one per Dask task, in batch or live.

``dedkit align INPUT... -o FOLDER/`` and ``dedkit align --watch FRAMES -o FOLDER/`` run
:func:`run_session`. Each movie is one task, :func:`align_task`, which calls
:func:`dedkit.jobs.align.align_movie` on a Dask worker (a LocalCluster of this machine by
default, or the cluster at ``scheduler``); ``workers=0`` runs the movies one after another
in this process instead.

What makes a session safe to stop, restart and share:

- **Done means recorded.** A movie's outputs are renamed into place together, its record
  ``NAME_align.json`` last (:func:`movie_outputs`); a movie whose record exists is
  skipped unless ``force``. A crash never leaves a half-written sum that a rerun would
  take as done, and a restart redoes only what is not recorded.
- **One session per movie.** Before a movie is submitted the session takes its claim,
  an exclusive ``flock`` on ``.NAME.claim`` in the output folder, held by the session
  process until the movie is finished: a second session pointed at the same folder
  leaves the movie alone, looks again every :data:`CLAIM_RETRY` seconds, counts it as
  skipped once it is recorded, and takes it over if the first one dies (the kernel drops
  the lock of a dead process, on NFS too).
- **Workers die, movies do not.** A worker lost in the middle of a movie has its task
  rescheduled by Dask on another worker (up to the scheduler's ``allowed-failures``);
  the movie's result reaches the session once, and the dead worker's temporaries are
  removed. A movie that fails (corrupt, truncated, a worker killed again and again) is a
  failed row of the table with its one-line reason; the session goes on.
- **A full disk stops the session**: no more movies are started, the running ones end
  (their outputs are all-or-none), and the error says so.
- **Ctrl-C** stops submitting and waits for the running movies (a second Ctrl-C, or
  SIGTERM, stops waiting and closes the executor; a movie the workers complete as they
  close is recorded and named among the outputs, others leave only temporaries, removed
  by the next run, and are redone).

The session table (:data:`ROW_KEYS`; ``session.csv``, ``session.json``) and the page
``report.html`` are rebuilt from the records in the output folder as movies finish, so two
sessions writing one folder both list every finished movie.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import check_outputs, remove_dead_temporaries, write_atomic
from dedkit.report import JobReport

__all__ = [
    "RECORD_SUFFIX",
    "ROW_KEYS",
    "SESSION_FILES",
    "MovieClaim",
    "SessionReport",
    "align_into",
    "align_task",
    "choose_layout",
    "movie_name",
    "movie_outputs",
    "movie_row",
    "read_records",
    "run_session",
    "session_rows",
]

#: the columns of the session table (session.csv, session.json, report.html)
ROW_KEYS = (
    "movie", "name", "status", "frames", "dose_per_frame", "total_dose", "pixel_size",
    "total_drift_px", "early_drift_px", "max_jump_px", "frc_0143_A", "frc_0143_nyquist",
    "seconds", "warnings", "error",
)  # fmt: skip
#: the record of a finished movie: NAME_align.json (its presence means done)
RECORD_SUFFIX = "_align.json"
#: the session's own files in the output folder
SESSION_FILES = ("session.csv", "session.json", "report.html")
#: least seconds between two rewrites of the session files while movies finish
REPORT_INTERVAL = 15.0
#: seconds a watched movie may stay incomplete and unchanged before it is reported as failed
#: (a truncated file; should it complete later it is aligned then)
STALL_SECONDS = 300.0
#: output names that are images, not folders (a typo for a session's folder)
_IMAGE_SUFFIXES = {".mrc", ".mrcs", ".st", ".map", ".tif", ".tiff", ".eer", ".png", ".jpg"}
#: seconds between two looks at the movies another session has claimed
CLAIM_RETRY = 5.0
#: the options of align_movie a session passes on to every movie
ALIGN_OPTIONS = (
    "gain", "defects", "rotflip_value", "dose", "pre_dose", "voltage", "pixel_size", "group",
    "patches", "align_binning", "reduce", "truncate", "bfactor", "iterations", "tolerance",
    "method", "even_odd", "eer_group", "eer_sampling",
)  # fmt: skip


# ------------------------------------------------------------------------------ planning


def movie_name(movie) -> str:
    """The name of a movie's outputs: its file name without its last suffix.

    Examples
    --------
    >>> movie_name("Frames/grid1_0001.tif"), movie_name("x/m.eer")
    ('grid1_0001', 'm')
    """
    return Path(movie).stem


def movie_outputs(folder, name: str, *, even_odd: bool = False) -> dict[str, Path]:
    """Every file a session may write for movie ``name`` in ``folder``, record last.

    Which of them a movie gets depends on what is known (no ``_DW`` without a dose, no
    ``.star`` without a pixel size); the record lists those written.

    Examples
    --------
    >>> sorted(p.name for p in movie_outputs("out", "m1").values())
    ['m1.mrc', 'm1.star', 'm1_DW.mrc', 'm1_PS.png', 'm1_align.json', 'm1_shifts.csv']
    """
    folder = Path(folder)
    paths = {
        "sum": folder / f"{name}.mrc",
        "dose_weighted": folder / f"{name}_DW.mrc",
    }
    if even_odd:
        paths |= {
            "even": folder / f"{name}_EVN.mrc",
            "odd": folder / f"{name}_ODD.mrc",
            "frc": folder / f"{name}_FRC.csv",
        }
    paths |= {
        "shifts": folder / f"{name}_shifts.csv",
        "star": folder / f"{name}.star",
        "thumbnail": folder / f"{name}_PS.png",
        "record": folder / f"{name}{RECORD_SUFFIX}",
    }
    return paths


def choose_layout(cores: int, memory_bytes: int, movie_bytes: int) -> tuple[int, int]:
    """Workers (movies at once) and threads per movie for a machine.

    One movie per core, one thread each: a movie does not use two threads fully (its
    reading pass is a two-stage pipeline, its motion estimate mostly serial), so movies
    side by side align more per hour than one movie on every core (measured on 2 cores:
    133 K2 movies/h as 2 x 1 against 105 as 1 x 2, ``docs/benchmarks.md``). Fewer workers
    when the memory one movie needs (``movie_bytes``) times the workers would exceed 80 %
    of ``memory_bytes``; the cores left over then go to the threads of each movie.

    Examples
    --------
    >>> choose_layout(2, 24 << 30, 2 << 30)
    (2, 1)
    >>> choose_layout(32, 256 << 30, 4 << 30)
    (32, 1)
    >>> choose_layout(32, 16 << 30, 4 << 30)
    (3, 10)
    """
    cores = max(1, int(cores))
    workers = cores
    if movie_bytes > 0:
        workers = max(1, min(workers, int(0.8 * memory_bytes // movie_bytes)))
    return workers, max(1, cores // workers)


def _memory_bytes() -> int:
    """Memory available to new processes: MemAvailable (free memory plus the page cache
    that can be dropped: a workstation full of cached movies still has room)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        return 8 << 30


# ------------------------------------------------------------------------------- claims


class MovieClaim:
    """This session's claim on one movie: an exclusive ``flock`` on ``.NAME.claim``.

    :meth:`acquire` returns False when another live session holds it. The lock dies with
    the process that holds it, so a crashed session's movies are free again at once.
    The claim file is removed on :meth:`release` (dedkit created it).

    Examples
    --------
    >>> a, b = MovieClaim(".", "m1"), MovieClaim(".", "m1")
    >>> a.acquire(), b.acquire()
    (True, False)
    >>> a.release(); b.acquire()
    True
    >>> b.release()
    """

    def __init__(self, folder, name: str):
        self.path = Path(folder) / f".{name}.claim"
        self._fd: int | None = None
        #: the note of a session that died holding this claim (None: a fresh claim)
        self.previous: dict | None = None

    def acquire(self) -> bool:
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                raise
            # the holder before us may have removed the file between our open and our
            # lock: then we hold a lock on a name nobody sees, and must try again
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                # a note already there: the claim of a session that died holding it
                self.previous = _read_note(fd)
                note = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                   "since": time.strftime("%Y-%m-%dT%H:%M:%S")})  # fmt: skip
                os.ftruncate(fd, 0)
                os.write(fd, note.encode())
                self._fd = fd
                return True
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_note(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        note = json.loads(data.decode()) if data else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return note if isinstance(note, dict) else None


# -------------------------------------------------------------------------- the task


_task_lock = threading.Lock()


def align_into(movie, outputs: dict, options: dict):
    """Align one movie into a session's outputs (:func:`movie_outputs`): what every task
    does, and what the session's benchmark times outside Dask.

    Returns
    -------
    dedkit.jobs.align.AlignReport
    """
    from dedkit.jobs.align import align_movie

    outputs = {k: Path(v) for k, v in outputs.items()}
    return align_movie(
        movie,
        outputs["sum"],
        shifts=outputs["shifts"],
        star=outputs["star"],
        star_needs_pixel_size=False,
        thumbnail=outputs["thumbnail"],
        record=outputs["record"],
        frc=True,
        force=True,
        mdoc=options.get("mdoc"),
        threads=options.get("threads"),
        **{k: v for k, v in options.items() if k in ALIGN_OPTIONS},
    )


def align_task(movie: str, outputs: dict, options: dict) -> dict:
    """Align one movie (runs on a Dask worker): the report as a dict, or a failure.

    Returns ``{"status": "done", "report": {...}}`` or ``{"status": "failed",
    "error": one line, "disk_full": bool}``; bad input and internal errors alike become a
    failed movie (the session goes on). One movie at a time per process: numba's kernels
    and the memory budget assume it, whatever the worker's thread count.
    """
    with _task_lock:
        try:
            report = align_into(movie, outputs, options)
        except DedkitError as error:
            text = one_line(error)
            return {"status": "failed", "error": text, "disk_full": "cannot write:" in text}
        except MemoryError:
            return {"status": "failed", "error": f"{movie}: out of memory", "disk_full": False}
        except Exception as error:  # noqa: BLE001 - one movie's bug must not end a session
            return {
                "status": "failed",
                "error": f"{movie}: internal error: {type(error).__name__}: {one_line(error)}",
                "disk_full": False,
            }
    return {"status": "done", "report": report.to_dict()}


# ------------------------------------------------------------------------------- table


def movie_row(movie, name: str, *, status: str, report: dict | None = None,
              error: str = "") -> dict:  # fmt: skip
    """One row of the session table (:data:`ROW_KEYS`) from a movie's report dict.

    Examples
    --------
    >>> row = movie_row("m.tif", "m", status="failed", error="m.tif: truncated")
    >>> row["status"], row["frames"], row["error"]
    ('failed', None, 'm.tif: truncated')
    """
    row = dict.fromkeys(ROW_KEYS)
    row.update(movie=str(movie), name=name, status=status, warnings="", error=error)
    if report:
        doses = report.get("frame_doses")
        row.update(
            frames=report.get("frames"),
            dose_per_frame=_round(report.get("dose_per_frame"), 4),
            total_dose=_round(sum(doses), 3) if doses else None,
            pixel_size=_round(report.get("output_pixel_size"), 4),
            total_drift_px=report.get("total_drift_px"),
            early_drift_px=report.get("early_drift_px"),
            max_jump_px=report.get("max_jump_px"),
            frc_0143_A=report.get("frc_0143_A"),
            frc_0143_nyquist=_round(report.get("frc_0143"), 4),
            seconds=_round(report.get("seconds"), 2),
            warnings="; ".join(report.get("warnings") or []),
        )
    return row


def _round(value, digits):
    return None if value is None else round(float(value), digits)


def read_records(folder) -> dict[str, dict]:
    """The records (report dicts) of the movies finished in ``folder``, by name; a record
    that cannot be read (another program's file) is left out."""
    records = {}
    for path in sorted(Path(folder).glob(f"*{RECORD_SUFFIX}")):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("command") == "align":
            records[path.name[: -len(RECORD_SUFFIX)]] = data
    return records


def session_rows(folder, status: dict[str, dict], records: dict | None = None) -> list[dict]:
    """The table: every movie recorded in ``folder`` (status 'done' when finished by this
    run, else 'skipped'), then this run's failed movies, in name order. ``records``: those
    :func:`read_records` gave, when the caller has read them already."""
    rows = {}
    records = read_records(folder) if records is None else records
    for name, record in records.items():
        known = status.get(name)
        state = "done" if known and known["status"] == "done" else "skipped"
        movie = known["movie"] if known else (record.get("inputs") or [name])[0]
        rows[name] = movie_row(movie, name, status=state, report=record)
    for name, known in status.items():
        if known["status"] == "failed" and name not in rows:
            rows[name] = movie_row(known["movie"], name, status="failed", error=known["error"])
    return [rows[k] for k in sorted(rows)]


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_KEYS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in ROW_KEYS})
    return buffer.getvalue()


# ------------------------------------------------------------------------------ report


@dataclass(kw_only=True)
class SessionReport(JobReport):
    """What :func:`run_session` did.

    Attributes (beyond :class:`~dedkit.report.JobReport`'s)
    -------------------------------------------------------
    movies : int
        Movies this run knew of.
    done, skipped, failed : int
        Aligned by this run, recorded by an earlier one, failed.
    remaining : int
        Not started (a stopped session).
    movies_per_hour : float or None
        Movies aligned per hour of this run's wall time.
    workers, threads : int
        Movies at once and threads per movie (0 workers: in this process).
    scheduler : str or None
    stopped : str or None
        Why the session ended early ('interrupted', 'disk full'), None when it did not.
    rows : list of dict
        The session table.
    files : dict
        'csv', 'json', 'report' -> path.
    """

    movies: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    remaining: int = 0
    movies_per_hour: float | None = None
    workers: int = 0
    threads: int = 0
    scheduler: str | None = None
    watch: str | None = None
    stopped: str | None = None
    rows: list = field(default_factory=list)
    files: dict = field(default_factory=dict)

    def text(self) -> str:
        rate = "" if self.movies_per_hour is None else f", {self.movies_per_hour:.0f} movies/h"
        where = self.scheduler or (
            "this process" if self.workers == 0 else
            f"{self.workers} worker{'s' if self.workers != 1 else ''} x {self.threads} "
            f"thread{'s' if self.threads != 1 else ''}"
        )  # fmt: skip
        lines = [
            f"align: {self.done} movies aligned, {self.skipped} already done, {self.failed} "
            f"failed, {self.remaining} not started, in {self.seconds:.1f} s ({where}{rate})",
        ]
        if self.stopped:
            lines.append(f"  stopped early: {self.stopped}")
        for row in self.rows:
            if row["status"] == "failed":
                lines.append(f"  failed: {row['error']}")
        for kind, path in self.files.items():
            lines.append(f"  {kind:7s} {path}")
        return "\n".join(lines)


# -------------------------------------------------------------------------- the session


class _InProcess:
    """The executor of ``workers=0``: one movie at a time in a thread of this process,
    with the few methods of a Dask client the session uses."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dedkit-movie")

    def submit(self, fn, *args, **kwargs):
        kwargs.pop("retries", None)
        kwargs.pop("pure", None)
        kwargs.pop("key", None)
        return self.pool.submit(fn, *args)

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Movie:
    movie: Path
    name: str
    outputs: dict
    mdoc: Path | None = None
    claim: MovieClaim | None = None
    future: object = None


def run_session(
    inputs=(),
    output=None,
    *,
    watch=None,
    workers: int | None = None,
    threads: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    settle: float = 5.0,
    poll: bool | None = None,
    stop: threading.Event | None = None,
    progress=None,
    on_movie=None,
    report_interval: float = REPORT_INTERVAL,
    **align_options,
) -> SessionReport:
    """Align many movies, one per task, into one output folder.

    Parameters
    ----------
    inputs : sequence of path-like or str
        Movies, glob patterns (``'Frames/*.tif'``), folders (their movies) and SerialEM
        ``.mdoc`` files (the frame stacks they name): :func:`dedkit.io.movies.expand_inputs`.
    output : path-like
        The output folder (created when missing).
    watch : path-like, optional
        A folder to watch: each movie that appears in it is aligned once complete
        (:class:`dedkit.jobs.watch.MovieWatcher`), until ``stop`` is set or Ctrl-C.
    workers : int, optional
        Movies at once, each in a worker process of a LocalCluster (default
        :func:`choose_layout`); 0 runs them one after another in this process.
    threads : int, optional
        Threads per movie (default :func:`choose_layout`).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to use instead of a
        LocalCluster (e.g. one of dask-jobqueue's SLURM clusters).
    force : bool
        Align movies again even when their record exists, replacing their outputs.
    settle, poll : optional
        For ``watch``: seconds a new movie's size must stay still, and polling instead
        of inotify (None: chosen from the file system).
    stop : threading.Event, optional
        Set it to end the session after the running movies (what Ctrl-C does).
    progress : callable(done, total), optional
        Movies finished (done, skipped or failed) out of those known.
    on_movie : callable(row, counts), optional
        Called with each finished movie's row and the counts so far ({'done', 'skipped',
        'failed', 'remaining', 'running', 'movies_per_hour'}).
    report_interval : float
        Least seconds between rewrites of the session files (always written at the end).
    **align_options
        Options of :func:`dedkit.jobs.align.align_movie` given to every movie (gain,
        defects, rotflip_value, dose, patches, group, reduce, even_odd, eer_group...).

    Returns
    -------
    SessionReport

    Examples
    --------
    Two small simulated movies aligned in this process:

    >>> from dedkit.sim.movies import simulate_movie
    >>> from dedkit.io.stack import create_stack
    >>> import os
    >>> os.makedirs("frames")
    >>> for i in range(2):
    ...     movie = simulate_movie((128, 128), 6, dose_per_pixel=2.0, seed=i)
    ...     with create_stack(f"frames/m{i}.mrc", movie.frames.shape, movie.frames.dtype) as w:
    ...         for frame in movie.frames:
    ...             w.write(frame)
    >>> report = run_session(["frames"], "aligned", workers=0, dose=1.0, pixel_size=1.0)
    >>> report.done, sorted(p.name for p in Path("aligned").glob("*_align.json"))
    (2, ['m0_align.json', 'm1_align.json'])
    >>> run_session(["frames"], "aligned", workers=0, dose=1.0, pixel_size=1.0).skipped
    2
    """
    started = time.perf_counter()
    if output is None:
        raise DedkitError("name an output folder (-o FOLDER/)")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise DedkitError("the output of many movies is a folder; this is a file", path=out)
    if not out.is_dir() and out.suffix.lower() in _IMAGE_SUFFIXES:
        raise DedkitError(
            "many movies are aligned into a folder: name one (e.g. -o aligned/), not an image file",
            path=out,
        )
    options = _check_session_options(align_options, threads)
    from dedkit.parallel.scheduler import check_workers

    workers = check_workers(workers)
    if scheduler and workers is not None:
        raise DedkitError(
            "--workers is for a LocalCluster; with --scheduler the cluster's own workers "
            "align the movies (give --threads the cores of one worker)"
        )
    if not inputs and watch is None:
        raise DedkitError("no movies: give movie files, patterns, folders or mdoc files, "
                          "or --watch FOLDER")  # fmt: skip
    movies = _expand(inputs)
    watch_dir = None
    if watch is not None:
        watch_dir = Path(watch)
        if not watch_dir.is_dir():
            raise DedkitError("cannot watch: not a folder", path=watch_dir)
    _check_output_folder(out, movies, watch_dir)
    _check_names(movies)
    out.mkdir(parents=True, exist_ok=True)

    # the layout: from the first movie's size when the user leaves it to us
    cores = os.cpu_count() or 1
    first = movies[0].movie if movies else None
    auto_workers, auto_threads = choose_layout(cores, _memory_bytes(), _movie_bytes(first, options))
    n_workers = None if scheduler else auto_workers if workers is None else workers
    if threads is not None:
        n_threads = threads
    elif scheduler:
        n_threads = 1  # the cluster's cores are not this machine's: --threads says them
    elif n_workers == 0:
        n_threads = cores
    else:
        n_threads = auto_threads if workers is None else max(1, cores // n_workers)
    options["threads"] = n_threads

    status: dict[str, dict] = {}  # name -> {"movie", "status", "error"}
    queue: list[_Movie] = []
    known: dict[str, _Movie] = {}
    counts = {"done": 0, "skipped": 0, "failed": 0}
    stopped: list[str] = []
    files = {k: out / n for k, n in zip(("csv", "json", "report"), SESSION_FILES, strict=True)}
    last_report = [0.0]
    last_cost = [0.0]
    table: list[dict] = []  # the rows last written
    unwritten: list[str] = []
    run_started = time.time()

    def movies_per_hour():
        hours = (time.perf_counter() - started) / 3600
        return round(counts["done"] / hours, 1) if counts["done"] and hours > 0 else None

    def snapshot(running: int):
        return {**counts, "remaining": len(queue) + len(elsewhere), "running": running,
                "movies_per_hour": movies_per_hour()}  # fmt: skip

    def add(item: _Movie) -> None:
        if item.name in known:
            if known[item.name].movie.resolve() != item.movie.resolve():
                _fail_later(item, f"{item.movie}: another movie, {known[item.name].movie}, "
                            "has the same name; its outputs would collide")  # fmt: skip
            return
        if status.get(item.name, {}).get("stalled"):
            # reported as stalled, then completed after all
            counts["failed"] -= 1
            del status[item.name]
        known[item.name] = item
        record = item.outputs["record"]
        if record.exists() and not force:
            counts["skipped"] += 1
            status[item.name] = {"movie": str(item.movie), "status": "skipped", "error": ""}
            return
        queue.append(item)

    def _fail_later(item: _Movie, message: str) -> None:
        counts["failed"] += 1
        status[f"{item.name}#{len(status)}"] = {
            "movie": str(item.movie), "status": "failed", "error": message,
        }  # fmt: skip

    for item in movies:
        item.outputs = movie_outputs(out, item.name, even_odd=options.get("even_odd", False))
        add(item)

    def write_session_files(final: bool = False) -> None:
        now = time.perf_counter()
        # a page of 1000 movies takes 1-2 s to draw: never more than a tenth of the time
        if not final and now - last_report[0] < max(report_interval, 10 * last_cost[0]):
            return
        last_report[0] = now
        records = read_records(out)  # once for the table and the page
        rows = session_rows(out, status, records)
        table[:] = rows
        summary = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(run_started)),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **snapshot(0),
            "workers": n_workers,
            "threads": n_threads,
            "scheduler": scheduler,
            "watch": None if watch_dir is None else str(watch_dir),
            "stopped": stopped[0] if stopped else None,
        }
        try:
            write_atomic(files["csv"], _csv_text(rows))
            write_atomic(files["json"], json.dumps({"summary": summary, "movies": rows},
                                                   indent=1) + "\n")  # fmt: skip
            write_atomic(files["report"], _report_html(out, rows, summary, records))
        except DedkitError as error:
            # the table is rebuilt from the records at every write: nothing is lost when
            # one write fails, and the session's own outcome is still reported
            unwritten[:] = [one_line(error)]
            if "cannot write:" in str(error):
                stopped[:] = stopped or [f"disk full: {one_line(error)}"]
            return
        unwritten.clear()
        last_cost[0] = time.perf_counter() - now

    executor = None
    local = not scheduler  # workers on this machine: their PIDs can be checked
    running: list[_Movie] = []
    elsewhere: list[_Movie] = []  # claimed by another session
    next_look = [0.0]
    watcher = None
    draining = False
    interrupted = threading.Event()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_drain_on_ctrl_c(interrupted))
            if n_workers == 0 and not scheduler:
                executor = _InProcess()
                stack.callback(executor.close)
            else:
                from dedkit.parallel.scheduler import dask_client

                executor = stack.enter_context(
                    dask_client(scheduler, n_workers=n_workers, threads_per_worker=1)
                )
            if watch_dir is not None:
                from dedkit.jobs.watch import MovieWatcher

                watcher = stack.enter_context(MovieWatcher(watch_dir, settle=settle, poll=poll))
            capacity = _capacity(executor, n_workers)
            total_known = lambda: len(known)  # noqa: E731

            def report_progress():
                if progress is not None:
                    progress(counts["done"] + counts["skipped"] + counts["failed"], total_known())

            report_progress()
            while True:
                try:
                    if interrupted.is_set() and not draining:
                        raise KeyboardInterrupt
                    if stop is not None and stop.is_set() and not draining:
                        draining = True
                        stopped[:] = stopped or ["interrupted"]
                    if watcher is not None and not draining:
                        for path, why in watcher.stalled(STALL_SECONDS).items():
                            name = movie_name(path)
                            if name in known or name in status:
                                continue
                            counts["failed"] += 1
                            status[name] = {"movie": str(path), "status": "failed",
                                            "stalled": True, "error":
                                            f"{path}: incomplete and unchanged for "
                                            f"{STALL_SECONDS:.0f} s ({why})"}  # fmt: skip
                            report_progress()
                        for path in watcher.ready(timeout=0.0 if queue or running else 0.5):
                            item = _Movie(path, movie_name(path), {})
                            if _inside(path, out):
                                continue
                            item.outputs = movie_outputs(
                                out, item.name, even_odd=options.get("even_odd", False)
                            )
                            add(item)
                            report_progress()
                    # movies other sessions hold: recorded by now, or free again?
                    if elsewhere and time.monotonic() >= next_look[0]:
                        next_look[0] = time.monotonic() + CLAIM_RETRY
                        for item in list(elsewhere):
                            elsewhere.remove(item)
                            if item.outputs["record"].exists():
                                counts["skipped"] += 1
                                status[item.name] = {"movie": str(item.movie),
                                                     "status": "skipped", "error": ""}  # fmt: skip
                                report_progress()
                            else:
                                queue.append(item)
                    # start movies while there is room
                    while queue and not draining and len(running) < capacity:
                        item = queue.pop(0)
                        outcome = _start(executor, item, options, force, local)
                        if outcome is not None:  # skipped or failed before it started
                            state, message = outcome
                            if state == "claimed":
                                # another session's: look again later (it may die)
                                elsewhere.append(item)
                                continue
                            counts[state] += 1
                            status[item.name] = {"movie": str(item.movie), "status": state,
                                                 "error": message}  # fmt: skip
                            report_progress()
                            continue
                        running.append(item)
                    # collect finished movies
                    finished = [m for m in running if m.future.done()]
                    for item in finished:
                        running.remove(item)
                        row = _finish(item, status, counts, local)
                        if row.get("disk_full"):
                            stopped[:] = stopped or [f"disk full: {row['error']}"]
                            draining = True
                        report_progress()
                        if on_movie is not None:
                            shown = session_row_of(out, item, status)
                            on_movie(shown, snapshot(len(running)))
                        write_session_files()
                    if stopped and stopped[0].startswith("disk full"):
                        draining = True  # found while writing the table: start no more
                    if draining and not running:
                        break
                    if not running and not queue and not elsewhere and watcher is None:
                        break
                    if not finished:
                        _wait(running, 0.5)
                except KeyboardInterrupt as interrupt:
                    # a plain Ctrl-C drains; a second one, or a stop the command line
                    # raises as a subclass of KeyboardInterrupt (SIGTERM), ends at once
                    if draining or type(interrupt) is not KeyboardInterrupt:
                        raise
                    draining = True
                    stopped[:] = ["interrupted"]
                    if on_movie is not None:
                        on_movie(None, snapshot(len(running)))
    except BaseException:
        # the executor is closed by now: the movies that were running have ended (those
        # that finished are recorded, and named among what was written)
        for item in running:
            with contextlib.suppress(Exception):
                item.future.cancel()
            _note_recorded(item)
            if local:
                remove_dead_temporaries(item.outputs.values())
            if item.claim is not None:
                item.claim.release()
        if running or any(counts.values()):
            with contextlib.suppress(BaseException):
                write_session_files(final=True)
        raise
    finally:
        for item in known.values():
            if item.claim is not None and item.claim.held:
                item.claim.release()
    write_session_files(final=True)
    rows = table
    return SessionReport(
        command="align",
        inputs=[str(m.movie) for m in known.values()],
        output=str(out),
        seconds=time.perf_counter() - started,
        counts={"movies": len(known), **counts},
        movies=len(known),
        done=counts["done"],
        skipped=counts["skipped"],
        failed=counts["failed"],
        remaining=len(queue) + len(elsewhere),
        movies_per_hour=movies_per_hour(),
        workers=0 if (n_workers == 0 and not scheduler) else (n_workers or 0),
        threads=n_threads,
        scheduler=scheduler,
        watch=None if watch_dir is None else str(watch_dir),
        stopped=stopped[0] if stopped else None,
        rows=rows,
        files={} if unwritten else {k: str(v) for k, v in files.items()},
        warnings=_session_warnings(rows)
        + [f"the session table was not written: {w}" for w in unwritten],
    )


def _session_warnings(rows: list[dict]) -> list[str]:
    """Each warning of this run's movies once, with the movies that gave it (a session of
    300 movies without a voltage says so once, not 300 times)."""
    by_text: dict[str, list[str]] = {}
    for row in rows:
        if row["status"] != "done" or not row["warnings"]:
            continue
        for text in row["warnings"].split("; "):
            by_text.setdefault(text, []).append(row["name"])
    lines = []
    for text, names in by_text.items():
        who = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"{who}: {text}")
    return lines


def session_row_of(folder, item: _Movie, status: dict) -> dict:
    """The row of one movie just finished (from its record, or its failure)."""
    known = status[item.name]
    if known["status"] == "done":
        try:
            record = json.loads(item.outputs["record"].read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        return movie_row(item.movie, item.name, status="done", report=record)
    return movie_row(item.movie, item.name, status=known["status"], error=known["error"])


@contextlib.contextmanager
def _drain_on_ctrl_c(interrupted: threading.Event):
    """The first Ctrl-C only sets ``interrupted`` (the loop then drains at a point of its
    choosing: a KeyboardInterrupt in the middle of an import or a write would break
    them); the second raises as usual. Main thread only (signals are delivered there)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _start(executor, item: _Movie, options: dict, force: bool, local: bool):
    """Claim a movie and submit it; ('skipped'|'failed'|'claimed', message) when it does
    not start ('claimed': another session holds it)."""
    claim = MovieClaim(item.outputs["record"].parent, item.name)
    if not claim.acquire():
        return "claimed", "another session is aligning it"
    # another session may have finished it between our look and our claim
    if item.outputs["record"].exists() and not force:
        claim.release()
        return "skipped", ""
    inputs = [item.movie, options.get("gain"), options.get("defects"), item.mdoc]
    # a session that died holding this movie may have been renaming its outputs into
    # place (the record comes last): what it left is dedkit's own, to be replaced
    leftovers = claim.previous is not None
    try:
        check_outputs(list(item.outputs.values()), inputs, force or leftovers)
    except DedkitError as error:
        claim.release()
        return "failed", one_line(error)
    if local:
        remove_dead_temporaries(item.outputs.values())
    movie_options = dict(options)
    if item.mdoc is not None:
        movie_options["mdoc"] = str(item.mdoc)
    item.claim = claim
    item.future = executor.submit(
        align_task, str(item.movie), {k: str(v) for k, v in item.outputs.items()},
        movie_options, retries=0, pure=False, key=f"align-{item.name}-{time.time_ns()}",
    )  # fmt: skip
    return None


def _finish(item: _Movie, status: dict, counts: dict, local: bool) -> dict:
    """Collect a finished movie's result; a lost task (workers killed again and again)
    is a failed movie."""
    try:
        result = item.future.result()
    except Exception as error:  # noqa: BLE001 - KilledWorker, CancelledError...
        kind = type(error).__name__
        why = "its worker died again and again (out of memory?)" if kind == "KilledWorker" else (
            f"{kind}: {one_line(error)}")  # fmt: skip
        result = {"status": "failed", "error": f"{item.movie}: {why}", "disk_full": False}
    if local:
        # temporaries are named by PID: only this machine's processes can be told dead
        remove_dead_temporaries(item.outputs.values())
    _note_recorded(item)
    if item.claim is not None:
        item.claim.release()
    counts[result["status"]] += 1
    status[item.name] = {"movie": str(item.movie), "status": result["status"],
                         "error": result.get("error", "")}  # fmt: skip
    return result


def _note_recorded(item: _Movie) -> None:
    """Name a recorded movie's outputs among what this command wrote."""
    from dedkit.io.atomic import note_published

    try:
        record = json.loads(item.outputs["record"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    note_published(Path(p) for p in (record.get("outputs") or {}).values())


def _wait(running: list[_Movie], timeout: float) -> None:
    if not running:
        time.sleep(min(timeout, 0.2))
        return
    futures = [m.future for m in running]
    if hasattr(futures[0], "key"):  # Dask futures
        from distributed import wait

        with contextlib.suppress(Exception):
            wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        return
    from concurrent.futures import FIRST_COMPLETED
    from concurrent.futures import wait as wait_threads

    wait_threads(futures, timeout=timeout, return_when=FIRST_COMPLETED)


def _capacity(executor, n_workers) -> int:
    """Movies in flight at once: every worker busy, one more queued on the cluster so that
    a worker finishing never waits for the session to submit."""
    if isinstance(executor, _InProcess):
        return 1
    try:
        # worker processes, not threads: a process aligns one movie at a time (the task's
        # lock), and a movie submitted ahead holds its claim while it waits
        slots = len(executor.scheduler_info()["workers"])
    except Exception:  # noqa: BLE001 - a scheduler that does not say
        slots = n_workers or 1
    return max(1, slots) + 1


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().parent == folder.resolve()
    except OSError:
        return False


def _expand(inputs) -> list[_Movie]:
    """The movies named by ``inputs``, each with the mdoc that named it (if any)."""
    if not inputs:
        return []
    from dedkit.io.movies import expand_inputs

    items: list[_Movie] = []
    seen: set[Path] = set()
    for spec in inputs:
        mdoc = Path(spec) if str(spec).lower().endswith(".mdoc") else None
        for path in expand_inputs([spec]):
            key = Path(os.path.abspath(path))
            if key in seen:
                continue
            seen.add(key)
            items.append(_Movie(Path(path), movie_name(path), {}, mdoc=mdoc))
    return items


def _check_names(movies: list[_Movie]) -> None:
    names: dict[str, Path] = {}
    for item in movies:
        if item.name in names:
            raise DedkitError(
                f"two movies would write the same outputs {item.name}.mrc...: "
                f"{names[item.name]} and {item.movie}; align them into different folders"
            )
        names[item.name] = item.movie


def _check_output_folder(out: Path, movies: list[_Movie], watch_dir: Path | None) -> None:
    """Outputs never go beside the movies: a later run (or the watcher) would take the
    sums for movies."""
    folders = {Path(os.path.abspath(m.movie.parent)) for m in movies}
    if watch_dir is not None:
        folders.add(Path(os.path.abspath(watch_dir)))
    target = Path(os.path.abspath(out))
    for folder in folders:
        if target == folder:
            raise DedkitError(
                "the output folder holds the movies; write the sums to a folder of their "
                "own (e.g. -o aligned/)",
                path=out,
            )


def _check_session_options(align_options: dict, threads) -> dict:
    unknown = set(align_options) - set(ALIGN_OPTIONS) - {"mdoc"}
    if unknown:
        raise TypeError(f"run_session() got unknown options {sorted(unknown)}")
    mdoc = align_options.get("mdoc")
    if mdoc is not None and not (mdoc is False or str(mdoc).lower() == "none"):
        raise DedkitError(
            "--mdoc names the mdoc of one movie; a session reads each movie's INPUT.mdoc "
            "(give mdoc files as INPUTs to align the stacks they name, or --mdoc none)"
        )
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or not 1 <= threads <= 1024):  # fmt: skip
        raise DedkitError(f"threads per movie must be 1 to 1024, got {threads!r}")
    from dedkit.jobs.align import _check_options

    opts = {k: align_options.get(k) for k in ALIGN_OPTIONS}
    _check_options(
        group=1 if opts["group"] is None else opts["group"], patches=opts["patches"],
        align_binning=opts["align_binning"], truncate=opts["truncate"], dose=opts["dose"],
        reduce=1 if opts["reduce"] is None else opts["reduce"],
        pre_dose=opts["pre_dose"], voltage=opts["voltage"], pixel_size=opts["pixel_size"],
        bfactor=opts["bfactor"], iterations=opts["iterations"], tolerance=opts["tolerance"],
    )  # fmt: skip
    for path_option in ("gain", "defects"):
        if align_options.get(path_option) is not None:
            from dedkit.io.inputs import check_input_file

            check_input_file(align_options[path_option], path_option.replace("_", " "))
    return {k: v for k, v in align_options.items() if v is not None}


def _movie_bytes(movie: Path | None, options: dict) -> int:
    """Memory one movie needs, about: its frames at the output size as float16 kept for
    the second pass, plus a few frames at the input size."""
    if movie is None:
        return 0
    try:
        from dedkit.io.stack import open_stack

        eer = {k: options[k] for k in ("eer_group", "eer_sampling") if k in options}
        with open_stack(movie, **eer) as reader:
            nz, ny, nx = reader.info.shape
    except Exception:  # noqa: BLE001 - the movie's own task will report it
        return 0
    reduce = options.get("reduce") or 1
    out_pixels = math.ceil(ny / reduce) * math.ceil(nx / reduce)
    return int(nz * out_pixels * 2 + 8 * ny * nx * 4 + (256 << 20))


def _report_html(out: Path, rows: list[dict], summary: dict, records: dict) -> str:
    """report.html from the rows and the records' shifts and thumbnails."""
    from dedkit.jobs.session_report import render_session_report

    trajectories, thumbnails = {}, {}
    for row in rows:
        record = records.get(row["name"])
        if record is None:
            continue
        trajectories[row["name"]] = record.get("shifts_px") or []
        thumb = (record.get("outputs") or {}).get("thumbnail")
        if thumb:
            path = out / Path(thumb).name
            with contextlib.suppress(OSError):
                thumbnails[row["name"]] = path.read_bytes()
    n = len(rows)
    done = sum(r["status"] in ("done", "skipped") for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    rate = summary.get("movies_per_hour")
    text = (f"{done} of {n} movies aligned, {failed} failed"
            + ("" if rate is None else f", {rate:.0f} movies/h")
            + f"; updated {summary['updated']}")  # fmt: skip
    return render_session_report(rows, trajectories, thumbnails, title=f"dedkit session: {out}",
                                 summary=text)  # fmt: skip
