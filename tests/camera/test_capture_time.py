"""Capture-time model against the seed's figures."""

from __future__ import annotations

import dataclasses

import pytest

from dedkit.camera import capture_time, get_camera
from dedkit.errors import DedkitError


def test_ccd_full_frame_is_the_seeds_12_seconds():
    t = capture_time("CCD", "linear", 1.0)
    assert t.readout == pytest.approx(12.0)  # seed: ~12 s for 2K x 2K through one port
    assert t.clear == pytest.approx(0.8)  # seed: 0.7-0.9 s for a 2K Megascan
    assert t.total == pytest.approx(0.8 + 1.0 + 12.0 + t.processing)
    assert t.image_size == (2048, 2048)


def test_ccd_settling_below_clear_time_is_free():
    base = capture_time("CCD", "linear", 1.0).total
    assert capture_time("CCD", "linear", 1.0, settling=0.5).total == pytest.approx(base)
    assert capture_time("CCD", "linear", 1.0, settling=2.0).total == pytest.approx(base + 1.2)


def test_ccd_readout_dominated_by_lines():
    half = capture_time("CCD", "linear", 1.0, area="half").readout
    wide_half = capture_time("CCD", "linear", 1.0, area="wide-half").readout
    quarter = capture_time("CCD", "linear", 1.0, area="quarter").readout
    wide_quarter = capture_time("CCD", "linear", 1.0, area="wide-quarter").readout
    # twice the pixels of Half/Quarter but "only somewhat longer ... not twice as long"
    assert 1.0 < wide_half / half < 1.5
    assert 1.0 < wide_quarter / quarter < 1.5
    assert capture_time("CCD", "linear", 1.0, area="wide-half").image_size == (2048, 1024)


def test_ccd_binning_speeds_readout():
    full = capture_time("CCD", "linear", 1.0).readout
    assert capture_time("CCD", "linear", 1.0, binning=2).readout < full / 2
    assert capture_time("CCD", "linear", 1.0, binning=4).image_size == (512, 512)


def test_k2_overheads_from_the_seed():
    assert capture_time("K2", "linear", 1.0).total == pytest.approx(4.0)  # ~3 s + exposure
    assert capture_time("K2", "counting", 1.0).total == pytest.approx(4.0)
    sr = capture_time("K2", "superres", 1.0, binning=0.5)
    assert sr.overhead == 6.0 and sr.transfer == pytest.approx(1.3)  # ~6 s + >= 1.3 s
    assert sr.total == pytest.approx(8.3)
    assert sr.image_size == (7676, 7420)
    # reduced by 2 in the plugin: a quarter of the pixels to return
    assert capture_time("K2", "superres", 1.0).transfer == pytest.approx(1.3 / 4)


def test_k2_timing_independent_of_binning():
    a = capture_time("K2", "counting", 1.0, binning=1).total
    assert capture_time("K2", "counting", 1.0, binning=4).total == pytest.approx(a)


def test_k3_shorter_and_no_superres_penalty():
    k3 = capture_time("K3", "counting", 1.0, binning=0.5)
    assert k3.total == pytest.approx(3.0)  # ~2 s + exposure
    assert k3.transfer == 0
    assert capture_time("K3", "counting", 1.0, binning=1).total == pytest.approx(k3.total)


def test_dose_fractionation_penalty_k2():
    kw = {"dose_fractionation": True, "frame_time": 0.2}
    assert capture_time("K2", "counting", 1.0, **kw).dose_fractionation == 4.0
    assert capture_time("K2", "superres", 1.0, binning=0.5, **kw).dose_fractionation == 5.5
    assert capture_time("K3", "counting", 1.0, **kw).dose_fractionation < 4.0


def test_dark_reference():
    lin = capture_time("K2", "linear", 2.0, new_dark_reference=True)
    assert lin.dark_reference == pytest.approx(2.0 + 2.0)  # ~2 s plus the exposure
    cnt = capture_time("K2", "counting", 2.0, new_dark_reference=True)
    assert cnt.dark_reference == pytest.approx(0.6)  # ~0.6 s regardless of exposure
    assert capture_time("K3", "linear", 2.0, new_dark_reference=True).dark_reference == 0


def test_settling_lengthens_direct_detector_exposure():
    a = capture_time("K2", "counting", 1.0).total
    assert capture_time("K2", "counting", 1.0, settling=0.5).total == pytest.approx(a + 0.5)


def test_frame_reduction():
    t = capture_time(
        "K3", "counting", 1.0, dose_fractionation=True, frame_time=0.05, reduce_saved_frames=True
    )
    assert t.frame_reduction == pytest.approx(20 * 0.1)  # 0.1 s per frame
    with pytest.raises(DedkitError, match="no super-resolution frames"):
        capture_time(
            "K2",
            "counting",
            1.0,
            dose_fractionation=True,
            frame_time=0.05,
            reduce_saved_frames=True,
        )
    with pytest.raises(DedkitError, match="needs dose fractionation"):
        capture_time("K3", "counting", 1.0, reduce_saved_frames=True)


def test_cmos_readout_during_exposure():
    t = capture_time("CMOS", "linear", 1.0)
    assert t.readout == 0
    assert capture_time("CMOS", "linear", 1.0, binning=4).total < t.total


def test_defaults_are_camera_properties():
    slow = dataclasses.replace(get_camera("CCD"), clear_time=0.25)
    assert capture_time(slow, "linear", 1.0).clear == 0.25


def test_breakdown_dict_and_text():
    t = capture_time("K2", "superres", 1.0, binning=0.5)
    d = t.to_dict()
    assert d["total"] == pytest.approx(t.total) and d["image_size"] == [7676, 7420]
    assert list(t.terms()) == ["exposure", "overhead", "transfer"]
    assert "8.300 s" in t.text()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("K2", "counting", 0.0), {}, "exposure must be a positive"),
        (("K2", "counting", 1.0), {"binning": 0.5}, "binning 0.5 is not available"),
        (("K2", "counting", 1.0), {"area": "tiny"}, "unknown area"),
        (("CCD", "linear", 1.0), {"dose_fractionation": True}, "no dose-fractionation"),
        (("K2", "counting", 1.0), {"frame_time": 0.1}, "only applies with dose"),
        (("K2", "counting", 1.0), {"settling": -1.0}, "settling must be"),
    ],
)
def test_bad_input(args, kwargs, message):
    with pytest.raises(DedkitError, match=message):
        capture_time(*args, **kwargs)
