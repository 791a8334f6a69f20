"""slsDetector raw runs: real Jungfrau files against aare, MÖNCH round trips, bad input."""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.sls import (
    HEADER_DTYPE,
    RawRun,
    read_master,
    split_jungfrau_gain,
    write_raw_run,
)

JUNGFRAU = Path(__file__).parents[3] / "shared" / "data" / "sls" / "jungfrau"
needs_jungfrau = pytest.mark.skipif(not JUNGFRAU.is_dir(), reason="real Jungfrau files absent")
MOENCH_FRAME_BYTES = 112 + 200 * 400 * 2  # one port of a two-port MÖNCH run


def aare_read(master):
    """aare's frames and headers, headers as (n_frames, n_ports).

    aare 2025.11.21 returns multi-port headers with shape (n_ports, n_frames) but fills
    them frame by frame, port by port; reshaping the flat array restores the order.
    """
    aare = pytest.importorskip(
        "aare", reason="aare (PSI) is not installed: pip install aare==2025.11.21"
    )
    raw = aare.RawFile(str(master))
    headers, frames = raw.read()
    return frames, headers.reshape(-1).reshape(len(frames), -1)


def moench_frames(rng, n=7):
    return rng.integers(0, 2**16, (n, 400, 400), dtype=np.uint16)


def patch_header(path, frame, field, value, frame_bytes=MOENCH_FRAME_BYTES):
    """Change one header field of one frame in a data file."""
    with open(path, "r+b") as f:
        f.seek(frame * frame_bytes)
        header = np.frombuffer(f.read(112), HEADER_DTYPE).copy()
        header[field] = value
        f.seek(frame * frame_bytes)
        f.write(header.tobytes())


# --------------------------------------------------------------------- real Jungfrau files


@needs_jungfrau
@pytest.mark.parametrize("kind", ["single", "double"])
def test_real_jungfrau_frames_and_headers_equal_aare(kind):
    master = JUNGFRAU / f"jungfrau_{kind}_master_0.json"
    frames, headers = aare_read(master)
    run = RawRun(master, expect_detector="Jungfrau")
    got = run.read()
    assert run.shape == (512, 1024) and run.n_frames == 10 and run.truncated is None
    assert run.n_ports == (1 if kind == "single" else 2)
    np.testing.assert_array_equal(got.frames, frames)
    np.testing.assert_array_equal(got.frame_numbers, headers["frameNumber"][:, 0])
    np.testing.assert_array_equal(got.frame_numbers, np.arange(1, 11))
    np.testing.assert_array_equal(got.headers["packet_mask"], headers["packetMask"])
    np.testing.assert_array_equal(got.headers["row"], headers["row"])
    np.testing.assert_array_equal(got.headers["timestamp"], headers["timestamp"])
    assert not got.incomplete.any()


@needs_jungfrau
@pytest.mark.parametrize("kind", ["single", "double"])
def test_real_jungfrau_range_across_files_and_roi_equal_aare(kind):
    master = JUNGFRAU / f"jungfrau_{kind}_master_0.json"
    frames, _ = aare_read(master)
    run = RawRun(master)
    # frames 2..7 span data files f0, f1 and f2 (3 frames per file); the ROI crosses
    # the boundary between the two ports of the double run (row 256)
    part = run.read(2, 8, roi=(200, 300, 100, 900))
    np.testing.assert_array_equal(part.frames, frames[2:8, 200:300, 100:900])
    np.testing.assert_array_equal(part.frame_numbers, np.arange(3, 9))
    one_port = run.read(9, 10, roi=(0, 10, 0, 1024))
    np.testing.assert_array_equal(one_port.frames, frames[9:10, :10])
    chunks = list(run.iter_chunks(4, start=1))
    assert [len(c) for c in chunks] == [4, 4, 1]
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), frames[1:])


@needs_jungfrau
def test_real_jungfrau_master_fields():
    m = read_master(JUNGFRAU / "jungfrau_double_master_0.json")
    assert (m.version, m.detector_type, m.timing_mode) == ("7.2", "Jungfrau", "auto")
    assert m.geometry == (1, 2) and m.port_shape == (256, 1024) and m.n_ports == 2
    assert m.modules == (1, 1) and m.udp_interfaces == 2 and m.shape == (512, 1024)
    assert m.image_size_bytes == 524288 and m.bit_depth == 16
    assert (m.max_frames_per_file, m.total_frames, m.frames_in_file) == (3, 10, 10)
    assert m.frame_padding and m.frame_discard_policy == "nodiscard"
    assert m.exposure_s == 10e-6 and m.period_s == 1e-3
    assert m.roi is None and m.scan is None and not m.adc_ordered
    assert m.extra == {"Number of rows": 512}
    assert m.data_path(1, 3).name == "jungfrau_double_d1_f3_0.raw"


@needs_jungfrau
def test_real_jungfrau_gain_split():
    frames = RawRun(JUNGFRAU / "jungfrau_single_master_0.json").read(0, 2).frames
    gain, adc = split_jungfrau_gain(frames)
    assert gain.dtype == np.uint8 and adc.dtype == np.uint16
    np.testing.assert_array_equal(gain, frames >> 14)
    np.testing.assert_array_equal(adc, frames & 0x3FFF)


def test_gain_split_codes():
    raw = np.array([0x0123, 0x4123, 0xC123, 0xFFFF], np.uint16)
    gain, adc = split_jungfrau_gain(raw)
    assert gain.tolist() == [0, 1, 3, 3]
    assert adc.tolist() == [0x0123, 0x0123, 0x0123, 0x3FFF]
    with pytest.raises(DedkitError):
        split_jungfrau_gain(raw.astype(np.int32))


# --------------------------------------------------------------------- MÖNCH writer / reader


def test_moench_round_trip_two_ports_several_files(tmp_path, rng):
    frames = moench_frames(rng)
    numbers = np.arange(100, 107)
    master = write_raw_run(tmp_path, "sim", frames, frames_per_file=3, frame_numbers=numbers)
    assert master == tmp_path / "sim_master_0.json"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"sim_d{p}_f{f}_0.raw" for p in (0, 1) for f in (0, 1, 2)] + [
        "sim_master_0.json"
    ]
    assert (tmp_path / "sim_d0_f0_0.raw").stat().st_size == 3 * MOENCH_FRAME_BYTES
    run = RawRun(master, expect_detector="MÖNCH")
    assert run.master.port_shape == (200, 400) and run.master.geometry == (1, 2)
    assert run.expected_packets == 25  # 160000 bytes in 6400-byte packets
    got = run.read()
    np.testing.assert_array_equal(got.frames, frames & 0x3FFF)
    np.testing.assert_array_equal(got.frame_numbers, numbers)
    assert got.headers.shape == (7, 2)
    assert got.headers["row"].tolist() == [[0, 1]] * 7
    assert (got.headers["detector_type"] == 5).all()
    assert (got.headers["exp_length"] == 50).all()  # 5 us in 0.1 us
    np.testing.assert_array_equal(got.headers["timestamp"][:, 0], np.arange(7) * 6250)
    assert not got.incomplete.any()
    roi = run.read(2, 6, roi=(150, 250, 10, 390))
    np.testing.assert_array_equal(roi.frames, frames[2:6, 150:250, 10:390] & 0x3FFF)


@pytest.mark.parametrize("n_ports", [1, 2])
def test_aare_reads_our_moench_runs(tmp_path, rng, n_ports):
    frames = moench_frames(rng, 5)
    master = write_raw_run(tmp_path, "run", frames, n_ports=n_ports, frames_per_file=2,
                           frame_numbers=np.arange(11, 16))  # fmt: skip
    aare_frames, aare_headers = aare_read(master)
    np.testing.assert_array_equal(aare_frames, frames)
    np.testing.assert_array_equal(aare_headers["frameNumber"][:, 0], np.arange(11, 16))
    assert (aare_headers["packetNumber"] == 50 // n_ports).all()


def test_jungfrau_round_trip_equals_aare(tmp_path, rng):
    frames = rng.integers(0, 2**16, (3, 512, 1024), dtype=np.uint16)
    master = write_raw_run(tmp_path, "jf", frames, detector_type="Jungfrau", frames_per_file=2)
    got = RawRun(master).read()
    np.testing.assert_array_equal(got.frames, frames)  # Jungfrau keeps all 16 bits
    aare_frames, _ = aare_read(master)
    np.testing.assert_array_equal(aare_frames, frames)
    assert RawRun(master).expected_packets == 64


def test_master_written_like_slsdetector(tmp_path, rng):
    master = write_raw_run(tmp_path, "sim", moench_frames(rng, 2), exposure_s=5e-6,
                           period_s=625e-6, extra_master={"Note": "simulated"})  # fmt: skip
    text = master.read_text()
    assert not text.endswith("\n") and text.startswith('{\n    "Version": 7.2,\n')
    values = json.loads(text)
    if JUNGFRAU.is_dir():
        reference = json.loads((JUNGFRAU / "jungfrau_double_master_0.json").read_text())
        assert list(values)[: len(reference)] == list(reference)
    assert values["Detector Type"] == "Moench" and values["Exptime"] == "5us"
    assert values["Period"] == "625us" and values["Frame Discard Policy"] == "discardpartial"
    assert values["Pixels"] == {"x": 400, "y": 200} and values["Image Size in bytes"] == 160000
    assert read_master(master).extra["Note"] == "simulated"


def test_moench_keeps_14_bits(tmp_path):
    frames = np.full((1, 400, 400), 0xC005, np.uint16)
    got = RawRun(write_raw_run(tmp_path, "m", frames)).read().frames
    assert (got == 0x0005).all()


def test_incomplete_frames_flagged(tmp_path, rng):
    master = write_raw_run(tmp_path, "lossy", moench_frames(rng, 6), frames_per_file=10)
    # frame 2, port 1: the receiver caught 24 of 25 packets (mask says so too)
    patch_header(tmp_path / "lossy_d1_f0_0.raw", 2, "packets_caught", 24)
    mask = np.packbits(np.r_[np.ones(24), np.zeros(488)].astype(np.uint8), bitorder="little")
    patch_header(tmp_path / "lossy_d1_f0_0.raw", 2, "packet_mask", mask)
    # frame 4, port 0: a padded, wholly missing frame
    patch_header(tmp_path / "lossy_d0_f0_0.raw", 4, "packets_caught", 0)
    patch_header(tmp_path / "lossy_d0_f0_0.raw", 4, "packet_mask", np.zeros(64, np.uint8))
    run = RawRun(master)
    assert run.read().incomplete.tolist() == [False, False, True, False, True, False]
    assert run.read(3, 6).incomplete.tolist() == [False, True, False]
    missing = run.scan_missing()
    assert missing.n_incomplete == 2 and missing.skipped_frame_numbers == 0
    assert missing.packets_missing[2].tolist() == [0, 1]
    assert missing.packets_missing[4].tolist() == [25, 0]
    assert "2 of 6 frames incomplete (26 packets missing)" in missing.summary()


def test_skipped_frame_numbers_counted(tmp_path, rng):
    master = write_raw_run(tmp_path, "gap", moench_frames(rng, 3), frame_numbers=[1, 2, 5])
    assert RawRun(master).scan_missing().skipped_frame_numbers == 2


def test_ports_without_padding_matched_by_frame_number(tmp_path, rng):
    frames = moench_frames(rng, 4)
    master = write_raw_run(tmp_path, "np", frames, frames_per_file=10,
                           extra_master={"Frame Padding": 0})  # fmt: skip
    # port 1 lost frame 2 (index 1) altogether: drop its record from the file
    path = tmp_path / "np_d1_f0_0.raw"
    data = path.read_bytes()
    path.write_bytes(data[:MOENCH_FRAME_BYTES] + data[2 * MOENCH_FRAME_BYTES :])
    run = RawRun(master)
    assert run.n_frames == 3
    got = run.read()
    np.testing.assert_array_equal(got.frame_numbers, [1, 3, 4])
    np.testing.assert_array_equal(got.frames, frames[[0, 2, 3]] & 0x3FFF)


def test_text_master_adc_ordered_moench03_equals_aare(tmp_path, rng):
    """MÖNCH 03 via the chip-test board: text master, frames in ADC order."""
    n = 3
    records = np.zeros(n, [("header", HEADER_DTYPE), ("data", "<u2", (400 * 400,))])
    records["header"]["frame_number"] = np.arange(1, n + 1)
    records["header"]["packets_caught"] = 40
    records["header"]["detector_type"] = 5
    bits = np.r_[np.ones(40), np.zeros(472)].astype(np.uint8)
    records["header"]["packet_mask"] = np.packbits(bits, bitorder="little")
    records["data"] = rng.integers(0, 2**14, (n, 400 * 400), dtype=np.uint16)
    records.tofile(tmp_path / "m3_d0_f0_0.raw")
    lines = {
        "Version": "6.4", "TimeStamp": "Wed Aug 31 09:08:49 2022", "Detector Type": "Moench",
        "Timing Mode": "auto", "Geometry": "[1, 1]", "Image Size": "320000 bytes",
        "Pixels": "[400, 400]", "Max Frames Per File": "20000",
        "Frame Discard Policy": "nodiscard", "Frame Padding": "1",
        "Scan Parameters": "[enabled\ndac vth1\nstart 500\nstop 2200\nstep 5\nsettleTime 100us\n]",
        "Total Frames": "3", "Dynamic Range": "16", "Exptime": "100us", "Period": "4ms",
        "Ten Giga": "1", "Frames in File": "3",
    }  # fmt: skip
    text = "".join(f"{k:<27}: {v}\n" for k, v in lines.items() if k != "Scan Parameters")
    text += "\n#Frame Header\nFrame Number               : 8 bytes\n"
    master = tmp_path / "m3_master_0.raw"
    master.write_text(text)
    aare_frames, _ = aare_read(master)
    run = RawRun(master)
    assert run.master.adc_ordered and run.master.extra == {"Ten Giga": "1"}
    assert run.master.exposure_s == 100e-6 and run.master.period_s == 4e-3
    np.testing.assert_array_equal(run.read().frames, aare_frames)
    np.testing.assert_array_equal(
        run.read(1, 3, roi=(150, 260, 30, 390)).frames, aare_frames[1:3, 150:260, 30:390]
    )
    assert not run.read().incomplete.any()


def test_scan_parameters_parsed(tmp_path, rng):
    scan = "[enabled\ndac vth1\nstart 500\nstop 2200\nstep 5\nsettleTime 100us\n]"
    master = write_raw_run(tmp_path, "s", moench_frames(rng, 1),
                           extra_master={"Scan Parameters": scan})  # fmt: skip
    assert read_master(master).scan == {
        "dac": "vth1", "start": 500, "stop": 2200, "step": 5, "settle_time_s": 100e-6
    }  # fmt: skip


# --------------------------------------------------------------------- writer safety


def test_writer_refuses_existing_run_and_force_removes_stale_files(tmp_path, rng):
    write_raw_run(tmp_path, "w", moench_frames(rng, 4), frames_per_file=1)
    with pytest.raises(DedkitError, match="exists"):
        write_raw_run(tmp_path, "w", moench_frames(rng, 4), frames_per_file=1)
    frames = moench_frames(rng, 2)
    master = write_raw_run(tmp_path, "w", frames, frames_per_file=1, force=True)
    assert not (tmp_path / "w_d0_f2_0.raw").exists()
    np.testing.assert_array_equal(RawRun(master).read().frames, frames & 0x3FFF)


def test_writer_failure_leaves_nothing(tmp_path, rng, monkeypatch):
    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_raw_run(tmp_path, "x", moench_frames(rng, 2))
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("failing", ["data file", "master", "master rename"])
def test_writer_failure_on_a_full_disk_leaves_nothing_new(tmp_path, rng, monkeypatch, failing):
    # issue 14: no temporary (and no data file of the failed run) is left behind
    from dedkit.io.sls import writer

    (tmp_path / "mine.txt").write_text("kept")
    before = sorted(p.name for p in tmp_path.iterdir())
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fail(*args, **kwargs):
        raise full

    if failing == "data file":
        monkeypatch.setattr(writer, "open", fail, raising=False)
    elif failing == "master":
        monkeypatch.setattr(Path, "write_text", fail)
    else:
        publish = writer.publish

        def publish_data_only(temporary, path, **kwargs):
            if path.name.endswith(".json"):
                raise full
            return publish(temporary, path, **kwargs)

        monkeypatch.setattr(writer, "publish", publish_data_only)
    with pytest.raises(OSError) as info:
        write_raw_run(tmp_path, "x", moench_frames(rng, 4), frames_per_file=2)
    monkeypatch.undo()
    assert info.value is full
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "mine.txt").read_text() == "kept"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames": np.zeros((2, 400, 400), np.int32)}, "uint16"),
        ({"frames": np.zeros((2, 512, 1024), np.uint16)}, r"\(n, 400, 400\)"),
        ({"n_ports": 3}, "n_ports"),
        ({"detector_type": "Eiger"}, "only Moench and Jungfrau"),
        ({"frame_numbers": [1, 2, 3]}, "frame_numbers"),
    ],
)
def test_writer_bad_arguments(tmp_path, kwargs, message):
    arguments = {"frames": np.zeros((2, 400, 400), np.uint16), **kwargs}
    with pytest.raises(DedkitError, match=message):
        write_raw_run(tmp_path, "bad", **arguments)


# --------------------------------------------------------------------- bad input


@pytest.fixture
def moench_run(tmp_path, rng):
    return write_raw_run(tmp_path, "r", moench_frames(rng, 5), frames_per_file=2)


def edit_master(master, **changes):
    values = json.loads(master.read_text())
    values.update(changes)
    master.write_text(json.dumps(values, indent=4))


def one_line_error(call):
    with pytest.raises(DedkitError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def test_master_missing_or_misnamed(tmp_path):
    assert "not found" in one_line_error(lambda: RawRun(tmp_path / "a_master_0.json"))
    (tmp_path / "a.json").write_text("{}")
    assert "master file name" in one_line_error(lambda: read_master(tmp_path / "a.json"))


def test_master_unparsable(moench_run):
    moench_run.write_text('{"Version": 7.2,')
    message = one_line_error(lambda: RawRun(moench_run))
    assert "not valid JSON" in message and str(moench_run) in message


def test_master_lacks_key(moench_run):
    values = json.loads(moench_run.read_text())
    del values["Pixels"]
    moench_run.write_text(json.dumps(values))
    assert "lacks the key 'Pixels'" in one_line_error(lambda: RawRun(moench_run))


def test_data_file_missing(moench_run):
    (moench_run.parent / "r_d1_f0_0.raw").unlink()
    message = one_line_error(lambda: RawRun(moench_run))
    assert "data file not found" in message and "r_d1_f0_0.raw" in message


def test_later_data_file_missing_limits_frames(moench_run):
    (moench_run.parent / "r_d0_f2_0.raw").unlink()
    run = RawRun(moench_run)
    assert run.n_frames == 4 and "4 of 5 frames" in run.truncated
    assert len(run.read()) == 4
    assert "r_d0_f2_0.raw missing" in one_line_error(lambda: run.read(3, 5))


def test_truncated_data_file(moench_run):
    last = moench_run.parent / "r_d1_f2_0.raw"
    os.truncate(last, MOENCH_FRAME_BYTES - 1000)
    run = RawRun(moench_run)
    assert run.n_frames == 4
    assert run.truncated == "data file r_d1_f2_0.raw is truncated: 4 of 5 frames are complete"
    message = one_line_error(lambda: run.read(0, 5))
    assert "beyond the 4 readable frames" in message and "truncated" in message
    middle = moench_run.parent / "r_d0_f1_0.raw"
    os.truncate(middle, MOENCH_FRAME_BYTES + 5)  # frame 3 of 5 cut short
    run = RawRun(moench_run)
    assert run.n_frames == 3 and "r_d0_f1_0.raw is truncated" in run.truncated


def test_header_detector_type_contradicts_master(moench_run):
    patch_header(moench_run.parent / "r_d0_f0_0.raw", 0, "detector_type", 3)
    assert "does not match the master's Moench" in one_line_error(lambda: RawRun(moench_run))


def test_header_ports_contradict_geometry(moench_run):
    patch_header(moench_run.parent / "r_d1_f0_0.raw", 0, "row", 0)
    assert "not on the master's 1 x 2 grid" in one_line_error(lambda: RawRun(moench_run))


def test_later_header_contradicts_master(moench_run):
    patch_header(moench_run.parent / "r_d1_f1_0.raw", 1, "column", 1)
    run = RawRun(moench_run)
    run.read(0, 3)
    message = one_line_error(lambda: run.read(2, 5))
    assert "frame 3 of port 1" in message and "r_d1_f0_0.raw" in message


def test_master_image_size_contradicts_pixels(moench_run):
    edit_master(moench_run, **{"Image Size in bytes": 1000})
    assert "does not match" in one_line_error(lambda: RawRun(moench_run))


def test_wrong_detector_for_operation(moench_run):
    message = one_line_error(lambda: RawRun(moench_run, expect_detector="Jungfrau"))
    assert "Moench run, a Jungfrau run is needed" in message


def test_unsupported_detector(moench_run):
    edit_master(moench_run, **{"Detector Type": "Eiger"})
    assert "Eiger runs are not supported" in one_line_error(lambda: RawRun(moench_run))


def test_receiver_roi_refused(moench_run):
    edit_master(moench_run, **{"Receiver Roi": {"xmin": 0, "xmax": 99, "ymin": 0, "ymax": 99}})
    assert read_master(moench_run).roi == (0, 100, 0, 100)
    assert "receiver ROI" in one_line_error(lambda: RawRun(moench_run))


@pytest.mark.parametrize(
    "start, stop, roi, message",
    [
        (-1, 2, None, "not within"),
        (3, 2, None, "not within"),
        (0, 6, None, "beyond the 5 readable"),
        (0, 1, (0, 401, 0, 10), "outside the 400 x 400"),
        (0, 1, (5, 5, 0, 10), "empty or outside"),
    ],
)
def test_range_or_roi_outside_run(moench_run, start, stop, roi, message):
    run = RawRun(moench_run)
    assert message in one_line_error(lambda: run.read(start, stop, roi))
