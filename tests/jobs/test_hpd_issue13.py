"""Issue 13 on the hybrid-pixel side: hostile sizes, bad input as one line, silent
acceptance, the energy selection of .clust files, help and the image pixel size."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from dedkit.cli.main import main
from dedkit.errors import DedkitError
from dedkit.io.calibration import read_gain_map, read_pedestal_file
from dedkit.io.clust import write_clust
from dedkit.io.events import read_attrs, read_table, write_table
from dedkit.io.mrc import MrcReader
from dedkit.io.sls import RawRun, run_files, write_raw_run
from dedkit.jobs.hpd import load_pedestal, localize_clusters, make_image
from dedkit.records.tables import ClusterTable, EventTable

AARE_CLUST = (
    Path(__file__).parents[3]
    / "shared"
    / "cases"
    / "external"
    / "clust"
    / "single_frame_97_clustrers.clust"
)
PEAK_LIMIT = 64 * 2**20  # far below what the hostile headers declare (gigabytes)


def run_cli(capsys, *args):
    capsys.readouterr()
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_refusal(status, err, *words):
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    for word in words:
        assert word in err, err


def peak_bytes(fn, *args, **kwargs):
    """Peak Python-tracked allocation while ``fn`` runs (numpy allocations included)."""
    tracemalloc.start()
    try:
        try:
            fn(*args, **kwargs)
        finally:
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def moench(tmp_path_factory):
    """A two-frame MÖNCH run (and the folder it is in)."""
    folder = tmp_path_factory.mktemp("moench13")
    rng = np.random.default_rng(3)
    frames = rng.integers(900, 1100, (2, 400, 400)).astype(np.uint16)
    return write_raw_run(folder, "run", frames, frames_per_file=10)


def events_file(path, x, y, *, attrs=None):
    x = np.asarray(x, np.float64)
    table = EventTable(
        np.zeros(len(x), np.int64),
        x,
        np.asarray(y, np.float64),
        np.ones(len(x), np.float32),
        "centroid",
    )
    attrs = {"detector_shape": [400, 400], "pitch_um": 25.0} if attrs is None else attrs
    return write_table(path, table, attrs=attrs)


def adu_clusters(n=40, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 30, (n, 3, 3)).astype(np.int32)
    data[:, 1, 1] = rng.integers(500, 3000, n)  # 0.1 keV/ADU: 50-300 keV
    return ClusterTable(
        np.repeat(np.arange(n // 4), 4).astype(np.int64),
        rng.integers(5, 395, n).astype(np.int32),
        rng.integers(5, 395, n).astype(np.int32),
        data,
    )


# ----------------------------------------------------------------------------- item 8


def test_issue_13_item_8_pedestal_declaring_16000_squared_is_refused_before_reading(tmp_path):
    path = tmp_path / "PED.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("pedestal")
        for name in ("sum", "sum2", "mean"):
            group.create_dataset(
                name, shape=(16000, 16000), dtype="f8", chunks=(1000, 1000), compression="gzip"
            )
        group.create_dataset("count", shape=(16000, 16000), dtype="u4", chunks=(1000, 1000))
        group.create_dataset("window", data=np.int64(10))
    assert path.stat().st_size < 2**20
    with pytest.raises(DedkitError, match="pedestal is 16000 x 16000.*the run is 400 x 400"):
        load_pedestal(path, (400, 400))
    assert peak_bytes(_refused, load_pedestal, path, (400, 400)) < PEAK_LIMIT
    # without a run to compare with, a side beyond any detector is refused
    with pytest.raises(DedkitError, match="not a detector dedkit reads"):
        read_pedestal_file(path)
    assert peak_bytes(_refused, read_pedestal_file, path) < PEAK_LIMIT


def _refused(fn, *args, **kwargs):
    with pytest.raises(DedkitError):
        fn(*args, **kwargs)


def test_issue_13_item_8_events_with_a_huge_detector_shape_make_no_huge_image(tmp_path, capsys):
    events = events_file(
        tmp_path / "e.h5", [1.5, 2.5], [1.5, 2.5], attrs={"detector_shape": [2000, 2000]}
    )
    image = tmp_path / "img.mrc"
    peak = peak_bytes(_refused, make_image, events, image, upsample=8)
    assert peak < PEAK_LIMIT and not image.exists()
    status, _, err = run_cli(capsys, "hpd", "image", events, "--upsample", "8", "-o", image)
    assert_one_line_refusal(status, err, str(events), "16000 x 16000", "--upsample")
    assert not image.exists()
    # a detector side beyond any real detector is refused at any upsampling
    big = events_file(tmp_path / "big.h5", [1.5], [1.5], attrs={"detector_shape": [20000, 20000]})
    status, _, err = run_cli(capsys, "hpd", "image", big, "--upsample", "1", "-o", image)
    assert_one_line_refusal(status, err, str(big), "20000 x 20000")
    # a 400 x 400 MÖNCH at x8 is fine
    make_image(events_file(tmp_path / "ok.h5", [1.5], [1.5]), image, upsample=8)
    assert image.exists()


def test_issue_13_item_8_npy_header_declaring_131072_squared_is_refused(tmp_path):
    path = tmp_path / "gain.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (131072, 131072)}
        )
        f.write(b"\0" * 1024)
    with pytest.raises(DedkitError, match="declares 131072 x 131072"):
        read_gain_map(path)
    assert peak_bytes(_refused, read_gain_map, path) < PEAK_LIMIT
    # a complete map of the wrong size is refused from its header, before loading
    np.save(path, np.ones((40, 30), np.float32))
    with pytest.raises(DedkitError, match="gain map is 30 x 40, detector is 400 x 400"):
        read_gain_map(path, (400, 400))


def test_issue_13_item_8_table_declaring_rows_it_does_not_store_is_refused(tmp_path):
    path = events_file(tmp_path / "e.h5", [1.5, 2.5], [1.5, 2.5])
    with h5py.File(path, "a") as f:
        group = f["events"]
        for name in ("frame", "x", "y", "energy"):
            dtype = group[name].dtype
            del group[name]
            group.create_dataset(name, shape=(10**9,), dtype=dtype, chunks=(2**16,))
    assert path.stat().st_size < 2**20
    with pytest.raises(DedkitError, match="declares 1000000000 .* but it stores only"):
        read_table(path)
    assert peak_bytes(_refused, read_table, path) < PEAK_LIMIT


# ----------------------------------------------------------------------------- item 11


def test_issue_13_item_11_bad_hpd_input_is_one_line_exit_2(moench, tmp_path, capsys):
    folder = moench.parent
    master = json.loads(moench.read_text())
    # master Pixels 2^30 x 2^30
    huge = tmp_path / "huge_master_0.json"
    huge.write_text(
        json.dumps({**master, "Pixels": {"x": 2**30, "y": 2**30}, "Image Size in bytes": 2**61})
    )
    status, _, err = run_cli(capsys, "raw", "info", huge)
    assert_one_line_refusal(status, err, "Pixels", "1073741824")
    # --scheduler banana (refused before any output is left)
    ped = tmp_path / "PED.h5"
    assert run_cli(capsys, "hpd", "pedestal", moench, "-o", ped)[0] == 0
    out = tmp_path / "c.h5"
    status, _, err = run_cli(
        capsys, "hpd", "clusters", moench, "-p", ped, "-o", out, "--scheduler", "banana"
    )
    assert_one_line_refusal(status, err, "banana", "scheduler address")
    assert not out.exists()
    # --chunk 99999999999999999999999
    status, _, err = run_cli(
        capsys,
        "hpd",
        "clusters",
        moench,
        "-p",
        ped,
        "-o",
        out,
        "--chunk",
        "99999999999999999999999",
    )
    assert_one_line_refusal(status, err, "--chunk")
    # a 0-byte .clust
    empty = tmp_path / "empty.clust"
    empty.write_bytes(b"")
    status, _, err = run_cli(capsys, "hpd", "localize", empty, "--no-select", "-o", out)
    assert_one_line_refusal(status, err, str(empty), "empty")
    # an events table and a truth table (an events table of method 'truth')
    for method in ("centroid", "truth"):
        events = tmp_path / f"{method}.h5"
        table = EventTable(
            np.zeros(3, np.int64), np.ones(3), np.ones(3), np.ones(3, np.float32), method
        )
        write_table(events, table, force=True)
        status, _, err = run_cli(capsys, "hpd", "localize", events, "-o", out)
        assert_one_line_refusal(
            status,
            err,
            str(events),
            f"events table (method '{method}')",
            "hpd localize needs clusters",
        )
    # an events column of the wrong length
    short = events_file(tmp_path / "short.h5", [1.5, 2.5, 3.5], [1.5, 2.5, 3.5])
    with h5py.File(short, "a") as f:
        del f["events/x"]
        f["events"].create_dataset("x", data=np.ones(2))
    status, _, err = run_cli(capsys, "hpd", "image", short, "-o", tmp_path / "i.mrc")
    assert_one_line_refusal(status, err, str(short), "column x has 2 rows")
    assert not out.exists() and not (tmp_path / "i.mrc").exists()
    assert folder.exists()


# ----------------------------------------------------------------------------- item 12


def test_issue_13_item_12_master_disagreeing_with_the_data_is_refused(moench, tmp_path, capsys):
    import shutil

    folder = tmp_path / "lie"
    folder.mkdir()
    for data in moench.parent.glob("run_d*_f*_0.raw"):
        shutil.copy(data, folder / data.name)
    master = json.loads(moench.read_text())
    # half the rows (a partial readout the master is consistent about): twice as many
    # frames would seem to be in the files
    lie = folder / moench.name
    lie.write_text(
        json.dumps(
            {
                **master,
                "Pixels": {"x": 400, "y": 100},
                "Image Size in bytes": 80000,
                "Number of rows": 200,
            }
        )
    )
    for args in (("raw", "info", lie), ("hpd", "pedestal", lie, "-o", tmp_path / "p.h5")):
        status, _, err = run_cli(capsys, *args)
        assert_one_line_refusal(status, err, "master", "does not describe this data")
    assert not (tmp_path / "p.h5").exists()
    # the honest master still reads
    assert RawRun(moench).n_frames == 2
    # twice the rows: more than a MÖNCH module has (issue 13 item 12, QA replay: the
    # master contradicts itself before the data is looked at)
    longer = write_raw_run(tmp_path, "long", np.ones((5, 400, 400), np.uint16) * 1000)
    master = json.loads(longer.read_text())
    longer.write_text(
        json.dumps({**master, "Pixels": {"x": 400, "y": 400}, "Image Size in bytes": 320000})
    )
    status, _, err = run_cli(capsys, "raw", "info", longer)
    assert_one_line_refusal(status, err, "Pixels", "contradict", "400 x 400")


def test_issue_13_item_12_image_of_a_clusters_file_is_refused(tmp_path, capsys):
    clusters = write_table(tmp_path / "c.h5", adu_clusters(), attrs={"detector_shape": [400, 400]})
    image = tmp_path / "i.mrc"
    status, _, err = run_cli(capsys, "hpd", "image", clusters, "-o", image)
    assert_one_line_refusal(
        status, err, str(clusters), "clusters table", "hpd image needs localised events"
    )
    assert not image.exists()


def test_issue_13_item_12_non_finite_positions_are_counted_and_dropped(tmp_path, capsys):
    """Decision: NaN/inf positions are left out, counted in the report and named in one
    warning line with the file; no raw numpy warning."""
    x = [1.5, np.nan, np.inf, 2.5, 1e300, -np.inf]
    y = [1.5, 1.5, 1.5, np.nan, 1.5, 2.5]
    events = events_file(tmp_path / "e.h5", x, y)
    image = tmp_path / "i.mrc"
    status, out, err = run_cli(
        capsys, "hpd", "image", events, "-o", image, "--no-flat-field", "--upsample", "2", "--json"
    )
    assert status == 0, err
    report = json.loads(out)
    assert report["counts"]["non_finite"] == 4
    lines = err.strip().splitlines()
    assert len(lines) == 2 and str(events) in lines[0] and "4 of 6 events" in lines[0], err
    assert report["counts"]["outside"] == 1 and "1 of 6 events lie outside" in lines[1], err
    with MrcReader(image) as reader:
        assert reader.read(0).sum() == 1  # 1e300 is finite but outside the detector


# ----------------------------------------------------------------------------- item 13


def test_issue_13_item_13_clust_input_is_selected_by_energy_or_refused(tmp_path, capsys):
    """Decision: ADU clusters (aare .clust) are never localised without the selection in
    silence: --gain converts them to keV and the window comes from --beam-energy (default
    200 keV); without --gain they are refused unless --no-select is given."""
    clust = write_clust(tmp_path / "c.clust", adu_clusters())
    out = tmp_path / "e.h5"
    status, _, err = run_cli(capsys, "hpd", "localize", clust, "-o", out)
    assert_one_line_refusal(status, err, str(clust), "ADU", "--gain", "--no-select")
    assert not out.exists()
    status, report, err = run_cli(
        capsys, "hpd", "localize", clust, "-o", out, "--gain", "0.1", "--json"
    )
    assert status == 0, err
    selection = json.loads(report)["details"]["selection"]
    assert selection is not None and selection["window_keV"] == [20.0, 205.0]
    energy = adu_clusters().data.reshape(40, -1).sum(axis=1) * 0.1
    n_in = int(((energy >= 20) & (energy <= 205)).sum())
    assert 0 < selection["n_selected"] == n_in < 40 == selection["n_input"]
    assert len(read_table(out)) == n_in and read_attrs(out)["selection"] is not None
    status, report, err = run_cli(
        capsys, "hpd", "localize", clust, "-o", out, "--no-select", "--force", "--json"
    )
    assert status == 0 and json.loads(report)["counts"]["events"] == 40


def test_issue_13_item_13_real_aare_clust_file(tmp_path):
    if not AARE_CLUST.exists():
        pytest.skip("aare's .clust file absent (shared/cases/external beside the checkout)")
    out = tmp_path / "e.h5"
    with pytest.raises(DedkitError, match="--no-select"):
        localize_clusters(AARE_CLUST, out)
    report = localize_clusters(AARE_CLUST, out, gain=0.05)
    assert report.counts["clusters"] == 97
    assert report.details["selection"]["n_input"] == 97
    assert report.counts["events"] == report.details["selection"]["n_selected"] < 97


def test_issue_13_item_13_cnn_on_clust_names_the_finder_first(tmp_path, capsys):
    clust = write_clust(tmp_path / "c.clust", adu_clusters())
    status, _, err = run_cli(
        capsys, "hpd", "localize", clust, "--method", "cnn", "-o", tmp_path / "e.h5"
    )
    assert_one_line_refusal(status, err, "connected finder")
    assert "--beam-energy" not in err


# ----------------------------------------------------------------------------- item 20


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("hpd", "localize"), ["--method", "default: centroid", "--gain"]),
        (
            ("hpd", "clusters"),
            ["default: aare3x3", "default: 5.0", "default: 200.0", "default: 1000", "--gain"],
        ),
        (("hpd", "image"), ["default: 4"]),
        (("hpd", "pedestal"), ["default: 1000"]),
    ],
)
def test_issue_13_item_20_hpd_options_show_help_and_defaults(capsys, command, expected):
    status, out, _ = run_cli(capsys, *command, "--help")
    assert status == 0
    text = " ".join(out.split())
    for word in expected:
        assert word in text, (word, text)


def test_issue_13_item_20_image_pixel_size_is_the_pitch_over_upsample(tmp_path, capsys):
    events = events_file(tmp_path / "e.h5", [1.5, 2.5], [1.5, 2.5])
    image = tmp_path / "i.mrc"
    report = make_image(events, image, upsample=4)
    assert report.details["pixel_size_A"] == pytest.approx(62500.0)  # 25 um / 4
    with MrcReader(image) as reader:
        assert reader.info.pixel_size[0] == pytest.approx(62500.0)
    # without a recorded pitch: no pixel size claimed, and a warning says so
    bare = events_file(tmp_path / "bare.h5", [1.5], [1.5], attrs={"detector_shape": [400, 400]})
    report = make_image(bare, tmp_path / "j.tif", upsample=2)
    assert report.details["pixel_size_A"] is None
    assert any("pitch is not recorded" in w for w in report.warnings)


def test_issue_13_item_20_pipeline_records_the_moench_pitch(moench, tmp_path):
    """hpd clusters records MÖNCH's 25 um pitch; it reaches the events and the image."""
    from dedkit.jobs.hpd import compute_pedestal, find_clusters_in_run

    ped, clusters, events = tmp_path / "PED.h5", tmp_path / "c.h5", tmp_path / "e.h5"
    compute_pedestal(moench, ped)
    find_clusters_in_run(moench, ped, clusters, gain=0.02, workers=0)
    assert read_attrs(clusters)["detector_pitch_um"] == 25.0
    localize_clusters(clusters, events, select=False)
    report = make_image(events, tmp_path / "i.mrc", upsample=8)
    assert report.details["pixel_size_A"] == pytest.approx(250000.0 / 8)


# ------------------------------------------------------------------ fuzz findings


def test_issue_13_item_8_fuzz_findings_allocate_nothing_large(tmp_path):
    """What the HPD readers' fuzzing found: a 1-byte .clust made iter_clust ask numpy
    for 128 MiB; a .npy whose version byte is damaged made numpy read a 600 MB header."""
    from dedkit.io.clust import iter_clust

    clust = tmp_path / "one.clust"
    clust.write_bytes(b"\1")
    assert peak_bytes(_refused, lambda: list(iter_clust(clust))) < PEAK_LIMIT
    npy = tmp_path / "gain.npy"
    np.save(npy, np.ones((4, 4), np.float32))
    raw = bytearray(npy.read_bytes())
    raw[6] = 0  # format version 0.x: no such version
    npy.write_bytes(bytes(raw))
    with pytest.raises(DedkitError, match="not a readable .npy file"):
        read_gain_map(npy)
    assert peak_bytes(_refused, read_gain_map, npy) < PEAK_LIMIT


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Frames in File", -1),
        ("Total Frames", -(2**63)),
        ("Number of UDP Interfaces", 0),
        ("Version", "x.y"),
        ("Exptime", 1e400),
    ],
)
def test_issue_13_item_11_fuzz_findings_in_masters(moench, tmp_path, key, value, capsys):
    import shutil

    for data in moench.parent.glob("run_d*_f*_0.raw"):
        shutil.copy(data, tmp_path / data.name)
    master = json.loads(moench.read_text())
    path = tmp_path / moench.name
    path.write_text(json.dumps({**master, key: value}))
    status, _, err = run_cli(capsys, "raw", "info", path)
    assert_one_line_refusal(status, err, str(path))


def test_issue_13_item_20_image_of_clust_events_takes_shape_and_pitch(tmp_path, capsys):
    """Events from an aare .clust record neither detector shape nor pitch: the refusal
    names the option, and --detector-shape/--pitch-um give a real pixel size."""
    events = events_file(tmp_path / "e.h5", [1.5, 2.5], [1.5, 2.5], attrs={})
    image = tmp_path / "i.mrc"
    status, _, err = run_cli(capsys, "hpd", "image", events, "-o", image)
    assert_one_line_refusal(status, err, "--detector-shape")
    assert not image.exists()
    status, _, err = run_cli(capsys, "hpd", "image", events, "-o", image,
                             "--detector-shape", "40,60", "--pitch-um", "25")  # fmt: skip
    assert status == 0, err
    with MrcReader(image) as reader:
        assert (reader.info.ny, reader.info.nx) == (160, 240)
        assert reader.info.pixel_size[0] == pytest.approx(62500.0)
    for bad in ("40", "0,3", "a,b"):
        status, _, err = run_cli(capsys, "hpd", "image", events, "-o", tmp_path / "j.mrc",
                                 "--detector-shape", bad)  # fmt: skip
        assert_one_line_refusal(status, err, "--detector-shape")
    # a .clust given where events are needed says what it is
    clust = tmp_path / "c.clust"
    write_clust(clust, adu_clusters())
    status, _, err = run_cli(capsys, "hpd", "image", clust, "-o", tmp_path / "k.mrc")
    assert_one_line_refusal(status, err, "aare cluster file")


def test_issue_13_item_2_hpd_outputs_never_overwrite_a_data_file_of_the_run(tmp_path, capsys):
    """Every file of the run (master and each raw data file) is an input of pedestal and
    clusters: naming one as the output is refused, even with --force."""
    frames = np.random.default_rng(5).integers(900, 1100, (4, 400, 400)).astype(np.uint16)
    master = write_raw_run(tmp_path, "run", frames, frames_per_file=2)
    files = run_files(master)
    data = sorted(p for p in files if p.suffix == ".raw")
    assert files[0] == master and len(data) == 4  # 2 ports x 2 files
    before = [p.read_bytes() for p in data]
    for target in data:
        status, _, err = run_cli(capsys, "hpd", "pedestal", master, "-o", target, "--force")
        assert_one_line_refusal(status, err, "same file as an input", target.name)
    # a second data file written under another name (a link) is caught as well
    link = tmp_path / "link.h5"
    link.symlink_to(data[1])
    ped = tmp_path / "PED.h5"
    assert run_cli(capsys, "hpd", "pedestal", master, "-o", ped)[0] == 0
    status, _, err = run_cli(
        capsys, "hpd", "clusters", master, "-p", ped, "-o", link, "--force", "--workers", "0"
    )
    assert_one_line_refusal(status, err, "same file as an input")
    assert [p.read_bytes() for p in data] == before


@pytest.mark.parametrize("workers", ["99999999999999999999", "257", "-1"])
def test_issue_13_item_11_workers_are_bounded_in_the_cli(moench, tmp_path, capsys, workers):
    """--workers is 0 to 256 (MAX_WORKERS): a huge count is one line, exit 2, not a
    MemoryError while Dask builds the cluster."""
    ped = tmp_path / "PED.h5"
    assert run_cli(capsys, "hpd", "pedestal", moench, "-o", ped, "-q")[0] == 0
    out = tmp_path / "c.h5"
    status, _, err = run_cli(
        capsys, "hpd", "clusters", moench, "-p", ped, "-o", out, "--workers", workers
    )
    assert_one_line_refusal(status, err, "--workers", "256")
    assert not out.exists()


@pytest.mark.parametrize("workers", [10**20, 257, -1, 2.5, True])
def test_issue_13_item_11_workers_are_bounded_in_the_job(moench, tmp_path, workers):
    from dedkit.jobs.hpd import find_clusters_in_run
    from dedkit.parallel.scheduler import dask_client

    out = tmp_path / "c.h5"
    with pytest.raises(DedkitError, match="number of workers"):
        find_clusters_in_run(moench, tmp_path / "PED.h5", out, workers=workers)
    with pytest.raises(DedkitError, match="number of workers"), dask_client(n_workers=workers):
        pass
    assert not out.exists()


def test_issue_13_item_12_localize_drops_non_finite_positions(tmp_path, capsys, monkeypatch):
    """Whatever the method, events whose position is not finite are counted, left out,
    reported (counts.non_finite) and named in one warning line with the file."""
    table = adu_clusters(40)
    table = ClusterTable(table.frame, table.x, table.y, table.data.astype(np.float32), "keV")
    table.data[:3, 1, 1] = np.inf  # an infinite pixel: a NaN centroid (inf / inf)
    clusters = tmp_path / "c.h5"
    write_table(clusters, table, attrs={"detector_shape": [400, 400]})
    out = tmp_path / "e.h5"
    status, stdout, err = run_cli(
        capsys, "hpd", "localize", clusters, "-o", out, "--no-select", "--json"
    )
    assert status == 0, err
    report = json.loads(stdout)
    assert report["counts"]["non_finite"] == 3 and report["counts"]["events"] == 37
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(clusters) in lines[0] and "3 of 40" in lines[0], err
    events = read_table(out)
    assert len(events) == 37 and np.isfinite(events.x).all() and np.isfinite(events.y).all()

    # the same for any localiser (here one whose output overflows)
    import dedkit.jobs.hpd as jobs_hpd

    real = jobs_hpd.get_localizer("centroid")

    class Overflowing:
        def localize(self, part):
            events = real.localize(part)
            events.x[::2] = np.inf
            return events

    monkeypatch.setattr(jobs_hpd, "get_localizer", lambda method, **kw: Overflowing())
    report = localize_clusters(clusters, tmp_path / "e2.h5", select=False)
    assert report.counts["non_finite"] == 20 + 1  # every other row, and one NaN at 1
    assert len(report.warnings) == 1 and str(clusters) in report.warnings[0]


def test_issue_13_item_12_image_counts_events_outside_the_detector(tmp_path, capsys):
    """Events beyond the detector (x=5000, x=-50, +-1e300, y beyond the rows) are counted
    (counts.outside), left out and named in one warning line with the file and count."""
    x = [1.5, 5000.0, -50.0, 1e300, -1e300, 2.5, 399.99, 400.0]
    y = [1.5, 1.5, 1.5, 1.5, 1.5, 450.0, 0.0, 3.0]
    events = events_file(tmp_path / "e.h5", x, y)
    image = tmp_path / "i.mrc"
    status, out, err = run_cli(
        capsys, "hpd", "image", events, "-o", image, "--no-flat-field", "--upsample", "1", "--json"
    )
    assert status == 0, err
    report = json.loads(out)
    assert report["counts"] == {"events": 2, "non_finite": 0, "outside": 6}
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(events) in lines[0] and "6 of 8 events" in lines[0], err
    assert "outside" in lines[0]
    with MrcReader(image) as reader:
        assert reader.read(0).sum() == 2


@pytest.mark.parametrize(
    "shape, words",
    [
        ("banana", ["detector_shape", "two integers"]),
        ([-3, 400], ["detector_shape", "400 x -3"]),
        ([1e12, 1e12], ["detector_shape", "two integers"]),
        ([10**12, 10**12], ["detector_shape", "not a detector"]),
        ([10, 10], ["outside the file's detector_shape", "10 x 10"]),
    ],
)
def test_issue_13_item_8_localize_checks_the_clusters_detector_shape(
    tmp_path, capsys, shape, words
):
    """A clusters file's detector_shape is checked on 'hpd localize' (not copied to the
    events as it is): two integers, bounded, holding every cluster."""
    table = adu_clusters(40)
    table = ClusterTable(table.frame, table.x, table.y, table.data.astype(np.float32), "keV")
    clusters = tmp_path / "c.h5"
    write_table(clusters, table, attrs={"detector_shape": shape})
    out = tmp_path / "e.h5"
    status, _, err = run_cli(capsys, "hpd", "localize", clusters, "-o", out, "--no-select")
    assert_one_line_refusal(status, err, str(clusters), *words)
    assert not out.exists()


def test_issue_13_item_8_declared_size_is_the_whole_datasets(tmp_path, capsys):
    """'hpd image' on a table declaring 2e9 int64 rows names 16 GB, not the size of the
    first rows it would read."""
    path = events_file(tmp_path / "e.h5", [1.5, 2.5], [1.5, 2.5])
    with h5py.File(path, "a") as f:
        group = f["events"]
        for name in ("frame", "x", "y", "energy"):
            dtype = group[name].dtype
            del group[name]
            group.create_dataset(name, shape=(2 * 10**9,), dtype=dtype, chunks=(2**16,))
    status, _, err = run_cli(capsys, "hpd", "image", path, "-o", tmp_path / "i.mrc")
    assert_one_line_refusal(status, err, str(path), "declares 2000000000 int64")
    assert "(16000000000 bytes = 16 GB)" in err, err
    assert "8000000 bytes" not in err.split("rows read need")[0], err


def test_issue_13_item_13_a_selection_of_nothing_warns(tmp_path, capsys):
    """Clusters given but none selected (a wrong --gain): one warning line naming the file
    and pointing at --gain and --beam-energy; the (empty) events are written."""
    clusters = tmp_path / "c.clust"
    write_clust(clusters, adu_clusters(40))  # 500-3000 ADU centres: 50-300 keV at 0.1
    out = tmp_path / "e.h5"
    status, stdout, err = run_cli(
        capsys, "hpd", "localize", clusters, "--gain", "5", "-o", out, "--json"
    )
    assert status == 0, err
    assert json.loads(stdout)["counts"]["selected"] == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(clusters) in lines[0], err
    assert "none of the 40 clusters" in lines[0] and "--gain" in lines[0], err
    assert "--beam-energy" in lines[0]
    # a gain that selects some: no warning
    status, _, err = run_cli(capsys, "hpd", "localize", clusters, "--gain", "0.1", "-o", out,
                             "--force")  # fmt: skip
    assert status == 0 and not err.strip(), err


@pytest.mark.parametrize(
    "change, words",
    [
        # swapped: the image size is the same, the module's width and rows are not
        ({"Pixels": {"x": 200, "y": 400}}, ["Pixels", "contradict", "Moench module is 400"]),
        ({"Pixels": {"x": 400.5, "y": 200}}, ["Pixels.x must be an integer", "400.5"]),
        ({"Pixels": {"x": "400", "y": 200}}, ["Pixels.x must be an integer", "'400'"]),
        ({"Pixels": {"x": 400, "y": True}}, ["Pixels.y must be an integer"]),
        ({"Geometry": {"x": 1.0, "y": 2}}, ["Geometry.x must be an integer"]),
        ({"Number of rows": 300}, ["Number of rows (300) contradicts", "Pixels.y (200)"]),
        ({"Number of rows": "400"}, ["Number of rows must be an integer"]),
        ({"Image Size in bytes": "160000"}, ["Image Size in bytes must be an integer"]),
        (
            {"Geometry": {"x": 1, "y": 1}, "Number of UDP Interfaces": 2},
            ["Geometry.y (1 ports)", "2 UDP interfaces"],
        ),
    ],
)
def test_issue_13_item_12_master_pixels_are_integers_that_agree(
    moench, tmp_path, capsys, change, words
):
    """Pixels (and the other sizes) must be JSON integers, named when not; a master whose
    Pixels contradict its Number of rows, its Geometry or its detector type's module
    size is refused before the data is read."""
    import shutil

    for data in moench.parent.glob("run_d*_f*_0.raw"):
        shutil.copy(data, tmp_path / data.name)
    lie = tmp_path / moench.name
    lie.write_text(json.dumps({**json.loads(moench.read_text()), **change}))
    for args in (("raw", "info", lie), ("hpd", "pedestal", lie, "-o", tmp_path / "p.h5")):
        status, _, err = run_cli(capsys, *args)
        assert_one_line_refusal(status, err, str(lie), *words)
    assert not (tmp_path / "p.h5").exists()


def test_issue_13_item_12_cnn_on_nan_pixels_writes_no_nan_events(tmp_path):
    """The QA replay: connected-finder crops with NaN pixels through the shipped cnn gave
    NaN x/y silently; they are now counted and left out like any method's."""
    n = 20
    data = np.zeros((n, 15, 15), np.float32)
    data[:, 7, 7], data[:, 7, 8] = 150, 40
    data[:4, 7, 7] = np.nan
    features = np.tile(np.array([190, 2, 1, 2, 95, 150, 200], np.float32), (n, 1))
    table = ClusterTable(np.zeros(n, np.int64), np.full(n, 40, np.int32),
                         np.full(n, 60, np.int32), data, units="keV",
                         features=features)  # fmt: skip
    clusters = write_table(tmp_path / "c.h5", table, attrs={
        "beam_energy_keV": 200.0, "finder": "connected", "detector_shape": [400, 400]})  # fmt: skip
    report = localize_clusters(clusters, tmp_path / "e.h5", method="cnn", select=False)
    assert report.counts["non_finite"] == 4 and report.counts["events"] == 16
    events = read_table(tmp_path / "e.h5")
    assert len(events) == 16 and np.isfinite(events.x).all() and np.isfinite(events.y).all()
    assert len(report.warnings) == 1 and "4 of 20" in report.warnings[0]


@pytest.mark.parametrize("pixels", ["[400.5, 400]", "[400, x]", "[400]"])
def test_issue_13_item_12_text_master_pixels_must_be_integers(tmp_path, capsys, pixels):
    """A text master's Pixels is two integers, refused naming the key otherwise."""
    master = tmp_path / "m3_master_0.raw"
    master.write_text(
        f"Version : 6.4\nDetector Type : Moench\nGeometry : [1, 1]\nPixels : {pixels}\n"
        "Image Size : 320000 bytes\nMax Frames Per File : 20000\nTotal Frames : 3\n"
    )
    status, _, err = run_cli(capsys, "raw", "info", master)
    assert_one_line_refusal(status, err, str(master), "Pixels must be two integers", pixels)
