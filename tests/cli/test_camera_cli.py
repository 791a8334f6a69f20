"""``dedkit camera ...``: exit statuses, tables, JSON, warnings and bad input."""

from __future__ import annotations

import pytest

from dedkit.camera import counted_rate


def assert_bad_input(result, message):
    assert result.status == 2, result
    assert result.out == ""
    assert len(result.err_lines) == 1, result
    assert message in result.err
    assert "Traceback" not in result.err


# ----- check ---------------------------------------------------------------------------
def test_check_valid_exits_0(run):
    r = run("camera", "check", "--camera", "K2", "--mode", "counting", "--exposure", "1.0")
    assert r.status == 0, r
    assert "valid" in r.out and r.err == ""


def test_check_violation_exits_1_with_rules_and_nearest(run):
    r = run("camera", "check", "--camera", "k2", "--mode", "superres", "--exposure", "1.2")
    assert r.status == 1, r
    assert "R2-exposure-step" in r.out
    assert "nearest valid exposure: 1 s or 1.5 s" in r.out
    assert "nearest valid settings: exposure 1 s" in r.out
    assert r.err == ""


def test_check_json(run):
    r = run(
        "camera",
        "check",
        "--camera",
        "K3",
        "--mode",
        "counting",
        "--exposure",
        "1",
        "--dose-fractionation",
        "--frame-time",
        "0.013",
        "--json",
    )
    assert r.status == 1, r
    j = r.json
    assert j["valid"] is False and j["camera"] == "K3"
    assert {v["rule"] for v in j["violations"]} >= {"R1-frame-time", "R3-min-frame-time"}
    assert j["nearest"]["frame_time"] == pytest.approx(20 * 0.000665779, abs=1e-9)


def test_check_json_valid(run):
    r = run(
        "camera",
        "check",
        "--camera",
        "K2",
        "--mode",
        "counting",
        "--exposure",
        "0.25",
        "--dose-fractionation",
        "--frame-time",
        "0.25",
        "--settling",
        "0.5",
        "--json",
    )
    assert r.status == 0, r
    assert r.json["valid"] is True and r.json["violations"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camera", "K2", "--mode", "counting", "--exposure", "0"], "exposure must be"),
        (["--camera", "K2", "--mode", "counting", "--exposure", "-1"], "exposure must be"),
        (["--camera", "K2", "--mode", "counting", "--exposure", "nan"], "exposure must be"),
        (["--camera", "K5", "--mode", "counting", "--exposure", "1"], "unknown camera 'K5'"),
        (["--camera", "K3", "--mode", "superres", "--exposure", "1"], "no 'superres' mode"),
        (["--camera", "CCD", "--mode", "counting", "--exposure", "1"], "no 'counting' mode"),
        (
            ["--camera", "K2", "--mode", "counting", "--exposure", "1", "--frame-time", "0.1"],
            "only applies with dose fractionation",
        ),
        (
            ["--camera", "K2", "--mode", "counting", "--exposure", "1", "--dose-fractionation"],
            "needs a frame time",
        ),
        (
            ["--camera", "K2", "--mode", "counting", "--exposure", "1", "--settling", "-1"],
            "settling must be",
        ),
        (["--camera", "K2", "--mode", "fast", "--exposure", "1"], "--mode"),
        (["--camera", "K2", "--mode", "counting", "--exposure", "abc"], "--exposure"),
        (["--camera", "K2", "--mode", "counting"], "--exposure"),
    ],
)
def test_check_bad_input(run, args, message):
    assert_bad_input(run("camera", "check", *args), message)


# ----- capture-time --------------------------------------------------------------------
def test_capture_time_table_and_json(run):
    r = run("camera", "capture-time", "--camera", "CCD", "--mode", "linear", "--exposure", "1")
    assert r.status == 0, r
    assert "13.900 s" in r.out and "readout" in r.out
    r = run(
        "camera",
        "capture-time",
        "--camera",
        "K2",
        "--mode",
        "superres",
        "--exposure",
        "1",
        "--binning",
        "0.5",
        "--dose-fractionation",
        "--frame-time",
        "0.2",
        "--json",
    )
    assert r.status == 0, r
    j = r.json
    assert j["overhead"] == 6.0 and j["dose_fractionation"] == 5.5
    assert j["transfer"] == pytest.approx(1.3) and j["total"] == pytest.approx(13.8)


def test_capture_time_area(run):
    r = run(
        "camera",
        "capture-time",
        "--camera",
        "ccd",
        "--mode",
        "linear",
        "--exposure",
        "1",
        "--area",
        "wide-half",
        "--json",
    )
    assert r.status == 0, r
    assert r.json["image_size"] == [2048, 1024] and r.json["area"] == "wide-half"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--camera", "K2", "--mode", "counting", "--exposure", "1", "--binning", "0.5"],
            "binning 0.5 is not available",
        ),
        (["--camera", "CCD", "--mode", "linear", "--exposure", "1", "--area", "tiny"], "--area"),
        (["--camera", "K2", "--mode", "counting", "--exposure", "-2"], "exposure must be"),
    ],
)
def test_capture_time_bad_input(run, args, message):
    assert_bad_input(run("camera", "capture-time", *args), message)


# ----- dose-rate -----------------------------------------------------------------------
def test_dose_rate_in_range(run):
    mean = float(counted_rate(6.0, "K2")) * 30 * 2
    r = run(
        "camera",
        "dose-rate",
        "--camera",
        "K2",
        "--mode",
        "counting",
        "--mean-counts",
        f"{mean:.12g}",
        "--exposure",
        "2",
        "--json",
    )
    assert r.status == 0, r
    assert r.json["true_rate"] == pytest.approx(6.0, rel=1e-9)
    assert r.json["warnings"] == [] and r.err == ""


def test_dose_rate_warning_is_one_line(run):
    r = run(
        "camera",
        "dose-rate",
        "--camera",
        "K2",
        "--mode",
        "counting",
        "--mean-counts",
        "300",
        "--exposure",
        "1",
    )
    assert r.status == 0, r
    assert "true dose rate 17.12" in r.out
    assert r.err_lines == [
        "dedkit camera dose-rate: warning: dose rate 17.12 e/physical pixel/s is above the "
        "K2's efficient counting range of 2-10 e/physical pixel/s"
    ]


def test_dose_rate_inverse(run):
    r = run(
        "camera",
        "dose-rate",
        "--camera",
        "K3",
        "--mode",
        "counting",
        "--true-rate",
        "30",
        "--exposure",
        "1",
        "--binning",
        "0.5",
        "--json",
    )
    assert r.status == 0, r
    j = r.json
    assert j["mean_counts"] == pytest.approx(float(counted_rate(30.0, "K3")) * 32 / 4)
    r2 = run(
        "camera",
        "dose-rate",
        "--camera",
        "K3",
        "--mode",
        "counting",
        "--mean-counts",
        repr(j["mean_counts"]),
        "--exposure",
        "1",
        "--binning",
        "0.5",
        "--json",
    )
    assert r2.json["true_rate"] == pytest.approx(30.0, rel=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mean-counts", "10", "--true-rate", "5"], "exactly one of"),
        ([], "exactly one of"),
        (["--mean-counts", "-3"], "mean counts must be"),
        (["--mean-counts", "10000"], "beyond what the K2 can count"),
    ],
)
def test_dose_rate_bad_input(run, args, message):
    r = run("camera", "dose-rate", "--camera", "K2", "--mode", "counting", "--exposure", "1", *args)
    assert_bad_input(r, message)


# ----- info ----------------------------------------------------------------------------
def test_info(run):
    r = run("camera", "info")
    assert r.status == 0, r
    for name in ("K2:", "K3:", "CCD:", "CMOS:"):
        assert name in r.out
    r = run("camera", "info", "--camera", "k3", "--json")
    assert list(r.json) == ["K3"]
    assert r.json["K3"]["super_resolution_size"] == [11520, 8184]
    assert_bad_input(run("camera", "info", "--camera", "Falcon"), "unknown camera")
