"""Benchmark: a session of movies, ``dedkit align`` on Dask against a loop (issue 16).

Movies per hour on this machine for two kinds of movie, and the cost of the session
layer (Dask, claims, records, session table and report.html) against calling the aligner
in a plain loop (target: < 3 % of the loop's time per movie):

- ``k2``: K2 counting movies, 40 frames of 3838 x 3710, int16, already normalised (MRC),
  aligned with 5 x 5 patches and dose weighting;
- ``k3``: K3 super-resolution movies as SerialEM saves them, 40 frames of 11520 x 8184
  4-bit MRC mode 101, raw, with a gain reference and a defect list, aligned with
  ``--reduce 2`` (counting size out), 5 x 5 patches and dose weighting: the movie of
  ``benchmarks/bench_align.py``, made by its generator (imported, not copied), in its
  work folder, so that either script reuses the other's movie.

Configurations, each in a fresh process (same imports, same numba cache), on the same
N movies (``--movies``, default 4 K2 and 3 K3):

- ``loop 1x2``, the baseline: ``dedkit.jobs.session.align_into`` (the task without Dask)
  on each movie in a ``for`` loop with ``threads=2``, writing exactly what a session's
  task writes (sum, dose-weighted sum, shifts CSV, STAR file, power-spectrum thumbnail,
  FRC, record);
- ``session 1x2``: ``dedkit.jobs.session.run_session`` with 1 worker x 2 threads per
  movie (``dedkit align MOVIES -o OUT/ --workers 1 --threads 2``);
- ``session 2x1``: 2 workers x 1 thread per movie (``--workers 2 --threads 1``).

The wall time of a configuration runs from just before the first movie (loop) or the
``run_session`` call (session: LocalCluster start, workers' imports, table and report
writes and the cluster's shutdown included) to just after the last; the interpreter's
start and dedkit's import are outside it. The session's overhead per movie is
(session 1x2 wall - loop wall) / N, given as a percentage of the loop's wall / N.
Peak memory is that of the configuration's whole process tree (the Dask nanny, worker
and helper processes included), sampled from ``/proc`` every 0.25 s: the largest
sampled sum of resident sizes, and the sum of each process's own peak (VmHWM), an
upper bound.

One movie per kind is generated (reused by later runs) and linked N times under
different names (hard links, symbolic links where the file system refuses): the aligner
reads and aligns each link in full, but the page cache holds one copy of the data. The
movie and its gain reference are read through once before any timing, the movie again
before each configuration, and the fraction of it resident in the page cache is then
measured (``fincore``, util-linux), so that every configuration reads from memory, as
right after acquisition. With ``--repeats R`` the configurations run R times, in a rotated order
each time, and the median is reported. Before timing, each kind's configurations run
once on a small movie of the same kind and options (loop and session), so that numba's
cache and the Python bytecode caches are warm.

Only files this script made are deleted: the links and outputs at the end, the movies
with ``--clean``. ``--quick`` runs the whole script at small sizes (12 frames of about
1000 x 1000 pixels; a few seconds per movie) to check it. Linux only (``/proc``).

Usage: python benchmarks/bench_session.py [--kinds k2,k3] [--movies N] [--repeats R]
       [--patches 5x5] [--workdir DIR] [--k3-dir DIR] [--quick] [--clean]
       [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_align  # noqa: E402 - the K3 generator lives beside this script

DEFAULT_WORKDIR = Path("/tmp/dedkit_bench_session")
TARGET_OVERHEAD_PCT = 3.0
K2_SIZE = (3838, 3710)  # (nx, ny), counting pixels
K2_PIXEL_A = 1.0
K2_ELECTRONS = 1.0  # per pixel per frame
K2_SEED = 16
K2_GENERATOR = 1  # bumped when the K2 recipe changes: older movies are made again
FRAMES = 40
QUICK = {"k2": ((1024, 992), 12), "k3": ((1024, 768), 12)}  # (nx, ny) counting, frames
WARM = {"k2": ((512, 512), 6), "k3": ((512, 384), 6)}
DEFAULT_MOVIES = {"k2": 4, "k3": 3}
#: (name, session?, workers, threads per movie)
CONFIGS = (("loop 1x2", False, 1, 2), ("session 1x2", True, 1, 2), ("session 2x1", True, 2, 1))
SAMPLE_S = 0.25
TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# the movies


def k2_names(folder: Path, n_frames: int, size) -> dict:
    nx, ny = size
    stem = f"k2_{n_frames}x{nx}x{ny}"
    return {"movie": folder / f"{stem}.mrc", "truth": folder / f"{stem}_truth.json"}


def generate_k2(names: dict, n_frames: int, size) -> dict:
    """A normalised K2 counting movie (int16 counts), made with bench_align's pieces.

    bench_align's kernel draws Poisson counts on a grid twice as fine as its specimen
    (there: super-resolution pixels over physical ones); here its grid is the K2's pixels
    and the specimen is sampled at half that, with a uniform sensitivity (already
    normalised). The 4-bit counts it packs (1 e/pixel/frame: never near 15) are
    unpacked to int16.
    """
    from dedkit.io.stack import create_stack

    nx, ny = size
    if nx % 2 or ny % 2:
        raise SystemExit(f"bench_session: K2 size {nx} x {ny} must be even")
    rng = np.random.default_rng(K2_SEED)
    spec = bench_align.specimen((ny // 2, nx // 2), rng)
    sens = np.ones((ny // 2, nx // 2), np.float32)
    shifts = bench_align.trajectory(n_frames)  # K2 pixels
    wx = np.sin(np.pi * (np.arange(nx) + 0.5) / nx)
    wy = np.sin(np.pi * (np.arange(ny) + 0.5) / ny)
    spec = np.pad(spec, bench_align.PAD, mode="wrap")
    rate_max = K2_ELECTRONS * float(spec.max()) * 1.0001
    cdf = bench_align.poisson_cdf32(rate_max)
    packed = np.empty((ny, nx // 2), np.uint8)
    frame = np.empty((ny, nx), np.int16)
    with create_stack(
        names["movie"], (n_frames, ny, nx), np.int16, pixel_size=K2_PIXEL_A, force=True
    ) as writer:
        for i in range(n_frames):
            dx, dy = shifts[i]
            growth = bench_align.LOCAL_PX * i / max(n_frames - 1, 1)
            bench_align.frame_kernel(
                spec, sens, K2_ELECTRONS, dx, dy, growth, -0.6 * growth, wx, wy, rate_max,
                cdf, K2_SEED * 1000 + i, packed,
            )  # fmt: skip
            frame[:, 0::2] = packed & 0x0F
            frame[:, 1::2] = packed >> 4
            writer.write(frame)
    truth = {
        "frames": n_frames,
        "size": [nx, ny],
        "seed": K2_SEED,
        "generator": K2_GENERATOR,
        "movie_bytes": names["movie"].stat().st_size,
    }
    names["truth"].write_text(json.dumps(truth, indent=1))
    return truth


def ensure_k2(folder: Path, n_frames: int, size) -> tuple[dict, bool]:
    """The K2 movie's names and whether this run made it."""
    names = k2_names(folder, n_frames, size)
    if names["truth"].exists() and names["movie"].exists():
        truth = json.loads(names["truth"].read_text())
        same = truth.get("seed") == K2_SEED and truth.get("generator") == K2_GENERATOR
        if same and truth["movie_bytes"] == names["movie"].stat().st_size:
            log(f"reusing {names['movie']}")
            return names, False
    folder.mkdir(parents=True, exist_ok=True)
    nx, ny = size
    need = 2 * n_frames * nx * ny
    if shutil.disk_usage(folder).free < need + 2**30:
        raise SystemExit(f"bench_session: {folder} has too little room for {need / 1e9:.1f} GB")
    log(f"making {names['movie']} ({need / 1e9:.2f} GB)")
    t = time.perf_counter()
    generate_k2(names, n_frames, size)
    log(f"  done in {time.perf_counter() - t:.1f} s")
    return names, True


def prepare_kind(kind: str, size, n_frames: int, folder: Path, k3_dir: Path, patches):
    """(movie path, align options, files made by this run, description) of one kind."""
    if kind == "k2":
        names, made = ensure_k2(folder, n_frames, size)
        options = {"dose": K2_ELECTRONS / K2_PIXEL_A**2}
        what = f"K2 counting, {n_frames} x {size[0]} x {size[1]} int16, normalised"
        made_files = [names["movie"], names["truth"]] if made else []
    else:
        k3_dir.mkdir(parents=True, exist_ok=True)
        names, _, made = bench_align.ensure_movie(k3_dir, n_frames, size, log)
        options = {
            "gain": str(names["gain"]),
            "defects": str(names["defects"]),
            "rotflip_value": -1,
            "reduce": 2,
            "dose": round(bench_align.ELECTRONS_PER_PIXEL / bench_align.COUNTING_PIXEL_A**2, 4),
        }
        what = (
            f"K3 super-resolution, {n_frames} x {2 * size[0]} x {2 * size[1]} 4-bit mode 101, "
            f"raw + gain + defects, reduced to {size[0]} x {size[1]}"
        )
        made_files = [names[k] for k in ("movie", "gain", "defects", "truth")] if made else []
    if patches:
        options["patches"] = patches
    return Path(names["movie"]), options, made_files, what


def link_movies(source: Path, folder: Path, kind: str, n: int) -> tuple[list[Path], str]:
    """``n`` names for one movie in ``folder`` (made afresh): hard links, or symbolic
    links where the file system refuses."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    paths, how = [], "hard links"
    for i in range(n):
        path = folder / f"{kind}_{i:04d}{source.suffix}"
        try:
            os.link(source, path)
        except OSError:
            os.symlink(source.resolve(), path)
            how = "symbolic links"
        paths.append(path)
    return paths, how


def read_through(path: Path) -> float:
    """Read a file once (into the page cache); its speed in MB/s."""
    t = time.perf_counter()
    size = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(16 << 20):
            size += len(chunk)
    return size / 1e6 / max(time.perf_counter() - t, 1e-9)


def cached_percent(path: Path) -> float | None:
    """Percentage of ``path`` resident in the page cache (fincore), None without it."""
    fincore = shutil.which("fincore")
    if fincore is None:
        return None
    try:
        out = subprocess.run(
            [fincore, "--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", str(path)],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()  # fmt: skip
        return 100.0 * int(out[0]) / max(int(out[1]), 1)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------
# child processes: each prints one JSON line


def _status_kb(field: str, pid="self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def child_loop(spec: dict) -> None:
    """The baseline: each movie in turn through ``align_into``, what a session's task
    (``dedkit.jobs.session.align_task``) runs, without Dask."""
    from dedkit.jobs.session import align_into, movie_name, movie_outputs

    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    seconds = []
    t0 = time.perf_counter()
    for movie in spec["movies"]:
        outputs = movie_outputs(out, movie_name(movie))
        t = time.perf_counter()
        align_into(movie, outputs, {**spec["options"], "threads": spec["threads"]})
        seconds.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "movie_s": seconds, "peak_kb": _status_kb("VmHWM")}))


def child_session(spec: dict) -> None:
    """run_session on the movies with the given workers x threads."""
    from dedkit.jobs.session import run_session

    if spec.get("malloc_trim") == "off":
        import dask

        # distributed's documented way to unset one of the nanny's variables
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    t0 = time.perf_counter()
    report = run_session(
        spec["movies"],
        spec["out"],
        workers=spec["workers"],
        threads=spec["threads"],
        **spec["options"],
    )
    wall = time.perf_counter() - t0
    rows = report.rows
    bad = [f"{r['name']}: {r['status']} {r['error']}" for r in rows if r["status"] != "done"]
    print(
        json.dumps(
            {
                "wall_s": wall,
                "movie_s": [r["seconds"] for r in rows if r["status"] == "done"],
                "not_done": bad,
                "workers": report.workers,
                "threads": report.threads,
                "peak_kb": _status_kb("VmHWM"),
            }
        )
    )


# ---------------------------------------------------------------------------------------
# the parent


class TreeMemory:
    """Samples the resident memory of a process and its descendants from /proc."""

    def __init__(self, pid: int, interval: float = SAMPLE_S):
        self.pid, self.interval = pid, interval
        self.peak_rss_kb = 0
        self.hwm_kb: dict[int, int] = {}
        self.cpu_ticks: dict[int, tuple[int, int]] = {}  # pid: (user, system), last seen
        self.malloc_trim: set[str] = set()  # MALLOC_TRIM_THRESHOLD_ in the processes' env
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        ticks: dict[int, tuple[int, int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            # the command name, in parentheses, may hold spaces: the fields follow the last ')'
            fields = stat.rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            ticks[int(entry)] = (int(fields[11]), int(fields[12]))  # utime, stime
        tree, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        for pid in tree:
            if pid in ticks:
                if pid not in self.cpu_ticks:
                    self._environment(pid)
                self.cpu_ticks[pid] = ticks[pid]
        return tree

    def _environment(self, pid: int) -> None:
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ for its workers (its
        # distributed.nanny.pre-spawn-environ), which makes glibc map and unmap every
        # large array afresh: worth saying whether the workers measured had it
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                for item in f.read().split(b"\0"):
                    if item.startswith(b"MALLOC_TRIM_THRESHOLD_="):
                        self.malloc_trim.add(item.split(b"=", 1)[1].decode())
        except OSError:
            pass

    def sample(self) -> None:
        rss = 0
        for pid in self._tree():
            r = _status_kb("VmRSS", pid)
            h = _status_kb("VmHWM", pid)
            if r is not None:
                rss += r
            if h is not None:
                self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), h)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.processes = max(self.processes, len(self.hwm_kb))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def run_child(mode: str, spec: dict) -> dict:
    """One configuration in a fresh process; its JSON line, the process's wall time and
    the process tree's memory."""
    cmd = [sys.executable, __file__, "--child", mode, json.dumps(spec)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemory(proc.pid) as memory:
        out, err = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.stderr.write(err[-4000:])
        raise SystemExit(f"bench_session: {mode} child failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    if result.get("not_done"):
        raise SystemExit("bench_session: movies not aligned: " + "; ".join(result["not_done"]))
    # the child's own exact peak (the sampler may miss its last 0.25 s)
    hwm = dict(memory.hwm_kb)
    hwm[proc.pid] = max(hwm.get(proc.pid, 0), result.get("peak_kb") or 0)
    result.update(
        process_wall_s=wall,
        peak_tree_rss_MB=memory.peak_rss_kb * 1024 / 1e6,
        sum_hwm_MB=sum(hwm.values()) * 1024 / 1e6,
        max_process_hwm_MB=max(hwm.values()) * 1024 / 1e6,
        processes=memory.processes,
        # CPU time of the tree as last sampled (the last 0.25 s of each process missed):
        # what the configuration cost the machine, whatever else was running beside it
        cpu_user_s=sum(u for u, _ in memory.cpu_ticks.values()) / TICKS,
        cpu_system_s=sum(s for _, s in memory.cpu_ticks.values()) / TICKS,
        malloc_trim_threshold=sorted(memory.malloc_trim),
    )
    return result


def run_config(config, movies: list[Path], out: Path, options: dict, malloc_trim="dask") -> dict:
    name, session, workers, threads = config
    if out.exists():
        shutil.rmtree(out)
    spec = {"movies": [str(m) for m in movies], "out": str(out), "threads": threads,
            "options": options}  # fmt: skip
    load_before = os.getloadavg()[0]
    if session:
        result = run_child("session", {**spec, "workers": workers, "malloc_trim": malloc_trim})
    else:
        result = run_child("loop", spec)
    n = len(movies)
    if len(result["movie_s"]) != n:
        raise SystemExit(f"bench_session: {name}: {len(result['movie_s'])} of {n} movies")
    shutil.rmtree(out)
    os.sync()  # the outputs' write-back must not fall into the next configuration
    result.update(
        config=name,
        workers=workers,
        threads=threads,
        movies=n,
        movies_per_hour=3600 * n / result["wall_s"],
        outside_movies_s=result["wall_s"] - sum(result["movie_s"]),
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )
    return result


def summarise(runs: list[dict], n: int) -> dict:
    """Per configuration: the median wall time over repeats and what follows from it."""
    by_config: dict[str, list[dict]] = {}
    for run in runs:
        by_config.setdefault(run["config"], []).append(run)
    summary = {}
    for name, rs in by_config.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        summary[name] = {
            "wall_s": wall,
            "wall_range_s": [min(r["wall_s"] for r in rs), max(r["wall_s"] for r in rs)],
            "movies_per_hour": 3600 * n / wall,
            "movie_s_mean": statistics.median(statistics.mean(r["movie_s"]) for r in rs),
            "outside_movies_s": statistics.median(r["outside_movies_s"] for r in rs),
            "peak_tree_rss_MB": max(r["peak_tree_rss_MB"] for r in rs),
            "sum_hwm_MB": max(r["sum_hwm_MB"] for r in rs),
            "max_process_hwm_MB": max(r["max_process_hwm_MB"] for r in rs),
            "cpu_s": statistics.median(r["cpu_user_s"] + r["cpu_system_s"] for r in rs),
            "cpu_system_s": statistics.median(r["cpu_system_s"] for r in rs),
            "malloc_trim_threshold": sorted({v for r in rs for v in r["malloc_trim_threshold"]}),
            "runs": len(rs),
            "workers": rs[0]["workers"],
            "threads": rs[0]["threads"],
        }
    loop, s12 = summary.get("loop 1x2"), summary.get("session 1x2")
    overhead = None
    if loop and s12:
        per_movie = (s12["wall_s"] - loop["wall_s"]) / n
        pct = 100 * per_movie / (loop["wall_s"] / n)
        overhead = {
            "per_movie_s": per_movie,
            "percent": pct,
            "target_percent": TARGET_OVERHEAD_PCT,
            "met": pct < TARGET_OVERHEAD_PCT,
            # the same with the fixed part (cluster start and stop) spread over 100 movies
            "per_movie_s_at_100": per_movie
            - (s12["outside_movies_s"] - loop["outside_movies_s"]) / n * (1 - n / 100),
        }
        overhead["percent_at_100"] = 100 * overhead["per_movie_s_at_100"] / (loop["wall_s"] / n)
    return {"configs": summary, "overhead": overhead}


def bench_kind(kind, args, size, n_frames, warm_size, warm_frames) -> tuple[dict, list[Path]]:
    """Warm up, then run every configuration on N links of one movie of this kind."""
    n = args.movies or DEFAULT_MOVIES[kind]
    movie, options, made, what = prepare_kind(
        kind, size, n_frames, args.workdir / "movies", args.k3_dir, args.patches
    )
    warm_movie, warm_options, warm_made, _ = prepare_kind(
        kind, warm_size, warm_frames, args.workdir / "warm", args.workdir / "warm", args.patches
    )
    made += warm_made
    links, how = link_movies(movie, args.workdir / f"links_{kind}", kind, n)
    warm_links, _ = link_movies(warm_movie, args.workdir / f"warm_links_{kind}", kind, 1)
    out = args.workdir / "out"

    # numba's cache (on disk, shared by the workers), bytecode caches, distributed's
    # first start: all warm before anything is timed
    log(f"{kind}: warm-up on {warm_movie.name}")
    for config in CONFIGS[:2]:
        run_config(config, warm_links, out / f"warm_{kind}", warm_options, args.malloc_trim)

    # one read of the movie (all its links: one inode) and its references into the cache
    speeds = {}
    for path in [movie, *(Path(options[k]) for k in ("gain", "defects") if k in options)]:
        speeds[path.name] = read_through(path)
    log(f"{kind}: read through once: " + ", ".join(f"{k} {v:.0f} MB/s" for k, v in speeds.items()))
    runs = []
    for r in range(args.repeats):
        order = CONFIGS[r % len(CONFIGS) :] + CONFIGS[: r % len(CONFIGS)]
        for config in order:
            # read again (from memory, mostly): what another process or the machine's
            # other users evicted since is back before the clock starts
            read_through(movie)
            cached = cached_percent(movie)
            log(f"{kind}: {config[0]} on {n} movies (repeat {r + 1}; page cache "
                f"{'?' if cached is None else f'{cached:.0f} %'})")  # fmt: skip
            folder = out / f"{kind}_{config[0].replace(' ', '_')}"
            result = run_config(config, links, folder, options, args.malloc_trim)
            result.update(repeat=r + 1, page_cache_percent=cached)
            log(f"  {result['wall_s']:.1f} s, {result['movies_per_hour']:.0f} movies/h, "
                f"peak {result['peak_tree_rss_MB']:.0f} MB")  # fmt: skip
            runs.append(result)
    for folder in (links[0].parent, warm_links[0].parent):
        shutil.rmtree(folder)
    cli = ["dedkit", "align", f"{links[0].parent}/*{movie.suffix}", "-o", "OUT/",
           "--workers", "W", "--threads", "T"]  # fmt: skip
    for key, value in options.items():
        flag = {"rotflip_value": "rotflip"}.get(key, key)
        cli += [f"--{flag}", str(value)]
    result = {
        "kind": kind,
        "movie": what,
        "movie_bytes": movie.stat().st_size,
        "movies": n,
        "links": how,
        "source": str(movie),
        "options": options,
        "read_through_MB_s": speeds,
        "equivalent_command": " ".join(cli),
        "runs": runs,
        **summarise(runs, n),
    }
    return result, made


def markdown(results: dict) -> str:
    lines = [
        "| movies | configuration | wall time | movies/hour | aligner per movie | "
        "outside the movies | CPU time (of it system) | peak memory (tree: sampled / sum of "
        "peaks) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for kind in results["kinds"].values():
        n = kind["movies"]
        for name, s in kind["configs"].items():
            lo, hi = s["wall_range_s"]
            spread = f" ({lo:.1f}-{hi:.1f})" if s["runs"] > 1 else ""
            # movies side by side: the wall time is not the sum of theirs
            outside = f"{s['outside_movies_s']:.1f} s" if s["workers"] == 1 else "-"
            lines.append(
                f"| {kind['kind']}: {n} x {kind['movie']} | {name} | {s['wall_s']:.1f} s"
                f"{spread} | **{s['movies_per_hour']:.0f}** | {s['movie_s_mean']:.1f} s | "
                f"{outside} | {s['cpu_s']:.0f} s ({s['cpu_system_s']:.0f} s) | "
                f"{s['peak_tree_rss_MB']:.0f} / "
                f"{s['sum_hwm_MB']:.0f} MB |"
            )
        o = kind["overhead"]
        if o is not None:
            loop = kind["configs"]["loop 1x2"]["wall_s"] / n
            notes.append(
                f"- {kind['kind']}: session layer overhead (session 1x2 - loop) / {n} = "
                f"{o['per_movie_s']:+.2f} s per movie = **{o['percent']:+.1f} %** of the "
                f"loop's {loop:.1f} s per movie (target < {o['target_percent']:.0f} %: "
                f"{'met' if o['met'] else 'not met'}); with the session's fixed cost spread "
                f"over 100 movies: {o['percent_at_100']:+.1f} %"
            )
        trim = sorted({v for s in kind["configs"].values() for v in s["malloc_trim_threshold"]})
        notes.append(
            f"- {kind['kind']}: MALLOC_TRIM_THRESHOLD_ in the processes measured: "
            + (", ".join(trim) if trim else "unset")
            + (" (Dask's nanny sets 65536 for its workers unless told not to)" if trim else "")
        )
        cached = [r["page_cache_percent"] for r in kind["runs"]]
        cached_text = (
            "not measured (no fincore)"
            if any(c is None for c in cached)
            else f"{min(cached):.0f}-{max(cached):.0f} % resident before each configuration"
        )
        notes.append(
            f"- {kind['kind']}: the {n} movies are {kind['links']} to one "
            f"{kind['movie_bytes'] / 1e9:.2f} GB file ({kind['source']}); every movie is "
            f"read and aligned in full, from the page cache ({cached_text}). Options: "
            f"{kind['equivalent_command']}"
        )
    m = results["machine"]
    notes.append(
        f"- machine: {m['cpu_count']} CPUs, {m['memory_GB']:.1f} GB, Python {m['python']}, "
        f"numpy {m['numpy']}, numba {m['numba']}, dask {m['dask']}; load average "
        f"{m['load_start'][0]:.2f} at the start, {m['load_end'][0]:.2f} at the end"
        + (
            " (--quick: small sizes, a check of the script, not the benchmark)"
            if results["quick"]
            else ""
        )  # fmt: skip
    )
    return "\n".join(lines + [""] + notes)


def machine() -> dict:
    import dask
    import numba

    with open("/proc/meminfo") as f:
        total_kb = int(f.readline().split()[1])
    return {
        "cpu_count": os.cpu_count(),
        "memory_GB": total_kb * 1024 / 1e9,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "dask": dask.__version__,
        "load_start": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="k2,k3", help="comma-separated: k2, k3")
    ap.add_argument("--movies", type=int, default=None, help="movies per configuration "
                    "(default 4 K2, 3 K3)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=1, help="runs of each configuration, in a "
                    "rotated order each time (median reported)")  # fmt: skip
    ap.add_argument("--patches", default="5x5", help="NxM, or 'none' for global motion only")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--k3-dir", type=Path, default=bench_align.DEFAULT_WORKDIR,
                    help="where bench_align's K3 movie is made or reused")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="small sizes: a check of the script")
    ap.add_argument("--clean", action="store_true", help="delete the movies made by this run")
    ap.add_argument("--json", type=Path, help="write the results to this JSON file")
    ap.add_argument(
        "--malloc-trim",
        choices=("dask", "off"),
        default="dask",
        help="session workers' MALLOC_TRIM_THRESHOLD_: as Dask's nanny sets it (65536, "
        "unless the session changes it), or 'off': unset through Dask's config (a diagnostic)",
    )
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, spec = args.child
        return (child_loop if mode == "loop" else child_session)(json.loads(spec))

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or set(kinds) - {"k2", "k3"}:
        ap.error("--kinds takes k2, k3 or k2,k3")
    if args.movies is not None and args.movies < 1:
        ap.error("--movies must be at least 1")
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    args.patches = None if args.patches.lower() in ("none", "1x1") else args.patches
    made_dir = not args.workdir.exists()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = {"quick": args.quick, "machine": machine(), "kinds": {}}
    made: list[Path] = []
    try:
        for kind in kinds:
            if args.quick:
                size, n_frames = QUICK[kind]
            else:
                size = K2_SIZE if kind == "k2" else bench_align.COUNTING_SIZE
                n_frames = FRAMES
            result, made_kind = bench_kind(kind, args, size, n_frames, *WARM[kind])
            made += made_kind
            results["kinds"][kind] = result
    finally:
        # the warm-up movies are small: always removed when this run made them
        for path in made:
            if args.clean or path.parent.name == "warm":
                path.unlink(missing_ok=True)
        for folder in (args.workdir / "warm", args.workdir / "out", args.workdir / "movies"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if made_dir and not any(args.workdir.iterdir()):
            args.workdir.rmdir()
    results["machine"]["load_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
