"""A whole session: many movies, resumable, claims, faults (issue 16).

Most tests run the movies in this process (``workers=0``: no cluster to start); the Dask
tests (a LocalCluster, a worker killed mid-movie, two sessions at once) are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import dedkit
from dedkit.errors import DedkitError
from dedkit.io.atomic import remove_dead_temporaries
from dedkit.io.stack import create_stack, open_stack
from dedkit.jobs.session import (
    ROW_KEYS,
    MovieClaim,
    choose_layout,
    movie_outputs,
    read_records,
    run_session,
)
from dedkit.sim.movies import simulate_movie
from eermovie import drifting_eer_movie

SRC = str(Path(dedkit.__file__).parents[1])
OPTS = dict(dose=1.0, pixel_size=1.0, voltage=300.0)


def write_movie(path, seed=0, shape=(128, 128), n=6):
    movie = simulate_movie(shape, n, dose_per_pixel=2.0, seed=seed)
    with create_stack(path, movie.frames.shape, movie.frames.dtype) as writer:
        for frame in movie.frames:
            writer.write(frame)
    return movie


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        write_movie(folder / f"m{i}.mrc", seed=i)
    return folder


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name or ".old-" in p.name)


def test_batch_aligns_every_movie_and_writes_the_table(frames, tmp_path):
    out = tmp_path / "out"
    report = run_session([frames], out, workers=0, **OPTS)
    assert (report.done, report.skipped, report.failed) == (3, 0, 0)
    names = [r["name"] for r in report.rows]
    assert names == ["m0", "m1", "m2"]
    for row in report.rows:
        assert list(row) == list(ROW_KEYS)
        assert row["status"] == "done" and row["frames"] == 6
        assert row["total_dose"] == pytest.approx(6.0)
        assert 0 < row["early_drift_px"] <= row["total_drift_px"]
        assert 0 < row["max_jump_px"] <= row["total_drift_px"]
        assert 0 < row["frc_0143_nyquist"] <= 1
        assert row["frc_0143_A"] == pytest.approx(2 / row["frc_0143_nyquist"], rel=1e-3)
        outputs = movie_outputs(out, row["name"])
        for kind, path in outputs.items():
            assert path.is_file(), kind
    with open_stack(out / "m0.mrc") as reader:
        assert reader.info.shape == (1, 128, 128)
    assert (out / "m0_PS.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "session.csv").read_text().splitlines()
    assert table[0] == ",".join(ROW_KEYS) and len(table) == 4
    data = json.loads((out / "session.json").read_text())
    assert data["summary"]["done"] == 3 and len(data["movies"]) == 3
    page = (out / "report.html").read_text()
    assert "<table" in page and all(f">m{i}<" in page for i in range(3))
    # the three spectra and the plots are inside the page
    assert page.count("data:image/") >= 5 and "http://" not in page
    assert not leftovers(out) and not list(out.glob(".*.claim"))


def test_the_record_is_the_movies_report_and_the_truth_is_found(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    movie = write_movie(folder / "a.mrc", seed=4, shape=(192, 192), n=8)
    out = tmp_path / "out"
    run_session([folder / "a.mrc"], out, workers=0, **OPTS)
    record = read_records(out)["a"]
    shifts = np.array(record["shifts_px"])
    truth = movie.shifts - movie.shifts.mean(axis=0)
    error = shifts - shifts.mean(axis=0) - truth
    assert np.sqrt((error**2).mean()) < 0.6 and np.abs(error).max() < 1.5
    assert record["outputs"]["record"].endswith("a_align.json")


def test_a_rerun_skips_done_movies_and_force_redoes_them(frames, tmp_path):
    out = tmp_path / "out"
    run_session([frames], out, workers=0, **OPTS)
    stamp = (out / "m1.mrc").stat().st_mtime_ns
    again = run_session([frames], out, workers=0, **OPTS)
    assert (again.done, again.skipped) == (0, 3)
    assert {r["status"] for r in again.rows} == {"skipped"}
    assert (out / "m1.mrc").stat().st_mtime_ns == stamp
    forced = run_session([frames], out, workers=0, force=True, **OPTS)
    assert forced.done == 3 and (out / "m1.mrc").stat().st_mtime_ns != stamp


def test_a_corrupt_movie_is_one_failed_row_and_the_session_goes_on(frames, tmp_path):
    data = (frames / "m0.mrc").read_bytes()
    (frames / "bad.mrc").write_bytes(data[:3000])
    (frames / "junk.tif").write_bytes(b"not a tiff at all" * 10)
    out = tmp_path / "out"
    report = run_session([frames], out, workers=0, **OPTS)
    assert (report.done, report.failed) == (3, 2)
    failed = {r["name"]: r["error"] for r in report.rows if r["status"] == "failed"}
    assert set(failed) == {"bad", "junk"}
    for error in failed.values():
        assert "\n" not in error and "Traceback" not in error
    assert "bad.mrc" in failed["bad"] and "truncated" in failed["bad"]
    assert not (out / "bad.mrc").exists() and not leftovers(out)
    # a failed movie is tried again by the next run
    assert run_session([frames], out, workers=0, **OPTS).failed == 2


def test_outputs_without_a_record_are_not_taken_as_done(frames, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "m0.mrc").write_bytes(b"someone else's file")
    report = run_session([frames], out, workers=0, **OPTS)
    row = {r["name"]: r for r in report.rows}["m0"]
    assert row["status"] == "failed" and "exists" in row["error"] and "--force" in row["error"]
    assert (out / "m0.mrc").read_bytes() == b"someone else's file"


def test_outputs_a_dead_session_was_committing_are_replaced(frames, tmp_path):
    """A session killed between the renames of a movie's outputs (the record comes last)
    leaves its claim file: the next session knows those outputs for dedkit's own."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "m0.mrc").write_bytes(b"the sum of an interrupted commit")
    (out / ".m0.claim").write_text('{"host": "x", "pid": 999999999, "since": "then"}')
    report = run_session([frames], out, workers=0, **OPTS)
    assert (report.done, report.failed) == (3, 0)
    with open_stack(out / "m0.mrc") as reader:
        assert reader.info.shape == (1, 128, 128)
    assert not list(out.glob(".*.claim"))


def test_a_crashed_run_leaves_nothing_a_rerun_takes_as_done(frames, tmp_path):
    """What a worker killed in the middle of writing leaves (temporaries of a dead
    process) is removed, and the movie redone."""
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    (out / f".m0.part-{dead}.mrc").write_bytes(b"half a sum")
    (out / f".m0_DW.part-{dead}.mrc").write_bytes(b"half")
    (out / f".m9.part-{os.getpid()}.mrc").write_bytes(b"a live process's file")
    report = run_session([frames], out, workers=0, **OPTS)
    assert report.done == 3
    assert leftovers(out) == [f".m9.part-{os.getpid()}.mrc"]


def test_remove_dead_temporaries_keeps_files_of_live_processes(tmp_path):
    outputs = movie_outputs(tmp_path, "x")
    (tmp_path / f".x.part-{os.getpid()}.mrc").write_bytes(b"")
    (tmp_path / ".x.part-999999999.mrc").write_bytes(b"")
    (tmp_path / ".xy.part-999999999.mrc").write_bytes(b"")  # another movie's
    removed = remove_dead_temporaries(outputs.values())
    assert [p.name for p in removed] == [".x.part-999999999.mrc"]


def test_a_claimed_movie_waits_for_its_session_and_is_taken_over_when_it_dies(frames, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from dedkit.jobs.session import MovieClaim; "
         f"c = MovieClaim({str(out)!r}, 'm1'); print(c.acquire(), flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": SRC},
    )  # fmt: skip
    result = {}
    try:
        assert holder.stdout.readline().strip() == "True"
        thread = threading.Thread(
            target=lambda: result.setdefault(
                "report", run_session([frames], out, workers=0, **OPTS)
            )  # fmt: skip
        )
        thread.start()
        deadline = time.monotonic() + 60
        while len(read_records(out)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(read_records(out)) == ["m0", "m2"]  # m1 is the other session's
        assert thread.is_alive()  # waiting for it
    finally:
        holder.kill()  # the other session dies: its claim goes with it
        holder.wait()
    thread.join(60)
    report = result["report"]
    assert (report.done, report.skipped, report.failed) == (3, 0, 0), report.text()
    assert sorted(read_records(out)) == ["m0", "m1", "m2"]


def test_a_movie_another_session_records_is_skipped(frames, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    claim = MovieClaim(out, "m1")
    assert claim.acquire()
    result = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("report", run_session([frames], out, workers=0, **OPTS))
    )
    thread.start()
    deadline = time.monotonic() + 60
    while len(read_records(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    # "the other session" finishes m1: its record appears, then its claim goes
    run_session([frames / "m1.mrc"], tmp_path / "elsewhere", workers=0, **OPTS)
    (tmp_path / "elsewhere" / "m1_align.json").rename(out / "m1_align.json")
    claim.release()
    thread.join(60)
    report = result["report"]
    assert (report.done, report.skipped) == (2, 1)


def test_claims_exclude_each_other_and_free_on_release(tmp_path):
    a, b = MovieClaim(tmp_path, "m"), MovieClaim(tmp_path, "m")
    assert a.acquire() and not b.acquire()
    a.release()
    assert not (tmp_path / ".m.claim").exists()
    assert b.acquire()
    b.release()


def test_stop_ends_after_the_running_movie_and_a_restart_resumes(frames, tmp_path):
    out = tmp_path / "out"
    stop = threading.Event()
    seen = []

    def on_movie(row, counts):
        seen.append(row["name"])
        stop.set()

    report = run_session([frames], out, workers=0, stop=stop, on_movie=on_movie, **OPTS)
    assert report.stopped == "interrupted"
    assert report.done == 1 and report.remaining == 2 and seen == ["m0"]
    assert sorted(read_records(out)) == ["m0"] and not leftovers(out)
    again = run_session([frames], out, workers=0, **OPTS)
    assert (again.done, again.skipped) == (2, 1)


def test_bad_session_options_fail_before_any_movie(frames, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DedkitError, match="holds the movies"):
        run_session([frames], frames, workers=0, **OPTS)
    with pytest.raises(DedkitError, match="group"):
        run_session([frames], out, workers=0, group=0)
    with pytest.raises(DedkitError, match="mdoc of one movie"):
        run_session([frames], out, workers=0, mdoc="x.mdoc")
    with pytest.raises(DedkitError, match="threads"):
        run_session([frames], out, workers=0, threads=0)
    with pytest.raises(DedkitError, match="workers"):
        run_session([frames], out, workers=-1)
    with pytest.raises(DedkitError, match="--workers is for a LocalCluster"):
        run_session([frames], out, workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(DedkitError, match="into a folder"):
        run_session([frames], tmp_path / "typo.mrc", workers=0)
    other = tmp_path / "other"
    other.mkdir()
    write_movie(other / "m0.mrc")
    with pytest.raises(DedkitError, match="same outputs"):
        run_session([frames / "m0.mrc", other / "m0.mrc"], out, workers=0)
    assert not out.exists()


def test_choose_layout_fits_memory_and_cores():
    assert choose_layout(2, 24 << 30, 1 << 30) == (2, 1)
    assert choose_layout(2, 4 << 30, 3 << 30) == (1, 2)
    assert choose_layout(1, 24 << 30, 1 << 30) == (1, 1)
    assert choose_layout(64, 512 << 30, 4 << 30) == (64, 1)
    workers, threads = choose_layout(64, 8 << 30, 4 << 30)
    assert workers == 1 and threads == 64


# ----------------------------------------------------------------------- watch (live)


def _copy_slowly(source: Path, target: Path, pieces: int = 6, pause: float = 0.15):
    data = source.read_bytes()
    step = len(data) // pieces + 1
    with open(target, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause)


def test_watch_aligns_movies_as_they_are_written(frames, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    out = tmp_path / "out"
    stop = threading.Event()
    result = {}

    def session():
        result["report"] = run_session(
            (), out, watch=live, workers=0, settle=0.3, poll=True, stop=stop, **OPTS
        )

    thread = threading.Thread(target=session)
    thread.start()
    try:
        for name in ("m0.mrc", "m1.mrc"):
            _copy_slowly(frames / name, live / name)
        deadline = time.monotonic() + 60
        while len(read_records(out)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(60)
    report = result["report"]
    assert report.done == 2 and report.failed == 0 and report.stopped == "interrupted"
    # a restart does not redo them
    stop2 = threading.Event()
    stop2.set()
    again = run_session((), out, watch=live, workers=0, settle=0.3, poll=True, stop=stop2)
    assert again.done == 0


# ------------------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                       capture_output=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_session_with_no_partial_outputs(frames, small_disk):
    out = small_disk / "out"
    out.mkdir()
    st = os.statvfs(small_disk)
    with open(small_disk / "filler", "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize - 60_000))
    report = run_session([frames], out, workers=0, **OPTS)
    assert report.stopped and report.stopped.startswith("disk full")
    assert "No space left on device" in report.stopped
    assert report.done == 0 and report.failed == 1 and report.remaining == 2
    assert not leftovers(out)
    assert not [p for p in out.iterdir() if p.suffix == ".mrc"]


# ------------------------------------------------------------------------- on Dask


@pytest.mark.slow
def test_a_worker_killed_mid_movie_loses_and_duplicates_nothing(tmp_path):
    from distributed import Client, LocalCluster

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        write_movie(folder / f"k{i}.mrc", seed=i, shape=(384, 384), n=12)
    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        result = {}

        def session():
            result["report"] = run_session(
                [folder], out, scheduler=cluster.scheduler_address, threads=1, **OPTS
            )

        thread = threading.Thread(target=session)
        thread.start()
        killed = None
        deadline = time.monotonic() + 60
        while killed is None and time.monotonic() < deadline:
            busy = {w: tasks for w, tasks in client.processing().items() if tasks}
            if busy:
                worker = sorted(busy)[0]
                time.sleep(0.3)  # well inside the movie
                pids = client.run(os.getpid, workers=[worker])
                os.kill(pids[worker], signal.SIGKILL)
                killed = worker
            else:
                time.sleep(0.05)
        thread.join(180)
    report = result["report"]
    assert killed is not None
    assert (report.done, report.failed) == (3, 0), report.rows
    assert [r["name"] for r in report.rows] == ["k0", "k1", "k2"]
    assert sorted(read_records(out)) == ["k0", "k1", "k2"]
    assert not leftovers(out)


def _cli(*args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": SRC, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "dedkit.cli.main", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


@pytest.mark.slow
def test_two_sessions_on_one_folder_align_each_movie_once(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        write_movie(folder / f"t{i}.mrc", seed=i, shape=(192, 192), n=8)
    out = tmp_path / "out"
    args = ["align", folder, "-o", f"{out}/", "--workers", "0", "--dose", "1",
            "--pixel-size", "1", "--voltage", "300", "--json"]  # fmt: skip
    first, second = _cli(*args), _cli(*args)
    reports = []
    for proc in (first, second):
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        reports.append(json.loads(stdout))
    assert reports[0]["done"] + reports[1]["done"] == 6
    assert sorted(read_records(out)) == [f"t{i}" for i in range(6)]
    for name in read_records(out):
        with open_stack(out / f"{name}.mrc") as reader:
            assert np.isfinite(reader.read(0)).all()
    assert not leftovers(out) and not list(out.glob(".*.claim"))
    final = json.loads((out / "session.json").read_text())
    assert len(final["movies"]) == 6


@pytest.mark.slow
def test_ctrl_c_ends_after_the_running_movie_and_the_rerun_finishes(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        write_movie(folder / f"c{i}.mrc", seed=i, shape=(256, 256), n=10)
    out = tmp_path / "out"
    args = ["align", folder, "-o", f"{out}/", "--workers", "0", "--dose", "1",
            "--pixel-size", "1", "--voltage", "300"]  # fmt: skip
    proc = _cli(*args)
    deadline = time.monotonic() + 120
    while not read_records(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    done = sorted(read_records(out))
    assert 1 <= len(done) < 4
    assert not leftovers(out)
    proc = _cli(*args, "--json")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["skipped"] == len(done) and report["done"] == 4 - len(done)


# ------------------------------------------------------------------- MRC, TIFF and EER


def test_a_folder_of_mrc_tiff_and_eer_movies_from_the_command_line(tmp_path, capsys):
    from dedkit.cli.main import main

    folder = tmp_path / "frames"
    folder.mkdir()
    write_movie(folder / "a.mrc", seed=1)
    write_movie(folder / "b.tif", seed=2)
    drifting_eer_movie(folder / "c.eer", shape=(128, 128), seed=3)
    out = tmp_path / "out"
    args = ["align", str(folder), "-o", f"{out}/", "--workers", "0", "--eer-group", "4",
            "--dose", "1", "--pixel-size", "1", "--voltage", "300", "--json"]  # fmt: skip
    status = main(args)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = json.loads(captured.out)
    assert (report["done"], report["failed"]) == (3, 0), report["rows"]
    rows = {r["name"]: r for r in report["rows"]}
    assert rows["c"]["frames"] == 6
    steps = np.diff(np.array(read_records(out)["c"]["shifts_px"]), axis=0)
    assert np.allclose(steps, [[-1.0, 1.0]] * 5, atol=0.35)
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["skipped"] == 3


def test_session_options_that_name_one_file_are_refused(frames, tmp_path, capsys):
    from dedkit.cli.main import main

    out = f"{tmp_path / 'out'}/"
    assert main(["align", str(frames), "-o", out, "--shifts", "s.csv"]) == 2
    assert "--shifts names the file of one movie" in capsys.readouterr().err
    assert main(["align", str(frames / "m0.mrc"), "-o", "sum.mrc", "--workers", "2"]) == 2
    assert "--workers is for many movies" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
