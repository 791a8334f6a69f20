"""A full disk ends a command with one line naming the output, exit status 2, and
nothing left behind: no traceback, no segfault, no SIGBUS (issue 13 item 7).

Write failures are simulated (an ``OSError(ENOSPC)`` from the writer) and, where this
process may mount a small tmpfs (root), met for real on a nearly full file system.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

import dedkit
from dedkit.errors import DedkitError
from dedkit.io.atomic import write_error

SRC = str(Path(dedkit.__file__).parents[1])


def _one_line(r, path):
    assert r.status == 2, r
    assert r.err_lines == [f"dedkit: error: {path}: cannot write: No space left on device"] or (
        len(r.err_lines) == 1 and f"{path}: cannot write: No space left on device" in r.err
    ), r
    assert "Traceback" not in r.out + r.err


def _no_leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if ".part-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------- simulated failures


def test_issue13_item7_enospc_while_writing_mrc_is_one_line(mk, run, monkeypatch):
    import dedkit.io.mrc as mrc

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mrc, "pwrite_all", full)
    src = mk.mrc("in.mrc", mk.counts())
    out = mk.path("out.mrc")
    _one_line(run("convert", src, out), out)
    assert not out.exists() and not _no_leftovers(mk.folder)


def test_issue13_item7_enospc_while_writing_a_folder_is_one_line(mk, run, monkeypatch):
    import tifffile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tifffile.TiffWriter, "write", full)
    src = mk.mrc("in.mrc", mk.counts())
    out = mk.path("frames")
    _one_line(run("convert", src, out), out)
    assert not out.exists() and not _no_leftovers(mk.folder)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        RuntimeError(
            "Unable to synchronously flush file (file write failed: errno = 28, "
            "error message = 'No space left on device')"
        ),  # fmt: skip
    ],
)
def test_issue13_item7_write_errors_become_one_line(tmp_path, error):
    converted = write_error(tmp_path / "out.h5", error)
    assert isinstance(converted, DedkitError)
    assert str(converted).startswith(f"{tmp_path / 'out.h5'}: cannot write: ")
    assert "\n" not in str(converted)


def test_issue13_item7_unrelated_errors_are_left_alone(tmp_path):
    assert write_error(tmp_path / "x", OSError(errno.ENOENT, "No such file")) is None
    assert write_error(tmp_path / "x", ValueError("bad")) is None


# ------------------------------------------------------------------- a real full disk


@pytest.fixture
def full_disk(tmp_path):
    """``full_disk(free_bytes)``: a tmpfs of 24 MB with only ``free_bytes`` left free
    (skipped where this process may not mount one)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                       capture_output=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")

    def fill(free_bytes: int) -> Path:
        for p in mount.iterdir():
            p.unlink()
        st = os.statvfs(mount)
        with open(mount / "filler", "wb") as f:
            f.write(b"\0" * (st.f_bavail * st.f_frsize - free_bytes))
        return mount

    yield fill
    # lazily: a memory map in a kept traceback may still hold the file system
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _dedkit(*args):
    """The CLI in a fresh process: a crash (segfault, SIGBUS) shows in its status."""
    env = {**os.environ, "PYTHONPATH": SRC}
    code = "import sys; from dedkit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    return r


def _refused_for_room(r, path):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{path}: cannot write: No space left on device" in lines[0], lines
    assert "Traceback" not in r.stderr


def test_issue13_item7_convert_on_a_full_disk(full_disk, mk):
    src = mk.mrc("in.mrc", mk.counts(nz=20, ny=256, nx=256, high=4000, dtype=np.int16))
    # MRC: the size is known, the free space is checked before writing
    disk = full_disk(100_000)
    for name, extra in [("o.mrc", []), ("o.tif", ["-c", "lzw"]), ("frames", ["-c", "zip"])]:
        r = _dedkit("convert", src, disk / name, "-q", *extra)
        _refused_for_room(r, disk / name)
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    # compressed TIFF: not checked ahead (the ratio is unknown), the write fails
    disk = full_disk(1_200_000)
    r = _dedkit("convert", src, disk / "o.tif", "-c", "lzw", "-q")
    _refused_for_room(r, disk / "o.tif")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


@pytest.fixture(scope="module")
def moench_run(tmp_path_factory):
    from dedkit.io.sls import write_raw_run
    from dedkit.jobs.hpd import compute_pedestal, find_clusters_in_run

    folder = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(3)
    shape = (400, 400)
    pedestal = rng.normal(1000, 30, shape)
    dark = write_raw_run(folder, "dark", (pedestal + rng.normal(0, 10, (40, *shape)))
                         .astype(np.uint16))  # fmt: skip
    frames = pedestal + rng.normal(0, 10, (30, *shape))
    hits = rng.integers(20, 380, (30, 40, 2))
    for f, points in enumerate(hits):
        frames[f, points[:, 0], points[:, 1]] += 3000
    master = write_raw_run(folder, "run", frames.clip(0, 16383).astype(np.uint16))
    ped = folder / "PED.h5"
    compute_pedestal(dark, ped)
    clusters = folder / "clusters.h5"
    find_clusters_in_run(master, ped, clusters, gain=0.05, workers=0)
    return dark, master, ped, clusters


def test_issue13_item7_hdf5_outputs_on_a_full_disk(full_disk, moench_run):
    """hpd pedestal, clusters (.h5 and .clust) and localize: exit 2, one line, no
    segfault, nothing left."""
    dark, master, ped, clusters = moench_run
    disk = full_disk(30_000)
    commands = [
        ("hpd", "pedestal", dark, "-o", disk / "P.h5"),
        ("hpd", "clusters", master, "-p", ped, "-o", disk / "c.h5", "--gain", "0.05",
         "--workers", "0"),
        ("hpd", "clusters", master, "-p", ped, "-o", disk / "c.clust", "--workers", "0"),
        ("hpd", "localize", clusters, "-o", disk / "e.h5"),
    ]  # fmt: skip
    for args in commands:
        r = _dedkit(*args, "-q")
        _refused_for_room(r, args[args.index("-o") + 1])
        assert sorted(p.name for p in disk.iterdir()) == ["filler"], args


_SIM_ON_A_FULL_DISK = """
import sys
sys.path.insert(0, {tests!r})
from synthetic_tracks import fake_stream
import dedkit.jobs.sim as jobs_sim
from dedkit.errors import DedkitError

if {skip_check!r}:
    jobs_sim.check_free_space = lambda *a: None
try:
    jobs_sim.write_simulated_run({out!r}, energy_keV=200.0, n_frames=20, flux=1.0,
                                 dark_frames=20, seed=1, stream=fake_stream)
except DedkitError as error:
    print(error)
"""


@pytest.mark.parametrize("skip_check", [False, True])
def test_issue13_item7_sim_frames_scratch_on_a_full_disk(full_disk, skip_check):
    """The free space is checked first; without that check the scratch map is allocated
    before use (posix_fallocate): ENOSPC, not SIGBUS, and nothing is left."""
    disk = full_disk(3_000_000)  # less than one run's scratch map (20 x 400 x 400 x 2)
    out = disk / "run"
    code = _SIM_ON_A_FULL_DISK.format(
        tests=str(Path(__file__).parents[1] / "sim"), skip_check=skip_check, out=str(out)
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert f"{out}: cannot write: No space left on device" in r.stdout, r.stdout
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_issue13_item7_numpy_short_write_on_a_full_disk_says_so(tmp_path, monkeypatch):
    """numpy's tofile loses errno ('65536 requested and 61984 written'): on a file system
    without room it is reported as the full disk it is."""
    import dedkit.io.atomic as atomic

    error = OSError("65536 requested and 61984 written")
    monkeypatch.setattr(atomic, "_free_bytes", lambda path: 0)
    assert str(write_error(tmp_path / "x.clust", error)).endswith(
        "cannot write: No space left on device"
    )
    monkeypatch.setattr(atomic, "_free_bytes", lambda path: 1 << 40)
    assert str(write_error(tmp_path / "x.clust", error)).endswith("cannot write: short write")


def test_issue13_item7_a_failure_inside_a_folder_output_names_the_final_path(tmp_path):
    from dedkit.io.atomic import atomic_output

    out = tmp_path / "run"
    with pytest.raises(DedkitError) as info, atomic_output(out, kind="simulated run") as tmp:
        tmp.mkdir()
        raise DedkitError("cannot write: No space left on device", path=tmp / "sim_truth.h5")
    assert str(info.value) == f"{out / 'sim_truth.h5'}: cannot write: No space left on device"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("free", [4_000, 12_000, 20_000])
def test_issue_13_item_7_clusters_in_chunks_on_a_nearly_full_disk(full_disk, moench_run, free):
    """Several chunks of compressed clusters on a few kB: HDF5's own error after the first
    failed write (a filter re-reading a chunk never written) gives way to the recorded
    cause, on one line naming the output (issue 13 item 7, QA replay)."""
    dark, master, ped, clusters = moench_run
    disk = full_disk(free)
    out = disk / "c.h5"
    r = _dedkit("hpd", "clusters", master, "-p", ped, "-o", out, "--gain", "0.05",
                "--chunk", "5", "--workers", "0", "-q")  # fmt: skip
    _refused_for_room(r, out)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
