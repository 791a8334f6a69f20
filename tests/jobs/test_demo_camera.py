"""The camera part of ``dedkit demo``: its checks pass on an honest alignment and fail
on a broken one; its files are what SerialEM writes; DemoPart/DemoCheck serialise."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import dedkit.frames.align as align_package
from dedkit.errors import DedkitError
from dedkit.io.mdoc import read_mdoc
from dedkit.io.stack import open_stack
from dedkit.jobs.demo_camera import CAMERA_SIZES, run_camera_demo
from dedkit.jobs.demo_part import DemoCheck, DemoPart


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    return run_camera_demo(tmp_path_factory.mktemp("cam") / "camera", size="tiny", seed=3)


def test_checks_pass_on_the_truth(honest):
    assert honest.name == "camera"
    assert [c.passed for c in honest.checks] == [True] * 4, honest.checks
    d = honest.details
    assert d["shift_rms_error"]["output_px"] < 0.5
    assert d["frc_mean"]["aligned"] > 2 * d["frc_mean"]["unaligned"]
    assert d["frc_mean"]["dose-weighted"] > d["frc_mean"]["aligned"]


def test_files_are_as_serialem_saves_them(honest):
    files = {k: Path(v) for k, v in honest.files.items()}
    assert all(p.is_file() for p in files.values())
    raw = files["raw movie (4-bit MRC mode 101, r/f 2)"]
    with open_stack(raw) as stack:
        assert stack.info.nz == CAMERA_SIZES["tiny"].frames
        assert stack.info.rotflip == 2
        frame = stack.read(0)
    assert frame.max() <= 15
    mdoc = read_mdoc(files["frame mdoc"])
    text = files["frame mdoc"].read_text()
    assert "ExposureDose" in text and "PixelSpacing" in text and mdoc is not None
    for caption, png in honest.figures.items():
        assert Path(png).read_bytes()[:4] == b"\x89PNG", caption
    json.dumps(honest.to_dict())  # JSON-ready


def test_zero_shifts_fail_the_shift_and_frc_checks(tmp_path, monkeypatch):
    real = align_package.estimate_motion

    def frozen(*args, **kwargs):
        motion = real(*args, **kwargs)
        return dataclasses.replace(motion, shifts=np.zeros_like(motion.shifts), local=None)

    monkeypatch.setattr(align_package, "estimate_motion", frozen)
    part = run_camera_demo(tmp_path / "camera", size="tiny", seed=3)
    assert not part.passed
    assert part.checks[0].passed is False  # shift error
    assert part.checks[1].passed is False  # aligned no better than unaligned
    assert part.details["shift_rms_error"]["output_px"] > 1.0


def test_unknown_size_refused(tmp_path):
    with pytest.raises(DedkitError, match="unknown camera demo size"):
        run_camera_demo(tmp_path / "c", size="huge")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DedkitError, match="is a file"):
        run_camera_demo(tmp_path / "file", size="tiny")


def test_demo_part_to_dict():
    checks = [DemoCheck("x", "1", "> 0", True), DemoCheck("y", "0", "> 0", False)]
    part = DemoPart("camera", "t", [{"a": 1}], checks, {"f": "a.png"}, {}, 1.23456, {})
    d = part.to_dict()
    assert d["passed"] is False and part.passed is False
    assert d["checks"][1] == {"what": "y", "value": "0", "target": "> 0", "passed": False}
    assert d["seconds"] == 1.235 and d["figures"] == {"f": "a.png"}
