"""Fuzzing the hybrid-pixel readers (issue 13): slsDetector masters (JSON and text) and
raw data, aare ``.clust`` files, cluster/event tables and ``PED.h5`` files, each with
mutated headers and truncations.

Every case either reads or raises :class:`DedkitError` (never another exception), and
no case makes dedkit allocate far beyond the file (peak traced allocation bounded).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedkit.errors import DedkitError
from dedkit.hpd.pedestal import Pedestal
from dedkit.io.calibration import read_gain_map, write_pedestal_file
from dedkit.io.clust import iter_clust, read_clust, write_clust
from dedkit.io.events import read_attrs, read_table, table_length, write_table
from dedkit.io.sls import RawRun, read_master, write_raw_run
from dedkit.jobs.hpd import load_pedestal, make_image
from dedkit.records.tables import ClusterTable, EventTable

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PEAK_LIMIT = 96 * 2**20  # the largest base file read whole is a few MB

#: values a hostile header may hold in place of any other
HOSTILE = st.one_of(
    st.sampled_from([0, -1, 1, 2, 2**16, 2**30, 2**31, 2**32 - 1, 2**63, -(2**63), 10**30]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.none(),
    st.booleans(),
    st.lists(st.integers(-5, 2**31), max_size=3),
    st.dictionaries(
        st.sampled_from(["x", "y", "xmin", "ymax"]), st.integers(-5, 2**40), max_size=3
    ),
)


def bounded(fn, *args, **kwargs):
    """Run ``fn``; DedkitError is an accepted outcome; the peak allocation is bounded."""
    tracemalloc.start()
    try:
        try:
            fn(*args, **kwargs)
        except DedkitError as error:
            assert "\n" not in str(error).strip(), str(error)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{fn.__name__} allocated {peak} bytes"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Small valid files of every kind the readers take."""
    folder = tmp_path_factory.mktemp("fuzz_hpd")
    rng = np.random.default_rng(5)
    moench = write_raw_run(
        folder, "m", rng.integers(0, 2000, (2, 400, 400)).astype(np.uint16), frames_per_file=1
    )
    jungfrau = write_raw_run(
        folder,
        "j",
        rng.integers(0, 2000, (2, 512, 1024)).astype(np.uint16),
        detector_type="Jungfrau",
        n_ports=1,
        frames_per_file=10,
    )
    text_master = folder / "j_master_0.raw"
    text_master.write_text(
        "Version                    : 6.4\n"
        "TimeStamp                  : Wed Aug 31 09:08:49 2022\n\n"
        "Detector Type              : Jungfrau\n"
        "Timing Mode                : auto\n"
        "Geometry                   : [1, 1]\n"
        "Image Size                 : 1048576 bytes\n"
        "Pixels                     : [1024, 512]\n"
        "Max Frames Per File        : 10\n"
        "Frame Discard Policy       : nodiscard\n"
        "Frame Padding              : 1\n"
        "Scan Parameters            : [disabled]\n"
        "Total Frames               : 2\n"
        "Exptime                    : 10us\n"
        "Period                     : 1ms\n"
        "Frames in File             : 2\n\n"
        "#Frame Header\n"
        "Frame Number               : 8 bytes\n"
    )
    assert RawRun(text_master).n_frames == 2
    data = rng.integers(-20, 500, (30, 3, 3)).astype(np.int32)
    clusters = ClusterTable(
        np.repeat(np.arange(10), 3).astype(np.int64),
        rng.integers(0, 400, 30).astype(np.int32),
        rng.integers(0, 400, 30).astype(np.int32),
        data,
    )
    clust = write_clust(folder / "c.clust", clusters)
    table = write_table(folder / "c.h5", clusters, attrs={"detector_shape": [400, 400]})
    events = write_table(
        folder / "e.h5",
        EventTable(
            np.arange(20, dtype=np.int64),
            rng.uniform(0, 400, 20),
            rng.uniform(0, 400, 20),
            np.ones(20, np.float32),
            "centroid",
        ),
        attrs={"detector_shape": [400, 400], "pitch_um": 25.0},
    )
    pedestal = Pedestal((400, 400), 4)
    pedestal.push_frames(rng.integers(900, 1100, (4, 400, 400)).astype(np.uint16))
    ped = write_pedestal_file(folder / "PED.h5", pedestal.to_arrays(), {"window": 4})
    gain = folder / "gain.npy"
    np.save(gain, np.full((400, 400), 0.02, np.float32))
    return {
        "folder": folder,
        "moench": moench,
        "jungfrau": jungfrau,
        "text": text_master,
        "clust": clust,
        "clusters": table,
        "events": events,
        "ped": ped,
        "gain": gain,
    }


def copy_run(master: Path, target: Path, *, with_text: bool = False) -> Path:
    stem = master.name.split("_master_")[0]
    for path in master.parent.glob(f"{stem}_*"):
        if path.suffix == ".raw" and "_master_" in path.name and not with_text:
            continue
        shutil.copy(path, target / path.name)
    return target / master.name


def open_and_read(master: Path) -> None:
    run = RawRun(master)
    run.read(0, min(run.n_frames, 2))
    run.scan_missing()


# ------------------------------------------------------------------------ masters


@FUZZ
@given(data=st.data())
def test_fuzz_json_master(base, data):
    master = json.loads(base["moench"].read_text())
    key = data.draw(st.sampled_from(sorted(master)))
    action = data.draw(st.sampled_from(["replace", "delete", "nest"]))
    if action == "delete":
        del master[key]
    elif action == "nest" and isinstance(master[key], dict):
        sub = data.draw(st.sampled_from(sorted(master[key]) or ["x"]))
        master[key][sub] = data.draw(HOSTILE)
    else:
        master[key] = data.draw(HOSTILE)
    with tempfile.TemporaryDirectory() as folder:
        path = copy_run(base["moench"], Path(folder))
        path.write_text(json.dumps(master))
        bounded(open_and_read, path)


@FUZZ
@given(data=st.data())
def test_fuzz_text_master(base, data):
    lines = base["text"].read_text().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    value = data.draw(
        st.one_of(
            HOSTILE.map(str),
            st.sampled_from(["[1024]", "[, ]", "[0, 0]", "[99999999999, 2]", "1e400"]),
        )
    )
    key, sep, _ = lines[index].partition(":")
    action = data.draw(st.sampled_from(["value", "delete", "cut"]))
    if action == "value" and sep:
        lines[index] = f"{key}: {value}"
    elif action == "delete":
        del lines[index]
    text = "\n".join(lines)
    if action == "cut":
        text = text[: data.draw(st.integers(0, len(text)))]
    with tempfile.TemporaryDirectory() as folder:
        path = copy_run(base["text"], Path(folder), with_text=True)
        path.write_text(text)
        bounded(read_master, path)
        bounded(open_and_read, path)


@FUZZ
@given(data=st.data())
def test_fuzz_raw_data(base, data):
    with tempfile.TemporaryDirectory() as folder:
        master = copy_run(base["moench"], Path(folder))
        files = sorted(Path(folder).glob("m_d*_f*_0.raw"))
        target = data.draw(st.sampled_from(files))
        raw = bytearray(target.read_bytes())
        action = data.draw(st.sampled_from(["truncate", "header", "bytes"]))
        if action == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw)))]
        else:
            frame_bytes = 112 + 400 * 200 * 2
            frame = data.draw(st.integers(0, len(raw) // frame_bytes - 1))
            limit = 112 if action == "header" else frame_bytes
            for _ in range(data.draw(st.integers(1, 8))):
                offset = frame * frame_bytes + data.draw(st.integers(0, limit - 1))
                raw[offset] = data.draw(st.integers(0, 255))
        target.write_bytes(bytes(raw))
        bounded(open_and_read, master)


# ------------------------------------------------------------------------ .clust


@FUZZ
@given(data=st.data())
def test_fuzz_clust(base, data):
    raw = bytearray(base["clust"].read_bytes())
    action = data.draw(st.sampled_from(["truncate", "bytes", "count"]))
    if action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif action == "count":
        # a frame header's cluster count (the first frame's, or one further on)
        offset = data.draw(st.sampled_from([4, 4 + 8 + 3 * 40]))
        raw[offset : offset + 4] = data.draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    size = data.draw(st.sampled_from([(3, 3), (2, 2), (5, 5)]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.clust"
        path.write_bytes(bytes(raw))
        bounded(read_clust, path, size)
        bounded(lambda: list(iter_clust(path, size, max_clusters=7)))


# ------------------------------------------------------------------------ HDF5 tables


def mutate_h5(path: Path, group_name: str, data) -> None:
    with h5py.File(path, "a") as f:
        group = f[group_name]
        names = sorted(n for n, item in group.items() if isinstance(item, h5py.Dataset))
        action = data.draw(st.sampled_from(["attr", "delete", "reshape", "dtype", "huge", "group"]))
        if action == "attr":
            name = data.draw(st.sampled_from(sorted(group.attrs) or ["dedkit_kind"]))
            value = data.draw(HOSTILE)
            try:
                group.attrs[name] = value if value is not None else "null"
            except (TypeError, ValueError, OverflowError):
                group.attrs[name] = json.dumps(value) if value == value else "nan"
        elif action == "group":
            f.move(group_name, "renamed")
        else:
            name = data.draw(st.sampled_from(names))
            old = group[name]
            dtype, shape = old.dtype, old.shape
            del group[name]
            if action == "delete":
                return
            if action == "reshape":
                rows = data.draw(st.integers(0, 50))
                extra = data.draw(st.lists(st.integers(0, 17), max_size=3))
                group.create_dataset(name, data=np.zeros((rows, *extra), dtype))
            elif action == "dtype":
                group.create_dataset(
                    name, data=np.array(["a"] * (shape[0] if shape else 1), dtype="S1")
                )
            else:  # declares far more than it stores
                rows = data.draw(st.sampled_from([10**6, 10**9, 2**40]))
                group.create_dataset(
                    name,
                    shape=(rows, *shape[1:]),
                    dtype=dtype,
                    chunks=(min(rows, 4096), *shape[1:]),
                )


def truncate(path: Path, data) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: data.draw(st.integers(0, len(raw)))])


def read_everything(path: Path, kind: str) -> None:
    read_attrs(path)
    n = table_length(path, kind=kind)
    read_table(path, 0, min(n, 10), kind=kind)
    read_table(path, kind=kind)


@FUZZ
@given(data=st.data())
def test_fuzz_table_files(base, data):
    kind = data.draw(st.sampled_from(["clusters", "events"]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.h5"
        shutil.copy(base[kind], path)
        if data.draw(st.booleans()):
            mutate_h5(path, kind, data)
        else:
            truncate(path, data)
        bounded(read_everything, path, kind)
        if kind == "events":
            bounded(make_image, path, Path(folder) / "i.mrc", upsample=2)


@FUZZ
@given(data=st.data())
def test_fuzz_pedestal_file(base, data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "PED.h5"
        shutil.copy(base["ped"], path)
        if data.draw(st.booleans()):
            mutate_h5(path, "pedestal", data)
        else:
            truncate(path, data)
        bounded(load_pedestal, path, (400, 400))


@FUZZ
@given(data=st.data())
def test_fuzz_npy_gain_map(base, data):
    raw = bytearray(base["gain"].read_bytes())
    action = data.draw(st.sampled_from(["truncate", "header", "shape"]))
    if action == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif action == "header":
        for _ in range(data.draw(st.integers(1, 6))):
            raw[data.draw(st.integers(0, 127))] = data.draw(st.integers(0, 255))
    else:
        shape = data.draw(st.tuples(st.integers(0, 2**20), st.integers(0, 2**20)))
        header = bytearray(raw[:128])
        text = header[10:].decode("latin1").replace("(400, 400)", str(shape))
        raw = bytearray(header[:10]) + text[:118].ljust(117).encode("latin1") + b"\n" + raw[128:]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gain.npy"
        path.write_bytes(bytes(raw))
        bounded(read_gain_map, path)
        bounded(read_gain_map, path, (400, 400))
