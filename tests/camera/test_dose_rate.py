"""Dose rate from an image's mean, the coincidence correction, and the inverse."""

from __future__ import annotations

import warnings

import pytest

from dedkit.camera import DoseRateWarning, counted_rate, dose_rate, expected_counts
from dedkit.errors import DedkitError


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoseRateWarning)
        return fn(*args, **kwargs)


def test_k3_counting_32_counts_per_electron():
    # true 20 e/px/s, 2 s, binning 1: counted = 20 x f(20/3.75) x 0.87 per physical px/s
    counted = float(counted_rate(20.0, "K3"))
    mean = counted * 32 * 2.0
    d = dose_rate("K3", "counting", mean, 2.0)
    assert d.counted_rate == pytest.approx(counted)
    assert d.true_rate == pytest.approx(20.0, rel=1e-9)
    assert d.detection_efficiency == 0.87


def test_binning_convention():
    # a super-resolution image pixel is a quarter of a physical pixel; binning 2 is 4 of them
    d1 = dose_rate("K2", "counting", 150.0, 1.0, binning=1)
    d2 = dose_rate("K2", "counting", 600.0, 1.0, binning=2)
    d05 = dose_rate("K2", "superres", 37.5, 1.0, binning=0.5)
    assert d1.true_rate == pytest.approx(d2.true_rate)
    assert d1.true_rate == pytest.approx(d05.true_rate)
    assert d05.true_rate_per_superres_pixel == pytest.approx(d05.true_rate / 4)


def test_coincidence_correction_at_the_seed_points():
    # seed: at 10 e/px/s the K2 gives ~0.87 counts per true electron (x 0.87 efficiency)
    counts = 30 * 10 * 0.87 * 0.87  # K2 counts per electron x rate x loss x efficiency
    d = dose_rate("K2", "counting", counts, 1.0)
    assert d.true_rate == pytest.approx(10.0, abs=0.1)
    assert d.coincidence_factor == pytest.approx(0.87, abs=0.01)


def test_linear_mode_is_not_corrected():
    d = dose_rate("K2", "linear", 300.0, 1.0)
    assert d.true_rate == d.counted_rate == pytest.approx(10.0)
    assert d.coincidence_factor == 1.0 and d.detection_efficiency == 1.0
    assert d.warnings == ()


@pytest.mark.parametrize(
    ("camera", "mode", "rate", "binning"),
    [
        ("K2", "counting", 7.0, 1),
        ("K2", "superres", 3.0, 0.5),
        ("K3", "counting", 25.0, 0.5),
        ("K3", "linear", 25.0, 2),
        ("CCD", "linear", 100.0, 2),
    ],
)
def test_expected_counts_inverts_dose_rate(camera, mode, rate, binning):
    e = quiet(expected_counts, camera, mode, rate, 1.5, binning=binning)
    d = quiet(dose_rate, camera, mode, e.mean_counts, 1.5, binning=binning)
    assert d.true_rate == pytest.approx(rate, rel=1e-10)
    assert d.counted_rate == pytest.approx(e.counted_rate, rel=1e-12)


@pytest.mark.parametrize(
    ("camera", "rate", "side"),
    [("K2", 1.0, "below"), ("K2", 15.0, "above"), ("K3", 5.0, "below"), ("K3", 60.0, "above")],
)
def test_warns_outside_the_efficient_range(camera, rate, side):
    with pytest.warns(DoseRateWarning, match=f"{side} the {camera}'s efficient counting range"):
        e = expected_counts(camera, "counting", rate, 1.0)
    assert len(e.warnings) == 1
    with pytest.warns(DoseRateWarning):
        dose_rate(camera, "counting", e.mean_counts, 1.0)


@pytest.mark.parametrize(("camera", "rate"), [("K2", 2.0), ("K2", 10.0), ("K3", 7.0), ("K3", 40.0)])
def test_no_warning_inside_the_range(camera, rate):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DoseRateWarning)
        assert expected_counts(camera, "counting", rate, 1.0).warnings == ()


def test_beyond_saturation_is_an_error():
    with pytest.raises(DedkitError, match="beyond what the K2 can count"):
        dose_rate("K2", "counting", 30 * 12.0, 1.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("K2", "counting", -1.0, 1.0), {}, "mean counts must be 0 or more"),
        (("K2", "counting", 10.0, 0.0), {}, "exposure must be a positive"),
        (("K2", "counting", 10.0, 1.0), {"binning": 0.5}, "binning 0.5 is not available"),
        (("K3", "superres", 10.0, 1.0), {}, "no 'superres' mode"),
        (("K9", "counting", 10.0, 1.0), {}, "unknown camera"),
    ],
)
def test_bad_input(args, kwargs, message):
    with pytest.raises(DedkitError, match=message):
        dose_rate(*args, **kwargs)


def test_to_dict_and_text():
    d = quiet(dose_rate, "K2", "counting", 300.0, 1.0)
    j = d.to_dict()
    assert j["efficient_range"] == [2.0, 10.0] and j["warnings"] == list(d.warnings)
    assert "true dose rate" in d.text()
