"""SerialEM's timing rules (seed rules 1-3), each against the seed's numbers."""

from __future__ import annotations

import pytest

from dedkit.camera import check, get_camera, nearest_settings
from dedkit.errors import DedkitError


def rules(result):
    return [v.rule for v in result.violations]


def violation(result, rule):
    (v,) = [v for v in result.violations if v.rule == rule]
    return v


# ----- rule 1: multiples of the readout interval (2.5 ms K2, 0.666 ms K3) ---------------
def test_rule1_exposure_k2():
    r = check("K2", "counting", 0.10125, dose_fractionation=True, frame_time=0.1)
    assert "R1-exposure" in rules(r)
    assert violation(r, "R1-exposure").nearest == (0.1, 0.1025)
    assert check("K2", "counting", 0.1025, dose_fractionation=True, frame_time=0.1025).valid


def test_rule1_frame_time_and_settling_k2():
    r = check("K2", "counting", 1.0, dose_fractionation=True, frame_time=0.051, settling=0.101)
    assert set(rules(r)) >= {"R1-frame-time", "R1-settling"}
    assert violation(r, "R1-frame-time").nearest == (0.05, 0.0525)
    assert violation(r, "R1-settling").nearest == (0.1, 0.1025)
    assert r.nearest["frame_time"] == 0.05 and r.nearest["settling"] == 0.1
    ok = check("K2", "counting", 1.0, dose_fractionation=True, frame_time=0.05, settling=0.1)
    assert ok.valid


def test_rule1_k3_readout():
    tick = get_camera("K3").readout_interval
    # 30 readouts computed with the seed's 0.666 ms is within SerialEM's 1e-5 s tolerance
    assert check(
        "K3", "counting", 30 * 0.000666, dose_fractionation=True, frame_time=30 * 0.000666
    ).valid
    r = check("K3", "counting", 1.0, dose_fractionation=True, frame_time=0.0203)
    v = violation(r, "R1-frame-time")
    assert v.nearest == (round(30 * tick, 9), round(31 * tick, 9))


# ----- rule 2: exposure steps without dose fractionation ----------------------------------
@pytest.mark.parametrize(
    ("camera", "mode", "step", "seed_step"),
    [
        ("K2", "linear", 0.1, 0.1),
        ("K2", "counting", 0.1, 0.1),
        ("K2", "superres", 0.5, 0.5),
        ("K3", "linear", 20 * 0.000665779, 0.013),
        ("K3", "counting", 16 * 0.000665779, 0.011),
    ],
)
def test_rule2_exposure_steps(camera, mode, step, seed_step):
    cam = get_camera(camera)
    assert cam.exposure_step(mode) == pytest.approx(step, rel=1e-9)
    assert cam.exposure_step(mode) == pytest.approx(seed_step, abs=0.0005)  # seed rounds
    for n in (1, 3, 17):
        assert check(camera, mode, n * step).valid
    r = check(camera, mode, 3.5 * step)
    assert rules(r)[-1] == "R2-exposure-step"
    v = violation(r, "R2-exposure-step")
    assert v.nearest == pytest.approx((3 * step, 4 * step))
    # SerialEM rounds half-way up
    assert r.nearest["exposure"] == pytest.approx(4 * step)


def test_rule2_k2_superres_half_second():
    # "a multiple of 0.5 sec in super-resolution mode (yes, 0.5 sec!)"
    r = check("K2", "superres", 1.2)
    assert rules(r) == ["R2-exposure-step"]
    assert violation(r, "R2-exposure-step").nearest == (1.0, 1.5)
    assert r.nearest["exposure"] == 1.0
    assert check("K2", "counting", 1.2).valid


def test_rule2_does_not_apply_with_dose_fractionation():
    # the seed's way round the K2 constraint: dose fractionation with frame = exposure
    assert not check("K2", "counting", 0.25).valid
    assert check("K2", "counting", 0.25, dose_fractionation=True, frame_time=0.25).valid
    assert check("K2", "superres", 1.2, dose_fractionation=True, frame_time=1.2).valid


def test_k3_seed_rounded_values_are_flagged_with_the_exact_ones():
    r = check("K3", "counting", 0.011)
    assert set(rules(r)) == {"R1-exposure", "R2-exposure-step"}
    assert r.nearest["exposure"] == pytest.approx(16 * 0.000665779, abs=1e-9)


# ----- rule 3: dose fractionation ---------------------------------------------------------
def test_rule3_exposure_multiple_of_frame_time():
    r = check("K2", "counting", 1.01, dose_fractionation=True, frame_time=0.2)
    assert rules(r) == ["R3-frame-multiple"]
    assert violation(r, "R3-frame-multiple").nearest == (1.0, 1.2)
    assert check("K2", "counting", 1.2, dose_fractionation=True, frame_time=0.2).valid
    # shorter than one frame: the nearest is one frame
    r = check("K2", "counting", 0.1, dose_fractionation=True, frame_time=0.2)
    assert violation(r, "R3-frame-multiple").nearest == (0.2,)


@pytest.mark.parametrize(
    ("camera", "minimum", "seed_min"), [("K2", 0.025, 0.025), ("K3", 20 * 0.000665779, 0.013)]
)
def test_rule3_minimum(camera, minimum, seed_min):
    cam = get_camera(camera)
    assert cam.min_frame_time == pytest.approx(minimum, rel=1e-9)
    assert cam.min_frame_time == pytest.approx(seed_min, abs=0.0005)
    assert check(
        camera, "counting", 40 * minimum, dose_fractionation=True, frame_time=minimum
    ).valid
    below = minimum - 2 * cam.readout_interval
    r = check(camera, "counting", 40 * below, dose_fractionation=True, frame_time=below)
    assert rules(r) == ["R3-min-frame-time"]
    assert violation(r, "R3-min-frame-time").nearest == (round(minimum, 9),)
    assert r.nearest["frame_time"] == pytest.approx(minimum)


def test_rule3_k2_seed_minimum():
    r = check("K2", "counting", 1.0, dose_fractionation=True, frame_time=0.02)
    assert rules(r) == ["R3-min-frame-time"]
    assert r.nearest == {"exposure": 1.0, "frame_time": 0.025, "settling": 0.0}


def test_rule3_maximum_frame_time():
    r = check("K2", "counting", 20.0, dose_fractionation=True, frame_time=20.0)
    assert rules(r) == ["R3-max-frame-time"]
    assert r.nearest["frame_time"] == 10.0


def test_every_violated_rule_is_returned():
    r = check("K2", "counting", 1.0013, settling=0.0011)
    assert rules(r) == ["R1-exposure", "R1-settling", "R2-exposure-step"]
    assert r.nearest == {"exposure": 1.0, "frame_time": None, "settling": 0.0}
    assert not r.valid
    text = r.text()
    assert "3 rule(s) violated" in text and "nearest valid settings: exposure 1 s" in text
    d = r.to_dict()
    assert d["valid"] is False and len(d["violations"]) == 3
    assert d["violations"][0]["nearest"] == [1.0, 1.0025]
    assert violation(r, "R1-settling").nearest == (0.0, 0.0025)  # 0: no settling
    assert "nearest valid settings: exposure 1 s, settling 0 s" in text


def test_nearest_settings_are_valid():
    for camera, mode, kw in [
        ("K2", "counting", {"dose_fractionation": True, "frame_time": 0.0513}),
        ("K3", "counting", {"dose_fractionation": True, "frame_time": 0.03}),
        ("K3", "linear", {}),
        ("K2", "superres", {"settling": 0.33}),
    ]:
        n = nearest_settings(camera, mode, 1.2345, **kw)
        fixed = check(
            camera,
            mode,
            n["exposure"],
            frame_time=n["frame_time"],
            settling=n["settling"],
            dose_fractionation=bool(kw.get("frame_time")),
        )
        assert fixed.valid, (camera, mode, kw, n, fixed.text())


def test_ccd_has_no_frame_rules():
    assert check("CCD", "linear", 1.2345, settling=0.333).valid
    with pytest.raises(DedkitError, match="no dose-fractionation mode"):
        check("CCD", "linear", 1.0, dose_fractionation=True, frame_time=0.1)


def test_cmos_frames():
    r = check("CMOS", "linear", 1.01)
    assert rules(r) == ["R1-exposure"]  # one-readout steps: rule 2 is rule 1 again
    assert check("CMOS", "linear", 1.2, dose_fractionation=True, frame_time=0.2).valid


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exposure": 0.0}, "exposure must be a positive"),
        ({"exposure": -1.0}, "exposure must be a positive"),
        ({"exposure": float("nan")}, "exposure must be a positive"),
        ({"exposure": 1.0, "frame_time": 0.1}, "only applies with dose fractionation"),
        ({"exposure": 1.0, "dose_fractionation": True}, "needs a frame time"),
        ({"exposure": 1.0, "dose_fractionation": True, "frame_time": 0.0}, "frame time must"),
        ({"exposure": 1.0, "settling": -0.1}, "settling must be 0 or more"),
    ],
)
def test_unusable_input(kwargs, message):
    exposure = kwargs.pop("exposure")
    with pytest.raises(DedkitError, match=message):
        check("K2", "counting", exposure, **kwargs)


def test_unknown_mode_for_camera():
    with pytest.raises(DedkitError, match="no 'superres' mode"):
        check("K3", "superres", 1.0)
