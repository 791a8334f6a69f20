"""Frame doses from --dose and from SerialEM's mdoc files (real ones where present)."""

from pathlib import Path

import numpy as np
import pytest

from dedkit.camera import FrameDoses, frame_doses, frame_doses_from_mdoc
from dedkit.errors import DedkitError
from dedkit.io import parse_mdoc, read_mdoc

MDOCS = Path(__file__).resolve().parents[3] / "shared" / "cases" / "external" / "mdoc"
needs_files = pytest.mark.skipif(not MDOCS.is_dir(), reason="shared/cases/external absent")


@needs_files
def test_real_frame_stack_mdoc():
    path = MDOCS / "mdocfile_frame_set_single.mdoc"
    d = frame_doses_from_mdoc(read_mdoc(path), 12)
    assert isinstance(d, FrameDoses)
    assert d.n_frames == 12 and d.uniform
    assert np.allclose(d.doses, 0.63824)
    # FrameDosesAndNumber agrees with ExposureDose = 7.65892
    assert d.total == pytest.approx(7.65892, abs=1e-4)
    assert d.pixel_size == 1.2827 and d.binning == 0.5 and d.voltage_kv == 300.0
    assert d.pre_dose == 0.0
    assert d.source == f"mdoc {path} [FrameSet = 0]"
    # the frames saved reduced to counting size: twice the super-resolution pixel
    assert frame_doses_from_mdoc(read_mdoc(path), 12, frame_binning=1).pixel_size == 2.5654


@needs_files
def test_real_mdoc_frame_count_mismatch_names_file_and_numbers():
    path = MDOCS / "mdocfile_frame_set_single.mdoc"
    with pytest.raises(DedkitError) as error:
        frame_doses_from_mdoc(read_mdoc(path), 40)
    message = str(error.value)
    assert message.startswith(str(path) + ": ")
    assert "12 frames" in message and "has 40" in message


@needs_files
def test_real_frame_tilt_series_uses_its_frame_set():
    # one stack of 243 frames split into tilts by ZValue sections: the FrameSet counts
    d = frame_doses_from_mdoc(read_mdoc(MDOCS / "mdocfile_frame_set_multiple.mdoc"), 243)
    assert d.n_frames == 243 and np.allclose(d.doses, 0.63882)


@needs_files
def test_real_tilt_series_picks_the_section_of_the_stack():
    mdoc = read_mdoc(MDOCS / "mdocfile_tilt_series.mdoc")
    with pytest.raises(DedkitError, match="41 frame sets; name the frames"):
        frame_doses(8, dose_per_frame=0.4, mdoc=mdoc)
    with pytest.raises(DedkitError, match="none names other.mrc"):
        frame_doses(8, dose_per_frame=0.4, mdoc=mdoc, frames_name="other.mrc")
    # this tilt series was taken without a dose calibration (ExposureDose = 0)
    with pytest.raises(DedkitError, match=r"no dose \(\[ZValue = 3\]: ExposureDose = 0"):
        frame_doses_from_mdoc(mdoc, 8, frames_name="TS_01_003_-6.0.mrc")
    d = frame_doses(8, dose_per_frame=0.4, mdoc=mdoc, frames_name="frames/TS_01_003_-6.0.mrc")
    assert d.source == "--dose" and d.pixel_size == 5.4 and d.binning == 4
    assert d.voltage_kv is None  # this file has no Voltage key
    # the stem matches a stack converted to another format; the count is still checked
    with pytest.raises(DedkitError, match="describes 8 frames .*ZValue = 3.* has 9"):
        frame_doses(9, dose_per_frame=0.4, mdoc=mdoc, frames_name="ts_01_003_-6.0.tif")


@needs_files
def test_real_montage_mdoc_has_no_frames():
    with pytest.raises(DedkitError, match="records no frames"):
        frame_doses(10, mdoc_path=MDOCS / "mdocfile_montage_section.mdoc")


VARIABLE = """Voltage = 200
[FrameSet = 0]
ExposureDose = 4.5
PixelSpacing = 0.83
Binning = 1
NumSubFrames = 5
PriorRecordDose = 12.5
FrameDosesAndNumber = 0.5 2  1.5 1  1 2
SubFramePath = D:\\data\\movie_0001.tif
"""


def test_variable_frame_doses_and_prior_dose():
    d = frame_doses_from_mdoc(parse_mdoc(VARIABLE, path="m.mdoc"), 5)
    assert d.doses.tolist() == [0.5, 0.5, 1.5, 1.0, 1.0]
    assert not d.uniform and d.dose_per_frame == pytest.approx(0.9)
    assert d.pre_dose == 12.5 and d.voltage_kv == 200.0 and d.pixel_size == 0.83


def test_user_values_win_over_the_mdoc(tmp_path):
    path = tmp_path / "movie_0001.tif.mdoc"
    path.write_text(VARIABLE)
    d = frame_doses(
        5, dose_per_frame=2.0, mdoc_path=path, pre_dose=0.0, pixel_size=1.0, voltage_kv=300
    )
    assert d.doses.tolist() == [2.0] * 5 and d.pre_dose == 0.0
    assert d.pixel_size == 1.0 and d.voltage_kv == 300.0 and d.source == "--dose"
    assert frame_doses(5, mdoc=str(path)).doses.tolist() == [0.5, 0.5, 1.5, 1.0, 1.0]
    d = frame_doses(5, mdoc_path=path)
    assert d.source == f"mdoc {path} [FrameSet = 0]" and d.total == pytest.approx(4.5)
    # a frame count the mdoc contradicts is refused even when --dose is given
    with pytest.raises(DedkitError, match="describes 5 frames"):
        frame_doses(6, dose_per_frame=2.0, mdoc_path=path)


def test_exposure_dose_alone_is_split_evenly():
    text = "[FrameSet = 0]\nExposureDose = 6\nNumSubFrames = 4\n"
    d = frame_doses_from_mdoc(parse_mdoc(text), 4)
    assert d.doses.tolist() == [1.5] * 4
    assert d.pixel_size is None and d.voltage_kv is None and d.binning is None


@pytest.mark.parametrize(
    "text, match",
    [
        ("[FrameSet = 0]\nNumSubFrames = 5\nFrameDosesAndNumber = 1 4\n", "lists 4 frames"),
        ("[FrameSet = 0]\nFrameDosesAndNumber = 1 4 2\n", "not pairs"),
        ("[FrameSet = 0]\nFrameDosesAndNumber = 1 2.5\n", "whole frame counts"),
        ("[FrameSet = 0]\nFrameDosesAndNumber = x 4\n", "not a number"),
        ("[FrameSet = 0]\nNumSubFrames = 4\n", "no dose"),
        (
            "[ZValue = 0]\nSubFramePath = a\\m.tif\n[ZValue = 1]\nSubFramePath = b\\m.tif\n",
            "2 sections of the mdoc name frames m.tif",
        ),
    ],
)
def test_bad_mdocs_are_refused_with_the_file_named(text, match):
    with pytest.raises(DedkitError, match=match) as error:
        frame_doses_from_mdoc(parse_mdoc(text, path="x.mdoc"), 4, frames_name="m.tif")
    assert str(error.value).startswith("x.mdoc")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "no dose per frame"),
        ({"dose_per_frame": 0}, "positive"),
        ({"dose_per_frame": [1, 2]}, "gives 2 frame doses"),
        ({"dose_per_frame": 1, "pre_dose": -1}, "pre-dose"),
        ({"dose_per_frame": 1, "pixel_size": 0}, "pixel size"),
        ({"dose_per_frame": 1, "voltage_kv": float("nan")}, "voltage"),
        ({"mdoc": parse_mdoc(VARIABLE), "frame_binning": 0}, "binning must be"),
    ],
)
def test_bad_user_values(kwargs, match):
    with pytest.raises(DedkitError, match=match):
        frame_doses(5 if "mdoc" in kwargs else 3, **kwargs)


def test_one_frame_at_least():
    with pytest.raises(DedkitError, match="at least one frame"):
        frame_doses(0, dose_per_frame=1.0)
