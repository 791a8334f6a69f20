"""Camera models: sizes, modes, binning convention, registry."""

from __future__ import annotations

import dataclasses

import pytest

from dedkit.camera import CAMERAS, get_camera, internal_binning, user_binning
from dedkit.errors import DedkitError


@pytest.mark.parametrize("name", ["K2", "k2", "K3", "k3", "CCD", "ccd", "CMOS", "Cmos"])
def test_registry_is_case_insensitive(name):
    assert get_camera(name).name == name.upper()
    assert get_camera(get_camera(name)) is get_camera(name)


def test_unknown_camera():
    with pytest.raises(DedkitError, match="unknown camera 'K5'.*K2, K3, CCD, CMOS"):
        get_camera("K5")


def test_cameras_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CAMERAS["K2"].readout_interval = 0.001


def test_sizes_from_the_seed():
    # seed: K2 3.8K x 3.7K, 7.6K x 7.4K super-resolution; K3 5.8K x 4.1K, 11.5K x 8.2K
    k2, k3 = get_camera("K2"), get_camera("K3")
    assert k2.sensor_size == (3838, 3710)
    assert k2.super_resolution_size == (7676, 7420)
    assert k3.sensor_size == (5760, 4092)
    assert k3.super_resolution_size == (11520, 8184)
    assert get_camera("CCD").super_resolution_size == get_camera("CCD").sensor_size


def test_readout_intervals():
    assert get_camera("K2").readout_interval == 0.0025
    # seed: 0.666 ms (SerialEM's exact value 0.665779 ms); K3 reads 3.75x faster than K2
    k3 = get_camera("K3").readout_interval
    assert k3 == pytest.approx(0.000666, abs=1e-6)
    assert get_camera("K2").readout_interval / k3 == pytest.approx(3.75, rel=0.002)
    assert get_camera("CCD").readout_interval is None


def test_modes():
    assert get_camera("K2").modes == ("linear", "counting", "superres")
    assert get_camera("K3").modes == ("linear", "counting")
    with pytest.raises(DedkitError, match="no separate super-resolution mode"):
        get_camera("K3").check_mode("superres")
    with pytest.raises(DedkitError, match="no 'counting' mode"):
        get_camera("CCD").check_mode("counting")
    assert get_camera("K2").check_mode("SuperRes") == "superres"


def test_binning_05_only_for_super_resolution_images():
    k2, k3 = get_camera("K2"), get_camera("K3")
    assert 0.5 in k2.binnings_for("superres")
    assert 0.5 not in k2.binnings_for("counting")
    assert 0.5 not in k2.binnings_for("linear")
    assert 0.5 in k3.binnings_for("counting")  # K3 counting is intrinsically super-res
    assert 0.5 not in k3.binnings_for("linear")
    with pytest.raises(DedkitError, match="binning 0.5 is not available"):
        k2.check_binning(0.5, "counting")
    with pytest.raises(DedkitError, match="binning 3 is not available"):
        k2.check_binning(3, "counting")


def test_internal_doubled_binning():
    k2, ccd = get_camera("K2"), get_camera("CCD")
    assert [internal_binning(k2, b) for b in (0.5, 1, 2, 4)] == [1, 2, 4, 8]
    assert [user_binning(k2, b) for b in (1, 2, 4, 8)] == [0.5, 1, 2, 4]
    assert internal_binning(ccd, 2) == 2 and user_binning(ccd, 2) == 2
    with pytest.raises(DedkitError):
        internal_binning(ccd, 0.5)


def test_counts_per_electron_and_linear_scaling():
    k2, k3 = get_camera("K2"), get_camera("K3")
    assert k3.counts_per_electron_in("counting") == 32  # seed
    assert k3.counts_per_electron_in("linear") == 32  # scaled to match counting
    assert k3.linear_scaling == pytest.approx(1 / 350)
    # K2: counting scaled up to linear counts, so all modes give about the same counts
    assert k2.counts_per_electron_in("counting") == k2.counts_per_electron_in("linear")


def test_to_dict_and_text():
    d = get_camera("K3").to_dict()
    assert d["super_resolution_size"] == [11520, 8184]
    assert d["exposure_step_seconds"]["counting"] == pytest.approx(0.0106525, abs=1e-7)
    assert d["counts_per_electron"] == {"linear": 32.0, "counting": 32.0}
    assert "11520 x 8184" in get_camera("K3").text()
