"""The hybrid-pixel commands end to end on MÖNCH runs written on the spot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dedkit.hpd.finder import ClusterFinder
from dedkit.hpd.pedestal import Pedestal
from dedkit.io.clust import read_clust
from dedkit.io.events import read_attrs, read_table
from dedkit.io.mrc import MrcReader
from dedkit.io.sls import RawRun, write_raw_run

SHAPE = (400, 400)
# the real Jungfrau run in shared/ beside the checkout
JUNGFRAU = (
    Path(__file__).parents[3]
    / "shared"
    / "data"
    / "sls"
    / "jungfrau"
    / "jungfrau_single_master_0.json"
)


def clouds(rng, n_frames, per_frame=20, amplitude=2000.0, sigma=0.8):
    """Pedestal-free frames with Gaussian charge clouds (ADU), cut at 5 pixels."""
    frames = np.zeros((n_frames, *SHAPE))
    half = 5
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    for f in range(n_frames):
        for _ in range(per_frame):
            cy, cx = rng.uniform(10, SHAPE[0] - 10), rng.uniform(10, SHAPE[1] - 10)
            r0, c0 = int(cy), int(cx)
            cloud = amplitude * np.exp(
                -((yy + r0 + 0.5 - cy) ** 2 + (xx + c0 + 0.5 - cx) ** 2) / (2 * sigma**2)
            )
            frames[f, r0 - half : r0 + half + 1, c0 - half : c0 + half + 1] += cloud
    return frames


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("moench")
    rng = np.random.default_rng(7)
    pedestal = rng.normal(1000, 30, SHAPE)
    dark = (pedestal + rng.normal(0, 10, (80, *SHAPE))).astype(np.uint16)
    data = pedestal + rng.normal(0, 10, (24, *SHAPE)) + clouds(rng, 24)
    dark_master = write_raw_run(folder, "dark", dark, frames_per_file=30)
    data_master = write_raw_run(
        folder, "run", data.clip(0, 16383).astype(np.uint16), frames_per_file=10
    )
    return folder, dark_master, data_master


@pytest.fixture(scope="module")
def pedestal_file(runs):
    folder, dark, _ = runs
    from dedkit.jobs.hpd import compute_pedestal

    out = folder / "PED.h5"
    compute_pedestal(dark, out)
    return out


def test_raw_info_on_real_jungfrau_and_moench(run, runs):
    if not JUNGFRAU.exists():
        pytest.skip("real Jungfrau files absent (shared/data/sls beside the checkout)")
    r = run("raw", "info", JUNGFRAU, "--json")
    assert r.status == 0, r
    assert r.json["detector_type"] == "Jungfrau" and r.json["frames"] == 10
    assert r.json["shape"] == [512, 1024]
    r = run("raw", "info", runs[2])
    assert r.status == 0 and "Moench, 24 frames of 400 x 400" in r.out


def test_pedestal_matches_the_dark_frames(run, runs, tmp_path):
    out = tmp_path / "PED.h5"
    r = run("hpd", "pedestal", runs[1], "-o", out, "--window", "0", "--json")
    assert r.status == 0, r
    dark = RawRun(runs[1]).read().frames.astype(float)
    from dedkit.io.calibration import read_pedestal_file

    arrays, attrs = read_pedestal_file(out)
    pedestal = Pedestal.from_arrays(arrays)
    np.testing.assert_allclose(pedestal.mean, dark.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(pedestal.std, dark.std(axis=0), rtol=1e-9)
    assert attrs["frames"] == [0, 80]
    assert 9 < r.json["details"]["median_noise_adu"] < 11


def test_aare_finder_job_equals_the_finder_on_the_whole_run(run, runs, pedestal_file, tmp_path):
    out = tmp_path / "c.clust"
    r = run(
        "hpd",
        "clusters",
        runs[2],
        "-p",
        pedestal_file,
        "-o",
        out,
        "--chunk",
        "7",
        "--workers",
        "0",
        "--json",
    )
    assert r.status == 0, r
    got = read_clust(out)
    # reference: one finder over all frames, pedestal from the same dark frames
    finder = ClusterFinder(SHAPE, (3, 3), 5.0, 80)
    finder.push_pedestal_frames(RawRun(runs[1]).read().frames)
    raw = RawRun(runs[2]).read()
    expected = finder.find_clusters_in_frames(raw.frames, raw.frame_numbers)
    for name in ("frame", "x", "y", "data"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    assert r.json["counts"] == {"frames": 24, "clusters": len(expected)}
    assert 400 <= len(expected) <= 520  # 20 clouds a frame, some overlapping


@pytest.mark.slow
@pytest.mark.parametrize("finder", ["aare3x3", "connected"])
def test_dask_run_is_identical_to_the_single_process_run(
    run, runs, pedestal_file, tmp_path, finder
):
    outputs = []
    for workers in ("0", "2"):
        out = tmp_path / f"c{workers}.h5"
        r = run(
            "hpd",
            "clusters",
            runs[2],
            "-p",
            pedestal_file,
            "-o",
            out,
            "--finder",
            finder,
            "--gain",
            "0.02",
            "--chunk",
            "5",
            "--workers",
            workers,
            "--json",
        )
        assert r.status == 0, r
        assert r.json["details"]["dask"] is (workers == "2")
        outputs.append(read_table(out))
    a, b = outputs
    assert len(a) > 0
    for name in ("frame", "x", "y", "data"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    if finder == "connected":
        np.testing.assert_array_equal(a.features, b.features)


def test_localize_and_image(run, runs, pedestal_file, tmp_path):
    clusters = tmp_path / "c.h5"
    events = tmp_path / "e.h5"
    image = tmp_path / "img.mrc"
    assert (
        run(
            "hpd",
            "clusters",
            runs[2],
            "-p",
            pedestal_file,
            "-o",
            clusters,
            "--finder",
            "connected",
            "--gain",
            "0.02",
            "--workers",
            "0",
        ).status
        == 0
    )
    for method in ("centroid", "eta2", "eta3"):
        r = run("hpd", "localize", clusters, "--method", method, "-o", events, "--force", "--json")
        assert r.status == 0, r
        table = read_table(events)
        sel = r.json["details"]["selection"]
        assert sel["n_selected"] + sel["n_rejected"] == sel["n_input"]
        assert len(table) == sel["n_selected"] and table.method == method
        assert read_attrs(events)["method"] == method
        assert np.all((table.x >= 0) & (table.x <= 400) & (table.y >= 0) & (table.y <= 400))
    r = run("hpd", "image", events, "--upsample", "4", "-o", image, "--no-flat-field", "--json")
    assert r.status == 0, r
    with MrcReader(image) as reader:
        img = reader.read(0)
    assert img.shape == (1600, 1600)
    assert img.sum() == pytest.approx(len(read_table(events)))


def test_bad_input(run, runs, pedestal_file, tmp_path):
    out = tmp_path / "c.h5"
    # pedestal of another detector size
    other = tmp_path / "PED_other.h5"
    from dedkit.io.calibration import write_pedestal_file

    small = Pedestal((10, 10), 5)
    small.push_frames(np.ones((5, 10, 10), np.uint16))
    write_pedestal_file(other, small.to_arrays())
    r = run("hpd", "clusters", runs[2], "-p", other, "-o", out)
    assert r.status == 2 and "pedestal is 10 x 10" in r.err and not out.exists()
    # wrong detector type
    (tmp_path / "jf").mkdir()
    jungfrau = write_raw_run(
        tmp_path / "jf",
        "jf",
        np.zeros((2, 512, 1024), np.uint16),
        detector_type="Jungfrau",
        n_ports=1,
    )
    r = run("hpd", "pedestal", jungfrau, "-o", tmp_path / "p.h5")
    assert r.status == 2 and "Jungfrau run" in r.err
    # connected finder without gain, .clust for keV clusters
    r = run("hpd", "clusters", runs[2], "-p", pedestal_file, "-o", out, "--finder", "connected")
    assert r.status == 2 and "--gain" in r.err
    r = run(
        "hpd",
        "clusters",
        runs[2],
        "-p",
        pedestal_file,
        "-o",
        tmp_path / "c.clust",
        "--finder",
        "connected",
        "--gain",
        "0.02",
    )
    assert r.status == 2 and ".h5" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["PED_other.h5", "jf"]


def test_truncated_run_is_refused_beyond_its_complete_frames(run, runs, pedestal_file, tmp_path):
    import shutil

    folder = tmp_path / "cut"
    shutil.copytree(runs[0], folder)
    last = sorted(folder.glob("run_d1_f2_0.raw"))[0]
    last.write_bytes(last.read_bytes()[:-1000])
    r = run(
        "hpd",
        "clusters",
        folder / "run_master_0.json",
        "-p",
        pedestal_file,
        "-o",
        tmp_path / "c.h5",
        "--frames",
        "0:24",
    )
    assert r.status == 2 and len(r.err_lines) == 1, r


@pytest.mark.slow
def test_clusters_on_a_scheduler_given_by_address(run, runs, pedestal_file, tmp_path):
    from distributed import LocalCluster

    reference = tmp_path / "ref.h5"
    assert (
        run(
            "hpd", "clusters", runs[2], "-p", pedestal_file, "-o", reference, "--workers", "0"
        ).status
        == 0
    )
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        out = tmp_path / "remote.h5"
        r = run(
            "hpd",
            "clusters",
            runs[2],
            "-p",
            pedestal_file,
            "-o",
            out,
            "--chunk",
            "8",
            "--scheduler",
            cluster.scheduler_address,
            "--json",
        )
    assert r.status == 0, r
    assert r.json["details"]["dask"] is True and r.json["details"]["chunks"] == 3
    a, b = read_table(reference), read_table(out)
    for name in ("frame", "x", "y", "data"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_unreachable_scheduler_is_one_line(run, runs, pedestal_file, tmp_path):
    out = tmp_path / "c.h5"
    r = run(
        "hpd",
        "clusters",
        runs[2],
        "-p",
        pedestal_file,
        "-o",
        out,
        "--scheduler",
        "tcp://127.0.0.1:1",
    )
    assert r.status == 2 and len(r.err_lines) == 1 and "Dask scheduler" in r.err
    assert not out.exists() and not list(tmp_path.iterdir())
